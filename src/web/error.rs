//! The one place where errors become HTTP responses.
//!
//! Policy: a caller's mistake is a 4xx naming the field (`VALIDATION_ERROR` 422 for malformed JSON,
//! wrong types or out-of-range parameters; the codes of SPEC §1.3 for the rest). The database being
//! unreachable is `DATABASE_UNAVAILABLE` 503, never a 500. A 500 means a bug: its detail goes to the
//! log with the correlation id, the body says only that it happened.

use actix_web::http::StatusCode;

use super::params::{IdParam, ParamError};
use crate::stamping::StampingError;
use crate::store::StoreError;
use crate::tracer::service::TracerError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "VALIDATION_ERROR",
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn too_large(field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            field,
            message,
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_connectivity() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                None,
                "the database is unavailable; retry shortly",
            )
        } else {
            tracing::error!(error = %e, "database error");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                None,
                "internal error; see the service log for this correlation id",
            )
        }
    }
}

impl From<StampingError> for ApiError {
    fn from(e: StampingError) -> Self {
        match e {
            StampingError::Namespace { ref field, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "NAMESPACE_INVALID",
                Some(field),
                e.to_string(),
            ),
            StampingError::TooLarge { ref field, .. } => {
                ApiError::too_large(Some(field), e.to_string())
            }
            StampingError::InvalidField { ref field, .. } => {
                ApiError::validation(field.clone(), e.to_string())
            }
            StampingError::EmptyBatch => ApiError::new(
                StatusCode::BAD_REQUEST,
                "EMPTY_BATCH_REQUEST",
                Some("items"),
                e.to_string(),
            ),
            StampingError::BatchTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BATCH_TOO_LARGE",
                Some("items"),
                e.to_string(),
            ),
            StampingError::Store(s) => s.into(),
            StampingError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                None,
                "the service is shutting down",
            ),
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::BadId(id) => ApiError::new(
                StatusCode::BAD_REQUEST,
                match id {
                    IdParam::EventId => "INVALID_EVENT_ID",
                    IdParam::WorkflowId => "INVALID_WORKFLOW_ID",
                    IdParam::SessionId => "INVALID_SESSION_ID",
                },
                Some(id.name()),
                e.to_string(),
            ),
            other => ApiError::validation(other.param(), other.to_string()),
        }
    }
}

impl From<TracerError> for ApiError {
    fn from(e: TracerError) -> Self {
        match e {
            TracerError::Nul { field } | TracerError::TooLong { field } => {
                ApiError::validation(field, e.to_string())
            }
            TracerError::InvertedRange => ApiError::validation("since", e.to_string()),
            TracerError::BadCursor => ApiError::validation("cursor", e.to_string()),
            TracerError::MissingQuery => ApiError::validation("q", e.to_string()),
            TracerError::EventNotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "EVENT_NOT_FOUND",
                Some("event_id"),
                e.to_string(),
            ),
            TracerError::Store(s) => s.into(),
        }
    }
}

/// No workflow with this id (the API's resource and the dashboard's page).
pub fn workflow_not_found(id: uuid::Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "WORKFLOW_NOT_FOUND",
        Some("workflow_id"),
        format!("no workflow {id}"),
    )
}
