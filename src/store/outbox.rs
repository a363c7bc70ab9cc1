//! `event_outbox`, owned by the event backbone: rows are written in the same transaction as the state
//! change that causes them; the relay (`crate::events::relay`) claims unsent rows in order, publishes
//! them and marks them sent.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::event_outbox;
use super::sql_types::{DbJson, DbTs, DbUuid};
use super::{Db, StoreError};
use crate::db_run;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = event_outbox)]
pub struct NewOutboxEvent {
    pub event_id: DbUuid,
    pub topic: String,
    pub partition_key: String,
    pub envelope: DbJson,
    pub created_at: DbTs,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = event_outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: DbUuid,
    pub topic: String,
    pub partition_key: String,
    pub envelope: DbJson,
    pub created_at: DbTs,
}

/// Insert events on their own (for events that record no other state change).
pub async fn insert(db: &Db, events: Vec<NewOutboxEvent>) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut conn = db.conn().await?;
    let result = db_run!(conn, insert_rows(conn, &events).await);
    db.observe(result.map_err(StoreError::from))
}

/// Insert outbox rows on a connection (inside the caller's transaction, if any).
pub(crate) async fn insert_rows<C: InsertOutbox>(
    conn: &mut C,
    events: &[NewOutboxEvent],
) -> Result<(), diesel::result::Error> {
    conn.insert_outbox(events).await
}

pub(crate) trait InsertOutbox {
    async fn insert_outbox(
        &mut self,
        events: &[NewOutboxEvent],
    ) -> Result<(), diesel::result::Error>;
}
impl InsertOutbox for diesel_async::AsyncPgConnection {
    /// Multi-row INSERTs, 500 rows (3000 bind parameters) each.
    async fn insert_outbox(
        &mut self,
        events: &[NewOutboxEvent],
    ) -> Result<(), diesel::result::Error> {
        for chunk in events.chunks(500) {
            diesel::insert_into(event_outbox::table)
                .values(chunk)
                .execute(self)
                .await?;
        }
        Ok(())
    }
}
impl InsertOutbox for super::SqliteConn {
    /// One statement per row: in-process calls inside the caller's transaction.
    async fn insert_outbox(
        &mut self,
        events: &[NewOutboxEvent],
    ) -> Result<(), diesel::result::Error> {
        for event in events {
            diesel::insert_into(event_outbox::table)
                .values(event)
                .execute(self)
                .await?;
        }
        Ok(())
    }
}

/// Run `publish` over the oldest unsent rows (at most `limit`), then mark the published ones sent.
///
/// PostgreSQL: the rows are claimed with `FOR UPDATE SKIP LOCKED` inside one transaction, so several
/// instances never publish the same row concurrently. SQLite (one process, one relay): read, publish,
/// then mark in an autocommit `UPDATE`; holding a read transaction across the publish would make the
/// later write fail with `SQLITE_BUSY_SNAPSHOT` whenever a stamp commit came in between. If `publish`
/// fails, nothing is marked and the rows are retried; a crash after publishing but before marking
/// republishes them (consumers dedupe on `event_id`).
pub async fn relay_batch<F, Fut>(db: &Db, limit: i64, publish: F) -> Result<usize, StoreError>
where
    F: FnOnce(Vec<OutboxRow>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<Vec<i64>, String>> + Send,
{
    let mut conn = db.conn().await?;
    let now = DbTs(chrono::Utc::now());
    let result: Result<usize, diesel::result::Error> = match &mut conn {
        super::DbConn::Pg(conn) => {
            let conn: &mut diesel_async::AsyncPgConnection = conn;
            conn.transaction(async |conn| {
                let rows: Vec<OutboxRow> = event_outbox::table
                    .filter(event_outbox::sent_at.is_null())
                    .order(event_outbox::seq.asc())
                    .limit(limit)
                    .for_update()
                    .skip_locked()
                    .select(OutboxRow::as_select())
                    .load(conn)
                    .await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let sent = publish(rows)
                    .await
                    .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
                mark_sent!(conn, &sent, now)?;
                Ok(sent.len())
            })
            .await
        }
        super::DbConn::Sqlite(conn) => {
            let conn: &mut super::SqliteConn = conn;
            async {
                let rows: Vec<OutboxRow> = event_outbox::table
                    .filter(event_outbox::sent_at.is_null())
                    .order(event_outbox::seq.asc())
                    .limit(limit)
                    .select(OutboxRow::as_select())
                    .load(conn)
                    .await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let sent = publish(rows)
                    .await
                    .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
                mark_sent!(conn, &sent, now)?;
                Ok(sent.len())
            }
            .await
        }
    };
    db.observe(result.map_err(StoreError::from))
}

/// `UPDATE … SET sent_at` for the published rows, in chunks; the same SQL on both backends.
macro_rules! mark_sent {
    ($conn:expr, $seqs:expr, $now:expr) => {{
        let mut result: Result<(), diesel::result::Error> = Ok(());
        for chunk in $seqs.chunks(1000) {
            if let Err(e) =
                diesel::update(event_outbox::table.filter(event_outbox::seq.eq_any(chunk)))
                    .set(event_outbox::sent_at.eq(Some($now)))
                    .execute($conn)
                    .await
            {
                result = Err(e);
                break;
            }
        }
        result
    }};
}
use mark_sent;

/// Delete sent rows older than `older_than`.
pub async fn prune_sent(
    db: &Db,
    older_than: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    let mut conn = db.conn().await?;
    let cutoff = DbTs(older_than);
    let result = db_run!(conn, {
        diesel::delete(
            event_outbox::table
                .filter(event_outbox::sent_at.is_not_null())
                .filter(event_outbox::sent_at.lt(cutoff)),
        )
        .execute(conn)
        .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Unsent rows and the age of the oldest one.
pub async fn backlog(db: &Db) -> Result<(i64, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
    let mut conn = db.conn().await?;
    let result: Result<(i64, Option<DbTs>), diesel::result::Error> = db_run!(conn, {
        let count: i64 = event_outbox::table
            .filter(event_outbox::sent_at.is_null())
            .count()
            .get_result(conn)
            .await?;
        let oldest: Option<DbTs> = event_outbox::table
            .filter(event_outbox::sent_at.is_null())
            .order(event_outbox::seq.asc())
            .select(event_outbox::created_at)
            .first(conn)
            .await
            .optional()?;
        Ok((count, oldest))
    });
    let (count, oldest) = db.observe(result.map_err(StoreError::from))?;
    Ok((count, oldest.map(|t| t.0)))
}
