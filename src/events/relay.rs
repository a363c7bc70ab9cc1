//! The outbox relay: wakes when a transaction with events commits (or every second, to pick up rows
//! of other instances and retries), publishes the oldest rows in `seq` order to its sink and deletes
//! them.
//!
//! Sinks: the in-process bus (embedded profile; the relay then also records the events in
//! `event_logs`, in the delete's transaction) or Kafka (production; the tracer's consumer group
//! records them). Published events also go to the local bus for live views.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::bus::{BusEvent, EventBus};
use super::envelope::OnexEnvelopeV1;
use crate::kafka::producer::{envelope_headers, KafkaPublisher, OutgoingMessage};
use crate::store::outbox::{self, OutboxRow};
use crate::store::{Db, StoreError};
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
                failures += 1;
                metrics::counter!("outbox_relay_errors_total").increment(1);
                tracing::warn!(error = %e, failures, "outbox relay failed; retrying");
            }
        }
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

fn decode(rows: &[OutboxRow]) -> Vec<(i64, String, String, Option<OnexEnvelopeV1>)> {
    rows.iter()
        .map(|r| {
            let env = serde_json::from_value::<OnexEnvelopeV1>(r.envelope.0.clone())
                .map_err(
                    |e| tracing::error!(seq = r.seq, error = %e, "unreadable outbox row skipped"),
                )
                .ok();
            (r.seq, r.topic.clone(), r.partition_key.clone(), env)
        })
        .collect()
}

fn local_records(rows: &[OutboxRow]) -> Vec<crate::store::event_logs::EventLogRow> {
    decode(rows)
        .into_iter()
        .filter_map(|(_, topic, _, env)| {
            env.map(|e| {
                record_envelope(
                    &e,
                    &Source {
                        topic: &topic,
                        partition: None,
                        offset: None,
                    },
                )
            })
        })
        .collect()
}

/// Publish one batch of rows; returns how many were published.
pub async fn publish_pending(db: &Db, sink: &Sink) -> Result<usize, StoreError> {
    let record: Option<outbox::RecordFn<'_>> = match sink {
        Sink::InProcess { .. } => Some(&local_records),
        Sink::Kafka { .. } => None,
    };
    let mut delivered: Vec<OnexEnvelopeV1> = Vec::new();
    let delivered_ref = &mut delivered;
    let n = outbox::relay_batch(db, BATCH, record, |rows| async move {
        let decoded = decode(&rows);
        if let Sink::Kafka { publisher, .. } = sink {
            let bodies: Vec<(String, String, Vec<u8>, rdkafka::message::OwnedHeaders)> = rows
                .iter()
                .zip(&decoded)
                .filter_map(|(row, (_, _, _, env))| {
                    let env = env.as_ref()?;
                    let value = serde_json::to_vec(&row.envelope.0).ok()?;
                    Some((
                        row.topic.clone(),
                        row.partition_key.clone(),
                        value,
                        envelope_headers(env),
                    ))
                })
                .collect();
            publisher
                .send_all(
                    bodies
                        .iter()
                        .map(|(topic, key, value, headers)| OutgoingMessage {
                            topic,
                            key,
                            value,
                            headers: headers.clone(),
                        })
                        .collect(),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        for (_, topic, key, env) in decoded {
            if let Some(envelope) = env {
                metrics::counter!("events_published_total", "topic" => topic.clone()).increment(1);
                delivered_ref.push(envelope.clone());
                sink.bus().publish(BusEvent {
                    topic,
                    key,
                    envelope,
                });
            }
        }
        Ok(())
    })
    .await?;
    if let Sink::InProcess { consumers, .. } = sink {
        if !delivered.is_empty() {
            for c in consumers {
                // Bounded: a slow consumer slows the relay (back-pressure), never loses events.
                let _ = c.send(delivered.clone()).await;
            }
        }
    }
    Ok(n)
}
