//! `event_outbox`, owned by the event backbone: rows are written in the same transaction as the state
//! change that causes them; the relay (`crate::events::relay`) claims the oldest rows in order,
//! publishes them and deletes them. A row in the table is an event not yet published.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::event_logs::EventLogRow;
use super::schema::{event_logs, event_outbox, event_outbox_dead};
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

/// What the sink made of a claimed batch: each row either delivered (with, in the embedded profile,
/// the `event_logs` row to record in the same transaction) or refused for good (with why).
#[derive(Default)]
pub struct Delivery {
    pub delivered: Vec<(OutboxRow, Option<EventLogRow>)>,
    pub rejected: Vec<(OutboxRow, String)>,
}

/// One relayed batch: how many rows were claimed, and which of them went to `event_outbox_dead`.
#[derive(Debug, Default)]
pub struct Relayed {
    pub claimed: usize,
    pub dead: Vec<(i64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The sink failed for a reason that can pass (broker unavailable, timeout): the rows stay.
    #[error("publishing failed: {0}")]
    Publish(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Inside the relay's transaction: a database error or the sink's transient failure.
enum TxError {
    Db(diesel::result::Error),
    Publish(String),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

fn is_transient(e: &diesel::result::Error) -> bool {
    super::failure::diesel_error_is_transient(e)
}

/// Claim the oldest unpublished rows (at most `limit`) and hand them to `publish`; then delete them,
/// record the event-log rows it returned (embedded profile: the in-process bus is the only consumer,
/// so each event is recorded exactly once, in the delete's transaction) and move every row it refused
/// — or whose event-log row the database refuses for good — to `event_outbox_dead` with the error.
/// One poisoned row therefore never holds the rows behind it.
///
/// PostgreSQL: one transaction that takes a transaction-scoped advisory lock (one publishing relay at a
/// time across instances, so per-key order holds between batches), then
/// `DELETE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING *`, publish, record, commit; if
/// `publish` fails (transiently) the transaction rolls back and the rows stay. SQLite (one process, one
/// relay): read, publish, then delete + record + quarantine in one `BEGIN IMMEDIATE` transaction;
/// holding a read transaction across the publish would make the later write fail with
/// `SQLITE_BUSY_SNAPSHOT`. Event-log rows go in with one statement per chunk inside a savepoint; if the
/// database refuses that for a permanent reason, row by row (a savepoint each) to find the culprit. A
/// crash after publishing but before the delete republishes the rows; consumers dedupe on `event_id`.
pub async fn relay_batch<F, Fut>(db: &Db, limit: i64, publish: F) -> Result<Relayed, RelayError>
where
    F: FnOnce(Vec<OutboxRow>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<Delivery, String>> + Send,
{
    let mut conn = db.conn().await?;
    let failed_at = DbTs(chrono::Utc::now());
    let result: Result<Relayed, TxError> = match &mut conn {
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
                    return Ok(Relayed::default());
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
                    return Ok(Relayed::default());
                }
                rows.sort_by_key(|r| r.seq);
                let claimed = rows.len();
                let Delivery {
                    delivered,
                    mut rejected,
                } = publish(rows).await.map_err(TxError::Publish)?;
                record_pg(conn, delivered, &mut rejected).await?;
                let dead = dead_rows(&rejected, failed_at);
                for chunk in dead.chunks(500) {
                    diesel::insert_into(event_outbox_dead::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                }
                Ok(Relayed {
                    claimed,
                    dead: rejected.into_iter().map(|(r, e)| (r.seq, e)).collect(),
                })
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
                    return Ok(Relayed::default());
                }
                let claimed = rows.len();
                let delivery = publish(rows).await.map_err(TxError::Publish)?;
                let dead = conn
                    .spawn_blocking(move |c| sqlite_sync::delete_and_record(c, delivery, failed_at))
                    .await?;
                Ok(Relayed { claimed, dead })
            }
            .await
        }
    };
    match result {
        Ok(r) => db.observe(Ok(r)).map_err(RelayError::Store),
        Err(TxError::Publish(e)) => Err(RelayError::Publish(e)),
        Err(TxError::Db(e)) => db
            .observe(Err(StoreError::from(e)))
            .map_err(RelayError::Store),
    }
}

/// Record the delivered rows' event-log rows (PostgreSQL, inside the relay's transaction): all at
/// once in a savepoint; if the database refuses that for good, row by row, and a row it refuses joins
/// `rejected`.
async fn record_pg(
    conn: &mut diesel_async::AsyncPgConnection,
    delivered: Vec<(OutboxRow, Option<EventLogRow>)>,
    rejected: &mut Vec<(OutboxRow, String)>,
) -> Result<(), diesel::result::Error> {
    let (rows, logs): (Vec<OutboxRow>, Vec<EventLogRow>) = delivered
        .into_iter()
        .filter_map(|(r, l)| l.map(|l| (r, l)))
        .unzip();
    if logs.is_empty() {
        return Ok(());
    }
    let logs = super::event_logs::bounded_rows(&logs);
    let all = conn
        .transaction(async |conn| {
            for chunk in logs.chunks(2000) {
                diesel::insert_into(event_logs::table)
                    .values(chunk)
                    .on_conflict(event_logs::event_id)
                    .do_nothing()
                    .execute(conn)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await;
    match all {
        Ok(()) => return Ok(()),
        Err(e) if is_transient(&e) => return Err(e),
        Err(_) => {}
    }
    for (row, log) in rows.into_iter().zip(logs.iter()) {
        let one = conn
            .transaction(async |conn| {
                diesel::insert_into(event_logs::table)
                    .values(log)
                    .on_conflict(event_logs::event_id)
                    .do_nothing()
                    .execute(conn)
                    .await
            })
            .await;
        match one {
            Ok(_) => {}
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => rejected.push((row, format!("event_logs refused the event: {e}"))),
        }
    }
    Ok(())
}

/// A row that can never be published, kept with why and when.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = event_outbox_dead)]
pub struct DeadOutboxRow {
    pub seq: i64,
    pub event_id: DbUuid,
    pub topic: String,
    pub partition_key: String,
    pub envelope: DbJson,
    pub created_at: DbTs,
    pub error: String,
    pub failed_at: DbTs,
}

/// The longest error text kept with a dead row.
const MAX_ERROR_CHARS: usize = 2000;

fn dead_rows(rejected: &[(OutboxRow, String)], failed_at: DbTs) -> Vec<DeadOutboxRow> {
    rejected
        .iter()
        .map(|(r, error)| DeadOutboxRow {
            seq: r.seq,
            event_id: r.event_id,
            topic: r.topic.clone(),
            partition_key: r.partition_key.clone(),
            envelope: r.envelope.clone(),
            created_at: r.created_at,
            // PostgreSQL text cannot hold NUL, and an error may quote the refused value.
            error: error
                .chars()
                .take(MAX_ERROR_CHARS)
                .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
                .collect(),
            failed_at,
        })
        .collect()
}

/// How many rows wait in `event_outbox_dead`.
pub async fn dead_count(db: &Db) -> Result<i64, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(
        conn,
        event_outbox_dead::table
            .count()
            .get_result::<i64>(conn)
            .await
    );
    db.observe(result.map_err(StoreError::from))
}

/// The most recently quarantined rows, newest first.
pub async fn dead_recent(db: &Db, limit: i64) -> Result<Vec<DeadOutboxRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        event_outbox_dead::table
            .order((
                event_outbox_dead::failed_at.desc(),
                event_outbox_dead::seq.desc(),
            ))
            .limit(limit)
            .select(DeadOutboxRow::as_select())
            .load::<DeadOutboxRow>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Move up to `limit` dead rows (the oldest first; only `seqs` when given) back into `event_outbox`,
/// in one transaction: they get new sequence numbers, so they are published after what is waiting.
/// Returns how many moved.
pub async fn redrive_dead(db: &Db, seqs: Option<&[i64]>, limit: i64) -> Result<usize, StoreError> {
    let mut conn = db.conn().await?;
    let now = DbTs(chrono::Utc::now());
    let result: Result<usize, diesel::result::Error> = db_run!(conn, {
        conn.transaction(async |conn| {
            let mut query = event_outbox_dead::table
                .order(event_outbox_dead::seq.asc())
                .limit(limit)
                .select(DeadOutboxRow::as_select())
                .into_boxed();
            if let Some(seqs) = seqs {
                query = query.filter(event_outbox_dead::seq.eq_any(seqs));
            }
            let rows: Vec<DeadOutboxRow> = query.load(conn).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let taken: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            diesel::delete(
                event_outbox_dead::table.filter(event_outbox_dead::seq.eq_any(&taken[..])),
            )
            .execute(conn)
            .await?;
            let back: Vec<NewOutboxEvent> = rows
                .into_iter()
                .map(|r| NewOutboxEvent {
                    event_id: r.event_id,
                    topic: r.topic,
                    partition_key: r.partition_key,
                    envelope: r.envelope,
                    created_at: now,
                })
                .collect();
            let n = back.len();
            insert_rows(conn, &back).await?;
            Ok(n)
        })
        .await
    });
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

    use super::{dead_rows, is_transient, Delivery};
    use crate::store::event_logs::{bounded_rows, EventLogRow};
    use crate::store::schema::{event_logs, event_outbox, event_outbox_dead};
    use crate::store::sql_types::DbTs;

    fn insert_logs(c: &mut SqliteConnection, logs: &[EventLogRow]) -> QueryResult<()> {
        for log in logs {
            diesel::insert_into(event_logs::table)
                .values(log)
                .on_conflict(event_logs::event_id)
                .do_nothing()
                .execute(c)?;
        }
        Ok(())
    }

    /// Delete the claimed rows, record the delivered ones' events and quarantine the refused ones,
    /// in one `BEGIN IMMEDIATE` transaction (see `relay_batch`). Returns the quarantined (seq, error).
    pub fn delete_and_record(
        c: &mut SqliteConnection,
        delivery: Delivery,
        failed_at: DbTs,
    ) -> QueryResult<Vec<(i64, String)>> {
        let Delivery {
            delivered,
            mut rejected,
        } = delivery;
        c.immediate_transaction(|c| {
            let seqs: Vec<i64> = delivered
                .iter()
                .map(|(r, _)| r.seq)
                .chain(rejected.iter().map(|(r, _)| r.seq))
                .collect();
            for chunk in seqs.chunks(1000) {
                diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(chunk)))
                    .execute(c)?;
            }
            let (rows, logs): (Vec<_>, Vec<EventLogRow>) = delivered
                .into_iter()
                .filter_map(|(r, l)| l.map(|l| (r, l)))
                .unzip();
            let logs = bounded_rows(&logs);
            match c.transaction(|c| insert_logs(c, &logs)) {
                Ok(()) => {}
                Err(e) if is_transient(&e) => return Err(e),
                Err(_) => {
                    for (row, log) in rows.into_iter().zip(logs.iter()) {
                        match c.transaction(|c| insert_logs(c, std::slice::from_ref(log))) {
                            Ok(()) => {}
                            Err(e) if is_transient(&e) => return Err(e),
                            Err(e) => {
                                rejected.push((row, format!("event_logs refused the event: {e}")))
                            }
                        }
                    }
                }
            }
            for dead in dead_rows(&rejected, failed_at) {
                diesel::insert_into(event_outbox_dead::table)
                    .values(&dead)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
            Ok(rejected.into_iter().map(|(r, e)| (r.seq, e)).collect())
        })
    }
}
