//! The unified response envelope (wire type): every body has `status`, `data`, `error`, `message`,
//! `metadata` at top level.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::web::context::RequestCtx;
use crate::web::error::ErrorCode;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeStatus {
    Success,
    Error,
    Partial,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T: Serialize> {
    pub status: EnvelopeStatus,
    pub data: Option<T>,
    pub error: Option<Vec<ErrorDetail>>,
    pub message: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
}

fn base_metadata(status: StatusCode) -> Value {
    let mut meta = json!({
        "timestamp": crate::stamping::core::format_timestamp(chrono::Utc::now()),
        "status_code": status.as_u16(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(ctx) = RequestCtx::current() {
        meta["correlation_id"] = json!(ctx.correlation_id);
        meta["request_id"] = json!(ctx.request_id);
        meta["processing_time_ms"] = json!(ctx.started.elapsed().as_secs_f64() * 1000.0);
    }
    meta
}

/// `200 OK` with `status: success`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    respond(
        StatusCode::OK,
        EnvelopeStatus::Success,
        Some(data),
        None,
        None,
    )
}

pub fn respond<T: Serialize>(
    status: StatusCode,
    kind: EnvelopeStatus,
    data: Option<T>,
    error: Option<Vec<ErrorDetail>>,
    message: Option<String>,
) -> HttpResponse {
    let body = Envelope {
        status: kind,
        data,
        error,
        message,
        metadata: Some(base_metadata(status)),
    };
    HttpResponse::build(status).json(body)
}
