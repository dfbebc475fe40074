//! Supabase's OAuth 2.1 server API (SPEC §5.12) over tessera's provider: the admin's
//! clients (`/auth/v1/admin/oauth/clients`, a `service_role` key), the user's grants
//! (`/auth/v1/user/oauth/grants`), and the authorization API an app's own consent page
//! decides through (`/auth/v1/oauth/authorizations/{id}[/consent]`), as auth-js calls them.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_core::domain::Error;
use tessera_core::oauth::authorize::{Signer, Step};
use tessera_core::oauth::Client as OAuthClient;
use uuid::Uuid;

use super::admin::{page_param, PageQuery};
use super::error::GoTrueError;
use super::extract::{SbAuth, SbJson, SbQuery, ServiceRole};
use crate::admin::oauth_clients::{OAuthClientIn, OAuthClientOut};
use crate::extract::Client;
use crate::state::AppState;

type Answer = Result<Response, GoTrueError>;

fn client_id(raw: &str) -> Result<Uuid, GoTrueError> {
    Uuid::parse_str(raw.trim()).map_err(|_| Error::OAuthClientNotFound.into())
}

/// `GET /auth/v1/admin/oauth/clients`: `{clients, aud}` with `X-Total-Count` and `Link`.
pub async fn list_clients(
    State(s): State<AppState>,
    ServiceRole(actor): ServiceRole,
    SbQuery(q): SbQuery<PageQuery>,
) -> Answer {
    let page = page_param(&q.page, 1)?.min(1_000_000);
    let per_page = page_param(&q.per_page, 50)?.min(100);
    let (clients, total) = s.core.oauth_clients(&actor, page, per_page).await?;
    let out: Vec<OAuthClientOut> = clients.iter().map(|c| OAuthClientOut::of(c, None)).collect();
    let mut res =
        Json(json!({ "clients": out, "aud": tessera_core::session::tokens::SUPABASE_AUDIENCE })).into_response();
    res.headers_mut().insert("x-total-count", HeaderValue::from(total));
    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!("</auth/v1/admin/oauth/clients?page={}&per_page={per_page}>; rel=\"next\"", page + 1));
    }
    links.push(format!("</auth/v1/admin/oauth/clients?page={last}&per_page={per_page}>; rel=\"last\""));
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        res.headers_mut().insert(header::LINK, v);
    }
    Ok(res)
}

/// `POST /auth/v1/admin/oauth/clients`: 201 with the client and, when confidential, its
/// secret (this once).
pub async fn create_client(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    SbJson(body): SbJson<OAuthClientIn>,
) -> Answer {
    let made = s.core.register_oauth_client(Some(&actor), &body.into(), &client).await?;
    Ok((StatusCode::CREATED, Json(OAuthClientOut::made(&made))).into_response())
}

/// `GET /auth/v1/admin/oauth/clients/{id}`.
pub async fn get_client(
    State(s): State<AppState>,
    ServiceRole(actor): ServiceRole,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Answer {
    let c = s.core.oauth_client(&actor, client_id(&id)?).await?;
    Ok(Json(OAuthClientOut::of(&c, None)).into_response())
}

/// `PUT /auth/v1/admin/oauth/clients/{id}`: the fields given change, the others stay.
pub async fn update_client(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    axum::extract::Path(id): axum::extract::Path<String>,
    SbJson(body): SbJson<OAuthClientIn>,
) -> Answer {
    let changed = s.core.update_oauth_client(&actor, client_id(&id)?, &body.into(), &client).await?;
    Ok(Json(OAuthClientOut::made(&changed)).into_response())
}

/// `DELETE /auth/v1/admin/oauth/clients/{id}`: 204.
pub async fn delete_client(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Answer {
    s.core.delete_oauth_client(&actor, client_id(&id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /auth/v1/admin/oauth/clients/{id}/regenerate_secret`.
pub async fn regenerate_secret(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Answer {
    let made = s.core.regenerate_oauth_client_secret(&actor, client_id(&id)?, &client).await?;
    Ok(Json(OAuthClientOut::made(&made)).into_response())
}

/// A client as the authorization API and the grants show it.
fn client_brief(c: &OAuthClient) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "uri": c.client_uri.clone().unwrap_or_default(),
        "logo_uri": c.logo_uri.clone().unwrap_or_default(),
    })
}

/// `GET /auth/v1/user/oauth/grants`: `[{client, scopes, granted_at}]`.
pub async fn list_grants(State(s): State<AppState>, SbAuth(who): SbAuth) -> Answer {
    let grants = s.core.oauth_grants(who.user.id).await?;
    let out: Vec<Value> = grants
        .iter()
        .map(|g| json!({ "client": client_brief(&g.client), "scopes": g.scopes, "granted_at": g.granted_at }))
        .collect();
    Ok(Json(out).into_response())
}

/// `?client_id=`
#[derive(Deserialize)]
pub struct GrantQuery {
    client_id: Option<String>,
}

/// `DELETE /auth/v1/user/oauth/grants?client_id=`: the consent goes, the client's
/// sessions of the user are revoked; 204.
pub async fn revoke_grant(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    SbQuery(q): SbQuery<GrantQuery>,
) -> Answer {
    let id = client_id(q.client_id.as_deref().unwrap_or_default())?;
    s.core.revoke_oauth_grant(who.user.id, id, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn signer(
    s: &AppState,
    who: &tessera_core::caller::Principal,
) -> Result<(Signer, tessera_core::entity::session::Model), GoTrueError> {
    let (session, user) = s.core.store.session_for_refresh(who.session_id).await?.ok_or(Error::TokenRevoked)?;
    Ok((Signer::of(&session, &user), session))
}

/// `GET /auth/v1/oauth/authorizations/{id}`: what the request asks (for the app's consent
/// page), or `{redirect_url}` when the user consented to it before.
pub async fn authorization(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Answer {
    let id = Uuid::parse_str(id.trim()).map_err(|_| GoTrueError::from(Error::OAuthAuthorizationNotFound))?;
    let (signer, session) = signer(&s, &who).await?;
    if let Step::Redirect(url) = s.core.oauth_resume(id, Some((session, signer.user.clone())), &client).await? {
        return Ok(Json(json!({ "redirect_url": url })).into_response());
    }
    let pending = s.core.oauth_pending(id).await?;
    Ok(Json(json!({
        "authorization_id": pending.id,
        "redirect_uri": pending.redirect_uri,
        "client": client_brief(&pending.client),
        "user": { "id": who.user.id, "email": who.user.email },
        "scope": pending.scopes.join(" "),
    }))
    .into_response())
}

/// `{action: approve|deny}`
#[derive(Deserialize)]
pub struct ConsentIn {
    action: Option<String>,
}

/// `POST /auth/v1/oauth/authorizations/{id}/consent`: `{redirect_url}` with the code, or
/// with `access_denied`.
pub async fn consent(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
    SbJson(body): SbJson<ConsentIn>,
) -> Answer {
    let id = Uuid::parse_str(id.trim()).map_err(|_| GoTrueError::from(Error::OAuthAuthorizationNotFound))?;
    let approve = match body.action.as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return Err(GoTrueError::validation("action must be approve or deny")),
    };
    let (signer, _) = signer(&s, &who).await?;
    let url = s.core.oauth_decide(id, &signer, approve, true, &client).await?;
    Ok(Json(json!({ "redirect_url": url })).into_response())
}
