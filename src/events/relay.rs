//! The outbox relay: wakes when a transaction with events commits (or every second, to pick up rows
//! of other instances and retries), publishes the oldest rows in `seq` order and deletes them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::bus::{BusEvent, EventBus};
use super::envelope::OnexEnvelopeV1;
use crate::store::{outbox, Db};

const BATCH: i64 = 500;

pub async fn run(db: Db, bus: EventBus, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let published = publish_pending(&db, &bus).await;
        match published {
            Ok(n) if n as i64 == BATCH => continue, // more waiting
            Ok(_) => {}
            Err(e) => {
                metrics::counter!("outbox_relay_errors_total").increment(1);
                tracing::warn!(error = %e, "outbox relay failed; retrying");
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => {
                // Drain what committed before shutdown.
                let _ = publish_pending(&db, &bus).await;
                return;
            }
        }
    }
}

/// Publish one batch of unsent rows; returns how many were published.
pub async fn publish_pending(db: &Db, bus: &EventBus) -> Result<usize, crate::store::StoreError> {
    outbox::relay_batch(db, BATCH, |rows| async move {
        let mut sent = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_value::<OnexEnvelopeV1>(row.envelope.0) {
                Ok(envelope) => {
                    metrics::counter!("events_published_total", "topic" => row.topic.clone())
                        .increment(1);
                    bus.publish(BusEvent {
                        topic: row.topic,
                        key: row.partition_key,
                        envelope,
                    });
                }
                Err(e) => {
                    // Cannot happen for rows we wrote; never block the outbox on one bad row.
                    tracing::error!(seq = row.seq, error = %e, "unreadable outbox row skipped");
                }
            }
            sent.push(row.seq);
        }
        Ok(sent)
    })
    .await
}
