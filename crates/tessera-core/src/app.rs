//! The application: [`Core`] (settings, database, hasher, keys, counters, mailer) and
//! how it starts; the store's configuration and the start-up checks.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tessera_store::{Store, StoreConfig};

use crate::audit::AuditFile;
use crate::crypto::derive_key;
use crate::hasher::PasswordHasher;
use crate::kv::Kv;
use crate::mail::transport::Mailer;
use crate::mfa::keys::{keys_from, MfaKeys};
use crate::session::tokens::{JwtKeys, RefreshKeys};
use crate::settings::Settings;

/// The application: settings, database, hasher and token keys, shared by every surface.
pub struct Core {
    pub settings: Arc<Settings>,
    /// The database, and the only way to it.
    pub store: Arc<Store>,
    pub hasher: PasswordHasher,
    pub jwt: JwtKeys,
    /// Seals and opens refresh tokens.
    pub refresh_keys: RefreshKeys,
    /// Encrypts and decrypts TOTP secrets.
    pub(crate) mfa_keys: MfaKeys,
    /// Rate-limit counters and lockout state: Redis when configured, else memory.
    pub kv: Kv,
    /// Templates, transport and the outbox sender's state.
    pub mailer: Mailer,
    /// The key one-time codes are hashed with.
    pub(crate) code_key: Vec<u8>,
    /// Keys the per-address counters (lockout, reset and code limits) in memory or Redis.
    pub(crate) limit_key: Vec<u8>,
    /// Where audit events are also written as JSON lines (`AUDIT_LOG_DIR`).
    pub audit_file: Option<Arc<AuditFile>>,
    /// The WebAuthn relying party of passkeys; none with `PASSKEYS_ENABLED=false`.
    pub(crate) webauthn: Option<crate::passkey::relying_party::RelyingParty>,
    /// The sign-in providers (SPEC §5.11) and the client that reaches them.
    pub providers: crate::identity::provider::Providers,
    /// Signs the `state` of redirects to providers.
    pub(crate) oauth_key: Vec<u8>,
    /// tessera's own OAuth 2.1 / OpenID Connect provider (SPEC §5.12); none without an
    /// asymmetric signing key.
    pub(crate) provider: Option<crate::oauth::keys::Provider>,
    /// The client auth hooks, webhooks and SMS providers are called with.
    pub(crate) hook_http: reqwest::Client,
}

/// Gauges of the server's state (see [`Core::vitals`]).
#[derive(Debug, Clone)]
pub struct Vitals {
    /// Password hashes waiting for a worker.
    pub hash_queue: usize,
    /// Mail waiting to be sent; `None` when the database did not answer.
    pub outbox_pending: Option<u64>,
    /// Webhook events waiting for delivery, and given up on; `None` without webhooks
    /// or when the database did not answer.
    pub webhooks: Option<(u64, u64)>,
    /// What each database pool is doing.
    pub pools: Vec<tessera_store::PoolStats>,
}

/// How the store is opened for `settings`: migrations as `AUTO_MIGRATE` says, personal
/// data encrypted under `PII_ENCRYPTION_KEY` when it is set.
pub fn store_config(settings: &Settings) -> Result<StoreConfig, String> {
    let pii = match &settings.pii_encryption_key {
        Some(ring) => {
            tessera_store::pii::Pii::parse(ring.expose_secret()).map_err(|e| format!("PII_ENCRYPTION_KEY: {e}"))?
        }
        None => tessera_store::pii::Pii::off(),
    };
    Ok(StoreConfig {
        url: settings.database_url.expose_secret().to_owned(),
        pool_size: settings.db_pool_size,
        max_overflow: settings.db_max_overflow,
        acquire_timeout: settings.db_pool_timeout,
        recycle: settings.db_pool_recycle,
        session_cache_ttl: Duration::from_millis(settings.session_cache_ms),
        fast_paths: true,
        migrate: settings.auto_migrate,
        pii: Some(Arc::new(pii)),
        events: Arc::new(crate::hooks::events::tap(settings.webhooks.as_ref())),
    })
}

/// What would stop the server from starting with `settings`, checked as start-up checks
/// it but changing nothing: the production rules, the secrets and keys, the PII ring
/// against the data (with `store`, the configured database opened without migrating),
/// pending migrations when `AUTO_MIGRATE=false`, Redis's URL, the mail transport and the
/// audit directory. One line per problem; `tessera config check` prints them.
pub async fn start_problems(settings: &Settings, store: Option<&Store>) -> Vec<String> {
    let mut problems = settings.production_problems();
    let listed_already = !problems.is_empty();
    let mut push = |p: String| {
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    if !listed_already {
        // Outside production the same rules about secrets, which production lists above.
        if let Err(e) = settings.clone().ensure_secrets() {
            push(e);
        }
    }
    if settings.jwt_secret.is_some() || settings.jwt_asymmetric() {
        if let Err(e) = JwtKeys::from_settings(settings) {
            push(e);
        }
    }
    if let Some(url) = &settings.redis_url {
        if let Err(e) = Kv::redis(url.expose_secret(), 1) {
            push(e);
        }
    }
    if let Err(e) = Mailer::check(&settings.mail, settings.is_development()) {
        push(e);
    }
    if let Err(e) = crate::passkey::relying_party::RelyingParty::from_settings(settings) {
        push(e);
    }
    if let Some(dir) = &settings.audit_log_dir {
        if let Err(e) = AuditFile::check(dir) {
            push(e);
        }
    }
    match store_config(settings) {
        Err(e) => push(e),
        Ok(cfg) => {
            if let (Some(store), Some(pii)) = (store, &cfg.pii) {
                if let Err(e) = store.check_pii(pii).await {
                    push(e);
                }
                if !settings.auto_migrate {
                    match store.schema_problem().await {
                        Ok(Some(p)) => push(format!("AUTO_MIGRATE=false, and {p}")),
                        Ok(None) => {}
                        Err(e) => push(format!("cannot read the database's migrations: {e}")),
                    }
                }
            }
        }
    }
    problems
}

impl Core {
    /// Opens the store (running pending migrations unless disabled), and builds the
    /// hasher and token keys. The secrets must be resolved already
    /// ([`Settings::ensure_secrets`]).
    pub async fn start(mut settings: Settings) -> Result<Arc<Core>, String> {
        let store = Arc::new(Store::open(&store_config(&settings)?).await?);
        if !settings.auto_migrate {
            if let Some(problem) = store.schema_problem().await? {
                return Err(problem);
            }
        }
        let resolved = crate::secrets::resolve(&mut settings, &store).await?;
        let hasher = PasswordHasher::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            settings.hash_workers,
            settings.hash_queue,
        )?;
        let jwt = JwtKeys::from_settings(&settings)?;
        let mut refresh_keys = RefreshKeys::from_settings(&settings)?;
        if let Some(old) = &resolved.legacy_refresh_key {
            refresh_keys.also_open(old.expose_secret().as_bytes());
        }
        let mfa_keys = keys_from(settings.mfa_encryption_key.as_ref())?;
        let kv = match &settings.redis_url {
            Some(url) => Kv::redis(url.expose_secret(), settings.rate_limit_memory_keys)?,
            None => Kv::memory(settings.rate_limit_memory_keys),
        };
        let mailer = Mailer::new(&settings.mail, settings.is_development())?;
        // The JWT secret, or with an asymmetric algorithm and no JWT secret the first
        // refresh-token secret: every node of a deployment shares either.
        let server_secret = settings
            .jwt_secret
            .as_ref()
            .or(settings.refresh_token_secret.first())
            .ok_or("no JWT secret or REFRESH_TOKEN_SECRET configured")?;
        let code_key = derive_key(server_secret.expose_secret().as_bytes(), b"tessera one-time code key v1");
        let limit_key = derive_key(server_secret.expose_secret().as_bytes(), b"tessera per-address limit key v1");
        let audit_file = match &settings.audit_log_dir {
            Some(dir) => Some(Arc::new(AuditFile::open(dir.clone())?)),
            None => None,
        };
        let webauthn = crate::passkey::relying_party::RelyingParty::from_settings(&settings)?;
        let providers = crate::identity::provider::Providers::new(&settings.external, settings.external_http_timeout)?;
        let oauth_key = derive_key(server_secret.expose_secret().as_bytes(), b"tessera oauth state key v1");
        let provider =
            crate::oauth::keys::Provider::from_settings(&settings, server_secret.expose_secret().as_bytes())?;
        let hook_http = crate::hooks::dispatch::http_client()?;
        let core = Arc::new(Core {
            settings: Arc::new(settings),
            store,
            hasher,
            jwt,
            refresh_keys,
            mfa_keys,
            kv,
            mailer,
            code_key,
            limit_key,
            audit_file,
            webauthn,
            providers,
            oauth_key,
            provider,
            hook_http,
        });
        crate::audit::with_audit_file(core.audit_file.clone(), core.bootstrap_first_admin()).await?;
        Ok(core)
    }

    /// What the server is doing right now, for the gauges of `/metrics`.
    pub async fn vitals(&self) -> Vitals {
        Vitals {
            hash_queue: self.hasher.queue_depth(),
            outbox_pending: tessera_store::query::outbox::pending_count(self.store.reader()).await.ok(),
            webhooks: match self.settings.webhooks {
                Some(_) => self.webhook_counts().await.ok(),
                None => None,
            },
            pools: self.store.pool_stats(),
        }
    }

    /// Pings the database; returns the round-trip time.
    pub async fn ping_database(&self) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(2), self.store.ping())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }
}
