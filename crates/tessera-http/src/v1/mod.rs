//! The native API, `/v1` (SPEC §2.1).

pub mod auth;
pub mod mfa;
pub mod oauth;
pub mod passkeys;
pub mod phone;
pub mod users;

use axum::routing::{get, patch, post};
use axum::Router;

use tessera_core::limits::RateAction;

use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::rate_limit;
use crate::state::AppState;
use crate::surface::Surface;

/// The `/v1` surface.
pub fn router(state: &AppState, shared: &SharedLayers) -> Router<AppState> {
    shared.api(routes(state), Surface::V1, Csp::Strict)
}

/// The `/v1` routes.
fn routes(state: &AppState) -> Router<AppState> {
    let limit = |action| axum::middleware::from_fn_with_state((state.clone(), action), rate_limit::per_ip);
    Router::new()
        .route("/v1/auth/login", post(auth::login).route_layer(limit(RateAction::Login)))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/logout-all", post(auth::logout_all))
        .route("/v1/auth/me", get(auth::me))
        .route("/v1/auth/change-password", post(auth::change_password))
        .route("/v1/auth/sessions", get(auth::sessions))
        .route("/v1/auth/verify-email", post(auth::verify_email).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/verify-email/resend", post(auth::resend_verification).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/password-reset", post(auth::password_reset).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/otp", post(phone::otp))
        .route("/v1/auth/otp/verify", post(phone::otp_verify).route_layer(limit(RateAction::Verify)))
        .route(
            "/v1/auth/password-reset/confirm",
            post(auth::password_reset_confirm).route_layer(limit(RateAction::Verify)),
        )
        .route("/v1/auth/sessions/{id}", axum::routing::delete(auth::revoke_session))
        .route("/v1/auth/mfa", get(mfa::list))
        .route("/v1/auth/mfa/totp", post(mfa::enroll))
        // Its password or code is limited and counted where it is checked (Core::check_again).
        .route("/v1/auth/mfa/totp/{id}", axum::routing::delete(mfa::remove))
        .route("/v1/auth/mfa/totp/{id}/activate", post(mfa::activate).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/mfa/recovery-codes", post(mfa::recovery_codes).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/mfa/verify", post(mfa::verify).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/mfa/webauthn/options", post(passkeys::mfa_options).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/passkeys", get(passkeys::list))
        .route("/v1/auth/passkeys/{id}", patch(passkeys::rename).delete(passkeys::remove))
        .route("/v1/auth/passkeys/registration/options", post(passkeys::registration_options))
        .route("/v1/auth/passkeys/registration/verify", post(passkeys::registration_verify))
        // A sign-in starts here (a challenge row each): limited like a password sign-in.
        .route(
            "/v1/auth/passkeys/authentication/options",
            post(passkeys::authentication_options).route_layer(limit(RateAction::Login)),
        )
        .route(
            "/v1/auth/passkeys/authentication/verify",
            post(passkeys::authentication_verify).route_layer(limit(RateAction::Verify)),
        )
        .route("/v1/users", post(users::register).route_layer(limit(RateAction::Register)))
        .route("/v1/users/me", patch(users::update_me).delete(users::delete_me))
        .route("/v1/users/me/export", get(users::export))
        .route("/v1/users/me/oauth/grants", get(users::oauth_grants).delete(users::revoke_oauth_grant))
        .route("/v1/users/me/identities", get(oauth::list))
        .route("/v1/users/me/identities/{id}", axum::routing::delete(oauth::unlink))
        .route("/v1/users/me/identities/{provider}/link", get(oauth::link))
        .route("/v1/auth/oauth/token", post(oauth::token).route_layer(limit(RateAction::Verify)))
        .route("/v1/auth/oauth/{provider}", get(oauth::start).route_layer(limit(RateAction::Login)))
        .route("/v1/users/me/profile", get(users::profile).patch(users::update_profile))
        .route("/v1/users/{id}", get(users::get_user))
}
