//! `/v1/users`: sign-up, user reads, own-account updates, profiles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use tessera_core::domain::Role;
use tessera_core::users::{Registration, UserPatch};
use uuid::Uuid;

use crate::dto::{ProfileOut, ProfilePatchIn, PublicUserOut, RegisterIn, UserOut, UserPatchIn};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Auth, Client};
use crate::AppState;

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
        email: body.email,
        password: SecretString::from(body.password),
        full_name: body.full_name,
        phone: body.phone,
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
    if id == who.user.id {
        return Ok(Json(UserOut::from(&who.user)).into_response());
    }
    let user = s.core.user(id).await?;
    if who.role() == Role::Admin {
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
