//! `AppState`: the handles of the running services that the web edges (`crate::http`,
//! `crate::dashboard`) are given. Built by `crate::app::Services::start`.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::events::bus::EventBus;
use crate::stamping::StampingService;
use crate::store::Db;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub stamping: StampingService,
    pub bus: EventBus,
    /// The Kafka producer (production profile), for health checks.
    pub kafka: Option<crate::kafka::producer::KafkaPublisher>,
    pub dlq: crate::dlq::DlqMonitor,
    pub codegen: crate::codegen::gateway::CodegenGateway,
    /// The OnexTree client, when `intelligence.onextree_url` is set.
    pub intelligence: Option<Arc<crate::intelligence::OnexTreeClient>>,
    pub workflows: crate::workflow::engine::WorkflowEngine,
    /// Live events for the SSE tail and the dashboard.
    pub live: crate::tracer::live::LiveFeed,
    /// Cancelled when the server begins to stop: long-lived responses (SSE) end then.
    pub closing: tokio_util::sync::CancellationToken,
    pub started: Instant,
    /// Request-body bytes held in memory, over all requests (`http.max_inflight_body_bytes`).
    pub body_budget: crate::web::budget::BodyBudget,
}

impl AppState {
    pub fn profile(&self) -> &'static str {
        match (self.db.backend(), self.settings.kafka.brokers.is_empty()) {
            (crate::store::Backend::Sqlite, true) => "embedded",
            (crate::store::Backend::Postgres, false) => "production",
            _ => "mixed",
        }
    }

    pub fn event_bus_kind(&self) -> &'static str {
        if self.settings.kafka.brokers.is_empty() {
            "in_process"
        } else {
            "kafka"
        }
    }
}
