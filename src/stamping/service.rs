//! The stamping service: renders stamps with the pure core, persists them through a group-commit
//! writer (many concurrent requests share one transaction and one fsync), and records their events in
//! the outbox in the same transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use uuid::Uuid;

use super::core::{self, CanonicalHash, RenderedStamp, StampInput, StampType, Validation};
use super::file_type::{classify, FileType};
use super::namespace::{Namespace, NamespaceError};
use crate::config::StampingSettings;
use crate::events::topics::EventKind;
use crate::events::{EventFactory, TraceContext};
use crate::store::outbox::NewOutboxEvent;
use crate::store::sql_types::{DbJson, DbTs, DbUuid};
use crate::store::stamps::{self, PendingStamp, StampRow, Stored};
use crate::store::{Db, StoreError};
use crate::telemetry::LatencyWindow;

pub const METADATA_VERSION: &str = "0.1";

/// Longest id-like string a caller may give (`metadata.workflow_id`, `uid`, `author`, batch item
/// ids, …), in bytes: such strings become event keys, index entries and stamp lines.
pub const MAX_ID_BYTES: usize = 256;
/// Longest `file_path`, in bytes (PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Metadata keys whose string values become ids, index entries or stamp lines downstream.
pub const METADATA_ID_KEYS: [&str; 9] = [
    "workflow_id",
    "session_id",
    "correlation_id",
    "uid",
    "timestamp",
    "author",
    "version",
    "protocol_version",
    "content_type",
];

/// The id-like values of caller metadata (`METADATA_ID_KEYS`) are at most `MAX_ID_BYTES` long;
/// `prefix` names the metadata (`metadata`, `items[3].metadata`).
pub fn check_metadata_ids(map: &Map<String, Value>, prefix: &str) -> Result<(), StampingError> {
    for key in METADATA_ID_KEYS {
        if let Some(Value::String(v)) = map.get(key) {
            check_length(&format!("{prefix}.{key}"), v, MAX_ID_BYTES)?;
        }
    }
    Ok(())
}

/// `value` given as `field` is at most `limit` bytes.
pub fn check_length(field: &str, value: &str, limit: usize) -> Result<(), StampingError> {
    if value.len() > limit {
        return Err(StampingError::InvalidField {
            field: field.to_owned(),
            message: format!(
                "is {} bytes, longer than the limit of {limit} bytes",
                value.len()
            ),
        });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StampingError {
    #[error("{field}: {source}")]
    Namespace {
        field: String,
        source: NamespaceError,
    },
    #[error("{field} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("batch request has no items")]
    EmptyBatch,
    #[error("batch has {count} items, more than the limit of {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stamping service is shutting down")]
    ShuttingDown,
}

/// One stamp to create.
#[derive(Debug, Clone)]
pub struct StampCommand {
    pub content: String,
    pub file_path: Option<String>,
    pub namespace: Namespace,
    pub stamp_type: StampType,
    /// Caller metadata (`uid`, `timestamp`, `author`, `version`, `protocol_version`,
    /// `content_type`, anything else is stored as given).
    pub metadata: Map<String, Value>,
    pub protocol_version: Option<String>,
}

/// A stamp as stored.
#[derive(Debug, Clone)]
pub struct StampRecord {
    pub id: Uuid,
    pub namespace: String,
    pub file_hash: String,
    pub file_path: Option<String>,
    pub file_size: i64,
    pub content_type: Option<String>,
    pub stamp_data: Value,
    pub protocol_version: String,
    pub intelligence_data: Option<Value>,
    pub version: i32,
    pub op_id: Uuid,
    pub metadata_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StampRow> for StampRecord {
    fn from(r: StampRow) -> Self {
        StampRecord {
            id: r.id.0,
            namespace: r.namespace,
            file_hash: r.file_hash,
            file_path: r.file_path,
            file_size: r.file_size,
            content_type: r.content_type,
            stamp_data: r.stamp_data.0,
            protocol_version: r.protocol_version,
            intelligence_data: r.intelligence_data.map(|j| j.0),
            version: r.version,
            op_id: r.op_id.0,
            metadata_version: r.metadata_version,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StampOutcome {
    pub rendered: RenderedStamp,
    pub record: StampRecord,
    /// False when the same content was already stamped in this namespace (idempotent replay).
    pub created: bool,
    pub file_type: FileType,
    pub hash_time: Duration,
    pub total_time: Duration,
}

#[derive(Debug, Clone)]
pub struct ValidateOutcome {
    pub validation: Validation,
    pub elapsed: Duration,
}

#[derive(Debug)]
pub struct BatchItem {
    pub id: String,
    /// Position in the caller's request, for field names in errors (`items[3].content`).
    pub index: usize,
    pub command: StampCommand,
}

#[derive(Debug)]
pub struct BatchOutcome {
    pub results: Vec<(String, Result<StampOutcome, StampingError>)>,
    pub elapsed: Duration,
}

struct WriteJob {
    pending: Vec<PendingStamp>,
    extra_events: Vec<NewOutboxEvent>,
    reply: Option<oneshot::Sender<Result<Vec<Stored>, StoreError>>>,
}

/// Process-wide stamping statistics for the JSON metrics endpoint.
#[derive(Default)]
pub struct StampingStats {
    pub hash_latency: LatencyWindow,
    pub stamp_latency: LatencyWindow,
    pub stamps_created: std::sync::atomic::AtomicU64,
    pub stamps_replayed: std::sync::atomic::AtomicU64,
    pub validations: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub hashes: std::sync::atomic::AtomicU64,
    pub commits: std::sync::atomic::AtomicU64,
    pub committed_rows: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct StampingService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    writer: mpsc::Sender<WriteJob>,
    settings: StampingSettings,
    default_namespace: Namespace,
    events: EventFactory,
    stats: Arc<StampingStats>,
    committed: Arc<Notify>,
}

/// Content larger than this is hashed on the blocking pool instead of an async worker.
const INLINE_HASH_LIMIT: usize = 256 * 1024;

impl StampingService {
    /// Start the service and its group-commit writer. `committed` is notified after every commit
    /// that wrote events (the outbox relay waits on it).
    pub fn start(
        db: Db,
        settings: StampingSettings,
        events: EventFactory,
        committed: Arc<Notify>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let default_namespace = Namespace::parse(&settings.default_namespace)
            .unwrap_or_else(|_| Namespace::parse("omninode.services.metadata").expect("literal"));
        let stats = Arc::new(StampingStats::default());
        let (tx, rx) = mpsc::channel(4096);
        let concurrency = match db.backend() {
            crate::store::Backend::Sqlite => 1,
            crate::store::Backend::Postgres => db.settings().write_concurrency,
        };
        let writer = tokio::spawn(run_writer(
            db.clone(),
            rx,
            committed.clone(),
            db.settings().write_batch_max,
            concurrency,
            stats.clone(),
        ));
        let svc = StampingService {
            inner: Arc::new(Inner {
                db,
                writer: tx,
                settings,
                default_namespace,
                events,
                stats,
                committed,
            }),
        };
        (svc, writer)
    }

    /// Wake the outbox relay after another module committed events.
    pub fn notify_committed(&self) {
        self.inner.committed.notify_one();
    }

    pub fn stats(&self) -> &StampingStats {
        &self.inner.stats
    }

    pub fn settings(&self) -> &StampingSettings {
        &self.inner.settings
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn events(&self) -> &EventFactory {
        &self.inner.events
    }

    /// The namespace named in a request (`field` names it in errors), or the default.
    pub fn namespace(&self, given: Option<&str>, field: &str) -> Result<Namespace, StampingError> {
        match given {
            None => Ok(self.inner.default_namespace.clone()),
            Some(s) => Namespace::parse(s).map_err(|source| StampingError::Namespace {
                field: field.to_owned(),
                source,
            }),
        }
    }

    pub fn check_content_size(&self, field: &str, content: &str) -> Result<(), StampingError> {
        let limit = self.inner.settings.max_content_bytes;
        if content.len() > limit {
            return Err(StampingError::TooLarge {
                field: field.to_owned(),
                size: content.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Hash canonical content, off the async workers when it is large.
    async fn canonical_hash(content: &str) -> (CanonicalHash, Duration) {
        let started = Instant::now();
        let hash = if content.len() > INLINE_HASH_LIMIT {
            let owned = content.to_owned();
            match tokio::task::spawn_blocking(move || core::canonical_hash(&owned)).await {
                Ok(h) => h,
                Err(_) => core::canonical_hash(content),
            }
        } else {
            core::canonical_hash(content)
        };
        (hash, started.elapsed())
    }

    /// Render the stamp and build the row and events for one command (no I/O).
    fn prepare(
        &self,
        cmd: &StampCommand,
        canonical: &CanonicalHash,
        trace: &TraceContext,
        field_prefix: &str,
    ) -> Result<(RenderedStamp, PendingStamp, FileType), StampingError> {
        let meta = StampMetadata::from_map(&cmd.metadata, field_prefix)?;
        // Stored text (PostgreSQL text/jsonb) cannot hold NUL: refuse it up front, naming the field,
        // instead of failing the group commit it would share with other requests.
        let file_field = field_prefix
            .strip_suffix("metadata")
            .unwrap_or("")
            .to_owned()
            + "file_path";
        if let Some(p) = cmd.file_path.as_deref() {
            check_length(&file_field, p, MAX_PATH_BYTES)?;
        }
        if cmd.file_path.as_deref().is_some_and(|p| p.contains('\0')) {
            return Err(StampingError::InvalidField {
                field: file_field,
                message: "must not contain NUL characters".into(),
            });
        }
        if let Some(v) = cmd.protocol_version.as_deref() {
            check_length("protocol_version", v, MAX_ID_BYTES)?;
        }
        if let Some(path) = find_nul(&Value::Object(cmd.metadata.clone()), field_prefix) {
            return Err(StampingError::InvalidField {
                field: path,
                message: "must not contain NUL characters".into(),
            });
        }
        let protocol_version = meta
            .protocol_version
            .clone()
            .or_else(|| cmd.protocol_version.clone());
        let input = StampInput {
            uid: meta.uid.as_deref(),
            timestamp: meta.timestamp.as_deref(),
            author: meta.author.as_deref(),
            version: meta.version.as_deref(),
            protocol_version: protocol_version.as_deref(),
            content_type: meta.content_type.as_deref(),
            file_path: cmd.file_path.as_deref(),
        };
        let rendered =
            core::render_stamp_with_hash(&cmd.content, canonical, cmd.stamp_type, &input);
        let file_type = classify(cmd.file_path.as_deref(), meta.content_type.as_deref());
        let now = Utc::now();
        let id = Uuid::new_v4();
        let op_id = Uuid::new_v4();
        let stamp_data = json!({
            "stamp_type": cmd.stamp_type.as_str(),
            "uid": rendered.uid,
            "timestamp": rendered.timestamp,
            "stamp": rendered.stamp,
            "file_type": file_type.as_str(),
            "canonical_size": rendered.canonical_len,
            "metadata": Value::Object(cmd.metadata.clone()),
        });
        let row = StampRow {
            id: DbUuid(id),
            namespace: cmd.namespace.as_str().to_owned(),
            file_hash: rendered.hash.clone(),
            file_path: cmd.file_path.clone(),
            file_size: cmd.content.len() as i64,
            content_type: meta.content_type.clone(),
            stamp_data: DbJson(stamp_data),
            protocol_version: protocol_version.unwrap_or_else(|| "1.0".into()),
            intelligence_data: None,
            version: 1,
            op_id: DbUuid(op_id),
            metadata_version: METADATA_VERSION.into(),
            created_at: DbTs(now),
            updated_at: DbTs(now),
        };
        let events = &self.inner.events;
        let created = events.envelope(
            EventKind::MetadataStampCreated,
            trace.clone(),
            Some(cmd.namespace.as_str().to_owned()),
            json!({
                "stamp_id": id,
                "file_hash": rendered.hash,
                "namespace": cmd.namespace.as_str(),
                "file_path": cmd.file_path,
                "file_size": cmd.content.len(),
                "file_type": file_type.as_str(),
                "stamp_type": cmd.stamp_type.as_str(),
                "op_id": op_id,
                "workflow_id": cmd.metadata.get("workflow_id"),
                "created_at": crate::stamping::core::format_timestamp(now),
            }),
        );
        let on_create = vec![events.outbox_row(EventKind::MetadataStampCreated, &created)];
        Ok((rendered, PendingStamp { row, on_create }, file_type))
    }

    async fn write(&self, job: WriteJob) -> Result<(), StampingError> {
        self.inner
            .writer
            .send(job)
            .await
            .map_err(|_| StampingError::ShuttingDown)
    }

    async fn write_and_wait(
        &self,
        pending: Vec<PendingStamp>,
        extra_events: Vec<NewOutboxEvent>,
    ) -> Result<Vec<Stored>, StampingError> {
        let (tx, rx) = oneshot::channel();
        self.write(WriteJob {
            pending,
            extra_events,
            reply: Some(tx),
        })
        .await?;
        let stored = rx.await.map_err(|_| StampingError::ShuttingDown)??;
        Ok(stored)
    }

    /// Create (or replay) one stamp. Returns once the row and its event are committed.
    pub async fn stamp(
        &self,
        cmd: StampCommand,
        trace: &TraceContext,
    ) -> Result<StampOutcome, StampingError> {
        let started = Instant::now();
        self.check_content_size("content", &cmd.content)?;
        let (canonical, hash_time) = Self::canonical_hash(&cmd.content).await;
        self.inner.stats.hash_latency.record(hash_time);
        let (rendered, pending, file_type) = self.prepare(&cmd, &canonical, trace, "metadata")?;
        let mut stored = self.write_and_wait(vec![pending], Vec::new()).await?;
        let Some(stored) = stored.pop() else {
            return Err(StoreError::Failed("write returned no row".into()).into());
        };
        self.count_write(stored.created);
        let total_time = started.elapsed();
        self.inner.stats.stamp_latency.record(total_time);
        Ok(StampOutcome {
            rendered,
            record: stored.row.into(),
            created: stored.created,
            file_type,
            hash_time,
            total_time,
        })
    }

    fn count_write(&self, created: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if created {
            self.inner.stats.stamps_created.fetch_add(1, Relaxed);
            metrics::counter!("stamps_created_total").increment(1);
        } else {
            self.inner.stats.stamps_replayed.fetch_add(1, Relaxed);
            metrics::counter!("stamps_replayed_total").increment(1);
        }
    }

    /// Stamp many items; invalid items fail alone, valid ones are written together in one or a few
    /// transactions, with one `metadata-batch-processed` event.
    /// `rejected` counts items the caller already refused (e.g. a bad per-item namespace): they
    /// appear in the batch event's totals.
    pub async fn batch(
        &self,
        items: Vec<BatchItem>,
        rejected: usize,
        trace: &TraceContext,
    ) -> Result<BatchOutcome, StampingError> {
        let started = Instant::now();
        if items.is_empty() && rejected == 0 {
            return Err(StampingError::EmptyBatch);
        }
        let limit = self.inner.settings.max_batch_items;
        if items.len() + rejected > limit {
            return Err(StampingError::BatchTooLarge {
                count: items.len() + rejected,
                limit,
            });
        }
        let mut results: Vec<(String, Option<Result<StampOutcome, StampingError>>)> =
            Vec::with_capacity(items.len());
        let mut prepared: Vec<(usize, RenderedStamp, FileType, Duration)> = Vec::new();
        let mut pending = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let field = format!("items[{}]", item.index);
            let prepared_item = match self
                .check_content_size(&format!("{field}.content"), &item.command.content)
            {
                Err(e) => Err(e),
                Ok(()) => {
                    let (canonical, hash_time) = Self::canonical_hash(&item.command.content).await;
                    self.inner.stats.hash_latency.record(hash_time);
                    self.prepare(
                        &item.command,
                        &canonical,
                        trace,
                        &format!("{field}.metadata"),
                    )
                    .map(|p| (p, hash_time))
                }
            };
            match prepared_item {
                Ok(((rendered, p, file_type), hash_time)) => {
                    prepared.push((i, rendered, file_type, hash_time));
                    pending.push(p);
                    results.push((item.id, None));
                }
                Err(e) => results.push((item.id, Some(Err(e)))),
            }
        }
        let succeeded = pending.len();
        let failed = results.len() - succeeded + rejected;
        let batch_event = self.inner.events.envelope(
            EventKind::MetadataBatchProcessed,
            trace.clone(),
            None,
            json!({
                "total_items": results.len() + rejected,
                "successful_items": succeeded,
                "failed_items": failed,
            }),
        );
        let extra = vec![self
            .inner
            .events
            .outbox_row(EventKind::MetadataBatchProcessed, &batch_event)];
        let stored = self.write_and_wait(pending, extra).await?;
        for ((i, rendered, file_type, hash_time), stored) in prepared.into_iter().zip(stored) {
            self.count_write(stored.created);
            results[i].1 = Some(Ok(StampOutcome {
                rendered,
                record: stored.row.into(),
                created: stored.created,
                file_type,
                hash_time,
                total_time: started.elapsed(),
            }));
        }
        self.inner
            .stats
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(BatchOutcome {
            results: results
                .into_iter()
                .map(|(id, r)| (id, r.unwrap_or(Err(StampingError::ShuttingDown))))
                .collect(),
            elapsed: started.elapsed(),
        })
    }

    /// Validate content; records a `metadata-stamp-validated` event without waiting for its commit.
    pub async fn validate(
        &self,
        content: &str,
        expected_hash: Option<&str>,
        namespace: &Namespace,
        trace: &TraceContext,
    ) -> Result<ValidateOutcome, StampingError> {
        let started = Instant::now();
        self.check_content_size("content", content)?;
        let validation = if content.len() > INLINE_HASH_LIMIT {
            let owned = content.to_owned();
            let expected = expected_hash.map(str::to_owned);
            tokio::task::spawn_blocking(move || core::validate(&owned, expected.as_deref()))
                .await
                .map_err(|e| StoreError::Failed(format!("validation task failed: {e}")))?
        } else {
            core::validate(content, expected_hash)
        };
        let elapsed = started.elapsed();
        self.inner.stats.hash_latency.record(elapsed);
        self.inner
            .stats
            .validations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let event = self.inner.events.envelope(
            EventKind::MetadataStampValidated,
            trace.clone(),
            Some(namespace.as_str().to_owned()),
            json!({
                "file_hash": validation.current_hash,
                "namespace": namespace.as_str(),
                "is_valid": validation.is_valid,
                "stamps_found": validation.stamps.len(),
            }),
        );
        let row = self
            .inner
            .events
            .outbox_row(EventKind::MetadataStampValidated, &event);
        // The event joins the next group commit; the answer waits for it, so an acknowledged
        // validation has its event recorded. Publishing never fails a user request: if the
        // database cannot take it, the validation result is still returned and the loss is counted.
        if let Err(e) = self.write_and_wait(Vec::new(), vec![row]).await {
            metrics::counter!("events_dropped_total", "event_type" => "metadata-stamp-validated")
                .increment(1);
            tracing::warn!(error = %e, "validation event not recorded");
        }
        Ok(ValidateOutcome {
            validation,
            elapsed,
        })
    }

    pub async fn find(
        &self,
        file_hash: &str,
        namespace: Option<&Namespace>,
    ) -> Result<Option<StampRecord>, StampingError> {
        Ok(
            stamps::find_by_hash(&self.inner.db, file_hash, namespace.map(|n| n.as_str()))
                .await?
                .map(StampRecord::from),
        )
    }

    pub async fn list(
        &self,
        namespace: &Namespace,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<StampRecord>, i64), StampingError> {
        let (rows, total) =
            stamps::list_namespace(&self.inner.db, namespace.as_str(), limit, offset).await?;
        Ok((rows.into_iter().map(StampRecord::from).collect(), total))
    }
}

/// Path of the first string (key or value) containing NUL inside `v`.
fn find_nul(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_nul(x, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(path.to_owned())
            } else {
                find_nul(x, &format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

/// The metadata keys that shape a stamp, checked so that a stamp always parses back.
#[derive(Debug, Default)]
struct StampMetadata {
    uid: Option<String>,
    timestamp: Option<String>,
    author: Option<String>,
    version: Option<String>,
    protocol_version: Option<String>,
    content_type: Option<String>,
}

impl StampMetadata {
    fn from_map(map: &Map<String, Value>, prefix: &str) -> Result<Self, StampingError> {
        check_metadata_ids(map, prefix)?;
        let text = |key: &str| -> Result<Option<String>, StampingError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(StampingError::InvalidField {
                    field: format!("{prefix}.{key}"),
                    message: "must be a string".into(),
                }),
            }
        };
        let bad = |key: &str, message: &str| StampingError::InvalidField {
            field: format!("{prefix}.{key}"),
            message: message.into(),
        };
        let m = StampMetadata {
            uid: text("uid")?,
            timestamp: text("timestamp")?,
            author: text("author")?,
            version: text("version")?,
            protocol_version: text("protocol_version")?,
            content_type: text("content_type")?,
        };
        if let Some(uid) = &m.uid {
            if uid.is_empty()
                || !uid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("uid", "must be non-empty [A-Za-z0-9_-]"));
            }
        }
        if let Some(ts) = &m.timestamp {
            if chrono::DateTime::parse_from_rfc3339(ts).is_err()
                || !ts
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"T:-+.".contains(&b))
            {
                return Err(bad(
                    "timestamp",
                    "must be an RFC 3339 timestamp with a numeric offset, e.g. 2025-01-01T12:00:00.000000+00:00",
                ));
            }
        }
        for (key, value) in [
            ("author", &m.author),
            ("version", &m.version),
            ("protocol_version", &m.protocol_version),
            ("content_type", &m.content_type),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.contains(['\n', '\r', ',']))
            {
                return Err(bad(key, "must not contain line breaks or commas"));
            }
        }
        Ok(m)
    }
}

async fn run_writer(
    db: Db,
    mut rx: mpsc::Receiver<WriteJob>,
    committed: Arc<Notify>,
    max_rows: usize,
    concurrency: usize,
    stats: Arc<StampingStats>,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    while let Some(first) = rx.recv().await {
        // Wait for a commit slot before draining: requests that arrive meanwhile join this batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut rows = first.pending.len() + first.extra_events.len();
        let mut jobs = vec![first];
        while rows < max_rows {
            match rx.try_recv() {
                Ok(job) => {
                    rows += job.pending.len() + job.extra_events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let db = db.clone();
        let committed = committed.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            commit_jobs(&db, jobs, &committed, &stats).await;
            drop(permit);
        });
    }
    // Senders are gone: wait for in-flight commits.
    let _ = slots.acquire_many(concurrency.max(1) as u32).await;
}

async fn commit_jobs(db: &Db, jobs: Vec<WriteJob>, committed: &Notify, stats: &StampingStats) {
    let mut counts = Vec::with_capacity(jobs.len());
    let mut pending = Vec::new();
    let mut extra = Vec::new();
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        counts.push(job.pending.len());
        pending.extend(job.pending);
        extra.extend(job.extra_events);
        replies.push(job.reply);
    }
    let has_events = !extra.is_empty() || !pending.is_empty();
    let total = pending.len();
    let started = Instant::now();
    let result = stamps::insert_batch(db, pending, extra).await;
    metrics::histogram!("stamp_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("stamp_commit_rows").record(total as f64);
    match result {
        Ok(stored) => {
            use std::sync::atomic::Ordering::Relaxed;
            stats.commits.fetch_add(1, Relaxed);
            stats.committed_rows.fetch_add(total as u64, Relaxed);
            if has_events {
                committed.notify_one();
            }
            let mut it = stored.into_iter();
            for (n, reply) in counts.into_iter().zip(replies) {
                let part: Vec<Stored> = it.by_ref().take(n).collect();
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(part));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = total, "stamp group commit failed");
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(e.shared_copy()));
            }
        }
    }
}
