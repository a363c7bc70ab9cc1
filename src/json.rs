//! Reading one JSON document into a type, with the failing field's path when it does not fit
//! (`items[3].content`, `limit`, or `body` for the document itself). Used for HTTP request bodies
//! (`crate::http::extract`) and for codegen messages (`crate::codegen::schemas`); each caller words
//! the message its own way from the parts here.
//!
//! Free-form JSON inside a document (`metadata`, workflow `metadata`, …) is read as a
//! [`FreeObject`]: built value by value while counting its compact serialized size, nesting depth and
//! element count against [`FreeJsonLimits`], so an oversize one is refused as soon as it crosses a
//! limit — no unbounded `serde_json::Value` is ever built. The limits in force are the ones given to
//! [`from_slice_limited`] (the defaults otherwise); the error names the free-form field itself
//! (`metadata`, `items[3].metadata`).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

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
    /// Free-form JSON over its size or element-count limit.
    TooLarge,
    /// Free-form JSON nested deeper than its limit.
    TooDeep,
}

/// Bounds of every free-form JSON value inside a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeJsonLimits {
    /// Compact serialized size (bytes of keys and strings as decoded, plus punctuation).
    pub max_bytes: usize,
    /// Containers nested inside the value itself (a flat object is depth 1).
    pub max_depth: usize,
    /// Object members and array items, counted over the whole value (nested ones included).
    pub max_elements: usize,
}

impl Default for FreeJsonLimits {
    fn default() -> Self {
        FreeJsonLimits {
            max_bytes: 64 * 1024,
            max_depth: 32,
            max_elements: 1024,
        }
    }
}

thread_local! {
    static LIMITS: Cell<FreeJsonLimits> = Cell::new(FreeJsonLimits::default());
    /// Set by a free-form value that broke a limit: which kind, and how many path segments below
    /// the free-form field itself the error was raised (to name that field).
    static OVER: Cell<Option<(JsonErrorKind, usize)>> = const { Cell::new(None) };
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

/// Deserialise exactly one JSON document from `bytes` into `T`, with the default limits of
/// free-form values.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    from_slice_limited(bytes, FreeJsonLimits::default())
}

/// Deserialise exactly one JSON document from `bytes` into `T`; every [`FreeObject`] in it is held
/// to `limits`.
pub fn from_slice_limited<T: DeserializeOwned>(
    bytes: &[u8],
    limits: FreeJsonLimits,
) -> Result<T, JsonError> {
    let previous = LIMITS.with(|l| l.replace(limits));
    OVER.with(|o| o.set(None));
    let result = deserialize_one(bytes);
    LIMITS.with(|l| l.set(previous));
    OVER.with(|o| o.set(None));
    result
}

fn deserialize_one<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let over = OVER.with(|o| o.take());
        let segments: Vec<String> = e.path().iter().map(segment).collect();
        let keep = segments.len() - over.map_or(0, |(_, below)| below.min(segments.len()));
        let parent = join_segments(&segments[..keep]);
        let inner = e.into_inner();
        let kind = if let Some((kind, _)) = over {
            kind
        } else if inner.is_syntax() || inner.is_eof() {
            JsonErrorKind::Syntax
        } else {
            JsonErrorKind::Data
        };
        let (message, line, column) = parts(&inner);
        let field = if over.is_some() {
            if parent.is_empty() {
                BODY_FIELD.to_owned()
            } else {
                parent
            }
        } else {
            field_named(&parent, &message)
        };
        JsonError {
            kind,
            field,
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

fn segment(s: &serde_path_to_error::Segment) -> String {
    use serde_path_to_error::Segment;
    match s {
        Segment::Seq { index } => format!("[{index}]"),
        Segment::Map { key } => format!(".{key}"),
        Segment::Enum { variant } => format!(".{variant}"),
        Segment::Unknown => ".?".to_owned(),
    }
}

/// `items`, `[3]`, `.metadata` → `items[3].metadata`.
fn join_segments(segments: &[String]) -> String {
    let joined: String = segments.concat();
    joined
        .strip_prefix('.')
        .map(str::to_owned)
        .unwrap_or(joined)
}

/// A free-form JSON object held to the [`FreeJsonLimits`] in force while it is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FreeObject(pub Map<String, Value>);

impl FreeObject {
    pub fn into_inner(self) -> Map<String, Value> {
        self.0
    }
}

impl<'de> Deserialize<'de> for FreeObject {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut budget = Budget {
            limits: LIMITS.with(Cell::get),
            bytes: 0,
            elements: 0,
        };
        match (ValueSeed {
            budget: &mut budget,
            depth: 0,
        })
        .deserialize(d)?
        {
            Value::Object(m) => Ok(FreeObject(m)),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a JSON object",
            )),
        }
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct Budget {
    limits: FreeJsonLimits,
    bytes: usize,
    elements: usize,
}

impl Budget {
    /// Count one element of `size` serialized bytes; the error is raised by the container at
    /// `depth` (0 = the free-form value itself), so the path can be cut back to that value.
    fn add<E: de::Error>(&mut self, size: usize, depth: usize) -> Result<(), E> {
        self.bytes = self.bytes.saturating_add(size);
        self.elements += 1;
        if self.bytes > self.limits.max_bytes {
            return Err(over(
                JsonErrorKind::TooLarge,
                depth,
                format!(
                    "is larger than the limit of {} bytes (serialized)",
                    self.limits.max_bytes
                ),
            ));
        }
        if self.elements > self.limits.max_elements {
            return Err(over(
                JsonErrorKind::TooLarge,
                depth,
                format!(
                    "has more than the limit of {} elements",
                    self.limits.max_elements
                ),
            ));
        }
        Ok(())
    }
}

fn over<E: de::Error>(kind: JsonErrorKind, below: usize, message: String) -> E {
    OVER.with(|o| o.set(Some((kind, below))));
    E::custom(message)
}

/// Builds one value, counting it against the budget. Scalars never fail (their container checks
/// the budget after them), so every limit error is raised by a container and `depth` says how far
/// below the free-form value that is.
struct ValueSeed<'b> {
    budget: &'b mut Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Serialized size of a string: its bytes and the quotes (escapes not counted).
fn str_size(s: &str) -> usize {
    s.len() + 2
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.bytes += if v { 4 } else { 5 };
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.bytes += 20;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.bytes += 20;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.bytes += 24;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.bytes = self.budget.bytes.saturating_add(str_size(v));
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.bytes = self.budget.bytes.saturating_add(str_size(&v));
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.bytes += 4;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        ValueSeed {
            budget: self.budget,
            depth: self.depth,
        }
        .deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth;
        self.enter::<A::Error>(depth)?;
        let mut items = Vec::new();
        loop {
            let next = seq.next_element_seed(ValueSeed {
                budget: &mut *self.budget,
                depth: depth + 1,
            })?;
            let Some(v) = next else { break };
            self.budget.add::<A::Error>(1, depth)?;
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth;
        self.enter::<A::Error>(depth)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(ValueSeed {
                budget: &mut *self.budget,
                depth: depth + 1,
            })?;
            // One element per member: its key, the colon and the comma.
            self.budget.add::<A::Error>(str_size(&key) + 2, depth)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

impl ValueSeed<'_> {
    /// Entering a container at `depth` (the free-form value's own container is depth 0).
    fn enter<E: de::Error>(&mut self, depth: usize) -> Result<(), E> {
        self.budget.bytes += 2;
        if depth >= self.budget.limits.max_depth {
            return Err(over(
                JsonErrorKind::TooDeep,
                depth,
                format!(
                    "is nested deeper than the limit of {} levels",
                    self.budget.limits.max_depth
                ),
            ));
        }
        Ok(())
    }
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

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Stamp {
        items: Vec<Meta>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Meta {
        metadata: Option<FreeObject>,
    }

    const SMALL: FreeJsonLimits = FreeJsonLimits {
        max_bytes: 200,
        max_depth: 3,
        max_elements: 10,
    };

    fn limited(doc: &str) -> Result<Stamp, JsonError> {
        from_slice_limited::<Stamp>(doc.as_bytes(), SMALL)
    }

    #[test]
    fn free_form_values_within_limits_are_kept_whole() {
        let doc = r#"{"items": [{"metadata": {"a": [1, 2.5, true, null], "b": {"c": "d"}}}, {}]}"#;
        let s = limited(doc).unwrap();
        assert_eq!(
            Value::Object(s.items[0].metadata.clone().unwrap().into_inner()),
            serde_json::json!({"a": [1, 2.5, true, null], "b": {"c": "d"}})
        );
        assert!(s.items[1].metadata.is_none());
    }

    #[test]
    fn free_form_values_over_a_limit_name_the_field() {
        let long = format!(
            r#"{{"items": [{{}}, {{"metadata": {{"k": "{}"}}}}]}}"#,
            "x".repeat(300)
        );
        let deep = r#"{"items": [{"metadata": {"a": {"b": {"c": {"d": 1}}}}}]}"#;
        let wide = r#"{"items": [{"metadata": {"a": [1,2,3,4,5,6,7,8,9,10]}}]}"#;
        let deep_arrays = r#"{"items": [{"metadata": {"a": [[[[]]]]}}]}"#;
        for (doc, kind, field) in [
            (long.as_str(), JsonErrorKind::TooLarge, "items[1].metadata"),
            (deep, JsonErrorKind::TooDeep, "items[0].metadata"),
            (wide, JsonErrorKind::TooLarge, "items[0].metadata"),
            (deep_arrays, JsonErrorKind::TooDeep, "items[0].metadata"),
        ] {
            let e = limited(doc).unwrap_err();
            assert_eq!((e.kind, e.field.as_str()), (kind, field), "{doc}: {e}");
        }
        // Exactly at the depth limit (3 containers) is fine; the default limits are wider.
        limited(r#"{"items": [{"metadata": {"a": {"b": {}}}}]}"#).unwrap();
        from_slice::<Stamp>(long.as_bytes()).unwrap();
        // A free-form object must be an object; other errors are unchanged.
        let e = limited(r#"{"items": [{"metadata": [1]}]}"#).unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_str()),
            (JsonErrorKind::Data, "items[0].metadata")
        );
        let e = limited(r#"{"items": [{"metadata": {"a": }}]}"#).unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::Syntax);
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
