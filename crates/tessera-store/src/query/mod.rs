//! The store's domain operations. Each takes any connection or transaction (a [`crate::Tx`]
//! from [`crate::Store::begin`], or [`crate::Store::reader`] / [`crate::Store::writer`]),
//! so a service decides what one transaction covers, and answers in domain errors.
//!
//! Lock order, for every statement that touches sessions (PostgreSQL locks rows; SQLite
//! has one writer, so none of this can deadlock there): a transaction that changes a
//! user and that user's sessions locks the user row first (`users` is always written
//! before `sessions` in one transaction), and a statement that changes several sessions
//! reaches them only through their user's row, which it already holds. A refresh
//! rotation locks one session row and nothing else (the audit log has no foreign keys).
//! So a rotation never waits for a lock while holding one another statement waits for.

use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};
use tessera_domain::Error;

use crate::error::OrDb;
use crate::pii::Pii;

pub mod admin;
pub mod audit;
pub mod identities;
pub mod import;
pub mod mfa;
pub mod oauth;
pub mod one_time_tokens;
pub mod outbox;
pub mod passkeys;
pub mod pii;
pub mod privacy;
pub mod profiles;
pub mod seed;
pub mod server_keys;
pub mod sessions;
pub(crate) mod user_row;
pub mod users;
pub mod webhooks;

/// Rows whose address `column` is `email`, or whose blind index `index` is the index of
/// `email` under any key of the ring: rows still in plaintext and rows already encrypted
/// both match.
/// Sets a column of a row being changed when a change gives it a value.
pub(crate) fn set_if<T: Into<sea_orm::Value>>(column: &mut sea_orm::ActiveValue<T>, value: Option<T>) {
    if let Some(v) = value {
        *column = sea_orm::ActiveValue::Set(v);
    }
}

pub(crate) fn address_is<C: ColumnTrait>(pii: &Pii, column: C, index: C, email: &str) -> Condition {
    let cond = Condition::any().add(column.eq(email));
    let indexes = pii.indexes(email);
    if indexes.is_empty() {
        cond
    } else {
        cond.add(index.is_in(indexes))
    }
}

/// A constant query with one parameter, written `{p}` in `template`: `?` on SQLite,
/// `$1` on PostgreSQL. Built once per process (`cell`), so hot paths build nothing.
pub(crate) fn one_parameter_sql(
    cell: &'static std::sync::OnceLock<[String; 2]>,
    backend: DbBackend,
    template: fn(&str) -> String,
) -> &'static str {
    let [sqlite, postgres] = cell.get_or_init(|| [template("?"), template("$1")]);
    if backend == DbBackend::Postgres {
        postgres
    } else {
        sqlite
    }
}

/// The one row of a constant query with one parameter (a [`one_parameter_sql`]), decoded
/// by position; `None` when there is none.
pub(crate) async fn one_row<T>(
    conn: &impl ConnectionTrait,
    sql: fn(DbBackend) -> &'static str,
    param: sea_orm::Value,
    decode: impl FnOnce(&QueryResult) -> Result<T, DbErr>,
) -> Result<Option<T>, Error> {
    let backend = conn.get_database_backend();
    let statement = Statement::from_sql_and_values(backend, sql(backend), [param]);
    let Some(row) = conn.query_one_raw(statement).await.or_db()? else {
        return Ok(None);
    };
    decode(&row).or_db().map(Some)
}
