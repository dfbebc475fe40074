//! `/v1/admin/users`: list and search, create, read, change, delete, sign out, bulk.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tessera_core::account::admin::{AdminUserPatch, BulkAction, NewUser, UserQuery};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::dto::{double_option, UserOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Client};
use crate::permission::{perm, RequirePermission};
use crate::state::AppState;

/// The user-list query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Users to skip, 0 to 1,000,000,000 (default 0).
    #[param(minimum = 0, maximum = 1_000_000_000)]
    pub skip: Option<u64>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Case-insensitive prefix of the email address or of the full name.
    pub q: Option<String>,
    /// `user` or `admin`.
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

/// A page of users, newest first, and how many match in all.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserOut>,
    pub total: u64,
}

/// A user as an admin creates it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserIn {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// Default true.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Default false.
    #[serde(default)]
    pub is_verified: Option<bool>,
}

/// Changes to any user: absent fields are kept; `null` clears `full_name` or `phone`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserIn {
    #[serde(default)]
    pub email: Option<String>,
    /// A new password (the policy applies); signs the user out everywhere.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub full_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default)]
    pub role: Option<String>,
    /// false signs the user out everywhere.
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub is_verified: Option<bool>,
}

/// A bulk action.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkActionIn {
    Activate,
    Deactivate,
    Delete,
    SetRole,
}

/// One action on many users, all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkIn {
    pub action: BulkActionIn,
    /// 1 to 1000 user ids; one unknown id fails the whole request.
    pub ids: Vec<Uuid>,
    /// For `set_role`: `user` or `admin`.
    #[serde(default)]
    pub role: Option<String>,
}

/// How many users a bulk action changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOut {
    pub affected: u64,
}

/// List and search users.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:read"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn list(
    State(s): State<AppState>,
    _: RequirePermission<perm::UsersRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let query = UserQuery {
        skip: q.skip.unwrap_or(0),
        limit: q.limit.unwrap_or(50),
        q: q.q,
        role: q.role,
        is_active: q.is_active,
        after: None,
    };
    let (items, total) = s.core.admin_list_users(query).await?;
    Ok(Json(UserPage { items: items.iter().map(UserOut::from).collect(), total }))
}

/// Create a user with any role and state.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", request_body = CreateUserIn,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = UserOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiJson(body): ApiJson<CreateUserIn>,
) -> Result<Response, ApiError> {
    let new = NewUser {
        email: body.email,
        password: Some(SecretString::from(body.password)),
        full_name: body.full_name,
        phone: body.phone,
        role: body.role,
        is_active: body.is_active,
        is_verified: body.is_verified,
        metadata: Default::default(),
        invited: false,
    };
    let user = s.core.admin_create_user(&actor, new, &client).await?;
    Ok((StatusCode::CREATED, Json(UserOut::from(&user))).into_response())
}

/// Any user, soft-deleted or not.
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:read"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get(
    State(s): State<AppState>,
    _: RequirePermission<perm::UsersRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<UserOut>, ApiError> {
    Ok(Json(UserOut::from(&s.core.admin_user(id).await?)))
}

/// Change any field of a user.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin", params(("id" = Uuid, Path)),
    request_body = UpdateUserIn, security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Email taken, or the last active admin"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateUserIn>,
) -> Result<Json<UserOut>, ApiError> {
    let patch = AdminUserPatch {
        email: body.email,
        password: body.password.map(SecretString::from),
        full_name: body.full_name,
        phone: body.phone,
        role: body.role,
        is_active: body.is_active,
        is_verified: body.is_verified,
        ..AdminUserPatch::default()
    };
    let user = s.core.admin_update_user(&actor, id, patch, &client).await?;
    Ok(Json(UserOut::from(&user)))
}

/// Delete a user for good, with the profile and sessions.
#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The last active admin"),
    ))]
pub async fn remove(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.admin_delete_user(&actor, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Undo a deletion by the account's owner, within `DELETED_RETENTION_DAYS`. The user
/// signs in again; earlier sessions stay revoked.
#[utoipa::path(post, path = "/v1/admin/users/{id}/restore", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`not_restorable`: not deleted, or deleted before the retention period"),
    ))]
pub async fn restore(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<UserOut>, ApiError> {
    let user = s.core.admin_restore_user(&actor, id, &client).await?;
    Ok(Json(UserOut::from(&user)))
}

/// Sign a user out everywhere.
#[utoipa::path(post, path = "/v1/admin/users/{id}/logout", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs sessions:write"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn logout(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::SessionsWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.admin_logout_user(&actor, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reset a user's MFA (every device lost): every factor and recovery code removed, every
/// session and token void.
#[utoipa::path(delete, path = "/v1/admin/users/{id}/mfa", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn reset_mfa(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.admin_reset_mfa(&actor, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One action on many users, in one transaction.
#[utoipa::path(post, path = "/v1/admin/users/bulk", tag = "admin", request_body = BulkIn,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = BulkOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs users:write"),
        (status = 404, body = ErrorBody, description = "An unknown user id; nothing changed"),
        (status = 409, body = ErrorBody, description = "It would remove the last active admin; nothing changed"),
        (status = 422, body = ErrorBody, description = "No ids, more than 1000, or an unknown role; nothing changed"),
    ))]
pub async fn bulk(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::UsersWrite>,
    ApiJson(body): ApiJson<BulkIn>,
) -> Result<Json<BulkOut>, ApiError> {
    let action = match body.action {
        BulkActionIn::Activate => BulkAction::Activate,
        BulkActionIn::Deactivate => BulkAction::Deactivate,
        BulkActionIn::Delete => BulkAction::Delete,
        BulkActionIn::SetRole => BulkAction::SetRole,
    };
    let affected = s.core.admin_bulk(&actor, action, body.ids, body.role, &client).await?;
    Ok(Json(BulkOut { affected }))
}
