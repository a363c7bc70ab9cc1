//! Records every consumed Kafka message in `event_logs` (batched, idempotent on `event_id`); messages
//! that cannot be read are reported as poison and dead-lettered by the consumer runner.

use std::future::Future;

use super::live::LiveFeed;
use super::{record_message, Source};
use crate::kafka::consumer::{BatchHandler, HandlerError, Incoming, Poison};
use crate::store::{event_logs, Db};

pub struct KafkaRecorder {
    pub db: Db,
    /// Live tail of the dashboard (external topics; own ones come from the bus).
    pub feed: Option<LiveFeed>,
}

impl BatchHandler for KafkaRecorder {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<(usize, Poison)>, HandlerError>> + Send {
        let mut rows = Vec::with_capacity(batch.len());
        let mut poison = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            let src = Source {
                topic: &m.topic,
                partition: Some(m.partition),
                offset: Some(m.offset),
            };
            let schema = match (
                &m.value,
                m.topic.starts_with("omninode_codegen_") && !m.topic.contains("_dlq_"),
            ) {
                (Some(v), true) => {
                    crate::codegen::gateway::check_codegen_message(&m.topic, v).err()
                }
                _ => None,
            };
            if let Some(e) = schema {
                poison.push((
                    i,
                    Poison {
                        class_name: "omninode.bridge.SchemaValidationError".to_owned(),
                        message: e.to_string(),
                    },
                ));
                continue;
            }
            match record_message(m.value.as_deref(), &src) {
                Ok(row) => rows.push(row),
                Err(e) => poison.push((
                    i,
                    Poison {
                        class_name: e.class_name().to_owned(),
                        message: e.to_string(),
                    },
                )),
            }
        }
        let db = self.db.clone();
        let feed = self.feed.clone();
        async move {
            // A row the database refuses for good (permanent) makes the runner isolate it and
            // dead-letter it; indexed text is already cut to fit (`event_logs`).
            event_logs::insert_batch(&db, &rows)
                .await
                .map_err(HandlerError::from)?;
            if let Some(feed) = feed {
                feed.publish_external(&rows);
            }
            Ok(poison)
        }
    }
}
