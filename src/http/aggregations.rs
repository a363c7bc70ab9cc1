//! Handlers of the reducer's aggregates: `/api/v1/aggregations[/{namespace}]` and the original's
//! `POST /aggregation/query` and `GET /state/snapshot?namespace=`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{ok, Envelope};
use super::error::{ApiError, ErrorCode};
use super::extract::ValidJson;
use crate::stamping::namespace::Namespace;
use crate::store::reducer::{self as store, BridgeStateRow};
use crate::web::error::namespace_invalid;
use crate::web::params::Query;
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowDto {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub stamps: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AggregateDto {
    pub namespace: String,
    pub total_stamps: i64,
    pub total_bytes: i64,
    pub distinct_file_types: i64,
    /// The distinct file types (only on the single-namespace endpoints).
    pub file_types: Option<Vec<String>>,
    pub distinct_workflows: i64,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub throughput_per_second: f64,
    pub window: WindowDto,
    pub fsm_state: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl AggregateDto {
    fn from_row(r: &BridgeStateRow, file_types: Option<Vec<String>>) -> Self {
        let agg = r.to_aggregate();
        AggregateDto {
            namespace: r.namespace.clone(),
            total_stamps: r.total_stamps,
            total_bytes: r.total_bytes,
            distinct_file_types: r.distinct_file_types,
            file_types,
            distinct_workflows: r.distinct_workflows,
            first_seen: r.first_seen.map(|t| t.0),
            last_seen: r.last_seen.map(|t| t.0),
            throughput_per_second: agg.throughput_per_second(),
            window: WindowDto {
                start: r.window_start.map(|t| t.0),
                end: r.window_end.map(|t| t.0),
                stamps: r.window_stamps,
            },
            fsm_state: r.fsm_state.clone(),
            version: r.version,
            updated_at: r.updated_at.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AggregateList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub aggregations: Vec<AggregateDto>,
}

fn parse_namespace(raw: &str, field: &str) -> Result<Namespace, ApiError> {
    Namespace::parse(raw).map_err(|e| namespace_invalid(field, e))
}

async fn one(state: &AppState, namespace: &Namespace) -> Result<HttpResponse, ApiError> {
    match store::get(&state.db, namespace.as_str()).await? {
        Some((row, types)) => Ok(ok(AggregateDto::from_row(&row, Some(types)))),
        None => Err(ApiError::new(
            ErrorCode::AggregationNotFound,
            Some("namespace"),
            format!("no aggregate for namespace {namespace} (no stamp events seen yet)"),
        )),
    }
}

async fn many(
    state: &AppState,
    namespaces: Option<Vec<String>>,
    limit: i64,
    offset: i64,
) -> Result<HttpResponse, ApiError> {
    let (rows, total) = store::list(&state.db, namespaces.as_deref(), limit, offset).await?;
    Ok(ok(AggregateList {
        total,
        limit,
        offset,
        aggregations: rows
            .iter()
            .map(|r| AggregateDto::from_row(r, None))
            .collect(),
    }))
}

/// Every namespace's aggregate, by namespace name.
#[utoipa::path(get, path = "/api/v1/aggregations", tag = "aggregations",
    params(("limit" = Option<i64>, Query, description = "1..=1000, default 100"), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "Aggregates", body = Envelope<AggregateList>)))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req)?;
    let limit = q.int("limit", 100, 1, 1000)?;
    let offset = q.int("offset", 0, 0, i64::MAX / 2)?;
    many(&state, None, limit, offset).await
}

/// One namespace's aggregate.
#[utoipa::path(get, path = "/api/v1/aggregations/{namespace}", tag = "aggregations",
    params(("namespace" = String, Path)),
    responses((status = 200, description = "Aggregate", body = Envelope<AggregateDto>),
        (status = 400, description = "NAMESPACE_INVALID"), (status = 404, description = "AGGREGATION_NOT_FOUND")))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ns = parse_namespace(&path.into_inner(), "namespace")?;
    one(&state, &ns).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregationQuery {
    pub namespace: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Most namespaces one query may name.
pub const MAX_QUERY_NAMESPACES: usize = 1000;

/// Original route: query aggregates by namespace(s).
#[utoipa::path(post, path = "/aggregation/query", tag = "aggregations", request_body = AggregationQuery,
    responses((status = 200, description = "Aggregates", body = Envelope<AggregateList>)))]
pub async fn query(
    state: web::Data<AppState>,
    body: ValidJson<AggregationQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = body.0;
    let mut names = Vec::new();
    if let Some(ns) = &q.namespace {
        names.push(parse_namespace(ns, "namespace")?.to_string());
    }
    if q.namespaces
        .as_ref()
        .is_some_and(|n| n.len() > MAX_QUERY_NAMESPACES)
    {
        return Err(ApiError::validation(
            "namespaces",
            format!("at most {MAX_QUERY_NAMESPACES} namespaces per query"),
        ));
    }
    for (i, ns) in q.namespaces.iter().flatten().enumerate() {
        names.push(parse_namespace(ns, &format!("namespaces[{i}]"))?.to_string());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation("offset", "offset must be >= 0"));
    }
    let filter = (q.namespace.is_some() || q.namespaces.is_some()).then_some(names);
    many(&state, filter, limit, offset).await
}

/// Original route: the state snapshot of one namespace (or of all).
#[utoipa::path(get, path = "/state/snapshot", tag = "aggregations",
    params(("namespace" = Option<String>, Query)),
    responses((status = 200, description = "Snapshot"), (status = 404, description = "AGGREGATION_NOT_FOUND")))]
pub async fn snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req)?;
    match q.raw("namespace") {
        Some(ns) => one(&state, &parse_namespace(ns, "namespace")?).await,
        None => many(&state, None, 1000, 0).await,
    }
}
