//! The statements that run on every authenticated request and every refresh, run on
//! the SQLite file through connections of their own (rusqlite, on the same bundled
//! SQLite as sqlx).
//!
//! sqlx drives each SQLite connection from a worker thread, so one statement through the
//! pool costs two thread hand-offs (the statement, then the ping on release); under load
//! those context switches, not SQLite, took most of an authenticated request, and a
//! rotation held the one writer for several of them. A read by primary
//! key in WAL mode takes microseconds and never waits for a writer, so reads run on the
//! caller's thread; a rotation runs whole on one blocking thread. A read this path
//! cannot answer outright (a busy database, a value stored in a form it does not parse)
//! is an error, and the caller asks the pool instead, whose answer is final.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSqlError, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use sea_orm::{DatabaseConnection, DbBackend};
use uuid::Uuid;

use super::session_cache::{RowIds, SessionCache};
use crate::entity::{audit_log, passkey, session, user, webauthn_challenge};
use crate::query::sessions::{Rotation, SignInWrites, Written, ROTATE};

/// Connections kept open between reads; more are opened when more threads read at once.
const MAX_IDLE: usize = 8;

/// The batch writer's page cache, in KiB (SQLite's default is 2,000). Every rotation
/// touches leaves at random places (the session row, the audit log's user index); with
/// 2 MB most of those came back through `pread` from the OS (see docs/performance.md).
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// One write of a batch ([`SqliteDirect::write_all`], queued by the batch writer).
#[derive(Debug)]
pub(crate) enum Write {
    /// A refresh rotation.
    Rotate(Box<Rotation>),
    /// A sign-in's writes (what was spent, the session, the cap, the audit row as stored).
    SignIn(Box<SignInWrites>),
}

/// What one write did.
#[derive(Debug)]
pub(crate) enum Wrote {
    /// Whether the session rotated (`false`: the counter had moved on, nothing written).
    Rotated(bool),
    SignedIn(Written),
}

/// Direct connections to one SQLite database file.
pub(crate) struct SqliteDirect {
    path: PathBuf,
    /// Read-only (`query_only`) connections.
    idle: Mutex<Vec<Connection>>,
    /// The connection rotations write through, opened on first use.
    writer: Mutex<Option<Connection>>,
    /// The pool these connections stand beside: once it is closed, they answer nothing.
    pool: sqlx::SqlitePool,
    /// Where session checks are answered from when they can be, and rotations report
    /// the sessions they changed.
    cache: Option<Arc<SessionCache>>,
}

impl SqliteDirect {
    /// Direct connections beside `db`, a pool opened on `url`, when that is a SQLite file; `None`
    /// for an in-memory database (only the pool's connections can see it) or PostgreSQL.
    /// With a `cache` (the one every pool on the file reports its commits to), session
    /// checks are answered from it when they can be.
    pub(crate) fn beside(db: &DatabaseConnection, url: &str, cache: Option<Arc<SessionCache>>) -> Option<SqliteDirect> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return None;
        }
        let path = crate::backend::sqlite_path(url.trim())?;
        let pool = db.get_sqlite_connection_pool().clone();
        let direct = SqliteDirect { path, idle: Mutex::new(Vec::new()), writer: Mutex::new(None), pool, cache };
        // A URL naming something this cannot open as a plain file (a `file:` URI, a
        // shared in-memory database) leaves every statement to the pool.
        let first = direct.open(true).ok()?;
        direct.give_back(first);
        Some(direct)
    }

    /// The session with this id and its user, as [`crate::query::sessions::with_user`]
    /// reads them: from the cache when it holds them and `cached` allows, else read
    /// (and kept there).
    pub(crate) fn session_with_user(
        &self,
        id: Uuid,
        cached: bool,
    ) -> Result<Option<(session::Model, user::Model)>, rusqlite::Error> {
        let cache = self.cache.as_deref();
        if let (Some(cache), true) = (cache, cached) {
            self.check_open()?;
            if let Some(hit) = cache.get(id) {
                return Ok(Some(hit));
            }
        }
        // Before the read: whatever is dropped from here on may be newer than it.
        let epoch = cache.map(SessionCache::epoch);
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT s.rowid, u.rowid, {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?",
                crate::query::sessions::row::SESSION_AND_USER
            )
        });
        let found = self.read_row(sql, &id.as_bytes()[..], |row| {
            let rows = RowIds { session: row.get(0)?, user: row.get(1)? };
            let (session, user) = crate::query::sessions::row::session_and_user!(row.get, 2);
            Ok((session, user, rows))
        })?;
        Ok(found.map(|(session, user, rows)| {
            if let (Some(cache), Some(epoch)) = (cache, epoch) {
                cache.keep(epoch, rows, &session, &user);
            }
            (session, user)
        }))
    }

    /// A ceremony's challenge by id, read in place.
    pub(crate) fn challenge(&self, id: Uuid) -> Result<Option<webauthn_challenge::Model>, rusqlite::Error> {
        let sql = crate::query::passkeys::challenge_sql(DbBackend::Sqlite);
        self.read_row(sql, &id.as_bytes()[..], |row| Ok(crate::query::passkeys::challenge_row!(row.get)))
    }

    /// The passkey of a credential id and its user (as stored), read in place.
    pub(crate) fn passkey_with_user(
        &self,
        credential_id: &str,
    ) -> Result<Option<(passkey::Model, user::Model)>, rusqlite::Error> {
        let sql = crate::query::passkeys::with_user_sql(DbBackend::Sqlite);
        self.read_row(sql, credential_id, |row| Ok(crate::query::passkeys::passkey_and_user!(row.get)))
    }

    /// Runs a batch of writes in one transaction: each rotation as
    /// [`crate::query::sessions::rotate`] does (the same [`ROTATE`] statement), each
    /// sign-in as [`crate::query::sessions::write_sign_in`] does, every value stored as
    /// sqlx would, each inside a savepoint of its own: a write that does nothing or fails
    /// leaves no trace and the others stand. One commit for the lot is what makes a busy
    /// writer fast: the pages every write touches (the session table, the audit log's tail
    /// and indexes) go to the WAL once per batch, not once per request. Blocking: call it
    /// from a blocking thread, while holding the writer pool's connection so that no other
    /// writer of this process runs meanwhile. The outer error means nothing was committed.
    pub(crate) fn write_all(&self, batch: &[Write]) -> Result<Vec<Result<Wrote, rusqlite::Error>>, rusqlite::Error> {
        self.check_open()?;
        let mut slot = self.writer.lock().map_err(|_| misuse("the writer connection lock is poisoned"))?;
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(self.open(false)?),
        };
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = Vec::with_capacity(batch.len());
        // What the cache must let go of once the batch is committed.
        let (mut sessions, mut users) = (Vec::new(), Vec::new());
        for write in batch {
            let one = tx.savepoint()?;
            let wrote = match write {
                Write::Rotate(r) => rotate_one(&one, r).map(|rotated| {
                    if rotated {
                        sessions.push(r.session_id);
                    }
                    Wrote::Rotated(rotated)
                }),
                Write::SignIn(w) => sign_in_one(&one, w).map(|(written, changed)| {
                    if let Some(changed) = changed {
                        sessions.extend(changed.revoked);
                        users.push(changed.user_row);
                    }
                    Wrote::SignedIn(written)
                }),
            };
            let stands = matches!(
                wrote,
                Ok(Wrote::Rotated(true)
                    | Wrote::SignedIn(Written::Opened(_) | Written::PasskeyStale | Written::Revoked))
            );
            if stands {
                one.commit()?;
            } else {
                one.finish()?; // rolls back to the savepoint and releases it
            }
            done.push(wrote);
        }
        tx.commit()?;
        if let Some(cache) = &self.cache {
            cache.forget_sessions(sessions);
            cache.forget_user_rows(users);
        }
        Ok(done)
    }

    /// One row of `sql` with one parameter, read on a read-only connection.
    fn read_row<T>(
        &self,
        sql: &str,
        param: impl rusqlite::ToSql,
        decode: impl FnOnce(Columns<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<Option<T>, rusqlite::Error> {
        self.check_open()?;
        let conn = self.take()?;
        let found = conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.query_row([param], |row| decode(Columns(row))).optional());
        self.give_back(conn);
        found
    }

    /// Fails once the pool beside it is closed.
    fn check_open(&self) -> Result<(), rusqlite::Error> {
        if self.pool.is_closed() {
            return Err(misuse("the database pool is closed"));
        }
        Ok(())
    }

    fn take(&self) -> Result<Connection, rusqlite::Error> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        self.open(true)
    }

    /// Opens a connection (never creating the file: the pool did, and migrated it). A
    /// reader never writes and answers at once when the file is busy (the pool's
    /// connection will wait instead); the writer waits as sqlx's do and syncs as they do.
    fn open(&self, read_only: bool) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // These connections run a few fixed statements, each prepared once and kept. Since
        // SQLite 3.5x a statement whose bound value the planner compared with a partial
        // index's condition (`users`' are `is_active = false`, …) is prepared again each
        // time that value changes: every session read was parsed and planned anew.
        // The planner's stability guarantee keeps each plan, as one lookup by key wants.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        if read_only {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            conn.pragma_update(None, "query_only", true)?;
        } else {
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", true)?;
            conn.pragma_update(None, "wal_autocheckpoint", crate::backend::WAL_AUTOCHECKPOINT_PAGES)?;
            conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        }
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// One rotation's writes; `false` (and nothing written) when the counter had moved on.
fn rotate_one(conn: &Connection, r: &Rotation) -> Result<bool, rusqlite::Error> {
    let now = time(r.now);
    let rotated =
        conn.prepare_cached(ROTATE)?.execute(params![now, time(r.expires_at), blob(r.session_id), r.counter])?;
    if rotated != 1 {
        return Ok(false);
    }
    insert_audit(conn, &r.audit)?;
    Ok(true)
}

/// What a sign-in changed that the session cache may hold: the user's row (its
/// `last_login_at`) and the sessions the cap revoked.
struct SignInChanged {
    user_row: i64,
    revoked: Vec<Uuid>,
}

/// One sign-in's writes, in order, stopping where one says no (what it wrote so far
/// stands, as [`Written`] says).
fn sign_in_one(conn: &Connection, w: &SignInWrites) -> Result<(Written, Option<SignInChanged>), rusqlite::Error> {
    let s = &w.session;
    let now = time(s.now);
    if let Some(id) = w.spent.challenge {
        if conn.prepare_cached("DELETE FROM webauthn_challenges WHERE id = ?1")?.execute([blob(id)])? != 1 {
            return Ok((Written::ChallengeGone, None));
        }
    }
    if let Some(p) = &w.spent.passkey {
        // The counter moves forwards, or stays 0 for an authenticator that keeps none.
        let sql = "UPDATE passkeys SET sign_count = ?1, credential = ?2, backed_up = ?3, last_used_at = ?4 \
                   WHERE id = ?5 AND CASE WHEN ?1 = 0 THEN sign_count = 0 ELSE sign_count < ?1 END";
        let moved =
            conn.prepare_cached(sql)?.execute(params![p.counter, p.credential, p.backed_up, now, blob(p.id)])?;
        if moved != 1 {
            return Ok((Written::PasskeyStale, None));
        }
    }
    // The user first (the lock order), only on the token_version the sign-in read.
    // A re-hashed password, when there is one, is stored with the sign-in.
    let sql = "UPDATE users SET last_login_at = ?3, password_hash = coalesce(?4, password_hash), \
               updated_at = CASE WHEN ?4 IS NULL THEN updated_at ELSE ?3 END \
               WHERE id = ?1 AND token_version = ?2 AND is_active = 1 AND deleted_at IS NULL RETURNING rowid";
    let user_row: Option<i64> = conn
        .prepare_cached(sql)?
        .query_row(params![blob(s.user_id), s.token_version, now, s.new_password_hash], |r| r.get(0))
        .optional()?;
    let Some(user_row) = user_row else {
        return Ok((Written::Revoked, None));
    };
    let sql = "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, ip, user_agent, \
               aal, refresh_counter, refreshed_at, amr) VALUES (?1, ?2, ?3, ?3, ?4, NULL, ?5, ?6, ?7, 0, NULL, ?8)";
    conn.prepare_cached(sql)?.execute(params![
        blob(s.id),
        blob(s.user_id),
        now,
        time(s.expires_at),
        s.ip,
        s.user_agent,
        s.aal,
        s.amr
    ])?;
    let mut revoked = Vec::new();
    if w.max_sessions > 0 {
        // The oldest live sessions beyond the cap, as `sessions::cap` chooses them.
        let sql = "UPDATE sessions SET revoked_at = ?2 WHERE id IN (SELECT id FROM sessions \
                   WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 AND id != ?3 \
                   ORDER BY created_at, id LIMIT max(0, (SELECT count(*) FROM sessions \
                   WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2) - ?4)) RETURNING id";
        let mut stmt = conn.prepare_cached(sql)?;
        let ids =
            stmt.query_map(params![blob(s.user_id), now, blob(s.id), w.max_sessions], |r| Columns(r).get::<Uuid>(0))?;
        for id in ids {
            revoked.push(id?);
        }
    }
    insert_audit(conn, &w.audit)?;
    Ok((Written::Opened(Box::new(w.audit.clone())), Some(SignInChanged { user_row, revoked })))
}

/// Appends an audit row (as stored: its detail already sealed).
fn insert_audit(conn: &Connection, a: &audit_log::Model) -> Result<(), rusqlite::Error> {
    let detail = serde_json::to_string(&a.detail).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let sql = "INSERT INTO audit_log (id, created_at, event, user_id, actor_id, ip, user_agent, request_id, detail, \
               email_index) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    conn.prepare_cached(sql)?.execute(params![
        blob(a.id),
        time(a.created_at),
        a.event,
        a.user_id.map(blob),
        a.actor_id.map(blob),
        a.ip,
        a.user_agent,
        a.request_id,
        detail,
        a.email_index
    ])?;
    Ok(())
}

fn misuse(why: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE), Some(why.to_owned()))
}

/// A UUID as sqlx stores it: its 16 bytes.
fn blob(id: Uuid) -> [u8; 16] {
    id.into_bytes()
}

/// A timestamp as sqlx stores it: RFC 3339 text, `+00:00`, as many fraction digits as it
/// needs.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A row whose columns decode to the models' types, as sqlx stores them.
struct Columns<'a>(&'a Row<'a>);

impl Columns<'_> {
    fn get<T: Column>(&self, index: usize) -> Result<T, rusqlite::Error> {
        let value = self.0.get_ref(index)?;
        T::decode(value).map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, value.data_type(), e.into()))
    }
}

/// A column type of the session and user models.
trait Column: Sized {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError>;
}

impl Column for String {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_str().map(str::to_owned)
    }
}

impl Column for bool {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_i64().map(|v| v != 0)
    }
}

impl Column for i64 {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_i64()
    }
}

impl Column for i32 {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        let v = value.as_i64()?;
        i32::try_from(v).map_err(|_| FromSqlError::OutOfRange(v))
    }
}

/// sqlx stores a UUID as its 16 bytes.
impl Column for Uuid {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        Uuid::from_slice(value.as_blob()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// sqlx stores a timestamp as RFC 3339 text; a naive `YYYY-MM-DD HH:MM:SS[.f]` (what
/// SQLite's own date functions write) is UTC. Other forms go to the pool.
impl Column for DateTime<Utc> {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        let text = value.as_str()?;
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t.with_timezone(&Utc));
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .map(|t| t.and_utc())
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl<T: Column> Column for Option<T> {
    fn decode(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Null => Ok(None),
            v => T::decode(v).map(Some),
        }
    }
}
