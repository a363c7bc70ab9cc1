//! Wire types of the stamping API (request and response bodies). Internal types never derive
//! `Serialize` for the wire; conversions live here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::json::FreeObject;
use crate::stamping::core::StampType;
use crate::stamping::StampRecord;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StampTypeDto {
    #[default]
    Lightweight,
    Rich,
}

impl From<StampTypeDto> for StampType {
    fn from(s: StampTypeDto) -> Self {
        match s {
            StampTypeDto::Lightweight => StampType::Lightweight,
            StampTypeDto::Rich => StampType::Rich,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StampOptionsDto {
    #[serde(default)]
    pub stamp_type: StampTypeDto,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StampRequest {
    pub content: String,
    pub file_path: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub options: StampOptionsDto,
    /// `uid`, `timestamp`, `author`, `version`, `protocol_version`, `content_type` shape the stamp;
    /// everything is stored.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<FreeObject>,
    pub protocol_version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceMetrics {
    pub execution_time_ms: f64,
    pub hash_generation_time_ms: f64,
    pub file_size_bytes: u64,
    pub performance_grade: &'static str,
}

pub fn grade(ms: f64) -> &'static str {
    if ms < 1.0 {
        "A"
    } else if ms < 2.0 {
        "B"
    } else {
        "C"
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StampResponse {
    pub success: bool,
    pub stamp_id: Uuid,
    pub file_hash: String,
    pub stamped_content: String,
    pub stamp: String,
    pub stamp_type: StampTypeDto,
    pub namespace: String,
    /// False when this content was already stamped in the namespace (idempotent replay).
    pub created: bool,
    pub performance_metrics: PerformanceMetrics,
    pub created_at: DateTime<Utc>,
    pub op_id: Uuid,
    pub version: i32,
    pub metadata_version: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ValidateOptionsDto {
    pub expected_hash: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateRequest {
    pub content: String,
    #[serde(default)]
    pub options: ValidateOptionsDto,
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationDetail {
    pub stamp_type: StampTypeDto,
    pub stamp_hash: Option<String>,
    pub is_valid: bool,
    pub current_hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateResponse {
    pub success: bool,
    pub is_valid: bool,
    pub stamps_found: usize,
    pub current_hash: String,
    pub validation_details: Vec<ValidationDetail>,
    pub performance_metrics: PerformanceMetrics,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HashResponse {
    pub file_hash: String,
    pub execution_time_ms: f64,
    pub file_size_bytes: u64,
    pub performance_grade: &'static str,
}

/// A stored stamp row.
#[derive(Debug, Serialize, ToSchema)]
pub struct StampRecordDto {
    pub id: Uuid,
    pub namespace: String,
    pub file_hash: String,
    pub file_path: Option<String>,
    pub file_size: i64,
    pub content_type: Option<String>,
    #[schema(value_type = Object)]
    pub stamp_data: Value,
    pub protocol_version: String,
    #[schema(value_type = Option<Object>)]
    pub intelligence_data: Option<Value>,
    pub version: i32,
    pub op_id: Uuid,
    pub metadata_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StampRecord> for StampRecordDto {
    fn from(r: StampRecord) -> Self {
        StampRecordDto {
            id: r.id,
            namespace: r.namespace,
            file_hash: r.file_hash,
            file_path: r.file_path,
            file_size: r.file_size,
            content_type: r.content_type,
            stamp_data: r.stamp_data,
            protocol_version: r.protocol_version,
            intelligence_data: r.intelligence_data,
            version: r.version,
            op_id: r.op_id,
            metadata_version: r.metadata_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchItemRequest {
    pub id: Option<String>,
    pub content: String,
    pub file_path: Option<String>,
    pub namespace: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<FreeObject>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    pub items: Vec<BatchItemRequest>,
    #[serde(default)]
    pub options: StampOptionsDto,
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemResult {
    pub id: String,
    pub success: bool,
    pub stamp_id: Option<Uuid>,
    pub file_hash: Option<String>,
    pub namespace: Option<String>,
    pub stamp: Option<String>,
    pub stamped_content: Option<String>,
    pub created: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub error: Option<super::envelope::ErrorDetail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub total_items: usize,
    pub successful_items: usize,
    pub failed_items: usize,
    pub results: Vec<BatchItemResult>,
    pub execution_time_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub limit: i64,
    pub offset: i64,
    pub total: i64,
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceListing {
    pub namespace: String,
    pub total_stamps: i64,
    pub stamps: Vec<StampRecordDto>,
    pub pagination: Pagination,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProtocolRequest {
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComplianceIssueDto {
    pub stamp_index: Option<usize>,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProtocolResponse {
    pub protocol: &'static str,
    pub compliance_level: &'static str,
    pub is_compliant: bool,
    pub stamps_found: usize,
    pub compliant_stamps: usize,
    pub current_hash: String,
    pub issues: Vec<ComplianceIssueDto>,
    pub recommendations: Vec<String>,
}
