//! The session operations of a [`Store`](crate::Store) (the session check, the refresh
//! read, the rotation, the revocation) and the path each takes: the backend's fast path
//! (the private `hot` modules) or the pool. Every path runs the statements of
//! [`super`]: [`super::ROTATE`] for every rotation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tessera_domain::Error;
use uuid::Uuid;

use crate::backend::Backend;
use crate::db::Writer;
use crate::entity::{audit_log, passkey, session, user, webauthn_challenge};
use crate::error::rusqlite_error;
use crate::hot::batch_writer::BatchWriter;
use crate::hot::pg_kept::{KeptError, PgKept};
use crate::hot::session_cache::{Neighbours, SessionCache};
use crate::hot::sqlite_direct::SqliteDirect;
use crate::query::sessions::{self, Rotation, SignInWrites, Written};
use crate::query::{audit, passkeys};

/// The way the hot statements (session check, refresh read, rotation) run.
enum Hot {
    Pooled,
    SqliteFile { direct: Arc<SqliteDirect>, batches: BatchWriter },
    Postgres { kept: Arc<PgKept> },
}

/// A store's session operations, each on the fastest path its backend has.
pub(crate) struct SessionPaths {
    hot: Hot,
    /// The pool reads go to when no fast path answers.
    pool: DatabaseConnection,
    /// How long a request may wait for a connection in all, retries included.
    acquire_timeout: Duration,
    /// Where the pool's rotations and every revocation begin their transaction; its
    /// cipher opens what every path reads.
    writer: Writer,
}

impl SessionPaths {
    /// The session cache of a SQLite file whose store announced itself (`neighbours`),
    /// when fast paths are on and `ttl` is not zero.
    pub(crate) fn session_cache(
        neighbours: Option<&Arc<Neighbours>>,
        ttl: Duration,
        fast_paths: bool,
    ) -> Option<Arc<SessionCache>> {
        neighbours
            .cloned()
            .filter(|_| !ttl.is_zero() && fast_paths)
            .and_then(|n| SessionCache::new(n, ttl))
            .map(Arc::new)
    }

    /// Chooses the backend's fast path beside `pool` (opened on `url`) and starts its
    /// tasks, or the pool alone when `fast_paths` is off or the backend has none. `keep`
    /// is how many PostgreSQL connections may be kept between statements; `writer`'s
    /// budget (the pool timeout) is also the reads'.
    pub(crate) fn start(
        backend: Backend,
        pool: &DatabaseConnection,
        url: &str,
        cache: Option<Arc<SessionCache>>,
        fast_paths: bool,
        keep: usize,
        writer: Writer,
    ) -> SessionPaths {
        let hot = match backend {
            _ if !fast_paths => Hot::Pooled,
            Backend::Sqlite => match SqliteDirect::beside(pool, url, cache) {
                Some(direct) => {
                    let direct = Arc::new(direct);
                    let batches = BatchWriter::start(direct.clone(), writer.db.get_sqlite_connection_pool().clone());
                    Hot::SqliteFile { direct, batches }
                }
                None => Hot::Pooled,
            },
            Backend::Postgres => match PgKept::beside(pool, keep) {
                Some(kept) => Hot::Postgres { kept },
                None => Hot::Pooled,
            },
        };
        SessionPaths { hot, pool: pool.clone(), acquire_timeout: writer.budget, writer }
    }

    /// The session with this id and its user, from the session cache when `cached`
    /// allows and it holds them, else read.
    pub(crate) async fn with_user(
        &self,
        id: Uuid,
        cached: bool,
    ) -> Result<Option<(session::Model, user::Model)>, Error> {
        let found = self.with_user_as_stored(id, cached).await?;
        self.opened(found)
    }

    async fn with_user_as_stored(
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
        tokio::time::timeout(left, sessions::with_user_as_stored(&self.pool, id))
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("no database connection within DB_POOL_TIMEOUT".to_owned())))
    }

    /// A ceremony's challenge by id: in place on a SQLite file when that can answer, on a
    /// kept connection on PostgreSQL, else from the pool.
    pub(crate) async fn challenge(&self, id: Uuid) -> Result<Option<webauthn_challenge::Model>, Error> {
        match &self.hot {
            Hot::SqliteFile { direct, .. } => match direct.challenge(id) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(error = %rusqlite_error(&e), "direct SQLite read failed; asking the pool"),
            },
            Hot::Postgres { kept } => return kept.challenge(id).await.map_err(KeptError::into_error),
            Hot::Pooled => {}
        }
        passkeys::challenge_by_id(&self.pool, id).await
    }

    /// The passkey of a credential id and its user (personal fields decrypted), in one
    /// read: in place on a SQLite file when that can answer, on a kept connection on
    /// PostgreSQL, else from the pool.
    pub(crate) async fn passkey_with_user(
        &self,
        credential_id: &str,
    ) -> Result<Option<(passkey::Model, user::Model)>, Error> {
        let found = 'read: {
            match &self.hot {
                Hot::SqliteFile { direct, .. } => match direct.passkey_with_user(credential_id) {
                    Ok(found) => break 'read found,
                    Err(e) => {
                        tracing::debug!(error = %rusqlite_error(&e), "direct SQLite read failed; asking the pool")
                    }
                },
                Hot::Postgres { kept } => {
                    break 'read kept.passkey_with_user(credential_id).await.map_err(KeptError::into_error)?
                }
                Hot::Pooled => {}
            }
            passkeys::with_user_as_stored(&self.pool, credential_id).await?
        };
        found.map(|(p, u)| Ok((p, self.writer.pii.open_user(u)?))).transpose()
    }

    /// The session a pre-upgrade refresh token belongs to (rare: through the pool).
    pub(crate) async fn by_legacy_token(&self, hash: &str) -> Result<Option<(session::Model, user::Model)>, Error> {
        self.opened(sessions::by_legacy_token(&self.pool, hash).await?)
    }

    /// A session's user as services see it: its personal fields decrypted.
    fn opened(
        &self,
        found: Option<(session::Model, user::Model)>,
    ) -> Result<Option<(session::Model, user::Model)>, Error> {
        sessions::opened(&self.writer.pii, found)
    }

    /// Rotates a session's refresh token ([`super::ROTATE`] and its audit row). On a
    /// SQLite file the session is read first, in place, and only a rotation that can
    /// happen waits for the batch writer's next batch; on PostgreSQL it is one
    /// statement on a kept connection, one round trip; elsewhere a transaction of the pool.
    pub(crate) async fn rotate(&self, rotation: Rotation) -> Result<Option<(session::Model, user::Model)>, Error> {
        match &self.hot {
            Hot::SqliteFile { batches, .. } => {
                let Some((session, user)) = self.with_user(rotation.session_id, false).await? else {
                    return Ok(None);
                };
                if !sessions::rotatable(&session, &user, &rotation) {
                    return Ok(None);
                }
                let audit = rotation.audit_by(user.id);
                let applied = rotation.apply(session);
                if !batches.rotate(Rotation { audit, ..rotation }).await? {
                    return Ok(None);
                }
                Ok(Some((applied, user)))
            }
            Hot::Postgres { kept } => self.opened(kept.rotate(&rotation).await.map_err(KeptError::into_error)?),
            Hot::Pooled => {
                let tx = self.writer.begin().await?;
                let rotated = sessions::rotate(&tx, &rotation).await?;
                if rotated.is_some() {
                    tx.commit().await?;
                }
                self.opened(rotated)
            }
        }
    }

    /// A sign-in's writes ([`sessions::write_sign_in`]) in a transaction of their own: on
    /// a SQLite file in the batch writer's next batch, on PostgreSQL one statement on a
    /// kept connection (a transaction of the pool when sessions are capped), else a
    /// transaction of the pool. Committed unless the challenge was already gone.
    pub(crate) async fn sign_in(&self, mut writes: SignInWrites) -> Result<Written, Error> {
        // The fast paths open sessions of tessera's own; one for an OAuth client goes
        // through the transaction, and so does one whose audit row becomes a webhook event
        // (queued beside it).
        let own =
            writes.session.oauth_client_id.is_none() && self.writer.events.webhook_event(&writes.audit.event).is_none();
        match &self.hot {
            Hot::SqliteFile { batches, .. } if own => {
                writes.audit = audit::sealed(&self.writer.pii, writes.audit)?;
                batches.sign_in(writes).await
            }
            // One statement on a kept connection; the cap needs a transaction.
            Hot::Postgres { kept } if writes.max_sessions == 0 && own => {
                writes.audit = audit::sealed(&self.writer.pii, writes.audit)?;
                kept.sign_in(&writes).await.map_err(KeptError::into_error)
            }
            Hot::SqliteFile { .. } | Hot::Postgres { .. } | Hot::Pooled => {
                let tx = self.writer.begin().await?;
                let written = sessions::write_sign_in(&tx, writes).await?;
                if !matches!(written, Written::ChallengeGone) {
                    tx.commit().await?;
                }
                Ok(written)
            }
        }
    }

    /// Revokes a session and records why, in one transaction of its own.
    pub(crate) async fn revoke(&self, id: Uuid, audit: audit_log::Model) -> Result<bool, Error> {
        let tx = self.writer.begin().await?;
        let revoked = sessions::revoke(&tx, id, audit.created_at).await?;
        audit::insert(&tx, audit).await?;
        tx.commit().await?;
        Ok(revoked)
    }
}
