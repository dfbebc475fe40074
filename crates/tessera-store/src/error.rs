//! Database errors become domain outcomes here, at the store's boundary, by what the
//! driver says happened (error variant, SQLSTATE, SQLite result code, constraint name),
//! never by the wording of a message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sea_orm::{DbErr, RuntimeErr};
use sqlx::error::{DatabaseError, ErrorKind as SqlxKind};
use tessera_domain::Error;

/// The unique constraints whose violation is an outcome the caller can act on, each as
/// PostgreSQL names it (the unique index) and as SQLite reports it (`table.column`).
/// Any other violation is a fault of ours: 500, cause logged.
const UNIQUE: &[UniqueConstraint] = &[
    UniqueConstraint { name: "users_email_key", sqlite_columns: "users.email", error: || Error::EmailTaken },
    // The blind index of an encrypted address (PII_ENCRYPTION_KEY).
    UniqueConstraint {
        name: "users_email_index_key",
        sqlite_columns: "users.email_index",
        error: || Error::EmailTaken,
    },
    // One identity at a provider signs in one user.
    UniqueConstraint {
        name: "identities_provider_provider_id_key",
        sqlite_columns: "identities.provider, identities.provider_id",
        error: || Error::IdentityTaken,
    },
];

struct UniqueConstraint {
    name: &'static str,
    sqlite_columns: &'static str,
    error: fn() -> Error,
}

/// Whether a driver error means the connection it ran on died: the server shut down or
/// restarted (SQLSTATE 57P01–57P03), the connection failed (class 08), or the socket
/// broke (reset, broken pipe, EOF) mid-conversation. Nothing was committed by a statement
/// that failed so inside an open transaction; a read may be run again on another
/// connection.
pub(crate) fn connection_died(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}

/// [`connection_died`] for a SeaORM error.
pub(crate) fn db_connection_died(e: &DbErr) -> bool {
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(s))
        | DbErr::Exec(RuntimeErr::SqlxError(s))
        | DbErr::Query(RuntimeErr::SqlxError(s)) => connection_died(s),
        _ => false,
    }
}

/// For this long after a connection died, every pooled connection is pinged before it is
/// handed out: its siblings most likely died with it (a database restart kills them all).
const SUSPECT_FOR: Duration = Duration::from_secs(10);

/// Milliseconds since [`epoch`] until which pooled connections are suspect.
static SUSPECT_UNTIL_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Records that a connection died: pooled connections are checked before use for a while.
pub(crate) fn note_dead_connection() {
    let until = (epoch().elapsed() + SUSPECT_FOR).as_millis() as u64;
    SUSPECT_UNTIL_MS.fetch_max(until, Ordering::Relaxed);
}

/// Whether a connection died recently (see [`note_dead_connection`]).
pub(crate) fn connections_suspect() -> bool {
    (epoch().elapsed().as_millis() as u64) < SUSPECT_UNTIL_MS.load(Ordering::Relaxed)
}

/// A database error as a service outcome: a constraint that fired is its own error; a
/// database that is unreachable, exhausted, restarting or busy is `Unavailable` (503);
/// anything else is `Internal` (500, cause logged, body generic).
pub(crate) fn db_error(e: DbErr) -> Error {
    let sqlx = match &e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return Error::Unavailable(e.to_string()),
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => Some(s),
        _ => None,
    };
    match sqlx {
        Some(s) => sqlx_error(s),
        None => Error::Internal(e.to_string()),
    }
}

/// [`db_error`] for an error straight from sqlx (kept PostgreSQL connections, the pools).
pub(crate) fn sqlx_error(e: &sqlx::Error) -> Error {
    if connection_died(e) {
        note_dead_connection();
        return Error::Unavailable(e.to_string());
    }
    match e {
        sqlx::Error::Database(d) => database_error(d.as_ref()),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Error::Unavailable(e.to_string()),
        _ => Error::Internal(e.to_string()),
    }
}

fn database_error(d: &dyn DatabaseError) -> Error {
    if d.kind() == SqlxKind::UniqueViolation {
        return unique_violation(d.constraint(), d.message());
    }
    let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
    let postgres = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some();
    if if postgres { unavailable_sqlstate(&code) } else { unavailable_sqlite(&code) } {
        Error::Unavailable(format!("{} ({code})", d.message()))
    } else {
        Error::Internal(format!("{} ({code})", d.message()))
    }
}

/// The error of the unique constraint that fired: by name on PostgreSQL, by the columns
/// SQLite names in its message (`UNIQUE constraint failed: users.email`).
fn unique_violation(constraint: Option<&str>, message: &str) -> Error {
    let columns = message.strip_prefix("UNIQUE constraint failed: ").unwrap_or_default();
    for c in UNIQUE {
        if constraint == Some(c.name) || columns == c.sqlite_columns {
            return (c.error)();
        }
    }
    Error::Internal(format!("unexpected unique violation: {message}"))
}

/// Whether SQLite's (extended) result code means "not now" rather than "never": BUSY
/// and LOCKED, in any extended form.
fn unavailable_sqlite(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// Whether a PostgreSQL SQLSTATE means "not now" rather than "never": a connection
/// exception (class 08), an administrator or crash shutdown and a server still starting
/// (57P01–57P03), too many connections (53300), and a deadlock or serialization failure
/// (40P01, 40001).
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40P01" | "40001")
}

/// [`db_error`] for an error of the direct SQLite connections.
pub(crate) fn rusqlite_error(e: &rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, message) = e {
        let message = message.as_deref().unwrap_or_default();
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        {
            return unique_violation(None, message);
        }
        if unavailable_sqlite(&f.extended_code.to_string()) {
            return Error::Unavailable(e.to_string());
        }
    }
    Error::Internal(e.to_string())
}

/// `.or_db()?`: a SeaORM result as a service outcome.
pub(crate) trait OrDb<T> {
    fn or_db(self) -> Result<T, Error>;
}

impl<T> OrDb<T> for Result<T, DbErr> {
    fn or_db(self) -> Result<T, Error> {
        self.map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_connection_codes_are_unavailable() {
        for code in ["5", "6", "517", "261"] {
            assert!(unavailable_sqlite(code), "{code}");
        }
        for code in ["19", "2067", "1555", ""] {
            assert!(!unavailable_sqlite(code), "{code}");
        }
        for code in ["08006", "08P01", "57P01", "53300", "40P01", "40001"] {
            assert!(unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", ""] {
            assert!(!unavailable_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn unique_violations_map_by_constraint() {
        assert!(matches!(unique_violation(Some("users_email_key"), "duplicate key"), Error::EmailTaken));
        assert!(matches!(unique_violation(None, "UNIQUE constraint failed: users.email"), Error::EmailTaken));
        assert!(matches!(unique_violation(Some("users_email_index_key"), "duplicate key"), Error::EmailTaken));
        assert!(matches!(unique_violation(None, "UNIQUE constraint failed: users.email_index"), Error::EmailTaken));
        assert!(matches!(unique_violation(Some("api_keys_key_hash_key"), "duplicate key"), Error::Internal(_)));
        assert!(matches!(unique_violation(None, "UNIQUE constraint failed: profiles.user_id"), Error::Internal(_)));
    }
}
