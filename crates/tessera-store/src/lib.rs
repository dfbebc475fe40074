//! tessera's storage: the one door to the database.
//!
//! [`Store`] owns the connection pools and everything that makes the hot statements fast
//! on each backend; services see domain operations ([`query`] and the methods of
//! [`Store`]) that answer in [`tessera_domain::Error`]. The fast paths are private:
//!
//! - on a SQLite file, session checks read in place through connections of their own,
//!   answered from a session cache when they can be, and refresh rotations are written
//!   in batches by one task (`hot::sqlite_direct`, `hot::session_cache`,
//!   `hot::rotation_writer`); every server and command on the file announces itself
//!   beside it, so that no cache trusts rows another may have written;
//! - on PostgreSQL, session checks and rotations run on pool connections kept between
//!   statements, and the session checks that arrive together are read in one statement
//!   (`hot::pg_kept`);
//! - otherwise (an in-memory SQLite database, or [`StoreConfig::fast_paths`] off),
//!   everything goes through the pool, the reference every fast path is tested against.

pub mod entity;
mod error;
mod hot;
pub mod migration;
pub mod pii;
pub mod query;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::prelude::async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult,
    SqlxPostgresConnector, SqlxSqliteConnector, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::{audit_log, session, user};
use crate::error::{connections_suspect, db_connection_died, note_dead_connection, rusqlite_error, OrDb};
use crate::hot::pg_kept::{KeptError, PgKept};
use crate::hot::rotation_writer::RotationWriter;
use crate::hot::session_cache::{Neighbours, SessionCache};
use crate::hot::sqlite_direct::SqliteDirect;
use crate::pii::Pii;
use crate::query::sessions::Rotation;

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

/// The kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The way the hot statements (session check, refresh read, rotation) run.
enum Hot {
    Pooled,
    SqliteFile { direct: Arc<SqliteDirect>, rotations: RotationWriter },
    Postgres { kept: Arc<PgKept> },
}

/// The database: pools, fast paths and the domain operations that use them.
pub struct Store {
    /// Reads, and every write on PostgreSQL.
    db: DatabaseConnection,
    /// `db` for reads outside a transaction, retried once when their connection died.
    reader: Reader,
    /// How long a request may wait for a connection in all, retries included.
    acquire_timeout: Duration,
    /// Transactions and other writes: on SQLite one connection of its own, so that writers
    /// queue in order instead of racing for the file lock (and sleeping in SQLite's busy
    /// handler); on PostgreSQL the pool.
    writer: Writer,
    hot: Hot,
    /// The analytics' counts of past days.
    days: query::admin::analytics::DayCache,
    /// On a SQLite file, this store's announcement to every other server and command on it.
    _neighbours: Option<Arc<Neighbours>>,
}

/// The connection for reads outside a transaction ([`Store::reader`]). A read whose
/// connection died (the database restarted, the network dropped it) runs once more, on
/// another connection, within what is left of the pool timeout: a read is safe to repeat.
pub struct Reader {
    db: DatabaseConnection,
    budget: Duration,
    pii: Arc<Pii>,
}

/// A connection of a [`Store`] ([`Store::reader`], [`Store::writer`], a [`Tx`]): what the
/// operations that read or write personal data take, so that they can encrypt and
/// decrypt it with the store's [`Pii`] cipher.
pub trait Db: ConnectionTrait {
    /// The store's PII cipher.
    fn pii(&self) -> &Pii;
}

impl Db for Reader {
    fn pii(&self) -> &Pii {
        &self.pii
    }
}

impl Db for Tx {
    fn pii(&self) -> &Pii {
        &self.1
    }
}

impl Db for Writer {
    fn pii(&self) -> &Pii {
        &self.pii
    }
}

/// The connection of single writes outside a transaction ([`Store::writer`]).
pub struct Writer {
    db: DatabaseConnection,
    pii: Arc<Pii>,
}

impl Reader {
    async fn again<T, F, Fut>(&self, run: F) -> Result<T, DbErr>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        let started = Instant::now();
        match run().await {
            Err(e) if db_connection_died(&e) => {
                note_dead_connection();
                tracing::info!(error = %e, "a read's connection died; reading again on another connection");
                let left = self.budget.saturating_sub(started.elapsed());
                tokio::time::timeout(left, run()).await.unwrap_or(Err(e))
            }
            other => other,
        }
    }
}

#[async_trait]
impl ConnectionTrait for Reader {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.again(|| self.db.execute_raw(stmt.clone())).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.again(|| self.db.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.again(|| self.db.query_one_raw(stmt.clone())).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.again(|| self.db.query_all_raw(stmt.clone())).await
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

/// A transaction from [`Store::begin`]: pass `&tx` to any [`query`] operation, then
/// [`Tx::commit`]. Dropped without a commit, it rolls back.
pub struct Tx(DatabaseTransaction, Arc<Pii>);

impl Tx {
    /// Commits.
    pub async fn commit(self) -> Result<(), Error> {
        self.0.commit().await.or_db()
    }
}

/// `ConnectionTrait` for a wrapper, by its connection `$field`.
macro_rules! delegate_connection {
    ($ty:ty, $field:tt) => {
        #[async_trait]
        impl ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                self.$field.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.$field.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.$field.execute_unprepared(sql).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.$field.query_one_raw(stmt).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.$field.query_all_raw(stmt).await
            }

            fn support_returning(&self) -> bool {
                self.$field.support_returning()
            }
        }
    };
}

delegate_connection!(Tx, 0);
delegate_connection!(Writer, db);

impl Store {
    /// Opens the database: announces itself on a SQLite file (refusing to open when it
    /// cannot), opens the pools, applies pending migrations when asked, and starts the
    /// backend's fast paths. Must be called on a Tokio runtime (the fast paths run tasks).
    pub async fn open(cfg: &StoreConfig) -> Result<Store, String> {
        let (backend, url) = normalise_url(&cfg.url)?;
        // Every server and command on a SQLite file announces itself, cache or no cache:
        // another server's cache must not trust what this one writes.
        let neighbours = Neighbours::announce(&url)?.map(Arc::new);
        let cache = neighbours
            .clone()
            .filter(|_| !cfg.session_cache_ttl.is_zero() && cfg.fast_paths)
            .and_then(|n| SessionCache::new(n, cfg.session_cache_ttl))
            .map(Arc::new);
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
        let hot = match backend {
            _ if !cfg.fast_paths => Hot::Pooled,
            Backend::Sqlite => match SqliteDirect::beside(&db, &url, cache) {
                Some(direct) => {
                    let direct = Arc::new(direct);
                    let rotations = RotationWriter::start(direct.clone(), writer.get_sqlite_connection_pool().clone());
                    Hot::SqliteFile { direct, rotations }
                }
                None => Hot::Pooled,
            },
            Backend::Postgres => match PgKept::beside(&db, cfg.pool_size as usize) {
                Some(kept) => Hot::Postgres { kept },
                None => Hot::Pooled,
            },
        };
        let reader = Reader { db: db.clone(), budget: cfg.acquire_timeout, pii: pii.clone() };
        let writer = Writer { db: writer, pii: pii.clone() };
        Ok(Store {
            db,
            reader,
            acquire_timeout: cfg.acquire_timeout,
            writer,
            hot,
            days: Default::default(),
            _neighbours: neighbours,
        })
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
        let started = Instant::now();
        let tx = |t| Tx(t, self.writer.pii.clone());
        match self.writer.db.begin().await {
            Err(e) if db_connection_died(&e) => {
                note_dead_connection();
                let left = self.acquire_timeout.saturating_sub(started.elapsed());
                tokio::time::timeout(left, self.writer.db.begin()).await.unwrap_or(Err(e)).or_db().map(tx)
            }
            begun => begun.or_db().map(tx),
        }
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
        self.read_session(id, true).await
    }

    /// The session with this id and its user, read from the database itself (never a
    /// cache): what a refresh decides on.
    pub async fn session_for_refresh(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.read_session(id, false).await
    }

    async fn read_session(&self, id: Uuid, cached: bool) -> Result<Option<(session::Model, user::Model)>, Error> {
        let found = self.read_session_as_stored(id, cached).await?;
        self.opened(found)
    }

    async fn read_session_as_stored(
        &self,
        id: Uuid,
        cached: bool,
    ) -> Result<Option<(session::Model, user::Model)>, Error> {
        // A fast path that cannot answer outright (a busy file, a value stored in a form
        // it does not parse, a kept connection that died) leaves the read to the pool,
        // whose answer is final, within what is left of the pool timeout. One that could
        // not even get a connection answers at once: the pool would only wait again.
        let started = Instant::now();
        match &self.hot {
            Hot::SqliteFile { direct, .. } => match direct.session_with_user(id, cached) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(error = %rusqlite_error(&e), "direct SQLite read failed; asking the pool"),
            },
            // A session check joins the next batch; a refresh, which rotates next and
            // holds its caller meanwhile, reads at once.
            Hot::Postgres { kept } => match kept.session_with_user(id, cached).await {
                Ok(found) => return Ok(found),
                Err(e @ KeptError::Acquire(_)) => return Err(e.into_error()),
                Err(e) => tracing::debug!(error = %e.into_error(), "read on a kept connection failed; asking the pool"),
            },
            Hot::Pooled => {}
        }
        let left = self.acquire_timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(left, query::sessions::with_user_as_stored(&self.db, id))
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("no database connection within DB_POOL_TIMEOUT".to_owned())))
    }

    /// The session a refresh token issued before the upgrade to counter-derived tokens
    /// belongs to, by the token's SHA-256 (rare: through the pool).
    pub async fn session_by_legacy_token(&self, hash: &str) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.opened(query::sessions::by_legacy_token(&self.db, hash).await?)
    }

    /// A session's user as services see it: its personal fields decrypted.
    fn opened(
        &self,
        found: Option<(session::Model, user::Model)>,
    ) -> Result<Option<(session::Model, user::Model)>, Error> {
        query::sessions::opened(self.pii(), found)
    }

    /// Rotates a session's refresh token from `rotation.counter` ([`query::sessions::ROTATE`]
    /// and its audit row, atomically) and answers the rotated session with its user; `None`
    /// when it did not rotate (the counter had moved on, the session is no longer live):
    /// nothing was written then, and the caller reads the session to learn why. On a
    /// SQLite file the session is read first, in place, and only a rotation that can
    /// happen waits for the rotation writer's next batch; on PostgreSQL it is one
    /// statement on a kept connection, one round trip; elsewhere a transaction of the pool.
    pub async fn rotate(&self, rotation: Rotation) -> Result<Option<(session::Model, user::Model)>, Error> {
        match &self.hot {
            Hot::SqliteFile { rotations, .. } => {
                let Some((session, user)) = self.session_for_refresh(rotation.session_id).await? else {
                    return Ok(None);
                };
                if !query::sessions::rotatable(&session, &user, &rotation) {
                    return Ok(None);
                }
                let audit = rotation.audit_by(user.id);
                let applied = rotation.apply(session);
                if !rotations.rotate(Rotation { audit, ..rotation }).await? {
                    return Ok(None);
                }
                Ok(Some((applied, user)))
            }
            Hot::Postgres { kept } => self.opened(kept.rotate(&rotation).await.map_err(KeptError::into_error)?),
            Hot::Pooled => {
                let tx = self.begin().await?;
                let rotated = query::sessions::rotate(&tx, &rotation).await?;
                if rotated.is_some() {
                    tx.commit().await?;
                }
                self.opened(rotated)
            }
        }
    }

    /// Revokes a session and records why, in one transaction of its own.
    pub async fn revoke_session(&self, id: Uuid, audit: audit_log::Model) -> Result<bool, Error> {
        let tx = self.begin().await?;
        let revoked = query::sessions::revoke(&tx, id, audit.created_at).await?;
        query::audit::insert(&tx, audit).await?;
        tx.commit().await?;
        Ok(revoked)
    }
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

/// How many pages the SQLite WAL holds before the commit that crosses the mark copies them
/// into the database file (SQLite's default is 1,000). A checkpoint costs two `fsync`s
/// and one write of every page changed since the last, however often that page changed:
/// under a steady stream of rotations, 4,000 pages (16 MiB of WAL) made each one cheaper
/// for the writer than 1,000 did.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 4000;

/// A PostgreSQL connection idle this long is pinged before it is handed out again.
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(30);
