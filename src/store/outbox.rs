//! `event_outbox`, owned by the event backbone: rows are written in the same transaction as the state
//! change that causes them; the relay (`crate::events::relay`) claims the oldest rows in order,
//! publishes them and deletes them. A row in the table is an event not yet published.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::event_logs::EventLogRow;
use super::schema::{event_logs, event_outbox};
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

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
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

/// Builds the `event_logs` rows of published outbox rows (embedded profile).
pub type RecordFn<'a> = &'a (dyn Fn(&[OutboxRow]) -> Vec<EventLogRow> + Sync);

/// Run `publish` over the oldest unpublished rows (at most `limit`), then delete them — and, when
/// `record` gives event-log rows (embedded profile: the in-process bus is the only consumer), insert
/// those into `event_logs` in the same transaction as the delete, so each event is recorded exactly once.
///
/// PostgreSQL: one transaction that takes a transaction-scoped advisory lock (one publishing relay at a
/// time across instances, so per-key order holds between batches), then
/// `DELETE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING *`, publish, commit; if `publish`
/// fails the transaction rolls back and the rows stay. SQLite (one process, one relay): read, publish, then
/// delete (+ record) in one `BEGIN IMMEDIATE` transaction; holding a read transaction across the publish
/// would make the later write fail with `SQLITE_BUSY_SNAPSHOT`. A crash after publishing but before the
/// delete republishes the rows; consumers dedupe on `event_id`.
pub async fn relay_batch<F, Fut>(
    db: &Db,
    limit: i64,
    record: Option<RecordFn<'_>>,
    publish: F,
) -> Result<usize, StoreError>
where
    F: FnOnce(Vec<OutboxRow>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let mut conn = db.conn().await?;
    let result: Result<usize, diesel::result::Error> = match &mut conn {
        super::DbConn::Pg(conn) => {
            let conn: &mut diesel_async::AsyncPgConnection = conn;
            conn.transaction(async |conn| {
                // One publisher at a time across instances keeps per-key order between batches;
                // the others skip this round (they retry within a second).
                let leader: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "pg_try_advisory_xact_lock(7382610)",
                ))
                .get_result(conn)
                .await?;
                if !leader {
                    return Ok(0);
                }
                let mut rows: Vec<OutboxRow> = diesel::sql_query(
                    "DELETE FROM event_outbox WHERE seq IN \
                     (SELECT seq FROM event_outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) \
                     RETURNING seq, event_id, topic, partition_key, envelope, created_at",
                )
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .load(conn)
                .await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                rows.sort_by_key(|r| r.seq);
                let n = rows.len();
                let logs = record.map(|f| f(&rows));
                publish(rows)
                    .await
                    .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
                if let Some(logs) = logs {
                    for chunk in logs.chunks(2000) {
                        diesel::insert_into(event_logs::table)
                            .values(chunk)
                            .on_conflict(event_logs::event_id)
                            .do_nothing()
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(n)
            })
            .await
        }
        super::DbConn::Sqlite(conn) => {
            let conn: &mut super::SqliteConn = conn;
            async {
                let rows: Vec<OutboxRow> = event_outbox::table
                    .order(event_outbox::seq.asc())
                    .limit(limit)
                    .select(OutboxRow::as_select())
                    .load(conn)
                    .await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
                let logs = record.map(|f| f(&rows)).unwrap_or_default();
                publish(rows)
                    .await
                    .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
                let n = seqs.len();
                conn.spawn_blocking(move |c| sqlite_sync::delete_and_record(c, &seqs, &logs))
                    .await?;
                Ok(n)
            }
            .await
        }
    };
    db.observe(result.map_err(StoreError::from))
}

/// Unsent rows and the age of the oldest one.
pub async fn backlog(db: &Db) -> Result<(i64, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
    let mut conn = db.conn().await?;
    let result: Result<(i64, Option<DbTs>), diesel::result::Error> = db_run!(conn, {
        let count: i64 = event_outbox::table.count().get_result(conn).await?;
        let oldest: Option<DbTs> = event_outbox::table
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

mod sqlite_sync {
    use diesel::prelude::*;
    use diesel::SqliteConnection;

    use crate::store::event_logs::EventLogRow;
    use crate::store::schema::event_outbox;

    /// Delete published rows and record their events, in one `BEGIN IMMEDIATE` transaction.
    pub fn delete_and_record(
        c: &mut SqliteConnection,
        seqs: &[i64],
        logs: &[EventLogRow],
    ) -> QueryResult<()> {
        c.immediate_transaction(|c| {
            for chunk in seqs.chunks(1000) {
                diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(chunk)))
                    .execute(c)?;
            }
            crate::store::event_logs::sqlite_sync::insert_rows(c, logs)?;
            Ok(())
        })
    }
}
