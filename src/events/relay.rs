//! The outbox relay: wakes when a transaction with events commits (or every second, to pick up rows
//! of other instances and retries), publishes the oldest rows in `seq` order to its sink and deletes
//! them.
//!
//! Sinks: the in-process bus (embedded profile; the relay then also records the events in
//! `event_logs`, in the delete's transaction) or Kafka (production; the tracer's consumer group
//! records them). Published events also go to the local bus for live views, after their batch
//! committed.
//!
//! Poison never blocks the outbox: a row that can never be published is quarantined in
//! `event_outbox_dead` (see [`publish_pending`]) and the rows behind it flow on; transient failures
//! retry the batch with bounded back-off (100 ms doubling to 3 s), logged, counted in
//! `outbox_relay_errors_total`, and shown by `/health` as the outbox backlog's age.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::bus::{BusEvent, EventBus};
use super::envelope::OnexEnvelopeV1;
use crate::kafka::producer::{envelope_headers, KafkaPublisher, OutgoingMessage};
use crate::store::outbox::{self, Delivery, OutboxRow, RelayError};
use crate::store::Db;
use crate::tracer::{record_envelope, Source};

const BATCH: i64 = 500;

#[derive(Clone)]
pub enum Sink {
    /// Embedded profile: the bus, plus in-process consumers that must see every event (the reducer),
    /// fed through bounded channels after the batch committed.
    InProcess {
        bus: EventBus,
        consumers: Vec<mpsc::Sender<Vec<OnexEnvelopeV1>>>,
    },
    Kafka {
        publisher: KafkaPublisher,
        bus: EventBus,
    },
}

impl Sink {
    fn bus(&self) -> &EventBus {
        match self {
            Sink::InProcess { bus, .. } => bus,
            Sink::Kafka { bus, .. } => bus,
        }
    }
}

pub async fn run(db: Db, sink: Sink, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        match publish_pending(&db, &sink).await {
            Ok(n) if n as i64 == BATCH => {
                failures = 0;
                continue; // more waiting
            }
            Ok(_) => failures = 0,
            Err(e) => {
                // Transient (database or broker unreachable, timeouts): the rows stay and are retried
                // with bounded back-off. Rows refused for good never get here: they are quarantined.
                failures = failures.saturating_add(1);
                metrics::counter!("outbox_relay_errors_total").increment(1);
                if failures % 20 == 0 {
                    tracing::error!(error = %e, failures, "outbox relay keeps failing; events wait in the outbox");
                } else {
                    tracing::warn!(error = %e, failures, "outbox relay failed; retrying");
                }
            }
        }
        metrics::gauge!("outbox_relay_consecutive_failures").set(failures as f64);
        let pause = if failures == 0 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis((100u64 << failures.min(5)).min(3_000))
        };
        tokio::select! {
            _ = wake.notified(), if failures == 0 => {}
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => {
                // Publish what committed before shutdown (bounded: the sink may be down).
                let _ = tokio::time::timeout(Duration::from_secs(5), publish_pending(&db, &sink)).await;
                return;
            }
        }
    }
}

/// An event that left the outbox, kept until its batch committed.
struct Sent {
    seq: i64,
    topic: String,
    key: String,
    envelope: OnexEnvelopeV1,
}

/// Publish one batch of rows; returns how many rows were claimed (published or quarantined).
///
/// A row the sink can never take — an envelope that does not decode, a message Kafka refuses for
/// good (over `message.max.bytes`), an event-log row the database refuses — is moved to
/// `event_outbox_dead` with the error, and the rest of the batch is published. A transient failure
/// (broker unavailable, timeout) fails the whole batch, which stays in the outbox.
pub async fn publish_pending(db: &Db, sink: &Sink) -> Result<usize, RelayError> {
    let mut sent: Vec<Sent> = Vec::new();
    let sent_ref = &mut sent;
    let relayed = outbox::relay_batch(db, BATCH, |rows| async move {
        let mut delivery = Delivery::default();
        let mut readable: Vec<(OutboxRow, OnexEnvelopeV1)> = Vec::with_capacity(rows.len());
        for row in rows {
            match OnexEnvelopeV1::deserialize(&row.envelope.0) {
                Ok(env) => readable.push((row, env)),
                Err(e) => delivery
                    .rejected
                    .push((row, format!("undecodable envelope: {e}"))),
            }
        }
        let accepted = match sink {
            Sink::Kafka { publisher, .. } => {
                publish_kafka(publisher, readable, &mut delivery.rejected).await?
            }
            Sink::InProcess { .. } => readable,
        };
        for (row, envelope) in accepted {
            let log = matches!(sink, Sink::InProcess { .. }).then(|| {
                record_envelope(
                    &envelope,
                    &Source {
                        topic: &row.topic,
                        partition: None,
                        offset: None,
                    },
                )
            });
            sent_ref.push(Sent {
                seq: row.seq,
                topic: row.topic.clone(),
                key: row.partition_key.clone(),
                envelope,
            });
            delivery.delivered.push((row, log));
        }
        Ok(delivery)
    })
    .await?;
    let dead: HashSet<i64> = relayed.dead.iter().map(|(seq, _)| *seq).collect();
    for (seq, error) in &relayed.dead {
        tracing::error!(seq, error = %error, "outbox row can never be published; moved to event_outbox_dead");
        metrics::counter!("outbox_quarantined_total").increment(1);
    }
    let mut delivered: Vec<OnexEnvelopeV1> = Vec::with_capacity(sent.len());
    for Sent {
        seq,
        topic,
        key,
        envelope,
    } in sent
    {
        if dead.contains(&seq) {
            continue;
        }
        metrics::counter!("events_published_total", "topic" => topic.clone()).increment(1);
        if matches!(sink, Sink::InProcess { .. }) {
            delivered.push(envelope.clone());
        }
        sink.bus().publish(BusEvent {
            topic,
            key,
            envelope,
        });
    }
    if let Sink::InProcess { consumers, .. } = sink {
        if !delivered.is_empty() {
            for c in consumers {
                // Bounded: a slow consumer slows the relay (back-pressure), never loses events.
                let _ = c.send(delivered.clone()).await;
            }
        }
    }
    Ok(relayed.claimed)
}

/// Send the rows to Kafka, one delivery report each. A message refused for good joins `rejected`;
/// any transient failure fails the batch (the whole batch is retried, consumers drop duplicates).
async fn publish_kafka(
    publisher: &KafkaPublisher,
    rows: Vec<(OutboxRow, OnexEnvelopeV1)>,
    rejected: &mut Vec<(OutboxRow, String)>,
) -> Result<Vec<(OutboxRow, OnexEnvelopeV1)>, String> {
    let mut bodies: Vec<(Vec<u8>, rdkafka::message::OwnedHeaders)> = Vec::with_capacity(rows.len());
    let mut encodable = Vec::with_capacity(rows.len());
    for (row, env) in rows {
        match serde_json::to_vec(&row.envelope.0) {
            Ok(value) => {
                bodies.push((value, envelope_headers(&env)));
                encodable.push((row, env));
            }
            Err(e) => rejected.push((row, format!("unencodable envelope: {e}"))),
        }
    }
    let results = publisher
        .send_each(
            encodable
                .iter()
                .zip(&bodies)
                .map(|((row, _), (value, headers))| OutgoingMessage {
                    topic: &row.topic,
                    key: &row.partition_key,
                    value,
                    headers: headers.clone(),
                })
                .collect(),
        )
        .await;
    let mut accepted = Vec::with_capacity(encodable.len());
    let mut transient = None;
    for (item, result) in encodable.into_iter().zip(results) {
        match result {
            Ok(()) => accepted.push(item),
            Err(e) if e.permanent => rejected.push((
                item.0,
                format!("kafka refused the message for good: {}", e.message),
            )),
            Err(e) => {
                transient = Some(format!(
                    "kafka delivery to {} failed: {}",
                    e.topic, e.message
                ))
            }
        }
    }
    match transient {
        Some(e) => Err(e),
        None => Ok(accepted),
    }
}
