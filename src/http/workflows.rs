//! Handlers of the workflow orchestrator: `POST /api/v1/workflows` (202, or `?wait=true` for the
//! result), `GET /api/v1/workflows/{id}`, `GET /api/v1/workflows`, and the original's
//! `POST /workflow/submit` and `GET /workflow/{id}/status`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::dto::StampTypeDto;
use super::envelope::{ok, respond, Envelope, EnvelopeStatus};
use super::error::ApiError;
use super::extract::ValidJson;
use crate::json::FreeObject;
use crate::stamping::{check_length, check_metadata_ids, MAX_ID_BYTES, MAX_PATH_BYTES};
use crate::store::workflows::{StepRow, TransitionRow, WorkflowRow, WorkflowSummaryRow};
use crate::web::error::workflow_not_found;
use crate::web::links;
use crate::web::params::{self, IdParam, Query};
use crate::web::AppState;
use crate::workflow::engine::WorkflowInput;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    pub content: Option<String>,
    pub content_base64: Option<String>,
    pub file_path: Option<String>,
    pub content_type: Option<String>,
    pub namespace: Option<String>,
    pub stamp_type: Option<StampTypeDto>,
    #[serde(default)]
    pub enable_intelligence: bool,
    pub intelligence_context: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<FreeObject>,
    pub contract: Option<String>,
}

fn input_of(state: &AppState, r: WorkflowRequest) -> Result<(String, WorkflowInput), ApiError> {
    let content = match (r.content, r.content_base64) {
        (Some(c), None) => c,
        (None, Some(b)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| {
                    ApiError::validation("content_base64", format!("not valid base64: {e}"))
                })?;
            String::from_utf8(bytes)
                .map_err(|_| ApiError::validation("content_base64", "must decode to UTF-8 text"))?
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "content",
                "give content or content_base64, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::validation(
                "content",
                "content (or content_base64) is required",
            ))
        }
    };
    if content.trim().is_empty() {
        return Err(ApiError::validation("content", "must not be empty"));
    }
    state.stamping.check_content_size("content", &content)?;
    let namespace = state
        .stamping
        .namespace(r.namespace.as_deref(), "namespace")?;
    let bounded = [
        ("file_path", r.file_path.as_deref(), MAX_PATH_BYTES),
        ("content_type", r.content_type.as_deref(), MAX_ID_BYTES),
        ("contract", r.contract.as_deref(), MAX_ID_BYTES),
        (
            "intelligence_context",
            r.intelligence_context.as_deref(),
            state.settings.stamping.max_metadata_bytes,
        ),
    ];
    for (field, value, limit) in bounded {
        if let Some(v) = value {
            check_length(field, v, limit)?;
        }
    }
    if let Some(m) = &r.metadata {
        check_metadata_ids(&m.0, "metadata")?;
    }
    if r.file_path.as_deref().is_some_and(|p| p.contains('\0')) {
        return Err(ApiError::validation(
            "file_path",
            "must not contain NUL characters",
        ));
    }
    let stamp_type = match r.stamp_type.unwrap_or_default() {
        StampTypeDto::Lightweight => "lightweight",
        StampTypeDto::Rich => "rich",
    };
    Ok((
        r.contract.unwrap_or_else(|| "metadata_stamping".into()),
        WorkflowInput {
            content,
            file_path: r.file_path,
            content_type: r.content_type,
            namespace: namespace.to_string(),
            stamp_type: stamp_type.into(),
            enable_intelligence: r.enable_intelligence,
            intelligence_context: r.intelligence_context,
            metadata: r.metadata.map(FreeObject::into_inner).unwrap_or_default(),
        },
    ))
}

/// A workflow just accepted (202).
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowAccepted {
    pub workflow_id: Uuid,
    pub correlation_id: Uuid,
    /// pending
    pub state: String,
    /// Where to follow it.
    pub status_url: String,
}

/// A workflow with its steps and FSM transitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDetail {
    pub workflow_id: Uuid,
    pub correlation_id: Uuid,
    pub contract: String,
    pub namespace: String,
    /// pending | processing | completed | failed
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// From creation to completion (absent while running).
    pub duration_ms: Option<f64>,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub step_count: usize,
    pub steps: Vec<StepDto>,
    pub transitions: Vec<TransitionDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepDto {
    pub name: String,
    pub status: String,
    pub attempts: i32,
    pub duration_ms: Option<f64>,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionDto {
    pub from_state: String,
    pub to_state: String,
    pub trigger: String,
    pub at: DateTime<Utc>,
}

/// One workflow of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowSummary {
    pub workflow_id: Uuid,
    pub correlation_id: Uuid,
    pub namespace: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub workflows: Vec<WorkflowSummary>,
}

impl From<&StepRow> for StepDto {
    fn from(s: &StepRow) -> Self {
        StepDto {
            name: s.name.clone(),
            status: s.status.clone(),
            attempts: s.attempts,
            duration_ms: s.duration_ms,
            error: s.error.clone(),
            output: s.output.as_ref().map(|o| o.0.clone()),
            started_at: s.started_at.map(|t| t.0),
            completed_at: s.completed_at.map(|t| t.0),
        }
    }
}

impl From<&TransitionRow> for TransitionDto {
    fn from(t: &TransitionRow) -> Self {
        TransitionDto {
            from_state: t.from_state.clone(),
            to_state: t.to_state.clone(),
            trigger: t.trigger.clone(),
            at: t.created_at.0,
        }
    }
}

impl From<&WorkflowSummaryRow> for WorkflowSummary {
    fn from(w: &WorkflowSummaryRow) -> Self {
        WorkflowSummary {
            workflow_id: w.id.0,
            correlation_id: w.correlation_id.0,
            namespace: w.namespace.clone(),
            state: w.state.clone(),
            created_at: w.created_at.0,
            completed_at: w.completed_at.map(|t| t.0),
            error: w.error.clone(),
        }
    }
}

fn detail(wf: WorkflowRow, steps: &[StepRow], transitions: &[TransitionRow]) -> WorkflowDetail {
    WorkflowDetail {
        workflow_id: wf.id.0,
        correlation_id: wf.correlation_id.0,
        duration_ms: wf
            .completed_at
            .map(|c| (c.0 - wf.created_at.0).num_microseconds().unwrap_or(0) as f64 / 1000.0),
        contract: wf.contract,
        namespace: wf.namespace,
        state: wf.state,
        created_at: wf.created_at.0,
        updated_at: wf.updated_at.0,
        completed_at: wf.completed_at.map(|t| t.0),
        error: wf.error,
        result: wf.result.map(|r| r.0),
        step_count: steps.len(),
        steps: steps.iter().map(StepDto::from).collect(),
        transitions: transitions.iter().map(TransitionDto::from).collect(),
    }
}

async fn load(state: &AppState, id: Uuid) -> Result<WorkflowDetail, ApiError> {
    match crate::store::workflows::get(&state.db, id).await? {
        Some((wf, steps, transitions)) => Ok(detail(wf, &steps, &transitions)),
        None => Err(workflow_not_found(id)),
    }
}

async fn submit_inner(
    state: web::Data<AppState>,
    body: WorkflowRequest,
    wait: bool,
) -> Result<HttpResponse, ApiError> {
    let (contract, input) = input_of(&state, body)?;
    // Admission control: refused (429) before anything is stored when this instance already holds
    // `workflow.concurrency + workflow.queue_capacity` workflows.
    let (wf, ticket) = state
        .workflows
        // The workflow id is its correlation id (unique per workflow, whatever X-Correlation-ID a
        // caller reuses; that one stays in the request's logs).
        .submit(&contract, input, None)
        .await?;
    let id = wf.id.0;
    if wait {
        state.workflows.run_admitted(ticket).await?;
        return Ok(ok(load(&state, id).await?));
    }
    let engine = state.workflows.clone();
    tokio::spawn(async move {
        if let Err(e) = engine.run_admitted(ticket).await {
            tracing::warn!(workflow_id = %id, error = %e, "workflow failed to run");
        }
    });
    Ok(respond(
        StatusCode::ACCEPTED,
        EnvelopeStatus::Success,
        Some(WorkflowAccepted {
            workflow_id: id,
            correlation_id: wf.correlation_id.0,
            state: wf.state,
            status_url: links::api::workflow(id),
        }),
        None,
        Some("workflow accepted".into()),
    ))
}

/// Start a stamping workflow (`?wait=true` answers with the finished workflow).
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = WorkflowRequest,
    params(("wait" = Option<bool>, Query)),
    responses((status = 202, description = "Accepted, with the workflow id", body = Envelope<WorkflowAccepted>),
        (status = 200, description = "Finished workflow (wait=true)", body = Envelope<WorkflowDetail>),
        (status = 400, description = "NAMESPACE_INVALID / UNKNOWN_CONTRACT"), (status = 413, description = "PAYLOAD_TOO_LARGE"),
        (status = 422, description = "VALIDATION_ERROR"),
        (status = 429, description = "WORKFLOW_QUEUE_FULL (Retry-After)")))]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ValidJson<WorkflowRequest>,
) -> Result<HttpResponse, ApiError> {
    let wait = Query::parse(&req)?.flag("wait")?;
    submit_inner(state, body.0, wait).await
}

/// Original route: submit without waiting.
pub async fn submit_compat(
    state: web::Data<AppState>,
    body: ValidJson<WorkflowRequest>,
) -> Result<HttpResponse, ApiError> {
    submit_inner(state, body.0, false).await
}

/// A workflow: state, steps, FSM transitions, result (by workflow id or correlation id).
#[utoipa::path(get, path = "/api/v1/workflows/{workflow_id}", tag = "workflows",
    params(("workflow_id" = String, Path)),
    responses((status = 200, description = "The workflow", body = Envelope<WorkflowDetail>),
        (status = 400, description = "INVALID_WORKFLOW_ID"), (status = 404, description = "WORKFLOW_NOT_FOUND")))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::uuid(&path.into_inner(), IdParam::WorkflowId)?;
    Ok(ok(load(&state, id).await?))
}

/// Workflows, newest first (`?namespace=&state=&limit=&offset=`).
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    params(("namespace" = Option<String>, Query), ("state" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "Workflows", body = Envelope<WorkflowList>),
        (status = 422, description = "VALIDATION_ERROR (limit, offset, state)")))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req)?;
    let limit = q.int("limit", 50, 1, 1000)?;
    let offset = q.int("offset", 0, 0, i64::MAX / 2)?;
    if let Some(ns) = q.raw("namespace") {
        state.stamping.namespace(Some(ns), "namespace")?;
    }
    let st = q.workflow_state()?;
    let (rows, total) =
        crate::store::workflows::list(&state.db, q.raw("namespace"), st, limit, offset).await?;
    Ok(ok(WorkflowList {
        total,
        limit,
        offset,
        workflows: rows.iter().map(WorkflowSummary::from).collect(),
    }))
}
