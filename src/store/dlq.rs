//! `dlq_records`, `dlq_topic_state`, `dlq_alerts`: owned by the DLQ monitor. Counts are computed from
//! the stored records, and the alert cooldown is claimed with a conditional UPDATE, so every instance
//! sees the same numbers and exactly one of them sends an alert.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{dlq_alerts, dlq_records, dlq_topic_state};
use super::sql_types::{DbJson, DbTs, DbUuid};
use super::{Db, StoreError};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dlq_records)]
pub struct DlqRecordRow {
    pub id: DbUuid,
    pub dlq_topic: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub message_key: Option<String>,
    pub message_value: Option<String>,
    pub headers: DbJson,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub received_at: DbTs,
    pub redriven_at: Option<DbTs>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dlq_alerts)]
pub struct DlqAlertRow {
    pub id: DbUuid,
    pub dlq_topic: String,
    pub count: i64,
    pub threshold: i64,
    pub recent_error: Option<String>,
    pub created_at: DbTs,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = dlq_topic_state)]
struct TopicStateRow {
    dlq_topic: String,
    reset_at: Option<DbTs>,
    last_alert_at: Option<DbTs>,
}

/// Store records; a record seen before (same DLQ position) is ignored. Returns how many were new.
pub async fn insert_records(db: &Db, rows: &[DlqRecordRow]) -> Result<usize, StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<usize> = db_run!(conn, {
        let mut n = 0;
        for row in rows {
            n += diesel::insert_into(dlq_records::table)
                .values(row)
                // Same DLQ position, or same original message dead-lettered twice: one record.
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        Ok(n)
    });
    db.observe(result.map_err(StoreError::from))
}

/// Counts of one DLQ topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicCounts {
    pub topic: String,
    pub in_window: i64,
    pub total: i64,
    pub reset_at: Option<DateTime<Utc>>,
    pub last_alert_at: Option<DateTime<Utc>>,
    pub recent_error: Option<String>,
}

pub async fn counts(
    db: &Db,
    topic: &str,
    window_start: DateTime<Utc>,
) -> Result<TopicCounts, StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<TopicCounts> = db_run!(conn, {
        let state: Option<(Option<DbTs>, Option<DbTs>)> = dlq_topic_state::table
            .filter(dlq_topic_state::dlq_topic.eq(topic))
            .select((dlq_topic_state::reset_at, dlq_topic_state::last_alert_at))
            .first(conn)
            .await
            .optional()?;
        let (reset_at, last_alert_at) = state.unwrap_or((None, None));
        let floor = reset_at.map(|r| r.0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let window_floor = DbTs(floor.max(window_start));
        let total: i64 = dlq_records::table
            .filter(dlq_records::dlq_topic.eq(topic))
            .filter(dlq_records::received_at.gt(DbTs(floor)))
            .count()
            .get_result(conn)
            .await?;
        let in_window: i64 = dlq_records::table
            .filter(dlq_records::dlq_topic.eq(topic))
            .filter(dlq_records::received_at.gt(window_floor))
            .count()
            .get_result(conn)
            .await?;
        let recent_error: Option<Option<String>> = dlq_records::table
            .filter(dlq_records::dlq_topic.eq(topic))
            .order(dlq_records::received_at.desc())
            .select(dlq_records::error_message)
            .first(conn)
            .await
            .optional()?;
        Ok(TopicCounts {
            topic: topic.to_owned(),
            in_window,
            total,
            reset_at: reset_at.map(|t| t.0),
            last_alert_at: last_alert_at.map(|t| t.0),
            recent_error: recent_error.flatten(),
        })
    });
    db.observe(result.map_err(StoreError::from))
}

/// Every DLQ topic that has records or state.
pub async fn topics(db: &Db) -> Result<Vec<String>, StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<Vec<String>> = db_run!(conn, {
        let mut t: Vec<String> = dlq_records::table
            .select(dlq_records::dlq_topic)
            .distinct()
            .load(conn)
            .await?;
        let s: Vec<String> = dlq_topic_state::table
            .select(dlq_topic_state::dlq_topic)
            .load(conn)
            .await?;
        t.extend(s);
        t.sort();
        t.dedup();
        Ok(t)
    });
    db.observe(result.map_err(StoreError::from))
}

/// Claim the right to alert for `topic` now: true for exactly one caller per cooldown period.
pub async fn claim_alert(
    db: &Db,
    topic: &str,
    now: DateTime<Utc>,
    cooldown: chrono::Duration,
) -> Result<bool, StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<bool> = db_run!(conn, {
        diesel::insert_into(dlq_topic_state::table)
            .values(&TopicStateRow {
                dlq_topic: topic.to_owned(),
                reset_at: None,
                last_alert_at: None,
            })
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        let n = diesel::update(
            dlq_topic_state::table
                .filter(dlq_topic_state::dlq_topic.eq(topic))
                .filter(
                    dlq_topic_state::last_alert_at
                        .is_null()
                        .or(dlq_topic_state::last_alert_at.le(DbTs(now - cooldown))),
                ),
        )
        .set(dlq_topic_state::last_alert_at.eq(Some(DbTs(now))))
        .execute(conn)
        .await?;
        Ok(n == 1)
    });
    db.observe(result.map_err(StoreError::from))
}

pub async fn insert_alert(db: &Db, row: &DlqAlertRow) -> Result<(), StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(
        conn,
        diesel::insert_into(dlq_alerts::table)
            .values(row)
            .execute(conn)
            .await
    );
    db.observe(result.map(|_| ()).map_err(StoreError::from))
}

pub async fn recent_alerts(db: &Db, limit: i64) -> Result<Vec<DlqAlertRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        dlq_alerts::table
            .order(dlq_alerts::created_at.desc())
            .limit(limit)
            .select(DlqAlertRow::as_select())
            .load::<DlqAlertRow>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Records, newest first, optionally of one topic; `pending_only` = not redriven yet.
pub async fn list(
    db: &Db,
    topic: Option<&str>,
    ids: Option<&[uuid::Uuid]>,
    pending_only: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DlqRecordRow>, i64), StoreError> {
    let mut conn = db.conn().await?;
    let ids: Option<Vec<DbUuid>> = ids.map(|v| v.iter().copied().map(DbUuid).collect());
    let result: QueryResult<(Vec<DlqRecordRow>, i64)> = db_run!(conn, {
        let mut q = dlq_records::table
            .select(DlqRecordRow::as_select())
            .into_boxed();
        let mut c = dlq_records::table.count().into_boxed();
        if let Some(t) = topic {
            q = q.filter(dlq_records::dlq_topic.eq(t));
            c = c.filter(dlq_records::dlq_topic.eq(t));
        }
        if let Some(ids) = &ids {
            q = q.filter(dlq_records::id.eq_any(ids));
            c = c.filter(dlq_records::id.eq_any(ids));
        }
        if pending_only {
            q = q.filter(dlq_records::redriven_at.is_null());
            c = c.filter(dlq_records::redriven_at.is_null());
        }
        let total: i64 = c.get_result(conn).await?;
        let rows = q
            .order((
                dlq_records::received_at.desc(),
                dlq_records::dlq_offset.desc(),
            ))
            .limit(limit)
            .offset(offset)
            .load::<DlqRecordRow>(conn)
            .await?;
        Ok((rows, total))
    });
    db.observe(result.map_err(StoreError::from))
}

/// Claim pending records for a redrive: only rows not redriven yet are taken, atomically, so two
/// concurrent redrives never publish the same record. Returns the ids claimed.
pub async fn claim_for_redrive(
    db: &Db,
    ids: &[uuid::Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<uuid::Uuid>, StoreError> {
    let mut conn = db.conn().await?;
    let ids: Vec<DbUuid> = ids.iter().copied().map(DbUuid).collect();
    let result: QueryResult<Vec<DbUuid>> = db_run!(conn, {
        diesel::update(
            dlq_records::table
                .filter(dlq_records::id.eq_any(&ids))
                .filter(dlq_records::redriven_at.is_null()),
        )
        .set(dlq_records::redriven_at.eq(Some(DbTs(now))))
        .returning(dlq_records::id)
        .get_results(conn)
        .await
    });
    db.observe(result.map_err(StoreError::from))
        .map(|v| v.into_iter().map(|u| u.0).collect())
}

/// Give claimed records back (their publish failed).
pub async fn release_redrive(db: &Db, ids: &[uuid::Uuid]) -> Result<usize, StoreError> {
    let mut conn = db.conn().await?;
    let ids: Vec<DbUuid> = ids.iter().copied().map(DbUuid).collect();
    let result = db_run!(conn, {
        diesel::update(dlq_records::table.filter(dlq_records::id.eq_any(&ids)))
            .set(dlq_records::redriven_at.eq(None::<DbTs>))
            .execute(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}

/// Reset the counts of `topics` (from now on only newer records count).
pub async fn reset(db: &Db, topics: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut conn = db.conn().await?;
    let result: QueryResult<()> = db_run!(conn, {
        for t in topics {
            diesel::insert_into(dlq_topic_state::table)
                .values(&TopicStateRow {
                    dlq_topic: t.clone(),
                    reset_at: None,
                    last_alert_at: None,
                })
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            diesel::update(dlq_topic_state::table.filter(dlq_topic_state::dlq_topic.eq(t)))
                .set((
                    dlq_topic_state::reset_at.eq(Some(DbTs(now))),
                    dlq_topic_state::last_alert_at.eq(None::<DbTs>),
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    });
    db.observe(result.map_err(StoreError::from))
}
