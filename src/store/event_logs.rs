//! `event_logs`, owned by the event tracer: every event seen, recorded once per `event_id`
//! (`ON CONFLICT DO NOTHING`, so redeliveries are no-ops).
//!
//! Indexed text (`session_id`, `correlation_id`, `topic`, `namespace`, and `event_type`/`status`,
//! which a partial index's predicate reads) is cut at [`MAX_INDEXED_CHARS`] characters on the way in,
//! so no value — whatever an event carries — can exceed an index row (PostgreSQL refuses a B-tree
//! entry over ~2.7 KB, and one such row would otherwise fail its whole batch forever). The payload
//! keeps the full value; the tracer's queries accept ids of at most the same length, so a long id
//! is found by its first 512 characters.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
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

/// The longest indexed text kept (characters; at most 2 KiB in UTF-8, well inside an index row).
pub const MAX_INDEXED_CHARS: usize = 512;

fn cut(s: &mut String) {
    if let Some((at, _)) = s.char_indices().nth(MAX_INDEXED_CHARS) {
        s.truncate(at);
    }
}

fn too_long(s: &str) -> bool {
    // Bytes first: a string of at most MAX_INDEXED_CHARS bytes cannot have more characters.
    s.len() > MAX_INDEXED_CHARS && s.chars().nth(MAX_INDEXED_CHARS).is_some()
}

impl EventLogRow {
    fn is_bounded(&self) -> bool {
        ![
            self.session_id.as_deref(),
            self.correlation_id.as_deref(),
            self.namespace.as_deref(),
            Some(self.event_type.as_str()),
            Some(self.topic.as_str()),
            Some(self.status.as_str()),
        ]
        .into_iter()
        .flatten()
        .any(too_long)
    }

    /// The row with every indexed text cut at [`MAX_INDEXED_CHARS`] characters.
    pub fn bounded(mut self) -> Self {
        if !self.is_bounded() {
            for s in [
                &mut self.session_id,
                &mut self.correlation_id,
                &mut self.namespace,
            ]
            .into_iter()
            .flatten()
            {
                cut(s);
            }
            cut(&mut self.event_type);
            cut(&mut self.topic);
            cut(&mut self.status);
        }
        self
    }
}

/// `rows`, copied only if one of them needs cutting.
pub(crate) fn bounded_rows(rows: &[EventLogRow]) -> Cow<'_, [EventLogRow]> {
    if rows.iter().all(EventLogRow::is_bounded) {
        Cow::Borrowed(rows)
    } else {
        Cow::Owned(rows.iter().cloned().map(EventLogRow::bounded).collect())
    }
}

/// Insert rows, ignoring event ids already recorded. Returns how many were new.
pub async fn insert_batch(db: &Db, rows: &[EventLogRow]) -> Result<usize, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let rows = bounded_rows(rows);
    let rows = rows.as_ref();
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
        for row in super::bounded_rows(rows).iter() {
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

/// Filters of the event listing; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub topic: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub namespace: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Keyset position in the newest-first order `(timestamp desc, event_id desc)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub timestamp: DateTime<Utc>,
    pub event_id: uuid::Uuid,
}

/// Events matching `filter`, newest first, strictly after `after` in that order.
pub async fn list(
    db: &Db,
    filter: &EventFilter,
    after: Option<EventCursor>,
    limit: i64,
) -> Result<Vec<EventLogRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = crate::db_run!(conn, {
        let mut q = event_logs::table
            .select(EventLogRow::as_select())
            .into_boxed();
        if let Some(v) = &filter.topic {
            q = q.filter(event_logs::topic.eq(v.clone()));
        }
        if let Some(v) = &filter.event_type {
            q = q.filter(event_logs::event_type.eq(v.clone()));
        }
        if let Some(v) = &filter.status {
            q = q.filter(event_logs::status.eq(v.clone()));
        }
        if let Some(v) = &filter.namespace {
            q = q.filter(event_logs::namespace.eq(v.clone()));
        }
        if let Some(v) = &filter.session_id {
            q = q.filter(event_logs::session_id.eq(v.clone()));
        }
        if let Some(v) = &filter.correlation_id {
            q = q.filter(event_logs::correlation_id.eq(v.clone()));
        }
        if let Some(t) = filter.since {
            q = q.filter(event_logs::event_timestamp.ge(DbTs(t)));
        }
        if let Some(t) = filter.until {
            q = q.filter(event_logs::event_timestamp.le(DbTs(t)));
        }
        if let Some(c) = after {
            // The first conjunct is what an index range can use; the second breaks ties.
            q = q.filter(event_logs::event_timestamp.le(DbTs(c.timestamp)));
            q = q.filter(
                event_logs::event_timestamp
                    .lt(DbTs(c.timestamp))
                    .or(event_logs::event_timestamp
                        .eq(DbTs(c.timestamp))
                        .and(event_logs::event_id.lt(DbUuid(c.event_id)))),
            );
        }
        q.order((
            event_logs::event_timestamp.desc(),
            event_logs::event_id.desc(),
        ))
        .limit(limit)
        .load::<EventLogRow>(conn)
        .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// One event by id.
pub async fn get(db: &Db, event_id: uuid::Uuid) -> Result<Option<EventLogRow>, StoreError> {
    let mut conn = db.conn().await?;
    let id = DbUuid(event_id);
    let result = crate::db_run!(conn, {
        event_logs::table
            .filter(event_logs::event_id.eq(id))
            .select(EventLogRow::as_select())
            .first::<EventLogRow>(conn)
            .await
            .optional()
    });
    db.observe(result.map_err(StoreError::from))
}

/// Which column a trace follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKey {
    Session,
    Correlation,
}

/// The events of one session (or correlation id) between `since` and `until`, oldest first, at most
/// `limit` (served by the `(session_id, timestamp)` / `(correlation_id, timestamp)` indexes).
pub async fn trace(
    db: &Db,
    key: TraceKey,
    id: &str,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<EventLogRow>, StoreError> {
    trace_ordered(db, key, id, since, until, limit, false).await
}

/// The newest event of a trace (for a trace cut at its limit).
pub async fn trace_latest(
    db: &Db,
    key: TraceKey,
    id: &str,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<Option<EventLogRow>, StoreError> {
    Ok(trace_ordered(db, key, id, since, until, 1, true)
        .await?
        .pop())
}

async fn trace_ordered(
    db: &Db,
    key: TraceKey,
    id: &str,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    limit: i64,
    newest_first: bool,
) -> Result<Vec<EventLogRow>, StoreError> {
    let mut conn = db.conn().await?;
    let since = DbTs(since);
    let until = until.map(DbTs);
    let result = crate::db_run!(conn, {
        let mut q = event_logs::table
            .select(EventLogRow::as_select())
            .filter(event_logs::event_timestamp.ge(since))
            .into_boxed();
        if let Some(until) = until {
            q = q.filter(event_logs::event_timestamp.le(until));
        }
        q = match key {
            TraceKey::Session => q.filter(event_logs::session_id.eq(id)),
            TraceKey::Correlation => q.filter(event_logs::correlation_id.eq(id)),
        };
        q = if newest_first {
            q.order((
                event_logs::event_timestamp.desc(),
                event_logs::event_id.desc(),
            ))
        } else {
            q.order((
                event_logs::event_timestamp.asc(),
                event_logs::event_id.asc(),
            ))
        };
        q.limit(limit).load::<EventLogRow>(conn).await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Whether any event carries `id` as its session id / correlation id (search), without a time range.
pub async fn id_seen(db: &Db, id: &str) -> Result<(bool, bool), StoreError> {
    let mut conn = db.conn().await?;
    let result: Result<(bool, bool), diesel::result::Error> = crate::db_run!(conn, {
        let session = event_logs::table
            .filter(event_logs::session_id.eq(id))
            .select(event_logs::event_id)
            .first::<DbUuid>(conn)
            .await
            .optional()?
            .is_some();
        let correlation = event_logs::table
            .filter(event_logs::correlation_id.eq(id))
            .select(event_logs::event_id)
            .first::<DbUuid>(conn)
            .await
            .optional()?
            .is_some();
        Ok((session, correlation))
    });
    db.observe(result.map_err(StoreError::from))
}

/// Events per topic since `since` (overview rates), busiest first.
pub async fn topic_counts(db: &Db, since: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError> {
    let mut conn = db.conn().await?;
    let since = DbTs(since);
    let result = crate::db_run!(conn, {
        event_logs::table
            .filter(event_logs::event_timestamp.ge(since))
            .group_by(event_logs::topic)
            .select((event_logs::topic, diesel::dsl::count_star()))
            .load::<(String, i64)>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from)).map(|mut v| {
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_text_is_cut_at_512_characters() {
        let long = "é".repeat(20_000); // 40 KB of UTF-8
        let row = EventLogRow {
            event_id: DbUuid(uuid::Uuid::nil()),
            session_id: Some(long.clone()),
            correlation_id: Some("short".into()),
            event_type: long.clone(),
            topic: "t".into(),
            kafka_partition: None,
            kafka_offset: None,
            event_timestamp: DbTs(Utc::now()),
            status: "ok".into(),
            processing_time_ms: None,
            namespace: Some(long.clone()),
            payload: DbJson(serde_json::json!({"session_id": long})),
            metadata: DbJson(serde_json::json!({})),
            recorded_at: DbTs(Utc::now()),
        };
        let rows = [row];
        let cut = bounded_rows(&rows);
        assert!(matches!(cut, Cow::Owned(_)));
        let r = &cut[0];
        assert_eq!(r.session_id.as_deref(), Some("é".repeat(512).as_str()));
        assert_eq!(r.event_type, "é".repeat(512));
        assert_eq!(r.namespace.as_deref().map(|s| s.chars().count()), Some(512));
        assert_eq!(r.correlation_id.as_deref(), Some("short"));
        // The payload keeps the whole value.
        assert_eq!(
            r.payload.0["session_id"].as_str().map(str::len),
            Some(40_000)
        );
        // Already bounded rows are not copied.
        assert!(matches!(bounded_rows(&cut), Cow::Borrowed(_)));
    }
}
