//! The admin console, `/admin` (issue 19): server-rendered pages over the same core
//! services, permissions and audit as the admin API (SPEC §2.1 Admin, §5.7, §5.9).
//!
//! - The session is an ordinary tessera session held in cookies scoped to `/admin`
//!   (HttpOnly, SameSite=Strict, Secure unless `SECURE_COOKIES=false`): its access token,
//!   refreshed through its refresh token when it expires. Revoking the session, or
//!   deactivating the admin, ends the console too.
//! - Every page names the permission it needs as a type, like the API's
//!   `RequirePermission`: a signed-in user without it gets a 403 page.
//! - Every form carries a CSRF token, a MAC of the session's id under the server's key
//!   ([`Core::console_csrf`](tessera_core::Core::console_csrf)); the sign-in forms, before
//!   any session, a random token also set as a cookie.
//! - Templates are compiled in (`maud`, escaping by default); the stylesheet and the one
//!   small script are embedded and served under names holding their hash. The pages
//!   work without the script (only the passkey sign-in needs it, WebAuthn being a
//!   browser API); the CSP allows no inline script or style.

pub(crate) mod assets;
mod audit;
mod clients;
mod dashboard;
mod extract;
mod keys;
mod page;
mod session;
mod sign_in;
mod users;

use axum::routing::{get, post};
use axum::Router;
use tessera_core::limits::RateAction;

use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::rate_limit;
use crate::state::AppState;
use crate::surface::Surface;

/// The console: its routes, every other path under `/admin`, in the shared layers (the
/// console's CSP, no cross-origin answers).
pub fn router(state: &AppState, shared: &SharedLayers) -> Router<AppState> {
    shared.api(routes(state), Surface::Console, Csp::Console).merge(shared.rest_of(
        &["/admin/", "/admin/{*rest}"],
        Surface::Console,
        Csp::Console,
    ))
}

/// The `/admin` routes.
fn routes(state: &AppState) -> Router<AppState> {
    let login_limit = axum::middleware::from_fn_with_state((state.clone(), RateAction::Login), rate_limit::per_ip);
    let verify_limit = axum::middleware::from_fn_with_state((state.clone(), RateAction::Verify), rate_limit::per_ip);
    Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/sign-in", post(sign_in::submit).route_layer(login_limit.clone()).get(sign_in::form))
        .route("/admin/sign-in/mfa", post(sign_in::mfa_submit).route_layer(verify_limit.clone()).get(sign_in::mfa_form))
        .route("/admin/sign-in/passkey/options", post(sign_in::passkey_options).route_layer(login_limit))
        .route("/admin/sign-in/passkey", post(sign_in::passkey_submit).route_layer(verify_limit))
        .route("/admin/sign-out", post(sign_in::sign_out))
        .route("/admin/users", get(users::list))
        .route("/admin/users/bulk", post(users::bulk_confirm))
        .route("/admin/users/bulk/apply", post(users::bulk_apply))
        .route("/admin/users/{id}", get(users::page))
        .route("/admin/users/{id}/delete", get(users::delete_confirm).post(users::delete))
        .route("/admin/users/{id}/{action}", post(users::act))
        .route("/admin/users/{id}/sessions/{sid}/revoke", post(users::revoke_session))
        .route("/admin/users/{id}/passkeys/{pid}/remove", post(users::remove_passkey))
        .route("/admin/audit", get(audit::page))
        .route("/admin/api-keys", get(keys::page).post(keys::create))
        .route("/admin/api-keys/{id}/revoke", post(keys::revoke))
        .route("/admin/oauth-clients", get(clients::page).post(clients::create))
        .route("/admin/oauth-clients/{id}/secret", post(clients::new_secret))
        .route("/admin/oauth-clients/{id}/delete", post(clients::delete))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), session::session_layer))
        .route("/admin/assets/{file}", get(assets::asset))
}
