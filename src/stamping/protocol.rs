//! O.N.E. v0.1 protocol compliance of the stamps found in content. Pure.
//!
//! Each stamp is checked for: a uid of the allowed alphabet, a 64-char lowercase hex BLAKE3 hash that
//! matches the canonical content, an RFC 3339 timestamp; rich blocks also for `protocol_version` and
//! `integrity.algorithm: BLAKE3`. `full` = stamps present and no issue; `partial` = at least one stamp
//! passes every check or only advisory issues; `none` = no stamp or no stamp passes.

use super::core::{extract_stamps, is_hash_format, ExtractedStamp, StampType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComplianceLevel {
    Full,
    Partial,
    None,
}

impl ComplianceLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceLevel::Full => "full",
            ComplianceLevel::Partial => "partial",
            ComplianceLevel::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceIssue {
    /// Index of the stamp in extraction order (`None` for content-level issues).
    pub stamp_index: Option<usize>,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceReport {
    pub level: ComplianceLevel,
    pub stamps_found: usize,
    pub compliant_stamps: usize,
    pub current_hash: String,
    pub issues: Vec<ComplianceIssue>,
    pub recommendations: Vec<String>,
}

pub const PROTOCOL: &str = "O.N.E. v0.1";

fn check_stamp(index: usize, stamp: &ExtractedStamp, current_hash: &str) -> Vec<ComplianceIssue> {
    let mut issues = Vec::new();
    let mut issue = |code: &'static str, message: String| {
        issues.push(ComplianceIssue {
            stamp_index: Some(index),
            code,
            message,
        })
    };
    match stamp.uid.as_deref() {
        None | Some("") => issue("MISSING_UID", "stamp has no uid".into()),
        Some(uid)
            if !uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            issue(
                "INVALID_UID",
                format!("uid {uid:?} has characters outside [A-Za-z0-9_-]"),
            )
        }
        Some(_) => {}
    }
    match stamp.hash.as_deref() {
        None => issue("MISSING_HASH", "stamp has no hash".into()),
        Some(h) if !is_hash_format(h) => issue(
            "INVALID_HASH_FORMAT",
            "hash is not 64 lowercase hex characters (BLAKE3-256)".into(),
        ),
        Some(h) if h != current_hash => issue(
            "HASH_MISMATCH",
            format!("stamp hash {h} does not match the content hash {current_hash}"),
        ),
        Some(_) => {}
    }
    match stamp.timestamp.as_deref() {
        None => issue("MISSING_TIMESTAMP", "stamp has no timestamp".into()),
        Some(ts) if chrono::DateTime::parse_from_rfc3339(ts).is_err() => issue(
            "INVALID_TIMESTAMP",
            format!("timestamp {ts:?} is not RFC 3339"),
        ),
        Some(_) => {}
    }
    if stamp.stamp_type == StampType::Rich {
        if stamp.field("protocol_version").is_none() {
            issue(
                "MISSING_PROTOCOL_VERSION",
                "rich stamp has no protocol_version".into(),
            );
        }
        if stamp.field("algorithm") != Some("BLAKE3") {
            issue(
                "INVALID_INTEGRITY_ALGORITHM",
                "rich stamp integrity.algorithm must be BLAKE3".into(),
            );
        }
    }
    issues
}

pub fn check_compliance(content: &str) -> ComplianceReport {
    let current_hash = super::core::canonical_hash(content).hash;
    let stamps = extract_stamps(content);
    let mut issues = Vec::new();
    let mut compliant = 0;
    for (i, stamp) in stamps.iter().enumerate() {
        let found = check_stamp(i, stamp, &current_hash);
        if found.is_empty() {
            compliant += 1;
        }
        issues.extend(found);
    }
    let mut recommendations = Vec::new();
    if stamps.is_empty() {
        issues.push(ComplianceIssue {
            stamp_index: None,
            code: "NO_STAMPS",
            message: "content carries no O.N.E. v0.1 stamp".into(),
        });
        recommendations.push("Stamp the content with POST /api/v1/metadata-stamping/stamp".into());
    }
    let codes = |c: &str| issues.iter().any(|i| i.code == c);
    if codes("HASH_MISMATCH") {
        recommendations
            .push("Content changed after stamping: re-stamp it to record the current hash".into());
    }
    if codes("INVALID_HASH_FORMAT") || codes("MISSING_HASH") {
        recommendations.push("Use BLAKE3-256 hashes in lowercase hex (64 characters)".into());
    }
    if codes("INVALID_TIMESTAMP") || codes("MISSING_TIMESTAMP") {
        recommendations
            .push("Use RFC 3339 UTC timestamps, e.g. 2025-01-01T12:00:00.000000+00:00".into());
    }
    if codes("MISSING_PROTOCOL_VERSION") || codes("INVALID_INTEGRITY_ALGORITHM") {
        recommendations
            .push("Rich stamps need protocol_version and integrity.algorithm: BLAKE3".into());
    }
    if codes("MISSING_UID") || codes("INVALID_UID") {
        recommendations.push("Give every stamp a uid of [A-Za-z0-9_-] (a UUID works)".into());
    }
    let level = if stamps.is_empty() || compliant == 0 {
        ComplianceLevel::None
    } else if compliant == stamps.len() {
        ComplianceLevel::Full
    } else {
        ComplianceLevel::Partial
    };
    ComplianceReport {
        level,
        stamps_found: stamps.len(),
        compliant_stamps: compliant,
        current_hash,
        issues,
        recommendations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamping::core::{render_stamp, StampInput};

    #[test]
    fn levels() {
        let r = render_stamp("doc", StampType::Rich, &StampInput::default());
        let report = check_compliance(&r.stamped_content);
        assert_eq!(report.level, ComplianceLevel::Full, "{:?}", report.issues);
        assert!(report.issues.is_empty());

        let none = check_compliance("no stamps here");
        assert_eq!(none.level, ComplianceLevel::None);
        assert_eq!(none.issues[0].code, "NO_STAMPS");

        // One good stamp plus one with a bad timestamp and a stale hash.
        let bad = format!(
            "# ONEX:uid=abc,hash={},ts=2025-99\n{}",
            "0".repeat(64),
            r.stamped_content
        );
        let partial = check_compliance(&bad);
        assert_eq!(partial.level, ComplianceLevel::Partial);
        let codes: Vec<_> = partial.issues.iter().map(|i| i.code).collect();
        assert_eq!(codes, ["HASH_MISMATCH", "INVALID_TIMESTAMP"]);
        assert_eq!(partial.recommendations.len(), 2);
    }
}
