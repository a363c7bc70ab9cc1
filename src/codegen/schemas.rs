//! The 9 codegen message schemas (SPEC §6) as pure, validated wire types.
//!
//! Every schema carries a `timestamp` (defaults to "now" when absent on input)
//! and a `schema_version` (defaults to `"1.0"` and must equal `"1.0"`).
//! Unknown fields are rejected.  Parsing goes through [`parse_request`],
//! [`parse_response`] and [`parse_status`], which deserialise, then run the
//! bound checks of each type's `validate()`, and report failures as a
//! [`SchemaError`] naming the offending field path.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::json::JsonErrorKind;

/// The only schema version accepted and produced.
pub const SCHEMA_VERSION: &str = "1.0";

/// Field name used when an error concerns the payload as a whole
/// (malformed JSON, a top-level value that is not an object, trailing data).
pub use crate::json::BODY_FIELD;

fn default_schema_version() -> String {
    SCHEMA_VERSION.to_string()
}

fn default_limit() -> u32 {
    PatternRequest::DEFAULT_LIMIT
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A schema violation: `field` is the path of the offending field
/// (e.g. `"limit"`, `"pattern_result[0]"`), or [`BODY_FIELD`] for the payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SchemaError {
    pub field: String,
    pub message: String,
}

impl SchemaError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------

/// The four codegen operations (one request/response topic pair each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Analyze,
    Validate,
    Pattern,
    Mixin,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Analyze,
        Operation::Validate,
        Operation::Pattern,
        Operation::Mixin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Analyze => "analyze",
            Operation::Validate => "validate",
            Operation::Pattern => "pattern",
            Operation::Mixin => "mixin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisType {
    #[default]
    Full,
    Partial,
    Quick,
}

impl AnalysisType {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisType::Full => "full",
            AnalysisType::Partial => "partial",
            AnalysisType::Quick => "quick",
        }
    }
}

/// ONEX node type, shared by validation, pattern and mixin requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Orchestrator,
    Compute,
    Reducer,
    Effect,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Orchestrator => "orchestrator",
            NodeType::Compute => "compute",
            NodeType::Reducer => "reducer",
            NodeType::Effect => "effect",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationType {
    Syntax,
    Semantic,
    Compliance,
    #[default]
    Full,
}

impl ValidationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationType::Syntax => "syntax",
            ValidationType::Semantic => "semantic",
            ValidationType::Compliance => "compliance",
            ValidationType::Full => "full",
        }
    }
}

/// Session status carried by [`StatusEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodegenStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl CodegenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CodegenStatus::Pending => "pending",
            CodegenStatus::Processing => "processing",
            CodegenStatus::Completed => "completed",
            CodegenStatus::Failed => "failed",
            CodegenStatus::Cancelled => "cancelled",
        }
    }

    /// `completed`, `failed` and `cancelled` end a session.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CodegenStatus::Completed | CodegenStatus::Failed | CodegenStatus::Cancelled
        )
    }
}

// ---------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------

fn check_version(v: &str) -> Result<(), SchemaError> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(SchemaError::new(
            "schema_version",
            format!("unsupported schema version {v:?}, expected \"{SCHEMA_VERSION}\""),
        ))
    }
}

/// Inclusive range check; rejects NaN.
fn check_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), SchemaError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(SchemaError::new(
            field,
            format!("must be between {lo} and {hi}, got {v}"),
        ))
    }
}

fn check_processing_time(v: f64) -> Result<(), SchemaError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(SchemaError::new(
            "processing_time_ms",
            format!("must be a finite number >= 0, got {v}"),
        ))
    }
}

fn check_non_empty(field: &str, v: &str) -> Result<(), SchemaError> {
    if v.trim().is_empty() {
        Err(SchemaError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisRequest {
    #[serde(default = "Uuid::new_v4")]
    pub correlation_id: Uuid,
    #[serde(default = "Uuid::new_v4")]
    pub session_id: Uuid,
    pub prd_content: String,
    #[serde(default)]
    pub analysis_type: AnalysisType,
    #[serde(default)]
    pub workspace_context: Map<String, Value>,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl AnalysisRequest {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_non_empty("prd_content", &self.prd_content)?;
        check_version(&self.schema_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    #[serde(default = "Uuid::new_v4")]
    pub correlation_id: Uuid,
    #[serde(default = "Uuid::new_v4")]
    pub session_id: Uuid,
    pub code_content: String,
    pub node_type: NodeType,
    #[serde(default)]
    pub contracts: Vec<Value>,
    #[serde(default)]
    pub validation_type: ValidationType,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl ValidationRequest {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_non_empty("code_content", &self.code_content)?;
        check_version(&self.schema_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternRequest {
    #[serde(default = "Uuid::new_v4")]
    pub correlation_id: Uuid,
    #[serde(default = "Uuid::new_v4")]
    pub session_id: Uuid,
    pub node_description: String,
    pub node_type: NodeType,
    #[serde(default = "default_limit")]
    pub limit: u32,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl PatternRequest {
    pub const DEFAULT_LIMIT: u32 = 5;
    pub const MIN_LIMIT: u32 = 1;
    pub const MAX_LIMIT: u32 = 20;

    pub fn validate(&self) -> Result<(), SchemaError> {
        check_non_empty("node_description", &self.node_description)?;
        if !(Self::MIN_LIMIT..=Self::MAX_LIMIT).contains(&self.limit) {
            return Err(SchemaError::new(
                "limit",
                format!(
                    "must be between {} and {}, got {}",
                    Self::MIN_LIMIT,
                    Self::MAX_LIMIT,
                    self.limit
                ),
            ));
        }
        check_version(&self.schema_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixinRequest {
    #[serde(default = "Uuid::new_v4")]
    pub correlation_id: Uuid,
    #[serde(default = "Uuid::new_v4")]
    pub session_id: Uuid,
    pub requirements: Vec<String>,
    pub node_type: NodeType,
    #[serde(default)]
    pub existing_mixins: Vec<String>,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl MixinRequest {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_version(&self.schema_version)
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisResponse {
    pub correlation_id: Uuid,
    pub session_id: Uuid,
    pub analysis_result: Map<String, Value>,
    pub confidence: f64,
    pub processing_time_ms: f64,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl AnalysisResponse {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_range("confidence", self.confidence, 0.0, 1.0)?;
        check_processing_time(self.processing_time_ms)?;
        check_version(&self.schema_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationResponse {
    pub correlation_id: Uuid,
    pub session_id: Uuid,
    pub validation_result: Map<String, Value>,
    pub quality_score: f64,
    pub onex_compliance_score: f64,
    pub is_valid: bool,
    pub processing_time_ms: f64,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl ValidationResponse {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_range("quality_score", self.quality_score, 0.0, 1.0)?;
        check_range(
            "onex_compliance_score",
            self.onex_compliance_score,
            0.0,
            1.0,
        )?;
        check_processing_time(self.processing_time_ms)?;
        check_version(&self.schema_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternResponse {
    pub correlation_id: Uuid,
    pub session_id: Uuid,
    pub pattern_result: Vec<Map<String, Value>>,
    pub total_matches: u64,
    pub processing_time_ms: f64,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl PatternResponse {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_processing_time(self.processing_time_ms)?;
        check_version(&self.schema_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixinResponse {
    pub correlation_id: Uuid,
    pub session_id: Uuid,
    pub mixin_recommendations: Vec<Map<String, Value>>,
    pub total_recommendations: u64,
    pub processing_time_ms: f64,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl MixinResponse {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_processing_time(self.processing_time_ms)?;
        check_version(&self.schema_version)
    }
}

// ---------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    pub session_id: Uuid,
    pub status: CodegenStatus,
    pub progress_percentage: f64,
    pub message: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

impl StatusEvent {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_range("progress_percentage", self.progress_percentage, 0.0, 100.0)?;
        check_version(&self.schema_version)
    }
}

// ---------------------------------------------------------------------------
// Operation-tagged wrappers
// ---------------------------------------------------------------------------

/// A parsed request; serialises as the inner object (no tag).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CodegenRequest {
    Analyze(AnalysisRequest),
    Validate(ValidationRequest),
    Pattern(PatternRequest),
    Mixin(MixinRequest),
}

impl CodegenRequest {
    pub fn operation(&self) -> Operation {
        match self {
            CodegenRequest::Analyze(_) => Operation::Analyze,
            CodegenRequest::Validate(_) => Operation::Validate,
            CodegenRequest::Pattern(_) => Operation::Pattern,
            CodegenRequest::Mixin(_) => Operation::Mixin,
        }
    }

    pub fn correlation_id(&self) -> Uuid {
        match self {
            CodegenRequest::Analyze(r) => r.correlation_id,
            CodegenRequest::Validate(r) => r.correlation_id,
            CodegenRequest::Pattern(r) => r.correlation_id,
            CodegenRequest::Mixin(r) => r.correlation_id,
        }
    }

    pub fn session_id(&self) -> Uuid {
        match self {
            CodegenRequest::Analyze(r) => r.session_id,
            CodegenRequest::Validate(r) => r.session_id,
            CodegenRequest::Pattern(r) => r.session_id,
            CodegenRequest::Mixin(r) => r.session_id,
        }
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            CodegenRequest::Analyze(r) => r.timestamp,
            CodegenRequest::Validate(r) => r.timestamp,
            CodegenRequest::Pattern(r) => r.timestamp,
            CodegenRequest::Mixin(r) => r.timestamp,
        }
    }

    pub fn validate(&self) -> Result<(), SchemaError> {
        match self {
            CodegenRequest::Analyze(r) => r.validate(),
            CodegenRequest::Validate(r) => r.validate(),
            CodegenRequest::Pattern(r) => r.validate(),
            CodegenRequest::Mixin(r) => r.validate(),
        }
    }
}

/// A parsed response; serialises as the inner object (no tag).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CodegenResponse {
    Analyze(AnalysisResponse),
    Validate(ValidationResponse),
    Pattern(PatternResponse),
    Mixin(MixinResponse),
}

impl CodegenResponse {
    pub fn operation(&self) -> Operation {
        match self {
            CodegenResponse::Analyze(_) => Operation::Analyze,
            CodegenResponse::Validate(_) => Operation::Validate,
            CodegenResponse::Pattern(_) => Operation::Pattern,
            CodegenResponse::Mixin(_) => Operation::Mixin,
        }
    }

    pub fn correlation_id(&self) -> Uuid {
        match self {
            CodegenResponse::Analyze(r) => r.correlation_id,
            CodegenResponse::Validate(r) => r.correlation_id,
            CodegenResponse::Pattern(r) => r.correlation_id,
            CodegenResponse::Mixin(r) => r.correlation_id,
        }
    }

    pub fn session_id(&self) -> Uuid {
        match self {
            CodegenResponse::Analyze(r) => r.session_id,
            CodegenResponse::Validate(r) => r.session_id,
            CodegenResponse::Pattern(r) => r.session_id,
            CodegenResponse::Mixin(r) => r.session_id,
        }
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            CodegenResponse::Analyze(r) => r.timestamp,
            CodegenResponse::Validate(r) => r.timestamp,
            CodegenResponse::Pattern(r) => r.timestamp,
            CodegenResponse::Mixin(r) => r.timestamp,
        }
    }

    pub fn processing_time_ms(&self) -> f64 {
        match self {
            CodegenResponse::Analyze(r) => r.processing_time_ms,
            CodegenResponse::Validate(r) => r.processing_time_ms,
            CodegenResponse::Pattern(r) => r.processing_time_ms,
            CodegenResponse::Mixin(r) => r.processing_time_ms,
        }
    }

    pub fn validate(&self) -> Result<(), SchemaError> {
        match self {
            CodegenResponse::Analyze(r) => r.validate(),
            CodegenResponse::Validate(r) => r.validate(),
            CodegenResponse::Pattern(r) => r.validate(),
            CodegenResponse::Mixin(r) => r.validate(),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Deserialise one JSON document (no trailing data) into `T`, naming the
/// offending field path on failure.  No bound checks.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SchemaError> {
    crate::json::from_slice(bytes).map_err(|e| match e.kind {
        JsonErrorKind::TrailingData => SchemaError::new(
            BODY_FIELD,
            format!("trailing data: {}", e.message_with_position()),
        ),
        JsonErrorKind::Syntax
        | JsonErrorKind::Data
        | JsonErrorKind::TooLarge
        | JsonErrorKind::TooDeep => SchemaError::new(e.field, e.message),
    })
}

/// Parse and validate the request of `op`.
pub fn parse_request(op: Operation, bytes: &[u8]) -> Result<CodegenRequest, SchemaError> {
    let req = match op {
        Operation::Analyze => CodegenRequest::Analyze(decode(bytes)?),
        Operation::Validate => CodegenRequest::Validate(decode(bytes)?),
        Operation::Pattern => CodegenRequest::Pattern(decode(bytes)?),
        Operation::Mixin => CodegenRequest::Mixin(decode(bytes)?),
    };
    req.validate()?;
    Ok(req)
}

/// Parse and validate the response of `op`.
pub fn parse_response(op: Operation, bytes: &[u8]) -> Result<CodegenResponse, SchemaError> {
    let resp = match op {
        Operation::Analyze => CodegenResponse::Analyze(decode(bytes)?),
        Operation::Validate => CodegenResponse::Validate(decode(bytes)?),
        Operation::Pattern => CodegenResponse::Pattern(decode(bytes)?),
        Operation::Mixin => CodegenResponse::Mixin(decode(bytes)?),
    };
    resp.validate()?;
    Ok(resp)
}

/// Parse and validate a status event.
pub fn parse_status(bytes: &[u8]) -> Result<StatusEvent, SchemaError> {
    let ev: StatusEvent = decode(bytes)?;
    ev.validate()?;
    Ok(ev)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const SID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    const TS: &str = "2025-01-02T03:04:05.123456Z";

    /// Which parser a schema goes through.
    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Req(Operation),
        Resp(Operation),
        Status,
    }

    /// Parse, then re-serialise to a JSON value.
    fn parse(kind: Kind, bytes: &[u8]) -> Result<Value, SchemaError> {
        Ok(match kind {
            Kind::Req(op) => serde_json::to_value(parse_request(op, bytes)?).unwrap(),
            Kind::Resp(op) => serde_json::to_value(parse_response(op, bytes)?).unwrap(),
            Kind::Status => serde_json::to_value(parse_status(bytes)?).unwrap(),
        })
    }

    fn parse_value(kind: Kind, v: &Value) -> Result<Value, SchemaError> {
        parse(kind, serde_json::to_vec(v).unwrap().as_slice())
    }

    /// (name, parser, valid example, required fields)
    fn cases() -> Vec<(&'static str, Kind, Value, &'static [&'static str])> {
        vec![
            (
                "AnalysisRequest",
                Kind::Req(Operation::Analyze),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "prd_content": "# PRD\nBuild a compute node that hashes files.",
                    "analysis_type": "quick",
                    "workspace_context": {"repo": "omninode", "files": 3},
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &["prd_content"],
            ),
            (
                "AnalysisResponse",
                Kind::Resp(Operation::Analyze),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "analysis_result": {"requirements": ["hash"], "node_type": "compute"},
                    "confidence": 0.85, "processing_time_ms": 12.5,
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &[
                    "correlation_id",
                    "session_id",
                    "analysis_result",
                    "confidence",
                    "processing_time_ms",
                ],
            ),
            (
                "ValidationRequest",
                Kind::Req(Operation::Validate),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "code_content": "class NodeHasherCompute: pass",
                    "node_type": "compute",
                    "contracts": [{"name": "ModelContractCompute"}, "raw"],
                    "validation_type": "semantic",
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &["code_content", "node_type"],
            ),
            (
                "ValidationResponse",
                Kind::Resp(Operation::Validate),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "validation_result": {"errors": [], "warnings": ["naming"]},
                    "quality_score": 0.9, "onex_compliance_score": 1.0,
                    "is_valid": true, "processing_time_ms": 0,
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &[
                    "correlation_id",
                    "session_id",
                    "validation_result",
                    "quality_score",
                    "onex_compliance_score",
                    "is_valid",
                    "processing_time_ms",
                ],
            ),
            (
                "PatternRequest",
                Kind::Req(Operation::Pattern),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "node_description": "an effect node writing to postgres",
                    "node_type": "effect", "limit": 20,
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &["node_description", "node_type"],
            ),
            (
                "PatternResponse",
                Kind::Resp(Operation::Pattern),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "pattern_result": [{"name": "db_writer", "score": 0.75}, {}],
                    "total_matches": 2, "processing_time_ms": 3.25,
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &[
                    "correlation_id",
                    "session_id",
                    "pattern_result",
                    "total_matches",
                    "processing_time_ms",
                ],
            ),
            (
                "MixinRequest",
                Kind::Req(Operation::Mixin),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "requirements": ["retry", "metrics"],
                    "node_type": "orchestrator",
                    "existing_mixins": ["MixinHealthCheck"],
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &["requirements", "node_type"],
            ),
            (
                "MixinResponse",
                Kind::Resp(Operation::Mixin),
                json!({
                    "correlation_id": CID, "session_id": SID,
                    "mixin_recommendations": [{"mixin": "MixinRetry", "reason": "retry"}],
                    "total_recommendations": 1, "processing_time_ms": 1,
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &[
                    "correlation_id",
                    "session_id",
                    "mixin_recommendations",
                    "total_recommendations",
                    "processing_time_ms",
                ],
            ),
            (
                "StatusEvent",
                Kind::Status,
                json!({
                    "session_id": SID, "status": "processing",
                    "progress_percentage": 42.5, "message": "analysing PRD",
                    "metadata": {"stage": "analysis"},
                    "timestamp": TS, "schema_version": "1.0"
                }),
                &["session_id", "status", "progress_percentage", "message"],
            ),
        ]
    }

    fn with(base: &Value, key: &str, v: Value) -> Value {
        let mut out = base.clone();
        out.as_object_mut().unwrap().insert(key.to_string(), v);
        out
    }

    fn without(base: &Value, key: &str) -> Value {
        let mut out = base.clone();
        out.as_object_mut().unwrap().remove(key);
        out
    }

    fn example_of(name: &str) -> (Kind, Value) {
        cases()
            .into_iter()
            .find(|c| c.0 == name)
            .map(|c| (c.1, c.2))
            .unwrap()
    }

    #[test]
    fn valid_examples_round_trip() {
        for (name, kind, example, _) in cases() {
            let first = parse_value(kind, &example)
                .unwrap_or_else(|e| panic!("{name}: valid example rejected: {e}"));
            // Every field of the full example is written back unchanged
            // (numbers compared as f64 since 0 / 1.0 may change representation).
            for (k, v) in example.as_object().unwrap() {
                let got = &first[k.as_str()];
                if let (Some(a), Some(b)) = (v.as_f64(), got.as_f64()) {
                    assert_eq!(a, b, "{name}.{k}");
                } else if k == "timestamp" {
                    let a: DateTime<Utc> = serde_json::from_value(v.clone()).unwrap();
                    let b: DateTime<Utc> = serde_json::from_value(got.clone()).unwrap();
                    assert_eq!(a, b, "{name}.{k}");
                } else {
                    assert_eq!(v, got, "{name}.{k}");
                }
            }
            let second = parse_value(kind, &first).unwrap();
            assert_eq!(first, second, "{name}: round trip changed the value");
        }
    }

    #[test]
    fn typed_round_trip_is_equal() {
        for (name, kind, example, _) in cases() {
            let bytes = serde_json::to_vec(&example).unwrap();
            match kind {
                Kind::Req(op) => {
                    let a = parse_request(op, &bytes).unwrap();
                    let b = parse_request(op, &serde_json::to_vec(&a).unwrap()).unwrap();
                    assert_eq!(a, b, "{name}");
                    assert_eq!(a.operation(), op);
                    assert_eq!(a.correlation_id().to_string(), CID);
                    assert_eq!(a.session_id().to_string(), SID);
                }
                Kind::Resp(op) => {
                    let a = parse_response(op, &bytes).unwrap();
                    let b = parse_response(op, &serde_json::to_vec(&a).unwrap()).unwrap();
                    assert_eq!(a, b, "{name}");
                    assert_eq!(a.operation(), op);
                    assert_eq!(a.correlation_id().to_string(), CID);
                    assert_eq!(a.session_id().to_string(), SID);
                }
                Kind::Status => {
                    let a = parse_status(&bytes).unwrap();
                    let b = parse_status(&serde_json::to_vec(&a).unwrap()).unwrap();
                    assert_eq!(a, b, "{name}");
                    assert_eq!(a.session_id.to_string(), SID);
                }
            }
        }
    }

    #[test]
    fn serialisation_writes_every_field() {
        let minimal = json!({"prd_content": "x"});
        let out = parse_value(Kind::Req(Operation::Analyze), &minimal).unwrap();
        let keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        for k in [
            "correlation_id",
            "session_id",
            "prd_content",
            "analysis_type",
            "workspace_context",
            "timestamp",
            "schema_version",
        ] {
            assert!(keys.contains(&k), "missing {k} in {out}");
        }
        assert_eq!(out["schema_version"], "1.0");
    }

    #[test]
    fn missing_required_field_is_named() {
        for (name, kind, example, required) in cases() {
            for field in required {
                let err = parse_value(kind, &without(&example, field))
                    .expect_err(&format!("{name}: missing {field} accepted"));
                assert_eq!(err.field, *field, "{name}: {err}");
                assert!(err.message.contains("missing field"), "{name}: {err}");
            }
        }
    }

    #[test]
    fn optional_fields_may_be_omitted() {
        for (name, kind, example, required) in cases() {
            let mut minimal = serde_json::Map::new();
            for f in required {
                minimal.insert(f.to_string(), example[*f].clone());
            }
            parse_value(kind, &Value::Object(minimal))
                .unwrap_or_else(|e| panic!("{name}: minimal example rejected: {e}"));
        }
    }

    #[test]
    fn bounds_violations_are_named() {
        let violations: &[(&str, &str, Value)] = &[
            ("AnalysisResponse", "confidence", json!(1.5)),
            ("AnalysisResponse", "confidence", json!(-0.01)),
            ("AnalysisResponse", "processing_time_ms", json!(-1)),
            ("ValidationResponse", "quality_score", json!(-0.1)),
            ("ValidationResponse", "onex_compliance_score", json!(2)),
            ("ValidationResponse", "processing_time_ms", json!(-1)),
            ("PatternRequest", "limit", json!(0)),
            ("PatternRequest", "limit", json!(21)),
            ("PatternRequest", "limit", json!(-1)),
            ("PatternRequest", "limit", json!("5")),
            ("PatternResponse", "processing_time_ms", json!(-1)),
            ("MixinResponse", "processing_time_ms", json!(-1)),
            ("StatusEvent", "progress_percentage", json!(101)),
            ("StatusEvent", "progress_percentage", json!(-1)),
            ("AnalysisRequest", "prd_content", json!("")),
            ("AnalysisRequest", "prd_content", json!("  \n\t")),
            ("ValidationRequest", "code_content", json!("")),
            ("PatternRequest", "node_description", json!(" ")),
            ("AnalysisRequest", "analysis_type", json!("deep")),
            ("ValidationRequest", "validation_type", json!("lint")),
            ("ValidationRequest", "node_type", json!("service")),
            ("PatternRequest", "node_type", json!("Compute")),
            ("MixinRequest", "node_type", json!(null)),
            ("StatusEvent", "status", json!("done")),
            ("AnalysisRequest", "correlation_id", json!("not-a-uuid")),
            ("StatusEvent", "session_id", json!(12)),
            ("AnalysisRequest", "workspace_context", json!([])),
            ("AnalysisResponse", "analysis_result", json!("ok")),
            ("ValidationResponse", "is_valid", json!("yes")),
            ("PatternResponse", "total_matches", json!(-3)),
            ("MixinRequest", "requirements", json!("retry")),
            ("StatusEvent", "timestamp", json!("yesterday")),
        ];
        for (name, field, bad) in violations {
            let (kind, example) = example_of(name);
            let err = parse_value(kind, &with(&example, field, bad.clone()))
                .expect_err(&format!("{name}: {field}={bad} accepted"));
            assert_eq!(err.field, *field, "{name}: {field}={bad}: {err}");
        }
    }

    #[test]
    fn nested_type_errors_carry_the_path() {
        let (kind, example) = example_of("PatternResponse");
        let err = parse_value(kind, &with(&example, "pattern_result", json!([{}, 3]))).unwrap_err();
        assert_eq!(err.field, "pattern_result[1]");
        let (kind, example) = example_of("MixinRequest");
        let err = parse_value(kind, &with(&example, "requirements", json!(["a", 1]))).unwrap_err();
        assert_eq!(err.field, "requirements[1]");
    }

    #[test]
    fn bounds_are_inclusive() {
        let ok: &[(&str, &str, Value)] = &[
            ("AnalysisResponse", "confidence", json!(0)),
            ("AnalysisResponse", "confidence", json!(1)),
            ("ValidationResponse", "quality_score", json!(0.0)),
            ("ValidationResponse", "onex_compliance_score", json!(1.0)),
            ("PatternRequest", "limit", json!(1)),
            ("PatternRequest", "limit", json!(20)),
            ("StatusEvent", "progress_percentage", json!(0)),
            ("StatusEvent", "progress_percentage", json!(100)),
            ("MixinResponse", "processing_time_ms", json!(0)),
            ("StatusEvent", "message", json!("")),
        ];
        for (name, field, good) in ok {
            let (kind, example) = example_of(name);
            parse_value(kind, &with(&example, field, good.clone()))
                .unwrap_or_else(|e| panic!("{name}: {field}={good} rejected: {e}"));
        }
    }

    #[test]
    fn schema_version_must_be_1_0() {
        for (name, kind, example, _) in cases() {
            for bad in [json!("2.0"), json!("1"), json!(""), json!(1.0)] {
                let err = parse_value(kind, &with(&example, "schema_version", bad.clone()))
                    .expect_err(&format!("{name}: schema_version {bad} accepted"));
                assert_eq!(err.field, "schema_version", "{name}: {err}");
            }
        }
    }

    #[test]
    fn unknown_field_is_named() {
        for (name, kind, example, _) in cases() {
            let err = parse_value(kind, &with(&example, "surprise", json!(1)))
                .expect_err(&format!("{name}: unknown field accepted"));
            assert_eq!(err.field, "surprise", "{name}: {err}");
            assert!(err.message.contains("unknown field"), "{name}: {err}");
        }
    }

    #[test]
    fn defaults_are_applied() {
        let before = Utc::now();
        let CodegenRequest::Analyze(a) =
            parse_request(Operation::Analyze, br#"{"prd_content":"build it"}"#).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(a.analysis_type, AnalysisType::Full);
        assert!(a.workspace_context.is_empty());
        assert_eq!(a.schema_version, "1.0");
        assert!(a.timestamp >= before && a.timestamp <= Utc::now());
        assert_ne!(a.correlation_id, a.session_id);

        let CodegenRequest::Validate(v) = parse_request(
            Operation::Validate,
            br#"{"code_content":"x = 1","node_type":"reducer"}"#,
        )
        .unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(v.validation_type, ValidationType::Full);
        assert!(v.contracts.is_empty());
        assert_eq!(v.node_type, NodeType::Reducer);

        let CodegenRequest::Pattern(p) = parse_request(
            Operation::Pattern,
            br#"{"node_description":"d","node_type":"compute"}"#,
        )
        .unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(p.limit, 5);

        let CodegenRequest::Mixin(m) = parse_request(
            Operation::Mixin,
            br#"{"requirements":[],"node_type":"effect"}"#,
        )
        .unwrap() else {
            panic!("wrong variant")
        };
        assert!(m.existing_mixins.is_empty());

        let s = parse_status(
            format!(r#"{{"session_id":"{SID}","status":"pending","progress_percentage":0,"message":"queued"}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert!(s.metadata.is_empty());
        assert_eq!(s.status, CodegenStatus::Pending);
        assert_eq!(s.schema_version, "1.0");
    }

    #[test]
    fn every_enum_value_parses() {
        let (kind, example) = example_of("AnalysisRequest");
        for v in ["full", "partial", "quick"] {
            parse_value(kind, &with(&example, "analysis_type", json!(v))).unwrap();
        }
        let (kind, example) = example_of("ValidationRequest");
        for v in ["syntax", "semantic", "compliance", "full"] {
            parse_value(kind, &with(&example, "validation_type", json!(v))).unwrap();
        }
        for v in ["orchestrator", "compute", "reducer", "effect"] {
            let out = parse_value(kind, &with(&example, "node_type", json!(v))).unwrap();
            assert_eq!(out["node_type"], v);
        }
        let (kind, example) = example_of("StatusEvent");
        for v in ["pending", "processing", "completed", "failed", "cancelled"] {
            let out = parse_value(kind, &with(&example, "status", json!(v))).unwrap();
            assert_eq!(out["status"], v);
        }
        assert!(CodegenStatus::Cancelled.is_terminal());
        assert!(!CodegenStatus::Processing.is_terminal());
    }

    #[test]
    fn response_ids_are_required_but_request_ids_optional() {
        // Requests: ids generated when absent.
        for (name, kind, example, _) in cases() {
            let stripped = without(&without(&example, "correlation_id"), "session_id");
            let r = parse_value(kind, &stripped);
            match kind {
                Kind::Req(_) => {
                    let out = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(Uuid::parse_str(out["correlation_id"].as_str().unwrap()).is_ok());
                    assert!(Uuid::parse_str(out["session_id"].as_str().unwrap()).is_ok());
                }
                Kind::Resp(_) => assert_eq!(r.unwrap_err().field, "correlation_id", "{name}"),
                Kind::Status => assert_eq!(r.unwrap_err().field, "session_id", "{name}"),
            }
        }
    }

    #[test]
    fn malformed_payloads_name_the_body() {
        for bytes in [
            &b"not json"[..],
            b"[]",
            b"",
            b"{\"prd_content\":\"x\"} trailing",
        ] {
            let err = parse_request(Operation::Analyze, bytes).unwrap_err();
            assert_eq!(
                err.field,
                BODY_FIELD,
                "{:?}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn response_operation_mismatch_is_rejected() {
        // An analysis response body is not a valid validation response.
        let (_, example) = example_of("AnalysisResponse");
        let err = parse_value(Kind::Resp(Operation::Validate), &example).unwrap_err();
        assert_eq!(err.field, "analysis_result");
    }

    #[test]
    fn direct_validate_catches_nan_and_bounds() {
        let ev = StatusEvent {
            session_id: Uuid::new_v4(),
            status: CodegenStatus::Processing,
            progress_percentage: f64::NAN,
            message: String::new(),
            metadata: Map::new(),
            timestamp: Utc::now(),
            schema_version: SCHEMA_VERSION.into(),
        };
        assert_eq!(ev.validate().unwrap_err().field, "progress_percentage");
        let resp = AnalysisResponse {
            correlation_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            analysis_result: Map::new(),
            confidence: 0.5,
            processing_time_ms: f64::INFINITY,
            timestamp: Utc::now(),
            schema_version: SCHEMA_VERSION.into(),
        };
        assert_eq!(resp.validate().unwrap_err().field, "processing_time_ms");
        let err = SchemaError::new("limit", "must be between 1 and 20, got 0");
        assert_eq!(err.to_string(), "limit: must be between 1 and 20, got 0");
    }

    #[test]
    fn operation_names() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
            assert_eq!(serde_json::to_value(op).unwrap(), json!(op.as_str()));
        }
        assert_eq!(Operation::Analyze.as_str(), "analyze");
        assert_eq!(Operation::Validate.as_str(), "validate");
        assert_eq!(Operation::Pattern.as_str(), "pattern");
        assert_eq!(Operation::Mixin.as_str(), "mixin");
        assert_eq!(Operation::parse("Analyze"), None);
        assert_eq!(Operation::parse("deploy"), None);
    }
}
