//! The layers every surface shares, put around each surface's router by that router:
//! metrics, body limits, the timeout, panics, CORS, allowed hosts, security headers, and
//! the [`Surface`] marker. What differs between surfaces (the CSP, whether other
//! origins are answered) is said by the router, never read from the path.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use tessera_core::settings::Settings;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;
use crate::metrics;
use crate::middleware::{self, Csp};
use crate::state::{AppState, BODY_LIMIT};
use crate::surface::Surface;

/// What the shared layers are built from.
#[derive(Clone)]
pub struct SharedLayers {
    cors_origins: Arc<Vec<String>>,
    allowed_hosts: Arc<Vec<String>>,
    secure_cookies: bool,
    body_timeout: Duration,
    metrics: bool,
}

impl SharedLayers {
    pub fn new(settings: &Settings) -> Self {
        SharedLayers {
            cors_origins: Arc::new(settings.cors_origins.clone()),
            allowed_hosts: Arc::new(settings.allowed_hosts.clone()),
            secure_cookies: settings.secure_cookies,
            body_timeout: settings.http_body_timeout,
            metrics: settings.metrics_enabled,
        }
    }

    /// A surface's routes, with the API's answer to a method a route does not serve
    /// (405 in the SPEC §6 shape), then [`SharedLayers::around`].
    pub fn api(&self, routes: Router<AppState>, surface: Surface, csp: Csp) -> Router<AppState> {
        self.around(routes.method_not_allowed_fallback(method_not_allowed), surface, csp)
    }

    /// The shared layers around `routes`, and the surface's marker.
    pub fn around(&self, routes: Router<AppState>, surface: Surface, csp: Csp) -> Router<AppState> {
        self.stack(routes, surface.allows_other_origins(), csp).layer(Extension(surface))
    }

    /// Every other path under a surface's prefix (`paths`: the prefix, with a `/`, and
    /// `{*rest}` after it): 404 in the surface's layers, counted as `unmatched` like a
    /// path no router claims.
    pub fn rest_of(&self, paths: &[&str], surface: Surface, csp: Csp) -> Router<AppState> {
        let routes = paths.iter().fold(Router::new(), |r, path| r.route(path, any(not_found)));
        self.around(routes, surface, csp).layer(axum::middleware::from_fn(unmatched))
    }

    /// The answer to a path no surface claims: 404, in the shared layers.
    pub fn unclaimed(&self) -> Router<AppState> {
        self.stack(Router::new().fallback(not_found), true, Csp::Unclaimed)
    }

    /// Each route is counted, limited and timed, then its answer gets the CORS and
    /// security headers; a host not allowed is refused first.
    fn stack(&self, routes: Router<AppState>, other_origins: bool, csp: Csp) -> Router<AppState> {
        let routes = if self.metrics { routes.layer(axum::middleware::from_fn(metrics::track)) } else { routes };
        routes
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(
                tower::ServiceBuilder::new()
                    .layer(axum::error_handling::HandleErrorLayer::new(request_timed_out))
                    .layer(tower::timeout::TimeoutLayer::new(self.body_timeout)),
            )
            .layer(axum::middleware::from_fn(middleware::announced_body_limit))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(cors(&self.cors_origins, other_origins))
            .layer(axum::middleware::from_fn_with_state(self.allowed_hosts.clone(), middleware::allowed_hosts))
            .layer(axum::middleware::from_fn_with_state((self.secure_cookies, csp), middleware::security_headers))
    }
}

/// A route that only stands for "no route here" is counted as the fallback is.
async fn unmatched(mut req: Request, next: Next) -> Response {
    req.extensions_mut().remove::<MatchedPath>();
    next.run(req).await
}

fn cors(origins: &[String], other_origins: bool) -> CorsLayer {
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
        base.allow_origin(AllowOrigin::predicate(move |origin, _| other_origins && list.contains(origin)))
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
        StatusCode::REQUEST_TIMEOUT,
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
    ApiError::http(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "method_not_allowed", "Method not allowed.")
}
