//! The JSON request bodies of the API, decoded as the `ValidJson` extractor does
//! (`http::extract::parse_json`). The multipart `/hash` path is not fuzzed here: its parsing lives
//! inside the actix handler and is not reachable as a function without a server. The first byte
//! picks the route's DTO (free-form JSON held to the default limits); a body that does not fit must be
//! a 422 `VALIDATION_ERROR` or 413 `PAYLOAD_TOO_LARGE` naming a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omninode_bridge::http::aggregations::AggregationQuery;
use omninode_bridge::http::dlq::{RedriveRequest, ResetRequest};
use omninode_bridge::http::dto::{BatchRequest, ProtocolRequest, StampRequest, ValidateRequest};
use omninode_bridge::http::error::{ApiError, ErrorCode};
use omninode_bridge::http::extract::parse_json;
use omninode_bridge::http::workflows::WorkflowRequest;
use omninode_bridge::json::FreeJsonLimits;
use serde::de::DeserializeOwned;

fn decode<T: DeserializeOwned>(bytes: &[u8]) {
    if let Err(e) = parse_json::<T>(bytes, FreeJsonLimits::default()) {
        let ApiError {
            code,
            field,
            message,
        } = &e;
        assert!(
            matches!(
                code,
                ErrorCode::ValidationError | ErrorCode::PayloadTooLarge
            ),
            "{e}"
        );
        assert!(matches!(e.status().as_u16(), 422 | 413), "{e}");
        assert!(field.as_deref().is_some_and(|f| !f.is_empty()), "{e}");
        assert!(!message.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 9 {
        0 => decode::<StampRequest>(bytes),
        1 => decode::<ValidateRequest>(bytes),
        2 => decode::<BatchRequest>(bytes),
        3 => decode::<ProtocolRequest>(bytes),
        4 => decode::<WorkflowRequest>(bytes),
        5 => decode::<AggregationQuery>(bytes),
        6 => decode::<RedriveRequest>(bytes),
        7 => decode::<ResetRequest>(bytes),
        _ => decode::<serde_json::Value>(bytes),
    }
});
