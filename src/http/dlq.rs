//! Handlers of the DLQ monitor: `/api/v1/dlq/{stats,messages,redrive,reset}` and the quarantined
//! outbox rows, `/api/v1/dlq/outbox` and `/api/v1/dlq/outbox/redrive`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::envelope::{ok, Envelope};
use super::error::ApiError;
use super::extract::ValidJson;
use crate::store::dlq::{DlqAlertRow, DlqRecordRow};
use crate::store::outbox::DeadOutboxRow;
use crate::web::params::Query;
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicStats {
    pub topic: String,
    pub in_window: i64,
    pub total: i64,
    pub alerting: bool,
    pub last_alert_at: Option<DateTime<Utc>>,
    pub reset_at: Option<DateTime<Utc>>,
    pub recent_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDto {
    pub id: Uuid,
    pub topic: String,
    pub count: i64,
    pub threshold: i64,
    pub recent_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<DlqAlertRow> for AlertDto {
    fn from(a: DlqAlertRow) -> Self {
        AlertDto {
            id: a.id.0,
            topic: a.dlq_topic,
            count: a.count,
            threshold: a.threshold,
            recent_error: a.recent_error,
            created_at: a.created_at.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqStats {
    pub threshold: u64,
    pub window_secs: u64,
    pub cooldown_secs: u64,
    pub total_in_window: i64,
    pub total: i64,
    pub topics: Vec<TopicStats>,
    pub recent_alerts: Vec<AlertDto>,
}

/// Per-topic counts (window and total) and recent alerts.
#[utoipa::path(get, path = "/api/v1/dlq/stats", tag = "dlq", responses((status = 200, description = "DLQ stats", body = Envelope<DlqStats>)))]
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let m = &state.dlq;
    let threshold = m.settings().alert_threshold as i64;
    let topics: Vec<TopicStats> = m
        .all_counts()
        .await?
        .into_iter()
        .map(|c| TopicStats {
            alerting: c.in_window >= threshold,
            topic: c.topic,
            in_window: c.in_window,
            total: c.total,
            last_alert_at: c.last_alert_at,
            reset_at: c.reset_at,
            recent_error: c.recent_error,
        })
        .collect();
    let alerts = m.recent_alerts(20).await?;
    Ok(ok(DlqStats {
        threshold: m.settings().alert_threshold,
        window_secs: m.settings().window_secs,
        cooldown_secs: m.settings().cooldown_secs,
        total_in_window: topics.iter().map(|t| t.in_window).sum(),
        total: topics.iter().map(|t| t.total).sum(),
        topics,
        recent_alerts: alerts.into_iter().map(AlertDto::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqMessage {
    pub id: Uuid,
    pub dlq_topic: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
    #[schema(value_type = Object)]
    pub headers: Value,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub received_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
}

impl From<DlqRecordRow> for DlqMessage {
    fn from(r: DlqRecordRow) -> Self {
        DlqMessage {
            id: r.id.0,
            dlq_topic: r.dlq_topic,
            dlq_partition: r.dlq_partition,
            dlq_offset: r.dlq_offset,
            original_topic: r.original_topic,
            original_partition: r.original_partition,
            original_offset: r.original_offset,
            key: r.message_key,
            value: r.message_value,
            headers: r.headers.0,
            error_class: r.error_class,
            error_message: r.error_message,
            received_at: r.received_at.0,
            redriven_at: r.redriven_at.map(|t| t.0),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqMessages {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub messages: Vec<DlqMessage>,
}

/// Stored DLQ records, newest first (`?topic=&limit=&offset=`).
#[utoipa::path(get, path = "/api/v1/dlq/messages", tag = "dlq",
    params(("topic" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "DLQ records", body = Envelope<DlqMessages>)))]
pub async fn messages(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req)?;
    let limit = q.int("limit", 50, 1, 1000)?;
    let offset = q.int("offset", 0, 0, i64::MAX / 2)?;
    let (rows, total) = state.dlq.messages(q.raw("topic"), limit, offset).await?;
    Ok(ok(DlqMessages {
        total,
        limit,
        offset,
        messages: rows.into_iter().map(DlqMessage::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Records to redrive; or
    pub ids: Option<Vec<Uuid>>,
    /// every pending record of one DLQ topic.
    pub topic: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveResponse {
    pub dry_run: bool,
    pub matched: usize,
    pub redriven: usize,
    pub skipped: usize,
}

/// Send records back to their original topic (or count them with `dry_run`).
#[utoipa::path(post, path = "/api/v1/dlq/redrive", tag = "dlq", request_body = RedriveRequest,
    responses((status = 200, description = "Redrive result", body = Envelope<RedriveResponse>),
        (status = 422, description = "VALIDATION_ERROR"), (status = 503, description = "KAFKA_UNAVAILABLE")))]
pub async fn redrive(
    state: web::Data<AppState>,
    body: ValidJson<RedriveRequest>,
) -> Result<HttpResponse, ApiError> {
    let r = body.0;
    if r.ids.is_none() && r.topic.is_none() {
        return Err(ApiError::validation(
            "ids",
            "give `ids` or `topic` to choose what to redrive",
        ));
    }
    let limit = r.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 10000",
        ));
    }
    let out = state
        .dlq
        .redrive(r.ids.as_deref(), r.topic.as_deref(), limit, r.dry_run)
        .await?;
    Ok(ok(RedriveResponse {
        dry_run: r.dry_run,
        matched: out.matched,
        redriven: out.redriven,
        skipped: out.skipped,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// One DLQ topic; absent = all.
    pub topic: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetResponse {
    /// The DLQ topics whose counts start over now.
    pub reset: Vec<String>,
}

/// Reset counts (window and total) of one topic or all.
#[utoipa::path(post, path = "/api/v1/dlq/reset", tag = "dlq", request_body = ResetRequest,
    responses((status = 200, description = "Topics reset", body = Envelope<ResetResponse>)))]
pub async fn reset(
    state: web::Data<AppState>,
    body: ValidJson<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    let topics = state.dlq.reset(body.0.topic.as_deref()).await?;
    Ok(ok(ResetResponse { reset: topics }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadOutboxEvent {
    /// The row's outbox sequence number when it failed (what a redrive names).
    pub seq: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub partition_key: String,
    /// The envelope's `event_type`, when it has one.
    pub event_type: Option<String>,
    /// Size of the stored envelope (the envelope itself is not listed: it may be large).
    pub envelope_bytes: usize,
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
}

impl From<DeadOutboxRow> for DeadOutboxEvent {
    fn from(r: DeadOutboxRow) -> Self {
        DeadOutboxEvent {
            seq: r.seq,
            event_id: r.event_id.0,
            event_type: r
                .envelope
                .0
                .get("event_type")
                .and_then(Value::as_str)
                .map(|t| t.chars().take(200).collect()),
            envelope_bytes: r.envelope.0.to_string().len(),
            topic: r.topic,
            partition_key: r.partition_key,
            error: r.error,
            created_at: r.created_at.0,
            failed_at: r.failed_at.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadOutboxEvents {
    pub total: i64,
    pub events: Vec<DeadOutboxEvent>,
}

/// Outbox events the relay quarantined because they can never be published as they are (newest
/// first, `?limit=` up to 1000).
#[utoipa::path(get, path = "/api/v1/dlq/outbox", tag = "dlq",
    params(("limit" = Option<i64>, Query)),
    responses((status = 200, description = "Quarantined outbox events", body = Envelope<DeadOutboxEvents>)))]
pub async fn outbox(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req)?;
    let limit = q.int("limit", 50, 1, 1000)?;
    let (rows, total) = state.dlq.outbox_dead(limit).await?;
    Ok(ok(DeadOutboxEvents {
        total,
        events: rows.into_iter().map(DeadOutboxEvent::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxRedriveRequest {
    /// Rows to move back (their `seq`); absent = the oldest `limit` rows.
    pub seqs: Option<Vec<i64>>,
    /// Rows per call, 1..=1000 (default 100): redrive a large quarantine in batches.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxRedriveResponse {
    /// Rows moved back into the outbox (published within a second).
    pub redriven: usize,
    /// Rows still quarantined.
    pub remaining: i64,
}

/// Move quarantined outbox events back into the outbox once what refused them is fixed (e.g. the
/// broker's and `kafka.message_max_bytes` limits raised). One that still fails is quarantined again.
#[utoipa::path(post, path = "/api/v1/dlq/outbox/redrive", tag = "dlq", request_body = OutboxRedriveRequest,
    responses((status = 200, description = "Redrive result", body = Envelope<OutboxRedriveResponse>),
        (status = 422, description = "VALIDATION_ERROR")))]
pub async fn outbox_redrive(
    state: web::Data<AppState>,
    body: ValidJson<OutboxRedriveRequest>,
) -> Result<HttpResponse, ApiError> {
    let r = body.0;
    let limit = r.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    if r.seqs
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > 1000)
    {
        return Err(ApiError::validation(
            "seqs",
            "seqs must name between 1 and 1000 rows",
        ));
    }
    let (redriven, remaining) = state.dlq.redrive_outbox(r.seqs.as_deref(), limit).await?;
    Ok(ok(OutboxRedriveResponse {
        redriven,
        remaining,
    }))
}
