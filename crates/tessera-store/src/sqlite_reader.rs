//! The read every authenticated request makes (a session and its user, by session id),
//! run in place on the SQLite file through connections of its own.
//!
//! sqlx drives each SQLite connection from a worker thread, so one statement through the
//! pool costs two thread hand-offs (the query, then the ping on release); under load
//! those context switches, not SQLite, took most of an authenticated request. A read by
//! primary key in WAL mode takes microseconds and never waits for a writer, so it runs
//! on the caller's thread. Anything this path cannot answer outright (a busy database,
//! a value stored in a form it does not parse) is an error, and the caller asks the pool
//! instead, whose answer is final.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::{FromSqlError, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use uuid::Uuid;

use crate::entity::{session, user};

/// Connections kept open between reads; more are opened when more threads read at once.
const MAX_IDLE: usize = 8;

/// Direct read connections to one SQLite database file.
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The pool this reader stands beside: once it is closed, so is the reader.
    pool: sqlx::SqlitePool,
}

impl SqliteReader {
    /// A reader beside `db`, a pool opened on `url`, when that is a SQLite file; `None`
    /// for an in-memory database (only the pool's connections can see it) or PostgreSQL.
    pub fn beside(db: &DatabaseConnection, url: &str) -> Option<SqliteReader> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return None;
        }
        let path = crate::sqlite_path(url.trim())?;
        let pool = db.get_sqlite_connection_pool().clone();
        Some(SqliteReader { path, idle: Mutex::new(Vec::new()), pool })
    }

    /// The session with this id and its user, as [`crate::query::sessions::with_user`]
    /// reads them.
    pub fn session_with_user(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, rusqlite::Error> {
        if self.pool.is_closed() {
            let closed = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE);
            return Err(rusqlite::Error::SqliteFailure(closed, Some("the database pool is closed".to_owned())));
        }
        let conn = self.take()?;
        let found = {
            let mut stmt = conn.prepare_cached(crate::query::sessions::with_user_sql(DbBackend::Sqlite))?;
            stmt.query_row([&id.as_bytes()[..]], |row| {
                let row = Columns(row);
                Ok(crate::session_and_user!(row.get))
            })
            .optional()
        };
        self.give_back(conn);
        found
    }

    fn take(&self) -> Result<Connection, rusqlite::Error> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        // Never creates the file (the pool did, and migrated it); never writes.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A busy database answers at once: the pool's connection will wait instead.
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
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
