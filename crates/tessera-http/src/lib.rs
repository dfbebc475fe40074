//! tessera's HTTP surfaces. [`router`] builds the whole application, so tests and the
//! binary run the same thing: each surface's router, in the layers every surface
//! shares ([`layers`]) and its own, under the request id and the audit file.

pub mod admin;
pub mod client_ip;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod kreeda;
pub mod layers;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod permission;
pub mod provider;
pub mod rate_limit;
pub mod serve;
pub mod state;
pub mod supabase;
pub mod surface;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use tessera_core::Core;

pub use metrics::router as metrics_router;
pub use state::{AppState, BODY_LIMIT};

/// The whole application.
pub fn router(core: Arc<Core>) -> Router {
    let settings = core.settings.clone();
    let audit_file = core.audit_file.clone();
    let state = AppState { core };
    let shared = layers::SharedLayers::new(&settings);
    let mut app = shared
        .unclaimed()
        .merge(ops::router(&shared))
        .merge(pages::router(&state, &shared))
        .merge(v1::router(&state, &shared))
        .merge(kreeda::router(&state, &shared))
        .merge(supabase::router(&state, &shared))
        .merge(admin::router(&shared))
        .merge(provider::router(&state, &shared))
        .merge(console::router(&state, &shared));
    if settings.openapi_enabled {
        app = app.merge(openapi::router(settings.password_policy.clone(), &shared));
    }
    if settings.metrics_enabled {
        metrics::start_upkeep();
        if settings.metrics_addr.is_none() {
            app = app.merge(shared.around(metrics::routes(), surface::Surface::Ops, middleware::Csp::Strict));
        }
    }
    app.with_state(state).layer(axum::middleware::from_fn_with_state(audit_file, middleware::audit_file)).layer(
        axum::middleware::from_fn_with_state(Arc::new(settings.trusted_proxies.clone()), middleware::request_context),
    )
}
