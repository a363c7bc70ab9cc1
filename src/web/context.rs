//! Per-request context (correlation id, request id, start time), set by the `correlation` middleware
//! as a task-local so that every response (including errors raised by extractors) and every log line
//! of the request can carry it.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub correlation_id: String,
    /// W3C `traceparent` header, when the caller sent one.
    pub traceparent: Option<String>,
    /// The correlation id when it is a UUID (the only form events carry).
    pub correlation_uuid: Option<Uuid>,
    pub request_id: String,
    pub started: Instant,
}

tokio::task_local! {
    static CTX: RequestCtx;
}

impl RequestCtx {
    pub fn current() -> Option<RequestCtx> {
        CTX.try_with(|c| c.clone()).ok()
    }

    pub fn correlation_uuid() -> Option<Uuid> {
        CTX.try_with(|c| c.correlation_uuid).ok().flatten()
    }

    /// The trace context events of this request carry.
    pub fn trace() -> crate::events::TraceContext {
        CTX.try_with(|c| crate::events::TraceContext {
            correlation_id: c.correlation_uuid,
            correlation_ref: c
                .correlation_uuid
                .is_none()
                .then(|| c.correlation_id.clone()),
            traceparent: c.traceparent.clone(),
        })
        .unwrap_or_default()
    }
}

pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub const REQUEST_HEADER: &str = "x-request-id";

/// Longest id a caller may give in `X-Correlation-ID`, `X-Request-ID` or `traceparent` (bytes).
pub const MAX_HEADER_ID_BYTES: usize = 128;

/// A caller's id header: absent or blank → `None` (one is made); up to `MAX_HEADER_ID_BYTES`
/// visible ASCII characters → the id; anything else is refused (422 naming the header) rather
/// than carried into logs, events and index entries.
fn id_from_header(
    req: &ServiceRequest,
    name: &str,
    shown: &str,
) -> Result<Option<String>, crate::web::error::ApiError> {
    let Some(raw) = req.headers().get(name) else {
        return Ok(None);
    };
    let refuse =
        |why: &str| crate::web::error::ApiError::validation(shown, format!("{shown} {why}"));
    let v = raw
        .to_str()
        .map_err(|_| refuse("must be visible ASCII"))?
        .trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > MAX_HEADER_ID_BYTES {
        return Err(refuse(&format!(
            "is {} bytes, longer than the limit of {MAX_HEADER_ID_BYTES} bytes",
            v.len()
        )));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse("must be visible ASCII without spaces"));
    }
    Ok(Some(v.to_owned()))
}

pub async fn correlation(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let ids = (|| {
        Ok::<_, crate::web::error::ApiError>((
            id_from_header(&req, CORRELATION_HEADER, "X-Correlation-ID")?,
            id_from_header(&req, REQUEST_HEADER, "X-Request-ID")?,
            id_from_header(&req, "traceparent", "traceparent")?,
        ))
    })();
    let (correlation_id, request_id, traceparent) = match ids {
        Ok(ids) => ids,
        Err(e) => {
            let res = actix_web::ResponseError::error_response(&e);
            return Ok(req.into_response(res).map_into_right_body());
        }
    };
    let correlation_id = correlation_id.unwrap_or_else(|| Uuid::new_v4().to_string());
    let request_id = request_id.unwrap_or_else(|| Uuid::new_v4().to_string());
    let ctx = RequestCtx {
        traceparent,
        correlation_uuid: Uuid::parse_str(&correlation_id).ok(),
        correlation_id: correlation_id.clone(),
        request_id: request_id.clone(),
        started: Instant::now(),
    };
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = ctx.started;
    let mut res = CTX
        .scope(ctx, next.call(req))
        .instrument(span.clone())
        .await?
        .map_into_left_body();
    let status = res.status();
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "request done");
        }
    });
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        headers.insert(HeaderName::from_static(CORRELATION_HEADER), v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(REQUEST_HEADER), v);
    }
    Ok(res)
}
