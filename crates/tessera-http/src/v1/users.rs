//! `/v1/users`: sign-up, user reads, own-account updates, profiles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use tessera_core::account::users::{Registration, UserPatch};
use uuid::Uuid;

use crate::dto::{
    DeleteAccountIn, ExportAuditOut, ExportOut, ExportSessionOut, FactorOut, ProfileOut, ProfilePatchIn, PublicUserOut,
    RegisterIn, UserOut, UserPatchIn,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Auth, Client};
use crate::state::AppState;

/// Sign up.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = RegisterIn,
    responses(
        (status = 201, body = UserOut),
        (status = 409, body = ErrorBody, description = "The email is taken"),
        (status = 422, body = ErrorBody, description = "Every broken rule, in `errors`"),
    ))]
pub async fn register(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RegisterIn>,
) -> Result<Response, ApiError> {
    let reg = Registration {
        link_back: None,
        email: body.email,
        password: SecretString::from(body.password),
        full_name: body.full_name,
        phone: body.phone,
        user_metadata: None,
    };
    let user = s.core.register(reg, &client).await?;
    Ok((StatusCode::CREATED, Json(UserOut::from(&user))).into_response())
}

/// A user: in full to themselves and to admins, `{id, full_name, created_at}` to others.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = UserOut, description = "The full user (self or admin), or `{id, full_name, created_at}`"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_user(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let (user, full) = s.core.user_as_seen_by(&who, id).await?;
    if full {
        Ok(Json(UserOut::from(&user)).into_response())
    } else {
        Ok(Json(PublicUserOut { id: user.id, full_name: user.full_name, created_at: user.created_at }).into_response())
    }
}

/// Update one's own name, email or phone. A new email is unverified.
#[utoipa::path(patch, path = "/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UserPatchIn,
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update_me(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiJson(body): ApiJson<UserPatchIn>,
) -> Result<Json<UserOut>, ApiError> {
    let patch = UserPatch { full_name: body.full_name, email: body.email, phone: body.phone };
    let user = s.core.update_own_account(&who, patch, &client).await?;
    Ok(Json(UserOut::from(&user)))
}

/// One's own profile.
#[utoipa::path(get, path = "/v1/users/me/profile", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = ProfileOut), (status = 401, body = ErrorBody)))]
pub async fn profile(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<ProfileOut>, ApiError> {
    let p = s.core.profile(&who.user).await?;
    Ok(Json(ProfileOut::new(&who.user, &p)))
}

/// Update one's own profile: absent fields are kept, `null` clears.
#[utoipa::path(patch, path = "/v1/users/me/profile", tag = "users", security(("bearer" = [])), request_body = ProfilePatchIn,
    responses((status = 200, body = ProfileOut), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_profile(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiJson(body): ApiJson<ProfilePatchIn>,
) -> Result<Json<ProfileOut>, ApiError> {
    let up = s.core.update_profile(&who.user, body.into(), &client).await?;
    Ok(Json(ProfileOut::new(&up.user, &up.profile)))
}

/// Delete one's own account (GDPR erasure): with the password, and with MFA on a code or
/// a recovery code. At once every session is revoked, every token dies, and sign-in
/// answers as for a wrong password; an admin can restore the account within
/// `DELETED_RETENTION_DAYS`, after which the purge removes it for good.
#[utoipa::path(delete, path = "/v1/users/me", tag = "users", security(("bearer" = [])), request_body = DeleteAccountIn,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody, description = "`wrong_password`"),
        (status = 401, body = ErrorBody, description = "Not signed in, or `invalid_mfa_code`"),
        (status = 409, body = ErrorBody, description = "`last_admin`: the last active admin cannot leave"),
        (status = 422, body = ErrorBody, description = "`code` missing while MFA is on"),
    ))]
pub async fn delete_me(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    ApiJson(body): ApiJson<DeleteAccountIn>,
) -> Result<StatusCode, ApiError> {
    delete_account(&s, &who, body, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What `DELETE /v1/users/me` and Kreeda's `DELETE /auth/user` do.
pub(crate) async fn delete_account(
    s: &AppState,
    who: &tessera_core::caller::Principal,
    body: DeleteAccountIn,
    client: &tessera_core::ClientInfo,
) -> Result<(), ApiError> {
    let second = match (body.code, body.recovery_code) {
        (None, None) => None,
        (code, recovery) => Some(super::mfa::second_factor(code, recovery)?),
    };
    s.core.delete_own_account(who, &SecretString::from(body.password), second, client).await?;
    Ok(())
}

/// Everything stored about the caller, as one JSON document to download: the user, the
/// profile, every session (with ip and user agent), the MFA factors (never their
/// secrets), the passkeys (never a key), the identities at other providers and every audit event about them, oldest first. The events are read and
/// sent page by page, so a long history costs no more memory than a short one.
#[utoipa::path(get, path = "/v1/users/me/export", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = ExportOut, description = "An attachment, `tessera-export-{id}.json`"),
        (status = 401, body = ErrorBody),
    ))]
pub async fn export(State(s): State<AppState>, Auth(who): Auth) -> Result<Response, ApiError> {
    let head = s.core.export_head(who.user.id).await?;
    let owner = head.user.id;
    let doc = ExportOut {
        exported_at: chrono::Utc::now(),
        user: UserOut::from(&head.user),
        profile: head.profile.as_ref().map(|p| ProfileOut::new(&head.user, p)),
        sessions: head.sessions.iter().map(ExportSessionOut::from).collect(),
        mfa_factors: head.factors.into_iter().map(FactorOut::from).collect(),
        passkeys: head.passkeys.into_iter().map(crate::dto::PasskeyOut::from).collect(),
        identities: head.identities.into_iter().map(crate::dto::IdentityOut::from).collect(),
        audit_events: Vec::new(),
    };
    // The document up to the events' array, which is written last (`…"audit_events":[]}`):
    // it is left open and the events are streamed into it.
    let mut opening = serde_json::to_vec(&doc).map_err(|e| tessera_core::domain::Error::Internal(e.to_string()))?;
    opening.truncate(opening.len().saturating_sub(2));
    let first = s.core.export_audit_page(owner, None).await?;
    let core = s.core.clone();
    // Each step sends what is pending (the opening, at first) and one page of events,
    // reading the next page meanwhile; an empty page closes the document.
    let pages = futures_util::stream::unfold(Some((first, opening, true)), move |state| {
        let core = core.clone();
        async move {
            let (page, mut chunk, first) = state?;
            let Some(last) = page.last().map(|e| e.id) else {
                chunk.extend_from_slice(b"]}");
                return Some((Ok(chunk), None));
            };
            chunk.reserve(page.len() * 256);
            for (i, event) in page.into_iter().enumerate() {
                if i > 0 || !first {
                    chunk.push(b',');
                }
                if let Err(e) = serde_json::to_writer(&mut chunk, &ExportAuditOut::new(event, owner)) {
                    return Some((Err(std::io::Error::other(e)), None));
                }
            }
            match core.export_audit_page(owner, Some(last)).await {
                Ok(next) => Some((Ok(chunk), Some((next, Vec::new(), false)))),
                // The body stops short: the client sees a truncated document, never a
                // complete-looking one that lacks events.
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let filename = format!("attachment; filename=\"tessera-export-{owner}.json\"");
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/json".to_owned()),
        (axum::http::header::CONTENT_DISPOSITION, filename),
        (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    Ok((headers, axum::body::Body::from_stream(pages)).into_response())
}

/// A grant the caller gave an application that signs in through tessera (SPEC §5.12).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OAuthGrantOut {
    pub client_id: Uuid,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub scopes: Vec<String>,
    pub granted_at: chrono::DateTime<chrono::Utc>,
}

/// The applications the caller let sign them in, with the scopes given.
#[utoipa::path(get, path = "/v1/users/me/oauth/grants", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<OAuthGrantOut>),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`oauth_server_disabled`"),
    ))]
pub async fn oauth_grants(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<OAuthGrantOut>>, ApiError> {
    let grants = s.core.oauth_grants(who.user.id).await?;
    Ok(Json(
        grants
            .into_iter()
            .map(|g| OAuthGrantOut {
                client_id: g.client.id,
                client_name: g.client.name,
                client_uri: g.client.client_uri,
                logo_uri: g.client.logo_uri,
                scopes: g.scopes,
                granted_at: g.granted_at,
            })
            .collect(),
    ))
}

/// `?client_id=`
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// The application whose grant to withdraw.
    pub client_id: Uuid,
}

/// Withdraw a grant: the consent goes and the application's sessions of the caller are
/// revoked at once (its tokens stop working at userinfo and introspection).
#[utoipa::path(delete, path = "/v1/users/me/oauth/grants", tag = "users", params(GrantQuery),
    security(("bearer" = [])),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No grant to that client (`oauth_client_not_found`)"),
    ))]
pub async fn revoke_oauth_grant(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<GrantQuery>,
) -> Result<StatusCode, ApiError> {
    s.core.revoke_oauth_grant(who.user.id, q.client_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
