//! `/v1/auth`: sign-in, refresh, sign-out, the caller, password change, sessions.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use secrecy::SecretString;
use tessera_core::domain::Error;
use tessera_core::mail::verification::EMAIL_CONFIRMATIONS;
use tessera_core::session::issued::{Issued, SignIn};
use uuid::Uuid;

use crate::dto::{
    ChangePasswordIn, EmailIn, LoginAnswer, LoginForm, LoginIn, LoginOut, MessageOut, MfaRequiredOut, RefreshIn,
    ResetConfirmIn, SessionOut, TokenOut, UserOut, VerifiedOut, VerifyEmailIn,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Auth, Client};
use crate::state::AppState;

const COOKIE: &str = "refresh_token";
const COOKIE_PATH: &str = "/v1/auth";

/// The `Set-Cookie` value carrying a refresh token (SPEC §4.2).
fn refresh_cookie(value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Max-Age={max_age}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict{secure}")
}

fn with_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The `refresh_token` cookie of a request.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.trim_matches('"').to_owned())
    })
}

/// Credentials as a form (`username`, `password`) or as JSON (`email`, `password`).
pub struct Credentials {
    email: String,
    password: SecretString,
}

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if form {
            let Form(f) = Form::<LoginForm>::from_request(req, state).await?;
            Ok(Credentials { email: f.username, password: SecretString::from(f.password) })
        } else {
            let ApiJson(j) = ApiJson::<LoginIn>::from_request(req, state).await?;
            Ok(Credentials { email: j.email, password: SecretString::from(j.password) })
        }
    }
}

/// Sign in (OAuth2 password flow, or JSON). Sets the refresh cookie.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body(content(
        (LoginIn = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    ), description = "JSON `{email, password}`, or the OAuth2 form `username`, `password`"),
    responses(
        (status = 200, body = LoginAnswer, description = "Signed in (the refresh token is in the `refresh_token` cookie), or, for a user with MFA on, `{mfa_required, mfa_token, methods}`: the second step, at /v1/auth/mfa/verify"),
        (status = 401, body = ErrorBody, description = "Incorrect email or password"),
        (status = 403, body = ErrorBody, description = "Account inactive, or email not verified"),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Password hashing saturated; retry after Retry-After"),
    ))]
pub async fn login(
    State(s): State<AppState>,
    Client(client): Client,
    creds: Credentials,
) -> Result<Response, ApiError> {
    match s.core.login(&creds.email, &creds.password, &client).await? {
        SignIn::Session(issued) => Ok(signed_in(&s, *issued)),
        SignIn::MfaRequired(c) => Ok(Json(MfaRequiredOut::from(c)).into_response()),
    }
}

/// The answer to a completed sign-in: the tokens, the user and the refresh cookie.
pub(crate) fn signed_in(s: &AppState, issued: Issued) -> Response {
    let cookie = refresh_cookie(&issued.refresh_token, issued.refresh_expires_in, s.core.settings.secure_cookies);
    let body = LoginOut {
        access_token: issued.access_token,
        token_type: "bearer",
        expires_in: issued.expires_in,
        user: UserOut::from(&issued.user),
    };
    with_cookie(Json(body).into_response(), &cookie)
}

/// Rotate the refresh token (cookie, or JSON `{refresh_token}`) for a new access token.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshIn>, description = "optional: the refresh token, when not sent as the cookie"),
    responses(
        (status = 200, body = TokenOut),
        (status = 401, body = ErrorBody, description = "Missing, unknown, revoked, expired or reused token"),
    ))]
pub async fn refresh(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let from_body = crate::extract::optional_json::<RefreshIn>(&body)?.and_then(|b| b.refresh_token);
    let in_body = from_body.is_some();
    let raw = from_body.or_else(|| cookie_token(&headers)).ok_or(Error::NotAuthenticated)?;
    let issued: Issued = s.core.refresh(&raw, &client).await?;
    let cookie = refresh_cookie(&issued.refresh_token, issued.refresh_expires_in, s.core.settings.secure_cookies);
    let body = TokenOut {
        access_token: issued.access_token,
        token_type: "bearer",
        expires_in: issued.expires_in,
        refresh_token: in_body.then_some(issued.refresh_token),
    };
    Ok(with_cookie(Json(body).into_response(), &cookie))
}

/// Sign out of this session; clears the cookie.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, Client(client): Client, Auth(who): Auth) -> Result<Response, ApiError> {
    s.core.logout(&who, &client).await?;
    let clear = refresh_cookie("", 0, s.core.settings.secure_cookies);
    Ok(with_cookie(StatusCode::NO_CONTENT.into_response(), &clear))
}

/// Sign out everywhere: every session revoked, every access token void.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout_all(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
) -> Result<Response, ApiError> {
    s.core.logout_everywhere(who.user.id, "logout", Some(who.user.id), &client).await?;
    let clear = refresh_cookie("", 0, s.core.settings.secure_cookies);
    Ok(with_cookie(StatusCode::NO_CONTENT.into_response(), &clear))
}

/// The caller.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody)))]
pub async fn me(Auth(who): Auth) -> Json<UserOut> {
    Json(UserOut::from(&who.user))
}

/// Change the password; signs out every device.
#[utoipa::path(post, path = "/v1/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordIn,
    responses(
        (status = 204),
        (status = 400, body = ErrorBody, description = "The current password is wrong"),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The new password breaks the policy"),
    ))]
pub async fn change_password(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiJson(body): ApiJson<ChangePasswordIn>,
) -> Result<StatusCode, ApiError> {
    let current = SecretString::from(body.current_password);
    let new = SecretString::from(body.new_password);
    s.core.change_password(&who, &current, &new, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionOut>), (status = 401, body = ErrorBody)))]
pub async fn sessions(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let list = s.core.list_sessions(who.user.id).await?;
    Ok(Json(list.iter().map(|x| SessionOut::new(x, who.session_id)).collect()))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.revoke_session(&who, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirm an email address with the link token, or with the email and its code.
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "auth", request_body = VerifyEmailIn,
    responses(
        (status = 200, body = VerifiedOut, description = "Confirmed (for the first side of a secure email change, `pending_confirmation` names the other)"),
        (status = 400, body = ErrorBody, description = "Invalid, expired or used link or code"),
        (status = 409, body = ErrorBody, description = "A confirmed email change collides with an address taken since"),
        (status = 422, body = ErrorBody, description = "Neither a token nor an email and a code"),
        (status = 429, body = ErrorBody, description = "Too many checks from this address (RATE_LIMIT_VERIFY)"),
    ))]
pub async fn verify_email(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<VerifyEmailIn>,
) -> Result<Json<VerifiedOut>, ApiError> {
    let verified = match (body.token, body.email, body.code) {
        (Some(token), _, _) => s.core.verify_email_token(&token, EMAIL_CONFIRMATIONS, &client).await?,
        (None, Some(email), Some(code)) => s.core.verify_email_code(&email, &code, &client).await?,
        _ => return Err(ApiError::field("token", "required", "Send {token}, or {email, code}.")),
    };
    Ok(Json(VerifiedOut::new(&verified)))
}

/// Send the verification mail again. Always 202, whatever the address.
#[utoipa::path(post, path = "/v1/auth/verify-email/resend", tag = "auth", request_body = EmailIn,
    responses((status = 202, body = MessageOut)))]
pub async fn resend_verification(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailIn>,
) -> Result<Response, ApiError> {
    s.core.resend_verification(&body.email, &client).await?;
    let msg = "If the address belongs to an unverified account, a new verification email is on its way.";
    Ok((StatusCode::ACCEPTED, Json(MessageOut { message: msg.to_owned() })).into_response())
}

/// Ask for a password-reset link. Always 202, whatever the address.
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "auth", request_body = EmailIn,
    responses((status = 202, body = MessageOut)))]
pub async fn password_reset(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailIn>,
) -> Result<Response, ApiError> {
    s.core.request_password_reset(&body.email, None, &client).await?;
    let msg = "If the address belongs to an account, a password-reset email is on its way.";
    Ok((StatusCode::ACCEPTED, Json(MessageOut { message: msg.to_owned() })).into_response())
}

/// Set a new password with a reset token; signs out every device.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirmIn,
    responses(
        (status = 204),
        (status = 400, body = ErrorBody, description = "Invalid, expired or used token"),
        (status = 422, body = ErrorBody, description = "The new password breaks the policy"),
    ))]
pub async fn password_reset_confirm(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetConfirmIn>,
) -> Result<StatusCode, ApiError> {
    let password = SecretString::from(body.new_password);
    s.core.confirm_password_reset(&body.token, &password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
