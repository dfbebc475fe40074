//! Users.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{json, Value};
use tessera_domain::Error;
use uuid::Uuid;

use super::{address_is, set_if};
use crate::db::Db;
use crate::entity::{profile, user};
use crate::error::OrDb;

/// A user to create, with the empty profile every user has.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The address, already normalised.
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// Whether the address counts as verified from the start.
    pub verified: bool,
    pub is_active: bool,
    pub role: String,
    /// The profile's `user_metadata` and `app_metadata` (JSON objects).
    pub user_metadata: Value,
    pub app_metadata: Value,
    /// Whether an admin invited the user (sets the profile's `invited_at`).
    pub invited: bool,
    /// When: the rows' creation time.
    pub at: DateTime<Utc>,
    /// An anonymous user (`email` is then a placeholder nobody can receive mail at).
    pub anonymous: bool,
}

/// Creates a user and their profile through `conn` (the caller's transaction); a taken
/// email answers `EmailTaken` (the unique index decides).
pub async fn create(conn: &impl Db, new: NewUser) -> Result<user::Model, Error> {
    let now = new.at;
    let row = user::Model {
        id: Uuid::now_v7(),
        email: new.email,
        password_hash: new.password_hash,
        full_name: new.full_name,
        phone: new.phone,
        email_verified_at: new.verified.then_some(now),
        phone_verified_at: None,
        is_active: new.is_active,
        role: new.role,
        token_version: 0,
        last_login_at: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        new_email: None,
        mfa_enabled: false,
        email_index: None,
        new_email_index: None,
        is_anonymous: new.anonymous,
        has_identities: false,
        phone_index: None,
    };
    let created = insert(conn, row).await?;
    let profile = profile::Model {
        id: Uuid::now_v7(),
        user_id: created.id,
        avatar_url: None,
        location: None,
        date_of_birth: None,
        bio: None,
        preferences: json!({}),
        created_at: now,
        updated_at: now,
        user_metadata: new.user_metadata,
        app_metadata: new.app_metadata,
        invited_at: new.invited.then_some(now),
    };
    super::profiles::insert(conn, profile).await?;
    Ok(created)
}

/// The columns of a user a change sets; `None` leaves a column as it is (for a
/// nullable column, `Some(None)` clears it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    pub email: Option<String>,
    pub email_verified_at: Option<Option<DateTime<Utc>>>,
    /// The address waiting for confirmation.
    pub new_email: Option<Option<String>>,
    pub full_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub phone_verified_at: Option<Option<DateTime<Utc>>>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
    pub password_hash: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// false: an anonymous user became permanent (an address confirmed, an identity linked).
    pub is_anonymous: Option<bool>,
}

impl UserChanges {
    /// Whether the change sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == UserChanges::default()
    }
}

/// Applies `changes` to the user `current` (read in the caller's transaction) and
/// answers the row as stored; a taken email answers `EmailTaken`.
pub async fn update(conn: &impl Db, current: &user::Model, changes: UserChanges) -> Result<user::Model, Error> {
    let UserChanges {
        email,
        email_verified_at,
        new_email,
        full_name,
        phone,
        phone_verified_at,
        role,
        is_active,
        password_hash,
        updated_at,
        is_anonymous,
    } = changes;
    let mut row = current.clone().into_active_model();
    set_if(&mut row.email, email);
    set_if(&mut row.email_verified_at, email_verified_at);
    set_if(&mut row.new_email, new_email);
    set_if(&mut row.full_name, full_name);
    set_if(&mut row.phone, phone);
    set_if(&mut row.phone_verified_at, phone_verified_at);
    set_if(&mut row.role, role);
    set_if(&mut row.is_active, is_active);
    set_if(&mut row.password_hash, password_hash);
    set_if(&mut row.updated_at, updated_at);
    set_if(&mut row.is_anonymous, is_anonymous);
    save(conn, row).await
}

/// Inserts a user; a taken email answers `EmailTaken` (the unique index decides). With
/// PII encryption the row is stored encrypted; the address is first looked for among
/// rows still in plaintext or indexed under an older key, which the index cannot see.
pub(crate) async fn insert(conn: &impl Db, row: user::Model) -> Result<user::Model, Error> {
    if conn.pii().is_on() && by_email(conn, &row.email).await?.is_some() {
        return Err(Error::EmailTaken);
    }
    let sealed = conn.pii().seal_user(row)?;
    let stored = sealed.into_active_model().insert(conn).await.or_db()?;
    conn.pii().open_user(stored)
}

/// Writes the changed columns of a user and answers the row as stored (decrypted); a
/// taken email answers `EmailTaken`.
async fn save(conn: &impl Db, row: user::ActiveModel) -> Result<user::Model, Error> {
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

/// The live users (not deleted) whose phone is `phone` (E.164), the one whose number is
/// confirmed first, then the oldest: numbers are not unique, a confirmed one is meant to be.
pub async fn by_phone(conn: &impl Db, phone: &str) -> Result<Vec<user::Model>, Error> {
    let cond = address_is(conn.pii(), user::Column::Phone, user::Column::PhoneIndex, phone);
    let rows = user::Entity::find()
        .filter(cond)
        .filter(user::Column::DeletedAt.is_null())
        .order_by_asc(user::Column::CreatedAt)
        .all(conn)
        .await
        .or_db()?;
    let mut users: Vec<user::Model> = rows.into_iter().map(|u| conn.pii().open_user(u)).collect::<Result<_, _>>()?;
    users.sort_by_key(|u| u.phone_verified_at.is_none());
    Ok(users)
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
