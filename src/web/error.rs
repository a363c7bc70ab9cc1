//! The one mapping from errors to what a caller sees: every error code (`ErrorCode`) with its HTTP
//! status, and every module error (`StoreError`, `StampingError`, `WorkflowError`, `DlqError`,
//! `GatewayError`, `SchemaError`, `TracerError`, `ParamError`, `JsonError`) turned into an
//! `ApiError` — status, code, the field it names, message. The JSON API renders an `ApiError` as
//! the unified envelope (`crate::http::error`), the dashboard as an error page with the same status
//! and code (`crate::dashboard::DashError`).
//!
//! Policy: a caller's mistake is a 4xx naming the field (`VALIDATION_ERROR` 422 for malformed JSON,
//! wrong types or out-of-range parameters; the codes of SPEC §1.3 for the rest). The database being
//! unreachable is `DATABASE_UNAVAILABLE` 503, never a 500. A 500 means a bug: its detail goes to the
//! log with the correlation id, the body says only that it happened.

use actix_web::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{IdParam, ParamError};
use crate::codegen::gateway::GatewayError;
use crate::codegen::schemas::SchemaError;
use crate::dlq::DlqError;
use crate::json::{JsonError, JsonErrorKind};
use crate::stamping::namespace::NamespaceError;
use crate::stamping::StampingError;
use crate::store::StoreError;
use crate::tracer::service::TracerError;
use crate::workflow::engine::WorkflowError;

/// Every error code the service answers with (`SCREAMING_SNAKE_CASE` on the wire).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // 400
    NamespaceInvalid,
    EmptyBatchRequest,
    InvalidHashFormat,
    MissingFile,
    UnknownContract,
    InvalidWorkflowId,
    InvalidSessionId,
    InvalidEventId,
    // 403
    CrossSiteRequest,
    // 404
    NotFound,
    StampNotFound,
    StampNotFoundInNamespace,
    AggregationNotFound,
    WorkflowNotFound,
    SessionNotFound,
    EventNotFound,
    UnknownOperation,
    // 405
    MethodNotAllowed,
    // 409
    DuplicateCorrelationId,
    // 413
    PayloadTooLarge,
    BatchTooLarge,
    // 422
    ValidationError,
    // 429
    WorkflowQueueFull,
    // 500
    InternalError,
    // 503
    DatabaseUnavailable,
    DatabaseBusy,
    StorageFull,
    KafkaUnavailable,
    ServiceUnavailable,
    CodegenBusy,
    TooManyStreamClients,
    // 504
    CodegenTimeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The HTTP status every answer with this code has.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            NamespaceInvalid | EmptyBatchRequest | InvalidHashFormat | MissingFile
            | UnknownContract | InvalidWorkflowId | InvalidSessionId | InvalidEventId => {
                StatusCode::BAD_REQUEST
            }
            CrossSiteRequest => StatusCode::FORBIDDEN,
            NotFound
            | StampNotFound
            | StampNotFoundInNamespace
            | AggregationNotFound
            | WorkflowNotFound
            | SessionNotFound
            | EventNotFound
            | UnknownOperation => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            DuplicateCorrelationId => StatusCode::CONFLICT,
            PayloadTooLarge | BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            WorkflowQueueFull => StatusCode::TOO_MANY_REQUESTS,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            DatabaseUnavailable | DatabaseBusy | StorageFull | KafkaUnavailable
            | ServiceUnavailable | CodegenBusy | TooManyStreamClients => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CodegenTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// An error as a caller sees it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    /// The request field or parameter at fault (`items[3].content`, `limit`, `event_id`).
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            code,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::ValidationError,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn too_large(field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::PayloadTooLarge, field, message)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status().as_u16(),
            self.message
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_connectivity() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::new(
                ErrorCode::DatabaseUnavailable,
                None,
                "the database is unavailable; retry shortly",
            )
        } else if e.is_busy() {
            tracing::warn!(error = %e, "database busy");
            ApiError::new(
                ErrorCode::DatabaseBusy,
                None,
                "the database is busy (timed out under load); retry shortly",
            )
        } else if e.is_storage_full() {
            tracing::error!(error = %e, "database storage full");
            ApiError::new(
                ErrorCode::StorageFull,
                None,
                "the database has no space left; retry later",
            )
        } else {
            tracing::error!(error = %e, "database error");
            ApiError::new(
                ErrorCode::InternalError,
                None,
                "internal error; see the service log for this correlation id",
            )
        }
    }
}

impl From<StampingError> for ApiError {
    fn from(e: StampingError) -> Self {
        match e {
            StampingError::Namespace { ref field, .. } => {
                ApiError::new(ErrorCode::NamespaceInvalid, Some(field), e.to_string())
            }
            StampingError::TooLarge { ref field, .. } => {
                ApiError::too_large(Some(field), e.to_string())
            }
            StampingError::InvalidField { ref field, .. } => {
                ApiError::validation(field.clone(), e.to_string())
            }
            StampingError::EmptyBatch => {
                ApiError::new(ErrorCode::EmptyBatchRequest, Some("items"), e.to_string())
            }
            StampingError::BatchTooLarge { .. } => {
                ApiError::new(ErrorCode::BatchTooLarge, Some("items"), e.to_string())
            }
            StampingError::Store(s) => s.into(),
            StampingError::ShuttingDown => ApiError::new(
                ErrorCode::ServiceUnavailable,
                None,
                "the service is shutting down",
            ),
        }
    }
}

/// The in-flight body budget is spent: retry shortly (the envelope carries `Retry-After`).
impl From<crate::web::budget::BudgetSpent> for ApiError {
    fn from(e: crate::web::budget::BudgetSpent) -> Self {
        metrics::counter!("http_body_budget_refusals_total").increment(1);
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            Some("body"),
            format!("too many request bytes in flight; retry shortly ({e})"),
        )
    }
}

/// A multipart body that is not one (or whose part headers are over their limit).
impl From<crate::multipart::MultipartError> for ApiError {
    fn from(e: crate::multipart::MultipartError) -> Self {
        use crate::multipart::MultipartError;
        match e {
            MultipartError::HeadersTooLarge => ApiError::too_large(Some("body"), e.to_string()),
            _ => ApiError::validation("body", format!("malformed multipart body: {e}")),
        }
    }
}

/// A namespace given as `field` that is not one.
pub fn namespace_invalid(field: &str, e: NamespaceError) -> ApiError {
    ApiError::new(ErrorCode::NamespaceInvalid, Some(field), e.to_string())
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::UnknownContract(_) => {
                ApiError::new(ErrorCode::UnknownContract, Some("contract"), e.to_string())
            }
            WorkflowError::QueueFull { .. } => {
                ApiError::new(ErrorCode::WorkflowQueueFull, None, e.to_string())
            }
            WorkflowError::Store(s) => s.into(),
        }
    }
}

/// No workflow with this id (the API's resource and the dashboard's page).
pub fn workflow_not_found(id: uuid::Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::WorkflowNotFound,
        Some("workflow_id"),
        format!("no workflow {id}"),
    )
}

impl From<DlqError> for ApiError {
    fn from(e: DlqError) -> Self {
        match e {
            DlqError::NoKafka | DlqError::Publish(_) => {
                ApiError::new(ErrorCode::KafkaUnavailable, None, e.to_string())
            }
            DlqError::Store(s) => s.into(),
        }
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Timeout { .. } => ApiError::new(
                ErrorCode::CodegenTimeout,
                Some("correlation_id"),
                e.to_string(),
            ),
            GatewayError::Duplicate(_) => ApiError::new(
                ErrorCode::DuplicateCorrelationId,
                Some("correlation_id"),
                e.to_string(),
            ),
            GatewayError::Publish(_) => {
                ApiError::new(ErrorCode::KafkaUnavailable, None, e.to_string())
            }
            GatewayError::TooManyPending { .. } => {
                ApiError::new(ErrorCode::CodegenBusy, None, e.to_string())
            }
        }
    }
}

/// The live tail serves `http.max_sse_clients` already.
impl From<crate::tracer::live::TooManySubscribers> for ApiError {
    fn from(e: crate::tracer::live::TooManySubscribers) -> Self {
        ApiError::new(ErrorCode::TooManyStreamClients, None, e.to_string())
    }
}

/// A codegen request that breaks its schema.
impl From<SchemaError> for ApiError {
    fn from(e: SchemaError) -> Self {
        ApiError::validation(e.field, e.message)
    }
}

/// A request body that is not the JSON expected.
impl From<JsonError> for ApiError {
    fn from(e: JsonError) -> Self {
        let message = match e.kind {
            JsonErrorKind::Syntax | JsonErrorKind::TrailingData => {
                format!("malformed JSON: {}", e.message_with_position())
            }
            JsonErrorKind::Data => e.message_with_position(),
            JsonErrorKind::TooLarge => {
                return ApiError {
                    code: ErrorCode::PayloadTooLarge,
                    message: format!("{} {}", e.field, e.message),
                    field: Some(e.field),
                }
            }
            JsonErrorKind::TooDeep => format!("{} {}", e.field, e.message),
        };
        ApiError::validation(e.field, message)
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::BadId(id) => ApiError::new(
                match id {
                    IdParam::EventId => ErrorCode::InvalidEventId,
                    IdParam::WorkflowId => ErrorCode::InvalidWorkflowId,
                    IdParam::SessionId => ErrorCode::InvalidSessionId,
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
            TracerError::EventNotFound(_) => {
                ApiError::new(ErrorCode::EventNotFound, Some("event_id"), e.to_string())
            }
            TracerError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn codes_read_the_same_on_the_wire_and_in_logs() {
        for code in ErrorCode::iter() {
            let s = code.as_str();
            assert_eq!(serde_json::to_value(code).unwrap(), s, "{code:?}");
            assert_eq!(code.to_string(), s);
            assert!(
                s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{s}"
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
        assert_eq!(
            ErrorCode::StampNotFoundInNamespace.as_str(),
            "STAMP_NOT_FOUND_IN_NAMESPACE"
        );
        assert_eq!(ErrorCode::ValidationError.status().as_u16(), 422);
        assert_eq!(ErrorCode::CodegenTimeout.status().as_u16(), 504);
    }

    #[test]
    fn module_errors_name_their_field() {
        let e: ApiError = TracerError::Nul { field: "topic" }.into();
        assert_eq!(
            (e.status().as_u16(), e.code, e.field.as_deref()),
            (422, ErrorCode::ValidationError, Some("topic"))
        );
        let e: ApiError = ParamError::BadId(IdParam::EventId).into();
        assert_eq!(
            (e.status().as_u16(), e.code, e.field.as_deref()),
            (400, ErrorCode::InvalidEventId, Some("event_id"))
        );
        let e: ApiError = GatewayError::Duplicate(uuid::Uuid::nil()).into();
        assert_eq!(
            (e.status().as_u16(), e.field.as_deref()),
            (409, Some("correlation_id"))
        );
        let e: ApiError = StoreError::Busy("pool".into()).into();
        assert_eq!(
            (e.status().as_u16(), e.code),
            (503, ErrorCode::DatabaseBusy)
        );
        let e: ApiError = StoreError::StorageFull("disk".into()).into();
        assert_eq!((e.status().as_u16(), e.code), (503, ErrorCode::StorageFull));
        let e: ApiError = WorkflowError::QueueFull { capacity: 3 }.into();
        assert_eq!(
            (e.status().as_u16(), e.code),
            (429, ErrorCode::WorkflowQueueFull)
        );
        let e: ApiError = DlqError::NoKafka.into();
        assert_eq!(e.code, ErrorCode::KafkaUnavailable);
        let e: ApiError = crate::json::from_slice::<Vec<u8>>(b"[1,")
            .unwrap_err()
            .into();
        assert!(e.message.starts_with("malformed JSON: "), "{}", e.message);
    }
}
