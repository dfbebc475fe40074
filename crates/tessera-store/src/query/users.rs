//! Users.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter,
    QuerySelect,
};
use tessera_domain::Error;
use uuid::Uuid;

use super::address_is;
use crate::db::Db;
use crate::entity::user;
use crate::error::OrDb;

/// Inserts a user; a taken email answers `EmailTaken` (the unique index decides). With
/// PII encryption the row is stored encrypted; the address is first looked for among
/// rows still in plaintext or indexed under an older key, which the index cannot see.
pub async fn insert(conn: &impl Db, row: user::Model) -> Result<user::Model, Error> {
    if conn.pii().is_on() && by_email(conn, &row.email).await?.is_some() {
        return Err(Error::EmailTaken);
    }
    let sealed = conn.pii().seal_user(row)?;
    let stored = sealed.into_active_model().insert(conn).await.or_db()?;
    conn.pii().open_user(stored)
}

/// Writes the changed columns of a user and answers the row as stored (decrypted); a
/// taken email answers `EmailTaken`.
pub async fn save(conn: &impl Db, row: user::ActiveModel) -> Result<user::Model, Error> {
    if let (true, ActiveValue::Set(email), ActiveValue::Unchanged(id) | ActiveValue::Set(id)) =
        (conn.pii().is_on(), &row.email, &row.id)
    {
        if by_email(conn, email).await?.is_some_and(|other| other.id != *id) {
            return Err(Error::EmailTaken);
        }
    }
    let sealed = conn.pii().seal_user_changes(row)?;
    let stored = sealed.update(conn).await.or_db()?;
    conn.pii().open_user(stored)
}

/// A user by id, deleted or not.
pub async fn by_id(conn: &impl Db, id: Uuid) -> Result<Option<user::Model>, Error> {
    opened(conn, user::Entity::find_by_id(id).one(conn).await.or_db()?)
}

/// The users among `ids` (deleted or not), in no particular order.
pub async fn by_ids(conn: &impl Db, ids: &[Uuid]) -> Result<Vec<user::Model>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = user::Entity::find().filter(user::Column::Id.is_in(ids.iter().copied())).all(conn).await.or_db()?;
    rows.into_iter().map(|u| conn.pii().open_user(u)).collect()
}

/// Decrypts a user read as stored.
pub(crate) fn opened(conn: &impl Db, found: Option<user::Model>) -> Result<Option<user::Model>, Error> {
    found.map(|u| conn.pii().open_user(u)).transpose()
}

/// A user by normalised email, deleted or not.
pub async fn by_email(conn: &impl Db, email: &str) -> Result<Option<user::Model>, Error> {
    let cond = address_is(conn.pii(), user::Column::Email, user::Column::EmailIndex, email);
    opened(conn, user::Entity::find().filter(cond).one(conn).await.or_db()?)
}

/// The users whose pending email change would switch to `email`.
pub async fn by_new_email(conn: &impl Db, email: &str) -> Result<Vec<user::Model>, Error> {
    let cond = address_is(conn.pii(), user::Column::NewEmail, user::Column::NewEmailIndex, email);
    let rows = user::Entity::find().filter(cond).all(conn).await.or_db()?;
    rows.into_iter().map(|u| conn.pii().open_user(u)).collect()
}

/// Increments `token_version`, so every access token issued before fails at once, and
/// [`cancel_pending`]: whatever voids a user's sessions voids their one-time tokens too
/// (SPEC §4.4).
pub async fn revoke_credentials(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    user::Entity::update_many()
        .col_expr(user::Column::TokenVersion, Expr::col(user::Column::TokenVersion).add(1))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await
        .or_db()?;
    cancel_pending(conn, id, now).await
}

/// Retires every outstanding one-time token of the user (links and codes of every kind)
/// and forgets a pending email change, which those tokens were the only way to confirm.
pub async fn cancel_pending(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    user::Entity::update_many()
        .col_expr(user::Column::NewEmail, Expr::value(Option::<String>::None))
        .col_expr(user::Column::NewEmailIndex, Expr::value(Option::<String>::None))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::NewEmail.is_not_null())
        .exec(conn)
        .await
        .or_db()?;
    super::one_time_tokens::retire(conn, id, &[], now).await
}

/// A user by id, its row locked until the transaction ends (on PostgreSQL; SQLite's one
/// writer serialises the caller's transaction already).
pub async fn by_id_for_update(conn: &impl Db, id: Uuid) -> Result<Option<user::Model>, Error> {
    let q = user::Entity::find_by_id(id);
    let q = if conn.get_database_backend() == sea_orm::DbBackend::Postgres { q.lock_exclusive() } else { q };
    opened(conn, q.one(conn).await.or_db()?)
}

/// Replaces the password hash (a password change or reset).
pub async fn set_password_hash(
    conn: &impl ConnectionTrait,
    id: Uuid,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}
