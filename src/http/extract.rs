//! Request extractors whose failures are unified-envelope errors naming the field.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Body size limit for JSON bodies, set as app data.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON body, read up to `JsonLimit` and deserialised with the failing field's path in errors.
pub struct ValidJson<T>(pub T);

pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The body as `T`; a mismatch is a 422 naming the field (`items[3].content`, or `body`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    Ok(crate::json::from_slice(bytes)?)
}

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<JsonLimit>()
            .copied()
            .unwrap_or(JsonLimit(2 * 1024 * 1024))
            .0;
        let declared = declared_length(req);
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(ApiError::too_large(
                    Some("body"),
                    format!("request body is larger than the limit of {limit} bytes"),
                ));
            }
            let mut body =
                BytesMut::with_capacity(declared.unwrap_or(1024).min(limit as u64) as usize);
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::validation("body", format!("could not read body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::too_large(
                        Some("body"),
                        format!("request body is larger than the limit of {limit} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            if body.is_empty() {
                return Err(ApiError::validation(
                    "body",
                    "request body is empty; a JSON object is required",
                ));
            }
            parse_json(&body).map(ValidJson)
        })
    }
}
