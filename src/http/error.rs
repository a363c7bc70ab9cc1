//! How the JSON API renders an error: the unified envelope with the status, code and field that
//! `crate::web::error` (the one mapping) gave it, and `Retry-After` on a 503 or 429.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::envelope::{respond, EnvelopeStatus, ErrorDetail};
pub use crate::web::error::{ApiError, ErrorCode};

/// The envelope's error entry for `e`.
pub fn detail(e: &ApiError) -> ErrorDetail {
    ErrorDetail {
        code: e.code,
        field: e.field.clone(),
        message: e.message.clone(),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = respond::<()>(
            self.status(),
            EnvelopeStatus::Error,
            None,
            Some(vec![detail(self)]),
            Some(self.message.clone()),
        );
        if self.status() == StatusCode::SERVICE_UNAVAILABLE
            || self.status() == StatusCode::TOO_MANY_REQUESTS
        {
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("2"),
            );
        }
        res
    }
}
