//! Request extractors whose failures are unified-envelope errors naming the field.
//!
//! Every JSON body is bounded twice before it is parsed: by its route's limit (`JsonLimit`, set on
//! the content routes and codegen; `http.max_json_body_bytes` everywhere else) — a declared
//! `Content-Length` over it is refused before a byte is read, a chunked body as soon as its count
//! crosses it — and by the in-flight budget (`crate::web::budget`), which the body's bytes are
//! admitted against (by `Content-Length`, or chunk by chunk) and held until the request is done.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::json::FreeJsonLimits;
use crate::web::budget::Reservation;
use crate::web::AppState;

/// Body size limit of a route's JSON bodies, set as app data on the resource.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON body, read within its limits and deserialised with the failing field's path in errors.
/// Holds the body's share of the in-flight budget until the handler is done with it.
pub struct ValidJson<T>(pub T, #[allow(dead_code)] Reservation);

/// A JSON body's bytes, read within the same limits, for handlers that parse it themselves
/// (codegen: the operation decides the schema).
pub struct JsonBody(pub Bytes, #[allow(dead_code)] Reservation);

pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The body as `T`; a mismatch is a 422 naming the field (`items[3].content`, or `body`), a
/// free-form value over its limits a 413/422 naming it (`metadata`).
pub fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    limits: FreeJsonLimits,
) -> Result<T, ApiError> {
    Ok(crate::json::from_slice_limited(bytes, limits)?)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(
        Some("body"),
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// A body read: its bytes, their share of the budget, and the free-form limits of the service.
struct ReadBody {
    bytes: Bytes,
    reservation: Reservation,
    limits: FreeJsonLimits,
}

/// Read the body within the route's limit and the in-flight budget.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Pin<Box<dyn Future<Output = Result<ReadBody, ApiError>>>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let limit = match req.app_data::<JsonLimit>() {
        Some(l) => l.0,
        None => state
            .as_ref()
            .map_or(64 * 1024, |s| s.settings.http.max_json_body_bytes),
    };
    let limits = state
        .as_ref()
        .map_or_else(FreeJsonLimits::default, |s| s.settings.free_json_limits());
    let mut reservation = match &state {
        Some(s) => s.body_budget.reservation(),
        // Only without the service's state (never in the server): a private, unlimited budget.
        None => crate::web::budget::BodyBudget::new(u64::MAX).reservation(),
    };
    let declared = declared_length(req);
    let mut payload = payload.take();
    Box::pin(async move {
        if let Some(n) = declared {
            if n > limit as u64 {
                return Err(too_large(limit));
            }
            reservation.grow_to(n)?;
        }
        let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit as u64) as usize);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::validation("body", format!("could not read body: {e}")))?;
            let total = body.len() + chunk.len();
            if total > limit {
                return Err(too_large(limit));
            }
            reservation.grow_to(total as u64)?;
            body.extend_from_slice(&chunk);
        }
        if body.is_empty() {
            return Err(ApiError::validation(
                "body",
                "request body is empty; a JSON object is required",
            ));
        }
        Ok(ReadBody {
            bytes: body.freeze(),
            reservation,
            limits,
        })
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let body = body.await?;
            let value = parse_json(&body.bytes, body.limits)?;
            Ok(ValidJson(value, body.reservation))
        })
    }
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let body = body.await?;
            Ok(JsonBody(body.bytes, body.reservation))
        })
    }
}
