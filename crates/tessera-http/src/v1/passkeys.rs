//! `/v1/auth/passkeys` and the passkey second step (SPEC §5.10): registration,
//! management and the usernameless sign-in. Options and credentials travel in their W3C
//! JSON forms, so `PublicKeyCredential.parseCreationOptionsFromJSON` and
//! `credential.toJSON()` in a browser need no glue.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::passkey::{Passkey, PasskeyOptions};
use tessera_core::session::issued::SignIn;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::dto::{LoginOut, MfaRequiredOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{optional_json, ApiJson, ApiPath, Auth, Client};
use crate::permission::{perm, RequirePermission};
use crate::state::AppState;

/// A ceremony's options and the challenge its answer names.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOptionsOut {
    pub challenge_id: Uuid,
    /// When the challenge dies (five minutes).
    pub expires_at: DateTime<Utc>,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
    #[schema(value_type = Object)]
    pub options: Value,
}

impl From<PasskeyOptions> for PasskeyOptionsOut {
    fn from(o: PasskeyOptions) -> Self {
        PasskeyOptionsOut { challenge_id: o.challenge_id, expires_at: o.expires_at, options: o.options }
    }
}

/// A passkey: no key material.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOut {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Backed up or synced beyond one device.
    pub backed_up: bool,
    /// The authenticator's model, when it names one.
    pub aaguid: Option<Uuid>,
}

impl From<Passkey> for PasskeyOut {
    fn from(p: Passkey) -> Self {
        PasskeyOut {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
            aaguid: p.aaguid,
        }
    }
}

/// A user's passkeys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeysOut {
    pub passkeys: Vec<PasskeyOut>,
}

/// The browser's answer to registration options.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistrationIn {
    pub challenge_id: Uuid,
    /// `RegistrationResponseJSON` (`credential.toJSON()`).
    #[schema(value_type = Object)]
    pub credential: Value,
    /// A name to tell it by (default `Passkey`); at most 120 characters.
    #[serde(default)]
    pub name: Option<String>,
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameIn {
    /// 1 to 120 printable characters.
    pub name: String,
}

/// Whose passkeys a sign-in may use: none named is a usernameless sign-in.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AuthenticationOptionsIn {
    /// Lists that account's passkeys in `allowCredentials` (an unknown address gets an
    /// answer of the same shape).
    #[serde(default)]
    pub email: Option<String>,
}

/// The browser's answer to authentication options.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssertionIn {
    pub challenge_id: Uuid,
    /// `AuthenticationResponseJSON` (`credential.toJSON()`).
    #[schema(value_type = Object)]
    pub credential: Value,
}

/// The second step's token, for passkey options.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaTokenIn {
    pub mfa_token: String,
}

/// Options to register a passkey for the caller: ES256, EdDSA and RS256, a discoverable
/// credential, the caller's passkeys excluded.
#[utoipa::path(post, path = "/v1/auth/passkeys/registration/options", tag = "passkeys", security(("bearer" = [])),
    responses(
        (status = 200, body = PasskeyOptionsOut),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`mfa_required`: MFA is on and the session is not aal2"),
        (status = 404, body = ErrorBody, description = "`passkey_disabled`"),
        (status = 422, body = ErrorBody, description = "`too_many_passkeys`"),
    ))]
pub async fn registration_options(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> Result<Json<PasskeyOptionsOut>, ApiError> {
    Ok(Json(s.core.passkey_registration_options(&who).await?.into()))
}

/// Verify the browser's new credential and keep it as a passkey.
#[utoipa::path(post, path = "/v1/auth/passkeys/registration/verify", tag = "passkeys", security(("bearer" = [])),
    request_body = RegistrationIn,
    responses(
        (status = 201, body = PasskeyOut),
        (status = 400, body = ErrorBody, description = "`webauthn_challenge_not_found`, `webauthn_challenge_expired`, `webauthn_verification_failed`"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`mfa_required`"),
        (status = 404, body = ErrorBody, description = "`passkey_disabled`"),
        (status = 409, body = ErrorBody, description = "`webauthn_credential_exists`"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn registration_verify(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiJson(body): ApiJson<RegistrationIn>,
) -> Result<Response, ApiError> {
    let p = s.core.register_passkey(&who, body.challenge_id, &body.credential, body.name.as_deref(), &client).await?;
    Ok((StatusCode::CREATED, Json(PasskeyOut::from(p))).into_response())
}

/// The caller's passkeys.
#[utoipa::path(get, path = "/v1/auth/passkeys", tag = "passkeys", security(("bearer" = [])),
    responses((status = 200, body = PasskeysOut), (status = 401, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<PasskeysOut>, ApiError> {
    let passkeys = s.core.passkeys(who.user.id).await?.into_iter().map(PasskeyOut::from).collect();
    Ok(Json(PasskeysOut { passkeys }))
}

/// Rename one of the caller's passkeys.
#[utoipa::path(patch, path = "/v1/auth/passkeys/{id}", tag = "passkeys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the passkey")),
    request_body = RenameIn,
    responses(
        (status = 200, body = PasskeyOut),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such passkey of the caller's, or `passkey_disabled`"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn rename(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RenameIn>,
) -> Result<Json<PasskeyOut>, ApiError> {
    Ok(Json(s.core.rename_passkey(&who, id, &body.name, &client).await?.into()))
}

/// Remove one of the caller's passkeys (aal2 when MFA is on).
#[utoipa::path(delete, path = "/v1/auth/passkeys/{id}", tag = "passkeys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the passkey")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`mfa_required`"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn remove(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.remove_passkey(&who, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Options of a passkey sign-in. Without an email the browser offers every passkey it
/// holds for this site (no `allowCredentials`).
#[utoipa::path(post, path = "/v1/auth/passkeys/authentication/options", tag = "passkeys",
    request_body(content = Option<AuthenticationOptionsIn>, description = "optional: an email"),
    responses(
        (status = 200, body = PasskeyOptionsOut),
        (status = 404, body = ErrorBody, description = "`passkey_disabled`"),
        (status = 429, body = ErrorBody),
    ))]
pub async fn authentication_options(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<Json<PasskeyOptionsOut>, ApiError> {
    let email = optional_json::<AuthenticationOptionsIn>(&body)?.and_then(|b| b.email);
    Ok(Json(s.core.passkey_authentication_options(email.as_deref()).await?.into()))
}

/// Sign in with a passkey: the login response (tokens, cookie), aal2 when the
/// authenticator verified its user; without that, a user with MFA on is asked for the
/// second step as after a password.
#[utoipa::path(post, path = "/v1/auth/passkeys/authentication/verify", tag = "passkeys",
    request_body = AssertionIn,
    responses(
        (status = 200, body = LoginOut, description = "Signed in (or `mfa_required`, as after a password); the refresh token is in the `refresh_token` cookie"),
        (status = 400, body = ErrorBody, description = "`webauthn_challenge_not_found` (unknown or used), `webauthn_challenge_expired`"),
        (status = 401, body = ErrorBody, description = "`webauthn_verification_failed`: an unknown passkey, a bad signature, another origin, a counter that went backwards"),
        (status = 403, body = ErrorBody, description = "The account is inactive or unverified"),
        (status = 429, body = ErrorBody),
    ))]
pub async fn authentication_verify(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<AssertionIn>,
) -> Result<Response, ApiError> {
    match s.core.sign_in_with_passkey(body.challenge_id, &body.credential, &client).await? {
        SignIn::Session(issued) => Ok(super::auth::signed_in(&s, *issued)),
        SignIn::MfaRequired(c) => Ok(Json(MfaRequiredOut::from(c)).into_response()),
    }
}

/// Options of a second step with a passkey: the `mfa_token` of a password sign-in whose
/// `methods` list `webauthn`; the answer goes to `POST /v1/auth/mfa/verify` as
/// `{mfa_token, webauthn: {challenge_id, credential}}`.
#[utoipa::path(post, path = "/v1/auth/mfa/webauthn/options", tag = "mfa",
    request_body = MfaTokenIn,
    responses(
        (status = 200, body = PasskeyOptionsOut),
        (status = 401, body = ErrorBody, description = "`invalid_mfa_token`"),
        (status = 404, body = ErrorBody, description = "The user has no passkey, or `passkey_disabled`"),
    ))]
pub async fn mfa_options(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<MfaTokenIn>,
) -> Result<Json<PasskeyOptionsOut>, ApiError> {
    Ok(Json(s.core.mfa_passkey_options(&body.mfa_token).await?.into()))
}

/// A user's passkeys.
#[utoipa::path(get, path = "/v1/admin/users/{id}/passkeys", tag = "admin", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the user")),
    responses(
        (status = 200, body = PasskeysOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:read"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn admin_list(
    State(s): State<AppState>,
    _: RequirePermission<perm::UsersRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PasskeysOut>, ApiError> {
    let user = s.core.admin_user(id).await?;
    let passkeys = s.core.passkeys(user.id).await?.into_iter().map(PasskeyOut::from).collect();
    Ok(Json(PasskeysOut { passkeys }))
}

/// Remove a user's passkey.
#[utoipa::path(delete, path = "/v1/admin/users/{id}/passkeys/{pid}", tag = "admin", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the user"), ("pid" = Uuid, Path, description = "the passkey")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn admin_remove(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiPath((id, pid)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    s.core.admin_remove_passkey(&actor, id, pid, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
