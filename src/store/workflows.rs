//! `workflow_executions`, `workflow_steps`, `fsm_transitions`: owned by the workflow orchestrator.
//! Every state change is written with its events (outbox) in one transaction, and only if the stored
//! state is still the expected one (compare-and-set), so two instances can never both move a workflow.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::Value;

use super::outbox::NewOutboxEvent;
use super::schema::{fsm_transitions, workflow_executions, workflow_steps};
use super::sql_types::{DbJson, DbTs, DbUuid};
use super::{Db, StoreError};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workflow_executions)]
pub struct WorkflowRow {
    pub id: DbUuid,
    pub correlation_id: DbUuid,
    pub contract: String,
    pub namespace: String,
    pub state: String,
    pub input: DbJson,
    pub result: Option<DbJson>,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DbTs>,
    pub created_at: DbTs,
    pub updated_at: DbTs,
    pub completed_at: Option<DbTs>,
}

/// A workflow as listings show it: the summary columns only, never its `input` (up to
/// `stamping.max_content_bytes`) or `result`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workflow_executions)]
pub struct WorkflowSummaryRow {
    pub id: DbUuid,
    pub correlation_id: DbUuid,
    pub contract: String,
    pub namespace: String,
    pub state: String,
    pub error: Option<String>,
    pub created_at: DbTs,
    pub updated_at: DbTs,
    pub completed_at: Option<DbTs>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = workflow_steps)]
#[diesel(treat_none_as_null = true)]
pub struct StepRow {
    pub workflow_id: DbUuid,
    pub name: String,
    pub status: String,
    pub attempts: i32,
    pub duration_ms: Option<f64>,
    pub error: Option<String>,
    pub output: Option<DbJson>,
    pub started_at: Option<DbTs>,
    pub completed_at: Option<DbTs>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fsm_transitions)]
pub struct TransitionRow {
    pub id: i64,
    pub workflow_id: DbUuid,
    pub from_state: String,
    pub to_state: String,
    pub trigger: String,
    pub created_at: DbTs,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = fsm_transitions)]
struct NewTransition {
    workflow_id: DbUuid,
    from_state: String,
    to_state: String,
    trigger: String,
    created_at: DbTs,
}

pub async fn insert(db: &Db, row: &WorkflowRow) -> Result<(), StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(
        conn,
        diesel::insert_into(workflow_executions::table)
            .values(row)
            .execute(conn)
            .await
    );
    db.observe(result.map(|_| ()).map_err(StoreError::from))
}

/// Outcome fields written with a transition.
#[derive(Debug, Clone, Default)]
pub struct TransitionWrite {
    pub result: Option<Value>,
    pub error: Option<String>,
    pub terminal: bool,
}

/// Move workflow `id` from `from` to `to` (only if it is still in `from`), record the transition and
/// its events, in one transaction. Returns false if the workflow was not in `from`.
pub async fn transition(
    db: &Db,
    id: uuid::Uuid,
    from: &str,
    to: &str,
    trigger: &str,
    write: TransitionWrite,
    events: Vec<NewOutboxEvent>,
) -> Result<bool, StoreError> {
    let now = DbTs(Utc::now());
    let id = DbUuid(id);
    let mut conn = db.conn().await?;
    let result: QueryResult<bool> = db_run!(conn, {
        conn.transaction(async |conn| {
            let n = diesel::update(
                workflow_executions::table
                    .filter(workflow_executions::id.eq(id))
                    .filter(workflow_executions::state.eq(from)),
            )
            .set((
                workflow_executions::state.eq(to),
                workflow_executions::updated_at.eq(now),
                workflow_executions::result.eq(write.result.map(DbJson)),
                workflow_executions::error.eq(write.error),
                workflow_executions::completed_at.eq(write.terminal.then_some(now)),
            ))
            .execute(conn)
            .await?;
            if n != 1 {
                return Ok(false);
            }
            diesel::insert_into(fsm_transitions::table)
                .values(&NewTransition {
                    workflow_id: id,
                    from_state: from.to_owned(),
                    to_state: to.to_owned(),
                    trigger: trigger.to_owned(),
                    created_at: now,
                })
                .execute(conn)
                .await?;
            super::outbox::insert_rows(conn, &events).await?;
            Ok(true)
        })
        .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Insert or update one step's row, with its events, in one transaction.
pub async fn save_step(
    db: &Db,
    step: &StepRow,
    events: Vec<NewOutboxEvent>,
) -> Result<(), StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<()> = db_run!(conn, {
        conn.transaction(async |conn| {
            diesel::insert_into(workflow_steps::table)
                .values(step)
                .on_conflict((workflow_steps::workflow_id, workflow_steps::name))
                .do_update()
                .set(step)
                .execute(conn)
                .await?;
            super::outbox::insert_rows(conn, &events).await?;
            Ok(())
        })
        .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// A workflow with its steps and FSM transitions.
pub type WorkflowDetail = (WorkflowRow, Vec<StepRow>, Vec<TransitionRow>);

pub async fn get(db: &Db, id: uuid::Uuid) -> Result<Option<WorkflowDetail>, StoreError> {
    let id = DbUuid(id);
    let mut conn = db.conn().await?;
    let result: QueryResult<Option<WorkflowDetail>> = db_run!(conn, {
        let row = workflow_executions::table
            .filter(
                workflow_executions::id
                    .eq(id)
                    .or(workflow_executions::correlation_id.eq(id)),
            )
            .select(WorkflowRow::as_select())
            .first::<WorkflowRow>(conn)
            .await
            .optional()?;
        match row {
            None => Ok(None),
            Some(row) => {
                let steps = workflow_steps::table
                    .filter(workflow_steps::workflow_id.eq(row.id))
                    .order((workflow_steps::started_at.asc(), workflow_steps::name.asc()))
                    .select(StepRow::as_select())
                    .load::<StepRow>(conn)
                    .await?;
                let transitions = fsm_transitions::table
                    .filter(fsm_transitions::workflow_id.eq(row.id))
                    .order(fsm_transitions::id.asc())
                    .select(TransitionRow::as_select())
                    .load::<TransitionRow>(conn)
                    .await?;
                Ok(Some((row, steps, transitions)))
            }
        }
    });
    db.observe(result.map_err(StoreError::from))
}

/// Workflows, newest first, with the total matching the filters (summary columns only).
pub async fn list(
    db: &Db,
    namespace: Option<&str>,
    state: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<WorkflowSummaryRow>, i64), StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<(Vec<WorkflowSummaryRow>, i64)> = db_run!(conn, {
        let mut q = workflow_executions::table
            .select(WorkflowSummaryRow::as_select())
            .into_boxed();
        let mut c = workflow_executions::table.count().into_boxed();
        if let Some(ns) = namespace {
            q = q.filter(workflow_executions::namespace.eq(ns));
            c = c.filter(workflow_executions::namespace.eq(ns));
        }
        if let Some(st) = state {
            q = q.filter(workflow_executions::state.eq(st));
            c = c.filter(workflow_executions::state.eq(st));
        }
        let total: i64 = c.get_result(conn).await?;
        let rows = q
            .order((
                workflow_executions::created_at.desc(),
                workflow_executions::id.desc(),
            ))
            .limit(limit)
            .offset(offset)
            .load::<WorkflowSummaryRow>(conn)
            .await?;
        Ok((rows, total))
    });
    db.observe(result.map_err(StoreError::from))
}

/// A workflow taken over by [`claim_expired`] (its id and state; the engine loads the rest).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workflow_executions)]
pub struct Claimed {
    pub id: DbUuid,
    pub state: String,
}

/// Take over at most `limit` unfinished workflows whose lease has expired (or that never had one),
/// oldest first: they belong to `owner` until `until`. Returns them. The expiry is checked again by
/// the `UPDATE` itself, so two instances claiming at once never both get a workflow.
pub async fn claim_expired(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let mut conn = db.conn().await?;
    let (now, until) = (DbTs(now), DbTs(until));
    let expired = || {
        workflow_executions::state
            .eq_any(["pending", "processing"])
            .and(
                workflow_executions::lease_expires_at
                    .is_null()
                    .or(workflow_executions::lease_expires_at.lt(now)),
            )
    };
    let result: QueryResult<Vec<Claimed>> = db_run!(
        conn,
        async {
            // Candidates first (bounded, oldest first), then the claim, which checks the expiry again.
            let candidates: Vec<DbUuid> = workflow_executions::table
                .filter(expired())
                .order(workflow_executions::created_at.asc())
                .select(workflow_executions::id)
                .limit(limit)
                .load(conn)
                .await?;
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(
                workflow_executions::table
                    .filter(workflow_executions::id.eq_any(&candidates))
                    .filter(expired()),
            )
            .set((
                workflow_executions::lease_owner.eq(Some(owner)),
                workflow_executions::lease_expires_at.eq(Some(until)),
            ))
            .returning(Claimed::as_returning())
            .get_results::<Claimed>(conn)
            .await
        }
        .await
    );
    db.observe(result.map_err(StoreError::from))
}

/// Extend the lease of `owner`'s running workflows.
pub async fn renew_leases(
    db: &Db,
    owner: &str,
    ids: &[uuid::Uuid],
    until: DateTime<Utc>,
) -> Result<usize, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<DbUuid> = ids.iter().copied().map(DbUuid).collect();
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        diesel::update(
            workflow_executions::table
                .filter(workflow_executions::id.eq_any(&ids))
                .filter(workflow_executions::lease_owner.eq(owner)),
        )
        .set(workflow_executions::lease_expires_at.eq(Some(DbTs(until))))
        .execute(conn)
        .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Store the intelligence data on a stamp (the `persist` step).
pub async fn set_stamp_intelligence(
    db: &Db,
    stamp_id: uuid::Uuid,
    data: Value,
) -> Result<usize, StoreError> {
    use super::schema::metadata_stamps;
    let mut conn = db.conn().await?;
    let id = DbUuid(stamp_id);
    let data = Some(DbJson(data));
    let now = DbTs(Utc::now());
    let result = db_run!(conn, {
        diesel::update(metadata_stamps::table.filter(metadata_stamps::id.eq(id)))
            .set((
                metadata_stamps::intelligence_data.eq(data.clone()),
                metadata_stamps::updated_at.eq(now),
            ))
            .execute(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Workflows created since `since`, per state (dashboard overview; bounded by the created_at index).
pub async fn state_counts(db: &Db, since: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError> {
    let mut conn = db.conn().await?;
    let since = DbTs(since);
    let result = db_run!(conn, {
        workflow_executions::table
            .filter(workflow_executions::created_at.ge(since))
            .group_by(workflow_executions::state)
            .select((workflow_executions::state, diesel::dsl::count_star()))
            .load::<(String, i64)>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from)).map(|mut v| {
        v.sort();
        v
    })
}
