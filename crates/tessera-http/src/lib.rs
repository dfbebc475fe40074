//! tessera's HTTP surfaces. [`router`] builds the whole application, so tests and the
//! binary run the same thing.

pub mod admin;
pub mod client_ip;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod kreeda;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod rate_limit;
pub mod serve;
pub mod supabase;
pub mod v1;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tessera_core::limits::RateAction;
use tessera_core::Core;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
}

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

fn cors(origins: &[String]) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-api-key"),
            // What the Supabase clients send.
            HeaderName::from_static("apikey"),
            HeaderName::from_static("x-client-info"),
            HeaderName::from_static("x-supabase-api-version"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            header::RETRY_AFTER,
            HeaderName::from_static("x-supabase-api-version"),
            HeaderName::from_static("x-total-count"),
            header::LINK,
        ])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        // Development only (production refuses it): any origin, without credentials.
        base.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> =
            origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()).collect();
        // The console's cookies must never serve another origin's scripts, however
        // trusted: its pages answer no cross-origin request.
        base.allow_origin(AllowOrigin::predicate(move |origin, parts| {
            !console::is_console_path(parts.uri.path()) && list.contains(origin)
        }))
        .allow_credentials(true)
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::from(tessera_core::domain::Error::Internal("panic".to_owned())).into_response()
}

/// The answer when a request, its body included, is not complete within
/// `HTTP_BODY_TIMEOUT`: 408, and the connection is closed.
async fn request_timed_out(_: tower::BoxError) -> Response {
    let mut res = ApiError::http(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "RequestTimeout",
        "request_timeout",
        "The request was not complete in time.",
    )
    .into_response();
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::http(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method_not_allowed",
        "Method not allowed.",
    )
}

/// `GET /metrics` alone: merged into the main router, or served on `METRICS_ADDR`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::render)).with_state(state)
}

/// The whole application.
pub fn router(core: Arc<Core>) -> Router {
    let settings = core.settings.clone();
    let audit_file = core.audit_file.clone();
    let proxies = Arc::new(settings.trusted_proxies.clone());
    let state = AppState { core };
    let metrics_state = state.clone();
    let surface_state = state.clone();
    let verify_limit = || axum::middleware::from_fn_with_state((state.clone(), RateAction::Verify), rate_limit::per_ip);
    let mut app = Router::new()
        .route("/health", get(ops::health))
        .route("/health/detailed", get(ops::health_detailed))
        .route("/.well-known/jwks.json", get(ops::jwks))
        .route("/auth/v1/.well-known/jwks.json", get(ops::supabase_jwks))
        .route(
            "/verify-email",
            post(pages::verify_email_submit).route_layer(verify_limit()).get(pages::verify_email_form),
        )
        .route(
            "/reset-password",
            post(pages::reset_password_submit).route_layer(verify_limit()).get(pages::reset_password_form),
        )
        .route("/assets/tessera.css", get(pages::stylesheet))
        .merge(v1::routes(&state))
        .merge(kreeda::routes(&state))
        .merge(supabase::routes(&state))
        .merge(admin::routes())
        .merge(console::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if settings.openapi_enabled {
        let policy = settings.password_policy.clone();
        app = app
            .route("/openapi.json", get(move || openapi::served(policy.clone())))
            .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")));
    }
    if settings.metrics_enabled {
        metrics::start_upkeep();
        if settings.metrics_addr.is_none() {
            app = app.merge(metrics_router(metrics_state.clone()));
        }
        app = app.layer(axum::middleware::from_fn(metrics::track));
    }
    app.layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(request_timed_out))
                .layer(tower::timeout::TimeoutLayer::new(settings.http_body_timeout)),
        )
        .layer(axum::middleware::from_fn(middleware::announced_body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors(&settings.cors_origins))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(settings.allowed_hosts.clone()),
            middleware::allowed_hosts,
        ))
        .layer(axum::middleware::from_fn_with_state(settings.secure_cookies, middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(surface_state, supabase::surface_layer))
        .layer(axum::middleware::from_fn_with_state(audit_file, middleware::audit_file))
        .layer(axum::middleware::from_fn_with_state(proxies, middleware::request_context))
}
