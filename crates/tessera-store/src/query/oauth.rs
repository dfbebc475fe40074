//! tessera as an OAuth 2.1 and OpenID Connect provider (SPEC §5.12): the registered
//! clients, the authorization requests and their codes, the consents users gave, and the
//! sessions opened for clients.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::{oauth_authorization as authz, oauth_client, oauth_consent, session};
use crate::error::OrDb;

/// Registers a client.
pub async fn insert_client(
    conn: &impl ConnectionTrait,
    row: oauth_client::Model,
) -> Result<oauth_client::Model, Error> {
    row.clone().into_active_model().insert(conn).await.or_db()?;
    Ok(row)
}

/// A client by its id.
pub async fn client(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<oauth_client::Model>, Error> {
    oauth_client::Entity::find_by_id(id).one(conn).await.or_db()
}

/// A page of the clients, oldest first (`page` from 1), and how many there are.
pub async fn clients(
    conn: &impl ConnectionTrait,
    page: u64,
    per_page: u64,
) -> Result<(Vec<oauth_client::Model>, u64), Error> {
    let total = oauth_client::Entity::find().count(conn).await.or_db()?;
    let rows = oauth_client::Entity::find()
        .order_by_asc(oauth_client::Column::CreatedAt)
        .order_by_asc(oauth_client::Column::Id)
        .offset(page.saturating_sub(1).saturating_mul(per_page))
        .limit(per_page)
        .all(conn)
        .await
        .or_db()?;
    Ok((rows, total))
}

/// Writes a client's new description (all columns but its id and creation).
pub async fn update_client(conn: &impl ConnectionTrait, row: oauth_client::Model) -> Result<bool, Error> {
    let res = oauth_client::Entity::update_many()
        .col_expr(oauth_client::Column::SecretHash, Expr::value(row.secret_hash))
        .col_expr(oauth_client::Column::ClientType, Expr::value(row.client_type))
        .col_expr(oauth_client::Column::TokenEndpointAuthMethod, Expr::value(row.token_endpoint_auth_method))
        .col_expr(oauth_client::Column::ClientName, Expr::value(row.client_name))
        .col_expr(oauth_client::Column::ClientUri, Expr::value(row.client_uri))
        .col_expr(oauth_client::Column::LogoUri, Expr::value(row.logo_uri))
        .col_expr(oauth_client::Column::RedirectUris, Expr::value(row.redirect_uris))
        .col_expr(oauth_client::Column::PostLogoutRedirectUris, Expr::value(row.post_logout_redirect_uris))
        .col_expr(oauth_client::Column::GrantTypes, Expr::value(row.grant_types))
        .col_expr(oauth_client::Column::Scope, Expr::value(row.scope))
        .col_expr(oauth_client::Column::UpdatedAt, Expr::value(row.updated_at))
        .filter(oauth_client::Column::Id.eq(row.id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Deletes a client (its authorizations and consents go with it) and revokes the
/// sessions opened for it; false when there was no such client.
pub async fn delete_client(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
    revoke_sessions(conn, None, id, now).await?;
    let res = oauth_client::Entity::delete_by_id(id).exec(conn).await.or_db()?;
    Ok(res.rows_affected == 1)
}

/// Revokes the live sessions opened for `client_id` (of `user_id` only, when given); the
/// ids revoked.
pub async fn revoke_sessions(
    conn: &impl ConnectionTrait,
    user_id: Option<Uuid>,
    client_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, Error> {
    let mut live = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::OauthClientId.eq(client_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(user_id) = user_id {
        live = live.filter(session::Column::UserId.eq(user_id));
    }
    let ids: Vec<Uuid> = live.into_tuple().all(conn).await.or_db()?;
    if !ids.is_empty() {
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Id.is_in(ids.iter().copied()))
            .filter(session::Column::RevokedAt.is_null())
            .exec(conn)
            .await
            .or_db()?;
    }
    Ok(ids)
}

/// Keeps an authorization request.
pub async fn insert_authorization(conn: &impl ConnectionTrait, row: authz::Model) -> Result<(), Error> {
    row.into_active_model().insert(conn).await.or_db()?;
    Ok(())
}

/// An authorization request by its id.
pub async fn authorization(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<authz::Model>, Error> {
    authz::Entity::find_by_id(id).one(conn).await.or_db()
}

/// The user's decision on a pending, unexpired request: approved, with the code's hash,
/// how the user signed in and until when the code may be exchanged; or denied (no code).
/// False when the request was no longer pending (decided twice, or expired).
pub struct Decision<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `None`: denied.
    pub code_hash: Option<&'a str>,
    pub auth_time: DateTime<Utc>,
    pub aal: &'a str,
    pub amr: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub code_expires_at: DateTime<Utc>,
}

/// Writes a [`Decision`]; false when the request was not pending and unexpired any more.
pub async fn decide(conn: &impl ConnectionTrait, d: Decision<'_>) -> Result<bool, Error> {
    let status = if d.code_hash.is_some() { "approved" } else { "denied" };
    let res = authz::Entity::update_many()
        .col_expr(authz::Column::Status, Expr::value(status))
        .col_expr(authz::Column::UserId, Expr::value(d.user_id))
        .col_expr(authz::Column::CodeHash, Expr::value(d.code_hash))
        .col_expr(authz::Column::AuthTime, Expr::value(d.auth_time))
        .col_expr(authz::Column::Aal, Expr::value(d.aal))
        .col_expr(authz::Column::Amr, Expr::value(d.amr))
        .col_expr(authz::Column::CodeExpiresAt, Expr::value(d.code_expires_at))
        .filter(authz::Column::Id.eq(d.id))
        .filter(authz::Column::Status.eq("pending"))
        .filter(authz::Column::ExpiresAt.gt(d.now))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// What presenting a code found.
pub enum Taken {
    /// The code was current: it is spent now, and the session it opens is `session_id`.
    Fresh(authz::Model),
    /// The code had been exchanged already (its session, if any, is to be revoked), or
    /// expired, or belongs to another state: nothing to give.
    Spent(authz::Model),
    /// No such code.
    Unknown,
}

/// Spends the code whose SHA-256 is `code_hash`, naming the session it will open: of
/// two exchanges at once, one wins.
pub async fn take_code(
    conn: &impl ConnectionTrait,
    code_hash: &str,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Taken, Error> {
    let res = authz::Entity::update_many()
        .col_expr(authz::Column::Status, Expr::value("used"))
        .col_expr(authz::Column::SessionId, Expr::value(session_id))
        .filter(authz::Column::CodeHash.eq(code_hash))
        .filter(authz::Column::Status.eq("approved"))
        .filter(authz::Column::CodeExpiresAt.gt(now))
        .exec(conn)
        .await
        .or_db()?;
    let row = authz::Entity::find().filter(authz::Column::CodeHash.eq(code_hash)).one(conn).await.or_db()?;
    Ok(match row {
        Some(row) if res.rows_affected == 1 => Taken::Fresh(row),
        Some(row) => Taken::Spent(row),
        None => Taken::Unknown,
    })
}

/// The consent a user gave a client, if any.
pub async fn consent(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
) -> Result<Option<oauth_consent::Model>, Error> {
    oauth_consent::Entity::find_by_id((user_id, client_id)).one(conn).await.or_db()
}

/// Remembers a consent (the scopes given, replacing those given before).
pub async fn remember_consent(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let row = oauth_consent::Model { user_id, client_id, scope: scope.to_owned(), granted_at: now, updated_at: now };
    // Two consents at once: the later one's scopes stand.
    let upsert = OnConflict::columns([oauth_consent::Column::UserId, oauth_consent::Column::ClientId])
        .update_columns([oauth_consent::Column::Scope, oauth_consent::Column::UpdatedAt])
        .to_owned();
    oauth_consent::Entity::insert(row.into_active_model()).on_conflict(upsert).exec(conn).await.or_db()?;
    Ok(())
}

/// The consents of a user with their clients, most recent first.
pub async fn consents_of(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<(oauth_consent::Model, oauth_client::Model)>, Error> {
    let rows = oauth_consent::Entity::find()
        .filter(oauth_consent::Column::UserId.eq(user_id))
        .order_by_desc(oauth_consent::Column::UpdatedAt)
        .all(conn)
        .await
        .or_db()?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.client_id).collect();
    let clients = oauth_client::Entity::find().filter(oauth_client::Column::Id.is_in(ids)).all(conn).await.or_db()?;
    Ok(rows.into_iter().filter_map(|c| clients.iter().find(|k| k.id == c.client_id).cloned().map(|k| (c, k))).collect())
}

/// Withdraws a user's consent to a client and revokes the sessions opened for it; false
/// when there was no consent.
pub async fn withdraw_consent(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    revoke_sessions(conn, Some(user_id), client_id, now).await?;
    let res = oauth_consent::Entity::delete_by_id((user_id, client_id)).exec(conn).await.or_db()?;
    Ok(res.rows_affected == 1)
}
