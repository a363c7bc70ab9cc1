//! Stamp extraction and validation (`stamping::core`, `stamping::protocol`) on arbitrary text.
//!
//! Besides "never panics", checks the properties callers rely on: the canonical hash is a BLAKE3 hex
//! string of the canonical content; `validate` reports one check per extracted stamp and is never
//! valid against a foreign expected hash; and re-stamping never changes the hash — content stamped
//! by us validates, with exactly our stamp found, whenever the content itself holds no stamp marker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omninode_bridge::stamping::core::{
    canonical_content, canonical_hash, extract_stamps, is_hash_format, render_stamp, validate,
    StampInput, StampType,
};
use omninode_bridge::stamping::file_type::classify;
use omninode_bridge::stamping::namespace::Namespace;
use omninode_bridge::stamping::protocol::check_compliance;

const UID: &str = "123e4567-e89b-12d3-a456-426614174000";
const TS: &str = "2025-01-01T12:00:00.000000+00:00";
const OTHER_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fuzz_target!(|data: &[u8]| {
    let Ok(content) = std::str::from_utf8(data) else {
        return;
    };

    let canonical = canonical_hash(content);
    assert!(is_hash_format(&canonical.hash));
    assert_eq!(
        canonical.canonical_len,
        canonical_content(content).len() as u64
    );

    let extracted = extract_stamps(content);
    let v = validate(content, None);
    assert_eq!(v.current_hash, canonical.hash);
    assert_eq!(v.stamps.len(), extracted.len());
    assert_eq!(
        v.is_valid,
        !v.stamps.is_empty() && v.stamps.iter().all(|s| s.is_valid)
    );
    let same = validate(content, Some(&canonical.hash));
    assert_eq!(same, v);
    if canonical.hash != OTHER_HASH {
        assert!(!validate(content, Some(OTHER_HASH)).is_valid);
    }
    let _ = check_compliance(content);

    // The text as the other free-form inputs of a stamp request.
    let _ = classify(Some(content), Some(content));
    if let Ok(ns) = Namespace::parse(content) {
        assert_eq!(ns.as_str(), content);
    }

    if !content.contains("ONEX") {
        for stamp_type in [StampType::Lightweight, StampType::Rich] {
            let input = StampInput {
                uid: Some(UID),
                timestamp: Some(TS),
                ..Default::default()
            };
            let rendered = render_stamp(content, stamp_type, &input);
            assert_eq!(rendered.hash, canonical.hash);
            let again = validate(&rendered.stamped_content, None);
            assert!(again.is_valid, "{stamp_type:?} re-stamp did not validate");
            assert_eq!(again.current_hash, canonical.hash);
            let found = extract_stamps(&rendered.stamped_content);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].uid.as_deref(), Some(UID));
            assert_eq!(found[0].stamp_type, stamp_type);
        }
    }
});
