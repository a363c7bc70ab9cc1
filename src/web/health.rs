//! The health model: one function (`report`) computes it; the JSON API serves it
//! (`/api/v1/metadata-stamping/health`, readiness) and the dashboard's overview shows it.
//!
//! Overall status: `unhealthy` while the database does not answer; `degraded` while its circuit
//! breaker is not closed or the event path is not healthy (outbox backlog older than 30 s, Kafka
//! unreachable); otherwise `healthy`. An open OnexTree breaker degrades that component only:
//! workflows get the degraded fallback, not an outage.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::store::breaker::BreakerState;

/// Outbox events older than this mean the event path is stuck.
const OUTBOX_STUCK_SECS: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
    /// The component could not be checked.
    Unknown,
    /// Not configured.
    Disabled,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Unknown => "unknown",
            HealthStatus::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub components: Components,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Components {
    pub stamping_engine: StampingEngineHealth,
    pub database: DatabaseHealth,
    pub event_bus: EventBusHealth,
    pub intelligence_client: IntelligenceHealth,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StampingEngineHealth {
    pub status: HealthStatus,
    pub hash_algorithm: &'static str,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub status: HealthStatus,
    /// postgresql | sqlite
    pub backend: &'static str,
    /// Round trip of the health query.
    pub latency_ms: f64,
    pub pool: PoolHealth,
    pub circuit_breaker: BreakerHealth,
    /// Why the database did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolHealth {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub in_use: usize,
    pub waiting: usize,
    /// in_use / max_size
    pub saturation: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreakerHealth {
    /// closed | open | half_open
    pub state: &'static str,
    pub consecutive_failures: u32,
    pub opened_total: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventBusHealth {
    pub status: HealthStatus,
    /// in_process | kafka
    pub kind: &'static str,
    /// Absent when the outbox could not be read within 500 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_unsent: Option<i64>,
    /// Age of the oldest unpublished event (null: none waiting); absent with `outbox_unsent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unsent_age_seconds: Option<Option<f64>>,
    /// Events the relay quarantined because they can never be published as they are
    /// (`event_outbox_dead`; see `/api/v1/dlq/outbox`). They do not degrade the status: the events
    /// behind them flow. Absent when the count could not be read within 500 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_dead: Option<i64>,
    /// Brokers in the cluster metadata (Kafka reachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntelligenceHealth {
    pub status: HealthStatus,
    /// The OnexTree base URL (absent when disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// closed | open | half_open (absent when disabled)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheHealth>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheHealth {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// Readiness: whether the database answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: DatabaseHealth,
}

/// Pool figures as the health document and the JSON metrics show them.
pub fn pool(state: &AppState) -> PoolHealth {
    let pool = state.db.pool_stats();
    PoolHealth {
        max_size: pool.max_size,
        size: pool.size,
        available: pool.available,
        in_use: pool.in_use(),
        waiting: pool.waiting,
        saturation: pool.saturation(),
    }
}

/// Ping the database and read its pool and breaker.
pub async fn database(state: &AppState) -> DatabaseHealth {
    let started = std::time::Instant::now();
    let ping = state.db.ping().await;
    let breaker = state.db.breaker();
    DatabaseHealth {
        status: match &ping {
            Ok(()) => HealthStatus::Healthy,
            // Up, but every pooled connection is taken: load, not an outage.
            Err(e) if e.is_busy() => HealthStatus::Degraded,
            Err(_) => HealthStatus::Unhealthy,
        },
        backend: state.db.backend().as_str(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        pool: pool(state),
        circuit_breaker: BreakerHealth {
            state: breaker.state().as_str(),
            consecutive_failures: breaker.consecutive_failures(),
            opened_total: breaker.opened_total(),
        },
        error: ping.err().map(|e| e.to_string()),
    }
}

/// Unpublished outbox events and the age of the oldest, in seconds (None if the store did not answer
/// within 500 ms).
pub async fn outbox_backlog(state: &AppState) -> Option<(i64, Option<f64>)> {
    let (unsent, oldest) = tokio::time::timeout(
        Duration::from_millis(500),
        crate::store::outbox::backlog(&state.db),
    )
    .await
    .ok()?
    .ok()?;
    let age = oldest.map(|t| (chrono::Utc::now() - t).num_milliseconds() as f64 / 1000.0);
    Some((unsent, age))
}

/// Outbox events quarantined by the relay (None if the store did not answer within 500 ms).
pub async fn outbox_dead(state: &AppState) -> Option<i64> {
    tokio::time::timeout(
        Duration::from_millis(500),
        crate::store::outbox::dead_count(&state.db),
    )
    .await
    .ok()?
    .ok()
}

/// The event path is healthy while committed events leave the outbox promptly (and, with Kafka,
/// while a broker answers a metadata request within 1 s).
pub async fn event_bus(state: &AppState) -> EventBusHealth {
    let broker = match &state.kafka {
        None => None,
        Some(p) => Some(p.broker_reachable(Duration::from_millis(1000)).await),
    };
    let mut h = match outbox_backlog(state).await {
        Some((unsent, age)) => EventBusHealth {
            status: if age.is_some_and(|a| a > OUTBOX_STUCK_SECS) {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            },
            kind: state.event_bus_kind(),
            outbox_unsent: Some(unsent),
            oldest_unsent_age_seconds: Some(age),
            outbox_dead: None,
            brokers: None,
            error: None,
        },
        None => EventBusHealth {
            status: HealthStatus::Unknown,
            kind: state.event_bus_kind(),
            outbox_unsent: None,
            oldest_unsent_age_seconds: None,
            outbox_dead: None,
            brokers: None,
            error: Some("outbox not readable".into()),
        },
    };
    h.outbox_dead = outbox_dead(state).await;
    match broker {
        Some(Ok(brokers)) => h.brokers = Some(brokers),
        Some(Err(e)) => {
            // Events wait in the outbox (nothing is lost), but nothing reaches Kafka.
            h.status = HealthStatus::Degraded;
            h.error = Some(format!("kafka unreachable: {e}"));
        }
        None => {}
    }
    h
}

pub fn intelligence(state: &AppState) -> IntelligenceHealth {
    match &state.intelligence {
        None => IntelligenceHealth {
            status: HealthStatus::Disabled,
            url: None,
            circuit_breaker: None,
            cache: None,
        },
        Some(client) => {
            let s = client.status_report();
            IntelligenceHealth {
                // An open breaker means workflows get the degraded fallback, not an outage.
                status: if s.circuit_breaker == "closed" {
                    HealthStatus::Healthy
                } else {
                    HealthStatus::Degraded
                },
                url: Some(s.url),
                circuit_breaker: Some(s.circuit_breaker),
                cache: s.cache.map(|c| CacheHealth {
                    entries: c.entries,
                    hits: c.hits,
                    misses: c.misses,
                    evictions: c.evictions,
                }),
            }
        }
    }
}

/// The health document: stamping engine, database, event bus, intelligence client.
pub async fn report(state: &AppState) -> Health {
    let database = database(state).await;
    let event_bus = event_bus(state).await;
    let status = if database.status != HealthStatus::Healthy {
        HealthStatus::Unhealthy
    } else if state.db.breaker().state() == BreakerState::Closed
        && event_bus.status == HealthStatus::Healthy
    {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        components: Components {
            stamping_engine: StampingEngineHealth {
                status: HealthStatus::Healthy,
                hash_algorithm: "BLAKE3",
            },
            database,
            event_bus,
            intelligence_client: intelligence(state),
        },
    }
}
