//! `/v1`'s sign-in with other providers (SPEC §5.11): always the PKCE flow, back at the
//! app's `redirect_to` with `?code=`, exchanged for the login response; and the caller's
//! identities.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tessera_core::identity::Authorize;
use tessera_core::session::issued::SignIn;
use uuid::Uuid;

use crate::dto::{IdentityOut, MfaRequiredOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Client};
use crate::oauth;
use crate::state::AppState;

/// Where to come back to, and the app's PKCE challenge (S256, required).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    redirect_to: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scopes: Option<String>,
    prompt: Option<String>,
    login_hint: Option<String>,
}

impl StartQuery {
    fn authorize(self, provider: String) -> Authorize {
        let extra = [("prompt", self.prompt), ("login_hint", self.login_hint)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        Authorize {
            provider,
            redirect_to: self.redirect_to,
            scopes: self.scopes,
            code_challenge: self.code_challenge,
            code_challenge_method: self.code_challenge_method,
            extra,
        }
    }
}

/// Sign in with a provider: to its sign-in page, then back at `redirect_to?code=…`.
#[utoipa::path(get, path = "/v1/auth/oauth/{provider}", tag = "auth", params(("provider" = String, Path), StartQuery),
    responses(
        (status = 302, description = "To the provider (with the `tessera-oauth` cookie); back at `redirect_to` with `?code=` or `?error=&error_code=&error_description=`"),
        (status = 400, body = ErrorBody, description = "`provider_disabled`"),
        (status = 422, body = ErrorBody, description = "No `code_challenge`"),
    ))]
pub async fn start(
    State(s): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<StartQuery>,
) -> Result<Response, ApiError> {
    let redirect_to = q.redirect_to.clone();
    match s.core.oauth_start(q.authorize(provider), tessera_core::Surface::Native, None).await {
        Ok(to) => Ok(oauth::to_provider(&to, s.core.settings.secure_cookies)),
        Err(e) => Ok(oauth::unreachable_provider(&s.core, redirect_to.as_deref(), e)?),
    }
}

/// A code and the verifier of its challenge.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct OAuthCodeIn {
    code: String,
    code_verifier: String,
}

/// Exchange the code of a provider's sign-in for the login response (once, within five
/// minutes).
#[utoipa::path(post, path = "/v1/auth/oauth/token", tag = "auth", request_body = OAuthCodeIn,
    responses(
        (status = 200, body = crate::dto::LoginAnswer, description = "As /v1/auth/login: signed in, or the second step of an MFA user"),
        (status = 403, body = ErrorBody, description = "`bad_code_verifier`, or the account is inactive"),
        (status = 404, body = ErrorBody, description = "`flow_state_not_found`: unknown, used or expired code"),
    ))]
pub async fn token(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<OAuthCodeIn>,
) -> Result<Response, ApiError> {
    match s.core.exchange_code(&body.code, &body.code_verifier, &client).await? {
        SignIn::Session(issued) => Ok(super::auth::signed_in(&s, *issued)),
        SignIn::MfaRequired(c) => Ok(Json(MfaRequiredOut::from(c)).into_response()),
    }
}

/// The caller's identities.
#[utoipa::path(get, path = "/v1/users/me/identities", tag = "users",
    responses((status = 200, body = [IdentityOut]), (status = 401, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<IdentityOut>>, ApiError> {
    Ok(Json(s.core.identities_of(&who.user).await?.into_iter().map(IdentityOut::from).collect()))
}

/// Unlink one of the caller's identities (`MANUAL_LINKING_ENABLED`), never the last way in.
#[utoipa::path(delete, path = "/v1/users/me/identities/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, body = ErrorBody, description = "`identity_not_found`, `manual_linking_disabled`"),
        (status = 422, body = ErrorBody, description = "`single_identity_not_deletable`"),
    ))]
pub async fn unlink(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::http::StatusCode, ApiError> {
    s.core.unlink_identity(&who.user, id, &client).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Where to send the browser to link a provider's identity to the caller
/// (`MANUAL_LINKING_ENABLED`): `{url}`, and the cookie of the flow.
#[utoipa::path(get, path = "/v1/users/me/identities/{provider}/link", tag = "users",
    params(("provider" = String, Path), StartQuery),
    responses(
        (status = 200, description = "`{url}`: the provider's sign-in page"),
        (status = 404, body = ErrorBody, description = "`manual_linking_disabled`"),
    ))]
pub async fn link(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<StartQuery>,
) -> Result<Response, ApiError> {
    let to = s.core.link_start(&who.user, q.authorize(provider), tessera_core::Surface::Native).await?;
    Ok(oauth::to_provider_json(&to, s.core.settings.secure_cookies))
}
