//! The Kreeda API (seed 000, SPEC §2.2): its exact paths and shapes, as a thin router
//! over the same services as `/v1`.

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_core::account::users::{OwnChanges, Registration, UserPatch};
use tessera_core::domain::{Error, FieldError};
use tessera_core::limits::RateAction;
use tessera_core::mail::links::{MailProof, Verdict, Verification};
use tessera_core::mail::verification::EMAIL_CHANGE;
use tessera_core::session::issued::{Issued, SignIn};
use utoipa::ToSchema;

use crate::dto::{AuthUserOut, MessageOut, MfaVerifyIn, ProfileOut, ProfilePatchIn, SessionBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Auth, Client};
use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::rate_limit;
use crate::state::AppState;
use crate::surface::Surface;

/// A JSON body as Kreeda reads it: a missing or mistyped field is 400 (seed 000),
/// still in the SPEC §6 shape and naming the field.
pub struct KreedaJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for KreedaJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match ApiJson::<T>::from_request(req, state).await {
            Ok(ApiJson(v)) => Ok(KreedaJson(v)),
            Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
                let fields: Vec<String> = e.errors.iter().flatten().map(|f| f.field.clone()).collect();
                let mut bad = ApiError::bad_request(format!("Missing or invalid field: {}.", fields.join(", ")));
                bad.errors = e.errors;
                Err(bad)
            }
            Err(e) => Err(e),
        }
    }
}

/// Renames fields in validation errors to the names this surface uses.
fn renamed(e: Error, names: &[(&str, &str)]) -> ApiError {
    match e {
        Error::Validation(list) => Error::Validation(
            list.into_iter()
                .map(|f| {
                    let field = names.iter().find(|(from, _)| *from == f.field).map_or(f.field.as_str(), |(_, to)| to);
                    FieldError::new(field, &f.code, f.message.clone())
                })
                .collect(),
        )
        .into(),
        other => other.into(),
    }
}

/// `{user, session}`.
#[derive(Serialize, ToSchema)]
pub struct UserSession {
    /// `null` while a sign-in waits for its second factor.
    pub user: Option<AuthUserOut>,
    /// `null` when the account must confirm its email before signing in, and after an
    /// email-change confirmation (which never signs anyone in).
    pub session: Option<SessionBody>,
    /// After the first side of a secure email change: what is still needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
    /// `true` when the sign-in needs its second factor, at `/auth/mfa/verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub mfa_required: Option<bool>,
    /// The token of the second step (single use, 5 minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub mfa_token: Option<String>,
    /// `totp`, `recovery_code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub methods: Option<Vec<&'static str>>,
}

/// The auth user object of `user`, with its stored `user_metadata` keys.
async fn auth_user(s: &AppState, user: &tessera_core::entity::user::Model) -> AuthUserOut {
    let profile = s.core.profile(user).await.ok();
    AuthUserOut::new(user, &s.core.jwt.audience).with_stored(profile.as_ref().map(|p| &p.user_metadata))
}

impl UserSession {
    async fn of(s: &AppState, user: &tessera_core::entity::user::Model, session: Option<SessionBody>) -> Self {
        UserSession {
            user: Some(auth_user(s, user).await),
            session,
            message: None,
            mfa_required: None,
            mfa_token: None,
            methods: None,
        }
    }
}

async fn user_session(s: &AppState, issued: &Issued) -> UserSession {
    UserSession::of(s, &issued.user, Some(SessionBody::from(issued))).await
}

/// A sign-in's answer: the session, or `{user: null, session: null, mfa_required,
/// mfa_token, methods}` when it needs its second factor.
async fn signed_in(s: &AppState, sign_in: SignIn) -> UserSession {
    match sign_in {
        SignIn::Session(issued) => user_session(s, &issued).await,
        SignIn::MfaRequired(c) => UserSession {
            user: None,
            session: None,
            message: None,
            mfa_required: Some(true),
            mfa_token: Some(c.mfa_token),
            methods: Some(c.methods.to_vec()),
        },
    }
}

/// A Kreeda sign-up.
#[derive(Deserialize, ToSchema)]
pub struct KreedaRegisterIn {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A Kreeda sign-in.
#[derive(Deserialize, ToSchema)]
pub struct KreedaSignInIn {
    pub email: String,
    pub password: String,
}

/// Changes to the caller's account; every field optional.
#[derive(Deserialize, ToSchema)]
pub struct KreedaUserUpdateIn {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// A refresh.
#[derive(Deserialize, ToSchema)]
pub struct KreedaTokenIn {
    pub refresh_token: String,
}

/// An email address.
#[derive(Deserialize, ToSchema)]
pub struct KreedaEmailIn {
    pub email: String,
}

/// A link token from a mail.
#[derive(Deserialize, ToSchema)]
pub struct KreedaVerifyIn {
    /// `signup`, `recovery` or `email_change`.
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
}

/// Sign up; the profile is created with `name`.
#[utoipa::path(post, path = "/auth/register", tag = "kreeda", request_body = KreedaRegisterIn,
    responses(
        (status = 201, body = UserSession),
        (status = 400, body = ErrorBody, description = "A missing or mistyped field"),
        (status = 409, body = ErrorBody, description = "The email is taken"),
        (status = 422, body = ErrorBody, description = "Every broken rule"),
    ))]
pub async fn register(
    State(s): State<AppState>,
    Client(client): Client,
    KreedaJson(body): KreedaJson<KreedaRegisterIn>,
) -> Result<Response, ApiError> {
    let reg = Registration {
        link_back: None,
        email: body.email,
        password: SecretString::from(body.password),
        full_name: body.name,
        phone: body.phone_number,
        user_metadata: None,
    };
    let signed_up = s
        .core
        .sign_up(reg, &client)
        .await
        .map_err(|e| renamed(e, &[("phone", "phone_number"), ("full_name", "name")]))?;
    let out = match signed_up {
        (_, Some(issued)) => user_session(&s, &issued).await,
        (user, None) => UserSession::of(&s, &user, None).await,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/signin/password", tag = "kreeda", request_body = KreedaSignInIn,
    responses(
        (status = 200, body = UserSession),
        (status = 400, body = ErrorBody, description = "A missing field"),
        (status = 401, body = ErrorBody, description = "Invalid credentials"),
        (status = 403, body = ErrorBody, description = "Inactive account"),
    ))]
pub async fn sign_in(
    State(s): State<AppState>,
    Client(client): Client,
    KreedaJson(body): KreedaJson<KreedaSignInIn>,
) -> Result<Json<UserSession>, ApiError> {
    let sign_in = s.core.login(&body.email, &SecretString::from(body.password), &client).await?;
    Ok(Json(signed_in(&s, sign_in).await))
}

/// The caller.
#[utoipa::path(get, path = "/auth/user", tag = "kreeda", security(("bearer" = [])),
    responses((status = 200, body = AuthUserOut), (status = 401, body = ErrorBody)))]
pub async fn user(State(s): State<AppState>, Auth(who): Auth) -> Json<AuthUserOut> {
    Json(auth_user(&s, &who.user).await)
}

/// Delete one's own account: the same as `DELETE /v1/users/me` (the password, and with
/// MFA on a code or a recovery code).
#[utoipa::path(delete, path = "/auth/user", tag = "kreeda", security(("bearer" = [])),
    request_body = crate::dto::DeleteAccountIn,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody, description = "`wrong_password`"),
        (status = 401, body = ErrorBody, description = "Not signed in, or `invalid_mfa_code`"),
        (status = 409, body = ErrorBody, description = "`last_admin`"),
        (status = 422, body = ErrorBody, description = "`code` missing while MFA is on"),
    ))]
pub async fn delete_user(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    KreedaJson(body): KreedaJson<crate::dto::DeleteAccountIn>,
) -> Result<axum::http::StatusCode, ApiError> {
    crate::v1::users::delete_account(&s, &who, body, &client).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Update email (pending until confirmed), password (other sessions signed out) or phone
/// (verification reset).
#[utoipa::path(put, path = "/auth/user", tag = "kreeda", security(("bearer" = [])), request_body = KreedaUserUpdateIn,
    responses(
        (status = 200, body = AuthUserOut),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update_user(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    KreedaJson(body): KreedaJson<KreedaUserUpdateIn>,
) -> Result<Json<AuthUserOut>, ApiError> {
    let changes = OwnChanges {
        password: body.password.map(SecretString::from),
        patch: UserPatch { full_name: None, email: body.email, phone: body.phone.map(Some) },
        ..OwnChanges::default()
    };
    let updated = s.core.change_own_account(&who, changes, &client).await?;
    Ok(Json(auth_user(&s, &updated).await))
}

/// Refresh: rotates the refresh token.
#[utoipa::path(post, path = "/auth/token", tag = "kreeda", request_body = KreedaTokenIn,
    responses((status = 200, body = SessionBody), (status = 401, body = ErrorBody)))]
pub async fn token(
    State(s): State<AppState>,
    Client(client): Client,
    KreedaJson(body): KreedaJson<KreedaTokenIn>,
) -> Result<Json<SessionBody>, ApiError> {
    let issued = s.core.refresh(&body.refresh_token, &client).await?;
    Ok(Json(SessionBody::from(&issued)))
}

/// Ask for a password-recovery mail. Always the same answer.
#[utoipa::path(post, path = "/auth/recover", tag = "kreeda", request_body = KreedaEmailIn,
    responses((status = 200, body = MessageOut)))]
pub async fn recover(
    State(s): State<AppState>,
    Client(client): Client,
    KreedaJson(body): KreedaJson<KreedaEmailIn>,
) -> Result<Json<MessageOut>, ApiError> {
    s.core.request_password_reset(&body.email, None, &client).await?;
    Ok(Json(MessageOut { message: "Password recovery email sent".to_owned() }))
}

/// Use a mailed token: confirm the sign-up address (`signup`, which signs in), confirm an
/// email change (`email_change`, which never signs in: `session` is `null`), or sign in to
/// reset the password (`recovery`).
#[utoipa::path(post, path = "/auth/verify", tag = "kreeda", request_body = KreedaVerifyIn,
    responses(
        (status = 200, body = UserSession),
        (status = 400, body = ErrorBody, description = "Invalid, expired or used token, or one of another type"),
        (status = 422, body = ErrorBody, description = "Unknown type"),
        (status = 429, body = ErrorBody, description = "Too many checks from this address (RATE_LIMIT_VERIFY)"),
    ))]
pub async fn verify(
    State(s): State<AppState>,
    Client(client): Client,
    KreedaJson(body): KreedaJson<KreedaVerifyIn>,
) -> Result<Json<UserSession>, ApiError> {
    let out = match body.kind.as_str() {
        "signup" => {
            let proof = MailProof::Token(&body.token);
            match s.core.use_mail_proof(Verification::Signup, proof, &client).await? {
                Verdict::SignedIn(sign_in) => signed_in(&s, sign_in).await,
                // Only an email change waits for another side.
                Verdict::Pending(_) => return Err(Error::InvalidVerification.into()),
            }
        }
        "email_change" => {
            let verified = s.core.verify_email_token(&body.token, EMAIL_CHANGE, &client).await?;
            UserSession {
                message: crate::dto::pending(verified.confirmation).map(|(_, detail)| detail),
                ..UserSession::of(&s, &verified.user, None).await
            }
        }
        "recovery" => signed_in(&s, s.core.sign_in_with_recovery_token(&body.token, &client).await?).await,
        _ => return Err(ApiError::field("type", "invalid_type", "type must be signup, recovery or email_change.")),
    };
    Ok(Json(out))
}

/// The second step of a sign-in: the first step's `mfa_token` with a TOTP `code` or a
/// `recovery_code`.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "kreeda", request_body = MfaVerifyIn,
    responses(
        (status = 200, body = UserSession),
        (status = 401, body = ErrorBody, description = "`invalid_mfa_code` or `invalid_mfa_token`"),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub async fn mfa_verify(
    State(s): State<AppState>,
    Client(client): Client,
    KreedaJson(body): KreedaJson<MfaVerifyIn>,
) -> Result<Json<UserSession>, ApiError> {
    let token = body.mfa_token.clone();
    let proof = crate::v1::mfa::mfa_proof(body)?;
    let issued = s.core.verify_mfa(&token, proof, &client).await?;
    Ok(Json(user_session(&s, &issued).await))
}

/// Sign out of this session.
#[utoipa::path(post, path = "/auth/signout", tag = "kreeda", security(("bearer" = [])),
    responses((status = 200, body = MessageOut), (status = 401, body = ErrorBody)))]
pub async fn sign_out(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
) -> Result<Json<MessageOut>, ApiError> {
    s.core.logout(&who, &client).await?;
    Ok(Json(MessageOut { message: "Signed out successfully".to_owned() }))
}

/// The caller's profile.
#[utoipa::path(get, path = "/user/profile/", tag = "kreeda", security(("bearer" = [])),
    responses((status = 200, body = ProfileOut), (status = 401, body = ErrorBody)))]
pub async fn profile(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<ProfileOut>, ApiError> {
    let p = s.core.profile(&who.user).await?;
    Ok(Json(ProfileOut::kreeda(&who.user, &p)))
}

/// Update the caller's profile: name, avatar_url, location, date_of_birth, bio, preferences.
#[utoipa::path(put, path = "/user/profile/", tag = "kreeda", security(("bearer" = [])), request_body = ProfilePatchIn,
    responses((status = 200, body = ProfileOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_profile(
    State(s): State<AppState>,
    Client(client): Client,
    Auth(who): Auth,
    KreedaJson(body): KreedaJson<ProfilePatchIn>,
) -> Result<Json<ProfileOut>, ApiError> {
    let up = s.core.update_profile(&who.user, body.into(), &client).await?;
    Ok(Json(ProfileOut::kreeda(&up.user, &up.profile)))
}

/// The Kreeda surface.
pub fn router(state: &AppState, shared: &SharedLayers) -> Router<AppState> {
    shared.api(routes(state), Surface::Kreeda, Csp::Strict)
}

/// The Kreeda routes.
fn routes(state: &AppState) -> Router<AppState> {
    let limit = |action| axum::middleware::from_fn_with_state((state.clone(), action), rate_limit::per_ip);
    Router::new()
        .route("/auth/register", post(register).route_layer(limit(RateAction::Register)))
        .route("/auth/signin/password", post(sign_in).route_layer(limit(RateAction::Login)))
        .route("/auth/user", get(user).put(update_user).delete(delete_user))
        .route("/auth/token", post(token))
        .route("/auth/recover", post(recover).route_layer(limit(RateAction::Verify)))
        .route("/auth/verify", post(verify).route_layer(limit(RateAction::Verify)))
        .route("/auth/signout", post(sign_out))
        .route("/auth/mfa/verify", post(mfa_verify).route_layer(limit(RateAction::Verify)))
        .route("/user/profile/", get(profile).put(update_profile))
        .route("/user/profile", get(profile).put(update_profile))
}
