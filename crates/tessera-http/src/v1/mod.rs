//! The native API, `/v1` (SPEC §2.1).

pub mod auth;
pub mod users;

use axum::routing::{get, patch, post};
use axum::Router;

use crate::AppState;

/// The `/v1` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/logout-all", post(auth::logout_all))
        .route("/v1/auth/me", get(auth::me))
        .route("/v1/auth/change-password", post(auth::change_password))
        .route("/v1/auth/sessions", get(auth::sessions))
        .route("/v1/auth/sessions/{id}", axum::routing::delete(auth::revoke_session))
        .route("/v1/users", post(users::register))
        .route("/v1/users/me", patch(users::update_me))
        .route("/v1/users/me/profile", get(users::profile).patch(users::update_profile))
        .route("/v1/users/{id}", get(users::get_user))
}
