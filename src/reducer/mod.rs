//! The reducer: keeps exact per-namespace aggregates in `bridge_states` from stamp (and workflow)
//! events. Pure logic in `core` and `fsm`; this file runs it: batching, optimistic-locking retries,
//! idempotency (processed event ids), and the reducer's own events.
//!
//! Inputs: embedded profile — envelopes handed over by the outbox relay after it published them, plus a
//! catch-up from `event_logs` at start (events recorded but not yet aggregated when the process
//! stopped); production — the Kafka consumer group `<kafka.consumer_group>.reducer` on the stamp topics,
//! keyed by namespace.

pub mod core;
pub mod fsm;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::ReducerSettings;
use crate::events::envelope::OnexEnvelopeV1;
use crate::events::topics::EventKind;
use crate::events::EventFactory;
use crate::kafka::consumer::{BatchHandler, HandlerError, Incoming, Poison, PoisonPolicy};
use crate::store::outbox::NewOutboxEvent;
use crate::store::reducer::{self as store, Applied, ApplyError};
use crate::store::{Db, StoreError};
use core::{fact_from_envelope, StampFact};

const MAX_CONFLICT_RETRIES: u32 = 20;

#[derive(Clone)]
pub struct Reducer {
    db: Db,
    events: EventFactory,
    settings: ReducerSettings,
    committed: Arc<Notify>,
}

impl Reducer {
    pub fn new(
        db: Db,
        events: EventFactory,
        settings: ReducerSettings,
        committed: Arc<Notify>,
    ) -> Self {
        Reducer {
            db,
            events,
            settings,
            committed,
        }
    }

    fn outbox_events(&self, applied: &Applied, batch_id: uuid::Uuid) -> Vec<NewOutboxEvent> {
        let mut out = Vec::new();
        let mut push = |kind: EventKind, key: Option<String>, payload: serde_json::Value| {
            let env = self.events.envelope(kind, Some(batch_id), key, payload);
            out.push(self.events.outbox_row(kind, &env));
        };
        let namespaces: Vec<_> = applied
            .aggregates
            .iter()
            .map(|a| a.namespace.clone())
            .collect();
        push(
            EventKind::AggregationStarted,
            None,
            json!({"batch_id": batch_id, "namespaces": namespaces}),
        );
        // One state-persisted event per batch (not per namespace): its payload lists every
        // namespace's new totals and version.
        push(
            EventKind::StatePersisted,
            None,
            json!({
                "batch_id": batch_id,
                "states": applied.aggregates.iter().map(|a| json!({
                    "namespace": a.namespace,
                    "total_stamps": a.total_stamps,
                    "total_bytes": a.total_bytes,
                    "version": a.version,
                    "fsm_state": a.fsm_state,
                })).collect::<Vec<_>>(),
            }),
        );
        push(
            EventKind::BatchProcessed,
            None,
            json!({"batch_id": batch_id, "items": applied.counted, "namespaces": applied.aggregates.len()}),
        );
        push(
            EventKind::AggregationCompleted,
            None,
            json!({"batch_id": batch_id, "items": applied.counted}),
        );
        out
    }

    /// Aggregate `facts` in batches of `reducer.batch_size`; each batch is one transaction, retried on
    /// optimistic-locking conflicts. Returns how many facts were new.
    pub async fn apply(&self, facts: &[StampFact]) -> Result<usize, StoreError> {
        let window = chrono::Duration::seconds(self.settings.window_secs as i64);
        let mut counted = 0;
        for batch in core::batches(facts, self.settings.batch_size) {
            let batch_id = uuid::Uuid::new_v4();
            let events_for = |a: &Applied| {
                if a.counted == 0 {
                    Vec::new()
                } else {
                    self.outbox_events(a, batch_id)
                }
            };
            let mut attempt = 0;
            loop {
                match store::apply_facts(&self.db, batch, window, &events_for).await {
                    Ok(applied) => {
                        counted += applied.counted;
                        metrics::counter!("reducer_items_total").increment(applied.counted as u64);
                        metrics::counter!("reducer_batches_total").increment(1);
                        if applied.counted > 0 {
                            self.committed.notify_one();
                        }
                        break;
                    }
                    Err(ApplyError::Conflict(ns)) if attempt < MAX_CONFLICT_RETRIES => {
                        attempt += 1;
                        metrics::counter!("reducer_conflicts_total").increment(1);
                        tracing::debug!(namespace = %ns, attempt, "optimistic locking conflict; retrying batch");
                        tokio::time::sleep(Duration::from_millis(2 * attempt as u64)).await;
                    }
                    Err(ApplyError::Conflict(ns)) => {
                        self.record_failure(
                            batch_id,
                            &format!("conflicts on {ns} after {attempt} retries"),
                        )
                        .await;
                        return Err(StoreError::Failed(format!(
                            "optimistic locking kept failing on {ns}"
                        )));
                    }
                    Err(ApplyError::Store(e)) => {
                        self.record_failure(batch_id, &e.to_string()).await;
                        return Err(e);
                    }
                }
            }
        }
        Ok(counted)
    }

    /// [`Reducer::apply`], setting aside what the database refuses for good: on a permanent failure the
    /// facts are halved until the one refused alone is found; it is marked processed without being
    /// counted (logged, `reducer_poison_skipped_total`) and the rest is counted. Transient failures
    /// are returned (the caller retries or catches up later).
    pub async fn apply_isolating(&self, facts: &[StampFact]) -> Result<usize, StoreError> {
        let mut counted = 0;
        let mut pending = vec![(0, facts.len())];
        while let Some((start, end)) = pending.pop() {
            if start == end {
                continue;
            }
            match self.apply(&facts[start..end]).await {
                Ok(n) => counted += n,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) if end - start == 1 => {
                    let fact = &facts[start];
                    tracing::error!(event_id = %fact.event_id, namespace = %fact.namespace, error = %e,
                        "the database refuses this stamp event for good; skipped by the reducer");
                    metrics::counter!("reducer_poison_skipped_total").increment(1);
                    store::mark_skipped(&self.db, fact).await?;
                }
                Err(_) => {
                    let mid = start + (end - start) / 2;
                    pending.push((mid, end));
                    pending.push((start, mid));
                }
            }
        }
        Ok(counted)
    }

    async fn record_failure(&self, batch_id: uuid::Uuid, reason: &str) {
        metrics::counter!("reducer_failures_total").increment(1);
        let env = self.events.envelope(
            EventKind::AggregationFailed,
            Some(batch_id),
            None,
            json!({"batch_id": batch_id, "error": reason}),
        );
        let row = self.events.outbox_row(EventKind::AggregationFailed, &env);
        if crate::store::outbox::insert(&self.db, vec![row])
            .await
            .is_ok()
        {
            self.committed.notify_one();
        }
    }

    /// Embedded profile: aggregate what `event_logs` recorded but the reducer has not counted yet.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let topic = self.events.topics.name(EventKind::MetadataStampCreated);
        let mut total = 0;
        loop {
            let rows = store::unprocessed_logged_events(&self.db, &topic, 5000).await?;
            let facts: Vec<StampFact> = rows
                .iter()
                .filter_map(|r| {
                    core::fact_from_payload(
                        r.event_id.0,
                        core::AGGREGATED_EVENT,
                        &r.payload.0,
                        r.event_timestamp.0,
                    )
                })
                .collect();
            let counted = self.apply_isolating(&facts).await?;
            total += counted;
            // A short page is the last; a page with nothing aggregatable would come back forever.
            if rows.len() < 5000 || counted == 0 {
                return Ok(total);
            }
        }
    }

    /// Embedded profile: consume envelopes from the relay, flushing every `batch_size` items or
    /// `flush_interval_ms`. A failed batch is retried; nothing is acknowledged before it commits.
    pub async fn run_local(
        self,
        mut rx: mpsc::Receiver<Vec<OnexEnvelopeV1>>,
        shutdown: CancellationToken,
    ) {
        match self.catch_up().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "reducer caught up from event_logs"),
            Err(e) => {
                tracing::warn!(error = %e, "reducer catch-up failed; will retry on the next batch")
            }
        }
        let flush = Duration::from_millis(self.settings.flush_interval_ms);
        let mut pending: Vec<StampFact> = Vec::new();
        let mut needs_catch_up = false;
        loop {
            let deadline = tokio::time::Instant::now() + flush;
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(envs) => {
                            pending.extend(envs.iter().filter_map(fact_from_envelope));
                            if pending.len() >= self.settings.batch_size { break; }
                        }
                        None => { let _ = self.apply_isolating(&pending).await; return; }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = shutdown.cancelled() => { let _ = self.apply_isolating(&pending).await; return; }
                }
            }
            if needs_catch_up {
                needs_catch_up = self.catch_up().await.is_err();
            }
            if pending.is_empty() {
                continue;
            }
            match self.apply_isolating(&pending).await {
                Ok(_) => pending.clear(),
                Err(e) => {
                    // The events are in event_logs: drop the in-memory copy and catch up from there.
                    tracing::warn!(error = %e, items = pending.len(), "reducer batch failed; will catch up");
                    pending.clear();
                    needs_catch_up = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Production profile: the reducer's Kafka consumer-group handler. Unreadable messages are skipped
/// (and counted): the tracer's consumer group, which reads the same topics, dead-letters them — two
/// groups dead-lettering the same message would count it twice in the DLQ.
pub struct KafkaReducer(pub Reducer);

impl BatchHandler for KafkaReducer {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<(usize, Poison)>, HandlerError>> + Send {
        let mut facts = Vec::with_capacity(batch.len());
        for m in batch {
            match m
                .value
                .as_deref()
                .map(serde_json::from_slice::<OnexEnvelopeV1>)
            {
                Some(Ok(env)) => facts.extend(fact_from_envelope(&env)),
                _ => {
                    metrics::counter!("reducer_skipped_messages_total", "topic" => m.topic.clone())
                        .increment(1)
                }
            }
        }
        let reducer = self.0.clone();
        async move {
            reducer.apply(&facts).await.map_err(HandlerError::from)?;
            Ok(Vec::new())
        }
    }

    /// A message the reducer can never aggregate is skipped (and counted) once isolated: the
    /// tracer's group dead-letters what it cannot record, and the reducer never blocks on the rest.
    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::Skip
    }
}
