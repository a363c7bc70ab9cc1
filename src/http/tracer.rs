//! Handlers of the event tracer: `GET /api/v1/events` (filters, cursor pagination),
//! `/api/v1/events/{id}`, `/api/v1/events/stream` (SSE), `/api/v1/traces/sessions/{id}[/metrics]`,
//! `/api/v1/traces/correlation/{id}`, `/api/v1/search?q=`. Unknown ids give empty results, not errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_lab::sse;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{ok, Envelope};
use super::error::ApiError;
use super::stamping::{int_param, parse_query};
use super::AppState;
use crate::store::event_logs::{self, EventCursor, EventFilter, EventLogRow, TraceKey};
use crate::tracer::query::{self, Breakdown, TraceMetrics};
use crate::tracer::search::{self, Hit};

/// Most events one trace request returns (and computes metrics over).
pub const TRACE_LIMIT: i64 = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub event_id: Uuid,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    /// request | response | status | error | event
    pub event_type: String,
    pub topic: String,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub timestamp: DateTime<Utc>,
    pub status: String,
    pub processing_time_ms: Option<f64>,
    pub namespace: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl From<&EventLogRow> for EventDto {
    fn from(r: &EventLogRow) -> Self {
        EventDto {
            event_id: r.event_id.0,
            session_id: r.session_id.clone(),
            correlation_id: r.correlation_id.clone(),
            event_type: r.event_type.clone(),
            topic: r.topic.clone(),
            partition: r.kafka_partition,
            offset: r.kafka_offset,
            timestamp: r.event_timestamp.0,
            status: r.status.clone(),
            processing_time_ms: r.processing_time_ms,
            namespace: r.namespace.clone(),
            payload: r.payload.0.clone(),
            metadata: r.metadata.0.clone(),
            recorded_at: r.recorded_at.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventDto>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub limit: i64,
}

pub fn encode_cursor(c: EventCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}_{}",
        c.timestamp.timestamp_micros(),
        c.event_id
    ))
}

pub fn decode_cursor(raw: &str) -> Result<EventCursor, ApiError> {
    let bad = || ApiError::validation("cursor", "cursor is not one this API returned");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let timestamp = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    // Years both backends store and order correctly (PostgreSQL rejects others; SQLite's text order
    // breaks past 9999).
    if !(1..=9999).contains(&chrono::Datelike::year(&timestamp)) {
        return Err(bad());
    }
    Ok(EventCursor {
        timestamp,
        event_id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

/// An id or filter value from the caller: PostgreSQL text cannot hold NUL, and nothing we record is
/// longer than this.
pub fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::validation(
            field,
            format!("{field} must not contain NUL"),
        ));
    }
    if value.chars().count() > 512 {
        return Err(ApiError::validation(
            field,
            format!("{field} must be at most 512 characters"),
        ));
    }
    Ok(())
}

fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => {
            let bad = || {
                ApiError::validation(
                    name,
                    format!("{name} must be an RFC 3339 timestamp between years 1 and 9999, got {raw:?}"),
                )
            };
            let t = DateTime::parse_from_rfc3339(raw)
                .map_err(|_| bad())?
                .with_timezone(&Utc);
            if !(1..=9999).contains(&chrono::Datelike::year(&t)) {
                return Err(bad());
            }
            Ok(Some(t))
        }
    }
}

fn text_param(q: &HashMap<String, String>, name: &str) -> Result<Option<String>, ApiError> {
    match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => {
            check_text(name, v)?;
            Ok(Some(v.to_owned()))
        }
    }
}

/// Filters shared by the listing, the SSE stream and the dashboard.
pub fn event_filter(q: &HashMap<String, String>) -> Result<EventFilter, ApiError> {
    let filter = EventFilter {
        topic: text_param(q, "topic")?,
        event_type: text_param(q, "event_type")?,
        status: text_param(q, "status")?,
        namespace: text_param(q, "namespace")?,
        session_id: text_param(q, "session_id")?,
        correlation_id: text_param(q, "correlation_id")?,
        since: time_param(q, "since")?,
        until: time_param(q, "until")?,
    };
    if let (Some(a), Some(b)) = (filter.since, filter.until) {
        if a > b {
            return Err(ApiError::validation(
                "since",
                "since must not be after until",
            ));
        }
    }
    Ok(filter)
}

/// One page of events, newest first, and the cursor of the next.
pub async fn page(
    state: &AppState,
    filter: &EventFilter,
    cursor: Option<EventCursor>,
    limit: i64,
) -> Result<(Vec<EventLogRow>, Option<String>), ApiError> {
    // One extra row tells whether another page exists.
    let mut rows = event_logs::list(&state.db, filter, cursor, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            encode_cursor(EventCursor {
                timestamp: r.event_timestamp.0,
                event_id: r.event_id.0,
            })
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// Recorded events, newest first, filtered (`topic, event_type, status, namespace, session_id,
/// correlation_id, since, until`) and paginated by `cursor`.
#[utoipa::path(get, path = "/api/v1/events", tag = "tracer",
    params(("topic" = Option<String>, Query), ("event_type" = Option<String>, Query),
        ("status" = Option<String>, Query), ("namespace" = Option<String>, Query),
        ("session_id" = Option<String>, Query), ("correlation_id" = Option<String>, Query),
        ("since" = Option<String>, Query, description = "RFC 3339"), ("until" = Option<String>, Query, description = "RFC 3339"),
        ("limit" = Option<i64>, Query, description = "1..=500, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "A page of events", body = Envelope<EventPage>),
        (status = 422, description = "VALIDATION_ERROR naming the parameter")))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = parse_query(&req)?;
    let limit = int_param(&q, "limit", 50, 1, 500)?;
    let filter = event_filter(&q)?;
    let cursor = text_param(&q, "cursor")?
        .map(|c| decode_cursor(&c))
        .transpose()?;
    let (rows, next_cursor) = page(&state, &filter, cursor, limit).await?;
    Ok(ok(EventPage {
        events: rows.iter().map(EventDto::from).collect(),
        next_cursor,
        limit,
    }))
}

pub fn parse_event_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_EVENT_ID",
            Some("event_id"),
            "event_id must be a UUID",
        )
    })
}

/// One recorded event.
#[utoipa::path(get, path = "/api/v1/events/{event_id}", tag = "tracer",
    params(("event_id" = String, Path)),
    responses((status = 200, description = "The event", body = Envelope<EventDto>),
        (status = 400, description = "INVALID_EVENT_ID"), (status = 404, description = "EVENT_NOT_FOUND")))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_event_id(&path.into_inner())?;
    match event_logs::get(&state.db, id).await? {
        Some(row) => Ok(ok(EventDto::from(&row))),
        None => Err(event_not_found(id)),
    }
}

pub fn event_not_found(id: Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "EVENT_NOT_FOUND",
        Some("event_id"),
        format!("no event {id} has been recorded"),
    )
}

/// The time range of a trace: `since`/`until`, or the last `hours` (default 24). Without `until` the
/// range is open at the top, so events stamped slightly in the future (producer clock skew) still
/// show, and the latest status is really the latest.
pub fn trace_range(
    q: &HashMap<String, String>,
) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), ApiError> {
    let until = time_param(q, "until")?;
    let since = match time_param(q, "since")? {
        Some(t) => t,
        None => {
            until.unwrap_or_else(Utc::now)
                - chrono::Duration::hours(int_param(q, "hours", 24, 1, 24 * 90)?)
        }
    };
    if until.is_some_and(|u| since > u) {
        return Err(ApiError::validation(
            "since",
            "since must not be after until",
        ));
    }
    Ok((since, until))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TraceDto {
    /// session | correlation
    pub kind: &'static str,
    pub id: String,
    pub since: DateTime<Utc>,
    /// Absent: open-ended.
    pub until: Option<DateTime<Utc>>,
    pub event_count: usize,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: f64,
    /// The status of the latest event (also when the trace is truncated).
    pub status: Option<String>,
    pub sessions: Vec<String>,
    /// More than the returned events matched: the oldest `TRACE_LIMIT` are returned (metrics cover
    /// those); `ended_at`, `duration_ms` and `status` still come from the latest event.
    pub truncated: bool,
    pub events: Vec<EventDto>,
}

/// A loaded trace: its rows (oldest first), range and whether it was cut at `TRACE_LIMIT`.
pub struct Trace {
    pub key: TraceKey,
    pub id: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub rows: Vec<EventLogRow>,
    pub truncated: bool,
    /// The newest matching event, when `truncated` (the rows stop before it).
    pub latest: Option<EventLogRow>,
}

impl Trace {
    /// Summary of the trace; for a truncated trace, end, duration and status come from the latest event.
    pub fn summary(&self) -> query::TraceSummary {
        let mut s = query::summarize(&self.rows);
        if let Some(last) = &self.latest {
            s.ended_at = Some(last.event_timestamp.0);
            s.status = Some(last.status.clone());
            if let Some(start) = s.started_at {
                s.duration_ms = (last.event_timestamp.0 - start)
                    .num_microseconds()
                    .unwrap_or(i64::MAX) as f64
                    / 1000.0;
            }
        }
        s
    }
}

pub async fn load_trace(
    state: &AppState,
    key: TraceKey,
    id: String,
    q: &HashMap<String, String>,
) -> Result<Trace, ApiError> {
    check_text(
        match key {
            TraceKey::Session => "session_id",
            TraceKey::Correlation => "correlation_id",
        },
        &id,
    )?;
    let (since, until) = trace_range(q)?;
    let mut rows = event_logs::trace(&state.db, key, &id, since, until, TRACE_LIMIT + 1).await?;
    let truncated = rows.len() as i64 > TRACE_LIMIT;
    rows.truncate(TRACE_LIMIT as usize);
    let latest = if truncated {
        event_logs::trace_latest(&state.db, key, &id, since, until).await?
    } else {
        None
    };
    Ok(Trace {
        key,
        id,
        since,
        until,
        rows,
        truncated,
        latest,
    })
}

impl From<&Trace> for TraceDto {
    fn from(t: &Trace) -> Self {
        let s = t.summary();
        TraceDto {
            kind: match t.key {
                TraceKey::Session => "session",
                TraceKey::Correlation => "correlation",
            },
            id: t.id.clone(),
            since: t.since,
            until: t.until,
            event_count: s.event_count,
            started_at: s.started_at,
            ended_at: s.ended_at,
            duration_ms: s.duration_ms,
            status: s.status,
            sessions: s.sessions,
            truncated: t.truncated,
            events: t.rows.iter().map(EventDto::from).collect(),
        }
    }
}

/// A session's events in order (`?hours=24` or `since`/`until`), its duration and latest status.
#[utoipa::path(get, path = "/api/v1/traces/sessions/{session_id}", tag = "tracer",
    params(("session_id" = String, Path), ("hours" = Option<i64>, Query), ("since" = Option<String>, Query), ("until" = Option<String>, Query)),
    responses((status = 200, description = "The trace (empty for an unknown id)", body = Envelope<TraceDto>)))]
pub async fn session(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    trace_response(&state, TraceKey::Session, path.into_inner(), &req).await
}

async fn trace_response(
    state: &AppState,
    key: TraceKey,
    id: String,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let t = load_trace(state, key, id, &parse_query(req)?).await?;
    Ok(ok(TraceDto::from(&t)))
}

/// Every event carrying this correlation id, across sessions, in order.
#[utoipa::path(get, path = "/api/v1/traces/correlation/{correlation_id}", tag = "tracer",
    params(("correlation_id" = String, Path), ("hours" = Option<i64>, Query), ("since" = Option<String>, Query), ("until" = Option<String>, Query)),
    responses((status = 200, description = "The trace (empty for an unknown id)", body = Envelope<TraceDto>)))]
pub async fn correlation(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    trace_response(&state, TraceKey::Correlation, path.into_inner(), &req).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownDto {
    pub key: String,
    pub count: usize,
    pub successful: usize,
    pub failed: usize,
    pub avg_processing_ms: Option<f64>,
}

impl From<&Breakdown> for BreakdownDto {
    fn from(b: &Breakdown) -> Self {
        BreakdownDto {
            key: b.key.clone(),
            count: b.count,
            successful: b.successful,
            failed: b.failed,
            avg_processing_ms: b.avg_processing_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessingDto {
    pub count: usize,
    pub avg_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BottleneckDto {
    pub topic: String,
    pub avg_processing_ms: f64,
    pub count: usize,
    /// high (avg > 5 s) | medium (> 2 s) | low (> 1 s)
    pub severity: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsDto {
    pub session_id: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub total_events: usize,
    pub successful: usize,
    pub failed: usize,
    pub in_progress: usize,
    pub success_rate: f64,
    /// Nearest-rank percentiles of `processing_time_ms` over the events that report it.
    pub processing_time: ProcessingDto,
    pub by_event_type: Vec<BreakdownDto>,
    pub by_topic: Vec<BreakdownDto>,
    pub bottlenecks: Vec<BottleneckDto>,
    pub truncated: bool,
}

pub fn metrics_dto(t: &Trace, m: &TraceMetrics) -> MetricsDto {
    let p = &m.processing;
    MetricsDto {
        session_id: t.id.clone(),
        since: t.since,
        until: t.until,
        total_events: m.total_events,
        successful: m.successful,
        failed: m.failed,
        in_progress: m.in_progress,
        success_rate: m.success_rate,
        processing_time: ProcessingDto {
            count: p.count,
            avg_ms: p.avg_ms,
            min_ms: p.min_ms,
            max_ms: p.max_ms,
            p50_ms: p.p50_ms,
            p95_ms: p.p95_ms,
            p99_ms: p.p99_ms,
        },
        by_event_type: m.by_event_type.iter().map(BreakdownDto::from).collect(),
        by_topic: m.by_topic.iter().map(BreakdownDto::from).collect(),
        bottlenecks: m
            .bottlenecks
            .iter()
            .map(|b| BottleneckDto {
                topic: b.topic.clone(),
                avg_processing_ms: b.avg_processing_ms,
                count: b.count,
                severity: b.severity.as_str(),
            })
            .collect(),
        truncated: t.truncated,
    }
}

/// A session's metrics: totals, success rate, p50/p95/p99, per-type and per-topic, bottlenecks.
#[utoipa::path(get, path = "/api/v1/traces/sessions/{session_id}/metrics", tag = "tracer",
    params(("session_id" = String, Path), ("hours" = Option<i64>, Query), ("since" = Option<String>, Query), ("until" = Option<String>, Query)),
    responses((status = 200, description = "Metrics (zeros for an unknown id)", body = Envelope<MetricsDto>)))]
pub async fn session_metrics(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = parse_query(&req)?;
    let t = load_trace(&state, TraceKey::Session, path.into_inner(), &q).await?;
    Ok(ok(metrics_dto(&t, &query::metrics(&t.rows))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HitDto {
    /// workflow | stamp | event | session | correlation
    pub kind: &'static str,
    pub id: String,
    pub detail: Option<String>,
    /// The JSON API resource.
    pub api: String,
    /// The dashboard page.
    pub page: String,
}

pub fn hit_links(hit: &Hit) -> HitDto {
    let enc = |s: &str| urlencode(s);
    let (id, detail, api, page) = match hit {
        Hit::Workflow { id, state } => (
            id.to_string(),
            Some(format!("state {state}")),
            format!("/api/v1/workflows/{id}"),
            format!("/dashboard/workflows/{id}"),
        ),
        Hit::Stamp {
            id,
            namespace,
            file_hash,
        } => (
            id.to_string(),
            Some(format!("namespace {namespace}, hash {file_hash}")),
            format!(
                "/api/v1/metadata-stamping/stamp/{file_hash}?namespace={}",
                enc(namespace)
            ),
            format!("/dashboard/stamps?hash={file_hash}"),
        ),
        Hit::Event { id, topic } => (
            id.to_string(),
            Some(format!("topic {topic}")),
            format!("/api/v1/events/{id}"),
            format!("/dashboard/events/{id}"),
        ),
        Hit::Session { id } => (
            id.clone(),
            None,
            format!("/api/v1/traces/sessions/{}", enc(id)),
            format!("/dashboard/traces/session/{}", enc(id)),
        ),
        Hit::Correlation { id } => (
            id.clone(),
            None,
            format!("/api/v1/traces/correlation/{}", enc(id)),
            format!("/dashboard/traces/correlation/{}", enc(id)),
        ),
    };
    HitDto {
        kind: hit.kind(),
        id,
        detail,
        api,
        page,
    }
}

/// Percent-encode one path segment or query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchDto {
    pub query: String,
    pub hits: Vec<HitDto>,
}

/// The search query `q`: required, at most 512 characters.
pub fn search_query(q: &HashMap<String, String>) -> Result<String, ApiError> {
    let raw = q.get("q").map(|s| s.trim()).unwrap_or("");
    if raw.is_empty() {
        return Err(ApiError::validation(
            "q",
            "q is required: an id or a file hash",
        ));
    }
    check_text("q", raw)?;
    Ok(raw.to_owned())
}

/// What an id identifies: workflow, stamp, event, session or correlation (most specific first).
#[utoipa::path(get, path = "/api/v1/search", tag = "tracer",
    params(("q" = String, Query, description = "event, correlation, session, workflow or stamp id, or a file hash")),
    responses((status = 200, description = "Matches (empty when nothing matches)", body = Envelope<SearchDto>),
        (status = 422, description = "VALIDATION_ERROR (q missing or too long)")))]
pub async fn search(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = parse_query(&req)?;
    let query = search_query(&q)?;
    let hits = search::search(&state.db, &query).await?;
    Ok(ok(SearchDto {
        query,
        hits: hits.iter().map(hit_links).collect(),
    }))
}

/// Which live events a tail wants (empty = any).
#[derive(Debug, Clone, Default)]
pub struct LiveFilter {
    pub topic: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub namespace: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl LiveFilter {
    pub fn matches(&self, r: &EventLogRow) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.topic, Some(&r.topic))
            && eq(&self.event_type, Some(&r.event_type))
            && eq(&self.status, Some(&r.status))
            && eq(&self.namespace, r.namespace.as_deref())
            && eq(&self.session_id, r.session_id.as_deref())
            && eq(&self.correlation_id, r.correlation_id.as_deref())
    }
}

struct Tail {
    rx: broadcast::Receiver<Arc<EventLogRow>>,
    filter: LiveFilter,
    closing: tokio_util::sync::CancellationToken,
}

/// Live events as server-sent events (`event: trace`, data = the event JSON, id = event_id),
/// filtered by `topic, event_type, status, namespace, session_id, correlation_id`. A client that falls behind gets
/// `event: lagged` with the number of events it missed.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "tracer",
    params(("topic" = Option<String>, Query), ("event_type" = Option<String>, Query), ("status" = Option<String>, Query), ("namespace" = Option<String>, Query),
        ("session_id" = Option<String>, Query), ("correlation_id" = Option<String>, Query)),
    responses((status = 200, description = "text/event-stream")))]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<
    sse::Sse<impl futures_util::Stream<Item = Result<sse::Event, std::convert::Infallible>>>,
    ApiError,
> {
    let q = parse_query(&req)?;
    let filter = LiveFilter {
        topic: text_param(&q, "topic")?,
        event_type: text_param(&q, "event_type")?,
        status: text_param(&q, "status")?,
        namespace: text_param(&q, "namespace")?,
        session_id: text_param(&q, "session_id")?,
        correlation_id: text_param(&q, "correlation_id")?,
    };
    let tail = Tail {
        rx: state.live.subscribe(),
        filter,
        closing: state.closing.clone(),
    };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        loop {
            let next = tokio::select! {
                _ = tail.closing.cancelled() => return None,
                r = tail.rx.recv() => r,
            };
            match next {
                Ok(row) if tail.filter.matches(&row) => {
                    let body = serde_json::to_string(&EventDto::from(row.as_ref())).ok()?;
                    let ev = sse::Data::new(body)
                        .event("trace")
                        .id(row.event_id.0.to_string());
                    return Some((Ok(sse::Event::Data(ev)), tail));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let ev = sse::Data::new(n.to_string()).event("lagged");
                    return Some((Ok(sse::Event::Data(ev)), tail));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(sse::Sse::from_stream(events).with_keep_alive(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = EventCursor {
            timestamp: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            event_id: Uuid::from_u128(7),
        };
        assert_eq!(decode_cursor(&encode_cursor(c)).unwrap(), c);
        for bad in ["", "!!", "bm9wZQ", "MTIzX25vdC1hLXV1aWQ"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urlencode_escapes_everything_but_unreserved() {
        assert_eq!(urlencode("a b/<c>&d"), "a%20b%2F%3Cc%3E%26d");
        assert_eq!(urlencode("s-1_x.y~"), "s-1_x.y~");
    }
}
