//! Second factors: TOTP factors, recovery codes and the tokens between a sign-in's two
//! steps. Every use is a conditional update, so that a code, a recovery code or a token
//! is accepted once however many requests present it at once, on one node or many.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::{mfa_factor, mfa_token, recovery_code, user};
use crate::error::OrDb;

/// The status of a factor a first code has activated.
pub const VERIFIED: &str = "verified";
/// The status of a factor not yet activated.
pub const UNVERIFIED: &str = "unverified";
/// A factor of codes from an authenticator app.
pub const TOTP: &str = "totp";
/// A factor of a WebAuthn credential (the Supabase surface's).
pub const WEBAUTHN: &str = "webauthn";
/// A factor of a phone number, proven by a code sent by SMS (the Supabase surface's).
pub const PHONE: &str = "phone";

/// Inserts a factor.
pub async fn insert_factor(conn: &impl ConnectionTrait, row: mfa_factor::Model) -> Result<(), Error> {
    mfa_factor::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// A user's factors, oldest first.
pub async fn factors(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<mfa_factor::Model>, Error> {
    mfa_factor::Entity::find()
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .order_by_asc(mfa_factor::Column::CreatedAt)
        .order_by_asc(mfa_factor::Column::Id)
        .all(conn)
        .await
        .or_db()
}

/// The factors of several users (a page of them), oldest first.
pub async fn factors_of_users(conn: &impl ConnectionTrait, user_ids: &[Uuid]) -> Result<Vec<mfa_factor::Model>, Error> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    mfa_factor::Entity::find()
        .filter(mfa_factor::Column::UserId.is_in(user_ids.iter().copied()))
        .order_by_asc(mfa_factor::Column::CreatedAt)
        .order_by_asc(mfa_factor::Column::Id)
        .all(conn)
        .await
        .or_db()
}

/// A factor of this user (another user's is none).
pub async fn factor(conn: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<Option<mfa_factor::Model>, Error> {
    mfa_factor::Entity::find_by_id(id).filter(mfa_factor::Column::UserId.eq(user_id)).one(conn).await.or_db()
}

/// Accepts a code of `step` for a factor: verifies it if it was not yet (with
/// `activate`), and advances its last used step, only if `step` is newer. `false` when
/// the step was used already (a replay), or the factor is gone or in the other state.
pub async fn use_step(
    conn: &impl ConnectionTrait,
    id: Uuid,
    step: i64,
    activate: bool,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let (from, to) = if activate { (UNVERIFIED, VERIFIED) } else { (VERIFIED, VERIFIED) };
    let res = mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::Status, Expr::value(to))
        .col_expr(mfa_factor::Column::LastUsedStep, Expr::value(step))
        .col_expr(mfa_factor::Column::LastUsedAt, Expr::value(now))
        .filter(mfa_factor::Column::Id.eq(id))
        .filter(mfa_factor::Column::Status.eq(from))
        .filter(
            Condition::any()
                .add(mfa_factor::Column::LastUsedStep.is_null())
                .add(mfa_factor::Column::LastUsedStep.lt(step)),
        )
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Records a use of a factor proven by a one-time code (a phone factor): verifies it with
/// `activate` (only if it was not yet), else only if it is verified. `false` when it is
/// gone or in the other state (a concurrent verification won).
pub async fn use_code_factor(
    conn: &impl ConnectionTrait,
    id: Uuid,
    activate: bool,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let from = if activate { UNVERIFIED } else { VERIFIED };
    let res = mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::Status, Expr::value(VERIFIED))
        .col_expr(mfa_factor::Column::LastUsedAt, Expr::value(now))
        .filter(mfa_factor::Column::Id.eq(id))
        .filter(mfa_factor::Column::Status.eq(from))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Deletes a factor of a user; `false` when there was none.
pub async fn delete_factor(conn: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, Error> {
    let res = mfa_factor::Entity::delete_many()
        .filter(mfa_factor::Column::Id.eq(id))
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// How many verified factors a user has.
pub async fn verified_count(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, Error> {
    mfa_factor::Entity::find()
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .filter(mfa_factor::Column::Status.eq(VERIFIED))
        .count(conn)
        .await
        .or_db()
}

/// Sets `mfa_enabled` on the user, as its verified factors say (the user row first: the
/// lock order of [`crate::query`]).
pub async fn set_enabled(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    on: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    user::Entity::update_many()
        .col_expr(user::Column::MfaEnabled, Expr::value(on))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Removes every factor and recovery code of a user.
pub async fn delete_all(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<(), Error> {
    mfa_factor::Entity::delete_many().filter(mfa_factor::Column::UserId.eq(user_id)).exec(conn).await.or_db()?;
    recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(conn).await.or_db()?;
    Ok(())
}

/// Removes a user's recovery codes (their last verified factor is gone).
pub async fn delete_recovery_codes(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<(), Error> {
    recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(conn).await.or_db()?;
    Ok(())
}

/// Replaces a user's recovery codes with these (hashed) ones.
pub async fn replace_recovery_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    hashes: &[String],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(conn).await.or_db()?;
    let rows = hashes.iter().map(|h| {
        recovery_code::Model { id: Uuid::now_v7(), user_id, code_hash: h.clone(), used_at: None, created_at: now }
            .into_active_model()
    });
    recovery_code::Entity::insert_many(rows).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// Uses one of a user's recovery codes (by its hash), if it is unused: `false` otherwise.
pub async fn use_recovery_code(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let res = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::CodeHash.eq(hash))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// How many unused recovery codes a user has.
pub async fn recovery_codes_left(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, Error> {
    recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(conn)
        .await
        .or_db()
}

/// Inserts the token between a sign-in's two steps.
pub async fn insert_token(conn: &impl ConnectionTrait, row: mfa_token::Model) -> Result<(), Error> {
    mfa_token::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// A live (unused, unexpired) token by its SHA-256.
pub async fn live_token(
    conn: &impl ConnectionTrait,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<mfa_token::Model>, Error> {
    mfa_token::Entity::find()
        .filter(mfa_token::Column::TokenHash.eq(hash))
        .filter(mfa_token::Column::UsedAt.is_null())
        .filter(mfa_token::Column::ExpiresAt.gt(now))
        .one(conn)
        .await
        .or_db()
}

/// Spends one of a token's `max` attempts before its code is compared; `false` when none
/// is left or the token was used meanwhile.
pub async fn spend_token_attempt(conn: &impl ConnectionTrait, id: Uuid, max: i32) -> Result<bool, Error> {
    let res = mfa_token::Entity::update_many()
        .col_expr(mfa_token::Column::Attempts, Expr::col(mfa_token::Column::Attempts).add(1))
        .filter(mfa_token::Column::Id.eq(id))
        .filter(mfa_token::Column::UsedAt.is_null())
        .filter(mfa_token::Column::Attempts.lt(max))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Marks a token used, if nobody did first.
pub async fn use_token(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
    let res = mfa_token::Entity::update_many()
        .col_expr(mfa_token::Column::UsedAt, Expr::value(now))
        .filter(mfa_token::Column::Id.eq(id))
        .filter(mfa_token::Column::UsedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Stores a WebAuthn factor's credential (encrypted): with `activate`, only on an
/// unverified factor, which it verifies; else only on a verified one. `false` when the
/// factor is gone or in the other state (a concurrent verification won).
pub async fn set_webauthn_credential(
    conn: &impl ConnectionTrait,
    id: Uuid,
    secret: &str,
    activate: bool,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let from = if activate { UNVERIFIED } else { VERIFIED };
    let res = mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::Secret, Expr::value(secret))
        .col_expr(mfa_factor::Column::Status, Expr::value(VERIFIED))
        .col_expr(mfa_factor::Column::LastUsedAt, Expr::value(now))
        .filter(mfa_factor::Column::Id.eq(id))
        .filter(mfa_factor::Column::FactorType.eq(WEBAUTHN))
        .filter(mfa_factor::Column::Status.eq(from))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}
