//! Service info, health, metrics and the OpenAPI document.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

use super::envelope::{ok, respond, Envelope, EnvelopeStatus};
use crate::store::breaker::BreakerState;
use crate::web::error::ErrorCode;
use crate::web::health::{self, Health, HealthStatus, Readiness};
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceInfo {
    pub service: &'static str,
    pub version: &'static str,
    /// embedded (SQLite, in-process bus) | production (PostgreSQL, Kafka) | mixed
    pub profile: &'static str,
    /// postgresql | sqlite
    pub database: &'static str,
    /// in_process | kafka
    pub event_bus: &'static str,
    pub endpoints: Endpoints,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoints {
    pub stamping: &'static str,
    pub health: &'static str,
    pub metrics: &'static str,
    pub openapi: &'static str,
    pub docs: &'static str,
}

/// What this service is and where its main endpoints are.
#[utoipa::path(get, path = "/", tag = "system",
    responses((status = 200, description = "Service info", body = Envelope<ServiceInfo>)))]
pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    ok(ServiceInfo {
        service: "omninode-bridge",
        version: env!("CARGO_PKG_VERSION"),
        profile: state.profile(),
        database: state.db.backend().as_str(),
        event_bus: state.event_bus_kind(),
        endpoints: Endpoints {
            stamping: "/api/v1/metadata-stamping",
            health: "/api/v1/metadata-stamping/health",
            metrics: "/metrics",
            openapi: "/openapi.json",
            docs: "/docs/",
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// alive
    pub status: &'static str,
}

/// Plain liveness: the process answers (also at `/health`).
#[utoipa::path(get, path = "/api/v1/metadata-stamping/health/live", tag = "system",
    responses((status = 200, description = "The process answers", body = Envelope<Liveness>)))]
pub async fn live() -> HttpResponse {
    ok(Liveness { status: "alive" })
}

/// Component health: stamping engine, database, event bus, intelligence client.
#[utoipa::path(get, path = "/api/v1/metadata-stamping/health", tag = "system",
    responses((status = 200, description = "Overall and per-component health", body = Envelope<Health>)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    ok(health::report(&state).await)
}

/// Readiness: 503 while the database is unreachable.
#[utoipa::path(get, path = "/api/v1/metadata-stamping/health/ready", tag = "system",
    responses((status = 200, description = "Ready", body = Envelope<Readiness>),
        (status = 503, description = "DATABASE_UNAVAILABLE (data still says why)", body = Envelope<Readiness>)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = health::database(&state).await;
    let db_up = database.status == HealthStatus::Healthy;
    let data = Readiness {
        ready: db_up,
        database,
    };
    if db_up {
        ok(data)
    } else {
        respond(
            ErrorCode::DatabaseUnavailable.status(),
            EnvelopeStatus::Error,
            Some(data),
            Some(vec![super::envelope::ErrorDetail {
                code: ErrorCode::DatabaseUnavailable,
                field: None,
                message: "the database is unreachable".into(),
            }]),
            Some("not ready: database unreachable".into()),
        )
    }
}

fn percentiles_json(p: crate::telemetry::Percentiles) -> Value {
    json!({
        "count": p.count,
        "p50_ms": p.p50_ms,
        "p95_ms": p.p95_ms,
        "p99_ms": p.p99_ms,
        "max_ms": p.max_ms,
        "mean_ms": p.mean_ms,
    })
}

/// JSON operational statistics.
pub async fn metrics_json(state: web::Data<AppState>) -> HttpResponse {
    let stats = state.stamping.stats();
    let total_stamps = tokio::time::timeout(
        Duration::from_millis(500),
        crate::store::stamps::count_all(&state.db),
    )
    .await
    .ok()
    .and_then(|r| r.ok());
    let outbox = health::outbox_backlog(&state).await;
    let commits = stats.commits.load(Relaxed);
    let rows = stats.committed_rows.load(Relaxed);
    ok(json!({
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "hash_timing": percentiles_json(stats.hash_latency.percentiles()),
        "stamp_timing": percentiles_json(stats.stamp_latency.percentiles()),
        "counts": {
            "stamps_created": stats.stamps_created.load(Relaxed),
            "stamps_replayed": stats.stamps_replayed.load(Relaxed),
            "validations": stats.validations.load(Relaxed),
            "batches": stats.batches.load(Relaxed),
            "hashes": stats.hashes.load(Relaxed),
            "stored_stamps": total_stamps,
        },
        "group_commit": {
            "commits": commits,
            "rows": rows,
            "mean_rows_per_commit": if commits == 0 { 0.0 } else { rows as f64 / commits as f64 },
        },
        "database": {
            "backend": state.db.backend().as_str(),
            "pool": health::pool(&state),
            "circuit_breaker": state.db.breaker().state().as_str(),
        },
        "outbox": outbox.map(|(unsent, age)| json!({
            "unsent": unsent,
            "oldest_unsent_age_seconds": age,
        })),
    }))
}

/// Prometheus text exposition.
pub async fn metrics_prometheus(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool_stats();
    metrics::gauge!("db_pool_max_connections").set(pool.max_size as f64);
    metrics::gauge!("db_pool_connections").set(pool.size as f64);
    metrics::gauge!("db_pool_in_use").set(pool.in_use() as f64);
    metrics::gauge!("db_pool_waiting").set(pool.waiting as f64);
    metrics::gauge!("db_pool_saturation").set(pool.saturation());
    metrics::gauge!("db_breaker_open").set(if state.db.breaker().state() == BreakerState::Closed {
        0.0
    } else {
        1.0
    });
    metrics::gauge!("process_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    if let Some((unsent, age)) = health::outbox_backlog(&state).await {
        metrics::gauge!("outbox_unsent_events").set(unsent as f64);
        metrics::gauge!("outbox_oldest_unsent_age_seconds").set(age.unwrap_or(0.0));
    }
    if let Some(dead) = health::outbox_dead(&state).await {
        metrics::gauge!("outbox_dead_events").set(dead as f64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::prometheus().render())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OmniNode Bridge", description = "BLAKE3 metadata stamping service (O.N.E. v0.1)"),
    paths(
        root,
        live,
        health,
        ready,
        super::stamping::stamp,
        super::stamping::validate,
        super::stamping::hash,
        super::stamping::get_stamp,
        super::stamping::list_namespace,
        super::stamping::batch,
        super::stamping::validate_protocol,
        super::aggregations::list,
        super::aggregations::get,
        super::aggregations::query,
        super::aggregations::snapshot,
        super::codegen::call,
        super::codegen::session,
        super::workflows::submit,
        super::workflows::get,
        super::workflows::list,
        super::dlq::stats,
        super::dlq::messages,
        super::dlq::redrive,
        super::dlq::reset,
        super::dlq::outbox,
        super::dlq::outbox_redrive,
        super::tracer::list,
        super::tracer::get,
        super::tracer::stream,
        super::tracer::session,
        super::tracer::session_metrics,
        super::tracer::correlation,
        super::tracer::search,
    ),
    tags(
        (name = "system", description = "Service info, liveness, health and readiness"),
        (name = "workflows", description = "Stamping workflows: submit, follow, list"),
        (name = "stamping", description = "Stamp, validate, hash and look up content"),
        (name = "aggregations", description = "Per-namespace aggregates kept by the reducer"),
        (name = "codegen", description = "Codegen request/response gateway over Kafka"),
        (name = "dlq", description = "Dead-letter queues: counts, alerts, messages, redrive"),
        (name = "tracer", description = "Recorded events: listing, traces, metrics, search, live stream"),
    )
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_health_and_workflow_responses() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/",
            "/api/v1/metadata-stamping/health",
            "/api/v1/metadata-stamping/health/ready",
            "/api/v1/workflows",
            "/api/v1/workflows/{workflow_id}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path}");
        }
        let schemas = &doc["components"]["schemas"];
        for name in [
            "Health",
            "DatabaseHealth",
            "EventBusHealth",
            "Readiness",
            "WorkflowAccepted",
            "WorkflowDetail",
            "StepDto",
            "WorkflowList",
            "CodegenSessionDto",
            "ErrorCode",
        ] {
            assert!(schemas[name].is_object(), "{name} missing from the schemas");
        }
        let health = &doc["paths"]["/api/v1/metadata-stamping/health"]["get"];
        assert!(health["responses"]["200"].to_string().contains("Health"));
    }
}
