//! The storage edge: one pool over either backend (PostgreSQL through diesel-async + deadpool, or
//! SQLite through diesel-async's sync wrapper), embedded migrations per backend, a circuit breaker in
//! front of connection acquisition, and pool metrics.
//!
//! Architecture invariant: queries are written once against `schema` and run on both backends through
//! `db_run!`; backend-specific SQL lives in a function whose name says the backend. Modules own their
//! tables: `store::stamps` is the stamping module's, `store::outbox` the event backbone's.
//! This module knows nothing about HTTP.

pub mod breaker;
pub mod dlq;
pub mod event_logs;
mod failure;
pub mod outbox;
pub mod reducer;
pub mod schema;
pub mod sql_types;
pub mod stamps;
pub mod workflows;

use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::config::DatabaseSettings;
use breaker::Breaker;

pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (pool timeout, connection refused, breaker open).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database is reachable but did not serve this request in time: no pooled connection within
    /// `acquire_timeout_ms`, a statement cancelled by `statement_timeout`, SQLite busy or locked.
    /// Says nothing about the database being down, so it never feeds the circuit breaker.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database has no space left to write.
    #[error("database storage full: {0}")]
    StorageFull(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A failure reported to several waiters of one group commit.
    #[error("database write failed: {0}")]
    Failed(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("invalid database url: {0}")]
    BadUrl(String),
}

impl StoreError {
    fn from_pool(e: PoolError) -> Self {
        match e {
            // Every connection is in use and none came free in time: load, not an outage.
            PoolError::Timeout(deadpool::managed::TimeoutType::Wait) => {
                StoreError::Busy(format!("no pooled connection came free in time ({e})"))
            }
            e => StoreError::Unavailable(e.to_string()),
        }
    }

    /// A copy for every waiter of a shared operation (keeps its class).
    pub fn shared_copy(&self) -> Self {
        if self.is_connectivity() {
            StoreError::Unavailable(self.to_string())
        } else if self.is_busy() {
            StoreError::Busy(self.to_string())
        } else if self.is_storage_full() {
            StoreError::StorageFull(self.to_string())
        } else {
            StoreError::Failed(self.to_string())
        }
    }

    fn database_message(&self) -> Option<&str> {
        match self {
            StoreError::Query(diesel::result::Error::DatabaseError(_, info)) => {
                Some(info.message())
            }
            _ => None,
        }
    }

    /// The database is up but could not serve in time: pool wait timeout, PostgreSQL
    /// `statement_timeout` / `lock_timeout` (SQLSTATE 57014 / 55P03), SQLite `SQLITE_BUSY` /
    /// `SQLITE_LOCKED`.
    pub fn is_busy(&self) -> bool {
        if matches!(self, StoreError::Busy(_)) {
            return true;
        }
        self.database_message().is_some_and(|m| {
            m.contains("canceling statement due to statement timeout")
                || m.contains("canceling statement due to lock timeout")
                || m.contains("database is locked")
                || m.contains("database table is locked")
                || m.contains("database schema is locked")
        })
    }

    /// The database cannot write for want of space (PostgreSQL SQLSTATE 53100 `No space left on
    /// device`, SQLite `SQLITE_FULL`).
    pub fn is_storage_full(&self) -> bool {
        if matches!(self, StoreError::StorageFull(_)) {
            return true;
        }
        self.database_message().is_some_and(|m| {
            m.contains("No space left on device")
                || m.contains("database or disk is full")
                || m.contains("could not extend file")
        })
    }

    /// Errors that say the server or connection is gone, as opposed to a bad query.
    pub fn is_connectivity(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::UnableToSendCommand
                ) || info.message().contains("server closed the connection")
                    || info.message().contains("connection reset")
            }
            StoreError::Query(diesel::result::Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

#[derive(Clone)]
enum PoolKind {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// A pooled connection of either backend; use with [`db_run!`].
// Lives on the stack for one operation; boxing would cost an allocation per checkout.
#[allow(clippy::large_enum_variant)]
pub enum DbConn {
    Pg(Object<AsyncPgConnection>),
    Sqlite(Object<SqliteConn>),
}

/// Run the same diesel-async code on whichever backend `$conn` holds. Inside `$body`, `$conn` is a
/// `&mut AsyncPgConnection` or a `&mut SyncConnectionWrapper<SqliteConnection>`.
#[macro_export]
macro_rules! db_run {
    ($conn:ident, $body:expr) => {
        match &mut $conn {
            $crate::store::DbConn::Pg(pooled) => {
                let $conn: &mut diesel_async::AsyncPgConnection = &mut *pooled;
                $body
            }
            $crate::store::DbConn::Sqlite(pooled) => {
                let $conn: &mut $crate::store::SqliteConn = &mut *pooled;
                $body
            }
        }
    };
}

/// Snapshot of pool usage for health and metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl PoolStats {
    pub fn in_use(&self) -> usize {
        self.size.saturating_sub(self.available)
    }
    pub fn saturation(&self) -> f64 {
        if self.max_size == 0 {
            0.0
        } else {
            self.in_use() as f64 / self.max_size as f64
        }
    }
}

/// The database handle every module shares. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: PoolKind,
    breaker: Breaker,
    settings: DatabaseSettings,
}

fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

impl Db {
    /// Build the pool. Does not connect yet (a PostgreSQL outage at start is reported by `migrate`).
    pub fn new(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let breaker = Breaker::new(
            settings.breaker_failure_threshold,
            Duration::from_secs(settings.breaker_open_secs),
        );
        let wait = Duration::from_millis(settings.acquire_timeout_ms);
        let create = Duration::from_millis(settings.connect_timeout_ms);
        let pool = if settings.url.starts_with("sqlite://") {
            let path = sqlite_path(&settings.url).to_owned();
            if let Some(parent) = std::path::Path::new(&path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::BadUrl(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
            }
            let busy_ms = settings.statement_timeout_ms;
            let mut cfg = ManagerConfig::<SqliteConn>::default();
            cfg.custom_setup = Box::new(move |url| establish_sqlite(url.to_owned(), busy_ms));
            let mgr = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, cfg);
            PoolKind::Sqlite(
                Pool::builder(mgr)
                    .max_size(settings.pool_size)
                    .wait_timeout(Some(wait))
                    .create_timeout(Some(create))
                    .recycle_timeout(Some(create))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| StoreError::BadUrl(e.to_string()))?,
            )
        } else {
            let statement_timeout = settings.statement_timeout_ms;
            let connect_timeout = create;
            let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
            cfg.custom_setup = Box::new(move |url| {
                establish_pg(url.to_owned(), connect_timeout, statement_timeout)
            });
            let mgr = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
                settings.url.clone(),
                cfg,
            );
            PoolKind::Pg(
                Pool::builder(mgr)
                    .max_size(settings.pool_size)
                    .wait_timeout(Some(wait))
                    .create_timeout(Some(create))
                    .recycle_timeout(Some(create))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| StoreError::BadUrl(e.to_string()))?,
            )
        };
        Ok(Db {
            pool,
            breaker,
            settings: settings.clone(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            PoolKind::Pg(_) => Backend::Postgres,
            PoolKind::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub fn settings(&self) -> &DatabaseSettings {
        &self.settings
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// A pooled connection, or `Unavailable` at once while the breaker is open.
    pub async fn conn(&self) -> Result<DbConn, StoreError> {
        if !self.breaker.allow() {
            return Err(StoreError::Unavailable(
                "circuit breaker open after repeated connection failures".into(),
            ));
        }
        let result = match &self.pool {
            PoolKind::Pg(p) => p.get().await.map(DbConn::Pg),
            PoolKind::Sqlite(p) => p.get().await.map(DbConn::Sqlite),
        };
        match result {
            Ok(c) => Ok(c),
            Err(e) => {
                let e = StoreError::from_pool(e);
                // A wait timeout means the pool is busy, not that the database is gone: counting it
                // would open the breaker for everyone under mere load.
                if e.is_connectivity() {
                    self.breaker.record_failure();
                }
                if e.is_busy() {
                    metrics::counter!("db_pool_wait_timeouts_total").increment(1);
                }
                Err(e)
            }
        }
    }

    /// Feed the outcome of a database operation into the breaker; returns the result unchanged.
    pub fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.breaker.record_success(),
            Err(e) if e.is_connectivity() => self.breaker.record_failure(),
            // Busy (timeouts under load) says nothing either way about the database being up.
            Err(e) if e.is_busy() => {}
            Err(_) => self.breaker.record_success(),
        }
        result
    }

    /// A pooled connection (within the acquire timeout), then `SELECT 1` within the acquire timeout.
    /// A pool that is merely busy answers `Busy` without touching the breaker; a `SELECT 1` that
    /// does not come back in time counts as a connectivity failure.
    pub async fn ping(&self) -> Result<(), StoreError> {
        // `conn` fed the breaker already (connectivity failures only).
        let mut conn = self.conn().await?;
        let fut = async {
            let r: Result<(), diesel::result::Error> =
                db_run!(conn, conn.batch_execute("SELECT 1").await);
            r.map_err(StoreError::from)
        };
        let timeout = Duration::from_millis(self.settings.acquire_timeout_ms);
        let r = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("ping timed out".into())),
        };
        self.observe(r)
    }

    pub fn pool_stats(&self) -> PoolStats {
        let status = match &self.pool {
            PoolKind::Pg(p) => p.status(),
            PoolKind::Sqlite(p) => p.status(),
        };
        PoolStats {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// Run pending migrations of this backend (blocking work runs off the async threads).
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let url = self.settings.url.clone();
        let backend = self.backend();
        let connect_timeout = Duration::from_millis(self.settings.connect_timeout_ms);
        let run = tokio::task::spawn_blocking(move || -> Result<Vec<String>, StoreError> {
            let applied = match backend {
                Backend::Sqlite => {
                    use diesel::Connection;
                    let mut conn = SqliteConnection::establish(sqlite_path(&url))
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    diesel::connection::SimpleConnection::batch_execute(
                        &mut conn,
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000;",
                    )?;
                    conn.run_pending_migrations(SQLITE_MIGRATIONS)
                        .map_err(|e| StoreError::Migration(e.to_string()))?
                        .iter()
                        .map(|m| m.to_string())
                        .collect()
                }
                Backend::Postgres => {
                    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
                    let _ = connect_timeout;
                    let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    conn.run_pending_migrations(PG_MIGRATIONS)
                        .map_err(|e| StoreError::Migration(e.to_string()))?
                        .iter()
                        .map(|m| m.to_string())
                        .collect()
                }
            };
            Ok(applied)
        });
        run.await
            .map_err(|e| StoreError::Migration(format!("migration task failed: {e}")))?
    }
}

fn establish_sqlite(
    path: String,
    busy_ms: u64,
) -> BoxFuture<'static, diesel::ConnectionResult<SqliteConn>> {
    async move {
        let mut conn = SqliteConn::establish(&path).await?;
        // WAL + synchronous=FULL: a committed stamp survives a crash or power loss; group commit keeps
        // the fsync cost per batch, not per stamp.
        conn.batch_execute(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout={busy_ms}; PRAGMA foreign_keys=ON;"
        ))
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    }
    .boxed()
}

fn establish_pg(
    url: String,
    connect_timeout: Duration,
    statement_timeout_ms: u64,
) -> BoxFuture<'static, diesel::ConnectionResult<AsyncPgConnection>> {
    async move {
        let mut conn = tokio::time::timeout(connect_timeout, AsyncPgConnection::establish(&url))
            .await
            .map_err(|_| diesel::ConnectionError::BadConnection("connect timed out".into()))??;
        conn.batch_execute(&format!("SET statement_timeout = {statement_timeout_ms}"))
            .await
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn db_error(message: &str) -> StoreError {
        StoreError::Query(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn timeouts_under_load_are_busy_not_an_outage() {
        for m in [
            "canceling statement due to statement timeout",
            "canceling statement due to lock timeout",
            "database is locked",
            "database table is locked",
        ] {
            let e = db_error(m);
            assert!(
                e.is_busy() && !e.is_connectivity() && !e.is_storage_full(),
                "{m}"
            );
            assert!(e.shared_copy().is_busy(), "{m}");
        }
        let wait = StoreError::from_pool(PoolError::Timeout(deadpool::managed::TimeoutType::Wait));
        assert!(wait.is_busy() && !wait.is_connectivity());
        let create =
            StoreError::from_pool(PoolError::Timeout(deadpool::managed::TimeoutType::Create));
        assert!(create.is_connectivity() && !create.is_busy());
    }

    #[test]
    fn a_full_disk_is_storage_full() {
        for m in [
            "could not extend file \"base/16384/16385\": No space left on device",
            "database or disk is full",
        ] {
            let e = db_error(m);
            assert!(
                e.is_storage_full() && !e.is_busy() && !e.is_connectivity(),
                "{m}"
            );
            assert!(e.shared_copy().is_storage_full(), "{m}");
        }
        let other = db_error("duplicate key value violates unique constraint");
        assert!(!other.is_busy() && !other.is_storage_full() && !other.is_connectivity());
    }
}
