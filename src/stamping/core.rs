//! The O.N.E. v0.1 stamp formats: canonical content, BLAKE3 hashing, rendering, extraction and
//! validation.
//!
//! Architecture invariant: pure functions over `&str`/`&[u8]`. No I/O, no clock reads except where a
//! caller leaves the timestamp to us (`StampInput::timestamp = None`), no knowledge of HTTP or storage.
//! The formats are byte-compatible with the original Python service (see SPEC §1.2).

use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;

static LIGHTWEIGHT_STAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"# ONEX:uid=([A-Za-z0-9_-]+),hash=([A-Za-z0-9]+),ts=([0-9T:\-+.]+).*")
        .expect("static regex")
});
static RICH_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)<!--\s*ONEX_METADATA_START\s*-->(.*?)<!--\s*ONEX_METADATA_END\s*-->")
        .expect("static regex")
});
static BLANK_RUNS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\n{3,}").expect("static regex"));

/// Lowercase hex BLAKE3-256 of raw bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Python's `str.isspace()` set: Unicode White_Space plus the ASCII separators `\x1c`..=`\x1f`.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Content with every stamp removed and blank-line/edge-whitespace differences normalised, so that
/// re-stamping never changes the hash.
pub fn canonical_content(content: &str) -> String {
    let without_light = LIGHTWEIGHT_STAMP.replace_all(content, "");
    let without_rich = RICH_BLOCK.replace_all(&without_light, "");
    let collapsed = BLANK_RUNS.replace_all(&without_rich, "\n\n");
    collapsed.trim_matches(is_python_whitespace).to_owned()
}

/// The hash every stamp carries: BLAKE3 of the canonical content.
pub fn canonical_hash(content: &str) -> CanonicalHash {
    let canonical = canonical_content(content);
    CanonicalHash {
        hash: hash_bytes(canonical.as_bytes()),
        canonical_len: canonical.len() as u64,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHash {
    pub hash: String,
    /// Byte length of the canonical content (the rich stamp's `file_size`).
    pub canonical_len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StampType {
    Lightweight,
    Rich,
}

impl StampType {
    pub fn as_str(self) -> &'static str {
        match self {
            StampType::Lightweight => "lightweight",
            StampType::Rich => "rich",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lightweight" => Some(StampType::Lightweight),
            "rich" => Some(StampType::Rich),
            _ => None,
        }
    }
}

/// What a stamp is rendered from. `uid`/`timestamp` left `None` are generated (UUIDv4, now).
#[derive(Debug, Clone, Default)]
pub struct StampInput<'a> {
    pub uid: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub author: Option<&'a str>,
    pub version: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub file_path: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedStamp {
    pub uid: String,
    pub hash: String,
    pub timestamp: String,
    pub stamp_type: StampType,
    /// The stamp text alone (line or block).
    pub stamp: String,
    /// The content with the stamp added.
    pub stamped_content: String,
    pub canonical_len: u64,
}

/// RFC 3339 UTC with microseconds and `+00:00`, as Python's `datetime.isoformat()` prints it.
pub fn format_timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Render a stamp for `content`. Deterministic when `uid` and `timestamp` are given.
pub fn render_stamp(content: &str, stamp_type: StampType, input: &StampInput<'_>) -> RenderedStamp {
    let canonical = canonical_hash(content);
    render_stamp_with_hash(content, &canonical, stamp_type, input)
}

/// As [`render_stamp`], for callers that already computed the canonical hash.
pub fn render_stamp_with_hash(
    content: &str,
    canonical: &CanonicalHash,
    stamp_type: StampType,
    input: &StampInput<'_>,
) -> RenderedStamp {
    let uid = input
        .uid
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let timestamp = input
        .timestamp
        .map(str::to_owned)
        .unwrap_or_else(|| format_timestamp(Utc::now()));
    let hash = &canonical.hash;
    let (stamp, stamped_content) = match stamp_type {
        StampType::Lightweight => {
            let mut line = format!("# ONEX:uid={uid},hash={hash},ts={timestamp}");
            if let Some(author) = input.author {
                line.push_str(",author=");
                line.push_str(author);
            }
            if let Some(version) = input.version {
                line.push_str(",v=");
                line.push_str(version);
            }
            let stamped = format!("{line}\n{content}");
            (line, stamped)
        }
        StampType::Rich => {
            let mut lines = vec![
                "<!-- ONEX_METADATA_START -->".to_owned(),
                "<!-- ONEX Metadata Stamp".to_owned(),
                format!("  uid: {uid}"),
                format!("  hash: {hash}"),
                format!("  timestamp: {timestamp}"),
                format!(
                    "  protocol_version: {}",
                    input.protocol_version.unwrap_or("1.0")
                ),
                format!("  file_path: {}", input.file_path.unwrap_or("None")),
                format!("  file_size: {}", canonical.canonical_len),
            ];
            if let Some(content_type) = input.content_type {
                lines.push(format!("  content_type: {content_type}"));
            }
            lines.extend([
                "  integrity:".to_owned(),
                "    algorithm: BLAKE3".to_owned(),
                format!("    hash: {hash}"),
                "-->".to_owned(),
                "<!-- ONEX_METADATA_END -->".to_owned(),
            ]);
            let block = lines.join("\n");
            let stamped = format!("{content}\n\n{block}");
            (block, stamped)
        }
    };
    RenderedStamp {
        uid,
        hash: hash.clone(),
        timestamp,
        stamp_type,
        stamp,
        stamped_content,
        canonical_len: canonical.canonical_len,
    }
}

/// A stamp found in content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedStamp {
    pub stamp_type: StampType,
    pub uid: Option<String>,
    pub hash: Option<String>,
    pub timestamp: Option<String>,
    /// Every `key: value` of a rich block in order (empty for lightweight stamps).
    pub fields: Vec<(String, String)>,
}

impl ExtractedStamp {
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// All lightweight stamps in order, then all rich blocks in order.
pub fn extract_stamps(content: &str) -> Vec<ExtractedStamp> {
    let mut stamps: Vec<ExtractedStamp> = LIGHTWEIGHT_STAMP
        .captures_iter(content)
        .map(|c| ExtractedStamp {
            stamp_type: StampType::Lightweight,
            uid: Some(c[1].to_owned()),
            hash: Some(c[2].to_owned()),
            timestamp: Some(c[3].to_owned()),
            fields: Vec::new(),
        })
        .collect();
    for block in RICH_BLOCK.captures_iter(content) {
        let mut fields = Vec::new();
        for line in block[1].lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("<!--") {
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let last = |key: &str| {
            fields
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        stamps.push(ExtractedStamp {
            stamp_type: StampType::Rich,
            uid: last("uid"),
            hash: last("hash"),
            timestamp: last("timestamp"),
            fields,
        });
    }
    stamps
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampCheck {
    pub stamp_type: StampType,
    pub stamp_hash: Option<String>,
    pub is_valid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub is_valid: bool,
    pub current_hash: String,
    pub stamps: Vec<StampCheck>,
}

/// Validate every stamp of `content` against its canonical hash (and `expected_hash` when given).
/// No stamp at all means "not valid" with zero stamps found.
pub fn validate(content: &str, expected_hash: Option<&str>) -> Validation {
    let current_hash = canonical_hash(content).hash;
    let stamps: Vec<StampCheck> = extract_stamps(content)
        .into_iter()
        .map(|s| {
            let is_valid = s.hash.as_deref() == Some(current_hash.as_str())
                && expected_hash.is_none_or(|e| e == current_hash);
            StampCheck {
                stamp_type: s.stamp_type,
                stamp_hash: s.hash,
                is_valid,
            }
        })
        .collect();
    let is_valid = !stamps.is_empty() && stamps.iter().all(|s| s.is_valid);
    Validation {
        is_valid,
        current_hash,
        stamps,
    }
}

/// True for a 64-character lowercase hex string (the only accepted `file_hash` form).
pub fn is_hash_format(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_HASH: &str = "288a86a79f20a3d6dccdca7713beaed178798296bdfa7913fa2a62d9727bf8f8";
    const EMPTY_HASH: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    const UID: &str = "123e4567-e89b-12d3-a456-426614174000";
    const TS: &str = "2025-01-01T12:00:00.000000+00:00";

    fn fixed() -> StampInput<'static> {
        StampInput {
            uid: Some(UID),
            timestamp: Some(TS),
            ..Default::default()
        }
    }

    #[test]
    fn raw_hashes_match_the_public_examples() {
        assert_eq!(hash_bytes(b"Hello, World!"), HELLO_HASH);
        assert_eq!(hash_bytes(b""), EMPTY_HASH);
        assert_eq!(canonical_hash("").hash, EMPTY_HASH);
        assert_eq!(canonical_hash("\n\n  Hello, World!  \n").hash, HELLO_HASH);
    }

    #[test]
    fn canonical_content_normalises_blank_lines_and_edges() {
        assert_eq!(canonical_content("a\n\n\n\nb"), "a\n\nb");
        assert_eq!(canonical_content("a\n\nb"), "a\n\nb");
        assert_eq!(canonical_content("\x1c\t a \x1f\u{3000}"), "a");
        // CRLF is content, not whitespace normalisation (only edge whitespace is stripped).
        assert_eq!(canonical_content("a\r\nb\r\n"), "a\r\nb");
        assert_ne!(canonical_hash("a\r\nb").hash, canonical_hash("a\nb").hash);
    }

    #[test]
    fn lightweight_stamp_is_byte_exact() {
        let r = render_stamp("Hello, World!", StampType::Lightweight, &fixed());
        let expected_line = format!("# ONEX:uid={UID},hash={HELLO_HASH},ts={TS}");
        assert_eq!(r.stamp, expected_line);
        assert_eq!(r.stamped_content, format!("{expected_line}\nHello, World!"));

        let with_meta = StampInput {
            author: Some("ada"),
            version: Some("2"),
            ..fixed()
        };
        let r = render_stamp("Hello, World!", StampType::Lightweight, &with_meta);
        assert_eq!(r.stamp, format!("{expected_line},author=ada,v=2"));
    }

    #[test]
    fn rich_stamp_is_byte_exact() {
        let r = render_stamp("Hello, World!", StampType::Rich, &fixed());
        let block = format!(
            "<!-- ONEX_METADATA_START -->\n<!-- ONEX Metadata Stamp\n  uid: {UID}\n  hash: {HELLO_HASH}\n  timestamp: {TS}\n  protocol_version: 1.0\n  file_path: None\n  file_size: 13\n  integrity:\n    algorithm: BLAKE3\n    hash: {HELLO_HASH}\n-->\n<!-- ONEX_METADATA_END -->"
        );
        assert_eq!(r.stamp, block);
        assert_eq!(r.stamped_content, format!("Hello, World!\n\n{block}"));

        let typed = StampInput {
            content_type: Some("text/plain"),
            file_path: Some("docs/a.md"),
            protocol_version: Some("1.1"),
            ..fixed()
        };
        let r = render_stamp("Hello, World!", StampType::Rich, &typed);
        assert!(r.stamp.contains("  protocol_version: 1.1\n  file_path: docs/a.md\n  file_size: 13\n  content_type: text/plain\n  integrity:"));
    }

    #[test]
    fn generated_uid_and_timestamp_have_the_original_shape() {
        let r = render_stamp("x", StampType::Lightweight, &StampInput::default());
        assert!(uuid::Uuid::parse_str(&r.uid).is_ok());
        assert!(r.timestamp.ends_with("+00:00"), "{}", r.timestamp);
        assert_eq!(r.timestamp.len(), "2025-01-01T12:00:00.000000+00:00".len());
    }

    #[test]
    fn restamping_keeps_the_hash_and_all_stamps() {
        let first = render_stamp("body\n", StampType::Lightweight, &fixed());
        let second = render_stamp(&first.stamped_content, StampType::Rich, &fixed());
        let third = render_stamp(&second.stamped_content, StampType::Lightweight, &fixed());
        assert_eq!(first.hash, second.hash);
        assert_eq!(second.hash, third.hash);
        let found = extract_stamps(&third.stamped_content);
        // Lightweight stamps first (in order of appearance), then rich blocks.
        let kinds: Vec<_> = found.iter().map(|s| s.stamp_type).collect();
        assert_eq!(
            kinds,
            [
                StampType::Lightweight,
                StampType::Lightweight,
                StampType::Rich
            ]
        );
        assert!(validate(&third.stamped_content, None).is_valid);
    }

    #[test]
    fn rich_parsing_trims_and_lets_the_last_hash_win() {
        let content = "x\n\n<!-- ONEX_METADATA_START -->\n<!-- c\n   uid :  u1 \n hash: aaa\n note: a:b\n integrity:\n   hash: bbb\n-->\n<!-- ONEX_METADATA_END -->";
        let found = extract_stamps(content);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].uid.as_deref(), Some("u1"));
        assert_eq!(found[0].hash.as_deref(), Some("bbb"));
        assert_eq!(found[0].field("note"), Some("a:b"));
    }

    #[test]
    fn validation_with_and_without_expected_hash() {
        let stamped =
            render_stamp("Hello, World!", StampType::Lightweight, &fixed()).stamped_content;
        let v = validate(&stamped, None);
        assert!(v.is_valid);
        assert_eq!(v.current_hash, HELLO_HASH);
        assert_eq!(v.stamps.len(), 1);
        assert!(validate(&stamped, Some(HELLO_HASH)).is_valid);
        let wrong = validate(&stamped, Some(EMPTY_HASH));
        assert!(!wrong.is_valid);
        assert!(!wrong.stamps[0].is_valid);
    }

    #[test]
    fn no_stamp_is_invalid_with_zero_found() {
        let v = validate("plain text", None);
        assert!(!v.is_valid);
        assert!(v.stamps.is_empty());
        let v = validate("", None);
        assert!(!v.is_valid);
        assert_eq!(v.current_hash, EMPTY_HASH);
    }

    #[test]
    fn tampered_content_is_invalid() {
        let stamped = render_stamp("Hello, World!", StampType::Rich, &fixed()).stamped_content;
        let tampered = stamped.replacen("World", "Word", 1);
        let v = validate(&tampered, None);
        assert!(!v.is_valid);
        assert_eq!(v.stamps[0].stamp_hash.as_deref(), Some(HELLO_HASH));
    }

    #[test]
    fn unicode_content_round_trips() {
        let content = "Grüße, 世界 🌍\nzweite Zeile";
        let r = render_stamp(content, StampType::Rich, &fixed());
        assert_eq!(r.canonical_len, content.len() as u64);
        assert!(validate(&r.stamped_content, None).is_valid);
    }

    #[test]
    fn hash_format_is_strict() {
        assert!(is_hash_format(HELLO_HASH));
        assert!(!is_hash_format(&HELLO_HASH.to_uppercase()));
        assert!(!is_hash_format(&HELLO_HASH[1..]));
        assert!(!is_hash_format("'; DROP TABLE metadata_stamps; --"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn stamp_then_validate_is_always_valid(content in any::<String>(), rich in any::<bool>()) {
                let kind = if rich { StampType::Rich } else { StampType::Lightweight };
                let r = render_stamp(&content, kind, &StampInput::default());
                let v = validate(&r.stamped_content, None);
                prop_assert!(v.is_valid, "stamped: {:?}", r.stamped_content);
                prop_assert_eq!(v.current_hash, r.hash);
            }

            #[test]
            fn an_edit_inside_the_content_invalidates(
                content in "[a-z]{1,20}( [a-z]{1,20}){0,10}",
                at in any::<prop::sample::Index>(),
            ) {
                let r = render_stamp(&content, StampType::Lightweight, &fixed());
                // Change one letter in the body (after the stamp line).
                let body_start = r.stamp.len() + 1;
                let letters: Vec<usize> = r.stamped_content[body_start..]
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_lowercase())
                    .map(|(i, _)| body_start + i)
                    .collect();
                let i = letters[at.index(letters.len())];
                let mut edited = r.stamped_content.clone().into_bytes();
                edited[i] = if edited[i] == b'z' { b'a' } else { edited[i] + 1 };
                let edited = String::from_utf8(edited).unwrap();
                prop_assert!(!validate(&edited, None).is_valid);
            }

            #[test]
            fn restamping_never_changes_the_hash(content in any::<String>()) {
                let first = render_stamp(&content, StampType::Rich, &StampInput::default());
                let second = render_stamp(&first.stamped_content, StampType::Lightweight, &StampInput::default());
                prop_assert_eq!(first.hash, second.hash);
            }
        }
    }
}
