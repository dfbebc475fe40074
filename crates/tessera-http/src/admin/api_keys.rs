//! `/v1/admin/api-keys`: create (the key is shown once), list, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::api_keys::{scopes_of, NewApiKey};
use tessera_core::domain::Permission;
use tessera_core::entity::api_key;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Client};
use crate::permission::{perm, RequirePermission};
use crate::state::AppState;

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKeyIn {
    /// What the key is for, 1 to 100 characters.
    pub name: String,
    /// Permissions, e.g. `["users:read", "analytics:read"]`; only ones the caller holds.
    pub scopes: Vec<String>,
    /// Optional expiry (RFC 3339), in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&api_key::Model> for ApiKeyOut {
    fn from(k: &api_key::Model) -> Self {
        Self {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: scopes_of(k).list().into_iter().map(|p| Permission::as_str(p).to_owned()).collect(),
            created_by: k.created_by,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A key just created: `key` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    /// The secret: `tsk_` + 43 characters. Store it now.
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyOut,
}

/// Every key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyOut>,
}

/// Create a key.
#[utoipa::path(post, path = "/v1/admin/api-keys", tag = "admin", request_body = CreateApiKeyIn,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = ApiKeyCreatedOut),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "Needs api_keys:write, and every scope asked for"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::ApiKeysWrite>,
    ApiJson(body): ApiJson<CreateApiKeyIn>,
) -> Result<Response, ApiError> {
    let new = NewApiKey { name: body.name, scopes: body.scopes, expires_at: body.expires_at };
    let created = s.core.create_api_key(&actor, new, &client).await?;
    let out = ApiKeyCreatedOut { key: created.key, api_key: ApiKeyOut::from(&created.row) };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Every key, newest first, never with its secret.
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs api_keys:read"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    _: RequirePermission<perm::ApiKeysRead>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = s.core.list_api_keys().await?;
    Ok(Json(ApiKeyList { items: keys.iter().map(ApiKeyOut::from).collect() }))
}

/// Revoke a key at once.
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admin", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs api_keys:write"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn revoke(
    State(s): State<AppState>,
    Client(client): Client,
    RequirePermission(actor, _): RequirePermission<perm::ApiKeysWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    s.core.revoke_api_key(&actor, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
