//! The Supabase Auth (GoTrue) surface, `/auth/v1` (SPEC §2.3): GoTrue's paths, bodies,
//! answers and errors over the same services as `/v1` and Kreeda. This module holds
//! shapes, not policy.

pub mod admin;
pub mod auth;
pub mod doc;
pub mod factors;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tessera_core::caller::Principal;
use tessera_core::domain::{Error, FieldError};
use tessera_core::entity::{mfa_factor, profile, user};
use tessera_core::limits::RateAction;
use tessera_core::session::issued::Issued;
use tessera_core::Core;

use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::{rate_limit, AppState};

/// The API version whose error shape this surface speaks, sent on every answer.
pub const API_VERSION: &str = "2024-01-01";
/// The header naming it.
pub static API_VERSION_HEADER: HeaderName = HeaderName::from_static("x-supabase-api-version");

/// Whether a path belongs to this surface.
pub fn is_supabase_path(path: &str) -> bool {
    path == "/auth/v1" || path.starts_with("/auth/v1/")
}

/// An error in GoTrue's shape: `{code, message}` (API version 2024-01-01) with
/// `error_code` and `msg` as well, so clients of either version read it.
#[derive(Debug)]
pub struct GoTrueError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `weak_password.reasons`, for `weak_password`.
    pub reasons: Option<Vec<&'static str>>,
    pub retry_after: Option<u64>,
}

/// Marks an answer already in GoTrue's shape (see [`shape_errors`]).
#[derive(Clone, Copy)]
struct Shaped;

impl GoTrueError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GoTrueError { status, code, message: message.into(), reasons: None, retry_after: None }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    fn bad_jwt(detail: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_jwt",
            format!("invalid JWT: unable to parse or verify signature, {detail}"),
        )
    }
}

/// Why a password breaks the policy, as GoTrue names it.
pub fn weak_reasons(errors: &[FieldError]) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    for e in errors {
        let reason = match e.code.as_str() {
            "password_too_short" | "password_too_long" => "length",
            "password_too_common" | "password_contains_email" => "pwned",
            c if c.starts_with("password_") => "characters",
            _ => continue,
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    reasons
}

/// GoTrue's sentence for a password that breaks the policy.
fn weak_message(errors: &[&FieldError]) -> String {
    match errors.iter().find(|e| e.code == "password_too_short") {
        Some(e) => {
            let n: String = e.message.chars().filter(char::is_ascii_digit).collect();
            format!("Password should be at least {n} characters.")
        }
        None => errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "),
    }
}

impl From<Error> for GoTrueError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GoTrueError {
            GoTrueError::new(status, code, message)
        }
        match e {
            Error::Validation(list) => {
                if list.iter().any(|f| f.field == "email" || f.field == "new_email") {
                    return GoTrueError::validation("Unable to validate email address: invalid format");
                }
                let weak: Vec<&FieldError> = list.iter().filter(|f| f.code.starts_with("password_")).collect();
                if !weak.is_empty() {
                    let mut err = new(S::UNPROCESSABLE_ENTITY, "weak_password", weak_message(&weak));
                    err.reasons = Some(weak_reasons(&list));
                    return err;
                }
                let text: Vec<String> = list.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                GoTrueError::validation(text.join(" "))
            }
            Error::BadRequest(m) => GoTrueError::validation(m),
            Error::InvalidCredentials | Error::WrongPassword => {
                new(S::BAD_REQUEST, "invalid_credentials", "Invalid login credentials")
            }
            Error::NotAuthenticated => {
                new(S::UNAUTHORIZED, "no_authorization", "This endpoint requires a valid Bearer token")
            }
            Error::InvalidToken => GoTrueError::bad_jwt("token is malformed"),
            Error::TokenExpired => GoTrueError::bad_jwt("token has invalid claims: token is expired"),
            Error::TokenRevoked => {
                new(S::FORBIDDEN, "session_not_found", "Session from session_id claim in JWT does not exist")
            }
            Error::TokenReused => {
                new(S::BAD_REQUEST, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
            }
            Error::AccountInactive => new(S::BAD_REQUEST, "user_banned", "User is banned"),
            Error::EmailNotVerified => new(S::BAD_REQUEST, "email_not_confirmed", "Email not confirmed"),
            Error::PermissionDenied => new(S::FORBIDDEN, "not_admin", "User not allowed"),
            Error::InvalidVerification => new(S::FORBIDDEN, "otp_expired", "Token has expired or is invalid"),
            Error::UserNotFound => new(S::NOT_FOUND, "user_not_found", "User not found"),
            Error::SessionNotFound => new(S::NOT_FOUND, "session_not_found", "Session not found"),
            Error::EmailTaken => new(S::UNPROCESSABLE_ENTITY, "user_already_exists", "User already registered"),
            Error::LastAdmin => new(S::CONFLICT, "conflict", Error::LastAdmin.to_string()),
            Error::InvalidApiKey | Error::ApiKeyNotFound => new(S::UNAUTHORIZED, "bad_jwt", "Invalid API key"),
            Error::MfaRequired => new(
                S::UNPROCESSABLE_ENTITY,
                "insufficient_aal",
                "AAL2 required: verify a second factor of this account first",
            ),
            Error::InvalidMfaCode => {
                new(S::UNPROCESSABLE_ENTITY, "mfa_verification_failed", "Invalid TOTP code entered")
            }
            Error::InvalidMfaToken => new(
                S::UNPROCESSABLE_ENTITY,
                "mfa_challenge_expired",
                "MFA challenge has expired or was used, verify against another challenge or create a new challenge.",
            ),
            Error::FactorNotFound => new(S::NOT_FOUND, "mfa_factor_not_found", "Factor not found"),
            Error::FactorAlreadyActive => {
                new(S::UNPROCESSABLE_ENTITY, "mfa_verified_factor_exists", "This factor is verified already")
            }
            Error::MfaNotEnabled => {
                new(S::UNPROCESSABLE_ENTITY, "mfa_factor_not_found", Error::MfaNotEnabled.to_string())
            }
            Error::NotRestorable => new(S::UNPROCESSABLE_ENTITY, "conflict", Error::NotRestorable.to_string()),
            Error::SignupNotAllowed => new(S::UNPROCESSABLE_ENTITY, "otp_disabled", "Signups not allowed for otp"),
            Error::RateLimited { retry_after_secs } | Error::AccountLocked { retry_after_secs } => GoTrueError {
                retry_after: Some(retry_after_secs),
                ..new(S::TOO_MANY_REQUESTS, "over_request_rate_limit", "Request rate limit reached")
            },
            Error::Overloaded { retry_after_secs } => GoTrueError {
                retry_after: Some(retry_after_secs),
                ..new(S::SERVICE_UNAVAILABLE, "unexpected_failure", "The server is busy; try again shortly.")
            },
            Error::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "dependency unavailable");
                GoTrueError {
                    retry_after: Some(5),
                    ..new(S::SERVICE_UNAVAILABLE, "unexpected_failure", "A required service is unavailable.")
                }
            }
            Error::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                new(S::INTERNAL_SERVER_ERROR, "unexpected_failure", "Internal server error.")
            }
        }
    }
}

impl From<ApiError> for GoTrueError {
    fn from(e: ApiError) -> Self {
        let code = match e.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_json",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::TOO_MANY_REQUESTS => "over_request_rate_limit",
            s if s.is_server_error() => "unexpected_failure",
            _ => e.code,
        };
        let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { e.status };
        let mut message = e.detail;
        if let Some(first) = e.errors.as_ref().and_then(|l| l.first()) {
            message = format!("Could not read the request body: {}: {}", first.field, first.message);
        }
        GoTrueError { status, code, message, reasons: None, retry_after: e.retry_after }
    }
}

impl IntoResponse for GoTrueError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.code,
            "error_code": self.code,
            "message": self.message,
            "msg": self.message,
        });
        if let Some(reasons) = self.reasons {
            body["weak_password"] = json!({ "reasons": reasons });
        }
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(Shaped);
        res
    }
}

/// A JSON body as GoTrue reads it: no body is `{}`, unknown fields are ignored,
/// anything unreadable (whitespace alone included), or not an object, is 400 `bad_json`.
pub struct SbJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for SbJson<T> {
    type Rejection = GoTrueError;

    async fn from_request(req: Request, state: &S) -> Result<Self, GoTrueError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| GoTrueError::from(ApiError::from(e)))?;
        // No body at all is `{}`; anything sent must be JSON (whitespace alone is not).
        let text = bytes.trim_ascii();
        let value: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(text).map_err(|e| {
                GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_json",
                    format!("Could not parse request body as JSON: {e}"),
                )
            })?
        };
        if !value.is_object() {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "The request body must be a JSON object",
            ));
        }
        serde_json::from_value(value).map(SbJson).map_err(|e| {
            GoTrueError::new(StatusCode::BAD_REQUEST, "bad_json", format!("Could not parse request body as JSON: {e}"))
        })
    }
}

/// The query string, read leniently: unknown parameters are ignored, an unreadable one is
/// 400 `validation_failed`.
pub struct SbQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for SbQuery<T> {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, GoTrueError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| SbQuery(q.0))
            .map_err(|e| GoTrueError::validation(format!("Could not read the query string: {}", e.body_text())))
    }
}

/// The signed-in caller of this surface (which, unlike the others, accepts an aal1
/// session of a user with MFA on: it is stepped up here).
pub struct SbAuth(pub Principal);

impl FromRequestParts<AppState> for SbAuth {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer_token(parts).ok_or(Error::NotAuthenticated)?;
        Ok(SbAuth(state.core.authenticate_supabase(token).await?))
    }
}

/// The caller of the admin API: a JWT signed with the server's key whose `role` is
/// `service_role` or `supabase_admin` (GoTrue's rule: no `sub`, `exp` or `aud` needed).
pub struct ServiceRole(pub tessera_core::caller::Actor);

impl FromRequestParts<AppState> for ServiceRole {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer_token(parts).ok_or(Error::NotAuthenticated)?;
        match state.core.jwt.project_key_role(token)?.as_str() {
            "service_role" | "supabase_admin" => Ok(ServiceRole(tessera_core::caller::Actor::system())),
            _ => Err(Error::PermissionDenied.into()),
        }
    }
}

/// A factor as GoTrue shows it.
pub fn factor_json(f: &mfa_factor::Model) -> Value {
    json!({
        "id": f.id,
        "friendly_name": f.name,
        "factor_type": "totp",
        "status": f.status,
        "created_at": f.created_at,
        "updated_at": f.last_used_at.unwrap_or(f.created_at),
    })
}

/// GoTrue's user object (SPEC §3.4): `phone` always a string, one `email` identity,
/// `app_metadata` with `provider` and `providers`, the stored `user_metadata`, the factors.
pub fn user_json(u: &user::Model, profile: Option<&profile::Model>, factors: &[mfa_factor::Model]) -> Value {
    let (user_metadata, app_metadata) = tessera_core::account::users::metadata_of(u, profile);
    let identity = json!({
        "identity_id": u.id,
        "id": u.id,
        "user_id": u.id,
        "identity_data": {
            "email": u.email,
            "email_verified": u.email_verified_at.is_some(),
            "phone_verified": u.phone_verified_at.is_some(),
            "sub": u.id,
        },
        "provider": "email",
        "last_sign_in_at": u.last_login_at,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "email": u.email,
    });
    let mut out = json!({
        "id": u.id,
        "aud": tessera_core::session::tokens::SUPABASE_AUDIENCE,
        "role": tessera_core::session::tokens::SUPABASE_AUDIENCE,
        "email": u.email,
        "email_confirmed_at": u.email_verified_at,
        "phone": u.phone.clone().unwrap_or_default(),
        "phone_confirmed_at": u.phone_verified_at,
        "confirmed_at": u.email_verified_at,
        "last_sign_in_at": u.last_login_at,
        "app_metadata": app_metadata,
        "user_metadata": user_metadata,
        "identities": [identity],
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "is_anonymous": false,
    });
    let Some(obj) = out.as_object_mut() else { return out };
    if !factors.is_empty() {
        obj.insert("factors".to_owned(), Value::Array(factors.iter().map(factor_json).collect()));
    }
    if let Some(new_email) = &u.new_email {
        obj.insert("new_email".to_owned(), json!(new_email));
    }
    if let Some(invited) = profile.and_then(|p| p.invited_at) {
        obj.insert("invited_at".to_owned(), json!(invited));
    }
    if !u.is_active {
        obj.insert("banned_until".to_owned(), json!("9999-12-31T23:59:59Z"));
    }
    out
}

/// A user's GoTrue object, read with its profile and factors.
pub async fn load_user(core: &Core, u: &user::Model) -> Result<Value, GoTrueError> {
    let (profile, factors) = tokio::join!(core.profile(u), core.factors(u.id));
    Ok(user_json(u, profile.ok().as_ref(), &factors?))
}

/// GoTrue's session: the tokens and the user, at the top level.
pub async fn session_json(core: &Core, issued: &Issued) -> Result<Value, GoTrueError> {
    let mut out = Map::new();
    out.insert("access_token".to_owned(), json!(issued.access_token));
    out.insert("token_type".to_owned(), json!("bearer"));
    out.insert("expires_in".to_owned(), json!(issued.expires_in));
    out.insert("expires_at".to_owned(), json!(issued.expires_at));
    out.insert("refresh_token".to_owned(), json!(issued.refresh_token));
    let user = match &issued.profile {
        // The profile the token's claims were read from, a moment ago; the factors only
        // when one is verified (what the client's assurance level reads: a factor still
        // being enrolled shows in `GET /user`, not in a refresh's answer).
        Some(profile) => {
            let factors = if issued.user.mfa_enabled { core.factors(issued.user.id).await? } else { Vec::new() };
            user_json(&issued.user, Some(profile), &factors)
        }
        None => load_user(core, &issued.user).await?,
    };
    out.insert("user".to_owned(), user);
    Ok(Value::Object(out))
}

/// Every answer of this surface carries `X-Supabase-Api-Version`, and every error is in
/// GoTrue's shape, also those of the layers shared with the other surfaces (404, 405,
/// 408, 413, per-IP 429): their SPEC §6 body is rewritten here. With
/// `SUPABASE_REQUIRE_APIKEY`, a request without a valid `apikey` is refused first.
pub async fn surface_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_supabase_path(req.uri().path()) {
        return next.run(req).await;
    }
    let mut res = match apikey_refusal(&state, &req) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    if (res.status().is_client_error() || res.status().is_server_error()) && res.extensions().get::<Shaped>().is_none()
    {
        res = reshape(res).await;
    }
    res.headers_mut().insert(API_VERSION_HEADER.clone(), HeaderValue::from_static(API_VERSION));
    res
}

/// The gateway's refusal of a request without a valid `apikey` (header or query), when
/// `SUPABASE_REQUIRE_APIKEY` is on; the JWKS and `/health` stay open.
fn apikey_refusal(state: &AppState, req: &Request) -> Option<Response> {
    if !state.core.settings.supabase_require_apikey {
        return None;
    }
    let path = req.uri().path();
    if path.ends_with("/.well-known/jwks.json")
        || path == "/auth/v1/health"
        || req.method() == axum::http::Method::OPTIONS
    {
        return None;
    }
    let from_header = req.headers().get("apikey").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let from_query = || {
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.get("apikey").cloned())
    };
    let body = match from_header.or_else(from_query) {
        None => json!({
            "message": "No API key found in request",
            "hint": "No `apikey` request header or url param was found.",
        }),
        Some(key) => match state.core.jwt.project_key_role(key.trim()) {
            Ok(role) if role == "anon" || role == "service_role" => return None,
            _ => {
                json!({ "message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key." })
            }
        },
    };
    let mut res = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    res.extensions_mut().insert(Shaped);
    Some(res)
}

/// Rewrites a SPEC §6 error body into GoTrue's shape.
async fn reshape(res: Response) -> Response {
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT).await.unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = v.get("detail").and_then(Value::as_str).unwrap_or("Request failed").to_owned();
    let api = ApiError {
        status: parts.status,
        type_name: "",
        code: "request_failed",
        detail: message,
        errors: None,
        retry_after: parts.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok()),
    };
    let mut out = GoTrueError::from(api).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The sign-in limit per IP on `/token`, for every grant but a refresh (refreshes are
/// not limited, as on the other surfaces). The grant is read from the query as the
/// handler reads it, decoded (`grant_type=passwor%64` is a password grant), and a query
/// the handler could not read either is counted too.
async fn password_grant_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let grant = axum::extract::Query::<auth::GrantQuery>::try_from_uri(req.uri()).ok().map(|q| q.0);
    if !grant.is_some_and(|g| g.is_refresh()) {
        rate_limit::per_ip(State((state, RateAction::Login)), req, next).await
    } else {
        next.run(req).await
    }
}

/// The routes of `/auth/v1`.
pub fn routes(state: &AppState) -> Router<AppState> {
    let limit = |action| axum::middleware::from_fn_with_state((state.clone(), action), rate_limit::per_ip);
    Router::new()
        .route("/auth/v1/health", get(auth::health))
        .route("/auth/v1/settings", get(auth::settings))
        .route("/auth/v1/signup", post(auth::signup).route_layer(limit(RateAction::Register)))
        .route(
            "/auth/v1/token",
            post(auth::token).route_layer(axum::middleware::from_fn_with_state(state.clone(), password_grant_limit)),
        )
        .route("/auth/v1/user", get(auth::get_user).put(auth::update_user))
        .route("/auth/v1/logout", post(auth::logout))
        .route("/auth/v1/otp", post(auth::otp).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/magiclink", post(auth::otp).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/recover", post(auth::recover).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/verify", post(auth::verify).get(auth::verify_link).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/resend", post(auth::resend).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/reauthenticate", get(auth::reauthenticate))
        .route("/auth/v1/factors", post(factors::enroll))
        .route("/auth/v1/factors/{id}", axum::routing::delete(factors::unenroll))
        .route("/auth/v1/factors/{id}/challenge", post(factors::challenge))
        .route("/auth/v1/factors/{id}/verify", post(factors::verify).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/admin/users", get(admin::list_users).post(admin::create_user))
        .route("/auth/v1/admin/users/{id}", get(admin::get_user).put(admin::update_user).delete(admin::delete_user))
        .route("/auth/v1/admin/users/{id}/factors", get(admin::list_factors))
        .route("/auth/v1/admin/users/{id}/factors/{factor_id}", axum::routing::delete(admin::delete_factor))
        .route("/auth/v1/admin/generate_link", post(admin::generate_link))
        .route("/auth/v1/invite", post(admin::invite))
}
