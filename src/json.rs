//! Reading one JSON document into a type, with the failing field's path when it does not fit
//! (`items[3].content`, `limit`, or `body` for the document itself). Used for HTTP request bodies
//! (`crate::http::extract`) and for codegen messages (`crate::codegen::schemas`); each caller words
//! the message its own way from the parts here.

use serde::de::DeserializeOwned;

/// The path naming the whole document.
pub const BODY_FIELD: &str = "body";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// Not JSON at all (or cut short).
    Syntax,
    /// JSON, but not the expected shape or values (wrong type, missing or unknown field).
    Data,
    /// A complete document followed by something else.
    TrailingData,
}

/// A document that does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub kind: JsonErrorKind,
    /// Path of the offending field, or `BODY_FIELD`.
    pub field: String,
    /// serde's description, without the position.
    pub message: String,
    /// 1-based position of the error; 0 when serde gives none.
    pub line: usize,
    pub column: usize,
}

impl JsonError {
    /// The message with the position, as serde words it (`… at line 1 column 7`).
    pub fn message_with_position(&self) -> String {
        if self.line == 0 {
            self.message.clone()
        } else {
            format!(
                "{} at line {} column {}",
                self.message, self.line, self.column
            )
        }
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message_with_position())
    }
}

impl std::error::Error for JsonError {}

/// Deserialise exactly one JSON document from `bytes` into `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let parent = if e.path().iter().next().is_none() {
            String::new()
        } else {
            e.path().to_string()
        };
        let inner = e.into_inner();
        let kind = if inner.is_syntax() || inner.is_eof() {
            JsonErrorKind::Syntax
        } else {
            JsonErrorKind::Data
        };
        let (message, line, column) = parts(&inner);
        JsonError {
            kind,
            field: field_named(&parent, &message),
            message,
            line,
            column,
        }
    })?;
    de.end().map_err(|e| {
        let (message, line, column) = parts(&e);
        JsonError {
            kind: JsonErrorKind::TrailingData,
            field: BODY_FIELD.to_owned(),
            message,
            line,
            column,
        }
    })?;
    Ok(value)
}

/// serde_json's message without the ` at line L column C` it appends, and the position.
fn parts(e: &serde_json::Error) -> (String, usize, usize) {
    let mut message = e.to_string();
    if e.line() > 0 {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        if message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
    }
    (message, e.line(), e.column())
}

/// The field an error is about. serde reports a missing field at its parent's path, so the
/// field's own name is taken from the message (`missing field `x``); an unknown field is
/// already reported at its own path.
fn field_named(parent: &str, message: &str) -> String {
    let join = |f: &str| {
        if parent.is_empty() {
            f.to_owned()
        } else {
            format!("{parent}.{f}")
        }
    };
    if let Some(f) = backticked_after(message, "missing field `") {
        return join(f);
    }
    if let Some(f) = backticked_after(message, "unknown field `") {
        if f.is_empty() {
            // The key `""` names nothing: name the object holding it (found by fuzzing).
            let holder = parent.strip_suffix('.').unwrap_or(parent);
            return if holder.is_empty() {
                BODY_FIELD.to_owned()
            } else {
                holder.to_owned()
            };
        }
        let already = parent == f || parent.ends_with(&format!(".{f}"));
        return if already { parent.to_owned() } else { join(f) };
    }
    if parent.is_empty() {
        BODY_FIELD.to_owned()
    } else {
        parent.to_owned()
    }
}

/// Text between the backticks following `prefix` in `msg`, if any.
fn backticked_after<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let start = msg.find(prefix)? + prefix.len();
    let rest = &msg[start..];
    let end = rest.find('`')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        content: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
        limit: Option<u8>,
    }

    fn err(s: &str) -> JsonError {
        from_slice::<Body>(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn names_the_failing_field() {
        let cases = [
            (
                r#"{"items": [{"content": "a"}, {"content": 3}]}"#,
                "items[1].content",
                JsonErrorKind::Data,
            ),
            (
                r#"{"items": [{}]}"#,
                "items[0].content",
                JsonErrorKind::Data,
            ),
            (r#"{}"#, "items", JsonErrorKind::Data),
            (r#"{"": 1}"#, "body", JsonErrorKind::Data),
            (r#"{"items": [], "": 1}"#, "body", JsonErrorKind::Data),
            (
                r#"{"items": [{"content": "a", "": 1}]}"#,
                "items[0]",
                JsonErrorKind::Data,
            ),
            (
                r#"{"items": [], "surprise": 1}"#,
                "surprise",
                JsonErrorKind::Data,
            ),
            (
                r#"{"items": [{"content": "a", "x": 1}]}"#,
                "items[0].x",
                JsonErrorKind::Data,
            ),
            (
                r#"{"items": [], "limit": 300}"#,
                "limit",
                JsonErrorKind::Data,
            ),
            (r#""x""#, "body", JsonErrorKind::Data),
            (r#"{"items": ["#, "items", JsonErrorKind::Syntax),
            (r#"nope"#, "body", JsonErrorKind::Syntax),
            (r#"{"items": []} x"#, "body", JsonErrorKind::TrailingData),
        ];
        for (doc, field, kind) in cases {
            let e = err(doc);
            assert_eq!((e.field.as_str(), e.kind), (field, kind), "{doc}: {e}");
            assert!(!e.message.contains(" at line "), "{doc}: {e}");
        }
    }

    #[test]
    fn keeps_the_position_apart() {
        let e = err(r#"{"items": 1}"#);
        assert_eq!(e.message, "invalid type: integer `1`, expected a sequence");
        assert_eq!((e.line, e.column), (1, 11));
        assert_eq!(
            e.message_with_position(),
            "invalid type: integer `1`, expected a sequence at line 1 column 11"
        );
        let ok: Body = from_slice(br#"{"items": [{"content": "x"}]}"#).unwrap();
        assert_eq!(ok.items.len(), 1);
    }
}
