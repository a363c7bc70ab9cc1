//! The event backbone: the OnexEnvelopeV1 wire format and topic registry (pure), the in-process bus,
//! and the outbox relay that moves committed events from `event_outbox` to the bus.
//!
//! Architecture invariant: producers never publish directly. They write outbox rows in the same
//! transaction as their state change (`EventFactory::outbox_row`); only the relay publishes. A slow or
//! absent consumer can never fail or slow a user request.

pub mod bus;
pub mod envelope;
pub mod relay;
pub mod topics;

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::store::outbox::NewOutboxEvent;
use crate::store::sql_types::{DbJson, DbTs, DbUuid};
use envelope::OnexEnvelopeV1;
use topics::{EventKind, Topics};

/// Where an event comes from, for correlation: the request's correlation id (a UUID goes into
/// `correlation_id`; any other caller-chosen id into `metadata.correlation_ref`) and its W3C
/// `traceparent` (into `metadata.traceparent`, and from there into the Kafka header).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceContext {
    pub correlation_id: Option<Uuid>,
    pub correlation_ref: Option<String>,
    pub traceparent: Option<String>,
}

impl From<Option<Uuid>> for TraceContext {
    fn from(correlation_id: Option<Uuid>) -> Self {
        TraceContext {
            correlation_id,
            ..Default::default()
        }
    }
}

/// Builds envelopes stamped with this instance's identity.
#[derive(Clone)]
pub struct EventFactory {
    pub topics: Topics,
    pub source_instance: String,
    pub environment: String,
}

impl EventFactory {
    pub fn new(topic_env: &str) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        EventFactory {
            topics: Topics::new(topic_env),
            source_instance: format!("{host}-{}", &Uuid::new_v4().simple().to_string()[..8]),
            environment: topic_env.to_owned(),
        }
    }

    pub fn envelope(
        &self,
        kind: EventKind,
        trace: impl Into<TraceContext>,
        partition_key: Option<String>,
        payload: Value,
    ) -> OnexEnvelopeV1 {
        self.envelope_named(kind.slug(), trace, partition_key, payload)
    }

    /// An envelope of an event type outside [`EventKind`] (e.g. codegen requests).
    pub fn envelope_named(
        &self,
        event_type: &str,
        trace: impl Into<TraceContext>,
        partition_key: Option<String>,
        payload: Value,
    ) -> OnexEnvelopeV1 {
        let trace = trace.into();
        let mut metadata = serde_json::Map::new();
        if let Some(r) = trace.correlation_ref {
            metadata.insert("correlation_ref".into(), Value::String(r));
        }
        if let Some(tp) = trace.traceparent {
            metadata.insert("traceparent".into(), Value::String(tp));
        }
        let correlation_id = trace.correlation_id;
        OnexEnvelopeV1 {
            envelope_version: "1.0".into(),
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            event_version: "1.0".into(),
            event_timestamp: Utc::now(),
            source_node_id: "omninode-bridge".into(),
            source_service: "omninode-bridge".into(),
            source_version: env!("CARGO_PKG_VERSION").into(),
            source_instance: self.source_instance.clone(),
            correlation_id,
            causation_id: None,
            environment: self.environment.clone(),
            region: "local".into(),
            partition_key,
            payload,
            metadata: Value::Object(metadata),
        }
    }

    /// The outbox row that will carry `envelope` to its topic.
    pub fn outbox_row(&self, kind: EventKind, envelope: &OnexEnvelopeV1) -> NewOutboxEvent {
        NewOutboxEvent {
            event_id: DbUuid(envelope.event_id),
            topic: self.topics.name(kind),
            partition_key: envelope.kafka_key(),
            envelope: DbJson(serde_json::to_value(envelope).unwrap_or(Value::Null)),
            created_at: DbTs(envelope.event_timestamp),
        }
    }
}
