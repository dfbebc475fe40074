//! Users.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::user;
use crate::error::OrDb;

/// Inserts a user; a taken email answers `EmailTaken` (the unique index decides, never
/// a pre-check).
pub async fn insert(conn: &impl ConnectionTrait, row: user::Model) -> Result<user::Model, Error> {
    row.into_active_model().insert(conn).await.or_db()
}

/// Writes the changed columns of a user and answers the row as stored; a taken email
/// answers `EmailTaken`.
pub async fn save(conn: &impl ConnectionTrait, row: user::ActiveModel) -> Result<user::Model, Error> {
    row.update(conn).await.or_db()
}

/// A user by id, deleted or not.
pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, Error> {
    user::Entity::find_by_id(id).one(conn).await.or_db()
}

/// A user by normalised email, deleted or not.
pub async fn by_email(conn: &impl ConnectionTrait, email: &str) -> Result<Option<user::Model>, Error> {
    user::Entity::find().filter(user::Column::Email.eq(email)).one(conn).await.or_db()
}

/// The users whose pending email change would switch to `email`.
pub async fn by_new_email(conn: &impl ConnectionTrait, email: &str) -> Result<Vec<user::Model>, Error> {
    user::Entity::find().filter(user::Column::NewEmail.eq(email)).all(conn).await.or_db()
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
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::NewEmail.is_not_null())
        .exec(conn)
        .await
        .or_db()?;
    super::one_time_tokens::retire(conn, id, &[], now).await
}

/// A user by id, its row locked until the transaction ends (on PostgreSQL; SQLite's one
/// writer serialises the caller's transaction already).
pub async fn by_id_for_update(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, Error> {
    let q = user::Entity::find_by_id(id);
    let q = if conn.get_database_backend() == sea_orm::DbBackend::Postgres { q.lock_exclusive() } else { q };
    q.one(conn).await.or_db()
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
