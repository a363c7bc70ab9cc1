//! The idempotent producer (`enable.idempotence`, `acks=all`): per-partition order is kept across
//! retries, and a retried send is never duplicated by the broker.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use super::{base_config, KafkaAdapterError};
use crate::config::KafkaSettings;
use crate::events::envelope::OnexEnvelopeV1;

/// Why one message was not delivered.
#[derive(Debug, Clone)]
pub struct DeliveryError {
    pub topic: String,
    pub message: String,
    /// The broker (or the client's own checks) will never accept this message as it is.
    pub permanent: bool,
}

impl From<DeliveryError> for KafkaAdapterError {
    fn from(e: DeliveryError) -> Self {
        KafkaAdapterError::Delivery {
            topic: e.topic,
            message: e.message,
        }
    }
}

/// Errors that say "this message, as it is, can never be produced" — retrying it cannot help. Everything
/// else (broker down, timeouts, leader moves, a topic still being created) is transient.
pub fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e {
        KafkaError::MessageProduction(code) => matches!(
            code,
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::InvalidTopic
                | C::BadMessage
                | C::InvalidArgument
        ),
        _ => false,
    }
}

/// One message to publish.
pub struct OutgoingMessage<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub value: &'a [u8],
    pub headers: OwnedHeaders,
}

#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Arc<RwLock<FutureProducer>>,
    failed_batches: Arc<AtomicU32>,
    config: ClientConfig,
    queue_timeout: Duration,
}

/// Kafka headers of an envelope: `event_type`, `correlation_id`, and `traceparent` when known.
pub fn envelope_headers(env: &OnexEnvelopeV1) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new().insert(Header {
        key: "event_type",
        value: Some(env.event_type.as_str()),
    });
    let correlation = env.correlation_id.map(|c| c.to_string());
    if let Some(c) = &correlation {
        headers = headers.insert(Header {
            key: "correlation_id",
            value: Some(c.as_str()),
        });
    }
    if let Some(tp) = env.metadata.get("traceparent").and_then(|v| v.as_str()) {
        headers = headers.insert(Header {
            key: "traceparent",
            value: Some(tp),
        });
    }
    headers = headers.insert(Header {
        key: "event_id",
        value: Some(env.event_id.to_string().as_str()),
    });
    headers
}

impl KafkaPublisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaAdapterError> {
        let mut config = base_config(settings);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                settings.delivery_timeout_ms.to_string(),
            )
            .set("queue.buffering.max.messages", "200000")
            .set("message.max.bytes", settings.message_max_bytes.to_string());
        let producer: FutureProducer = config.create()?;
        Ok(KafkaPublisher {
            producer: Arc::new(RwLock::new(producer)),
            failed_batches: Arc::new(AtomicU32::new(0)),
            config,
            // A full local queue is back-pressure: wait for room, up to this long.
            queue_timeout: Duration::from_secs(5),
        })
    }

    fn current(&self) -> FutureProducer {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// An idempotent producer that hit a fatal error (e.g. fenced after the broker lost its producer
    /// state) can never send again, and one whose batches keep timing out after a broker came back
    /// may be stuck on producer state the broker no longer has: replace it. The relay retries the
    /// unsent outbox rows; consumers drop duplicates by `event_id`.
    fn replace_if_stuck(&self, producer: &FutureProducer) {
        let failures = self.failed_batches.fetch_add(1, Ordering::AcqRel) + 1;
        let fatal = producer.client().fatal_error();
        if fatal.is_some() || failures >= 3 {
            self.failed_batches.store(0, Ordering::Release);
            tracing::warn!(?fatal, failures, "kafka producer is failing; recreating it");
            metrics::counter!("kafka_producer_recreated_total").increment(1);
            match self.config.create::<FutureProducer>() {
                Ok(fresh) => {
                    if let Ok(mut slot) = self.producer.write() {
                        *slot = fresh;
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not recreate the kafka producer"),
            }
        }
    }

    /// Send every message and wait for all delivery reports. Messages of one key keep their order
    /// (idempotent producer). Fails if any message failed; the caller retries the whole set and
    /// consumers drop the duplicates by `event_id`.
    pub async fn send_all(
        &self,
        messages: Vec<OutgoingMessage<'_>>,
    ) -> Result<(), KafkaAdapterError> {
        for r in self.send_each(messages).await {
            r.map_err(KafkaAdapterError::from)?;
        }
        Ok(())
    }

    /// Send every message and wait for all delivery reports; one result per message, in order.
    /// A failure says whether it is permanent for that message (e.g. over `message.max.bytes`) or
    /// transient (broker unavailable, timeout): only transient failures count towards recreating a
    /// stuck producer.
    pub async fn send_each(
        &self,
        messages: Vec<OutgoingMessage<'_>>,
    ) -> Vec<Result<(), DeliveryError>> {
        let producer = self.current();
        let results = self.send_with(&producer, messages).await;
        if results.iter().any(|r| matches!(r, Err(e) if !e.permanent)) {
            self.replace_if_stuck(&producer);
        } else {
            self.failed_batches.store(0, Ordering::Release);
        }
        results
    }

    async fn send_with(
        &self,
        producer: &FutureProducer,
        messages: Vec<OutgoingMessage<'_>>,
    ) -> Vec<Result<(), DeliveryError>> {
        let sends = messages.into_iter().map(|m| {
            let topic = m.topic.to_owned();
            let record = FutureRecord::to(m.topic)
                .key(m.key)
                .payload(m.value)
                .headers(m.headers);
            let fut = producer.send(record, Timeout::After(self.queue_timeout));
            async move {
                match fut.await {
                    Ok(_) => {
                        metrics::counter!("kafka_produced_total", "topic" => topic).increment(1);
                        Ok(())
                    }
                    Err((e, _)) => {
                        let permanent = is_permanent(&e);
                        metrics::counter!("kafka_produce_failed_total", "topic" => topic.clone(),
                            "error_type" => if permanent { "permanent" } else { "transient" })
                        .increment(1);
                        Err(DeliveryError {
                            topic,
                            message: e.to_string(),
                            permanent,
                        })
                    }
                }
            }
        });
        join_all(sends).await
    }

    /// Can a broker be reached? (A metadata request, off the async workers.)
    pub async fn broker_reachable(&self, timeout: Duration) -> Result<usize, String> {
        let producer = self.current();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|m| m.brokers().len())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Wait for queued messages (shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.current().flush(Timeout::After(timeout));
    }
}
