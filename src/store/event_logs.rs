//! `event_logs`, owned by the event tracer: every event seen, recorded once per `event_id`
//! (`ON CONFLICT DO NOTHING`, so redeliveries are no-ops).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::event_logs;
use super::sql_types::{DbJson, DbTs, DbUuid};
use super::{Db, StoreError};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = event_logs)]
pub struct EventLogRow {
    pub event_id: DbUuid,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub event_type: String,
    pub topic: String,
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
    pub event_timestamp: DbTs,
    pub status: String,
    pub processing_time_ms: Option<f64>,
    pub namespace: Option<String>,
    pub payload: DbJson,
    pub metadata: DbJson,
    pub recorded_at: DbTs,
}

/// Insert rows, ignoring event ids already recorded. Returns how many were new.
pub async fn insert_batch(db: &Db, rows: &[EventLogRow]) -> Result<usize, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut conn = db.conn().await?;
    let result: Result<usize, diesel::result::Error> = match &mut conn {
        super::DbConn::Pg(conn) => {
            let conn: &mut diesel_async::AsyncPgConnection = conn;
            let mut n = 0;
            // 14 parameters per row.
            for chunk in rows.chunks(2000) {
                n += diesel::insert_into(event_logs::table)
                    .values(chunk)
                    .on_conflict(event_logs::event_id)
                    .do_nothing()
                    .execute(conn)
                    .await?;
            }
            Ok(n)
        }
        super::DbConn::Sqlite(conn) => {
            let rows = rows.to_vec();
            conn.spawn_blocking(move |c| sqlite_sync::insert(c, &rows))
                .await
        }
    };
    db.observe(result.map_err(StoreError::from))
}

pub(crate) mod sqlite_sync {
    use diesel::prelude::*;
    use diesel::SqliteConnection;

    use super::EventLogRow;
    use crate::store::schema::event_logs;

    /// Insert inside the caller's transaction (or autocommit).
    pub fn insert_rows(c: &mut SqliteConnection, rows: &[EventLogRow]) -> QueryResult<usize> {
        let mut n = 0;
        for row in rows {
            n += diesel::insert_into(event_logs::table)
                .values(row)
                .on_conflict(event_logs::event_id)
                .do_nothing()
                .execute(c)?;
        }
        Ok(n)
    }

    pub fn insert(c: &mut SqliteConnection, rows: &[EventLogRow]) -> QueryResult<usize> {
        c.immediate_transaction(|c| insert_rows(c, rows))
    }
}

/// Rows recorded for one event id (tests and the tracer API).
pub async fn count_for(db: &Db, event_id: uuid::Uuid) -> Result<i64, StoreError> {
    let mut conn = db.conn().await?;
    let id = DbUuid(event_id);
    let result = crate::db_run!(conn, {
        event_logs::table
            .filter(event_logs::event_id.eq(id))
            .count()
            .get_result::<i64>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Total rows (metrics, tests).
pub async fn count_all(db: &Db) -> Result<i64, StoreError> {
    let mut conn = db.conn().await?;
    let result = crate::db_run!(
        conn,
        event_logs::table.count().get_result::<i64>(conn).await
    );
    db.observe(result.map_err(StoreError::from))
}

/// Most recent rows (newest first), for tests and the tracer's first API.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<EventLogRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = crate::db_run!(conn, {
        event_logs::table
            .order(event_logs::event_timestamp.desc())
            .limit(limit)
            .select(EventLogRow::as_select())
            .load::<EventLogRow>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// The latest `limit` events of one session on one topic, returned oldest first.
pub async fn session_events(
    db: &Db,
    session_id: &str,
    topic: &str,
    limit: i64,
) -> Result<Vec<EventLogRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = crate::db_run!(conn, {
        event_logs::table
            .filter(event_logs::session_id.eq(session_id))
            .filter(event_logs::topic.eq(topic))
            .order(event_logs::event_timestamp.desc())
            .limit(limit)
            .select(EventLogRow::as_select())
            .load::<EventLogRow>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
        .map(|mut rows| {
            rows.reverse();
            rows
        })
}
