//! tessera's services: everything the HTTP surfaces do is a call into [`Core`].
//! A service owns its transaction; handlers never run SQL or decide policy.

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod hasher;
pub mod kv;
pub mod limits;
pub mod mail;
mod rotation_writer;
pub mod seed;
pub mod settings;
pub mod tokens;
pub mod users;
pub mod verification;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use tessera_store::MigratorTrait;

pub use sea_orm;
pub use tessera_domain as domain;
pub use tessera_store::entity;

use crate::audit::AuditFile;
use crate::hasher::PasswordHasher;
use crate::kv::Kv;
use crate::mail::Mailer;
use crate::rotation_writer::RotationWriter;
use crate::settings::Settings;
use crate::tokens::JwtKeys;

/// Who is calling, for sessions and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// The application: settings, database, hasher and token keys, shared by every surface.
pub struct Core {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    /// Where transactions and writes go: on SQLite one connection of its own, so that
    /// writers queue in order instead of racing for the file lock; else `db` itself.
    pub writer: DatabaseConnection,
    /// On a SQLite file, connections of its own for the statements every authenticated
    /// request and every refresh run (the pool answers reads it cannot).
    sqlite_direct: Option<Arc<tessera_store::SqliteDirect>>,
    /// On PostgreSQL, pool connections kept between the statements every authenticated
    /// request and every refresh run (they skip sqlx's ping on release).
    pg_kept: Option<Arc<tessera_store::PgKept>>,
    /// On a SQLite file, the task that writes refresh rotations in batches.
    rotations: Option<RotationWriter>,
    pub hasher: PasswordHasher,
    pub jwt: JwtKeys,
    /// Rate-limit counters and lockout state: Redis when configured, else memory.
    pub kv: Kv,
    /// Templates, transport and the outbox sender's state.
    pub mailer: Mailer,
    /// The key one-time codes are hashed with.
    code_key: Vec<u8>,
    /// Where audit events are also written as JSON lines (`AUDIT_LOG_DIR`).
    pub audit_file: Option<Arc<AuditFile>>,
    /// On a SQLite file, this server's announcement to the others on it.
    _neighbours: Option<Arc<tessera_store::Neighbours>>,
}

/// Now, truncated to microseconds (what PostgreSQL stores), in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Core {
    /// Connects to the database, runs pending migrations unless disabled, and builds
    /// the hasher and token keys. The JWT secret must be resolved already.
    pub async fn start(settings: Settings) -> Result<Arc<Core>, String> {
        // On a SQLite file, this server announces itself to every other on the file
        // (whose session caches must not trust what it writes), cache or no cache; and
        // session checks are answered from memory, every pool on the file reporting its
        // commits to the cache (see tessera_store::SessionCache).
        let neighbours = tessera_store::Neighbours::announce(settings.database_url.expose_secret())?.map(Arc::new);
        let session_cache = neighbours
            .clone()
            .filter(|_| settings.session_cache_ms > 0)
            .and_then(|n| tessera_store::SessionCache::new(n, Duration::from_millis(settings.session_cache_ms)))
            .map(Arc::new);
        let pool = tessera_store::PoolConfig {
            size: settings.db_pool_size,
            max_overflow: settings.db_max_overflow,
            acquire_timeout: settings.db_pool_timeout,
            recycle: settings.db_pool_recycle,
            session_cache: session_cache.clone(),
        };
        let db = tessera_store::connect(settings.database_url.expose_secret(), &pool).await?;
        let writer = tessera_store::connect_writer(settings.database_url.expose_secret(), &pool).await?;
        if settings.auto_migrate {
            tessera_store::migration::Migrator::up(&db, None).await.map_err(|e| format!("migration failed: {e}"))?;
        }
        let hasher = PasswordHasher::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            settings.hash_workers,
            settings.hash_queue,
        )?;
        let jwt = JwtKeys::from_settings(&settings)?;
        let kv = match &settings.redis_url {
            Some(url) => Kv::redis(url.expose_secret())?,
            None => Kv::memory(),
        };
        let mailer = Mailer::new(&settings.mail, settings.is_development())?;
        let code_key = match &settings.jwt_secret {
            Some(secret) => verification::derive_code_key(secret),
            None => return Err("no JWT secret configured".to_owned()),
        };
        let audit_file = match &settings.audit_log_dir {
            Some(dir) => Some(Arc::new(AuditFile::open(dir.clone())?)),
            None => None,
        };
        let sqlite_direct =
            tessera_store::SqliteDirect::beside(&db, settings.database_url.expose_secret(), session_cache)
                .map(Arc::new);
        let pg_kept = tessera_store::PgKept::beside(&db, settings.db_pool_size as usize);
        let settings = Arc::new(settings);
        let writer = writer.unwrap_or_else(|| db.clone());
        let rotations = sqlite_direct
            .as_ref()
            .map(|direct| RotationWriter::start(direct.clone(), writer.get_sqlite_connection_pool().clone()));
        let core = Arc::new(Core {
            settings,
            db,
            writer,
            sqlite_direct,
            pg_kept,
            rotations,
            hasher,
            jwt,
            kv,
            mailer,
            code_key,
            audit_file,
            _neighbours: neighbours,
        });
        crate::audit::with_audit_file(core.audit_file.clone(), core.bootstrap_first_admin()).await?;
        Ok(core)
    }

    /// Pings the database; returns the round-trip time.
    pub async fn ping_database(&self) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(2), self.db.ping())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }
}
