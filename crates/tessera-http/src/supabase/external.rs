//! `/auth/v1`'s sign-in with other providers (SPEC §5.11): `/authorize`, `/callback`, and
//! the linking and unlinking of identities.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tessera_core::identity::{Authorize, Callback};
use uuid::Uuid;

use super::error::GoTrueError;
use super::extract::{SbAuth, SbQuery};
use crate::extract::Client;
use crate::oauth;
use crate::state::AppState;

type Answer = Result<Response, GoTrueError>;

/// The query of `/authorize`: the provider, where to come back, extra scopes, the app's
/// PKCE challenge; others (`prompt`, `login_hint`, …) pass on to the provider.
fn authorize_of(q: &HashMap<String, String>) -> Authorize {
    let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Authorize {
        provider: get("provider").unwrap_or_default(),
        redirect_to: get("redirect_to"),
        scopes: get("scopes"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        extra: q.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// `GET /auth/v1/authorize?provider=…&redirect_to=…[&code_challenge=…&code_challenge_method=s256]`:
/// to the provider's sign-in page.
#[utoipa::path(get, path = "/auth/v1/authorize", tag = "supabase",
    params(("provider" = String, Query), ("redirect_to" = Option<String>, Query), ("scopes" = Option<String>, Query),
        ("code_challenge" = Option<String>, Query), ("code_challenge_method" = Option<String>, Query)),
    responses(
        (status = 302, description = "To the provider, with the `tessera-oauth` cookie"),
        (status = 400, body = super::doc::SbError, description = "`provider_disabled`, `validation_failed`"),
    ))]
pub async fn authorize(State(s): State<AppState>, SbQuery(q): SbQuery<HashMap<String, String>>) -> Answer {
    let a = authorize_of(&q);
    let redirect_to = a.redirect_to.clone();
    match s.core.oauth_start(a, tessera_core::Surface::Supabase, None).await {
        Ok(to) => Ok(oauth::to_provider(&to, s.core.settings.secure_cookies)),
        Err(e) => oauth::unreachable_provider(&s.core, redirect_to.as_deref(), e).map_err(GoTrueError::from),
    }
}

/// The provider's answer, from the query (GET) or a posted form (`form_post`).
fn callback_of(q: &HashMap<String, String>) -> Callback {
    let get = |k: &str| q.get(k).cloned().filter(|v| !v.is_empty());
    Callback {
        code: get("code"),
        state: get("state"),
        iss: get("iss"),
        error: get("error"),
        error_description: get("error_description"),
    }
}

/// `GET|POST /auth/v1/callback`: the provider's answer; back to the app's `redirect_to`
/// with the session (fragment), `?code=` (PKCE) or the error.
#[utoipa::path(get, path = "/auth/v1/callback", tag = "supabase",
    params(("code" = Option<String>, Query), ("state" = Option<String>, Query), ("iss" = Option<String>, Query),
        ("error" = Option<String>, Query), ("error_description" = Option<String>, Query)),
    responses((status = 302, description = "To the app's redirect_to (or SITE_URL), with the session, a code or the error")))]
pub async fn callback(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    SbQuery(q): SbQuery<HashMap<String, String>>,
) -> Response {
    answer_callback(&s, &client, &headers, q).await
}

/// The callback's answer to what the provider sent (query and form fields together).
async fn answer_callback(
    s: &AppState,
    client: &tessera_core::ClientInfo,
    headers: &HeaderMap,
    q: HashMap<String, String>,
) -> Response {
    let cookie = oauth::browser_secret(headers);
    let landing = s.core.oauth_callback(callback_of(&q), cookie.as_deref(), client).await;
    oauth::landing(landing, s.core.settings.secure_cookies)
}

/// `POST /auth/v1/callback`: the provider's answer posted as a form (`response_mode=form_post`),
/// as [`callback`] reads it from the query.
#[utoipa::path(post, path = "/auth/v1/callback", tag = "supabase",
    request_body(content = CallbackForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 302, description = "To the app's redirect_to (or SITE_URL), with the session, a code or the error")))]
pub async fn callback_form(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    SbQuery(mut q): SbQuery<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    for (k, v) in form_urlencoded::parse(&body) {
        q.insert(k.into_owned(), v.into_owned());
    }
    answer_callback(&s, &client, &headers, q).await
}

/// The fields of a posted callback.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallbackForm {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/v1/user/identities/authorize?provider=…`: the provider's URL that links an
/// identity to the signed-in user (`MANUAL_LINKING_ENABLED`); `{url}` with
/// `skip_http_redirect=true`, else a redirect.
#[utoipa::path(get, path = "/auth/v1/user/identities/authorize", tag = "supabase",
    params(("provider" = String, Query), ("redirect_to" = Option<String>, Query), ("skip_http_redirect" = Option<bool>, Query)),
    responses(
        (status = 200, description = "`{url}`"),
        (status = 302, description = "To the provider"),
        (status = 404, body = super::doc::SbError, description = "`manual_linking_disabled`"),
    ))]
pub async fn link(
    State(s): State<AppState>,
    SbAuth(who): SbAuth,
    SbQuery(q): SbQuery<HashMap<String, String>>,
) -> Answer {
    let to = s.core.link_start(&who.user, authorize_of(&q), tessera_core::Surface::Supabase).await?;
    let secure = s.core.settings.secure_cookies;
    if q.get("skip_http_redirect").is_some_and(|v| v == "true") {
        Ok(oauth::to_provider_json(&to, secure))
    } else {
        Ok(oauth::to_provider(&to, secure))
    }
}

/// `DELETE /auth/v1/user/identities/{id}`: unlinks an identity, never the last.
#[utoipa::path(delete, path = "/auth/v1/user/identities/{id}", tag = "supabase", params(("id" = String, Path)),
    responses(
        (status = 200, description = "`{}`"),
        (status = 404, body = super::doc::SbError, description = "`manual_linking_disabled`"),
        (status = 422, body = super::doc::SbError, description = "`single_identity_not_deletable`, `identity_not_found`"),
    ))]
pub async fn unlink(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    Path(id): Path<String>,
) -> Answer {
    if !s.core.settings.manual_linking_enabled {
        return Err(tessera_core::domain::Error::ManualLinkingDisabled.into());
    }
    let id = Uuid::parse_str(id.trim()).map_err(|_| GoTrueError::validation("identity_id must be an UUID"))?;
    s.core.unlink_identity(&who.user, id, &client).await?;
    Ok(Json(json!({})).into_response())
}
