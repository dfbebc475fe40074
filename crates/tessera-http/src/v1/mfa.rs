//! `/v1/auth/mfa`: TOTP factors, recovery codes and the second step of a sign-in
//! (SPEC §5.6).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use tessera_core::mfa::{RemovalProof, SecondFactor};
use uuid::Uuid;

use crate::dto::{
    ActivationOut, CodeIn, FactorOut, FactorRemovalIn, FactorsOut, LoginOut, MfaVerifyIn, RecoveryCodesOut,
    TotpEnrollIn, TotpEnrollOut,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{optional_json, ApiJson, ApiPath, Auth, Client};
use crate::state::AppState;

/// Exactly one of a code and a recovery code.
pub(crate) fn second_factor(code: Option<String>, recovery_code: Option<String>) -> Result<SecondFactor, ApiError> {
    match (code, recovery_code) {
        (Some(c), None) => Ok(SecondFactor::Code(c)),
        (None, Some(r)) => Ok(SecondFactor::RecoveryCode(r)),
        _ => Err(ApiError::field("code", "required", "Send one of code and recovery_code.")),
    }
}

/// The proof of a second step: exactly one of a code, a recovery code and a passkey.
pub(crate) fn mfa_proof(body: MfaVerifyIn) -> Result<SecondFactor, ApiError> {
    match body.webauthn {
        Some(w) if body.code.is_none() && body.recovery_code.is_none() => {
            Ok(SecondFactor::Passkey { challenge_id: w.challenge_id, credential: w.credential })
        }
        Some(_) => Err(ApiError::field("webauthn", "one_proof", "Send one of code, recovery_code and webauthn.")),
        None => second_factor(body.code, body.recovery_code),
    }
}

/// The second step of a sign-in: the first step's `mfa_token` with a TOTP code or a
/// recovery code. Answers like a sign-in (tokens, cookie), with an aal2 session.
#[utoipa::path(post, path = "/v1/auth/mfa/verify", tag = "mfa", request_body = MfaVerifyIn,
    responses(
        (status = 200, body = LoginOut, description = "Signed in, aal2; the refresh token is in the `refresh_token` cookie"),
        (status = 401, body = ErrorBody, description = "`invalid_mfa_code`, or `invalid_mfa_token` (expired, used, or dead after five wrong codes)"),
        (status = 422, body = ErrorBody, description = "Neither a code nor a recovery code"),
        (status = 429, body = ErrorBody, description = "Locked out after wrong codes, or too many checks from this address"),
    ))]
pub async fn verify(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<MfaVerifyIn>,
) -> Result<Response, ApiError> {
    let token = body.mfa_token.clone();
    let proof = mfa_proof(body)?;
    let issued = s.core.verify_mfa(&token, proof, &client).await?;
    Ok(super::auth::signed_in(&s, issued))
}

/// The caller's factors and how many recovery codes are left.
#[utoipa::path(get, path = "/v1/auth/mfa", tag = "mfa", security(("bearer" = [])),
    responses((status = 200, body = FactorsOut), (status = 401, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<FactorsOut>, ApiError> {
    let (factors, recovery_codes_left) = s.core.list_factors(who.user.id).await?;
    let factors = factors.into_iter().map(FactorOut::from).collect();
    Ok(Json(FactorsOut { factors, recovery_codes_left }))
}

/// Enrol a TOTP factor: the secret, its `otpauth://` URI and a QR code, shown once. It
/// stays unverified until activated with a first code. With MFA on already, only from an
/// aal2 session.
#[utoipa::path(post, path = "/v1/auth/mfa/totp", tag = "mfa", security(("bearer" = [])),
    request_body(content = Option<TotpEnrollIn>, description = "optional: a name"),
    responses(
        (status = 201, body = TotpEnrollOut),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`mfa_required`: MFA is on and the session is not aal2"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn enroll(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = optional_json::<TotpEnrollIn>(&body)?.and_then(|b| b.name);
    let e = s.core.enroll_totp(&who, name, &client).await?;
    let out = TotpEnrollOut { id: e.id, secret: e.secret, otpauth_uri: e.otpauth_uri, qr_png: e.qr_png };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Activate an enrolled factor with its first code: MFA is on, ten recovery codes are
/// handed out (shown once), and the session becomes aal2 (with a fresh access token).
#[utoipa::path(post, path = "/v1/auth/mfa/totp/{id}/activate", tag = "mfa", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the factor")),
    request_body = CodeIn,
    responses(
        (status = 200, body = ActivationOut),
        (status = 401, body = ErrorBody, description = "`invalid_mfa_code`"),
        (status = 404, body = ErrorBody, description = "No such factor of the caller's"),
        (status = 409, body = ErrorBody, description = "Active already"),
        (status = 422, body = ErrorBody, description = "Not six digits"),
        (status = 429, body = ErrorBody),
    ))]
pub async fn activate(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CodeIn>,
) -> Result<Json<ActivationOut>, ApiError> {
    let a = s.core.activate_totp(&who, id, &body.code, &client).await?;
    Ok(Json(ActivationOut {
        recovery_codes: a.recovery_codes,
        access_token: a.access_token,
        token_type: "bearer",
        expires_in: a.expires_in,
    }))
}

/// Remove a factor, proven by a code, a recovery code or the password. With MFA on, only
/// from an aal2 session; the last verified factor removed turns MFA off.
#[utoipa::path(delete, path = "/v1/auth/mfa/totp/{id}", tag = "mfa", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the factor")),
    request_body = FactorRemovalIn,
    responses(
        (status = 204),
        (status = 401, body = ErrorBody, description = "The proof is wrong"),
        (status = 403, body = ErrorBody, description = "`mfa_required`"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "No proof, or more than one"),
    ))]
pub async fn remove(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<FactorRemovalIn>,
) -> Result<StatusCode, ApiError> {
    let proof = match (body.password, body.code, body.recovery_code) {
        (Some(p), None, None) => RemovalProof::Password(SecretString::from(p)),
        (None, code, recovery) => RemovalProof::Factor(second_factor(code, recovery)?),
        _ => return Err(ApiError::field("password", "one_proof", "Send one of code, recovery_code and password.")),
    };
    s.core.remove_factor(&who, id, proof, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ten new recovery codes (the old ones stop working); aal2 only.
#[utoipa::path(post, path = "/v1/auth/mfa/recovery-codes", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, body = RecoveryCodesOut),
        (status = 409, body = ErrorBody, description = "`mfa_not_enabled`: no active factor yet"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`mfa_required`"),
    ))]
pub async fn recovery_codes(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
) -> Result<Json<RecoveryCodesOut>, ApiError> {
    Ok(Json(RecoveryCodesOut { recovery_codes: s.core.regenerate_recovery_codes(&who, &client).await? }))
}
