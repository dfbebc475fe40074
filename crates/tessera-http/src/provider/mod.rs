//! tessera as an OAuth 2.1 and OpenID Connect provider (SPEC §5.12): discovery, the
//! authorization endpoint and its sign-in and consent pages ([`pages`]), the token,
//! userinfo, introspection, revocation, logout and registration endpoints. Refusals are
//! in the OAuth error format (`error`, `error_description`).

pub mod pages;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_core::domain::{Error, ErrorKind};
use tessera_core::limits::RateAction;
use tessera_core::oauth::clients::ClientInput;
use tessera_core::oauth::token::{ClientCredentials, TokenParams, Tokens};
use tessera_core::oauth::{OAuthError, SCOPES};

use crate::extract::{bearer_token, Client};
use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::state::AppState;
use crate::surface::Surface;

/// The routes of the provider.
pub fn router(state: &AppState, shared: &SharedLayers) -> Router<AppState> {
    // The pages' sign-ins count as every sign-in does, per client IP.
    let limit = |action| axum::middleware::from_fn_with_state((state.clone(), action), crate::rate_limit::per_ip);
    let api = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/oauth/token", post(token))
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .route("/oauth/introspect", post(introspect))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/register", post(register));
    let pages = Router::new()
        .route("/oauth/authorize", get(pages::authorize).post(pages::authorize_form))
        .route("/oauth/sign-in", post(pages::sign_in).route_layer(limit(RateAction::Login)).get(pages::sign_in_page))
        .route("/oauth/sign-in/mfa", post(pages::second_factor).route_layer(limit(RateAction::Verify)))
        .route("/oauth/sign-in/passkey/options", post(pages::passkey_options).route_layer(limit(RateAction::Login)))
        .route("/oauth/sign-in/passkey", post(pages::passkey_sign_in).route_layer(limit(RateAction::Verify)))
        .route("/oauth/sign-in/external", get(pages::external_start).route_layer(limit(RateAction::Login)))
        .route("/oauth/sign-in/external/done", get(pages::external_done))
        .route("/oauth/consent", get(pages::consent_page).post(pages::consent))
        .route("/oauth/logout", get(pages::logout).post(pages::logout_form));
    shared.api(api, Surface::V1, Csp::Strict).merge(shared.api(pages, Surface::Pages, Csp::ProviderPages))
}

/// An OAuth error answer: 401 for `invalid_client` and `invalid_token` (with the
/// challenge), 503 when unavailable, 500 for a server error, else 400.
pub(crate) fn oauth_error(e: OAuthError) -> Response {
    let status = match e.error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "invalid_token" => StatusCode::UNAUTHORIZED,
        "insufficient_scope" | "access_denied" => StatusCode::FORBIDDEN,
        "slow_down" => StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "not_found" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = (status, Json(json!({ "error": e.error, "error_description": e.description }))).into_response();
    if let Some(secs) = e.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    if e.error == "invalid_client" {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oauth\""));
    }
    res
}

/// A domain error as an OAuth error (a disabled provider is 404).
fn from_domain(e: Error) -> Response {
    oauth_error(OAuthError::from(e))
}

fn form_rejected(e: axum::extract::rejection::FormRejection) -> Response {
    oauth_error(OAuthError::invalid_request(format!(
        "The body must be a form (application/x-www-form-urlencoded): {}",
        e.body_text()
    )))
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn discovery(State(s): State<AppState>) -> Response {
    let provider = match s.core.provider() {
        Ok(p) => p,
        Err(e) => return from_domain(e),
    };
    let iss = &provider.issuer;
    let mut doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "userinfo_endpoint": format!("{iss}/oauth/userinfo"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "end_session_endpoint": format!("{iss}/oauth/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [provider.algorithm()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "sid", "azp",
            "name", "updated_at", "email", "email_verified", "phone_number", "phone_number_verified"
        ],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    if s.core.settings.oauth_dynamic_registration {
        doc["registration_endpoint"] = json!(format!("{iss}/oauth/register"));
    }
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response()
}

/// The body of `POST /oauth/token`, `/oauth/introspect` and `/oauth/revoke`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// The client's credentials: HTTP Basic (each part form-encoded, RFC 6749 §2.3.1) or
/// the body's; both at once is refused.
fn credentials(headers: &HeaderMap, form: &TokenForm) -> Result<ClientCredentials, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    match basic {
        Some((_, encoded)) => {
            if form.client_secret.is_some() {
                return Err(OAuthError::invalid_request("Use one client authentication method."));
            }
            let decoded = STANDARD.decode(encoded.trim()).map_err(|_| OAuthError::invalid_client())?;
            let text = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
            let (id, secret) = text.split_once(':').ok_or_else(OAuthError::invalid_client)?;
            let unescape =
                |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            let id = unescape(id).ok_or_else(OAuthError::invalid_client)?;
            if form.client_id.as_deref().is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_client());
            }
            Ok(ClientCredentials { client_id: Some(id), client_secret: unescape(secret) })
        }
        None => Ok(ClientCredentials { client_id: form.client_id.clone(), client_secret: form.client_secret.clone() }),
    }
}

/// The body of a request a client authenticates (token, introspection, revocation): the
/// form and the client's credentials, or the OAuth error that refuses it.
pub struct ClientForm {
    form: TokenForm,
    creds: ClientCredentials,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for ClientForm {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let Form(form) = Form::<TokenForm>::from_request(req, state).await.map_err(form_rejected)?;
        let creds = credentials(&headers, &form).map_err(oauth_error)?;
        Ok(ClientForm { form, creds })
    }
}

impl ClientForm {
    /// The `token` parameter, required.
    fn token(&self) -> Result<&str, Response> {
        self.form
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| oauth_error(OAuthError::invalid_request("token is required.")))
    }
}

fn token_json(t: Tokens) -> Value {
    let mut out = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "scope": t.scope,
    });
    if let Some(r) = t.refresh_token {
        out["refresh_token"] = json!(r);
    }
    if let Some(id) = t.id_token {
        out["id_token"] = json!(id);
    }
    out
}

/// `POST /oauth/token`: `authorization_code` (PKCE), `refresh_token`, `client_credentials`.
pub async fn token(
    State(s): State<AppState>,
    Client(client): Client,
    ClientForm { form, creds }: ClientForm,
) -> Response {
    let params = TokenParams {
        grant_type: form.grant_type,
        code: form.code,
        redirect_uri: form.redirect_uri,
        code_verifier: form.code_verifier,
        refresh_token: form.refresh_token,
        scope: form.scope,
    };
    match s.core.oauth_token(&creds, &params, &client).await {
        Ok(t) => ([(header::PRAGMA, "no-cache")], Json(token_json(t))).into_response(),
        Err(e) => oauth_error(e),
    }
}

/// The body of `POST /oauth/userinfo` (RFC 6750 §2.2).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UserinfoForm {
    access_token: Option<String>,
}

fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut res = (status, Json(json!({ "error": error, "error_description": description }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// `GET|POST /oauth/userinfo`: the claims of the token's user its scopes grant.
pub async fn userinfo(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut token = bearer_token(&parts).map(str::to_owned);
    if token.is_none() && parts.method == axum::http::Method::POST {
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
        token = serde_urlencoded_token(&bytes);
    }
    let Some(token) = token else {
        return bearer_error(StatusCode::UNAUTHORIZED, "invalid_request", "An access token is required.");
    };
    match s.core.oauth_userinfo(&token).await {
        Ok(claims) => Json(claims).into_response(),
        Err(Error::PermissionDenied) => {
            bearer_error(StatusCode::FORBIDDEN, "insufficient_scope", "The token was not granted the openid scope.")
        }
        Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::NotFound) => {
            from_domain(e)
        }
        Err(_) => {
            bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is invalid, expired or revoked.")
        }
    }
}

fn serde_urlencoded_token(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// `POST /oauth/introspect` (RFC 7662).
pub async fn introspect(State(s): State<AppState>, Client(client): Client, body: ClientForm) -> Response {
    let token = match body.token() {
        Ok(t) => t,
        Err(res) => return res,
    };
    match s.core.oauth_introspect(&body.creds, token, &client).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => oauth_error(e),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was live.
pub async fn revoke(State(s): State<AppState>, Client(client): Client, body: ClientForm) -> Response {
    let token = match body.token() {
        Ok(t) => t,
        Err(res) => return res,
    };
    match s.core.oauth_revoke(&body.creds, token, &client).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => oauth_error(e),
    }
}

/// The metadata of a dynamic registration (RFC 7591 §2).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RegistrationIn {
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
}

/// `POST /oauth/register` (RFC 7591), with `OAUTH_DYNAMIC_REGISTRATION`.
pub async fn register(State(s): State<AppState>, Client(client): Client, body: axum::body::Bytes) -> Response {
    if !s.core.settings.oauth_dynamic_registration {
        return oauth_error(OAuthError::new(
            "access_denied",
            "Dynamic client registration is disabled (OAUTH_DYNAMIC_REGISTRATION).",
        ));
    }
    if let Err(e) = s.core.enforce_client_limit(RateAction::OAuth, &client).await {
        return from_domain(e);
    }
    let input: RegistrationIn = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return oauth_error(OAuthError::new(
                "invalid_client_metadata",
                format!("The body is not client metadata: {e}"),
            ))
        }
    };
    let name = input.client_name.clone().or_else(|| Some("Unnamed client".to_owned()));
    let form = ClientInput {
        name,
        client_type: None,
        token_endpoint_auth_method: input.token_endpoint_auth_method,
        client_uri: input.client_uri,
        logo_uri: input.logo_uri,
        redirect_uris: input.redirect_uris,
        post_logout_redirect_uris: input.post_logout_redirect_uris,
        grant_types: input.grant_types,
        response_types: input.response_types,
        scope: input.scope,
    };
    match s.core.register_oauth_client(None, &form, &client).await {
        Ok(made) => {
            let c = &made.client;
            let mut out = json!({
                "client_id": c.id,
                "client_id_issued_at": c.created_at.timestamp(),
                "client_name": c.name,
                "redirect_uris": c.redirect_uris,
                "post_logout_redirect_uris": c.post_logout_redirect_uris,
                "token_endpoint_auth_method": c.token_endpoint_auth_method,
                "grant_types": c.grant_types,
                "response_types": ["code"],
                "scope": c.scope,
            });
            if let Some(uri) = &c.client_uri {
                out["client_uri"] = json!(uri);
            }
            if let Some(uri) = &c.logo_uri {
                out["logo_uri"] = json!(uri);
            }
            if let Some(secret) = &made.secret {
                out["client_secret"] = json!(secrecy::ExposeSecret::expose_secret(secret));
                out["client_secret_expires_at"] = json!(0);
            }
            (StatusCode::CREATED, Json(out)).into_response()
        }
        Err(Error::Validation(errors)) => {
            let uri = errors.iter().any(|e| e.field.contains("redirect_uri"));
            let text = errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join(" ");
            oauth_error(OAuthError::new(if uri { "invalid_redirect_uri" } else { "invalid_client_metadata" }, text))
        }
        Err(e) => from_domain(e),
    }
}

/// The query of `GET /oauth/authorize`, whatever it holds.
pub type RawQuery = Query<Vec<(String, String)>>;
