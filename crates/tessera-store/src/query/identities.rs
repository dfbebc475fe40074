//! External identities and the codes of PKCE flows (SPEC §5.11). With PII encryption, an
//! identity's address and claims are stored encrypted like the user's own.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::{flow_state, identity, user};
use crate::error::OrDb;

fn opened(conn: &impl Db, mut row: identity::Model) -> Result<identity::Model, Error> {
    row.email = row.email.map(|e| conn.pii().open(e)).transpose()?;
    row.data = conn.pii().open(row.data)?;
    Ok(row)
}

/// The identity `(provider, provider_id)`, if some user has it.
pub async fn by_subject(conn: &impl Db, provider: &str, provider_id: &str) -> Result<Option<identity::Model>, Error> {
    let found = identity::Entity::find()
        .filter(identity::Column::Provider.eq(provider))
        .filter(identity::Column::ProviderId.eq(provider_id))
        .one(conn)
        .await
        .or_db()?;
    found.map(|row| opened(conn, row)).transpose()
}

/// A user's identities, oldest first.
pub async fn of_user(conn: &impl Db, user_id: Uuid) -> Result<Vec<identity::Model>, Error> {
    let rows = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user_id))
        .order_by_asc(identity::Column::CreatedAt)
        .all(conn)
        .await
        .or_db()?;
    rows.into_iter().map(|row| opened(conn, row)).collect()
}

/// The identities of `user_ids`, oldest first.
pub async fn of_users(conn: &impl Db, user_ids: &[Uuid]) -> Result<Vec<identity::Model>, Error> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = identity::Entity::find()
        .filter(identity::Column::UserId.is_in(user_ids.iter().copied()))
        .order_by_asc(identity::Column::CreatedAt)
        .all(conn)
        .await
        .or_db()?;
    rows.into_iter().map(|row| opened(conn, row)).collect()
}

/// Links a new identity; one another user has already answers `IdentityTaken` (the
/// unique index decides, so two sign-ins racing to create it cannot both win).
pub async fn insert(conn: &impl Db, row: identity::Model) -> Result<identity::Model, Error> {
    let mut sealed = row.clone();
    sealed.email = row.email.as_deref().map(|e| conn.pii().seal(e)).transpose()?;
    sealed.data = conn.pii().seal(&row.data)?;
    sealed.into_active_model().insert(conn).await.or_db()?;
    user::Entity::update_many()
        .col_expr(user::Column::HasIdentities, Expr::value(true))
        .filter(user::Column::Id.eq(row.user_id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(row)
}

/// Records a sign-in through an identity, with what the provider now says of the user.
pub async fn signed_in(
    conn: &impl Db,
    id: Uuid,
    email: Option<&str>,
    data: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let email = email.map(|e| conn.pii().seal(e)).transpose()?;
    identity::Entity::update_many()
        .col_expr(identity::Column::Email, Expr::value(email))
        .col_expr(identity::Column::Data, Expr::value(conn.pii().seal(data)?))
        .col_expr(identity::Column::LastSignInAt, Expr::value(now))
        .col_expr(identity::Column::UpdatedAt, Expr::value(now))
        .filter(identity::Column::Id.eq(id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Unlinks identity `id` of `user_id`; false when the user has no such identity.
pub async fn delete(conn: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, Error> {
    let res = identity::Entity::delete_many()
        .filter(identity::Column::Id.eq(id))
        .filter(identity::Column::UserId.eq(user_id))
        .exec(conn)
        .await
        .or_db()?;
    let left = identity::Entity::find().filter(identity::Column::UserId.eq(user_id)).count(conn).await.or_db()?;
    user::Entity::update_many()
        .col_expr(user::Column::HasIdentities, Expr::value(left > 0))
        .filter(user::Column::Id.eq(user_id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Keeps the code of a PKCE flow.
pub async fn insert_flow(conn: &impl ConnectionTrait, row: flow_state::Model) -> Result<(), Error> {
    row.into_active_model().insert(conn).await.or_db()?;
    Ok(())
}

/// Takes the code whose SHA-256 is `code_hash`: deleted as it is read, so only one
/// exchange gets it, on any node; `None` when it is unknown, used or expired.
pub async fn take_flow(
    conn: &impl ConnectionTrait,
    code_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<flow_state::Model>, Error> {
    let Some(row) =
        flow_state::Entity::find().filter(flow_state::Column::CodeHash.eq(code_hash)).one(conn).await.or_db()?
    else {
        return Ok(None);
    };
    let res = flow_state::Entity::delete_many().filter(flow_state::Column::Id.eq(row.id)).exec(conn).await.or_db()?;
    Ok((res.rows_affected == 1 && row.expires_at > now).then_some(row))
}

/// Up to `limit` anonymous users created before `cutoff` (never made permanent).
pub async fn stale_anonymous(conn: &impl Db, cutoff: DateTime<Utc>, limit: u64) -> Result<Vec<Uuid>, Error> {
    use sea_orm::QuerySelect;
    let ids = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::IsAnonymous.eq(true))
        .filter(user::Column::CreatedAt.lt(cutoff))
        .limit(limit)
        .into_tuple::<Uuid>()
        .all(conn)
        .await
        .or_db()?;
    Ok(ids)
}

/// Deletes those of `ids` still anonymous (one made permanent meanwhile stays); their
/// sessions, identities and codes go by cascade. How many went.
pub async fn purge_anonymous(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<u64, Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let res = user::Entity::delete_many()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .filter(user::Column::IsAnonymous.eq(true))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected)
}
