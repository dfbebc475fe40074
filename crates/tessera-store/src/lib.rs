//! tessera's storage: the one door to the database.
//!
//! [`Store`] owns the connection pools and everything that makes the hot statements fast
//! on each backend; services see domain operations ([`query`] and the methods of
//! [`Store`]) that answer in [`tessera_domain::Error`]. The session operations choose
//! their path in `query::sessions::paths`; the fast paths are private:
//!
//! - on a SQLite file, session checks read in place through connections of their own,
//!   answered from a session cache when they can be, and refresh rotations are written
//!   in batches by one task (`hot::sqlite_direct`, `hot::session_cache`,
//!   `hot::batch_writer`); every server and command on the file announces itself
//!   beside it, so that no cache trusts rows another may have written;
//! - on PostgreSQL, session checks and rotations run on pool connections kept between
//!   statements, and the session checks that arrive together are read in one statement
//!   (`hot::pg_kept`);
//! - otherwise (an in-memory SQLite database, or [`StoreConfig::fast_paths`] off),
//!   everything goes through the pool, the reference every fast path is tested against.

mod backend;
mod db;
pub mod entity;
mod error;
pub mod events;
pub mod foreign;
mod hot;
pub mod migration;
pub mod pii;
pub mod query;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbBackend, SqlxPostgresConnector, SqlxSqliteConnector};
use sea_orm_migration::MigratorTrait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tessera_domain::Error;
use uuid::Uuid;

use crate::backend::WAL_AUTOCHECKPOINT_PAGES;
use crate::entity::{audit_log, passkey, session, user, webauthn_challenge};
use crate::error::{connections_suspect, OrDb};
use crate::hot::session_cache::{Neighbours, SessionCache};
use crate::pii::Pii;
use crate::query::sessions::paths::SessionPaths;
use crate::query::sessions::Rotation;

pub use crate::backend::{normalise_url, sqlite_path, Backend};
pub use crate::db::{Db, Reader, Tx, Writer};
pub use sea_orm;

/// How to open a [`Store`].
#[derive(Clone)]
pub struct StoreConfig {
    /// `sqlite://FILE`, `sqlite::memory:` or a PostgreSQL URL (any form
    /// [`normalise_url`] accepts).
    pub url: String,
    /// Connections kept in the pool (and, on PostgreSQL, at most this many kept between
    /// the hot statements).
    pub pool_size: u32,
    /// Extra PostgreSQL connections allowed above the pool size.
    pub max_overflow: u32,
    /// How long a statement waits for a free connection.
    pub acquire_timeout: Duration,
    /// How long a PostgreSQL connection lives before it is replaced.
    pub recycle: Duration,
    /// On a SQLite file, how long a session check's rows may be answered from memory
    /// (zero: never).
    pub session_cache_ttl: Duration,
    /// Whether the hot statements take their backend's fast path; off, everything goes
    /// through the pool.
    pub fast_paths: bool,
    /// Whether pending migrations are applied when the store opens.
    pub migrate: bool,
    /// The PII cipher (`PII_ENCRYPTION_KEY`; [`Pii::off`] without one), checked against
    /// the keys the database's data was encrypted under when the store opens. `None`
    /// for a one-off command that touches no personal data (`tessera migrate`): no check,
    /// and nothing is encrypted or decrypted.
    pub pii: Option<Arc<Pii>>,
    /// The audit events that also become webhook events, and where they go.
    pub events: Arc<events::EventTap>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig").field("pool_size", &self.pool_size).finish_non_exhaustive()
    }
}

impl StoreConfig {
    /// The configuration of a one-off command (`tessera migrate`, a test's look at the
    /// database): one connection, no cache, no fast paths, no migrations.
    pub fn tool(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.to_owned(),
            pool_size: 1,
            max_overflow: 0,
            acquire_timeout: Duration::from_secs(30),
            recycle: Duration::from_secs(3600),
            session_cache_ttl: Duration::ZERO,
            fast_paths: false,
            migrate: false,
            pii: None,
            events: Default::default(),
        }
    }
}

/// What one pool is doing.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub pool: &'static str,
    pub in_use: u32,
    pub idle: u32,
}

/// The database: pools, fast paths and the domain operations that use them.
pub struct Store {
    /// Reads, and every write on PostgreSQL.
    db: DatabaseConnection,
    /// `db` for reads outside a transaction, retried once when their connection died.
    reader: Reader,
    /// Transactions and other writes: on SQLite one connection of its own, so that writers
    /// queue in order instead of racing for the file lock (and sleeping in SQLite's busy
    /// handler); on PostgreSQL the pool.
    writer: Writer,
    /// The session operations and their fast paths.
    sessions: SessionPaths,
    /// The analytics' counts of past days.
    days: query::admin::analytics::DayCache,
    /// On a SQLite file, this store's announcement to every other server and command on it.
    _neighbours: Option<Arc<Neighbours>>,
}

impl Store {
    /// Opens the database: announces itself on a SQLite file (refusing to open when it
    /// cannot), opens the pools, applies pending migrations when asked, and starts the
    /// backend's fast paths. Must be called on a Tokio runtime (the fast paths run tasks).
    pub async fn open(cfg: &StoreConfig) -> Result<Store, String> {
        let (backend, url) = normalise_url(&cfg.url)?;
        // Every server and command on a SQLite file announces itself, cache or no cache:
        // another server's cache must not trust what this one writes.
        let neighbours = Neighbours::announce(&url)?.map(Arc::new);
        let cache = SessionPaths::session_cache(neighbours.as_ref(), cfg.session_cache_ttl, cfg.fast_paths);
        let (db, writer) = match backend {
            Backend::Sqlite => (
                sqlite_pool(&url, cfg.pool_size, cfg, cache.clone()).await?,
                sqlite_pool(&url, 1, cfg, cache.clone()).await?,
            ),
            Backend::Postgres => {
                let pool = postgres_pool(&url, cfg).await?;
                (pool.clone(), pool)
            }
        };
        if cfg.migrate {
            // On the writer, whose one connection each statement waits for: on the reader
            // pool, a statement issued while the last one's connection was still being
            // pinged on release opened another, and every one of those stayed open with its
            // own parsed schema and page cache (~0.4 MiB each, see docs/performance.md).
            migration::Migrator::up(&writer, None).await.map_err(|e| format!("migration failed: {e}"))?;
        }
        if let Some(pii) = &cfg.pii {
            query::pii::check_keys(&writer, pii).await?;
        }
        let pii = cfg.pii.clone().unwrap_or_default();
        let writer_on = |db| Writer { db, budget: cfg.acquire_timeout, pii: pii.clone(), events: cfg.events.clone() };
        let sessions = SessionPaths::start(
            backend,
            &db,
            &url,
            cache,
            cfg.fast_paths,
            cfg.pool_size as usize,
            writer_on(writer.clone()),
        );
        let reader = Reader { db: db.clone(), budget: cfg.acquire_timeout, pii: pii.clone() };
        let writer = writer_on(writer);
        Ok(Store { db, reader, writer, sessions, days: Default::default(), _neighbours: neighbours })
    }

    /// The kind of database.
    pub fn backend(&self) -> Backend {
        match self.db.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// Where reads outside a transaction go.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Where a single write outside a transaction goes.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Counts per UTC day from `since` (a UTC midnight) through today (`today`, its UTC
    /// midnight): the days before today are read once per window and kept five minutes
    /// (they change only when an account is hard-deleted); today is counted live.
    pub async fn per_day(
        &self,
        series: query::admin::analytics::DailySeries,
        since: chrono::DateTime<chrono::Utc>,
        today: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, u64)>, Error> {
        self.days.series(&self.reader, series, since, today).await
    }

    /// The PII cipher.
    pub fn pii(&self) -> &Pii {
        &self.writer.pii
    }

    /// Begins a transaction on the writer. A `BEGIN` whose connection died is sent once
    /// more on another connection (nothing has happened yet), within the pool timeout.
    pub async fn begin(&self) -> Result<Tx, Error> {
        self.writer.begin().await
    }

    /// Connections of each pool (`reader`, `writer`: one pool on PostgreSQL) that are in
    /// use and idle right now.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let stats = |name: &'static str, db: &DatabaseConnection| {
            let (size, idle) = match db.get_database_backend() {
                DbBackend::Postgres => {
                    let p = db.get_postgres_connection_pool();
                    (p.size(), p.num_idle() as u32)
                }
                _ => {
                    let p = db.get_sqlite_connection_pool();
                    (p.size(), p.num_idle() as u32)
                }
            };
            PoolStats { pool: name, in_use: size.saturating_sub(idle), idle }
        };
        match self.backend() {
            Backend::Sqlite => vec![stats("reader", &self.db), stats("writer", &self.writer.db)],
            Backend::Postgres => vec![stats("pool", &self.db)],
        }
    }

    /// Pings the database.
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.or_db()
    }

    /// Closes the pools; every later operation fails.
    pub async fn close(&self) {
        let _ = self.writer.db.clone().close().await;
        let _ = self.db.clone().close().await;
    }

    /// Applies every pending migration.
    pub async fn migrate_up(&self) -> Result<(), String> {
        migration::Migrator::up(&self.db, None).await.map_err(|e| e.to_string())
    }

    /// Rolls back the newest migration.
    pub async fn migrate_down(&self) -> Result<(), String> {
        migration::Migrator::down(&self.db, Some(1)).await.map_err(|e| e.to_string())
    }

    /// Every migration with its status (`Applied`, `Pending`).
    pub async fn migration_status(&self) -> Result<Vec<(String, String)>, String> {
        let list = migration::Migrator::get_migration_with_status(&self.db).await.map_err(|e| e.to_string())?;
        Ok(list.into_iter().map(|m| (m.name().to_owned(), m.status().to_string())).collect())
    }

    /// Why this binary cannot serve the database as it is: `Some` when migrations are
    /// pending (a server that does not migrate at start-up would answer 500s), saying
    /// where the database is and what to run.
    pub async fn schema_problem(&self) -> Result<Option<String>, String> {
        let list = self.migration_status().await?;
        let applied: Vec<&String> = list.iter().filter(|(_, status)| status == "Applied").map(|(n, _)| n).collect();
        if applied.len() == list.len() {
            return Ok(None);
        }
        let at = applied.last().map_or_else(|| "none".to_owned(), |n| n.to_string());
        Ok(Some(format!(
            "the database is at migration {} of {} ({at}); this binary needs all {}: run `tessera migrate`",
            applied.len(),
            list.len(),
            list.len()
        )))
    }

    /// Whether `pii` can read what the database holds (the check a store makes when it
    /// opens, without recording anything): every key id data was encrypted under must be
    /// in the ring, with the same key.
    pub async fn check_pii(&self, pii: &Pii) -> Result<(), String> {
        query::pii::check_keys_read_only(&self.db, pii).await
    }

    /// The session with this id and its user: what every authenticated request checks.
    /// On a SQLite file it may be answered from the session cache.
    pub async fn session_with_user(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.sessions.with_user(id, true).await
    }

    /// The session with this id and its user, read from the database itself (never a
    /// cache): what a refresh decides on.
    pub async fn session_for_refresh(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.sessions.with_user(id, false).await
    }

    /// The session a refresh token issued before the upgrade to counter-derived tokens
    /// belongs to, by the token's SHA-256.
    pub async fn session_by_legacy_token(&self, hash: &str) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.sessions.by_legacy_token(hash).await
    }

    /// Rotates a session's refresh token from `rotation.counter` ([`query::sessions::ROTATE`]
    /// and its audit row, atomically) and answers the rotated session with its user; `None`
    /// when it did not rotate (the counter had moved on, the session is no longer live):
    /// nothing was written then, and the caller reads the session to learn why.
    pub async fn rotate(&self, rotation: Rotation) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.sessions.rotate(rotation).await
    }

    /// A WebAuthn ceremony's challenge of `kind`, read without taking it (a sign-in takes
    /// it with the session it opens).
    pub async fn webauthn_challenge(&self, id: Uuid, kind: &str) -> Result<Option<webauthn_challenge::Model>, Error> {
        Ok(self.sessions.challenge(id).await?.filter(|c| c.kind == kind))
    }

    /// The passkey of a credential id (base64url) and its user, in one read.
    pub async fn passkey_with_user(&self, credential_id: &str) -> Result<Option<(passkey::Model, user::Model)>, Error> {
        self.sessions.passkey_with_user(credential_id).await
    }

    /// Writes a sign-in that opens a session ([`query::sessions::write_sign_in`]) in a
    /// transaction of its own, committed unless the challenge it spends was already gone;
    /// on a SQLite file many sign-ins and rotations share one commit.
    pub async fn sign_in(&self, writes: query::sessions::SignInWrites) -> Result<query::sessions::Written, Error> {
        self.sessions.sign_in(writes).await
    }

    /// Revokes a session and records why, in one transaction of its own.
    pub async fn revoke_session(&self, id: Uuid, audit: audit_log::Model) -> Result<bool, Error> {
        self.sessions.revoke(id, audit).await
    }
}

/// A PostgreSQL pool honouring the size, overflow, timeout and recycle settings.
async fn postgres_pool(url: &str, cfg: &StoreConfig) -> Result<DatabaseConnection, String> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    let pool = PgPoolOptions::new()
        .max_connections((cfg.pool_size + cfg.max_overflow).max(1))
        .min_connections(0)
        .acquire_timeout(cfg.acquire_timeout)
        .max_lifetime(cfg.recycle)
        // sqlx pings every connection when it is released; pinging it again on every
        // acquire doubles the round trips of a one-statement request. A connection idle
        // for a while is still checked (the server may have restarted or dropped it).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                // Also every one while connections are suspect: one just died, so the
                // database may have restarted under all of them.
                if meta.idle_for >= RECHECK_IDLE_AFTER || connections_suspect() {
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

/// A SQLite pool of `size` connections: the file is created if missing and runs in WAL
/// mode with a busy timeout and foreign keys on. With a `cache`, each connection reports
/// the sessions and users it commits to it.
async fn sqlite_pool(
    url: &str,
    size: u32,
    cfg: &StoreConfig,
    cache: Option<Arc<SessionCache>>,
) -> Result<DatabaseConnection, String> {
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
    let cache = cache.filter(|_| sqlite_path(url).is_some());
    let pool = SqlitePoolOptions::new()
        .after_connect(move |conn, _| {
            let cache = cache.clone();
            Box::pin(async move {
                if let Some(cache) = cache {
                    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await?;
                    if mode.eq_ignore_ascii_case("wal") {
                        hot::session_cache::watch(&mut conn.lock_handle().await?, cache);
                    } else {
                        hot::session_cache::unwatchable(&cache);
                    }
                }
                Ok(())
            })
        })
        .max_connections(size.max(1))
        .acquire_timeout(cfg.acquire_timeout)
        // An in-process SQLite connection cannot go stale the way a socket can, and sqlx
        // already pings each connection when it is released; a second ping on acquire is
        // one more round trip to the connection's worker thread on every statement.
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .map_err(|e| format!("cannot open the SQLite database: {e}"))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// A PostgreSQL connection idle this long is pinged before it is handed out again.
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(30);
