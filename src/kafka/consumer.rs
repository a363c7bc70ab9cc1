//! Consumer-group runner: reads batches, hands them to a handler, dead-letters poison messages to
//! their DLQ topic with the Kafka Connect error headers, and stores offsets only after the handler
//! (and the dead-lettering) succeeded — a crash re-delivers, and handlers are idempotent.

use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use super::producer::{KafkaPublisher, OutgoingMessage};
use super::{base_config, KafkaAdapterError};
use crate::config::KafkaSettings;
use crate::events::topics::dlq_topic_for;

/// A message read from Kafka, detached from the consumer.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
    /// The message's Kafka timestamp (milliseconds since the epoch), when it has one.
    pub timestamp_ms: Option<i64>,
}

/// Why a message cannot be processed, ever (as opposed to a transient failure).
#[derive(Debug, Clone)]
pub struct Poison {
    pub class_name: String,
    pub message: String,
}

pub trait BatchHandler: Send + Sync + 'static {
    /// Process a batch. `Ok` lists the poison messages by index (they are dead-lettered);
    /// `Err` is transient: the whole batch is retried.
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<(usize, Poison)>, String>> + Send;
}

pub struct ConsumerSpec {
    pub group_id: String,
    pub topics: Vec<String>,
    pub batch_max: usize,
    pub batch_wait: Duration,
    /// Start a new group at the latest offset instead of the earliest (per-instance listeners).
    pub from_latest: bool,
    /// The longest a fetch waits for data (`fetch.wait.max.ms`): short for latency-sensitive
    /// listeners (the codegen gateway), longer for throughput.
    pub fetch_wait_ms: u32,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// The Kafka Connect dead-letter headers, after the original ones.
pub fn dead_letter_headers(msg: &Incoming, poison: &Poison) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(orig) = &msg.headers {
        for h in orig.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = msg.partition.to_string();
    let offset = msg.offset.to_string();
    for (key, value) in [
        ("__connect.errors.topic", msg.topic.as_str()),
        ("__connect.errors.partition", partition.as_str()),
        ("__connect.errors.offset", offset.as_str()),
        (
            "__connect.errors.exception.class.name",
            poison.class_name.as_str(),
        ),
        (
            "__connect.errors.exception.message",
            poison.message.as_str(),
        ),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

/// Run until `shutdown`; returns after committing the stored offsets.
pub async fn run<H: BatchHandler>(
    settings: &KafkaSettings,
    spec: ConsumerSpec,
    handler: H,
    dlq: KafkaPublisher,
    shutdown: CancellationToken,
) -> Result<(), KafkaAdapterError> {
    let consumer: StreamConsumer = base_config(settings)
        .set("group.id", &spec.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if spec.from_latest {
                "latest"
            } else {
                "earliest"
            },
        )
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 4).max(100).to_string(),
        )
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("fetch.wait.max.ms", spec.fetch_wait_ms.to_string())
        .create()?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(group = %spec.group_id, topics = topics.len(), "kafka consumer subscribed");
    let mut batch: Vec<Incoming> = Vec::with_capacity(spec.batch_max);
    let mut last_lag = std::time::Instant::now();
    loop {
        if last_lag.elapsed() > Duration::from_secs(15) {
            last_lag = std::time::Instant::now();
            // Broker round trips: keep them off the async workers.
            tokio::task::block_in_place(|| report_lag(&consumer, &spec.group_id));
        }
        batch.clear();
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        match first {
            Ok(m) => batch.push(detach(&m)),
            Err(e) => {
                tracing::warn!(error = %e, group = %spec.group_id, "kafka receive failed");
                metrics::counter!("kafka_consume_errors_total", "group" => spec.group_id.clone())
                    .increment(1);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + spec.batch_wait;
        while batch.len() < spec.batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(detach(&m)),
                _ => break,
            }
        }
        let mut attempt = 0;
        let poison = loop {
            match handler.handle(&batch).await {
                Ok(p) => break p,
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "consumer handler failed; retrying batch");
                    if shutdown.is_cancelled() {
                        return Ok(());
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        };
        for (i, reason) in &poison {
            let msg = &batch[*i];
            let target = dlq_topic_for(&msg.topic);
            let mut attempt = 0;
            loop {
                let sent = dlq
                    .send_all(vec![OutgoingMessage {
                        topic: &target,
                        key: std::str::from_utf8(msg.key.as_deref().unwrap_or_default())
                            .unwrap_or(""),
                        value: msg.value.as_deref().unwrap_or_default(),
                        headers: dead_letter_headers(msg, reason),
                    }])
                    .await;
                match sent {
                    Ok(()) => break,
                    Err(e) => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, topic = %target, "dead-lettering failed; retrying");
                        if shutdown.is_cancelled() {
                            return Ok(());
                        }
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
            tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                dlq = %target, reason = %reason.message, "poison message dead-lettered");
            metrics::counter!("kafka_dead_lettered_total", "topic" => msg.topic.clone())
                .increment(1);
        }
        for m in &batch {
            if let Err(e) = consumer.store_offset(&m.topic, m.partition, m.offset) {
                tracing::warn!(error = %e, "storing offset failed (message will be redelivered)");
            }
            metrics::counter!("kafka_consumed_total", "topic" => m.topic.clone()).increment(1);
        }
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Ok(())
}

/// `kafka_consumer_lag{group, topic}`: high watermark minus position, summed over assigned partitions.
fn report_lag(consumer: &StreamConsumer, group: &str) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    let mut per_topic: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for elem in positions.elements() {
        let Ok((_, high)) =
            consumer.fetch_watermarks(elem.topic(), elem.partition(), Duration::from_millis(500))
        else {
            continue;
        };
        let pos = match elem.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => continue,
        };
        *per_topic.entry(elem.topic().to_owned()).or_default() += (high - pos).max(0);
    }
    for (topic, lag) in per_topic {
        metrics::gauge!("kafka_consumer_lag", "group" => group.to_owned(), "topic" => topic)
            .set(lag as f64);
    }
}

fn detach(m: &rdkafka::message::BorrowedMessage<'_>) -> Incoming {
    Incoming {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m.headers().map(|h| h.detach()),
        timestamp_ms: m.timestamp().to_millis(),
    }
}
