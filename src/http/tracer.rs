//! Handlers of the event tracer: `GET /api/v1/events` (filters, cursor pagination),
//! `/api/v1/events/{id}`, `/api/v1/events/stream` (SSE), `/api/v1/traces/sessions/{id}[/metrics]`,
//! `/api/v1/traces/correlation/{id}`, `/api/v1/search?q=`. Unknown ids give empty results, not errors.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_lab::sse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{ok, Envelope};
use super::error::ApiError;
use crate::store::event_logs::{EventLogRow, TraceKey};
use crate::tracer::live::LiveFilter;
use crate::tracer::query::{Breakdown, TraceMetrics};
use crate::tracer::search::{self, Hit};
use crate::tracer::service::{self as tracer, Trace};
use crate::web::links;
use crate::web::params::{self, IdParam, Query};
use crate::web::AppState;

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
    /// In listings, traces and the live tail a payload over `INLINE_PAYLOAD_BYTES` serialized is
    /// replaced by `{"truncated": true, "size_bytes": N, "href": "/api/v1/events/{id}"}`; the
    /// event's own resource always has it whole.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// As `payload`.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    /// `payload` or `metadata` was replaced by its stand-in (see `payload`).
    pub truncated: bool,
}

/// Largest payload (and metadata) returned inline by listings, traces and the live tail, in
/// serialized bytes.
pub const INLINE_PAYLOAD_BYTES: usize = 16 * 1024;

/// Serialized size of `v`, counted without building the text.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

impl EventDto {
    /// The event as listings show it: payload and metadata capped at `INLINE_PAYLOAD_BYTES`.
    pub fn capped(r: &EventLogRow) -> Self {
        let mut truncated = false;
        let mut cap = |v: &Value| {
            let size = json_size(v);
            if size <= INLINE_PAYLOAD_BYTES {
                v.clone()
            } else {
                truncated = true;
                serde_json::json!({"truncated": true, "size_bytes": size,
                                   "href": links::api::event(r.event_id.0)})
            }
        };
        let payload = cap(&r.payload.0);
        let metadata = cap(&r.metadata.0);
        EventDto {
            payload,
            metadata,
            truncated,
            ..EventDto::whole(r, Value::Null, Value::Null)
        }
    }

    fn whole(r: &EventLogRow, payload: Value, metadata: Value) -> Self {
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
            payload,
            metadata,
            recorded_at: r.recorded_at.0,
            truncated: false,
        }
    }
}

impl From<&EventLogRow> for EventDto {
    fn from(r: &EventLogRow) -> Self {
        EventDto::whole(r, r.payload.0.clone(), r.metadata.0.clone())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventDto>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub limit: i64,
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
    let q = Query::parse(&req)?;
    let limit = q.int("limit", 50, 1, 500)?;
    let filter = q.event_filter()?;
    let page = tracer::page(&state.db, &filter, q.text("cursor").as_deref(), limit).await?;
    Ok(ok(EventPage {
        events: page.rows.iter().map(EventDto::capped).collect(),
        next_cursor: page.next_cursor,
        limit,
    }))
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
    let id = params::uuid(path.into_inner().trim(), IdParam::EventId)?;
    let row = tracer::event(&state.db, id).await?;
    Ok(ok(EventDto::from(&row)))
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

impl From<&Trace> for TraceDto {
    fn from(t: &Trace) -> Self {
        let s = t.summary();
        TraceDto {
            kind: tracer::trace_kind(t.key),
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
            events: t.rows.iter().map(EventDto::capped).collect(),
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
    let window = Query::parse(req)?.trace_window()?;
    let t = tracer::load_trace(&state.db, key, id, window).await?;
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
    let window = Query::parse(&req)?.trace_window()?;
    let t = tracer::load_trace(&state.db, TraceKey::Session, path.into_inner(), window).await?;
    Ok(ok(metrics_dto(&t, &t.metrics())))
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

pub fn hit_dto(hit: &Hit) -> HitDto {
    let links = links::hit(hit);
    HitDto {
        kind: hit.kind(),
        id: hit.id(),
        detail: hit.detail(),
        api: links.api,
        page: links.page,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchDto {
    pub query: String,
    pub hits: Vec<HitDto>,
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
    let q = Query::parse(&req)?;
    let query = tracer::search_query(q.raw("q"))?;
    let hits = search::search(&state.db, &query).await?;
    Ok(ok(SearchDto {
        query,
        hits: hits.iter().map(hit_dto).collect(),
    }))
}

struct Tail {
    sub: crate::tracer::live::Subscription,
    filter: LiveFilter,
    closing: tokio_util::sync::CancellationToken,
}

/// Live events as server-sent events (`event: trace`, data = the event JSON, id = event_id),
/// filtered by `topic, event_type, status, namespace, session_id, correlation_id`. A client that falls behind gets
/// `event: lagged` with the number of events it missed.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "tracer",
    params(("topic" = Option<String>, Query), ("event_type" = Option<String>, Query), ("status" = Option<String>, Query), ("namespace" = Option<String>, Query),
        ("session_id" = Option<String>, Query), ("correlation_id" = Option<String>, Query)),
    responses((status = 200, description = "text/event-stream"),
        (status = 503, description = "TOO_MANY_STREAM_CLIENTS (http.max_sse_clients; Retry-After)")))]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<
    sse::Sse<impl futures_util::Stream<Item = Result<sse::Event, std::convert::Infallible>>>,
    ApiError,
> {
    let filter = Query::parse(&req)?.live_filter();
    tracer::check_live_filter(&filter)?;
    let tail = Tail {
        sub: state.live.subscribe()?,
        filter,
        closing: state.closing.clone(),
    };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        loop {
            let next = tokio::select! {
                _ = tail.closing.cancelled() => return None,
                r = tail.sub.rx.recv() => r,
            };
            match next {
                Ok(row) if tail.filter.matches(&row) => {
                    let body = serde_json::to_string(&EventDto::capped(row.as_ref())).ok()?;
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
