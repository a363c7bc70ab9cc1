//! `metadata_stamps`, owned by the stamping module: group-committed inserts (with their outbox
//! events in the same transaction) and the lookups of the stamping API.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::outbox::NewOutboxEvent;
use super::schema::metadata_stamps;
use super::sql_types::{DbJson, DbTs, DbUuid};
use super::{Db, StoreError};
use crate::db_run;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = metadata_stamps)]
pub struct StampRow {
    pub id: DbUuid,
    pub namespace: String,
    pub file_hash: String,
    pub file_path: Option<String>,
    pub file_size: i64,
    pub content_type: Option<String>,
    pub stamp_data: DbJson,
    pub protocol_version: String,
    pub intelligence_data: Option<DbJson>,
    pub version: i32,
    pub op_id: DbUuid,
    pub metadata_version: String,
    pub created_at: DbTs,
    pub updated_at: DbTs,
}

/// Outcome of writing one stamp: the stored row and whether this write created it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub row: StampRow,
    pub created: bool,
}

/// A stamp to write and the events to record if (and only if) this write creates its row.
#[derive(Debug, Clone)]
pub struct PendingStamp {
    pub row: StampRow,
    pub on_create: Vec<NewOutboxEvent>,
}

/// Insert `pending` (idempotent per (namespace, file_hash)) and, in the same transaction, the
/// `on_create` events of each newly created row plus `extra_events`.
///
/// Returns one `Stored` per input row, in input order. Identical keys within `pending` resolve to the
/// same stored row, only the first of them counting as created.
pub async fn insert_batch(
    db: &Db,
    pending: Vec<PendingStamp>,
    extra_events: Vec<NewOutboxEvent>,
) -> Result<Vec<Stored>, StoreError> {
    let mut on_create: HashMap<(String, String), Vec<NewOutboxEvent>> = HashMap::new();
    let mut rows = Vec::with_capacity(pending.len());
    for p in pending {
        on_create
            .entry((p.row.namespace.clone(), p.row.file_hash.clone()))
            .or_insert(p.on_create);
        rows.push(p.row);
    }
    // Unique keys, sorted so concurrent transactions lock rows in one order (no deadlocks).
    let mut to_insert: Vec<StampRow> = Vec::with_capacity(rows.len());
    {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert((r.namespace.as_str(), r.file_hash.as_str())) {
                to_insert.push(r.clone());
            }
        }
    }
    to_insert.sort_by(|a, b| (&a.namespace, &a.file_hash).cmp(&(&b.namespace, &b.file_hash)));

    let mut conn = db.conn().await?;
    let result: Result<(Vec<StampRow>, Vec<StampRow>), diesel::result::Error> = match &mut conn {
        super::DbConn::Pg(conn) => {
            let conn: &mut diesel_async::AsyncPgConnection = conn;
            write_batch_pg(conn, &to_insert, extra_events, &on_create).await
        }
        super::DbConn::Sqlite(conn) => {
            let conn: &mut super::SqliteConn = conn;
            // The whole transaction runs in one blocking task: one hop to the blocking pool per
            // batch instead of one per statement.
            conn.spawn_blocking(move |c| {
                sqlite_sync::write_batch(c, to_insert, extra_events, on_create)
            })
            .await
        }
    };
    let (inserted, existing) = db.observe(result.map_err(StoreError::from))?;

    let mut by_key: HashMap<(String, String), (StampRow, bool)> = HashMap::new();
    for r in inserted {
        by_key.insert((r.namespace.clone(), r.file_hash.clone()), (r, true));
    }
    for r in existing {
        by_key
            .entry((r.namespace.clone(), r.file_hash.clone()))
            .or_insert((r, false));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let key = (r.namespace.clone(), r.file_hash.clone());
        match by_key.get_mut(&key) {
            Some((row, created)) => {
                out.push(Stored {
                    row: row.clone(),
                    created: *created,
                });
                // Later duplicates of the same key in this batch did not create it.
                *created = false;
            }
            None => {
                return Err(StoreError::Query(diesel::result::Error::NotFound));
            }
        }
    }
    Ok(out)
}

type Key = (String, String);

/// PostgreSQL: multi-row `INSERT … ON CONFLICT (namespace, file_hash) DO NOTHING RETURNING *`, a
/// lookup of the rows that already existed, and the outbox rows, in one transaction.
async fn write_batch_pg(
    conn: &mut diesel_async::AsyncPgConnection,
    to_insert: &[StampRow],
    extra_events: Vec<NewOutboxEvent>,
    on_create: &HashMap<Key, Vec<NewOutboxEvent>>,
) -> Result<(Vec<StampRow>, Vec<StampRow>), diesel::result::Error> {
    conn.transaction(async |conn| {
        let mut inserted = Vec::with_capacity(to_insert.len());
        // 14 bind parameters per row; stay far below PostgreSQL's 65535 limit.
        for chunk in to_insert.chunks(1000) {
            let mut got: Vec<StampRow> = diesel::insert_into(metadata_stamps::table)
                .values(chunk)
                .on_conflict((metadata_stamps::namespace, metadata_stamps::file_hash))
                .do_nothing()
                .returning(StampRow::as_returning())
                .get_results(conn)
                .await?;
            inserted.append(&mut got);
        }
        let inserted_keys: std::collections::HashSet<(&str, &str)> = inserted
            .iter()
            .map(|r| (r.namespace.as_str(), r.file_hash.as_str()))
            .collect();
        let missing: Vec<&StampRow> = to_insert
            .iter()
            .filter(|r| !inserted_keys.contains(&(r.namespace.as_str(), r.file_hash.as_str())))
            .collect();
        let existing = if missing.is_empty() {
            Vec::new()
        } else {
            let hashes: Vec<&str> = missing.iter().map(|r| r.file_hash.as_str()).collect();
            let namespaces: Vec<&str> = missing.iter().map(|r| r.namespace.as_str()).collect();
            metadata_stamps::table
                .filter(metadata_stamps::file_hash.eq_any(&hashes))
                .filter(metadata_stamps::namespace.eq_any(&namespaces))
                .select(StampRow::as_select())
                .load::<StampRow>(conn)
                .await?
        };
        let mut events: Vec<NewOutboxEvent> = extra_events;
        for row in &inserted {
            if let Some(evs) = on_create.get(&(row.namespace.clone(), row.file_hash.clone())) {
                events.extend(evs.iter().cloned());
            }
        }
        super::outbox::insert_rows(conn, &events).await?;
        Ok((inserted, existing))
    })
    .await
}

/// SQLite: the same writes with the synchronous diesel API, inside `BEGIN IMMEDIATE` (the write lock
/// is taken up front, so the transaction never has to upgrade a read lock and fail with BUSY).
mod sqlite_sync {
    use std::collections::HashMap;

    use diesel::prelude::*;
    use diesel::SqliteConnection;

    use super::{Key, StampRow};
    use crate::store::outbox::NewOutboxEvent;
    use crate::store::schema::{event_outbox, metadata_stamps};

    pub fn write_batch(
        conn: &mut SqliteConnection,
        to_insert: Vec<StampRow>,
        mut events: Vec<NewOutboxEvent>,
        on_create: HashMap<Key, Vec<NewOutboxEvent>>,
    ) -> QueryResult<(Vec<StampRow>, Vec<StampRow>)> {
        conn.immediate_transaction(|c| {
            let mut inserted = Vec::with_capacity(to_insert.len());
            let mut existing = Vec::new();
            for row in &to_insert {
                let got: Option<StampRow> = diesel::insert_into(metadata_stamps::table)
                    .values(row)
                    .on_conflict((metadata_stamps::namespace, metadata_stamps::file_hash))
                    .do_nothing()
                    .returning(StampRow::as_returning())
                    .get_result(c)
                    .optional()?;
                match got {
                    Some(r) => {
                        if let Some(evs) =
                            on_create.get(&(r.namespace.clone(), r.file_hash.clone()))
                        {
                            events.extend(evs.iter().cloned());
                        }
                        inserted.push(r);
                    }
                    None => existing.push(
                        metadata_stamps::table
                            .filter(metadata_stamps::namespace.eq(&row.namespace))
                            .filter(metadata_stamps::file_hash.eq(&row.file_hash))
                            .select(StampRow::as_select())
                            .first(c)?,
                    ),
                }
            }
            for event in &events {
                diesel::insert_into(event_outbox::table)
                    .values(event)
                    .execute(c)?;
            }
            Ok((inserted, existing))
        })
    }
}

/// With a namespace: that namespace's stamp. Without: the earliest stamp of the hash.
pub async fn find_by_hash(
    db: &Db,
    file_hash: &str,
    namespace: Option<&str>,
) -> Result<Option<StampRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        let mut q = metadata_stamps::table
            .filter(metadata_stamps::file_hash.eq(file_hash))
            .select(StampRow::as_select())
            .into_boxed();
        if let Some(ns) = namespace {
            q = q.filter(metadata_stamps::namespace.eq(ns));
        }
        q.order((metadata_stamps::created_at.asc(), metadata_stamps::id.asc()))
            .first::<StampRow>(conn)
            .await
            .optional()
    });
    db.observe(result.map_err(StoreError::from))
}

/// A namespace's stamps, newest first, and the namespace's total.
pub async fn list_namespace(
    db: &Db,
    namespace: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<StampRow>, i64), StoreError> {
    let mut conn = db.conn().await?;
    let result: Result<(Vec<StampRow>, i64), diesel::result::Error> = db_run!(conn, {
        let total: i64 = metadata_stamps::table
            .filter(metadata_stamps::namespace.eq(namespace))
            .count()
            .get_result(conn)
            .await?;
        let rows = metadata_stamps::table
            .filter(metadata_stamps::namespace.eq(namespace))
            .order((
                metadata_stamps::created_at.desc(),
                metadata_stamps::id.desc(),
            ))
            .limit(limit)
            .offset(offset)
            .select(StampRow::as_select())
            .load::<StampRow>(conn)
            .await?;
        Ok((rows, total))
    });
    db.observe(result.map_err(StoreError::from))
}

/// Total stamps stored (for metrics).
pub async fn count_all(db: &Db) -> Result<i64, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        metadata_stamps::table.count().get_result::<i64>(conn).await
    });
    db.observe(result.map_err(StoreError::from))
}

/// One stamp by id (search).
pub async fn find_by_id(db: &Db, id: uuid::Uuid) -> Result<Option<StampRow>, StoreError> {
    let mut conn = db.conn().await?;
    let id = DbUuid(id);
    let result = db_run!(conn, {
        metadata_stamps::table
            .filter(metadata_stamps::id.eq(id))
            .select(StampRow::as_select())
            .first::<StampRow>(conn)
            .await
            .optional()
    });
    db.observe(result.map_err(StoreError::from))
}

/// Every stamp of one file hash, across namespaces (search, dashboard lookup).
pub async fn find_all_by_hash(db: &Db, file_hash: &str) -> Result<Vec<StampRow>, StoreError> {
    let mut conn = db.conn().await?;
    let result = db_run!(conn, {
        metadata_stamps::table
            .filter(metadata_stamps::file_hash.eq(file_hash))
            .order((metadata_stamps::created_at.asc(), metadata_stamps::id.asc()))
            .limit(100)
            .select(StampRow::as_select())
            .load::<StampRow>(conn)
            .await
    });
    db.observe(result.map_err(StoreError::from))
}
