//! The live event feed behind the SSE tail: a bounded broadcast of recorded events. Own events come
//! from the in-process bus (every profile publishes there after delivery); external codegen topics
//! from the Kafka recorder. A subscriber that falls behind is told how many events it missed.

use std::sync::Arc;

use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{is_own_topic, record_envelope, Source};
use crate::events::bus::EventBus;
use crate::store::event_logs::EventLogRow;

#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<EventLogRow>>,
    /// One permit per subscriber served at once (`http.max_sse_clients`).
    slots: Arc<Semaphore>,
    max_subscribers: usize,
}

/// Every subscriber place is taken.
#[derive(Debug, thiserror::Error)]
#[error("{max} live tail clients are already connected; retry shortly")]
pub struct TooManySubscribers {
    pub max: usize,
}

/// A subscriber's receiver and its place; dropping it (the client went away) frees the place.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<EventLogRow>>,
    _slot: OwnedSemaphorePermit,
}

impl LiveFeed {
    /// A feed buffering `capacity` events per subscriber, serving at most `max_subscribers` at once.
    pub fn new(capacity: usize, max_subscribers: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        let max_subscribers = max_subscribers.clamp(1, Semaphore::MAX_PERMITS);
        LiveFeed {
            tx,
            slots: Arc::new(Semaphore::new(max_subscribers)),
            max_subscribers,
        }
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

    /// A new subscriber, or `TooManySubscribers` when `max_subscribers` are being served.
    pub fn subscribe(&self) -> Result<Subscription, TooManySubscribers> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("sse_clients_refused_total").increment(1);
            TooManySubscribers {
                max: self.max_subscribers,
            }
        })?;
        Ok(Subscription {
            rx: self.tx.subscribe(),
            _slot: slot,
        })
    }

    /// Subscribers being served now.
    pub fn subscribers(&self) -> usize {
        self.max_subscribers - self.slots.available_permits()
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
