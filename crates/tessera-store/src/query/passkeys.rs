//! Passkeys and the challenges of their ceremonies (SPEC §5.10). A challenge is taken by
//! deleting it (one statement, its row returned): however many requests present it at
//! once, on one node or many, one gets it. A sign-in moves a passkey's signature counter
//! only forwards, in one conditional statement.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use tessera_domain::Error;
use uuid::Uuid;

use super::one_parameter_sql;
use crate::entity::{passkey, user, webauthn_challenge};
use crate::error::OrDb;

/// Inserts a passkey; `false` when its credential is registered already (to anyone).
pub async fn insert(conn: &impl ConnectionTrait, row: passkey::Model) -> Result<bool, Error> {
    match passkey::Entity::insert(row.into_active_model()).exec_without_returning(conn).await {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e).or_db(),
    }
}

fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// A user's passkeys, oldest first.
pub async fn of_user(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<passkey::Model>, Error> {
    passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .order_by_asc(passkey::Column::Id)
        .all(conn)
        .await
        .or_db()
}

/// How many passkeys a user has.
pub async fn count(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, Error> {
    passkey::Entity::find().filter(passkey::Column::UserId.eq(user_id)).count(conn).await.or_db()
}

/// A passkey of this user (another user's is none).
pub async fn of_user_by_id(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<passkey::Model>, Error> {
    passkey::Entity::find_by_id(id).filter(passkey::Column::UserId.eq(user_id)).one(conn).await.or_db()
}

/// Builds the `(passkey, user)` of a [`with_user_sql`] row, reading column `i` with
/// `$row.$get(i)?`; shared by the pool's decoder and the SQLite fast path.
macro_rules! passkey_and_user {
    ($row:ident . $get:ident) => {
        (
            $crate::entity::passkey::Model {
                id: $row.$get(0)?,
                user_id: $row.$get(1)?,
                credential_id: $row.$get(2)?,
                name: $row.$get(3)?,
                credential: $row.$get(4)?,
                aaguid: $row.$get(5)?,
                backed_up: $row.$get(6)?,
                sign_count: $row.$get(7)?,
                created_at: $row.$get(8)?,
                last_used_at: $row.$get(9)?,
            },
            $crate::query::user_row::user_at!($row.$get, 10),
        )
    };
}
pub(crate) use passkey_and_user;

/// The query of a passkey by credential id with its user, read as [`passkey_and_user!`]
/// decodes it; its parameter is the credential id (base64url).
pub(crate) fn with_user_sql(backend: DbBackend) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    one_parameter_sql(&SQL, backend, |p| {
        format!(
            "SELECT p.id, p.user_id, p.credential_id, p.name, p.credential, p.aaguid, p.backed_up, p.sign_count, \
             p.created_at, p.last_used_at, {} FROM passkeys p JOIN users u ON u.id = p.user_id \
             WHERE p.credential_id = {p}",
            crate::query::user_row::user_columns!()
        )
    })
}

/// Builds a `webauthn_challenge::Model` of a [`challenge_sql`] row.
macro_rules! challenge_row {
    ($row:ident . $get:ident) => {
        $crate::entity::webauthn_challenge::Model {
            id: $row.$get(0)?,
            kind: $row.$get(1)?,
            user_id: $row.$get(2)?,
            state: $row.$get(3)?,
            expires_at: $row.$get(4)?,
            created_at: $row.$get(5)?,
        }
    };
}
pub(crate) use challenge_row;

/// The query of a challenge by id, read as [`challenge_row!`] decodes it.
pub(crate) fn challenge_sql(backend: DbBackend) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    one_parameter_sql(&SQL, backend, |p| {
        format!("SELECT id, kind, user_id, state, expires_at, created_at FROM webauthn_challenges WHERE id = {p}")
    })
}

/// The passkey of a credential id (base64url) and its user, as stored (the user's
/// personal fields not decrypted), in one query.
pub(crate) async fn with_user_as_stored(
    conn: &impl ConnectionTrait,
    credential_id: &str,
) -> Result<Option<(passkey::Model, user::Model)>, Error> {
    super::one_row(conn, with_user_sql, credential_id.into(), |r| Ok(passkey_and_user!(r.try_get_by_index))).await
}

/// A challenge by id, whatever its kind.
pub(crate) async fn challenge_by_id(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<webauthn_challenge::Model>, Error> {
    super::one_row(conn, challenge_sql, id.into(), |r| Ok(challenge_row!(r.try_get_by_index))).await
}

/// Renames a passkey of a user's; `false` when there is none.
pub async fn rename(conn: &impl ConnectionTrait, user_id: Uuid, id: Uuid, name: &str) -> Result<bool, Error> {
    let res = passkey::Entity::update_many()
        .col_expr(passkey::Column::Name, Expr::value(name))
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Deletes a passkey of a user's; `false` when there was none.
pub async fn delete(conn: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, Error> {
    let res = passkey::Entity::delete_many()
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// A sign-in with a passkey, as [`record_use`] records it.
#[derive(Debug, Clone)]
pub struct PasskeyUse {
    pub id: Uuid,
    /// The authenticator's signature counter.
    pub counter: i64,
    /// The credential as it stands after the use.
    pub credential: String,
    pub backed_up: bool,
}

/// Records a sign-in with a passkey: its new counter (only if it moved forwards, or
/// the authenticator keeps none: 0), its credential as updated, its backup state, the
/// time. `false` when another sign-in moved the counter past `counter` meanwhile (a
/// cloned authenticator, or the same assertion twice).
pub async fn record_use(conn: &impl ConnectionTrait, u: &PasskeyUse, now: DateTime<Utc>) -> Result<bool, Error> {
    let PasskeyUse { id, counter, ref credential, backed_up } = *u;
    let moved = if counter == 0 {
        Condition::all().add(passkey::Column::SignCount.eq(0))
    } else {
        Condition::all().add(passkey::Column::SignCount.lt(counter))
    };
    let res = passkey::Entity::update_many()
        .col_expr(passkey::Column::SignCount, Expr::value(counter))
        .col_expr(passkey::Column::Credential, Expr::value(credential.as_str()))
        .col_expr(passkey::Column::BackedUp, Expr::value(backed_up))
        .col_expr(passkey::Column::LastUsedAt, Expr::value(now))
        .filter(passkey::Column::Id.eq(id))
        .filter(moved)
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Stores a ceremony's challenge.
pub async fn insert_challenge(conn: &impl ConnectionTrait, row: webauthn_challenge::Model) -> Result<(), Error> {
    webauthn_challenge::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// Takes a challenge of `kind` (and of `user_id`, when given): deleted as it is read,
/// so it serves once. An expired one is taken too (and refused by the caller).
pub async fn take_challenge(
    conn: &impl ConnectionTrait,
    id: Uuid,
    kind: &str,
    user_id: Option<Uuid>,
) -> Result<Option<webauthn_challenge::Model>, Error> {
    let mut which =
        Condition::all().add(webauthn_challenge::Column::Id.eq(id)).add(webauthn_challenge::Column::Kind.eq(kind));
    if let Some(user_id) = user_id {
        which = which.add(webauthn_challenge::Column::UserId.eq(user_id));
    }
    let mut taken = webauthn_challenge::Entity::delete_many().filter(which).exec_with_returning(conn).await.or_db()?;
    Ok(taken.pop())
}

/// Deletes a challenge; `false` when another request took it first.
pub async fn delete_challenge(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool, Error> {
    let res = webauthn_challenge::Entity::delete_by_id(id).exec(conn).await.or_db()?;
    Ok(res.rows_affected == 1)
}
