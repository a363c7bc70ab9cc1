//! The workflow engine: runs a contract's steps wave by wave (steps of a wave concurrently), with
//! per-step retry (exponential backoff with jitter) and timeout and a whole-workflow timeout, through
//! the FSM `pending → processing → completed | failed`. Every transition and step is persisted with its
//! events (outbox). Workflows are leased to an instance; unfinished workflows whose lease expired
//! (crash, or another instance died) are taken over and resumed from their last completed step.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::contract::{Contract, Step};
use crate::events::topics::EventKind;
use crate::events::{EventFactory, TraceContext};
use crate::intelligence::OnexTreeClient;
use crate::stamping::core::{self, StampType};
use crate::stamping::namespace::Namespace;
use crate::stamping::{StampCommand, StampingService};
use crate::store::sql_types::{DbJson, DbTs, DbUuid};
use crate::store::workflows::{self as store, StepRow, TransitionWrite, WorkflowRow};
use crate::store::{Db, StoreError};

/// What a workflow is asked to do (stored as the execution's `input`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkflowInput {
    pub content: String,
    pub file_path: Option<String>,
    pub content_type: Option<String>,
    pub namespace: String,
    pub stamp_type: String,
    pub enable_intelligence: bool,
    pub intelligence_context: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("unknown contract {0:?}")]
    UnknownContract(String),
    /// Admission control: `capacity` workflows are already queued or running on this instance.
    #[error("{capacity} workflows are already queued or running; retry shortly")]
    QueueFull { capacity: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct WorkflowEngine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    stamping: StampingService,
    intelligence: Option<Arc<OnexTreeClient>>,
    events: EventFactory,
    contracts: HashMap<String, Contract>,
    slots: Semaphore,
    lease: Duration,
    owner: String,
    running: Mutex<HashSet<Uuid>>,
    /// Admitted on this instance and not finished (queued for a slot or running): their leases are
    /// renewed while they wait, so recovery never takes a queued workflow over. Never larger than
    /// `capacity`.
    held: Mutex<HashSet<Uuid>>,
    /// `concurrency` + `workflow.queue_capacity`.
    capacity: usize,
}

/// A workflow's place in this instance's admission queue; dropping it frees the place.
pub struct Ticket {
    inner: Arc<Inner>,
    id: Uuid,
}

impl Ticket {
    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Recovery claims expired workflows in batches of at most this many.
pub const CLAIM_BATCH: usize = 100;

impl WorkflowEngine {
    pub fn new(
        db: Db,
        stamping: StampingService,
        intelligence: Option<Arc<OnexTreeClient>>,
        events: EventFactory,
        contracts: Vec<Contract>,
        concurrency: usize,
        lease: Duration,
    ) -> Self {
        let owner = format!(
            "{}-{}",
            events.source_instance,
            &Uuid::new_v4().simple().to_string()[..8]
        );
        WorkflowEngine {
            inner: Arc::new(Inner {
                db,
                stamping,
                intelligence,
                events,
                contracts: contracts.into_iter().map(|c| (c.name.clone(), c)).collect(),
                slots: Semaphore::new(concurrency.max(1)),
                lease,
                owner,
                running: Mutex::new(Default::default()),
                held: Mutex::new(Default::default()),
                capacity: usize::MAX,
            }),
        }
    }

    /// Admission control: at most `concurrency + queue_capacity` workflows queued or running on this
    /// instance at once (see [`Self::submit`]). Call before the engine is shared.
    pub fn with_queue_capacity(mut self, queue_capacity: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.capacity = inner
                .slots
                .available_permits()
                .saturating_add(queue_capacity);
        }
        self
    }

    /// Workflows queued or running on this instance (admitted and not finished).
    pub fn held(&self) -> usize {
        self.inner.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// A place in the admission queue for a new workflow id, or `QueueFull`.
    fn admit(&self) -> Result<Ticket, WorkflowError> {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= self.inner.capacity {
            metrics::counter!("workflows_refused_total").increment(1);
            return Err(WorkflowError::QueueFull {
                capacity: self.inner.capacity,
            });
        }
        let id = Uuid::new_v4();
        held.insert(id);
        Ok(Ticket {
            inner: self.inner.clone(),
            id,
        })
    }

    /// Admit and create a workflow: refused with `QueueFull` before anything is stored when this
    /// instance already holds its capacity. Run it with [`Self::run_admitted`]; until the ticket is
    /// dropped, its lease is renewed (it is never taken over while it waits for a slot).
    pub async fn submit(
        &self,
        contract: &str,
        input: WorkflowInput,
        correlation_id: Option<Uuid>,
    ) -> Result<(WorkflowRow, Ticket), WorkflowError> {
        if !self.inner.contracts.contains_key(contract) {
            return Err(WorkflowError::UnknownContract(contract.to_owned()));
        }
        let ticket = self.admit()?;
        let row = self
            .create_with_id(ticket.id, contract, input, correlation_id)
            .await?;
        Ok((row, ticket))
    }

    /// Run an admitted workflow, then free its place.
    pub async fn run_admitted(&self, ticket: Ticket) -> Result<(), WorkflowError> {
        let r = self.run(ticket.id).await;
        drop(ticket);
        r
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Create a workflow (state `pending`, leased to this instance) without admission control. Run it
    /// with [`Self::run`].
    pub async fn create(
        &self,
        contract: &str,
        input: WorkflowInput,
        correlation_id: Option<Uuid>,
    ) -> Result<WorkflowRow, WorkflowError> {
        if !self.inner.contracts.contains_key(contract) {
            return Err(WorkflowError::UnknownContract(contract.to_owned()));
        }
        self.create_with_id(Uuid::new_v4(), contract, input, correlation_id)
            .await
    }

    async fn create_with_id(
        &self,
        id: Uuid,
        contract: &str,
        input: WorkflowInput,
        correlation_id: Option<Uuid>,
    ) -> Result<WorkflowRow, WorkflowError> {
        let now = Utc::now();
        let row = WorkflowRow {
            id: DbUuid(id),
            correlation_id: DbUuid(correlation_id.unwrap_or(id)),
            contract: contract.to_owned(),
            namespace: input.namespace.clone(),
            state: "pending".into(),
            input: DbJson(serde_json::to_value(&input).unwrap_or(Value::Null)),
            result: None,
            error: None,
            lease_owner: Some(self.inner.owner.clone()),
            lease_expires_at: Some(DbTs(
                now + chrono::Duration::from_std(self.inner.lease).unwrap_or_default(),
            )),
            created_at: DbTs(now),
            updated_at: DbTs(now),
            completed_at: None,
        };
        store::insert(&self.inner.db, &row).await?;
        metrics::counter!("workflows_created_total").increment(1);
        Ok(row)
    }

    fn envelope(
        &self,
        kind: EventKind,
        wf: &WorkflowRow,
        payload: Value,
    ) -> crate::store::outbox::NewOutboxEvent {
        let trace = TraceContext {
            correlation_id: Some(wf.correlation_id.0),
            ..Default::default()
        };
        let env =
            self.inner
                .events
                .envelope(kind, trace, Some(wf.correlation_id.0.to_string()), payload);
        self.inner.events.outbox_row(kind, &env)
    }

    async fn transition(
        &self,
        wf: &WorkflowRow,
        from: &str,
        to: &str,
        trigger: &str,
        write: TransitionWrite,
        mut extra: Vec<crate::store::outbox::NewOutboxEvent>,
    ) -> Result<bool, StoreError> {
        let contract = &self.inner.contracts[&wf.contract];
        if contract.fsm.transition(from, to).is_err() {
            return Err(StoreError::Failed(format!(
                "illegal workflow transition {from} → {to}"
            )));
        }
        // The event that names the change (started/completed/failed) first, then the transition.
        extra.push(self.envelope(
            EventKind::WorkflowStateTransition,
            wf,
            json!({"workflow_id": wf.id.0, "from_state": from, "to_state": to, "trigger": trigger, "namespace": wf.namespace}),
        ));
        let events = extra;
        let moved =
            store::transition(&self.inner.db, wf.id.0, from, to, trigger, write, events).await?;
        if moved {
            self.inner.stamping_committed();
        }
        Ok(moved)
    }

    /// Run (or resume) a workflow to a terminal state. Returns the final row.
    pub async fn run(&self, id: Uuid) -> Result<(), WorkflowError> {
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Failed("engine stopped".into()))?;
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(id) {
                return Ok(()); // already running here
            }
        }
        let result = self.run_inner(id).await;
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        result
    }

    async fn run_inner(&self, id: Uuid) -> Result<(), WorkflowError> {
        let Some((wf, steps, _)) = store::get(&self.inner.db, id).await? else {
            return Ok(());
        };
        let contract = self
            .inner
            .contracts
            .get(&wf.contract)
            .ok_or_else(|| WorkflowError::UnknownContract(wf.contract.clone()))?
            .clone();
        if contract.fsm.is_terminal(&wf.state) {
            return Ok(());
        }
        let input: WorkflowInput = match serde_json::from_value(wf.input.0.clone()) {
            Ok(i) => i,
            Err(e) => {
                self.fail(
                    &wf,
                    &wf.state.clone(),
                    &format!("unreadable workflow input: {e}"),
                )
                .await?;
                return Ok(());
            }
        };
        if wf.state == "pending" {
            let started = self.envelope(
                EventKind::StampWorkflowStarted,
                &wf,
                json!({"workflow_id": wf.id.0, "namespace": wf.namespace, "contract": wf.contract}),
            );
            self.transition(
                &wf,
                "pending",
                "processing",
                "started",
                TransitionWrite::default(),
                vec![started],
            )
            .await?;
        }
        let mut outputs: HashMap<String, Value> = steps
            .iter()
            .filter(|s| s.status == "completed" || s.status == "skipped")
            .map(|s| {
                (
                    s.name.clone(),
                    s.output
                        .as_ref()
                        .map(|o| o.0.clone())
                        .unwrap_or(Value::Null),
                )
            })
            .collect();
        let deadline = Instant::now() + Duration::from_millis(contract.timeout_ms);
        for wave in &contract.waves {
            let todo: Vec<&Step> = wave
                .iter()
                .map(|&i| &contract.steps[i])
                .filter(|s| !outputs.contains_key(&s.name))
                .collect();
            let futures = todo
                .iter()
                .map(|step| self.run_step(&wf, &input, step, &outputs, deadline));
            let results = futures_util::future::join_all(futures).await;
            for (step, r) in todo.iter().zip(results) {
                match r {
                    Ok(out) => {
                        outputs.insert(step.name.clone(), out);
                    }
                    Err(e) => {
                        self.fail(
                            &wf,
                            "processing",
                            &format!("step {} failed: {e}", step.name),
                        )
                        .await?;
                        return Ok(());
                    }
                }
            }
        }
        let result = json!({
            "workflow_id": wf.id.0,
            "stamp": outputs.get("stamp_creation"),
            "hash": outputs.get("hash_generation"),
            "intelligence": outputs.get("onextree_intelligence"),
            "steps_completed": outputs.len(),
        });
        let completed = self.envelope(
            EventKind::StampWorkflowCompleted,
            &wf,
            json!({"workflow_id": wf.id.0, "namespace": wf.namespace,
                   "file_hash": outputs.get("hash_generation").and_then(|h| h.get("file_hash")),
                   "stamp_id": outputs.get("stamp_creation").and_then(|s| s.get("stamp_id"))}),
        );
        self.transition(
            &wf,
            "processing",
            "completed",
            "all_steps_completed",
            TransitionWrite {
                result: Some(result),
                error: None,
                terminal: true,
            },
            vec![completed],
        )
        .await?;
        metrics::counter!("workflows_completed_total").increment(1);
        Ok(())
    }

    async fn fail(&self, wf: &WorkflowRow, from: &str, reason: &str) -> Result<(), StoreError> {
        let failed = self.envelope(
            EventKind::StampWorkflowFailed,
            wf,
            json!({"workflow_id": wf.id.0, "namespace": wf.namespace, "error": reason}),
        );
        let from = if from == "pending" {
            "pending"
        } else {
            "processing"
        };
        self.transition(
            wf,
            from,
            "failed",
            "error",
            TransitionWrite {
                result: None,
                error: Some(reason.to_owned()),
                terminal: true,
            },
            vec![failed],
        )
        .await?;
        metrics::counter!("workflows_failed_total").increment(1);
        Ok(())
    }

    async fn run_step(
        &self,
        wf: &WorkflowRow,
        input: &WorkflowInput,
        step: &Step,
        done: &HashMap<String, Value>,
        deadline: Instant,
    ) -> Result<Value, String> {
        let started_at = Utc::now();
        let started = Instant::now();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break Err("workflow timeout".to_owned());
            }
            let limit = Duration::from_millis(step.timeout_ms).min(remaining);
            let r = match tokio::time::timeout(limit, self.execute(wf, input, step, done)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {} ms", limit.as_millis())),
            };
            match r {
                Ok(v) => break Ok(v),
                Err(e) if attempt < step.retry.max_attempts => {
                    let base = step.retry.backoff_ms(attempt + 1);
                    let jitter = rand::random::<u64>() % (base / 4 + 1);
                    tracing::debug!(step = %step.name, attempt, error = %e, "step failed; retrying");
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                Err(e) => break Err(e),
            }
        };
        let (status, output, error) = match &outcome {
            Ok(v) => ("completed", Some(v.clone()), None),
            Err(e) if step.optional => (
                "skipped",
                Some(json!({"degraded": true, "reason": e})),
                Some(e.clone()),
            ),
            Err(e) => ("failed", None, Some(e.clone())),
        };
        let row = StepRow {
            workflow_id: wf.id,
            name: step.name.clone(),
            status: status.into(),
            attempts: attempt as i32,
            duration_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            error: error.clone(),
            output: output.clone().map(DbJson),
            started_at: Some(DbTs(started_at)),
            completed_at: Some(DbTs(Utc::now())),
        };
        let event = self.envelope(
            EventKind::WorkflowStepCompleted,
            wf,
            json!({"workflow_id": wf.id.0, "step": step.name, "status": status, "attempts": attempt,
                   "processing_time_ms": row.duration_ms, "error": error}),
        );
        if let Err(e) = store::save_step(&self.inner.db, &row, vec![event]).await {
            return Err(format!("could not record step: {e}"));
        }
        self.inner.stamping_committed();
        match outcome {
            Ok(v) => Ok(v),
            Err(_) if step.optional => Ok(output.unwrap_or(Value::Null)),
            Err(e) => Err(e),
        }
    }

    async fn execute(
        &self,
        wf: &WorkflowRow,
        input: &WorkflowInput,
        step: &Step,
        done: &HashMap<String, Value>,
    ) -> Result<Value, String> {
        let emit = |kind: EventKind, payload: Value| {
            let db = self.inner.db.clone();
            let row = self.envelope(kind, wf, payload);
            async move {
                crate::store::outbox::insert(&db, vec![row])
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match step.kind.as_str() {
            "validate_input" => {
                Namespace::parse(&input.namespace).map_err(|e| e.to_string())?;
                self.inner
                    .stamping
                    .check_content_size("content", &input.content)
                    .map_err(|e| e.to_string())?;
                StampType::parse(&input.stamp_type)
                    .ok_or_else(|| format!("unknown stamp type {}", input.stamp_type))?;
                Ok(json!({"content_bytes": input.content.len()}))
            }
            "hash_generation" => {
                let t = Instant::now();
                let h = core::canonical_hash(&input.content);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                emit(EventKind::Blake3HashGenerated, json!({"workflow_id": wf.id.0, "file_hash": h.hash, "canonical_size": h.canonical_len, "processing_time_ms": ms})).await?;
                Ok(
                    json!({"file_hash": h.hash, "canonical_size": h.canonical_len, "hash_time_ms": ms}),
                )
            }
            "onextree_intelligence" => {
                let (Some(client), true) = (&self.inner.intelligence, input.enable_intelligence)
                else {
                    return Ok(
                        json!({"degraded": true, "reason": if input.enable_intelligence { "intelligence service not configured" } else { "not requested" }, "confidence": 0.0}),
                    );
                };
                let context = input
                    .intelligence_context
                    .clone()
                    .unwrap_or_else(|| input.file_path.clone().unwrap_or_default());
                emit(
                    EventKind::OnextreeIntelligenceRequested,
                    json!({"workflow_id": wf.id.0, "context": context}),
                )
                .await?;
                let r = client.intelligence(&context, true, true).await;
                emit(EventKind::OnextreeIntelligenceReceived, json!({"workflow_id": wf.id.0, "confidence": r.confidence, "degraded": r.degraded})).await?;
                // A required intelligence step fails (and is retried) on a degraded answer; an
                // optional one keeps the degraded result and the workflow goes on.
                if r.degraded && !step.optional {
                    return Err(r
                        .reason
                        .unwrap_or_else(|| "intelligence unavailable".into()));
                }
                Ok(r.to_json())
            }
            "stamp_creation" => {
                let mut metadata = input.metadata.clone();
                metadata.insert("workflow_id".into(), json!(wf.id.0));
                if let Some(ct) = &input.content_type {
                    metadata.entry("content_type").or_insert(json!(ct));
                }
                let cmd = StampCommand {
                    content: input.content.clone(),
                    file_path: input.file_path.clone(),
                    namespace: Namespace::parse(&input.namespace).map_err(|e| e.to_string())?,
                    stamp_type: StampType::parse(&input.stamp_type)
                        .unwrap_or(StampType::Lightweight),
                    metadata,
                    protocol_version: None,
                };
                let trace = TraceContext {
                    correlation_id: Some(wf.correlation_id.0),
                    ..Default::default()
                };
                let o = self
                    .inner
                    .stamping
                    .stamp(cmd, &trace)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(
                    json!({"stamp_id": o.record.id, "file_hash": o.rendered.hash, "stamp": o.rendered.stamp,
                          "stamped_content": o.rendered.stamped_content, "created": o.created, "namespace": o.record.namespace}),
                )
            }
            "persist" => {
                let stamp_id = done
                    .get("stamp_creation")
                    .and_then(|s| s.get("stamp_id"))
                    .and_then(|v| v.as_str())
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or("no stamp to persist")?;
                if let Some(intel) = done.get("onextree_intelligence") {
                    store::set_stamp_intelligence(&self.inner.db, stamp_id, intel.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(json!({"stamp_id": stamp_id, "persisted": true}))
            }
            "complete" => {
                Ok(json!({"completed_at": crate::stamping::core::format_timestamp(Utc::now())}))
            }
            other => Err(format!("unknown step kind {other}")),
        }
    }

    /// Renew the leases of the workflows this instance holds (queued or running), then take over
    /// unfinished workflows whose lease expired, in batches of [`CLAIM_BATCH`], as long as this
    /// instance has room for them in its admission queue; run them.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.inner.lease).unwrap_or_default();
        let mut mine: HashSet<Uuid> = self
            .inner
            .running
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        mine.extend(
            self.inner
                .held
                .lock()
                .map(|h| h.iter().copied().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        let mine: Vec<Uuid> = mine.into_iter().collect();
        store::renew_leases(&self.inner.db, &self.inner.owner, &mine, until).await?;
        let mut total = 0;
        loop {
            let room = self.inner.capacity.saturating_sub(self.held());
            let batch = room.min(CLAIM_BATCH);
            if batch == 0 {
                break;
            }
            let claimed =
                store::claim_expired(&self.inner.db, &self.inner.owner, now, until, batch as i64)
                    .await?;
            total += claimed.len();
            for wf in &claimed {
                let ticket = {
                    let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
                    if !held.insert(wf.id.0) {
                        continue; // already queued or running here
                    }
                    Ticket {
                        inner: self.inner.clone(),
                        id: wf.id.0,
                    }
                };
                tracing::info!(workflow_id = %wf.id.0, state = %wf.state, "resuming workflow");
                let engine = self.clone();
                let id = wf.id.0;
                tokio::spawn(async move {
                    if let Err(e) = engine.run_admitted(ticket).await {
                        tracing::warn!(workflow_id = %id, error = %e, "resumed workflow failed to run");
                    }
                });
            }
            if claimed.len() < batch {
                break;
            }
        }
        Ok(total)
    }

    /// Recovery loop: at start, then every third of the lease (renewal and takeover).
    pub async fn run_recovery(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.recover().await {
                tracing::warn!(error = %e, "workflow recovery failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.inner.lease / 3) => {}
            }
        }
    }
}

impl Inner {
    /// Wake the outbox relay (events were committed).
    fn stamping_committed(&self) {
        self.stamping.notify_committed();
    }
}
