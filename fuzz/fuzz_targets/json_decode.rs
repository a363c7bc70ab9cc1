//! `crate::json::from_slice`, the one JSON decoder of request bodies and codegen messages, checked
//! against serde_json itself: it accepts exactly what serde_json accepts, decodes the same value,
//! and every error names a field and keeps the position out of the message.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use omninode_bridge::json::{from_slice, JsonError, JsonErrorKind, BODY_FIELD};
use serde::de::DeserializeOwned;
use serde::Deserialize;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Lightweight,
    Rich,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    content: String,
    #[serde(default)]
    tags: Vec<String>,
    kind: Option<Kind>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    items: Vec<Item>,
    limit: Option<u8>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
    ratio: Option<f64>,
}

fn check_error(e: &JsonError) {
    assert!(!e.field.is_empty());
    if e.kind == JsonErrorKind::TrailingData {
        assert_eq!(e.field, BODY_FIELD);
    }
    if e.line > 0 {
        let suffix = format!(" at line {} column {}", e.line, e.column);
        assert!(e.message_with_position().ends_with(&suffix));
    }
    let _ = e.to_string();
}

fn same_as_serde<T: DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let ours = from_slice::<T>(bytes);
    let theirs = serde_json::from_slice::<T>(bytes);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(e), Err(_)) => check_error(e),
        _ => panic!("crate::json and serde_json disagree: {ours:?} vs {theirs:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    same_as_serde::<serde_json::Value>(data);
    same_as_serde::<Body>(data);
    same_as_serde::<BTreeMap<String, i64>>(data);
});
