//! The Kafka edge (rdkafka with its bundled librdkafka): one idempotent producer, consumers in consumer
//! groups that store offsets only after their handler succeeded, dead-lettering with Kafka Connect
//! headers, and topic administration.
//!
//! Architecture invariant: nothing outside this module names an rdkafka type. Producers elsewhere
//! write to the outbox; the relay hands rows to [`producer::KafkaPublisher`].

pub mod admin;
pub mod consumer;
pub mod producer;

use rdkafka::config::ClientConfig;

use crate::config::KafkaSettings;

#[derive(Debug, thiserror::Error)]
pub enum KafkaAdapterError {
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("kafka delivery failed for {topic}: {message}")]
    Delivery { topic: String, message: String },
    #[error("kafka admin: {0}")]
    Admin(String),
}

fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.brokers)
        .set("client.id", "omninode-bridge")
        .set("socket.keepalive.enable", "true");
    cfg
}
