//! The DLQ monitor: records every message of every DLQ topic (`<topic>.dlq` and the codegen DLQ
//! topics), counts them per topic in a sliding window and in total (from the stored records, so all
//! instances agree), alerts when a topic reaches `dlq.alert_threshold` within `dlq.window_secs`
//! (critical log, Prometheus counter, optional webhook, `dlq_alerts` row) at most once per
//! `dlq.cooldown_secs` per topic, and redrives records back to their original topic. It also shows and
//! redrives the outbox rows the relay quarantined (`event_outbox_dead`: events that never reached a
//! topic, so no Kafka DLQ holds them).
//!
//! A malformed DLQ record (no Kafka Connect headers, not UTF-8) is stored and counted like any other;
//! the monitor never dead-letters and never stops on one.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::config::DlqSettings;
use crate::kafka::consumer::{BatchHandler, HandlerError, Incoming, Poison, PoisonPolicy};
use crate::kafka::producer::{KafkaPublisher, OutgoingMessage};
use crate::store::dlq::{self as store, DlqAlertRow, DlqRecordRow, TopicCounts};
use crate::store::outbox::{self, DeadOutboxRow};
use crate::store::sql_types::{DbJson, DbTs, DbUuid};
use crate::store::{Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("redrive needs Kafka (kafka.brokers is empty)")]
    NoKafka,
    #[error("publishing the redriven records failed: {0}")]
    Publish(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct DlqMonitor {
    db: Db,
    settings: DlqSettings,
    http: reqwest::Client,
    publisher: Option<KafkaPublisher>,
}

/// Records loaded, claimed and published at once by a redrive.
pub const REDRIVE_BATCH: i64 = 100;

const CONNECT_PREFIX: &str = "__connect.errors.";

/// The stored form of a DLQ message: the original value and headers, and what the Kafka Connect
/// headers say about where it came from and why it failed.
pub fn record_from(msg: &Incoming) -> DlqRecordRow {
    // Stored as text: NUL cannot be (PostgreSQL), so it becomes U+FFFD.
    let text_of = |b: &[u8]| String::from_utf8_lossy(b).replace('\0', "\u{FFFD}");
    let mut headers = Map::new();
    if let Some(h) = &msg.headers {
        for h in h.iter() {
            let v = h.value.map(text_of);
            headers.insert(
                h.key.replace('\0', "\u{FFFD}"),
                v.map(Value::String).unwrap_or(Value::Null),
            );
        }
    }
    let text = |k: &str| {
        headers
            .get(&format!("{CONNECT_PREFIX}{k}"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    DlqRecordRow {
        id: DbUuid(Uuid::new_v4()),
        dlq_topic: msg.topic.clone(),
        dlq_partition: msg.partition,
        dlq_offset: msg.offset,
        original_topic: text("topic"),
        original_partition: text("partition").and_then(|p| p.parse().ok()),
        original_offset: text("offset").and_then(|p| p.parse().ok()),
        message_key: msg.key.as_deref().map(text_of),
        message_value: msg.value.as_deref().map(text_of),
        error_class: text("exception.class.name").or_else(|| Some("unknown".into())),
        error_message: text("exception.message")
            .or_else(|| Some("DLQ record without Kafka Connect error headers".into())),
        headers: DbJson(Value::Object(headers)),
        // The time the message was dead-lettered (Kafka timestamp), so a backlog read late does not
        // look like a burst inside the current window.
        received_at: DbTs(
            msg.timestamp_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .unwrap_or_else(Utc::now),
        ),
        redriven_at: None,
    }
}

/// The original headers of a stored record, without the dead-letter ones (for a redrive).
pub fn original_headers(stored: &Value) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(map) = stored.as_object() {
        for (k, v) in map {
            if k.starts_with(CONNECT_PREFIX) {
                continue;
            }
            out = out.insert(Header {
                key: k,
                value: v.as_str(),
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedriveOutcome {
    pub matched: usize,
    pub redriven: usize,
    /// Records without an original topic (malformed), left in place.
    pub skipped: usize,
}

impl DlqMonitor {
    pub fn new(db: Db, settings: DlqSettings, publisher: Option<KafkaPublisher>) -> Self {
        DlqMonitor {
            db,
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            publisher,
        }
    }

    pub fn settings(&self) -> &DlqSettings {
        &self.settings
    }

    fn window_start(&self) -> chrono::DateTime<Utc> {
        Utc::now() - chrono::Duration::seconds(self.settings.window_secs as i64)
    }

    pub async fn counts(&self, topic: &str) -> Result<TopicCounts, StoreError> {
        store::counts(&self.db, topic, self.window_start()).await
    }

    pub async fn all_counts(&self) -> Result<Vec<TopicCounts>, StoreError> {
        let mut out = Vec::new();
        for t in store::topics(&self.db).await? {
            out.push(self.counts(&t).await?);
        }
        Ok(out)
    }

    /// Store records and alert where a topic crossed the threshold.
    pub async fn ingest(&self, records: &[DlqRecordRow]) -> Result<usize, StoreError> {
        let new = store::insert_records(&self.db, records).await?;
        let topics: BTreeSet<&str> = records.iter().map(|r| r.dlq_topic.as_str()).collect();
        for r in records {
            metrics::counter!("dlq_messages_total", "topic" => r.dlq_topic.clone()).increment(1);
        }
        for topic in topics {
            self.check_alert(topic).await?;
        }
        Ok(new)
    }

    async fn check_alert(&self, topic: &str) -> Result<(), StoreError> {
        let counts = self.counts(topic).await?;
        metrics::gauge!("dlq_window_count", "topic" => topic.to_owned())
            .set(counts.in_window as f64);
        if counts.in_window < self.settings.alert_threshold as i64 {
            return Ok(());
        }
        let now = Utc::now();
        let cooldown = chrono::Duration::seconds(self.settings.cooldown_secs as i64);
        if !store::claim_alert(&self.db, topic, now, cooldown).await? {
            return Ok(());
        }
        let alert = DlqAlertRow {
            id: DbUuid(Uuid::new_v4()),
            dlq_topic: topic.to_owned(),
            count: counts.in_window,
            threshold: self.settings.alert_threshold as i64,
            recent_error: counts.recent_error.clone(),
            created_at: DbTs(now),
        };
        store::insert_alert(&self.db, &alert).await?;
        metrics::counter!("dlq_alerts_total", "topic" => topic.to_owned()).increment(1);
        tracing::error!(
            severity = "critical",
            topic,
            count = counts.in_window,
            threshold = self.settings.alert_threshold,
            recent_error = counts.recent_error.as_deref().unwrap_or(""),
            "DLQ threshold exceeded"
        );
        if !self.settings.webhook_url.is_empty() {
            let body = json!({
                "alert_type": "dlq_threshold_exceeded",
                "topic": topic,
                "count": counts.in_window,
                "threshold": self.settings.alert_threshold,
                "recent_error": counts.recent_error,
                "timestamp": crate::stamping::core::format_timestamp(now),
                "severity": "critical",
            });
            match self
                .http
                .post(&self.settings.webhook_url)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    "DLQ webhook answered with an error"
                ),
                Err(e) => tracing::warn!(error = %e, "DLQ webhook failed"),
            }
        }
        Ok(())
    }

    /// Send pending records (by id, or all of a topic) back to their original topic with their
    /// original key, value and headers — so the `event_id` inside is unchanged and consumers drop
    /// anything they already processed. `dry_run` only counts.
    pub async fn redrive(
        &self,
        ids: Option<&[Uuid]>,
        topic: Option<&str>,
        limit: i64,
        dry_run: bool,
    ) -> Result<RedriveOutcome, DlqError> {
        if !dry_run && self.publisher.is_none() {
            return Err(DlqError::NoKafka);
        }
        let mut out = RedriveOutcome {
            matched: 0,
            redriven: 0,
            skipped: 0,
        };
        // In batches of REDRIVE_BATCH records, so a redrive of `limit` records never holds more
        // than one batch of message values in memory. Claimed records stop being pending; what
        // stays pending ahead of the next batch is what was skipped (or, on a dry run, seen).
        let mut offset = 0i64;
        while (out.matched as i64) < limit {
            let page = (limit - out.matched as i64).min(REDRIVE_BATCH);
            let (rows, _) = store::list(&self.db, topic, ids, true, page, offset).await?;
            if rows.is_empty() {
                break;
            }
            let n = rows.len();
            let batch = self.redrive_batch(&rows, dry_run).await?;
            out.matched += n;
            out.redriven += batch.redriven;
            out.skipped += batch.skipped;
            offset += if dry_run {
                n as i64
            } else {
                // Skipped rows stay pending; so do rows another redrive claimed in between (not
                // pending any more, so they do not count here).
                batch.skipped as i64
            };
            if (n as i64) < page {
                break;
            }
        }
        if out.redriven > 0 {
            metrics::counter!("dlq_redriven_total").increment(out.redriven as u64);
        }
        Ok(out)
    }

    /// Claim and publish one batch of pending records (or just sort them, on a dry run).
    async fn redrive_batch(
        &self,
        rows: &[DlqRecordRow],
        dry_run: bool,
    ) -> Result<RedriveOutcome, DlqError> {
        let (ready, skipped): (Vec<&DlqRecordRow>, Vec<&DlqRecordRow>) =
            rows.iter().partition(|r| r.original_topic.is_some());
        if dry_run {
            return Ok(RedriveOutcome {
                matched: rows.len(),
                redriven: 0,
                skipped: skipped.len(),
            });
        }
        let publisher = self.publisher.as_ref().ok_or(DlqError::NoKafka)?;
        let candidates: Vec<Uuid> = ready.iter().map(|r| r.id.0).collect();
        let claimed: std::collections::HashSet<Uuid> =
            store::claim_for_redrive(&self.db, &candidates, Utc::now())
                .await?
                .into_iter()
                .collect();
        let mine: Vec<&DlqRecordRow> = ready
            .iter()
            .copied()
            .filter(|r| claimed.contains(&r.id.0))
            .collect();
        let messages: Vec<OutgoingMessage<'_>> = mine
            .iter()
            .rev() // oldest first, as they failed
            .map(|r| OutgoingMessage {
                topic: r.original_topic.as_deref().unwrap_or_default(),
                key: r.message_key.as_deref().unwrap_or_default(),
                value: r.message_value.as_deref().unwrap_or_default().as_bytes(),
                headers: original_headers(&r.headers.0),
            })
            .collect();
        let ids: Vec<Uuid> = mine.iter().map(|r| r.id.0).collect();
        if let Err(e) = publisher.send_all(messages).await {
            store::release_redrive(&self.db, &ids).await?;
            return Err(DlqError::Publish(e.to_string()));
        }
        Ok(RedriveOutcome {
            matched: rows.len(),
            redriven: ids.len(),
            skipped: skipped.len(),
        })
    }

    pub async fn reset(&self, topic: Option<&str>) -> Result<Vec<String>, StoreError> {
        let topics = match topic {
            Some(t) => vec![t.to_owned()],
            None => store::topics(&self.db).await?,
        };
        store::reset(&self.db, &topics, Utc::now()).await?;
        Ok(topics)
    }

    pub async fn recent_alerts(&self, limit: i64) -> Result<Vec<DlqAlertRow>, StoreError> {
        store::recent_alerts(&self.db, limit).await
    }

    /// Outbox rows quarantined by the relay (newest first, at most `limit`) and how many there are.
    pub async fn outbox_dead(&self, limit: i64) -> Result<(Vec<DeadOutboxRow>, i64), StoreError> {
        let rows = outbox::dead_recent(&self.db, limit).await?;
        let total = outbox::dead_count(&self.db).await?;
        Ok((rows, total))
    }

    /// Move quarantined outbox rows back into the outbox (the oldest `limit`, or only `seqs`), after
    /// whatever refused them was fixed; the relay publishes them within a second. A row that still
    /// cannot be published is quarantined again. Returns (moved, still quarantined).
    pub async fn redrive_outbox(
        &self,
        seqs: Option<&[i64]>,
        limit: i64,
    ) -> Result<(usize, i64), StoreError> {
        let moved = outbox::redrive_dead(&self.db, seqs, limit).await?;
        metrics::counter!("outbox_redriven_total").increment(moved as u64);
        let remaining = outbox::dead_count(&self.db).await?;
        metrics::gauge!("outbox_dead_events").set(remaining as f64);
        Ok((moved, remaining))
    }

    pub async fn messages(
        &self,
        topic: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DlqRecordRow>, i64), StoreError> {
        store::list(&self.db, topic, None, false, limit, offset).await
    }
}

/// The monitor as a consumer-group handler: every record is stored, none is poison.
impl BatchHandler for DlqMonitor {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<(usize, Poison)>, HandlerError>> + Send {
        let records: Vec<DlqRecordRow> = batch.iter().map(record_from).collect();
        let monitor = self.clone();
        async move {
            monitor.ingest(&records).await.map_err(HandlerError::from)?;
            Ok(Vec::new())
        }
    }

    /// A dead letter is never dead-lettered again: one the store refuses for good is skipped and
    /// counted once isolated, so the DLQ topics keep being monitored.
    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_connect_headers_and_tolerates_malformed_records() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event_type",
                value: Some("metadata-stamp-created"),
            })
            .insert(Header {
                key: "__connect.errors.topic",
                value: Some("dev.x.v1"),
            })
            .insert(Header {
                key: "__connect.errors.partition",
                value: Some("2"),
            })
            .insert(Header {
                key: "__connect.errors.offset",
                value: Some("41"),
            })
            .insert(Header {
                key: "__connect.errors.exception.class.name",
                value: Some("omninode.bridge.NotJsonError"),
            })
            .insert(Header {
                key: "__connect.errors.exception.message",
                value: Some("expected value"),
            });
        let msg = Incoming {
            topic: "dev.x.v1.dlq".into(),
            partition: 0,
            offset: 7,
            key: Some(b"k".to_vec()),
            value: Some(b"garbage".to_vec()),
            headers: Some(headers),
            timestamp_ms: Some(1_700_000_000_000),
        };
        let r = record_from(&msg);
        assert_eq!(r.received_at.0.timestamp(), 1_700_000_000);
        assert_eq!(r.original_topic.as_deref(), Some("dev.x.v1"));
        assert_eq!(r.original_partition, Some(2));
        assert_eq!(r.original_offset, Some(41));
        assert_eq!(
            r.error_class.as_deref(),
            Some("omninode.bridge.NotJsonError")
        );
        let back = original_headers(&r.headers.0);
        let keys: Vec<&str> = back.iter().map(|h| h.key).collect();
        assert_eq!(keys, ["event_type"]);

        let bare = Incoming {
            headers: None,
            value: Some(vec![0xff, 0xfe, 0x00]),
            ..msg
        };
        let r = record_from(&bare);
        assert!(!r.message_value.as_deref().unwrap().contains('\0'));
        assert_eq!(r.original_topic, None);
        assert_eq!(r.error_class.as_deref(), Some("unknown"));
        assert!(r.message_value.is_some());
    }
}
