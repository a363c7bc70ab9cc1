//! Envelope decoding from bytes, as the consumers meet it: `OnexEnvelopeV1` itself (Kafka key,
//! serialise → decode round trip, the reducer's stamp fact), the tracer recorder's mapping of a raw
//! message to an `event_logs` row on each kind of topic, and the codegen gateway's unwrapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omninode_bridge::codegen::gateway::message_bytes;
use omninode_bridge::events::envelope::OnexEnvelopeV1;
use omninode_bridge::events::topics::{
    codegen_dlq_topic, codegen_request_topic, EventKind, Topics, CODEGEN_STATUS_TOPIC,
};
use omninode_bridge::reducer::core::fact_from_envelope;
use omninode_bridge::tracer::{record_message, Source};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = serde_json::from_slice::<OnexEnvelopeV1>(data) {
        assert!(!env.kafka_key().is_empty());
        let bytes = serde_json::to_vec(&env).expect("a decoded envelope serialises");
        let back: OnexEnvelopeV1 =
            serde_json::from_slice(&bytes).expect("a serialised envelope decodes again");
        // Not whole equality: serde_json's default float parsing can move a long decimal in the
        // payload by one ulp between the two parses.
        assert_eq!(
            (back.event_id, &back.event_type, back.event_timestamp),
            (env.event_id, &env.event_type, env.event_timestamp)
        );
        assert_eq!(back.kafka_key(), env.kafka_key());
        let _ = fact_from_envelope(&env);
    }

    let own = Topics::new("dev").name(EventKind::MetadataStampCreated);
    let topics = [
        Topics::dlq(&own),
        own,
        codegen_request_topic("analyze"),
        codegen_dlq_topic("analyze"),
        CODEGEN_STATUS_TOPIC.to_owned(),
        "somebody.else".to_owned(),
    ];
    for topic in &topics {
        let src = Source {
            topic,
            partition: Some(0),
            offset: Some(7),
        };
        let _ = record_message(Some(data), &src);
    }

    if let Some((inner, _)) = message_bytes(data) {
        assert!(serde_json::from_slice::<serde_json::Value>(&inner).is_ok());
    }
});
