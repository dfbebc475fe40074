//! `/v1/admin/oauth/clients`: the applications that sign their users in through tessera
//! (SPEC §5.12). A confidential client's secret is shown once, when made.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tessera_core::domain::Error;
use tessera_core::oauth::clients::{ClientInput, WithSecret};
use tessera_core::oauth::Client as OAuthClient;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Client};
use crate::permission::{perm, RequirePermission};
use crate::state::AppState;

/// A client to register, or what to change of one (fields left out stay as they are).
#[derive(Debug, Deserialize, ToSchema, Default)]
pub struct OAuthClientIn {
    /// 1 to 255 characters; required to register.
    pub client_name: Option<String>,
    /// `public` (no secret; PKCE alone) or `confidential` (a secret); default
    /// confidential.
    pub client_type: Option<String>,
    /// `none` (public), `client_secret_basic` (default) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// Matched exactly (a loopback http URI with any port); https, http to loopback, or an
    /// app's own scheme. Required to register.
    pub redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `authorization_code`, `refresh_token`, `client_credentials` (confidential only);
    /// default the first two.
    pub grant_types: Option<Vec<String>>,
    /// `code` only.
    pub response_types: Option<Vec<String>>,
    /// The scopes the client may ask for, space-separated; default
    /// `openid profile email phone offline_access`.
    pub scope: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
}

impl From<OAuthClientIn> for ClientInput {
    fn from(b: OAuthClientIn) -> ClientInput {
        ClientInput {
            name: b.client_name,
            client_type: b.client_type,
            token_endpoint_auth_method: b.token_endpoint_auth_method,
            client_uri: b.client_uri,
            logo_uri: b.logo_uri,
            redirect_uris: b.redirect_uris,
            post_logout_redirect_uris: b.post_logout_redirect_uris,
            grant_types: b.grant_types,
            response_types: b.response_types,
            scope: b.scope,
        }
    }
}

/// A client (GoTrue's shape): `client_secret` only when just made.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientOut {
    pub client_id: Uuid,
    pub client_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub client_type: String,
    pub token_endpoint_auth_method: String,
    pub registration_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OAuthClientOut {
    pub fn of(c: &OAuthClient, secret: Option<String>) -> OAuthClientOut {
        OAuthClientOut {
            client_id: c.id,
            client_name: c.name.clone(),
            client_secret: secret,
            client_type: c.client_type.clone(),
            token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
            registration_type: c.registration_type.clone(),
            client_uri: c.client_uri.clone(),
            logo_uri: c.logo_uri.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            grant_types: c.grant_types.clone(),
            response_types: vec!["code".to_owned()],
            scope: c.scope.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }

    pub fn made(w: &WithSecret) -> OAuthClientOut {
        OAuthClientOut::of(&w.client, w.secret.as_ref().map(|s| s.expose_secret().to_owned()))
    }
}

/// A page of clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientList {
    pub items: Vec<OAuthClientOut>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

/// `?page=&per_page=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientPage {
    /// From 1.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// Register a client; a confidential one's secret is in this answer only.
#[utoipa::path(post, path = "/v1/admin/oauth/clients", tag = "admin", request_body = OAuthClientIn,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = OAuthClientOut),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "Needs oauth_clients:write"),
        (status = 404, body = ErrorBody, description = "`oauth_server_disabled`: no signing key"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::OAuthClientsWrite>,
    ApiJson(body): ApiJson<OAuthClientIn>,
) -> Result<Response, ApiError> {
    let made = s.core.register_oauth_client(Some(&actor), &body.into(), &client).await?;
    Ok((StatusCode::CREATED, Json(OAuthClientOut::made(&made))).into_response())
}

/// The clients, oldest first.
#[utoipa::path(get, path = "/v1/admin/oauth/clients", tag = "admin", params(ClientPage),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = OAuthClientList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs oauth_clients:read"),
        (status = 422, body = ErrorBody, description = "page or per_page out of range"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    RequirePermission(actor, _): RequirePermission<perm::OAuthClientsRead>,
    ApiQuery(q): ApiQuery<ClientPage>,
) -> Result<Json<OAuthClientList>, ApiError> {
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=1_000_000).contains(&page) {
        return Err(Error::field("page", "out_of_range", "page is from 1 to 1000000.").into());
    }
    if !(1..=100).contains(&per_page) {
        return Err(Error::field("per_page", "out_of_range", "per_page is from 1 to 100.").into());
    }
    let (clients, total) = s.core.oauth_clients(&actor, page, per_page).await?;
    Ok(Json(OAuthClientList {
        items: clients.iter().map(|c| OAuthClientOut::of(c, None)).collect(),
        total,
        page,
        per_page,
    }))
}

/// One client, without its secret.
#[utoipa::path(get, path = "/v1/admin/oauth/clients/{id}", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = OAuthClientOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs oauth_clients:read"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get(
    State(s): State<AppState>,
    RequirePermission(actor, _): RequirePermission<perm::OAuthClientsRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<OAuthClientOut>, ApiError> {
    let c = s.core.oauth_client(&actor, id).await?;
    Ok(Json(OAuthClientOut::of(&c, None)))
}

/// Change a client (a public client made confidential gets a secret, in this answer).
#[utoipa::path(patch, path = "/v1/admin/oauth/clients/{id}", tag = "admin", params(("id" = Uuid, Path)),
    request_body = OAuthClientIn, security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = OAuthClientOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs oauth_clients:write"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn update(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::OAuthClientsWrite>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<OAuthClientIn>,
) -> Result<Json<OAuthClientOut>, ApiError> {
    let changed = s.core.update_oauth_client(&actor, id, &body.into(), &client).await?;
    Ok(Json(OAuthClientOut::made(&changed)))
}

/// Delete a client: its users' consents go, its sessions are revoked.
#[utoipa::path(delete, path = "/v1/admin/oauth/clients/{id}", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs oauth_clients:write"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn remove(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::OAuthClientsWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.delete_oauth_client(&actor, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make a confidential client a new secret (in this answer only; the old one stops
/// working at once).
#[utoipa::path(post, path = "/v1/admin/oauth/clients/{id}/regenerate-secret", tag = "admin",
    params(("id" = Uuid, Path)), security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = OAuthClientOut),
        (status = 400, body = ErrorBody, description = "A public client has no secret"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs oauth_clients:write"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn regenerate_secret(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::OAuthClientsWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<OAuthClientOut>, ApiError> {
    let made = s.core.regenerate_oauth_client_secret(&actor, id, &client).await?;
    Ok(Json(OAuthClientOut::made(&made)))
}
