//! The statements every authenticated request and every refresh run on PostgreSQL, on
//! pool connections kept checked out between them.
//!
//! sqlx pings a connection each time it goes back to its pool: a second round trip, and
//! a second wake-up of a PostgreSQL backend, for every one-statement request. Connections
//! kept here skip that: after a statement that completed, a connection waits here for
//! the next one instead of going back. It goes back through the pool's own path (ping,
//! close if broken) when its statement failed other than by the database's answer, when
//! this already keeps as many as it may, after [`KEEP_IDLE`] unused, and when the pool
//! is closed. A request dropped mid-statement drops its connection the pool's way too.
//!
//! Session checks that arrive together are read together: one statement per round trip
//! (`WHERE s.id = ANY($1)`) answers every check queued while the last one was out, as
//! the SQLite rotation writer does for writes. Each check still reads the database after
//! it arrived (the statement that answers it starts after it was queued), so a session
//! revoked on any node before a request came is refused (SPEC §4.4), while PostgreSQL and
//! this process wake once per batch instead of once per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::entity::{passkey, session, user, webauthn_challenge};
use crate::query::sessions::{Rotation, SignInWrites, Written, ROTATE};

/// Why a statement on a kept connection failed (shared by every check a batch answers).
#[derive(Debug, Clone)]
pub(crate) enum KeptError {
    /// No connection could be had from the pool (it timed out, is closed, or the
    /// database refused a new connection): asking the pool again would wait again.
    Acquire(Arc<sqlx::Error>),
    /// The statement failed on its connection (see [`crate::error::connection_died`]).
    Statement(Arc<sqlx::Error>),
}

impl KeptError {
    /// The domain error: a connection that could not be had is `Unavailable` whatever the
    /// cause.
    pub(crate) fn into_error(self) -> tessera_domain::Error {
        match self {
            KeptError::Acquire(e) => match crate::error::sqlx_error(&e) {
                tessera_domain::Error::Internal(cause) => tessera_domain::Error::Unavailable(cause),
                other => other,
            },
            KeptError::Statement(e) => crate::error::sqlx_error(&e),
        }
    }
}

/// A kept connection unused this long goes back to the pool.
pub(crate) const KEEP_IDLE: Duration = Duration::from_secs(5);

/// The most session checks one statement answers.
const MAX_READS: usize = 256;
/// How many batches of session checks may be out at once (each on its own connection).
const READERS: usize = 2;
/// Session checks waiting beyond the batches being read; callers wait for room.
const READ_QUEUE: usize = 4096;

type Found = Option<(session::Model, user::Model)>;
type Read = (Uuid, oneshot::Sender<Result<Found, KeptError>>);

/// Pool connections kept for the hot statements on PostgreSQL, and the queue of session
/// checks read in batches on them.
pub(crate) struct PgKept {
    pool: PgPool,
    kept: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    max: usize,
    reads: mpsc::Sender<Read>,
}

impl PgKept {
    /// Keeps up to `max` connections of `db`'s pool when it is PostgreSQL (none for 0:
    /// every statement then takes one from the pool); `None` for SQLite. Starts a task
    /// on the current runtime that hands idle ones back, and all of them when the pool
    /// is closed.
    pub(crate) fn beside(db: &DatabaseConnection, max: usize) -> Option<Arc<PgKept>> {
        if db.get_database_backend() != DbBackend::Postgres {
            return None;
        }
        let pool = db.get_postgres_connection_pool().clone();
        let (reads, queue) = mpsc::channel(READ_QUEUE);
        let kept = Arc::new(PgKept { pool: pool.clone(), kept: Mutex::new(Vec::new()), max, reads });
        tokio::spawn(hand_back_idle(pool, Arc::downgrade(&kept)));
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..READERS {
            tokio::spawn(read_batches(Arc::downgrade(&kept), queue.clone()));
        }
        Some(kept)
    }

    /// The session with this id and its user, as [`crate::query::sessions::with_user`]
    /// reads them: in the next batch of checks when `batched`, else in a statement of its
    /// own.
    pub(crate) async fn session_with_user(&self, id: Uuid, batched: bool) -> Result<Found, KeptError> {
        if !batched {
            let sql = crate::query::sessions::with_user_sql(DbBackend::Postgres);
            let row = self.fetch_optional(sqlx::query(sql).bind(id)).await?;
            return row.as_ref().map(session_and_user).transpose().map_err(|e| KeptError::Statement(Arc::new(e)));
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || KeptError::Statement(Arc::new(sqlx::Error::WorkerCrashed));
        self.reads.send((id, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Answers a batch of session checks (emptying `batch`) with one statement. A row
    /// that does not decode fails its own checks only; a failed statement fails them all.
    async fn answer_reads(&self, batch: &mut Vec<Read>) {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ANY($1)",
                crate::query::sessions::row::SESSION_AND_USER
            )
        });
        let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows = match self.fetch_all(sqlx::query(sql.as_str()).bind(ids)).await {
            Ok(rows) => rows,
            Err(e) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut found: HashMap<Uuid, Result<(session::Model, user::Model), KeptError>> = HashMap::new();
        for row in &rows {
            match session_and_user(row) {
                Ok(pair) => {
                    found.insert(pair.0.id, Ok(pair));
                }
                // Its id decodes even where another column does not.
                Err(e) => {
                    if let Ok(id) = Columns(row).get::<Uuid>(0) {
                        found.insert(id, Err(KeptError::Statement(Arc::new(e))));
                    }
                }
            }
        }
        for (id, reply) in batch.drain(..) {
            let answer = match found.get(&id) {
                Some(Ok(pair)) => Ok(Some(pair.clone())),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(None),
            };
            let _ = reply.send(answer);
        }
    }

    /// Rotates in one statement, one round trip: [`ROTATE`], the audit row and the read of
    /// the rotated session with its user, as data-modifying CTEs (atomic as any single
    /// statement is). A concurrent rotation of the same token waits for the session row's
    /// lock, then finds the counter moved and changes nothing, so its audit row is not
    /// written either. `None` when it did not rotate.
    pub(crate) async fn rotate(&self, r: &Rotation) -> Result<Option<(session::Model, user::Model)>, KeptError> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "WITH s AS ({ROTATE} RETURNING *), audited AS (INSERT INTO audit_log (id, created_at, event, \
                 user_id, actor_id, ip, user_agent, request_id, detail) SELECT $5, $6, $7, s.user_id, s.user_id, \
                 $8, $9, $10, $11 FROM s) SELECT {} FROM s JOIN users u ON u.id = s.user_id",
                crate::query::sessions::row::SESSION_AND_USER
            )
        });
        let a = &r.audit;
        // Built once from constants: a `&'static str`, the only SQL sqlx takes unasserted.
        let query = sqlx::query(sql.as_str())
            .bind(r.now)
            .bind(r.expires_at)
            .bind(r.session_id)
            .bind(r.counter)
            .bind(a.id)
            .bind(a.created_at)
            .bind(a.event.as_str())
            .bind(a.ip.as_deref())
            .bind(a.user_agent.as_deref())
            .bind(a.request_id.as_deref())
            .bind(&a.detail);
        self.fetch_decoded(query, session_and_user).await
    }

    /// A ceremony's challenge by id, on a kept connection.
    pub(crate) async fn challenge(&self, id: Uuid) -> Result<Option<webauthn_challenge::Model>, KeptError> {
        let query = sqlx::query(crate::query::passkeys::challenge_sql(DbBackend::Postgres)).bind(id);
        self.fetch_decoded(query, |row| {
            let row = Columns(row);
            Ok(crate::query::passkeys::challenge_row!(row.get))
        })
        .await
    }

    /// The passkey of a credential id and its user (as stored), on a kept connection.
    pub(crate) async fn passkey_with_user(
        &self,
        credential_id: &str,
    ) -> Result<Option<(passkey::Model, user::Model)>, KeptError> {
        let query = sqlx::query(crate::query::passkeys::with_user_sql(DbBackend::Postgres)).bind(credential_id);
        self.fetch_decoded(query, |row| {
            let row = Columns(row);
            Ok(crate::query::passkeys::passkey_and_user!(row.get))
        })
        .await
    }

    /// A sign-in's writes with no cap on sessions ([`crate::query::sessions::write_sign_in`]
    /// less the cap) as one statement of data-modifying CTEs, one round trip: each step
    /// runs only when the one before it said yes, and the statement is atomic. Two
    /// sign-ins taking one challenge at once: the second's `DELETE` waits for the first's
    /// row lock, then finds nothing, and nothing after it runs.
    pub(crate) async fn sign_in(&self, w: &SignInWrites) -> Result<Written, KeptError> {
        const SQL: &str = "WITH \
            c AS (DELETE FROM webauthn_challenges WHERE id = $1 RETURNING 1), \
            c_ok AS (SELECT ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM c)) AS ok), \
            p AS (UPDATE passkeys SET sign_count = $3, credential = $4, backed_up = $5, last_used_at = $6 \
                  WHERE id = $2 AND (SELECT ok FROM c_ok) \
                  AND CASE WHEN $3 = 0 THEN sign_count = 0 ELSE sign_count < $3 END RETURNING 1), \
            p_ok AS (SELECT (SELECT ok FROM c_ok) AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM p)) AS ok), \
            u AS (UPDATE users SET last_login_at = $6, password_hash = COALESCE($7, password_hash), \
                  updated_at = CASE WHEN $7::text IS NULL THEN updated_at ELSE $6 END \
                  WHERE id = $8 AND token_version = $9 AND is_active AND deleted_at IS NULL \
                  AND (SELECT ok FROM p_ok) RETURNING id), \
            s AS (INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, ip, \
                  user_agent, aal, refresh_counter, refreshed_at, amr) \
                  SELECT $10, u.id, $6, $6, $11, NULL, $12, $13, $14, 0, NULL, $15 FROM u RETURNING id), \
            a AS (INSERT INTO audit_log (id, created_at, event, user_id, actor_id, ip, user_agent, request_id, \
                  detail, email_index) SELECT $16, $17, $18, $19, $20, $21, $22, $23, $24, $25 FROM s RETURNING 1) \
            SELECT (SELECT ok FROM c_ok), (SELECT ok FROM p_ok), EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM a)";
        let (session, a, passkey) = (&w.session, &w.audit, w.spent.passkey.as_ref());
        let query = sqlx::query(SQL)
            .bind(w.spent.challenge)
            .bind(passkey.map(|p| p.id))
            .bind(passkey.map(|p| p.counter))
            .bind(passkey.map(|p| p.credential.as_str()))
            .bind(passkey.map(|p| p.backed_up))
            .bind(session.now)
            .bind(session.new_password_hash.as_deref())
            .bind(session.user_id)
            .bind(session.token_version)
            .bind(session.id)
            .bind(session.expires_at)
            .bind(session.ip.as_deref())
            .bind(session.user_agent.as_deref())
            .bind(session.aal.as_str())
            .bind(session.amr.as_deref())
            .bind(a.id)
            .bind(a.created_at)
            .bind(a.event.as_str())
            .bind(a.user_id)
            .bind(a.actor_id)
            .bind(a.ip.as_deref())
            .bind(a.user_agent.as_deref())
            .bind(a.request_id.as_deref())
            .bind(&a.detail)
            .bind(a.email_index.as_deref());
        let row = self.fetch_optional(query).await?;
        let statement = |e| KeptError::Statement(Arc::new(e));
        let row = row.ok_or_else(|| statement(sqlx::Error::RowNotFound))?;
        let flag = |i: usize| row.try_get::<bool, _>(i).map_err(statement);
        Ok(match (flag(0)?, flag(1)?, flag(2)?, flag(3)?) {
            (false, ..) => Written::ChallengeGone,
            (true, false, ..) => Written::PasskeyStale,
            (true, true, false, _) => Written::Revoked,
            (true, true, true, true) => Written::Opened(Box::new(w.audit.clone())),
            (true, true, true, false) => {
                return Err(statement(sqlx::Error::Protocol("a session opened without its audit row".into())))
            }
        })
    }

    /// [`PgKept::fetch_optional`], its row decoded.
    async fn fetch_decoded<'q, T>(
        &self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
        decode: impl FnOnce(&PgRow) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, KeptError> {
        let row = self.fetch_optional(query).await?;
        row.as_ref().map(decode).transpose().map_err(|e| KeptError::Statement(Arc::new(e)))
    }

    /// Runs one statement on a kept connection (or one from the pool) and keeps the
    /// connection afterwards when the statement completed.
    async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<PgRow>, KeptError> {
        let mut conn = self.take().await?;
        let row = query.fetch_optional(&mut *conn).await;
        self.settle(conn, row.as_ref().err());
        row.map_err(|e| KeptError::Statement(Arc::new(e)))
    }

    /// [`PgKept::fetch_optional`] for a statement of many rows.
    async fn fetch_all<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<PgRow>, KeptError> {
        let mut conn = self.take().await?;
        let rows = query.fetch_all(&mut *conn).await;
        self.settle(conn, rows.as_ref().err());
        rows.map_err(|e| KeptError::Statement(Arc::new(e)))
    }

    /// A kept connection, or one from the pool.
    async fn take(&self) -> Result<PoolConnection<Postgres>, KeptError> {
        if self.pool.is_closed() {
            self.hand_back(Duration::ZERO);
            return Err(KeptError::Acquire(Arc::new(sqlx::Error::PoolClosed)));
        }
        let kept = self.kept.lock().ok().and_then(|mut kept| kept.pop());
        match kept {
            Some((conn, _)) => Ok(conn),
            None => self.pool.acquire().await.map_err(|e| KeptError::Acquire(Arc::new(e))),
        }
    }

    /// Keeps `conn` after its statement, or lets it go the pool's way, by how the
    /// statement ended (`failed`, its error if it failed).
    fn settle(&self, mut conn: PoolConnection<Postgres>, failed: Option<&sqlx::Error>) {
        match failed {
            Some(e) if crate::error::connection_died(e) => {
                // The database restarted or the network dropped it: this connection is
                // closed, and the kept ones, most likely dead with it, go back to the pool,
                // which checks each before handing it out again.
                crate::error::note_dead_connection();
                conn.close_on_drop();
                drop(conn);
                self.hand_back(Duration::ZERO);
            }
            // The database's own answer (an error included) leaves the connection ready
            // for the next statement.
            None | Some(sqlx::Error::Database(_)) => self.keep(conn),
            // Anything else (a decoding error...) goes back through the pool's checks.
            Some(_) => drop(conn),
        }
    }

    fn keep(&self, conn: PoolConnection<Postgres>) {
        if self.pool.is_closed() {
            return;
        }
        let mut spare = Some(conn);
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() < self.max {
                kept.extend(spare.take().map(|c| (c, Instant::now())));
            }
        }
        drop(spare); // back to the pool, outside the lock
    }

    /// Hands back the connections unused for `idle` (all of them for zero).
    fn hand_back(&self, idle: Duration) {
        let idle_ones = match self.kept.lock() {
            Ok(mut kept) => {
                let (old, fresh): (Vec<_>, Vec<_>) = kept.drain(..).partition(|(_, since)| since.elapsed() >= idle);
                *kept = fresh;
                old
            }
            Err(_) => Vec::new(),
        };
        drop(idle_ones);
    }
}

/// Takes the session checks queued while the last batch was out (up to [`MAX_READS`])
/// and answers them with one statement; [`READERS`] of these share the queue, so a batch
/// is read while the one before is still out. Ends when the [`PgKept`] is dropped.
async fn read_batches(kept: Weak<PgKept>, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Read>>>) {
    let mut batch = Vec::with_capacity(MAX_READS);
    loop {
        if queue.lock().await.recv_many(&mut batch, MAX_READS).await == 0 {
            return;
        }
        match kept.upgrade() {
            Some(kept) => kept.answer_reads(&mut batch).await,
            None => return,
        }
    }
}

/// Every second, hands back the connections idle for [`KEEP_IDLE`]; all of them, and for
/// good, once the pool is closed. Ends when the [`PgKept`] is dropped.
async fn hand_back_idle(pool: PgPool, kept: Weak<PgKept>) {
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = &mut closed => {
                if let Some(kept) = kept.upgrade() {
                    kept.hand_back(Duration::ZERO);
                }
                return;
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => match kept.upgrade() {
                Some(kept) => kept.hand_back(KEEP_IDLE),
                None => return,
            },
        }
    }
}

/// A session and its user from a row of [`crate::query::sessions::row::SESSION_AND_USER`] columns.
fn session_and_user(row: &PgRow) -> Result<(session::Model, user::Model), sqlx::Error> {
    let row = Columns(row);
    Ok(crate::query::sessions::row::session_and_user!(row.get, 0))
}

/// A row read by position, as the models' columns.
struct Columns<'a>(&'a PgRow);

impl Columns<'_> {
    fn get<'r, T>(&'r self, index: usize) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        self.0.try_get(index)
    }
}
