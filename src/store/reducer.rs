//! `bridge_states`, `bridge_state_members`, `reducer_processed_events`, `bridge_state_transitions`:
//! owned by the reducer. One batch is one transaction: record the batch's event ids (only new ones
//! count), add distinct members (only new ones count), move each namespace's aggregate with
//! optimistic locking on `version`, record the FSM transition and the reducer's events (outbox).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::event_logs::EventLogRow;
use super::outbox::NewOutboxEvent;
use super::schema::{
    bridge_state_members, bridge_state_transitions, bridge_states, event_logs,
    reducer_processed_events,
};
use super::sql_types::{DbTs, DbUuid};
use super::{Db, StoreError};
use crate::db_run;
use crate::reducer::core::{aggregate, apply, Aggregate, StampFact};
use crate::reducer::fsm::{self, ReducerState};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = bridge_states)]
pub struct BridgeStateRow {
    pub namespace: String,
    pub total_stamps: i64,
    pub total_bytes: i64,
    pub distinct_file_types: i64,
    pub distinct_workflows: i64,
    pub first_seen: Option<DbTs>,
    pub last_seen: Option<DbTs>,
    pub window_start: Option<DbTs>,
    pub window_end: Option<DbTs>,
    pub window_stamps: i64,
    pub fsm_state: String,
    pub version: i64,
    pub updated_at: DbTs,
}

impl BridgeStateRow {
    pub fn to_aggregate(&self) -> Aggregate {
        Aggregate {
            namespace: self.namespace.clone(),
            total_stamps: self.total_stamps,
            total_bytes: self.total_bytes,
            distinct_file_types: self.distinct_file_types,
            distinct_workflows: self.distinct_workflows,
            first_seen: self.first_seen.map(|t| t.0),
            last_seen: self.last_seen.map(|t| t.0),
            window_start: self.window_start.map(|t| t.0),
            window_end: self.window_end.map(|t| t.0),
            window_stamps: self.window_stamps,
            fsm_state: self.fsm_state.clone(),
            version: self.version,
        }
    }

    fn from_aggregate(a: &Aggregate, now: DateTime<Utc>) -> Self {
        BridgeStateRow {
            namespace: a.namespace.clone(),
            total_stamps: a.total_stamps,
            total_bytes: a.total_bytes,
            distinct_file_types: a.distinct_file_types,
            distinct_workflows: a.distinct_workflows,
            first_seen: a.first_seen.map(DbTs),
            last_seen: a.last_seen.map(DbTs),
            window_start: a.window_start.map(DbTs),
            window_end: a.window_end.map(DbTs),
            window_stamps: a.window_stamps,
            fsm_state: a.fsm_state.clone(),
            version: a.version,
            updated_at: DbTs(now),
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = reducer_processed_events)]
struct ProcessedRow {
    event_id: DbUuid,
    namespace: String,
    processed_at: DbTs,
}

#[derive(Debug, Clone, Insertable, Queryable)]
#[diesel(table_name = bridge_state_members)]
struct MemberRow {
    namespace: String,
    kind: String,
    value: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = bridge_state_transitions)]
struct TransitionRow {
    namespace: String,
    from_state: String,
    to_state: String,
    trigger: String,
    event_count: i64,
    created_at: DbTs,
}

/// Result of one committed batch.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Events that were new (not seen before) and counted.
    pub counted: usize,
    /// The aggregates after the batch, for namespaces that changed.
    pub aggregates: Vec<Aggregate>,
}

/// Errors of one attempt: a lost optimistic-locking race is retried by the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("optimistic locking conflict on namespace {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Backend-specific bulk writes (multi-row on PostgreSQL, per row on SQLite inside the transaction).
trait ReducerWrites {
    async fn insert_processed(&mut self, rows: &[ProcessedRow]) -> QueryResult<Vec<DbUuid>>;
    async fn insert_members(&mut self, rows: &[MemberRow]) -> QueryResult<Vec<MemberRow>>;
    async fn insert_transitions(&mut self, rows: &[TransitionRow]) -> QueryResult<()>;
    /// Write new aggregate rows with optimistic locking; returns how many were written.
    async fn write_states(&mut self, rows: &[BridgeStateRow]) -> QueryResult<usize>;
}

impl ReducerWrites for diesel_async::AsyncPgConnection {
    /// One multi-row upsert: `ON CONFLICT (namespace) DO UPDATE … WHERE stored.version + 1 =
    /// excluded.version`.
    async fn write_states(&mut self, rows: &[BridgeStateRow]) -> QueryResult<usize> {
        use bridge_states::dsl as b;
        use diesel::query_dsl::methods::FilterDsl;
        use diesel::upsert::excluded;
        diesel::insert_into(bridge_states::table)
            .values(rows)
            .on_conflict(b::namespace)
            .do_update()
            .set((
                b::total_stamps.eq(excluded(b::total_stamps)),
                b::total_bytes.eq(excluded(b::total_bytes)),
                b::distinct_file_types.eq(excluded(b::distinct_file_types)),
                b::distinct_workflows.eq(excluded(b::distinct_workflows)),
                b::first_seen.eq(excluded(b::first_seen)),
                b::last_seen.eq(excluded(b::last_seen)),
                b::window_start.eq(excluded(b::window_start)),
                b::window_end.eq(excluded(b::window_end)),
                b::window_stamps.eq(excluded(b::window_stamps)),
                b::fsm_state.eq(excluded(b::fsm_state)),
                b::version.eq(excluded(b::version)),
                b::updated_at.eq(excluded(b::updated_at)),
            ))
            .filter((b::version + 1).eq(excluded(b::version)))
            .execute(self)
            .await
    }

    async fn insert_transitions(&mut self, rows: &[TransitionRow]) -> QueryResult<()> {
        for chunk in rows.chunks(5000) {
            diesel::insert_into(bridge_state_transitions::table)
                .values(chunk)
                .execute(self)
                .await?;
        }
        Ok(())
    }

    async fn insert_processed(&mut self, rows: &[ProcessedRow]) -> QueryResult<Vec<DbUuid>> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(5000) {
            out.extend(
                diesel::insert_into(reducer_processed_events::table)
                    .values(chunk)
                    .on_conflict(reducer_processed_events::event_id)
                    .do_nothing()
                    .returning(reducer_processed_events::event_id)
                    .get_results::<DbUuid>(self)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn insert_members(&mut self, rows: &[MemberRow]) -> QueryResult<Vec<MemberRow>> {
        let mut out = Vec::new();
        for chunk in rows.chunks(5000) {
            out.extend(
                diesel::insert_into(bridge_state_members::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .returning((
                        bridge_state_members::namespace,
                        bridge_state_members::kind,
                        bridge_state_members::value,
                    ))
                    .get_results::<MemberRow>(self)
                    .await?,
            );
        }
        Ok(out)
    }
}

impl ReducerWrites for super::SqliteConn {
    async fn write_states(&mut self, rows: &[BridgeStateRow]) -> QueryResult<usize> {
        let mut written = 0;
        for row in rows {
            written += if row.version == 1 {
                diesel::insert_into(bridge_states::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(self)
                    .await?
            } else {
                diesel::update(
                    bridge_states::table
                        .filter(bridge_states::namespace.eq(&row.namespace))
                        .filter(bridge_states::version.eq(row.version - 1)),
                )
                .set(row)
                .execute(self)
                .await?
            };
        }
        Ok(written)
    }

    async fn insert_transitions(&mut self, rows: &[TransitionRow]) -> QueryResult<()> {
        for row in rows {
            diesel::insert_into(bridge_state_transitions::table)
                .values(row)
                .execute(self)
                .await?;
        }
        Ok(())
    }

    async fn insert_processed(&mut self, rows: &[ProcessedRow]) -> QueryResult<Vec<DbUuid>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let n = diesel::insert_into(reducer_processed_events::table)
                .values(row)
                .on_conflict(reducer_processed_events::event_id)
                .do_nothing()
                .execute(self)
                .await?;
            if n == 1 {
                out.push(row.event_id);
            }
        }
        Ok(out)
    }

    async fn insert_members(&mut self, rows: &[MemberRow]) -> QueryResult<Vec<MemberRow>> {
        let mut out = Vec::new();
        for row in rows {
            let n = diesel::insert_into(bridge_state_members::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(self)
                .await?;
            if n == 1 {
                out.push(row.clone());
            }
        }
        Ok(out)
    }
}

/// One attempt at applying `facts` in one transaction. `events_for` builds the reducer's outbox
/// events from the batch's outcome (called inside the transaction).
pub async fn apply_facts(
    db: &Db,
    facts: &[StampFact],
    window: chrono::Duration,
    events_for: &(dyn Fn(&Applied) -> Vec<NewOutboxEvent> + Sync),
) -> Result<Applied, ApplyError> {
    if facts.is_empty() {
        return Ok(Applied::default());
    }
    let now = Utc::now();
    let processed: Vec<ProcessedRow> = facts
        .iter()
        .map(|f| ProcessedRow {
            event_id: DbUuid(f.event_id),
            namespace: f.namespace.clone(),
            processed_at: DbTs(now),
        })
        .collect();
    let mut conn = db.conn().await?;
    let result: Result<Applied, ApplyError> = db_run!(conn, {
        conn.transaction(async |conn| {
            let fresh: HashSet<uuid::Uuid> = conn
                .insert_processed(&processed)
                .await?
                .into_iter()
                .map(|u| u.0)
                .collect();
            let new_facts: Vec<StampFact> = facts
                .iter()
                .filter(|f| fresh.contains(&f.event_id))
                .cloned()
                .collect();
            let deltas = aggregate(&new_facts);
            let mut members = Vec::new();
            for (ns, d) in &deltas {
                for t in &d.file_types {
                    members.push(MemberRow {
                        namespace: ns.clone(),
                        kind: "file_type".into(),
                        value: t.clone(),
                    });
                }
                for w in &d.workflows {
                    members.push(MemberRow {
                        namespace: ns.clone(),
                        kind: "workflow".into(),
                        value: w.clone(),
                    });
                }
            }
            let added = conn.insert_members(&members).await?;
            let mut new_counts: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for m in &added {
                let e = new_counts.entry(m.namespace.as_str()).or_default();
                if m.kind == "file_type" {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            let namespaces: Vec<&str> = deltas.keys().map(String::as_str).collect();
            let current: Vec<BridgeStateRow> = bridge_states::table
                .filter(bridge_states::namespace.eq_any(&namespaces))
                .select(BridgeStateRow::as_select())
                .load(conn)
                .await
                .map_err(StoreError::from)?;
            let current: BTreeMap<String, BridgeStateRow> = current
                .into_iter()
                .map(|r| (r.namespace.clone(), r))
                .collect();
            let mut applied = Applied {
                counted: new_facts.len(),
                aggregates: Vec::new(),
            };
            let mut transitions = Vec::with_capacity(deltas.len());
            let mut states = Vec::with_capacity(deltas.len());
            for (ns, delta) in &deltas {
                let (nf, nw) = new_counts.get(ns.as_str()).copied().unwrap_or_default();
                let before = current
                    .get(ns)
                    .map(|r| r.to_aggregate())
                    .unwrap_or_else(|| Aggregate::empty(ns));
                let after = apply(&before, delta, nf, nw, window);
                states.push(BridgeStateRow::from_aggregate(&after, now));
                // The FSM path of this batch: <previous> → aggregating → persisted, each step checked.
                let from = ReducerState::parse(&before.fsm_state).unwrap_or(ReducerState::Idle);
                for (a, b, trigger) in [
                    (from, ReducerState::Aggregating, "batch_started"),
                    (
                        ReducerState::Aggregating,
                        ReducerState::Persisted,
                        "batch_applied",
                    ),
                ] {
                    let to = fsm::transition(a, b)
                        .map_err(|e| ApplyError::Store(StoreError::Failed(e.to_string())))?;
                    transitions.push(TransitionRow {
                        namespace: ns.clone(),
                        from_state: a.as_str().to_owned(),
                        to_state: to.as_str().to_owned(),
                        trigger: trigger.into(),
                        event_count: delta.stamps,
                        created_at: DbTs(now),
                    });
                }
                applied.aggregates.push(after);
            }
            // Every row's version is its stored version + 1 (1 for a new namespace): a row written by
            // someone else in between makes the count short, and the batch is retried.
            let written = conn.write_states(&states).await?;
            if written != states.len() {
                let ns = states
                    .iter()
                    .map(|r| r.namespace.clone())
                    .next()
                    .unwrap_or_default();
                return Err(ApplyError::Conflict(ns));
            }
            conn.insert_transitions(&transitions).await?;
            super::outbox::insert_rows(conn, &events_for(&applied))
                .await
                .map_err(StoreError::from)?;
            Ok(applied)
        })
        .await
    });
    match result {
        Ok(a) => {
            db.breaker().record_success();
            Ok(a)
        }
        Err(ApplyError::Store(e)) => {
            Err(ApplyError::Store(db.observe(Err::<(), _>(e)).unwrap_err()))
        }
        Err(e) => Err(e),
    }
}

impl From<diesel::result::Error> for ApplyError {
    fn from(e: diesel::result::Error) -> Self {
        ApplyError::Store(StoreError::Query(e))
    }
}

pub async fn get(
    db: &Db,
    namespace: &str,
) -> Result<Option<(BridgeStateRow, Vec<String>)>, StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<Option<(BridgeStateRow, Vec<String>)>> = db_run!(conn, {
        let row = bridge_states::table
            .filter(bridge_states::namespace.eq(namespace))
            .select(BridgeStateRow::as_select())
            .first::<BridgeStateRow>(conn)
            .await
            .optional()?;
        match row {
            None => Ok(None),
            Some(row) => {
                let types: Vec<String> = bridge_state_members::table
                    .filter(bridge_state_members::namespace.eq(namespace))
                    .filter(bridge_state_members::kind.eq("file_type"))
                    .order(bridge_state_members::value.asc())
                    .select(bridge_state_members::value)
                    .limit(1000)
                    .load(conn)
                    .await?;
                Ok(Some((row, types)))
            }
        }
    });
    db.observe(result.map_err(StoreError::from))
}

pub async fn list(
    db: &Db,
    namespaces: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<BridgeStateRow>, i64), StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<(Vec<BridgeStateRow>, i64)> = db_run!(conn, {
        let mut q = bridge_states::table
            .select(BridgeStateRow::as_select())
            .into_boxed();
        let mut c = bridge_states::table.count().into_boxed();
        if let Some(ns) = namespaces {
            q = q.filter(bridge_states::namespace.eq_any(ns));
            c = c.filter(bridge_states::namespace.eq_any(ns));
        }
        let total: i64 = c.get_result(conn).await?;
        let rows = q
            .order(bridge_states::namespace.asc())
            .limit(limit)
            .offset(offset)
            .load::<BridgeStateRow>(conn)
            .await?;
        Ok((rows, total))
    });
    db.observe(result.map_err(StoreError::from))
}

/// Recorded stamp events (of `topic`) the reducer has not aggregated yet (embedded catch-up).
pub async fn unprocessed_logged_events(
    db: &Db,
    topic: &str,
    limit: i64,
) -> Result<Vec<EventLogRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        event_logs::table
            .left_join(
                reducer_processed_events::table
                    .on(reducer_processed_events::event_id.eq(event_logs::event_id)),
            )
            .filter(reducer_processed_events::event_id.is_null())
            .filter(event_logs::topic.eq(topic))
            .order(event_logs::event_timestamp.asc())
            .limit(limit)
            .select(EventLogRow::as_select())
            .load::<EventLogRow>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Mark an event processed without counting it: the reducer's way to set aside a fact the database
/// refuses for good, so the embedded catch-up does not return it forever.
pub async fn mark_skipped(db: &Db, fact: &StampFact) -> Result<(), StoreError> {
    let mut conn = db.conn().await?;
    let row = ProcessedRow {
        event_id: DbUuid(fact.event_id),
        namespace: fact.namespace.clone(),
        processed_at: DbTs(Utc::now()),
    };
    let result = db_run!(conn, {
        diesel::insert_into(reducer_processed_events::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from)).map(|_| ())
}
