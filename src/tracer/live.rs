//! The live event feed behind the SSE tail: a bounded broadcast of recorded events. Own events come
//! from the in-process bus (every profile publishes there after delivery); external codegen topics
//! from the Kafka recorder. A subscriber that falls behind is told how many events it missed.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{is_own_topic, record_envelope, Source};
use crate::events::bus::EventBus;
use crate::store::event_logs::EventLogRow;

#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<EventLogRow>>,
}

impl LiveFeed {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        LiveFeed { tx }
    }

    pub fn publish(&self, row: EventLogRow) {
        // Nobody watching is fine: the durable record is `event_logs`.
        let _ = self.tx.send(Arc::new(row));
    }

    /// Rows read from Kafka: only topics the bus does not already carry (external codegen topics).
    pub fn publish_external(&self, rows: &[EventLogRow]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        for row in rows.iter().filter(|r| !is_own_topic(&r.topic)) {
            self.publish(row.clone());
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventLogRow>> {
        self.tx.subscribe()
    }
}

/// Forward every event published on the bus into the feed until `shutdown`.
pub async fn forward_bus(bus: EventBus, feed: LiveFeed, shutdown: CancellationToken) {
    let mut rx = bus.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => r,
        };
        match event {
            Ok(e) => {
                if feed.tx.receiver_count() > 0 {
                    feed.publish(record_envelope(
                        &e.envelope,
                        &Source {
                            topic: &e.topic,
                            partition: None,
                            offset: None,
                        },
                    ));
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("live_feed_lagged_total").increment(n);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Which live events a tail wants (`None` = any).
#[derive(Debug, Clone, Default)]
pub struct LiveFilter {
    pub topic: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub namespace: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl LiveFilter {
    pub fn matches(&self, r: &EventLogRow) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.topic, Some(&r.topic))
            && eq(&self.event_type, Some(&r.event_type))
            && eq(&self.status, Some(&r.status))
            && eq(&self.namespace, r.namespace.as_deref())
            && eq(&self.session_id, r.session_id.as_deref())
            && eq(&self.correlation_id, r.correlation_id.as_deref())
    }
}
