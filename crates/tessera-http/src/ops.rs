//! Operations endpoints (SPEC §2.4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::state::AppState;
use crate::surface::Surface;

/// Liveness: touches nothing.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "`{\"status\":\"healthy\"}`", body = Object)))]
pub async fn health() -> Response {
    // A static body: this is the framework floor of the benchmark.
    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"status":"healthy"}"#).into_response()
}

/// The public keys access tokens are signed with (SPEC §2.4): with RS256, ES256 or
/// EdDSA the signing key's public half and every key of `JWT_PREVIOUS_PUBLIC_KEYS`, each
/// under its `kid`; with an HS algorithm none (a secret is never published). The OAuth
/// provider's key (SPEC §5.12) is there too, when it is another.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "A JSON Web Key Set: `{\"keys\":[{kty, kid, alg, use, key_ops, …}]}`", body = Object)))]
pub async fn jwks(State(s): State<AppState>) -> Response {
    let headers = [(axum::http::header::CACHE_CONTROL, "public, max-age=300")];
    (headers, Json(s.core.published_jwks())).into_response()
}

/// The same key set where the Supabase client looks for it.
#[utoipa::path(get, path = "/auth/v1/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "The key set of `/.well-known/jwks.json`", body = Object)))]
pub async fn supabase_jwks(state: State<AppState>) -> Response {
    jwks(state).await
}

/// Readiness: each dependency's state and latency; 503 when a required one is down.
#[utoipa::path(get, path = "/health/detailed", tag = "operations",
    responses(
        (status = 200, description = "Every required part is healthy", body = Object),
        (status = 503, description = "The database is unreachable", body = Object),
    ))]
pub async fn health_detailed(State(s): State<AppState>) -> Response {
    let (database, db_check) = match s.core.ping_database().await {
        Ok(latency) => {
            ("healthy", json!({ "status": "healthy", "latency_ms": (latency.as_secs_f64() * 1e6).round() / 1e3 }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "database health check failed");
            ("unhealthy", json!({ "status": "unhealthy", "error": "unreachable" }))
        }
    };
    let (redis, redis_check) = match s.core.kv.redis_health().await {
        None => ("disabled", json!({ "status": "disabled" })),
        Some(Ok(latency)) => {
            ("healthy", json!({ "status": "healthy", "latency_ms": (latency.as_secs_f64() * 1e6).round() / 1e3 }))
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "redis health check failed");
            ("unhealthy", json!({ "status": "unhealthy", "error": "unreachable" }))
        }
    };
    // The database is required; Redis is not (limits fall back to memory), so its loss
    // degrades the service but is no reason to take the node out of rotation.
    let healthy = database == "healthy";
    let overall = match (healthy, redis) {
        (false, _) => "unhealthy",
        (true, "unhealthy") => "degraded",
        _ => "healthy",
    };
    let body = json!({
        "status": overall,
        "database": database,
        "redis": redis,
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "database": db_check, "redis": redis_check },
    });
    if healthy {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "5")], Json(body)).into_response()
    }
}

/// The operations routes (the key set under `/auth/v1` is the Supabase surface's).
pub fn router(shared: &SharedLayers) -> Router<AppState> {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/health/detailed", get(health_detailed))
        .route("/.well-known/jwks.json", get(jwks));
    shared.api(routes, Surface::Ops, Csp::Strict)
}
