//! Handlers of `/api/v1/metadata-stamping`: parse the wire request, call the stamping service, shape
//! the wire response. No business logic here.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt};

use super::dto::*;
use super::envelope::{ok, respond, Envelope, EnvelopeStatus};
use super::error::{ApiError, ErrorCode};
use super::extract::{declared_length, ValidJson};
use crate::json::FreeObject;
use crate::multipart::{boundary_of, MultipartReader};
use crate::stamping::core::is_hash_format;
use crate::stamping::protocol::{check_compliance, PROTOCOL};
use crate::stamping::{check_length, BatchItem, StampCommand, StampOutcome, MAX_ID_BYTES};
use crate::web::context::RequestCtx;
use crate::web::params::Query;
use crate::web::AppState;

fn stamp_response(outcome: StampOutcome, namespace: String) -> StampResponse {
    let hash_ms = outcome.hash_time.as_secs_f64() * 1000.0;
    StampResponse {
        success: true,
        stamp_id: outcome.record.id,
        file_hash: outcome.rendered.hash.clone(),
        stamped_content: outcome.rendered.stamped_content,
        stamp: outcome.rendered.stamp,
        stamp_type: match outcome.rendered.stamp_type {
            crate::stamping::core::StampType::Lightweight => StampTypeDto::Lightweight,
            crate::stamping::core::StampType::Rich => StampTypeDto::Rich,
        },
        namespace,
        created: outcome.created,
        performance_metrics: PerformanceMetrics {
            execution_time_ms: outcome.total_time.as_secs_f64() * 1000.0,
            hash_generation_time_ms: hash_ms,
            file_size_bytes: outcome.record.file_size.max(0) as u64,
            performance_grade: grade(hash_ms),
        },
        created_at: outcome.record.created_at,
        op_id: outcome.record.op_id,
        version: outcome.record.version,
        metadata_version: outcome.record.metadata_version,
    }
}

/// Stamp content and store the stamp (idempotent per namespace + content hash).
#[utoipa::path(
    post, path = "/api/v1/metadata-stamping/stamp", tag = "stamping",
    request_body = StampRequest,
    responses(
        (status = 200, description = "Stamp created or replayed", body = Envelope<StampResponse>),
        (status = 400, description = "NAMESPACE_INVALID"),
        (status = 413, description = "PAYLOAD_TOO_LARGE"),
        (status = 422, description = "VALIDATION_ERROR"),
        (status = 503, description = "DATABASE_UNAVAILABLE"),
    )
)]
pub async fn stamp(
    state: web::Data<AppState>,
    body: ValidJson<StampRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let svc = &state.stamping;
    let namespace = svc.namespace(req.namespace.as_deref(), "namespace")?;
    let cmd = StampCommand {
        content: req.content,
        file_path: req.file_path,
        namespace: namespace.clone(),
        stamp_type: req.options.stamp_type.into(),
        metadata: req.metadata.map(FreeObject::into_inner).unwrap_or_default(),
        protocol_version: req.protocol_version,
    };
    let outcome = svc.stamp(cmd, &RequestCtx::trace()).await?;
    Ok(ok(stamp_response(outcome, namespace.to_string())))
}

/// Validate the stamps embedded in content.
#[utoipa::path(
    post, path = "/api/v1/metadata-stamping/validate", tag = "stamping",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "Validation report (is_valid false when no stamp)", body = Envelope<ValidateResponse>),
        (status = 400, description = "NAMESPACE_INVALID / INVALID_HASH_FORMAT"),
        (status = 422, description = "VALIDATION_ERROR"),
    )
)]
pub async fn validate(
    state: web::Data<AppState>,
    body: ValidJson<ValidateRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let svc = &state.stamping;
    let namespace = svc.namespace(req.namespace.as_deref(), "namespace")?;
    if let Some(h) = req.options.expected_hash.as_deref() {
        if !is_hash_format(h) {
            return Err(ApiError::new(
                ErrorCode::InvalidHashFormat,
                Some("options.expected_hash"),
                "expected_hash must be 64 lowercase hex characters",
            ));
        }
    }
    let outcome = svc
        .validate(
            &req.content,
            req.options.expected_hash.as_deref(),
            &namespace,
            &RequestCtx::trace(),
        )
        .await?;
    let v = outcome.validation;
    let ms = outcome.elapsed.as_secs_f64() * 1000.0;
    Ok(ok(ValidateResponse {
        success: true,
        is_valid: v.is_valid,
        stamps_found: v.stamps.len(),
        validation_details: v
            .stamps
            .iter()
            .map(|s| ValidationDetail {
                stamp_type: match s.stamp_type {
                    crate::stamping::core::StampType::Lightweight => StampTypeDto::Lightweight,
                    crate::stamping::core::StampType::Rich => StampTypeDto::Rich,
                },
                stamp_hash: s.stamp_hash.clone(),
                is_valid: s.is_valid,
                current_hash: v.current_hash.clone(),
            })
            .collect(),
        current_hash: v.current_hash,
        performance_metrics: PerformanceMetrics {
            execution_time_ms: ms,
            hash_generation_time_ms: ms,
            file_size_bytes: req.content.len() as u64,
            performance_grade: grade(ms),
        },
    }))
}

async fn hash_stream<S, E>(mut stream: S, limit: u64) -> Result<(blake3::Hash, u64, f64), ApiError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut hasher = blake3::Hasher::new();
    let mut size: u64 = 0;
    let mut hashing = std::time::Duration::ZERO;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::validation("file", format!("could not read upload: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::too_large(
                Some("file"),
                format!("upload is larger than the limit of {limit} bytes"),
            ));
        }
        let t = Instant::now();
        hasher.update(&chunk);
        hashing += t.elapsed();
    }
    let t = Instant::now();
    let hash = hasher.finalize();
    hashing += t.elapsed();
    Ok((hash, size, hashing.as_secs_f64() * 1000.0))
}

/// BLAKE3 of the multipart part named `file`, read as it streams in. Every byte of the body counts
/// (other parts, headers and boundaries too): past `limit` plus 64 KiB of framing, or a file over
/// `limit`, the answer is 413 at once, whatever the parts look like.
async fn hash_multipart<S, E>(
    content_type: &str,
    mut stream: S,
    limit: u64,
) -> Result<(blake3::Hash, u64, f64), ApiError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let framing_limit = limit.saturating_add(MULTIPART_FRAMING);
    let mut reader = MultipartReader::new(&boundary_of(content_type)?);
    let mut hasher = blake3::Hasher::new();
    let mut size: u64 = 0;
    let mut total: u64 = 0;
    let mut hashing = std::time::Duration::ZERO;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::validation("file", format!("could not read upload: {e}")))?;
        total += chunk.len() as u64;
        if total > framing_limit {
            return Err(ApiError::too_large(
                Some("file"),
                format!("multipart body is larger than the limit of {framing_limit} bytes"),
            ));
        }
        let t = Instant::now();
        reader.feed(&chunk, &mut |data: &[u8]| {
            size += data.len() as u64;
            if size <= limit {
                hasher.update(data);
            }
        })?;
        hashing += t.elapsed();
        if size > limit {
            return Err(ApiError::too_large(
                Some("file"),
                format!("upload is larger than the limit of {limit} bytes"),
            ));
        }
    }
    reader.finish()?;
    if !reader.file_seen() {
        return Err(ApiError::new(
            ErrorCode::MissingFile,
            Some("file"),
            "multipart body has no field named `file`",
        ));
    }
    let t = Instant::now();
    let hash = hasher.finalize();
    hashing += t.elapsed();
    Ok((hash, size, hashing.as_secs_f64() * 1000.0))
}

/// Multipart framing (boundaries, part headers, other small parts) allowed on top of the file.
const MULTIPART_FRAMING: u64 = 64 * 1024;

/// BLAKE3 of raw bytes: multipart field `file`, or the raw body (streamed, never held whole).
#[utoipa::path(
    post, path = "/api/v1/metadata-stamping/hash", tag = "stamping",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Hash of the bytes", body = Envelope<HashResponse>),
        (status = 400, description = "MISSING_FILE"),
        (status = 413, description = "PAYLOAD_TOO_LARGE"),
    )
)]
pub async fn hash(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.settings.stamping.max_hash_bytes;
    if declared_length(&req).is_some_and(|n| n > limit.saturating_add(MULTIPART_FRAMING)) {
        return Err(ApiError::too_large(
            Some("file"),
            format!("upload is larger than the limit of {limit} bytes"),
        ));
    }
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (hash, size, ms) = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        hash_multipart(content_type, payload, limit).await?
    } else {
        hash_stream(payload, limit).await?
    };
    state
        .stamping
        .stats()
        .hash_latency
        .record(std::time::Duration::from_secs_f64(ms / 1000.0));
    state
        .stamping
        .stats()
        .hashes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("hashes_total").increment(1);
    Ok(ok(HashResponse {
        file_hash: hash.to_hex().to_string(),
        execution_time_ms: ms,
        file_size_bytes: size,
        performance_grade: grade(ms),
    }))
}

/// Look up a stored stamp by content hash (optionally within one namespace).
#[utoipa::path(
    get, path = "/api/v1/metadata-stamping/stamp/{file_hash}", tag = "stamping",
    params(
        ("file_hash" = String, Path, description = "64 lowercase hex characters"),
        ("namespace" = Option<String>, Query, description = "Restrict to one namespace"),
    ),
    responses(
        (status = 200, description = "The stored stamp", body = Envelope<StampRecordDto>),
        (status = 400, description = "INVALID_HASH_FORMAT / NAMESPACE_INVALID"),
        (status = 404, description = "STAMP_NOT_FOUND / STAMP_NOT_FOUND_IN_NAMESPACE"),
    )
)]
pub async fn get_stamp(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let file_hash = path.into_inner();
    if !is_hash_format(&file_hash) {
        return Err(ApiError::new(
            ErrorCode::InvalidHashFormat,
            Some("file_hash"),
            "file_hash must be 64 lowercase hex characters",
        ));
    }
    let query = Query::parse(&req)?;
    let namespace = match query.raw("namespace") {
        Some(ns) => Some(state.stamping.namespace(Some(ns), "namespace")?),
        None => None,
    };
    match state.stamping.find(&file_hash, namespace.as_ref()).await? {
        Some(record) => Ok(ok(StampRecordDto::from(record))),
        None => Err(match namespace {
            Some(ns) => ApiError::new(
                ErrorCode::StampNotFoundInNamespace,
                Some("file_hash"),
                format!("no stamp with hash {file_hash} in namespace {ns}"),
            ),
            None => ApiError::new(
                ErrorCode::StampNotFound,
                Some("file_hash"),
                format!("no stamp with hash {file_hash}"),
            ),
        }),
    }
}

/// A namespace's stamps, newest first.
#[utoipa::path(
    get, path = "/api/v1/metadata-stamping/namespace/{namespace}", tag = "stamping",
    params(
        ("namespace" = String, Path),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 50"),
        ("offset" = Option<i64>, Query, description = ">= 0, default 0"),
    ),
    responses(
        (status = 200, description = "Stamps of the namespace", body = Envelope<NamespaceListing>),
        (status = 400, description = "NAMESPACE_INVALID"),
        (status = 422, description = "VALIDATION_ERROR (limit/offset)"),
    )
)]
pub async fn list_namespace(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let namespace = state
        .stamping
        .namespace(Some(&path.into_inner()), "namespace")?;
    let query = Query::parse(&req)?;
    let limit = query.int("limit", 50, 1, 1000)?;
    let offset = query.int("offset", 0, 0, i64::MAX / 2)?;
    let (records, total) = state.stamping.list(&namespace, limit, offset).await?;
    let returned = records.len() as i64;
    Ok(ok(NamespaceListing {
        namespace: namespace.to_string(),
        total_stamps: total,
        stamps: records.into_iter().map(StampRecordDto::from).collect(),
        pagination: Pagination {
            limit,
            offset,
            total,
            has_more: offset + returned < total,
        },
    }))
}

/// Stamp many items in one request (written in batches; idempotent per item).
#[utoipa::path(
    post, path = "/api/v1/metadata-stamping/batch", tag = "stamping",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "All or some items stamped (status success/partial)", body = Envelope<BatchResponse>),
        (status = 400, description = "EMPTY_BATCH_REQUEST / NAMESPACE_INVALID"),
        (status = 413, description = "BATCH_TOO_LARGE"),
        (status = 422, description = "Every item failed, or VALIDATION_ERROR"),
    )
)]
pub async fn batch(
    state: web::Data<AppState>,
    body: ValidJson<BatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let svc = &state.stamping;
    let default_ns = svc.namespace(req.namespace.as_deref(), "namespace")?;
    if req.items.is_empty() {
        return Err(crate::stamping::StampingError::EmptyBatch.into());
    }
    if req.items.len() > svc.settings().max_batch_items {
        return Err(crate::stamping::StampingError::BatchTooLarge {
            count: req.items.len(),
            limit: svc.settings().max_batch_items,
        }
        .into());
    }
    for (i, item) in req.items.iter().enumerate() {
        if let Some(id) = item.id.as_deref() {
            check_length(&format!("items[{i}].id"), id, MAX_ID_BYTES)?;
        }
    }
    let stamp_type = req.options.stamp_type.into();
    let mut items = Vec::with_capacity(req.items.len());
    let mut early_errors: Vec<(usize, String, ApiError)> = Vec::new();
    for (i, item) in req.items.into_iter().enumerate() {
        let id = item.id.unwrap_or_else(|| format!("item_{i}"));
        let namespace = match item.namespace.as_deref() {
            None => default_ns.clone(),
            Some(ns) => match svc.namespace(Some(ns), &format!("items[{i}].namespace")) {
                Ok(ns) => ns,
                Err(e) => {
                    early_errors.push((i, id, e.into()));
                    continue;
                }
            },
        };
        items.push((
            i,
            BatchItem {
                id,
                index: i,
                command: StampCommand {
                    content: item.content,
                    file_path: item.file_path,
                    namespace,
                    stamp_type,
                    metadata: item
                        .metadata
                        .map(FreeObject::into_inner)
                        .unwrap_or_default(),
                    protocol_version: None,
                },
            },
        ));
    }
    let total = items.len() + early_errors.len();
    let mut results: Vec<Option<BatchItemResult>> = (0..total).map(|_| None).collect();
    for (i, id, err) in early_errors {
        results[i] = Some(failed_item(id, err));
    }
    let positions: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
    let rejected = total - items.len();
    // Always through the service, so the batch event counts every item, refused ones included.
    let outcome = svc
        .batch(
            items.into_iter().map(|(_, b)| b).collect(),
            rejected,
            &RequestCtx::trace(),
        )
        .await?;
    let elapsed_ms = outcome.elapsed.as_secs_f64() * 1000.0;
    for (pos, (id, result)) in positions.into_iter().zip(outcome.results) {
        results[pos] = Some(match result {
            Ok(o) => BatchItemResult {
                id,
                success: true,
                stamp_id: Some(o.record.id),
                file_hash: Some(o.record.file_hash.clone()),
                namespace: Some(o.record.namespace.clone()),
                stamp: Some(o.rendered.stamp),
                stamped_content: Some(o.rendered.stamped_content),
                created: Some(o.created),
                created_at: Some(o.record.created_at),
                error: None,
            },
            Err(e) => failed_item(id, e.into()),
        });
    }
    let results: Vec<BatchItemResult> = results.into_iter().flatten().collect();
    let successful = results.iter().filter(|r| r.success).count();
    let failed = results.len() - successful;
    let errors: Vec<_> = results
        .iter()
        .filter_map(|r| r.error.as_ref())
        .map(|e| super::envelope::ErrorDetail {
            code: e.code,
            field: e.field.clone(),
            message: e.message.clone(),
        })
        .collect();
    let (status, kind, message) = if failed == 0 {
        (StatusCode::OK, EnvelopeStatus::Success, None)
    } else if successful > 0 {
        (
            StatusCode::OK,
            EnvelopeStatus::Partial,
            Some(format!("{failed} of {} items failed", results.len())),
        )
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            EnvelopeStatus::Error,
            Some("every item failed".to_owned()),
        )
    };
    Ok(respond(
        status,
        kind,
        Some(BatchResponse {
            total_items: results.len(),
            successful_items: successful,
            failed_items: failed,
            results,
            execution_time_ms: elapsed_ms,
        }),
        (!errors.is_empty()).then_some(errors),
        message,
    ))
}

fn failed_item(id: String, err: ApiError) -> BatchItemResult {
    BatchItemResult {
        id,
        success: false,
        stamp_id: None,
        file_hash: None,
        namespace: None,
        stamp: None,
        stamped_content: None,
        created: None,
        created_at: None,
        error: Some(super::error::detail(&err)),
    }
}

/// O.N.E. v0.1 compliance report of the stamps in content.
#[utoipa::path(
    post, path = "/api/v1/metadata-stamping/validate-protocol", tag = "stamping",
    request_body = ProtocolRequest,
    responses((status = 200, description = "Compliance report", body = Envelope<ProtocolResponse>))
)]
pub async fn validate_protocol(
    state: web::Data<AppState>,
    body: ValidJson<ProtocolRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .stamping
        .check_content_size("content", &body.0.content)?;
    let report = check_compliance(&body.0.content);
    Ok(ok(ProtocolResponse {
        protocol: PROTOCOL,
        compliance_level: report.level.as_str(),
        is_compliant: report.level == crate::stamping::protocol::ComplianceLevel::Full,
        stamps_found: report.stamps_found,
        compliant_stamps: report.compliant_stamps,
        current_hash: report.current_hash,
        issues: report
            .issues
            .into_iter()
            .map(|i| ComplianceIssueDto {
                stamp_index: i.stamp_index,
                code: i.code.to_owned(),
                message: i.message,
            })
            .collect(),
        recommendations: report.recommendations,
    }))
}
