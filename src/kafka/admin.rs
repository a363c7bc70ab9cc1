//! Topic administration: create every topic of SPEC §2.2 with its partition count (idempotent).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::{base_config, KafkaAdapterError};
use crate::config::KafkaSettings;
use crate::events::topics::all_topics;

/// Create all topics; returns (created, already existing).
pub async fn create_topics(
    settings: &KafkaSettings,
) -> Result<(Vec<String>, Vec<String>), KafkaAdapterError> {
    let admin: AdminClient<DefaultClientContext> = base_config(settings).create()?;
    let topics = all_topics(&settings.topic_env);
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| KafkaAdapterError::Admin(e.to_string()))?;
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(name),
            Err((name, code)) => {
                return Err(KafkaAdapterError::Admin(format!("creating {name}: {code}")));
            }
        }
    }
    Ok((created, existing))
}
