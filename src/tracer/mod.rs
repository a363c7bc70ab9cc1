//! The event tracer: turns every event seen (own topics and the codegen topics) into an `event_logs`
//! row. This file is the pure part (classification and field extraction); recording happens in the
//! relay (embedded profile, same transaction as the outbox delete) or in the Kafka consumer
//! (`crate::kafka::consumer`), both idempotent on `event_id`.

pub mod live;
pub mod query;
pub mod recorder;
pub mod search;
pub mod service;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::events::envelope::OnexEnvelopeV1;
use crate::store::event_logs::EventLogRow;
use crate::store::sql_types::{DbJson, DbTs, DbUuid};

/// Where a message was read from.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("message value is not JSON: {0}")]
    NotJson(String),
    #[error("message value is not a JSON object")]
    NotObject,
    #[error("not a valid OnexEnvelopeV1: {0}")]
    BadEnvelope(String),
    #[error("message has no value")]
    Empty,
}

impl RecordError {
    /// The Java-style class name written to `__connect.errors.exception.class.name`.
    pub fn class_name(&self) -> &'static str {
        match self {
            RecordError::NotJson(_) => "omninode.bridge.NotJsonError",
            RecordError::NotObject => "omninode.bridge.NotObjectError",
            RecordError::BadEnvelope(_) => "omninode.bridge.InvalidEnvelopeError",
            RecordError::Empty => "omninode.bridge.EmptyMessageError",
        }
    }
}

/// `request | response | status | error | event`, from the topic name.
pub fn classify_topic(topic: &str) -> &'static str {
    if topic.ends_with(".dlq") || topic.contains("_dlq_") || topic.ends_with("-failed.v1") {
        "error"
    } else if topic.contains("_request_") {
        "request"
    } else if topic.contains("_response_") {
        "response"
    } else if topic.contains("_status_") {
        "status"
    } else {
        "event"
    }
}

/// Own topics carry OnexEnvelopeV1; codegen topics carry their schema objects (optionally enveloped).
pub fn is_own_topic(topic: &str) -> bool {
    topic.contains(".omninode_bridge.onex.evt.")
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `event_logs` row for an envelope published by us (embedded relay path).
pub fn record_envelope(env: &OnexEnvelopeV1, src: &Source<'_>) -> EventLogRow {
    let payload = &env.payload;
    let event_type = classify_topic(src.topic);
    EventLogRow {
        event_id: DbUuid(env.event_id),
        session_id: str_field(payload, "session_id")
            .or_else(|| str_field(payload, "workflow_id"))
            .or_else(|| env.correlation_id.map(|c| c.to_string())),
        correlation_id: env.correlation_id.map(|c| c.to_string()),
        event_type: event_type.into(),
        topic: src.topic.to_owned(),
        kafka_partition: src.partition,
        kafka_offset: src.offset,
        event_timestamp: DbTs(env.event_timestamp),
        status: str_field(payload, "status").unwrap_or_else(|| default_status(event_type).into()),
        processing_time_ms: payload.get("processing_time_ms").and_then(Value::as_f64),
        namespace: str_field(payload, "namespace"),
        payload: DbJson(payload.clone()),
        metadata: DbJson(serde_json::json!({
            "event_type": env.event_type,
            "source_instance": env.source_instance,
            "source_service": env.source_service,
            "partition_key": env.partition_key,
            "metadata": env.metadata,
        })),
        recorded_at: DbTs(Utc::now()),
    }
}

fn default_status(event_type: &str) -> &'static str {
    if event_type == "error" {
        "failed"
    } else {
        "success"
    }
}

/// Replace NUL in every string (keys included) by U+FFFD: PostgreSQL text and jsonb cannot store it,
/// and one such message must not stop the recording of every other.
pub fn scrub_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                for (k, val) in entries {
                    map.insert(k.replace('\0', "\u{FFFD}"), val);
                }
            }
            map.values_mut().for_each(scrub_nul);
        }
        _ => {}
    }
}

/// The `event_logs` row for a raw message value read from a topic.
pub fn record_message(value: Option<&[u8]>, src: &Source<'_>) -> Result<EventLogRow, RecordError> {
    let bytes = value.ok_or(RecordError::Empty)?;
    let parsed: Result<Value, _> = serde_json::from_slice(bytes);
    let mut json = match parsed {
        Ok(v) if v.is_object() => v,
        // A dead letter is recorded whatever it holds: it is never dead-lettered again.
        _ if classify_topic(src.topic) == "error" => {
            serde_json::json!({"raw": String::from_utf8_lossy(bytes)})
        }
        Ok(_) => return Err(RecordError::NotObject),
        Err(e) => return Err(RecordError::NotJson(e.to_string())),
    };
    scrub_nul(&mut json);
    if is_own_topic(src.topic) && !src.topic.ends_with(".dlq") {
        let env: OnexEnvelopeV1 =
            serde_json::from_value(json).map_err(|e| RecordError::BadEnvelope(e.to_string()))?;
        return Ok(record_envelope(&env, src));
    }
    // A codegen message, bare or inside an envelope.
    if let Ok(env) = serde_json::from_value::<OnexEnvelopeV1>(json.clone()) {
        return Ok(record_envelope(&env, src));
    }
    let event_type = classify_topic(src.topic);
    let event_id = str_field(&json, "event_id")
        .and_then(|s| Uuid::parse_str(&s).ok())
        .unwrap_or_else(|| {
            // Stable per position, so a redelivered message maps to the same row.
            let name = format!("{}/{:?}/{:?}", src.topic, src.partition, src.offset);
            Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
        });
    let timestamp = str_field(&json, "timestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    Ok(EventLogRow {
        event_id: DbUuid(event_id),
        session_id: str_field(&json, "session_id").or_else(|| str_field(&json, "correlation_id")),
        correlation_id: str_field(&json, "correlation_id"),
        event_type: event_type.into(),
        topic: src.topic.to_owned(),
        kafka_partition: src.partition,
        kafka_offset: src.offset,
        event_timestamp: DbTs(timestamp),
        status: str_field(&json, "status").unwrap_or_else(|| default_status(event_type).into()),
        processing_time_ms: json.get("processing_time_ms").and_then(Value::as_f64),
        namespace: str_field(&json, "namespace"),
        metadata: DbJson(serde_json::json!({})),
        payload: DbJson(json),
        recorded_at: DbTs(Utc::now()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(topic: &str) -> Source<'_> {
        Source {
            topic,
            partition: Some(1),
            offset: Some(42),
        }
    }

    #[test]
    fn classifies_topics() {
        let cases = [
            ("omninode_codegen_request_analyze_v1", "request"),
            ("omninode_codegen_response_mixin_v1", "response"),
            ("omninode_codegen_status_session_v1", "status"),
            ("omninode_codegen_dlq_validate_v1", "error"),
            (
                "dev.omninode_bridge.onex.evt.stamp-workflow-failed.v1",
                "error",
            ),
            (
                "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1",
                "event",
            ),
            (
                "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1.dlq",
                "error",
            ),
        ];
        for (topic, want) in cases {
            assert_eq!(classify_topic(topic), want, "{topic}");
        }
    }

    #[test]
    fn records_codegen_messages_and_rejects_poison() {
        let msg = br#"{"correlation_id":"c-1","session_id":"s-1","status":"processing","progress_percentage":50,"processing_time_ms":12.5,"timestamp":"2025-01-01T00:00:00Z"}"#;
        let row = record_message(Some(msg), &src("omninode_codegen_status_session_v1")).unwrap();
        assert_eq!(row.session_id.as_deref(), Some("s-1"));
        assert_eq!(row.status, "processing");
        assert_eq!(row.event_type, "status");
        assert_eq!(row.processing_time_ms, Some(12.5));
        // Same position → same id (redelivery is idempotent).
        let again = record_message(Some(msg), &src("omninode_codegen_status_session_v1")).unwrap();
        assert_eq!(row.event_id, again.event_id);

        assert!(matches!(
            record_message(Some(b"not json"), &src("t")),
            Err(RecordError::NotJson(_))
        ));
        assert_eq!(
            record_message(Some(b"[1]"), &src("t")).err(),
            Some(RecordError::NotObject)
        );
        assert_eq!(
            record_message(None, &src("t")).err(),
            Some(RecordError::Empty)
        );
        let own = "dev.omninode_bridge.onex.evt.metadata-stamp-created.v1";
        assert!(matches!(
            record_message(Some(b"{\"a\":1}"), &src(own)),
            Err(RecordError::BadEnvelope(_))
        ));
    }
}
