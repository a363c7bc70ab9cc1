//! The in-process event bus (embedded profile, and the live view in every profile): a bounded
//! broadcast of published events. Subscribers that fall behind by more than the capacity are told how
//! many they missed (`RecvError::Lagged`); the durable record is the outbox and `event_logs`.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::envelope::OnexEnvelopeV1;

#[derive(Debug, Clone)]
pub struct BusEvent {
    pub topic: String,
    pub key: String,
    pub envelope: OnexEnvelopeV1,
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        EventBus { tx }
    }

    pub fn publish(&self, event: BusEvent) {
        // No subscriber is not an error: the event is already durable in the outbox.
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }
}
