//! The JSON API (actix-web): routes, unified envelopes, wire DTOs, the OpenAPI document. Thin:
//! handlers read parameters (`crate::web::params`), call a service, and shape the wire response;
//! errors are classified in `crate::web::error` and rendered as envelopes here (`error.rs`).
//!
//! Boundary: a sibling of `crate::dashboard` over the same services; neither imports the other.
//! `crate::app` mounts both.

pub mod aggregations;
pub mod codegen;
pub mod dlq;
pub mod dto;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod stamping;
pub mod system;
pub mod tracer;
pub mod workflows;

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

use crate::config::Settings;
use error::{ApiError, ErrorCode};

/// The answer for a path no route matches (the whole service's default).
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        None,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::MethodNotAllowed,
        None,
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// Largest codegen request body (bytes).
pub const CODEGEN_BODY_LIMIT: usize = 900 * 1024;

/// A resource answering `route` and, for any other method, a 405 in the unified envelope.
fn resource(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(method_not_allowed))
}

/// Every route of the JSON API (and the service info, health, metrics and OpenAPI routes).
pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    // Routes carrying `content` take bodies up to `Settings::content_body_limit` (JSON escapes the
    // content; its decoded size is checked against `stamping.max_content_bytes`); every other JSON
    // route keeps the small default, `http.max_json_body_bytes` (see `extract`).
    let content = extract::JsonLimit(settings.content_body_limit());
    let content_route =
        |path: &str, route: actix_web::Route| resource(path, route).app_data(content);
    cfg.service(resource("/", web::get().to(system::root)))
        .service(resource("/health", web::get().to(system::live)))
        .service(resource(
            "/metrics",
            web::get().to(system::metrics_prometheus),
        ))
        .service(resource(
            "/openapi.json",
            web::get().to(system::openapi_json),
        ))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .url("/api-docs/openapi.json", system::ApiDoc::openapi()),
        )
        .service(
            web::scope("/api/v1/metadata-stamping")
                .service(resource("/hash", web::post().to(stamping::hash)))
                .service(content_route("/stamp", web::post().to(stamping::stamp)))
                .service(resource(
                    "/stamp/{file_hash}",
                    web::get().to(stamping::get_stamp),
                ))
                .service(content_route(
                    "/validate",
                    web::post().to(stamping::validate),
                ))
                .service(content_route("/batch", web::post().to(stamping::batch)))
                .service(resource(
                    "/namespace/{namespace}",
                    web::get().to(stamping::list_namespace),
                ))
                .service(content_route(
                    "/validate-protocol",
                    web::post().to(stamping::validate_protocol),
                ))
                .service(resource("/health", web::get().to(system::health)))
                .service(resource("/health/live", web::get().to(system::live)))
                .service(resource("/health/ready", web::get().to(system::ready)))
                .service(resource("/metrics", web::get().to(system::metrics_json))),
        )
        .service(resource(
            "/api/v1/aggregations",
            web::get().to(aggregations::list),
        ))
        .service(resource(
            "/api/v1/aggregations/{namespace}",
            web::get().to(aggregations::get),
        ))
        .service(resource(
            "/aggregation/query",
            web::post().to(aggregations::query),
        ))
        .service(resource(
            "/state/snapshot",
            web::get().to(aggregations::snapshot),
        ))
        .service(resource(
            "/api/v1/codegen/sessions/{session_id}",
            web::get().to(codegen::session),
        ))
        .service(
            // Codegen messages travel through Kafka (1 MB messages by default): refuse bigger bodies
            // here with a 413 instead of failing at the broker.
            resource("/api/v1/codegen/{operation}", web::post().to(codegen::call))
                .app_data(extract::JsonLimit(CODEGEN_BODY_LIMIT)),
        )
        .service(
            web::resource("/api/v1/workflows")
                .app_data(content)
                .route(web::post().to(workflows::submit))
                .route(web::get().to(workflows::list))
                .default_service(web::to(method_not_allowed)),
        )
        .service(resource(
            "/api/v1/workflows/{workflow_id}",
            web::get().to(workflows::get),
        ))
        .service(content_route(
            "/workflow/submit",
            web::post().to(workflows::submit_compat),
        ))
        .service(resource(
            "/workflow/{workflow_id}/status",
            web::get().to(workflows::get),
        ))
        .service(resource("/api/v1/dlq/stats", web::get().to(dlq::stats)))
        .service(resource(
            "/api/v1/dlq/messages",
            web::get().to(dlq::messages),
        ))
        .service(resource(
            "/api/v1/dlq/redrive",
            web::post().to(dlq::redrive),
        ))
        .service(resource("/api/v1/dlq/reset", web::post().to(dlq::reset)))
        .service(resource("/api/v1/dlq/outbox", web::get().to(dlq::outbox)))
        .service(resource(
            "/api/v1/dlq/outbox/redrive",
            web::post().to(dlq::outbox_redrive),
        ))
        .service(resource("/api/v1/events", web::get().to(tracer::list)))
        // Before `/api/v1/events/{event_id}`: routes match in registration order.
        .service(resource(
            "/api/v1/events/stream",
            web::get().to(tracer::stream),
        ))
        .service(resource(
            "/api/v1/events/{event_id}",
            web::get().to(tracer::get),
        ))
        .service(resource(
            "/api/v1/traces/sessions/{session_id}",
            web::get().to(tracer::session),
        ))
        .service(resource(
            "/api/v1/traces/sessions/{session_id}/metrics",
            web::get().to(tracer::session_metrics),
        ))
        .service(resource(
            "/api/v1/traces/correlation/{correlation_id}",
            web::get().to(tracer::correlation),
        ))
        .service(resource("/api/v1/search", web::get().to(tracer::search)));
}
