//! Consumer-group runner: reads batches, hands them to a handler, dead-letters poison messages to
//! their DLQ topic with the Kafka Connect error headers, and stores offsets only after the handler
//! (and the dead-lettering) succeeded — a crash re-delivers, and handlers are idempotent.
//!
//! Poison never blocks a partition. A handler sorts its failures: transient (database or broker
//! unreachable, timeouts) retries the batch with bounded back-off (100 ms doubling to 5 s, logged,
//! `kafka_handler_retries_total{group}`); permanent (the data is refused) makes the runner split the
//! batch in halves until the one message that fails alone is found, which is then dead-lettered (or,
//! for handlers whose policy is [`PoisonPolicy::Skip`], skipped and counted) while the rest is
//! processed. A dead letter Kafka refuses for good (too large) is dropped, logged and counted.

use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use super::producer::{KafkaPublisher, OutgoingMessage};
use super::{base_config, KafkaAdapterError};
use crate::config::KafkaSettings;
use crate::events::topics::dlq_topic_for;
use crate::store::StoreError;

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

/// Why a handler could not process a batch.
#[derive(Debug, Clone)]
pub enum HandlerError {
    /// Retrying later can succeed: the whole batch is retried with bounded back-off.
    Transient(String),
    /// Some message in the batch can never be processed: the runner isolates it.
    Permanent(String),
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            HandlerError::Transient(e.to_string())
        } else {
            HandlerError::Permanent(e.to_string())
        }
    }
}

/// What happens to a message its handler can never process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonPolicy {
    /// To its DLQ topic (the tracer's group: one group dead-letters, so the DLQ counts it once).
    DeadLetter,
    /// Skipped, logged and counted (`kafka_poison_skipped_total`): groups reading topics the
    /// tracer already dead-letters, and the DLQ monitor itself.
    Skip,
}

pub trait BatchHandler: Send + Sync + 'static {
    /// Process a batch. `Ok` lists the poison messages by index (they are dead-lettered);
    /// `Err` says whether retrying can help (see [`HandlerError`]).
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<(usize, Poison)>, HandlerError>> + Send;

    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::DeadLetter
    }
}

/// Run the handler over `batch`; on a permanent failure split the batch until the messages that fail
/// alone are found, and report those as poison with the rest processed. A transient failure anywhere
/// fails the whole call (the caller retries the batch; handlers are idempotent).
async fn handle_isolating<H: BatchHandler>(
    handler: &H,
    batch: &[Incoming],
    group: &str,
) -> Result<Vec<(usize, Poison)>, String> {
    let mut poison = Vec::new();
    // Ranges still to handle, the next one last (so they run in offset order).
    let mut pending = vec![(0, batch.len())];
    while let Some((start, end)) = pending.pop() {
        match handler.handle(&batch[start..end]).await {
            Ok(p) => poison.extend(p.into_iter().map(|(i, reason)| (start + i, reason))),
            Err(HandlerError::Transient(e)) => return Err(e),
            Err(HandlerError::Permanent(e)) if end - start == 1 => poison.push((
                start,
                Poison {
                    class_name: "omninode.bridge.PermanentProcessingError".to_owned(),
                    message: e,
                },
            )),
            Err(HandlerError::Permanent(e)) => {
                metrics::counter!("kafka_handler_isolations_total", "group" => group.to_owned())
                    .increment(1);
                tracing::warn!(error = %e, group, messages = end - start,
                    "consumer handler refused a batch for good; isolating the message");
                let mid = start + (end - start) / 2;
                pending.push((mid, end));
                pending.push((start, mid));
            }
        }
    }
    poison.sort_by_key(|(i, _)| *i);
    Ok(poison)
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
        let mut attempt: u32 = 0;
        let poison = loop {
            match handle_isolating(&handler, &batch, &spec.group_id).await {
                Ok(p) => break p,
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    metrics::counter!("kafka_handler_retries_total", "group" => spec.group_id.clone())
                        .increment(1);
                    if attempt % 20 == 0 {
                        tracing::error!(error = %e, attempt, group = %spec.group_id,
                            "consumer handler keeps failing; partition waits");
                    } else {
                        tracing::warn!(error = %e, attempt, group = %spec.group_id,
                            "consumer handler failed; retrying batch");
                    }
                    if shutdown.is_cancelled() {
                        return Ok(());
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        };
        let policy = handler.poison_policy();
        for (i, reason) in &poison {
            let msg = &batch[*i];
            if policy == PoisonPolicy::Skip {
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                    group = %spec.group_id, reason = %reason.message, "poison message skipped");
                metrics::counter!("kafka_poison_skipped_total", "group" => spec.group_id.clone(),
                    "topic" => msg.topic.clone())
                .increment(1);
                continue;
            }
            let target = dlq_topic_for(&msg.topic);
            let mut attempt: u32 = 0;
            loop {
                let sent = dlq
                    .send_each(vec![OutgoingMessage {
                        topic: &target,
                        key: std::str::from_utf8(msg.key.as_deref().unwrap_or_default())
                            .unwrap_or(""),
                        value: msg.value.as_deref().unwrap_or_default(),
                        headers: dead_letter_headers(msg, reason),
                    }])
                    .await
                    .pop()
                    .unwrap_or(Ok(()));
                match sent {
                    Ok(()) => {
                        tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                            dlq = %target, reason = %reason.message, "poison message dead-lettered");
                        metrics::counter!("kafka_dead_lettered_total", "topic" => msg.topic.clone())
                            .increment(1);
                        break;
                    }
                    Err(e) if e.permanent => {
                        // The dead letter itself can never be written (e.g. the headers pushed it
                        // over the size limit): keep the partition moving, loudly.
                        tracing::error!(error = %e.message, topic = %msg.topic, partition = msg.partition,
                            offset = msg.offset, dlq = %target, "poison message could not be dead-lettered; dropped");
                        metrics::counter!("kafka_poison_dropped_total", "topic" => msg.topic.clone())
                            .increment(1);
                        break;
                    }
                    Err(e) => {
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(error = %e.message, attempt, topic = %target, "dead-lettering failed; retrying");
                        if shutdown.is_cancelled() {
                            return Ok(());
                        }
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
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
