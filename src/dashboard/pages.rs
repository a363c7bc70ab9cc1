//! Page handlers: load through the services and stores, build a view model, render a template.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde_json::Value;

use super::view::{self, Bar, EventView, MetricsView};
use super::{render, DashError};
use crate::events::topics::traced_topics;
use crate::store::event_logs::{self, TraceKey};
use crate::store::{reducer, stamps, workflows};
use crate::tracer::search;
use crate::tracer::service as tracer;
use crate::web::error::{workflow_not_found, ApiError, ErrorCode};
use crate::web::health;
use crate::web::links;
use crate::web::params::{self, IdParam, Query};
use crate::web::AppState;

type Page = Result<HttpResponse, DashError>;

// ---------------------------------------------------------------- overview

/// Status of one component card.
pub struct Component {
    pub name: &'static str,
    pub status: String,
    pub detail: String,
}

pub struct OverviewData {
    pub overall: String,
    pub components: Vec<Component>,
    pub rates: Vec<Bar>,
    pub events_last_minute: i64,
    /// (state, href, count)
    pub workflows: Vec<(String, String, i64)>,
    /// (topic, page href, in window, total)
    pub dlq_topics: Vec<(String, String, i64, i64)>,
    pub dlq_alerts: Vec<(String, String, i64)>,
    pub namespaces: Vec<Bar>,
    pub generated_at: String,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    o: OverviewData,
}

#[derive(Template)]
#[template(path = "dashboard/overview_body.html")]
struct OverviewFragment {
    o: OverviewData,
}

async fn overview_data(state: &AppState) -> Result<OverviewData, ApiError> {
    let health = health::report(state).await;
    let c = &health.components;
    let (db, bus, intel) = (&c.database, &c.event_bus, &c.intelligence_client);
    let components = vec![
        Component {
            name: "Database",
            status: db.status.as_str().to_owned(),
            detail: format!(
                "{} · pool {}/{} in use · breaker {}",
                db.backend, db.pool.in_use, db.pool.max_size, db.circuit_breaker.state,
            ),
        },
        Component {
            name: "Event bus",
            status: bus.status.as_str().to_owned(),
            detail: format!(
                "{} · outbox unsent {}{}",
                bus.kind,
                bus.outbox_unsent
                    .map_or_else(|| "null".to_owned(), |n| n.to_string()),
                bus.error
                    .as_deref()
                    .map(|e| format!(" · {e}"))
                    .unwrap_or_default()
            ),
        },
        Component {
            name: "OnexTree",
            status: intel.status.as_str().to_owned(),
            detail: match intel.circuit_breaker {
                Some(b) => format!("breaker {b}"),
                None => "not configured".to_owned(),
            },
        },
    ];
    let now = Utc::now();
    // Bounded windows only: the page refreshes every 5 s, so no query may grow with table size.
    let last_minute =
        event_logs::topic_counts(&state.db, now - chrono::Duration::minutes(1)).await?;
    let mut rates: Vec<Bar> = view::bars(
        &last_minute
            .iter()
            .map(|(t, n)| (t.clone(), *n as f64 / 60.0))
            .collect::<Vec<_>>(),
        |v| format!("{v:.2}/s"),
    );
    for b in &mut rates {
        b.href = Some(links::dashboard::events_by("topic", &b.label));
    }
    let dlq = state.dlq.all_counts().await?;
    let alerts = state.dlq.recent_alerts(5).await?;
    // Stamps per namespace from the reducer's aggregates (one row per namespace), not a scan of
    // `metadata_stamps`.
    let (aggregates, _) = reducer::list(&state.db, None, 500, 0).await?;
    let mut ns: Vec<(String, f64)> = aggregates
        .iter()
        .map(|a| (a.namespace.clone(), a.total_stamps as f64))
        .collect();
    ns.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ns.truncate(20);
    let mut namespaces = view::bars(&ns, |v| format!("{v:.0}"));
    for b in &mut namespaces {
        b.href = Some(links::dashboard::namespace(&b.label));
    }
    Ok(OverviewData {
        overall: health.status.as_str().to_owned(),
        components,
        rates,
        events_last_minute: last_minute.iter().map(|(_, n)| n).sum(),
        workflows: state_links(
            workflows::state_counts(&state.db, now - chrono::Duration::hours(1)).await?,
        ),
        dlq_topics: dlq
            .iter()
            .map(|t| {
                (
                    t.topic.clone(),
                    links::dashboard::dlq_topic(&t.topic),
                    t.in_window,
                    t.total,
                )
            })
            .collect(),
        dlq_alerts: alerts
            .iter()
            .map(|a| (view::ts(a.created_at.0), a.dlq_topic.clone(), a.count))
            .collect(),
        namespaces,
        generated_at: view::ts(now),
    })
}

pub async fn overview(state: web::Data<AppState>) -> Page {
    render(&OverviewPage {
        o: overview_data(&state).await?,
    })
}

pub async fn overview_fragment(state: web::Data<AppState>) -> Page {
    render(&OverviewFragment {
        o: overview_data(&state).await?,
    })
}

/// (state, its workflow listing, count)
fn state_links(counts: Vec<(String, i64)>) -> Vec<(String, String, i64)> {
    counts
        .into_iter()
        .map(|(st, n)| {
            let href = links::dashboard::workflows_in_state(&st);
            (st, href, n)
        })
        .collect()
}

// ---------------------------------------------------------------- events

#[derive(Template)]
#[template(path = "dashboard/events.html")]
struct EventsPage {
    /// (option, selected)
    topics: Vec<(String, bool)>,
    event_types: Vec<(&'static str, bool)>,
    status: String,
    namespace: String,
    stream_url: String,
    rows: Vec<EventView>,
    next_href: Option<String>,
}

const EVENT_TYPES: [&str; 5] = ["request", "response", "status", "error", "event"];

pub async fn events(state: web::Data<AppState>, req: HttpRequest) -> Page {
    let q = Query::parse(&req)?;
    let limit = q.int("limit", 50, 1, 500)?;
    let filter = q.event_filter()?;
    let page = tracer::page(&state.db, &filter, q.text("cursor").as_deref(), limit).await?;
    let get = |k: &str| q.text(k).unwrap_or_default();
    // The live tail takes the same filters as the listing, except the time range and paging.
    let pick = |keys: &[&'static str]| {
        let kept: Vec<(&str, String)> = keys
            .iter()
            .filter_map(|k| q.text(k).map(|v| (*k, v)))
            .collect();
        links::query_string(&kept)
    };
    let live = [
        "topic",
        "event_type",
        "status",
        "namespace",
        "session_id",
        "correlation_id",
    ];
    let qs = pick(&live);
    let page_qs = pick(&[
        "topic",
        "event_type",
        "status",
        "namespace",
        "session_id",
        "correlation_id",
        "since",
        "until",
        "limit",
    ]);
    let mut topics = traced_topics(&state.settings.kafka.topic_env);
    topics.sort();
    render(&EventsPage {
        topics: topics
            .into_iter()
            .map(|t| {
                let selected = t == get("topic");
                (t, selected)
            })
            .collect(),
        event_types: EVENT_TYPES
            .iter()
            .map(|t| (*t, *t == get("event_type")))
            .collect(),
        status: get("status"),
        namespace: get("namespace"),
        stream_url: links::api::event_stream(&qs),
        rows: page
            .rows
            .iter()
            .map(|r| view::event_view(r, None, 0.0))
            .collect(),
        next_href: page
            .next_cursor
            .map(|c| links::dashboard::events_page(&page_qs, &c)),
    })
}

#[derive(Template)]
#[template(path = "dashboard/event.html")]
struct EventPage {
    e: EventView,
    partition: String,
    offset: String,
    recorded_at: String,
}

pub async fn event(state: web::Data<AppState>, path: web::Path<String>) -> Page {
    let id = params::uuid(path.into_inner().trim(), IdParam::EventId)?;
    let row = tracer::event(&state.db, id).await?;
    // One event: its payload whole (tables and timelines show it capped).
    let mut e = view::event_view(&row, None, 0.0);
    e.payload = view::pretty(&row.payload.0);
    e.metadata = view::pretty(&row.metadata.0);
    render(&EventPage {
        e,
        partition: row
            .kafka_partition
            .map(|p| p.to_string())
            .unwrap_or_else(|| "–".into()),
        offset: row
            .kafka_offset
            .map(|o| o.to_string())
            .unwrap_or_else(|| "–".into()),
        recorded_at: view::ts(row.recorded_at.0),
    })
}

// ---------------------------------------------------------------- search

#[derive(Template)]
#[template(path = "dashboard/search.html")]
struct SearchPage {
    query: String,
    hits: Vec<HitLine>,
}

pub struct HitLine {
    pub kind: &'static str,
    pub detail: Option<String>,
    pub page: String,
}

/// A match lands on its page (the most specific kind when several match: a workflow id is also its
/// events' session id). An id that is only a session id and a correlation id is listed, since both
/// traces differ; no match says so.
pub async fn search(state: web::Data<AppState>, req: HttpRequest) -> Page {
    let q = Query::parse(&req)?;
    let query = match tracer::search_query(q.raw("q")) {
        Ok(s) => s,
        Err(tracer::TracerError::MissingQuery) => {
            return render(&SearchPage {
                query: String::new(),
                hits: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let hits = search::search(&state.db, &query).await?;
    let only_traces = hits.iter().all(|h| {
        matches!(
            h,
            search::Hit::Session { .. } | search::Hit::Correlation { .. }
        )
    });
    if let Some(first) = hits.first().filter(|_| hits.len() == 1 || !only_traces) {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, links::hit(first).page))
            .finish());
    }
    render(&SearchPage {
        query,
        hits: hits
            .iter()
            .map(|h| HitLine {
                kind: h.kind(),
                detail: h.detail(),
                page: links::hit(h).page,
            })
            .collect(),
    })
}

// ---------------------------------------------------------------- traces

#[derive(Template)]
#[template(path = "dashboard/trace.html")]
struct TracePage {
    kind: &'static str,
    id: String,
    hours: i64,
    range: String,
    status: String,
    status_class: &'static str,
    duration: String,
    sessions: Vec<(String, String)>,
    truncated: bool,
    m: MetricsView,
    histogram: Vec<Bar>,
    rows: Vec<EventView>,
    api_href: String,
}

async fn trace_page(state: &AppState, key: TraceKey, id: String, req: &HttpRequest) -> Page {
    let q = Query::parse(req)?;
    let hours = q.trace_hours()?;
    let t = tracer::load_trace(&state.db, key, id, q.trace_window()?).await?;
    let s = t.summary();
    let m = t.metrics();
    let span = s.duration_ms
        + t.rows
            .last()
            .and_then(|r| r.processing_time_ms)
            .unwrap_or(0.0);
    let api_trace = match key {
        TraceKey::Session => links::api::session_trace(&t.id),
        TraceKey::Correlation => links::api::correlation_trace(&t.id),
    };
    let status = s.status.clone().unwrap_or_else(|| "no events".into());
    render(&TracePage {
        kind: tracer::trace_kind(key),
        api_href: links::api::trace_with_query(&api_trace, req.query_string()),
        id: t.id.clone(),
        hours,
        range: format!(
            "{} → {}",
            view::ts(t.since),
            t.until.map(view::ts).unwrap_or_else(|| "now".into())
        ),
        status_class: view::status_class(&status),
        status,
        duration: view::ms(s.duration_ms),
        sessions: s
            .sessions
            .iter()
            .map(|x| (x.clone(), links::dashboard::session_trace(x)))
            .collect(),
        truncated: t.truncated,
        m: view::metrics_view(&m),
        histogram: view::histogram(&t.rows),
        rows: t
            .rows
            .iter()
            .map(|r| view::event_view(r, s.started_at, span))
            .collect(),
    })
}

pub async fn session_trace(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Page {
    trace_page(&state, TraceKey::Session, path.into_inner(), &req).await
}

pub async fn correlation_trace(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Page {
    trace_page(&state, TraceKey::Correlation, path.into_inner(), &req).await
}

// ---------------------------------------------------------------- workflows

pub struct WorkflowLine {
    pub id: String,
    pub href: String,
    pub contract: String,
    pub namespace: String,
    pub state: String,
    pub state_class: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "dashboard/workflows.html")]
struct WorkflowsPage {
    state_filter: String,
    /// (state, href, count)
    counts: Vec<(String, String, i64)>,
    total: i64,
    rows: Vec<WorkflowLine>,
}

pub async fn workflows(state: web::Data<AppState>, req: HttpRequest) -> Page {
    let q = Query::parse(&req)?;
    let st = q.workflow_state()?;
    let (rows, total) = workflows::list(&state.db, None, st, 100, 0).await?;
    render(&WorkflowsPage {
        state_filter: st.unwrap_or("").to_owned(),
        counts: state_links(
            workflows::state_counts(&state.db, Utc::now() - chrono::Duration::hours(1)).await?,
        ),
        total,
        rows: rows
            .iter()
            .map(|w| WorkflowLine {
                href: links::dashboard::workflow(w.id.0),
                id: w.id.0.to_string(),
                contract: w.contract.clone(),
                namespace: w.namespace.clone(),
                state_class: view::status_class(&w.state),
                state: w.state.clone(),
                created: view::ts(w.created_at.0),
            })
            .collect(),
    })
}

pub struct StepLine {
    pub name: String,
    pub status: String,
    pub status_class: &'static str,
    pub attempts: i32,
    pub duration: String,
    pub started: String,
    pub error: String,
    pub bar_x: u32,
    pub bar_width: u32,
}

#[derive(Template)]
#[template(path = "dashboard/workflow.html")]
struct WorkflowPage {
    id: String,
    contract: String,
    namespace: String,
    state: String,
    state_class: &'static str,
    created: String,
    completed: String,
    error: String,
    steps: Vec<StepLine>,
    transitions: Vec<(String, String, String, String)>,
    /// (file hash, its stamps page)
    stamp: Option<(String, String)>,
    stamp_id: Option<String>,
    trace_href: String,
    input: String,
    result: String,
}

pub async fn workflow(state: web::Data<AppState>, path: web::Path<String>) -> Page {
    let id = params::uuid(path.into_inner().trim(), IdParam::WorkflowId)?;
    let (wf, steps, transitions) = workflows::get(&state.db, id)
        .await?
        .ok_or_else(|| workflow_not_found(id))?;
    let t0 = wf.created_at.0;
    let end = wf
        .completed_at
        .map(|t| t.0)
        .or_else(|| {
            steps
                .iter()
                .filter_map(|s| s.completed_at.map(|t| t.0))
                .max()
        })
        .unwrap_or_else(Utc::now);
    let span = ((end - t0).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(1.0);
    let step_lines = steps
        .iter()
        .map(|s| {
            let off = s
                .started_at
                .map(|t| (t.0 - t0).num_microseconds().unwrap_or(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            let bar_x = (off / span * 1000.0).clamp(0.0, 996.0) as u32;
            StepLine {
                name: s.name.clone(),
                status_class: view::status_class(&s.status),
                status: s.status.clone(),
                attempts: s.attempts,
                duration: view::opt_ms(s.duration_ms),
                started: s.started_at.map(|t| view::ts(t.0)).unwrap_or_default(),
                error: s.error.clone().unwrap_or_default(),
                bar_x,
                bar_width: (s.duration_ms.unwrap_or(0.0) / span * 1000.0)
                    .clamp(4.0, (1000 - bar_x) as f64) as u32,
            }
        })
        .collect();
    // The stamp: from the result, or from the stamp step's output while still running.
    let stamp_out = wf
        .result
        .as_ref()
        .map(|r| r.0["stamp"].clone())
        .filter(|v| v.is_object())
        .or_else(|| {
            steps
                .iter()
                .find(|s| s.name == "stamp_creation")
                .and_then(|s| s.output.as_ref().map(|o| o.0.clone()))
        })
        .unwrap_or(Value::Null);
    let str_of = |v: &Value| v.as_str().map(str::to_owned);
    render(&WorkflowPage {
        id: wf.id.0.to_string(),
        contract: wf.contract.clone(),
        namespace: wf.namespace.clone(),
        state_class: view::status_class(&wf.state),
        state: wf.state.clone(),
        created: view::ts(wf.created_at.0),
        completed: wf.completed_at.map(|t| view::ts(t.0)).unwrap_or_default(),
        error: wf.error.clone().unwrap_or_default(),
        steps: step_lines,
        transitions: transitions
            .iter()
            .map(|t| {
                (
                    view::ts(t.created_at.0),
                    t.from_state.clone(),
                    t.to_state.clone(),
                    t.trigger.clone(),
                )
            })
            .collect(),
        stamp: str_of(&stamp_out["file_hash"]).map(|h| {
            let href = links::dashboard::stamps_by_hash(&h);
            (h, href)
        }),
        stamp_id: str_of(&stamp_out["stamp_id"]),
        // From just before the workflow started, so an old workflow's trace is not empty.
        trace_href: links::dashboard::session_trace_since(
            &wf.id.0.to_string(),
            wf.created_at.0 - chrono::Duration::minutes(1),
        ),
        input: view::pretty(&redact_input(&wf.input.0)),
        result: wf
            .result
            .as_ref()
            .map(|r| view::pretty(&r.0))
            .unwrap_or_default(),
    })
}

/// Workflow input minus the content itself (it can be megabytes): its size instead.
fn redact_input(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut() {
        for key in ["content", "content_base64"] {
            if let Some(Value::String(s)) = obj.get(key) {
                let note = format!("<{} bytes>", s.len());
                obj.insert(key.to_owned(), Value::String(note));
            }
        }
    }
    v
}

// ---------------------------------------------------------------- namespaces

pub struct NamespaceLine {
    pub namespace: String,
    pub events_href: String,
    pub anchor: String,
    pub total_stamps: i64,
    pub total_bytes: i64,
    pub file_types: i64,
    pub workflows: i64,
    pub window_stamps: i64,
    pub fsm_state: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "dashboard/namespaces.html")]
struct NamespacesPage {
    rows: Vec<NamespaceLine>,
    total: i64,
    stored: Vec<Bar>,
}

pub async fn namespaces(state: web::Data<AppState>) -> Page {
    let (rows, total) = reducer::list(&state.db, None, 500, 0).await?;
    render(&NamespacesPage {
        rows: rows
            .iter()
            .map(|r| NamespaceLine {
                anchor: links::dashboard::namespace_anchor(&r.namespace),
                events_href: links::dashboard::events_by("namespace", &r.namespace),
                namespace: r.namespace.clone(),
                total_stamps: r.total_stamps,
                total_bytes: r.total_bytes,
                file_types: r.distinct_file_types,
                workflows: r.distinct_workflows,
                window_stamps: r.window_stamps,
                fsm_state: r.fsm_state.clone(),
                last_seen: r.last_seen.map(|t| view::ts(t.0)).unwrap_or_default(),
            })
            .collect(),
        total,
        stored: view::bars(
            &rows
                .iter()
                .map(|r| (r.namespace.clone(), r.total_stamps as f64))
                .collect::<Vec<_>>(),
            |v| format!("{v:.0}"),
        ),
    })
}

// ---------------------------------------------------------------- DLQ

pub struct DlqLine {
    pub id: String,
    pub dlq_topic: String,
    pub original_topic: String,
    pub error: String,
    pub received: String,
    pub redriven: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "dashboard/dlq.html")]
struct DlqPage {
    /// (topic, page href, in window, total)
    topics: Vec<(String, String, i64, i64)>,
    alerts: Vec<(String, String, i64, String)>,
    threshold: u64,
    window_secs: u64,
    topic_filter: String,
    total: i64,
    rows: Vec<DlqLine>,
    notice: Option<String>,
    notice_class: &'static str,
    kafka: bool,
    /// Quarantined outbox events: how many, and the newest (seq, failed at, topic, event type, error).
    outbox_dead_total: i64,
    outbox_dead: Vec<(i64, String, String, String, String)>,
}

async fn dlq_page(
    state: &AppState,
    topic: Option<&str>,
    notice: Option<(String, &'static str)>,
) -> Page {
    let counts = state.dlq.all_counts().await?;
    let alerts = state.dlq.recent_alerts(10).await?;
    let (rows, total) = state.dlq.messages(topic, 100, 0).await?;
    let (dead, outbox_dead_total) = state.dlq.outbox_dead(20).await?;
    let settings = state.dlq.settings();
    let (notice, notice_class) = match notice {
        Some((n, c)) => (Some(n), c),
        None => (None, ""),
    };
    render(&DlqPage {
        topics: counts
            .iter()
            .map(|t| {
                (
                    t.topic.clone(),
                    links::dashboard::dlq_topic(&t.topic),
                    t.in_window,
                    t.total,
                )
            })
            .collect(),
        alerts: alerts
            .iter()
            .map(|a| {
                (
                    view::ts(a.created_at.0),
                    a.dlq_topic.clone(),
                    a.count,
                    a.recent_error.clone().unwrap_or_default(),
                )
            })
            .collect(),
        threshold: settings.alert_threshold,
        window_secs: settings.window_secs,
        topic_filter: topic.unwrap_or("").to_owned(),
        total,
        rows: rows
            .iter()
            .map(|r| DlqLine {
                id: r.id.0.to_string(),
                dlq_topic: r.dlq_topic.clone(),
                original_topic: r.original_topic.clone().unwrap_or_default(),
                error: r
                    .error_message
                    .clone()
                    .or_else(|| r.error_class.clone())
                    .unwrap_or_default(),
                received: view::ts(r.received_at.0),
                redriven: r.redriven_at.map(|t| view::ts(t.0)).unwrap_or_default(),
                value: r
                    .message_value
                    .as_deref()
                    .map(|v| v.chars().take(2000).collect())
                    .unwrap_or_default(),
            })
            .collect(),
        notice,
        notice_class,
        kafka: state.kafka.is_some(),
        outbox_dead_total,
        outbox_dead: dead
            .iter()
            .map(|d| {
                (
                    d.seq,
                    view::ts(d.failed_at.0),
                    d.topic.clone(),
                    d.envelope
                        .0
                        .get("event_type")
                        .and_then(|t| t.as_str())
                        .map(|t| t.chars().take(200).collect::<String>())
                        .unwrap_or_default(),
                    d.error.chars().take(500).collect::<String>(),
                )
            })
            .collect(),
    })
}

pub async fn dlq(state: web::Data<AppState>, req: HttpRequest) -> Page {
    let topic = Query::parse(&req)?.text("topic");
    dlq_page(&state, topic.as_deref(), None).await
}

/// The redrive form: checked `id`s, or every pending record of `topic`; `dry_run=on` only counts.
pub async fn dlq_redrive(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> Page {
    super::same_origin(&req)?;
    let mut ids = Vec::new();
    let mut topic = None;
    let mut dry_run = false;
    for (k, v) in form.into_inner() {
        match k.as_str() {
            "id" => ids.push(uuid::Uuid::parse_str(v.trim()).map_err(|_| {
                ApiError::validation("id", format!("id must be a UUID, got {v:?}"))
            })?),
            "topic" if !v.trim().is_empty() => topic = Some(v.trim().to_owned()),
            "dry_run" => dry_run = !v.is_empty(),
            _ => {}
        }
    }
    if ids.is_empty() && topic.is_none() {
        return dlq_page(
            &state,
            None,
            Some(("Choose messages or a topic to redrive.".to_owned(), "bad")),
        )
        .await;
    }
    let by_ids = (!ids.is_empty()).then_some(ids.as_slice());
    let notice = match state
        .dlq
        .redrive(
            by_ids,
            if by_ids.is_some() {
                None
            } else {
                topic.as_deref()
            },
            1000,
            dry_run,
        )
        .await
    {
        Ok(out) if dry_run => (
            format!(
                "Dry run: {} message(s) would be redriven ({} without an original topic).",
                out.matched - out.skipped,
                out.skipped
            ),
            "ok",
        ),
        Ok(out) => (
            format!(
                "Redriven {} of {} message(s); {} skipped (no original topic).",
                out.redriven, out.matched, out.skipped
            ),
            "ok",
        ),
        Err(e) => (
            format!("Redrive failed: {}", ApiError::from(e).message),
            "bad",
        ),
    };
    dlq_page(&state, topic.as_deref(), Some(notice)).await
}

// ---------------------------------------------------------------- stamps

pub struct StampLine {
    pub id: String,
    pub namespace: String,
    pub file_path: String,
    pub file_size: i64,
    pub content_type: String,
    pub created: String,
    pub stamp: String,
    pub intelligence: String,
}

pub struct ValidationView {
    pub is_valid: bool,
    pub current_hash: String,
    pub stamps: Vec<(String, String, bool)>,
}

#[derive(Template)]
#[template(path = "dashboard/stamps.html")]
struct StampsPage {
    hash: String,
    looked_up: bool,
    stamps: Vec<StampLine>,
    content: String,
    validation: Option<ValidationView>,
    validate_error: Option<String>,
}

fn stamp_lines(rows: &[stamps::StampRow]) -> Vec<StampLine> {
    rows.iter()
        .map(|s| StampLine {
            id: s.id.0.to_string(),
            namespace: s.namespace.clone(),
            file_path: s.file_path.clone().unwrap_or_default(),
            file_size: s.file_size,
            content_type: s.content_type.clone().unwrap_or_default(),
            created: view::ts(s.created_at.0),
            stamp: view::pretty(&s.stamp_data.0),
            intelligence: s
                .intelligence_data
                .as_ref()
                .map(|i| view::pretty(&i.0))
                .unwrap_or_default(),
        })
        .collect()
}

pub async fn stamps(state: web::Data<AppState>, req: HttpRequest) -> Page {
    let q = Query::parse(&req)?;
    let raw = q.raw("hash").map(str::trim).unwrap_or("");
    let (looked_up, rows) = if raw.is_empty() {
        (false, Vec::new())
    } else {
        let hash = search::as_file_hash(raw).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidHashFormat,
                Some("hash"),
                "hash must be 64 hex characters (a BLAKE3 file hash)",
            )
        })?;
        (true, stamps::find_all_by_hash(&state.db, &hash).await?)
    };
    render(&StampsPage {
        hash: raw.to_owned(),
        looked_up,
        stamps: stamp_lines(&rows),
        content: String::new(),
        validation: None,
        validate_error: None,
    })
}

#[derive(serde::Deserialize)]
pub struct ValidateForm {
    content: String,
    #[serde(default)]
    namespace: String,
}

pub async fn stamps_validate(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ValidateForm>,
) -> Page {
    super::same_origin(&req)?;
    let form = form.into_inner();
    let svc = &state.stamping;
    let ns = (!form.namespace.trim().is_empty()).then(|| form.namespace.trim().to_owned());
    let outcome = match svc.namespace(ns.as_deref(), "namespace") {
        Ok(namespace) => svc
            .validate(
                &form.content,
                None,
                &namespace,
                &crate::web::context::RequestCtx::trace(),
            )
            .await
            .map_err(ApiError::from),
        Err(e) => Err(ApiError::from(e)),
    };
    let (validation, validate_error) = match outcome {
        Ok(o) => (
            Some(ValidationView {
                is_valid: o.validation.is_valid,
                current_hash: o.validation.current_hash.clone(),
                stamps: o
                    .validation
                    .stamps
                    .iter()
                    .map(|s| {
                        (
                            s.stamp_type.as_str().to_owned(),
                            s.stamp_hash.clone().unwrap_or_default(),
                            s.is_valid,
                        )
                    })
                    .collect(),
            }),
            None,
        ),
        Err(e) if e.status().is_server_error() => return Err(e.into()),
        Err(e) => (None, Some(e.message)),
    };
    render(&StampsPage {
        hash: String::new(),
        looked_up: false,
        stamps: Vec::new(),
        content: form.content,
        validation,
        validate_error,
    })
}
