//! `/auth/v1/passkeys`: GoTrue's passkey endpoints as auth-js calls them (registration
//! and usernameless authentication, each in two steps; list, rename, delete) and the
//! admin's `/admin/users/{id}/passkeys`, over the passkey service of SPEC §5.10.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_core::domain::Error;
use tessera_core::passkey::{Passkey, PasskeyOptions};
use tessera_core::session::issued::SignIn;
use uuid::Uuid;

use super::error::GoTrueError;
use super::extract::{SbAuth, SbJson, ServiceRole};
use super::session::session_json;
use crate::extract::Client;
use crate::state::AppState;

type Answer = Result<Response, GoTrueError>;

/// A ceremony's answer as GoTrue reads it: `challenge_id` (a UUID) and `credential`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbCeremonyIn {
    challenge_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    credential: Option<Value>,
}

/// A new name.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbPasskeyUpdateIn {
    friendly_name: Option<String>,
}

/// The challenge and credential of a ceremony's answer, as GoTrue checks them.
fn ceremony(body: SbCeremonyIn) -> Result<(Uuid, Value), GoTrueError> {
    let id = body
        .challenge_id
        .filter(|c| !c.is_empty())
        .ok_or_else(|| GoTrueError::validation("challenge_id is required"))?;
    let credential =
        body.credential.filter(|c| !c.is_null()).ok_or_else(|| GoTrueError::validation("credential is required"))?;
    let id = Uuid::parse_str(&id).map_err(|_| GoTrueError::validation("challenge_id must be a valid UUID"))?;
    Ok((id, credential))
}

fn options_json(o: PasskeyOptions) -> Value {
    json!({ "challenge_id": o.challenge_id, "options": o.options, "expires_at": o.expires_at.timestamp() })
}

/// A passkey as GoTrue lists it: `friendly_name` and `last_used_at` only when set.
fn passkey_json(p: &Passkey) -> Value {
    let mut out = Map::new();
    out.insert("id".to_owned(), json!(p.id));
    out.insert("friendly_name".to_owned(), json!(p.name));
    out.insert("created_at".to_owned(), json!(p.created_at));
    if let Some(at) = p.last_used_at {
        out.insert("last_used_at".to_owned(), json!(at));
    }
    Value::Object(out)
}

/// A passkey id in the path: anything else is an unknown passkey (404).
fn passkey_id(raw: &str) -> Result<Uuid, GoTrueError> {
    Uuid::parse_str(raw).map_err(|_| Error::PasskeyNotFound.into())
}

/// `POST /auth/v1/passkeys/registration/options`.
#[utoipa::path(post, path = "/auth/v1/passkeys/registration/options", tag = "supabase", security(("bearer" = [])),
    responses((status = 200, body = super::doc::SbPasskeyOptions), (status = 401, body = super::doc::SbError),
        (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError, description = "`passkey_disabled`"),
        (status = 422, body = super::doc::SbError, description = "`too_many_passkeys`, `insufficient_aal`")))]
pub async fn registration_options(State(s): State<AppState>, SbAuth(who): SbAuth) -> Answer {
    Ok(Json(options_json(s.core.passkey_registration_options(&who).await?)).into_response())
}

/// `POST /auth/v1/passkeys/registration/verify`: `{id, friendly_name, created_at}`.
#[utoipa::path(post, path = "/auth/v1/passkeys/registration/verify", tag = "supabase", security(("bearer" = [])),
    request_body = SbCeremonyIn,
    responses((status = 200, body = super::doc::SbPasskey),
        (status = 400, body = super::doc::SbError, description = "`webauthn_challenge_not_found`, `webauthn_challenge_expired`, `webauthn_verification_failed`, `validation_failed`"),
        (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError),
        (status = 422, body = super::doc::SbError, description = "`webauthn_credential_exists`, `too_many_passkeys`")))]
pub async fn registration_verify(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    SbJson(body): SbJson<SbCeremonyIn>,
) -> Answer {
    let (challenge_id, credential) = ceremony(body)?;
    let p = s.core.register_passkey(&who, challenge_id, &credential, None, &client).await?;
    Ok(Json(passkey_json(&p)).into_response())
}

/// `POST /auth/v1/passkeys/authentication/options`: usernameless (no `allowCredentials`).
#[utoipa::path(post, path = "/auth/v1/passkeys/authentication/options", tag = "supabase",
    responses((status = 200, body = super::doc::SbPasskeyOptions), (status = 404, body = super::doc::SbError), (status = 429, body = super::doc::SbError)))]
pub async fn authentication_options(State(s): State<AppState>) -> Answer {
    Ok(Json(options_json(s.core.passkey_authentication_options(None).await?)).into_response())
}

/// `POST /auth/v1/passkeys/authentication/verify`: a session, as `/token` answers.
#[utoipa::path(post, path = "/auth/v1/passkeys/authentication/verify", tag = "supabase", request_body = SbCeremonyIn,
    responses((status = 200, body = super::doc::SbSession),
        (status = 400, body = super::doc::SbError, description = "`webauthn_challenge_not_found`, `webauthn_challenge_expired`, `webauthn_verification_failed`, `validation_failed`"),
        (status = 404, body = super::doc::SbError), (status = 429, body = super::doc::SbError)))]
pub async fn authentication_verify(
    State(s): State<AppState>,
    Client(client): Client,
    SbJson(body): SbJson<SbCeremonyIn>,
) -> Answer {
    let (challenge_id, credential) = ceremony(body)?;
    match s.core.sign_in_with_passkey(challenge_id, &credential, &client).await? {
        SignIn::Session(issued) => Ok(Json(session_json(&s.core, &issued).await?).into_response()),
        // The Supabase surface never asks for a second step at sign-in (aal1, stepped up
        // at /factors), so this cannot happen; answered as GoTrue would a refusal.
        SignIn::MfaRequired(_) => Err(Error::PasskeyRefused.into()),
    }
}

/// `GET /auth/v1/passkeys`: the caller's passkeys.
#[utoipa::path(get, path = "/auth/v1/passkeys", tag = "supabase", security(("bearer" = [])),
    responses((status = 200, body = Vec<super::doc::SbPasskey>), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError)))]
pub async fn list(State(s): State<AppState>, SbAuth(who): SbAuth) -> Answer {
    let passkeys = s.core.passkeys(who.user.id).await?;
    Ok(Json(Value::Array(passkeys.iter().map(passkey_json).collect())).into_response())
}

/// `PATCH /auth/v1/passkeys/{id}`: `{friendly_name}`.
#[utoipa::path(patch, path = "/auth/v1/passkeys/{id}", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey")), request_body = SbPasskeyUpdateIn,
    responses((status = 200, body = super::doc::SbPasskey), (status = 400, body = super::doc::SbError),
        (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError)))]
pub async fn update(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    Path(id): Path<String>,
    SbJson(body): SbJson<SbPasskeyUpdateIn>,
) -> Answer {
    let id = passkey_id(&id)?;
    let name = body
        .friendly_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| GoTrueError::validation("friendly_name is required"))?;
    if name.chars().count() > 120 {
        return Err(GoTrueError::validation("friendly_name must be 120 characters or less"));
    }
    let p = s.core.rename_passkey(&who, id, &name, &client).await.map_err(|e| match e {
        Error::Validation(_) => GoTrueError::validation("friendly_name must be printable"),
        other => other.into(),
    })?;
    Ok(Json(passkey_json(&p)).into_response())
}

/// `DELETE /auth/v1/passkeys/{id}`: 204.
#[utoipa::path(delete, path = "/auth/v1/passkeys/{id}", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey")),
    responses((status = 204), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError),
        (status = 422, body = super::doc::SbError, description = "`insufficient_aal`")))]
pub async fn delete(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    Path(id): Path<String>,
) -> Answer {
    s.core.remove_passkey(&who, passkey_id(&id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /auth/v1/admin/users/{id}/passkeys`.
#[utoipa::path(get, path = "/auth/v1/admin/users/{id}/passkeys", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user")),
    responses((status = 200, body = Vec<super::doc::SbPasskey>), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError)))]
pub async fn admin_list(State(s): State<AppState>, _: ServiceRole, Path(id): Path<String>) -> Answer {
    let user = Uuid::parse_str(&id).map_err(|_| GoTrueError::from(Error::UserNotFound))?;
    let user = s.core.admin_user(user).await?;
    let passkeys = s.core.passkeys(user.id).await?;
    Ok(Json(Value::Array(passkeys.iter().map(passkey_json).collect())).into_response())
}

/// `DELETE /auth/v1/admin/users/{id}/passkeys/{passkey_id}`: 204.
#[utoipa::path(delete, path = "/auth/v1/admin/users/{id}/passkeys/{passkey_id}", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user"), ("passkey_id" = String, Path, description = "The passkey")),
    responses((status = 204), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError)))]
pub async fn admin_delete(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    Path((id, passkey)): Path<(String, String)>,
) -> Answer {
    let user = Uuid::parse_str(&id).map_err(|_| GoTrueError::from(Error::UserNotFound))?;
    s.core.admin_remove_passkey(&actor, user, passkey_id(&passkey)?, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
