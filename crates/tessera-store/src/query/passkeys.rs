//! Passkeys and the challenges of their ceremonies (SPEC §5.10). A challenge is taken by
//! deleting it (one statement, its row returned): however many requests present it at
//! once, on one node or many, one gets it. A sign-in moves a passkey's signature counter
//! only forwards, in one conditional statement.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::{passkey, webauthn_challenge};
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

/// The passkey of a credential id (base64url).
pub async fn by_credential_id(
    conn: &impl ConnectionTrait,
    credential_id: &str,
) -> Result<Option<passkey::Model>, Error> {
    passkey::Entity::find().filter(passkey::Column::CredentialId.eq(credential_id)).one(conn).await.or_db()
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

/// Records a sign-in with a passkey: its new counter (only if it moved forwards, or
/// the authenticator keeps none: 0), its credential as updated, its backup state, the
/// time. `false` when another sign-in moved the counter past `counter` meanwhile (a
/// cloned authenticator, or the same assertion twice).
pub async fn record_use(
    conn: &impl ConnectionTrait,
    id: Uuid,
    counter: i64,
    credential: &str,
    backed_up: bool,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let moved = if counter == 0 {
        Condition::all().add(passkey::Column::SignCount.eq(0))
    } else {
        Condition::all().add(passkey::Column::SignCount.lt(counter))
    };
    let res = passkey::Entity::update_many()
        .col_expr(passkey::Column::SignCount, Expr::value(counter))
        .col_expr(passkey::Column::Credential, Expr::value(credential))
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

/// Reads a challenge of `kind` without taking it (a sign-in takes it in its own
/// transaction, with [`delete_challenge`], once the answer checks out).
pub async fn challenge(
    conn: &impl ConnectionTrait,
    id: Uuid,
    kind: &str,
) -> Result<Option<webauthn_challenge::Model>, Error> {
    webauthn_challenge::Entity::find_by_id(id).filter(webauthn_challenge::Column::Kind.eq(kind)).one(conn).await.or_db()
}

/// Deletes a challenge; `false` when another request took it first.
pub async fn delete_challenge(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool, Error> {
    let res = webauthn_challenge::Entity::delete_by_id(id).exec(conn).await.or_db()?;
    Ok(res.rows_affected == 1)
}
