//! tessera's storage: SeaORM entities, versioned migrations and the queries services
//! need, with one code path for SQLite and PostgreSQL.

pub mod entity;
pub mod migration;
mod pg_kept;
pub mod query;
mod session_cache;
mod sqlite_direct;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, SqlErr, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tessera_domain::Error;

pub use pg_kept::PgKept;
pub use rusqlite::Error as DirectError;
pub use sea_orm;
pub use sea_orm_migration::MigratorTrait;
pub use session_cache::{Neighbours, SessionCache};
pub use sqlite_direct::SqliteDirect;

/// Pool settings for [`connect`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub size: u32,
    pub max_overflow: u32,
    pub acquire_timeout: Duration,
    pub recycle: Duration,
    /// On a SQLite file, the cache the pool's connections report their committed
    /// changes to sessions and users to.
    pub session_cache: Option<Arc<SessionCache>>,
}

/// The kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Normalises the URL forms the seeds use (`postgresql+asyncpg://`, `postgresql://`)
/// and tells which backend it names.
pub fn normalise_url(url: &str) -> Result<(Backend, String), String> {
    let url = url.trim();
    for prefix in ["postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            return Ok((Backend::Postgres, format!("postgres://{rest}")));
        }
    }
    if url.starts_with("sqlite:") {
        return Ok((Backend::Sqlite, url.to_owned()));
    }
    Err("DATABASE_URL must start with sqlite:// or postgres://".to_owned())
}

/// The file a `sqlite://` URL points at, if it names a file.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        None
    } else {
        Some(std::path::PathBuf::from(path))
    }
}

/// Opens a pool. SQLite files are created if missing and run in WAL mode with a busy
/// timeout and foreign keys on; PostgreSQL pools honour the size, overflow, timeout and
/// recycle settings.
pub async fn connect(url: &str, pool: &PoolConfig) -> Result<DatabaseConnection, String> {
    let (backend, url) = normalise_url(url)?;
    match backend {
        Backend::Sqlite => sqlite_pool(&url, pool.size, pool).await,
        Backend::Postgres => {
            let opts = PgConnectOptions::from_str(&url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
            let pool = PgPoolOptions::new()
                .max_connections((pool.size + pool.max_overflow).max(1))
                .min_connections(0)
                .acquire_timeout(pool.acquire_timeout)
                .max_lifetime(pool.recycle)
                // sqlx pings every connection when it is released; pinging it again on
                // every acquire doubles the round trips of a one-statement request. A
                // connection idle for a while is still checked (the server may have
                // restarted or dropped it meanwhile).
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= RECHECK_IDLE_AFTER {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(opts)
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
            Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
        }
    }
}

/// Where transactions and other writes go. On SQLite, a pool of its own with one
/// connection: SQLite admits one writer at a time, and writers queued here wait their
/// turn in order, where writers racing for the file lock would sleep in SQLite's busy
/// handler (1, 2, 5, 10… ms between tries) or fail outright when a read snapshot cannot
/// be upgraded. On PostgreSQL, `None`: writes share the pool.
pub async fn connect_writer(url: &str, pool: &PoolConfig) -> Result<Option<DatabaseConnection>, String> {
    match normalise_url(url)? {
        (Backend::Sqlite, url) => Ok(Some(sqlite_pool(&url, 1, pool).await?)),
        (Backend::Postgres, _) => Ok(None),
    }
}

/// A SQLite pool of `size` connections: the file is created if missing and runs in WAL
/// mode with a busy timeout and foreign keys on.
async fn sqlite_pool(url: &str, size: u32, pool: &PoolConfig) -> Result<DatabaseConnection, String> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("invalid SQLite URL: {e}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
    // Only a file's connections can be watched: an in-memory database has no WAL, so
    // its commits would never reach the hook (and no direct read keeps its rows).
    let cache = pool.session_cache.clone().filter(|_| sqlite_path(url).is_some());
    let pool = SqlitePoolOptions::new()
        .after_connect(move |conn, _| {
            let cache = cache.clone();
            Box::pin(async move {
                if let Some(cache) = cache {
                    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await?;
                    if mode.eq_ignore_ascii_case("wal") {
                        session_cache::watch(&mut conn.lock_handle().await?, cache);
                    } else {
                        session_cache::unwatchable(&cache);
                    }
                }
                Ok(())
            })
        })
        .max_connections(size.max(1))
        .acquire_timeout(pool.acquire_timeout)
        // An in-process SQLite connection cannot go stale the way a socket can,
        // and sqlx already pings each connection when it is released; a second
        // ping on acquire is one more round trip to the connection's worker
        // thread on every statement.
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .map_err(|e| format!("cannot open the SQLite database: {e}"))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// How many pages the SQLite WAL holds before the commit that crosses the mark copies them
/// into the database file (SQLite's default is 1,000). A checkpoint costs two `fsync`s
/// and one write of every page changed since the last, however often that page changed:
/// under a steady stream of rotations, 4,000 pages (16 MiB of WAL) made each one ~20%
/// cheaper for the writer than 1,000 did.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 4000;

/// A PostgreSQL connection idle this long is pinged before it is handed out again.
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(30);

/// Maps a database error to a service outcome: an unreachable or exhausted database is
/// `Unavailable` (503); anything else is `Internal` (500, cause logged, body generic).
pub fn db_error(e: DbErr) -> Error {
    let text = e.to_string();
    let unavailable = matches!(e, DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
        || text.contains("pool timed out")
        || text.contains("database is locked")
        || text.contains("Connection refused")
        || text.contains("connection closed");
    if unavailable {
        Error::Unavailable(text)
    } else {
        Error::Internal(text)
    }
}

/// [`db_error`] for an error from outside SeaORM (the direct SQLite connections, kept
/// PostgreSQL connections, the rotation writer), judged by its text.
pub fn db_error_text(e: impl std::fmt::Display) -> Error {
    db_error(DbErr::Custom(e.to_string()))
}

/// Whether the error is a unique-constraint violation.
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Refreshes the query planner's statistics after a bulk load (and, on PostgreSQL, the
/// visibility map, so that counts can be answered from indexes alone).
pub async fn refresh_statistics(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            db.execute_unprepared("VACUUM (ANALYZE) users, profiles").await?;
        }
        _ => {
            db.execute_unprepared("ANALYZE").await?;
        }
    }
    Ok(())
}
