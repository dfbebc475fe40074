//! `/auth/v1/factors`: TOTP and WebAuthn enrolment, challenges, verification (the
//! step-up to aal2) and unenrolment, over the MFA and passkey services of SPEC §5.6 and
//! §5.10.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_core::mfa::RemovalProof;
use uuid::Uuid;

use super::error::GoTrueError;
use super::extract::{SbAuth, SbJson};
use super::session::session_json;
use crate::extract::Client;
use crate::state::AppState;

type Answer = Result<Response, GoTrueError>;

/// A factor id in the path: anything else is an unknown factor.
fn factor_id(raw: &str) -> Result<Uuid, GoTrueError> {
    Uuid::parse_str(raw).map_err(|_| tessera_core::domain::Error::FactorNotFound.into())
}

/// An enrolment.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbEnrollIn {
    factor_type: Option<String>,
    friendly_name: Option<String>,
    /// A phone factor's number.
    phone: Option<String>,
}

/// `POST /auth/v1/factors`: a TOTP factor, unverified until a challenge is verified;
/// `totp.qr_code` is the bare SVG image, as GoTrue sends it (the client makes it a data
/// URI itself: a prefixed answer came out twice prefixed).
#[utoipa::path(post, path = "/auth/v1/factors", tag = "supabase", security(("bearer" = [])), request_body = SbEnrollIn,
    responses(
        (status = 200, body = super::doc::SbEnrolment),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`: not `totp`, or a bad name"),
        (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError),
        (status = 422, body = super::doc::SbError, description = "`insufficient_aal`: MFA is on and the session is not aal2"),
    ))]
pub async fn enroll(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    SbJson(body): SbJson<SbEnrollIn>,
) -> Answer {
    match body.factor_type.as_deref().unwrap_or("totp") {
        "totp" => {}
        "webauthn" => {
            let f = s.core.enroll_webauthn_factor(&who, body.friendly_name, &client).await?;
            return Ok(Json(json!({ "id": f.id, "type": "webauthn", "friendly_name": f.name })).into_response());
        }
        "phone" => {
            let raw = body.phone.as_deref().map(str::trim).filter(|p| !p.is_empty());
            let phone = tessera_core::domain::Phone::parse_lenient(raw.unwrap_or_default())
                .map_err(|_| GoTrueError::validation("Invalid phone number format (E.164 required)"))?;
            let f = s.core.enroll_phone_factor(&who, &phone, body.friendly_name, &client).await?;
            let out = json!({ "id": f.id, "type": "phone", "friendly_name": f.name, "phone": phone.digits() });
            return Ok(Json(out).into_response());
        }
        _ => return Err(GoTrueError::validation("factor_type needs to be totp, phone or webauthn")),
    }
    let name = body.friendly_name.filter(|n| !n.trim().is_empty());
    let e = s.core.enroll_totp(&who, name, &client).await?;
    let svg = tessera_core::mfa::qr_svg(&e.otpauth_uri)?;
    Ok(Json(json!({
        "id": e.id,
        "type": "totp",
        "friendly_name": e.name,
        "totp": {
            "qr_code": svg,
            "secret": e.secret,
            "uri": e.otpauth_uri,
        },
    }))
    .into_response())
}

/// `POST /auth/v1/factors/{id}/challenge`: `{id, type, expires_at}` (five minutes).
#[utoipa::path(post, path = "/auth/v1/factors/{id}/challenge", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The factor")),
    responses((status = 200, body = super::doc::SbChallenge), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError, description = "`mfa_factor_not_found`")))]
pub async fn challenge(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    Path(id): Path<String>,
) -> Answer {
    let c = s.core.challenge_factor(&who, factor_id(&id)?, &client).await?;
    Ok(Json(match c.webauthn {
        None => json!({ "id": c.id, "type": c.factor_type, "expires_at": c.expires_at.timestamp() }),
        Some((kind, options)) => json!({
            "id": c.id,
            "type": "webauthn",
            "expires_at": c.expires_at.timestamp(),
            "webauthn": { "type": kind, "credential_options": { "publicKey": options } },
        }),
    })
    .into_response())
}

/// A challenge's answer.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbFactorVerifyIn {
    challenge_id: Option<String>,
    /// Six digits, as a string or a number.
    #[schema(value_type = Option<String>)]
    code: Option<Value>,
    /// A WebAuthn factor's answer.
    webauthn: Option<SbWebauthnIn>,
}

/// A WebAuthn factor's answer: `create` (a new credential) or `request` (an assertion).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbWebauthnIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// `RegistrationResponseJSON` or `AuthenticationResponseJSON`.
    #[schema(value_type = Option<Object>)]
    credential_response: Option<Value>,
}

/// `POST /auth/v1/factors/{id}/verify`: the code of a challenge; answers the session,
/// now aal2.
#[utoipa::path(post, path = "/auth/v1/factors/{id}/verify", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The factor")), request_body = SbFactorVerifyIn,
    responses(
        (status = 200, body = super::doc::SbSession, description = "The session, now aal2"),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`"),
        (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError),
        (status = 404, body = super::doc::SbError, description = "`mfa_factor_not_found`"),
        (status = 422, body = super::doc::SbError, description = "`mfa_verification_failed`, `mfa_challenge_expired`"),
        (status = 429, body = super::doc::SbError),
    ))]
pub async fn verify(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    Path(id): Path<String>,
    SbJson(body): SbJson<SbFactorVerifyIn>,
) -> Answer {
    let factor = factor_id(&id)?;
    let challenge = body
        .challenge_id
        .as_deref()
        .and_then(|c| Uuid::parse_str(c.trim()).ok())
        .ok_or_else(|| GoTrueError::validation("challenge_id is required"))?;
    if let Some(w) = body.webauthn {
        let credential = w
            .credential_response
            .filter(|c| c.is_object())
            .ok_or_else(|| GoTrueError::validation("WebAuthn config required"))?;
        if !matches!(w.kind.as_deref(), Some("create" | "request")) {
            return Err(GoTrueError::validation("WebAuthn type must be create or request"));
        }
        let issued = s.core.verify_webauthn_factor(&who, factor, challenge, &credential, &client).await?;
        return Ok(Json(session_json(&s.core, &issued).await?).into_response());
    }
    let code = match body.code {
        Some(Value::String(c)) => c,
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(GoTrueError::validation("code is required")),
    };
    let issued = s.core.verify_challenge(&who, factor, challenge, &code, &client).await?;
    Ok(Json(session_json(&s.core, &issued).await?).into_response())
}

/// `DELETE /auth/v1/factors/{id}`: `{id}`. A verified factor needs an aal2 session.
#[utoipa::path(delete, path = "/auth/v1/factors/{id}", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The factor")),
    responses((status = 200, body = super::doc::SbId), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError),
        (status = 422, body = super::doc::SbError, description = "`insufficient_aal`")))]
pub async fn unenroll(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    Path(id): Path<String>,
) -> Answer {
    let factor = factor_id(&id)?;
    s.core.remove_factor(&who, factor, RemovalProof::Session, &client).await?;
    Ok(Json(json!({ "id": factor })).into_response())
}
