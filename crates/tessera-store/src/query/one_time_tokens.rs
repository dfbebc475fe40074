//! One-time tokens: verification, email-change and recovery links and their codes.
//! Every use is a conditional update, so of many concurrent uses of one token or code
//! exactly one succeeds.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter, QueryOrder};
use tessera_domain::Error;
use uuid::Uuid;

use super::address_is;
use crate::db::Db;
use crate::entity::one_time_token;
use crate::error::OrDb;

/// Inserts a token (its new address encrypted with PII encryption).
pub async fn insert(conn: &impl Db, row: one_time_token::Model) -> Result<(), Error> {
    let row = conn.pii().seal_token(row)?;
    one_time_token::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

fn opened(conn: &impl Db, found: Option<one_time_token::Model>) -> Result<Option<one_time_token::Model>, Error> {
    found.map(|t| conn.pii().open_token(t)).transpose()
}

/// Tokens whose new address is `new_email` (none: tokens without one).
fn new_email_is(conn: &impl Db, new_email: Option<&str>) -> sea_orm::Condition {
    match new_email {
        Some(e) => address_is(conn.pii(), one_time_token::Column::NewEmail, one_time_token::Column::NewEmailIndex, e),
        None => sea_orm::Condition::all().add(one_time_token::Column::NewEmail.is_null()),
    }
}

/// A live (unused, unexpired) token by the SHA-256 of its link secret.
pub async fn live_by_hash(
    conn: &impl Db,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<one_time_token::Model>, Error> {
    let found = one_time_token::Entity::find()
        .filter(one_time_token::Column::TokenHash.eq(hash))
        .filter(one_time_token::Column::UsedAt.is_null())
        .filter(one_time_token::Column::ExpiresAt.gt(now))
        .one(conn)
        .await
        .or_db()?;
    opened(conn, found)
}

/// The newest token of one of `kinds` for a user whose code is still live (for an email
/// change, the one to `new_email`).
pub async fn newest_live_code(
    conn: &impl Db,
    user_id: Uuid,
    kinds: &[&str],
    new_email: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<one_time_token::Model>, Error> {
    let mut q = one_time_token::Entity::find()
        .filter(one_time_token::Column::UserId.eq(user_id))
        .filter(one_time_token::Column::Kind.is_in(kinds.iter().copied()))
        .filter(one_time_token::Column::UsedAt.is_null())
        .filter(one_time_token::Column::CodeHash.is_not_null())
        .filter(one_time_token::Column::CodeExpiresAt.gt(now));
    if new_email.is_some() {
        q = q.filter(new_email_is(conn, new_email));
    }
    let found = q.order_by_desc(one_time_token::Column::CreatedAt).one(conn).await.or_db()?;
    opened(conn, found)
}

/// The newest live code of one of `kinds` whose pending value (`new_email`: a new
/// address or number) is `new_value`, whoever it was sent for.
pub async fn newest_live_code_for_new(
    conn: &impl Db,
    kinds: &[&str],
    new_value: &str,
    now: DateTime<Utc>,
) -> Result<Option<one_time_token::Model>, Error> {
    let found = one_time_token::Entity::find()
        .filter(one_time_token::Column::Kind.is_in(kinds.iter().copied()))
        .filter(one_time_token::Column::UsedAt.is_null())
        .filter(one_time_token::Column::CodeHash.is_not_null())
        .filter(one_time_token::Column::CodeExpiresAt.gt(now))
        .filter(new_email_is(conn, Some(new_value)))
        .order_by_desc(one_time_token::Column::CreatedAt)
        .one(conn)
        .await
        .or_db()?;
    opened(conn, found)
}

/// The other token of a pair issued together (same user, same moment, same new address)
/// of `kind`, if there is one.
pub async fn sibling(
    conn: &impl Db,
    token: &one_time_token::Model,
    kind: &str,
) -> Result<Option<one_time_token::Model>, Error> {
    let found = one_time_token::Entity::find()
        .filter(one_time_token::Column::UserId.eq(token.user_id))
        .filter(one_time_token::Column::Kind.eq(kind))
        .filter(one_time_token::Column::CreatedAt.eq(token.created_at))
        .filter(new_email_is(conn, token.new_email.as_deref()))
        .one(conn)
        .await
        .or_db()?;
    opened(conn, found)
}

/// Spends one of a code's `max` attempts before it is compared; `false` when none is
/// left (or the token was used meanwhile). Counting first, in one conditional update,
/// means `max` guesses at most are ever compared, however many arrive at once.
pub async fn spend_code_attempt(conn: &impl ConnectionTrait, id: Uuid, max: i32) -> Result<bool, Error> {
    let res = one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::CodeAttempts, Expr::col(one_time_token::Column::CodeAttempts).add(1))
        .filter(one_time_token::Column::Id.eq(id))
        .filter(one_time_token::Column::UsedAt.is_null())
        .filter(one_time_token::Column::CodeAttempts.lt(max))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Marks a token used, if nobody did first: the guard that makes every token and code
/// single-use under concurrency. `confirmed` records that it confirmed what it was for.
pub async fn use_once(
    conn: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
    confirmed: bool,
) -> Result<bool, Error> {
    let mut q = one_time_token::Entity::update_many().col_expr(one_time_token::Column::UsedAt, Expr::value(at));
    if confirmed {
        q = q.col_expr(one_time_token::Column::ConfirmedAt, Expr::value(at));
    }
    let res = q
        .filter(one_time_token::Column::Id.eq(id))
        .filter(one_time_token::Column::UsedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Retires every unused token of a user of the given kinds (every kind for an empty
/// list).
pub async fn retire(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    kinds: &[&str],
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let mut q = one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(at))
        .filter(one_time_token::Column::UserId.eq(user_id))
        .filter(one_time_token::Column::UsedAt.is_null());
    if !kinds.is_empty() {
        q = q.filter(one_time_token::Column::Kind.is_in(kinds.iter().copied()));
    }
    q.exec(conn).await.or_db()?;
    Ok(())
}

/// Retires every unused token of these users.
pub async fn retire_for_users(conn: &impl ConnectionTrait, user_ids: &[Uuid], at: DateTime<Utc>) -> Result<(), Error> {
    one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(at))
        .filter(one_time_token::Column::UserId.is_in(user_ids.iter().copied()))
        .filter(one_time_token::Column::UsedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}
