//! The request/response gateway: publishes a validated request on its request topic (keyed by the
//! correlation id, wrapped in an OnexEnvelopeV1) and waits for the response with the same correlation
//! id on the response topic.
//!
//! Routing across instances: every instance reads every response — its response consumer uses a group
//! id of its own (`<kafka.consumer_group>.codegen-gateway.<instance>`, starting at the latest offset) —
//! and completes the waiting HTTP request if it holds it; responses for correlation ids it does not
//! hold are ignored (another instance holds them, or nobody does any more). In the embedded profile
//! requests and responses travel on the in-process bus.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::schemas::{self, CodegenRequest, CodegenResponse, Operation, SchemaError};
use crate::events::bus::{BusEvent, EventBus};
use crate::events::envelope::OnexEnvelopeV1;
use crate::events::topics::{codegen_request_topic, codegen_response_topic};
use crate::events::{EventFactory, TraceContext};
use crate::kafka::consumer::{BatchHandler, HandlerError, Incoming, Poison, PoisonPolicy};
use crate::kafka::producer::{envelope_headers, KafkaPublisher, OutgoingMessage};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no response for correlation id {correlation_id} within {timeout_ms} ms")]
    Timeout {
        correlation_id: Uuid,
        timeout_ms: u64,
    },
    #[error("a request with correlation id {0} is already waiting")]
    Duplicate(Uuid),
    #[error("publishing the request failed: {0}")]
    Publish(String),
    #[error("{max} codegen requests are already waiting for their responses; retry shortly")]
    TooManyPending { max: usize },
}

type Pending = Arc<Mutex<HashMap<Uuid, (Operation, oneshot::Sender<CodegenResponse>)>>>;

struct PendingGuard {
    pending: Pending,
    correlation_id: Uuid,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&self.correlation_id);
        }
    }
}

#[derive(Clone)]
pub struct CodegenGateway {
    pending: Pending,
    publisher: Option<KafkaPublisher>,
    bus: EventBus,
    events: EventFactory,
    timeout: Duration,
    /// Most requests waiting at once (the pending map's bound).
    max_pending: usize,
}

/// The codegen message inside a value: the envelope's payload, or the bare object.
pub fn message_bytes(value: &[u8]) -> Option<(Vec<u8>, Option<OnexEnvelopeV1>)> {
    let v: Value = serde_json::from_slice(value).ok()?;
    match serde_json::from_value::<OnexEnvelopeV1>(v.clone()) {
        Ok(env) => Some((serde_json::to_vec(&env.payload).ok()?, Some(env))),
        Err(_) => Some((serde_json::to_vec(&v).ok()?, None)),
    }
}

/// Which operation a codegen topic belongs to, and whether it carries responses.
pub fn topic_operation(topic: &str) -> Option<(Operation, bool)> {
    Operation::ALL.into_iter().find_map(|op| {
        if topic == codegen_request_topic(op.as_str()) {
            Some((op, false))
        } else if topic == codegen_response_topic(op.as_str()) {
            Some((op, true))
        } else {
            None
        }
    })
}

/// Schema check of a message seen on a codegen topic (for dead-lettering invalid ones).
pub fn check_codegen_message(topic: &str, value: &[u8]) -> Result<(), SchemaError> {
    let Some((bytes, _)) = message_bytes(value) else {
        return Err(SchemaError::new(schemas::BODY_FIELD, "not a JSON object"));
    };
    if topic == crate::events::topics::CODEGEN_STATUS_TOPIC {
        return schemas::parse_status(&bytes).map(|_| ());
    }
    match topic_operation(topic) {
        Some((op, true)) => schemas::parse_response(op, &bytes).map(|_| ()),
        Some((op, false)) => schemas::parse_request(op, &bytes).map(|_| ()),
        None => Ok(()),
    }
}

impl CodegenGateway {
    pub fn new(
        publisher: Option<KafkaPublisher>,
        bus: EventBus,
        events: EventFactory,
        timeout: Duration,
    ) -> Self {
        CodegenGateway {
            pending: Arc::new(Mutex::new(HashMap::new())),
            publisher,
            bus,
            events,
            timeout,
            max_pending: usize::MAX,
        }
    }

    /// Bound the requests waiting at once; one more is refused with `TooManyPending`.
    pub fn with_max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    pub fn waiting(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Publish `request` and wait for its response.
    pub async fn call(
        &self,
        request: CodegenRequest,
        trace: &TraceContext,
    ) -> Result<CodegenResponse, GatewayError> {
        let op = request.operation();
        let correlation_id = request.correlation_id();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.contains_key(&correlation_id) {
                return Err(GatewayError::Duplicate(correlation_id));
            }
            if pending.len() >= self.max_pending {
                metrics::counter!("codegen_requests_refused_total").increment(1);
                return Err(GatewayError::TooManyPending {
                    max: self.max_pending,
                });
            }
            pending.insert(correlation_id, (op, tx));
        }
        // Removes the pending entry however this future ends (answer, timeout, or the HTTP request
        // being dropped when its client goes away).
        let _guard = PendingGuard {
            pending: self.pending.clone(),
            correlation_id,
        };
        // One deadline for publishing and waiting: a slow broker cannot stretch the request past it.
        let result = match tokio::time::timeout(
            self.timeout,
            self.publish_and_wait(op, &request, correlation_id, trace, rx),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(GatewayError::Timeout {
                correlation_id,
                timeout_ms: self.timeout.as_millis() as u64,
            }),
        };
        metrics::counter!("codegen_requests_total", "operation" => op.as_str(), "outcome" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        result
    }

    async fn publish_and_wait(
        &self,
        op: Operation,
        request: &CodegenRequest,
        correlation_id: Uuid,
        trace: &TraceContext,
        rx: oneshot::Receiver<CodegenResponse>,
    ) -> Result<CodegenResponse, GatewayError> {
        let topic = codegen_request_topic(op.as_str());
        let payload =
            serde_json::to_value(request).map_err(|e| GatewayError::Publish(e.to_string()))?;
        let mut trace = trace.clone();
        trace.correlation_id = Some(correlation_id);
        let env = self.events.envelope_named(
            &format!("codegen.request.{}", op.as_str()),
            trace,
            Some(correlation_id.to_string()),
            payload,
        );
        match &self.publisher {
            Some(p) => {
                let value =
                    serde_json::to_vec(&env).map_err(|e| GatewayError::Publish(e.to_string()))?;
                let key = correlation_id.to_string();
                p.send_all(vec![OutgoingMessage {
                    topic: &topic,
                    key: &key,
                    value: &value,
                    headers: envelope_headers(&env),
                }])
                .await
                .map_err(|e| GatewayError::Publish(e.to_string()))?;
            }
            None => self.bus.publish(BusEvent {
                topic,
                key: correlation_id.to_string(),
                envelope: env,
            }),
        }
        rx.await.map_err(|_| GatewayError::Timeout {
            correlation_id,
            timeout_ms: self.timeout.as_millis() as u64,
        })
    }

    /// A message from a response topic: complete the waiting request it answers, if this instance
    /// holds it. Returns whether it was matched.
    pub fn deliver(&self, topic: &str, value: &[u8]) -> bool {
        let Some((op, true)) = topic_operation(topic) else {
            return false;
        };
        let Some((bytes, _)) = message_bytes(value) else {
            metrics::counter!("codegen_invalid_responses_total").increment(1);
            return false;
        };
        let response = match schemas::parse_response(op, &bytes) {
            Ok(r) => r,
            Err(e) => {
                // Skipped and counted; the tracer's group dead-letters it.
                metrics::counter!("codegen_invalid_responses_total").increment(1);
                tracing::debug!(topic, error = %e, "invalid codegen response ignored by the gateway");
                return false;
            }
        };
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&response.correlation_id()));
        match waiter {
            Some((_, tx)) => tx.send(response).is_ok(),
            None => {
                tracing::debug!(topic, correlation_id = %response.correlation_id(), "response for an unknown correlation id ignored");
                metrics::counter!("codegen_unmatched_responses_total").increment(1);
                false
            }
        }
    }

    /// Embedded profile: responses published on the in-process bus.
    pub async fn run_bus(self, shutdown: CancellationToken) {
        let mut rx = self.bus.subscribe();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = rx.recv() => match got {
                    Ok(ev) => {
                        if topic_operation(&ev.topic).is_some_and(|(_, is_response)| is_response) {
                            if let Ok(value) = serde_json::to_vec(&ev.envelope) {
                                self.deliver(&ev.topic, &value);
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "codegen gateway fell behind the bus");
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// Production profile: this instance's response consumer (never dead-letters: the tracer does).
impl BatchHandler for CodegenGateway {
    fn handle(
        &self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<(usize, Poison)>, HandlerError>> + Send {
        for m in batch {
            if let Some(v) = &m.value {
                self.deliver(&m.topic, v);
            }
        }
        async { Ok(Vec::new()) }
    }

    /// Responses are routed in memory and never fail; the tracer's group dead-letters invalid
    /// codegen messages, so this listener skips rather than dead-letters anything.
    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::Skip
    }
}
