//! The administration API, `/v1/admin` (SPEC §2.1 Admin, §5.7, §5.9). Every route names
//! the permission it needs as a type: `RequirePermission<perm::UsersRead>` accepts an
//! admin's access token (permissions from the role) or an API key (`Authorization:
//! Bearer tsk_…` or `X-API-Key`, permissions from its scopes, every use audited).
//! API keys are accepted here only: elsewhere a `tsk_` bearer is an invalid token.

pub mod api_keys;
pub mod oauth_clients;
pub mod reports;
pub mod users;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::state::AppState;
use crate::surface::Surface;

/// The `/v1/admin` routes, on the native API's surface.
pub fn router(shared: &SharedLayers) -> Router<AppState> {
    shared.api(routes(), Surface::V1, Csp::Strict)
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/users", get(users::list).post(users::create))
        .route("/v1/admin/users/bulk", post(users::bulk))
        .route("/v1/admin/users/{id}", get(users::get).patch(users::update).delete(users::remove))
        .route("/v1/admin/users/{id}/logout", post(users::logout))
        .route("/v1/admin/users/{id}/restore", post(users::restore))
        .route("/v1/admin/users/{id}/mfa", delete(users::reset_mfa))
        .route("/v1/admin/users/{id}/passkeys", get(crate::v1::passkeys::admin_list))
        .route("/v1/admin/users/{id}/passkeys/{pid}", delete(crate::v1::passkeys::admin_remove))
        .route("/v1/admin/analytics", get(reports::analytics))
        .route("/v1/admin/audit", get(reports::audit))
        .route("/v1/admin/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/v1/admin/api-keys/{id}", delete(api_keys::revoke))
        .route("/v1/admin/oauth/clients", get(oauth_clients::list).post(oauth_clients::create))
        .route(
            "/v1/admin/oauth/clients/{id}",
            get(oauth_clients::get).patch(oauth_clients::update).delete(oauth_clients::remove),
        )
        .route("/v1/admin/oauth/clients/{id}/regenerate-secret", post(oauth_clients::regenerate_secret))
}
