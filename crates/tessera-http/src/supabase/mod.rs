//! The Supabase Auth (GoTrue) surface, `/auth/v1` (SPEC §2.3): GoTrue's paths, bodies,
//! answers and errors over the same services as `/v1` and Kreeda. This module holds
//! shapes, not policy: GoTrue's errors ([`error`]), what stands in front of the
//! surface ([`gateway`]), its extractors ([`extract`]), its user and session objects
//! ([`user`], [`session`]), and the handlers ([`auth`], [`factors`], [`passkeys`], [`admin`]).

pub mod admin;
pub mod auth;
pub mod doc;
pub mod error;
pub mod external;
pub mod extract;
pub mod factors;
pub mod gateway;
pub mod oauth_server;
pub mod passkeys;
pub mod session;
pub mod user;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tessera_core::limits::RateAction;

use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::state::AppState;
use crate::surface::Surface;
use crate::{ops, rate_limit};

/// The sign-in limit per IP on `/token`, for every grant but a refresh (refreshes are
/// not limited, as on the other surfaces). The grant is read from the query as the
/// handler reads it, decoded (`grant_type=passwor%64` is a password grant), and a query
/// the handler could not read either is counted too.
async fn password_grant_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let grant = axum::extract::Query::<auth::GrantQuery>::try_from_uri(req.uri()).ok().map(|q| q.0);
    if !grant.is_some_and(|g| g.is_refresh()) {
        rate_limit::per_ip(State((state, RateAction::Login)), req, next).await
    } else {
        next.run(req).await
    }
}

/// The `/auth/v1` surface: its routes, every other path under it, in the shared layers
/// and its [`gateway`].
pub fn router(state: &AppState, shared: &SharedLayers) -> Router<AppState> {
    let routes = routes(state).route("/auth/v1/.well-known/jwks.json", get(ops::supabase_jwks));
    shared
        .api(routes, Surface::Supabase, Csp::Strict)
        .merge(shared.rest_of(&["/auth/v1", "/auth/v1/", "/auth/v1/{*rest}"], Surface::Supabase, Csp::Strict))
        .layer(axum::middleware::from_fn_with_state(state.clone(), gateway::gateway))
}

/// The routes of `/auth/v1`.
fn routes(state: &AppState) -> Router<AppState> {
    let limit = |action| axum::middleware::from_fn_with_state((state.clone(), action), rate_limit::per_ip);
    Router::new()
        .route("/auth/v1/health", get(auth::health))
        .route("/auth/v1/settings", get(auth::settings))
        .route("/auth/v1/signup", post(auth::signup).route_layer(limit(RateAction::Register)))
        .route(
            "/auth/v1/token",
            post(auth::token).route_layer(axum::middleware::from_fn_with_state(state.clone(), password_grant_limit)),
        )
        .route("/auth/v1/user", get(auth::get_user).put(auth::update_user))
        .route("/auth/v1/logout", post(auth::logout))
        .route("/auth/v1/otp", post(auth::otp).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/magiclink", post(auth::otp).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/recover", post(auth::recover).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/verify", post(auth::verify).get(auth::verify_link).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/resend", post(auth::resend).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/reauthenticate", get(auth::reauthenticate))
        .route("/auth/v1/authorize", get(external::authorize).route_layer(limit(RateAction::Login)))
        .route(
            "/auth/v1/callback",
            get(external::callback).post(external::callback_form).route_layer(limit(RateAction::Verify)),
        )
        .route("/auth/v1/user/identities/authorize", get(external::link))
        .route("/auth/v1/user/identities/{id}", axum::routing::delete(external::unlink))
        .route("/auth/v1/factors", post(factors::enroll))
        .route("/auth/v1/factors/{id}", axum::routing::delete(factors::unenroll))
        .route("/auth/v1/factors/{id}/challenge", post(factors::challenge))
        .route("/auth/v1/factors/{id}/verify", post(factors::verify).route_layer(limit(RateAction::Verify)))
        .route("/auth/v1/admin/users", get(admin::list_users).post(admin::create_user))
        .route("/auth/v1/admin/users/{id}", get(admin::get_user).put(admin::update_user).delete(admin::delete_user))
        .route("/auth/v1/admin/users/{id}/factors", get(admin::list_factors))
        .route("/auth/v1/admin/users/{id}/factors/{factor_id}", axum::routing::delete(admin::delete_factor))
        .route("/auth/v1/passkeys", get(passkeys::list))
        .route("/auth/v1/passkeys/{id}", axum::routing::patch(passkeys::update).delete(passkeys::delete))
        .route("/auth/v1/passkeys/registration/options", post(passkeys::registration_options))
        .route("/auth/v1/passkeys/registration/verify", post(passkeys::registration_verify))
        .route(
            "/auth/v1/passkeys/authentication/options",
            post(passkeys::authentication_options).route_layer(limit(RateAction::Login)),
        )
        .route(
            "/auth/v1/passkeys/authentication/verify",
            post(passkeys::authentication_verify).route_layer(limit(RateAction::Verify)),
        )
        .route("/auth/v1/admin/users/{id}/passkeys", get(passkeys::admin_list))
        .route("/auth/v1/admin/users/{id}/passkeys/{passkey_id}", axum::routing::delete(passkeys::admin_delete))
        .route("/auth/v1/admin/generate_link", post(admin::generate_link))
        .route("/auth/v1/invite", post(admin::invite))
        .route("/auth/v1/admin/oauth/clients", get(oauth_server::list_clients).post(oauth_server::create_client))
        .route(
            "/auth/v1/admin/oauth/clients/{id}",
            get(oauth_server::get_client).put(oauth_server::update_client).delete(oauth_server::delete_client),
        )
        .route("/auth/v1/admin/oauth/clients/{id}/regenerate_secret", post(oauth_server::regenerate_secret))
        .route("/auth/v1/user/oauth/grants", get(oauth_server::list_grants).delete(oauth_server::revoke_grant))
        .route("/auth/v1/oauth/authorizations/{id}", get(oauth_server::authorization))
        .route("/auth/v1/oauth/authorizations/{id}/consent", post(oauth_server::consent))
}
