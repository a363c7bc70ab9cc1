//! OnexEnvelopeV1, the JSON value of every event (SPEC §2.1). Wire type.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Required on input: `event_id`, `event_type`, `event_timestamp`, `payload`. Everything else has a
/// default, so envelopes of other producers (the original service's clients) are accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnexEnvelopeV1 {
    #[serde(default = "default_version")]
    pub envelope_version: String,
    pub event_id: Uuid,
    pub event_type: String,
    #[serde(default = "default_version")]
    pub event_version: String,
    pub event_timestamp: DateTime<Utc>,
    #[serde(default)]
    pub source_node_id: String,
    #[serde(default)]
    pub source_service: String,
    #[serde(default)]
    pub source_version: String,
    #[serde(default)]
    pub source_instance: String,
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    #[serde(default)]
    pub environment: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub partition_key: Option<String>,
    pub payload: Value,
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

fn default_version() -> String {
    "1.0".into()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl OnexEnvelopeV1 {
    /// Kafka key: partition_key › correlation_id › source_node_id › event_id.
    pub fn kafka_key(&self) -> String {
        if let Some(k) = self.partition_key.as_deref().filter(|k| !k.is_empty()) {
            return k.to_owned();
        }
        if let Some(c) = self.correlation_id {
            return c.to_string();
        }
        if !self.source_node_id.is_empty() {
            return self.source_node_id.clone();
        }
        self.event_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
        "envelope_version": "1.0",
        "event_id": "6f1c1e4e-5b7a-4a43-9f61-0d1f7f0c2a11",
        "event_type": "metadata-stamp-created",
        "event_version": "1.0",
        "event_timestamp": "2025-01-01T12:00:00Z",
        "source_node_id": "omninode-bridge",
        "source_service": "omninode-bridge",
        "source_version": "0.1.0",
        "source_instance": "host-1",
        "correlation_id": "0b7e5e0c-8d7c-4b0e-9a55-6b1f7f0c2a22",
        "causation_id": null,
        "environment": "dev",
        "region": "local",
        "partition_key": null,
        "payload": {"file_hash": "abc"},
        "metadata": {}
    }"#;

    #[test]
    fn round_trips_the_literal_example() {
        let env: OnexEnvelopeV1 = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(env.event_type, "metadata-stamp-created");
        let back: Value = serde_json::to_value(&env).unwrap();
        let original: Value = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn minimal_envelopes_of_other_producers_are_accepted() {
        let env: OnexEnvelopeV1 = serde_json::from_str(
            r#"{"event_id":"6f1c1e4e-5b7a-4a43-9f61-0d1f7f0c2a11","event_type":"x","event_timestamp":"2025-01-01T00:00:00Z","payload":{}}"#,
        )
        .unwrap();
        assert_eq!(env.envelope_version, "1.0");
        assert!(env.metadata.is_object());
        assert!(serde_json::from_str::<OnexEnvelopeV1>(r#"{"event_type":"x"}"#).is_err());
    }

    #[test]
    fn kafka_key_precedence() {
        let mut env: OnexEnvelopeV1 = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(env.kafka_key(), "0b7e5e0c-8d7c-4b0e-9a55-6b1f7f0c2a22");
        env.partition_key = Some("ns.a".into());
        assert_eq!(env.kafka_key(), "ns.a");
        env.partition_key = None;
        env.correlation_id = None;
        assert_eq!(env.kafka_key(), "omninode-bridge");
        env.source_node_id.clear();
        assert_eq!(env.kafka_key(), "6f1c1e4e-5b7a-4a43-9f61-0d1f7f0c2a11");
    }
}
