//! Handlers of the codegen gateway: `POST /api/v1/codegen/{analyze|validate|pattern|mixin}` and
//! `GET /api/v1/codegen/sessions/{session_id}`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{ok, Envelope};
use super::error::{ApiError, ErrorCode};
use super::extract::JsonBody;
use crate::codegen::schemas::{self, Operation};
use crate::events::topics::CODEGEN_STATUS_TOPIC;
use crate::web::context::RequestCtx;
use crate::web::params::{self, IdParam};
use crate::web::AppState;

/// Validate a codegen request, publish it, and answer with the matching response.
#[utoipa::path(post, path = "/api/v1/codegen/{operation}", tag = "codegen",
    params(("operation" = String, Path, description = "analyze | validate | pattern | mixin")),
    request_body(content = Object, description = "AnalysisRequest / ValidationRequest / PatternRequest / MixinRequest"),
    responses((status = 200, description = "The matching response message"),
        (status = 404, description = "UNKNOWN_OPERATION"), (status = 422, description = "VALIDATION_ERROR"),
        (status = 504, description = "CODEGEN_TIMEOUT (names the correlation id)")))]
pub async fn call(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let op_name = path.into_inner();
    let op = Operation::parse(&op_name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownOperation,
            Some("operation"),
            format!("{op_name:?} is not one of analyze, validate, pattern, mixin"),
        )
    })?;
    // Parsed once, straight into the operation's schema (no intermediate `Value`).
    let request = schemas::parse_request(op, &body.0)?;
    let response = state.codegen.call(request, &RequestCtx::trace()).await?;
    Ok(ok(response))
}

/// A codegen session: its latest status event and every status event so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodegenSessionDto {
    pub session_id: String,
    pub status: String,
    #[schema(value_type = Option<f64>)]
    pub progress_percentage: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub message: Option<Value>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<SessionStatusDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStatusDto {
    pub status: String,
    #[schema(value_type = Option<f64>)]
    pub progress_percentage: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub message: Option<Value>,
    pub timestamp: DateTime<Utc>,
    pub event_id: Uuid,
}

/// Current status and history of a codegen session (from the status events recorded in event_logs).
#[utoipa::path(get, path = "/api/v1/codegen/sessions/{session_id}", tag = "codegen",
    params(("session_id" = String, Path)),
    responses((status = 200, description = "Session status and history", body = Envelope<CodegenSessionDto>),
        (status = 400, description = "INVALID_SESSION_ID"), (status = 404, description = "SESSION_NOT_FOUND")))]
pub async fn session(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let id = params::uuid(&id, IdParam::SessionId)?.to_string();
    let rows = crate::store::event_logs::session_events(&state.db, &id, CODEGEN_STATUS_TOPIC, 1000)
        .await?;
    let Some(last) = rows.last() else {
        return Err(ApiError::new(
            ErrorCode::SessionNotFound,
            Some("session_id"),
            format!("no status events for session {id}"),
        ));
    };
    let history = rows
        .iter()
        .map(|r| SessionStatusDto {
            status: r.status.clone(),
            progress_percentage: r.payload.0.get("progress_percentage").cloned(),
            message: r.payload.0.get("message").cloned(),
            timestamp: r.event_timestamp.0,
            event_id: r.event_id.0,
        })
        .collect();
    Ok(ok(CodegenSessionDto {
        session_id: id,
        status: last.status.clone(),
        progress_percentage: last.payload.0.get("progress_percentage").cloned(),
        message: last.payload.0.get("message").cloned(),
        updated_at: last.event_timestamp.0,
        history,
    }))
}
