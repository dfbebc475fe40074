//! Operations endpoints (SPEC §2.4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::AppState;

/// Liveness: touches nothing.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "`{\"status\":\"healthy\"}`", body = Object)))]
pub async fn health() -> Response {
    // A static body: this is the framework floor of the benchmark.
    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"status":"healthy"}"#).into_response()
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
    let healthy = database == "healthy";
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "database": database,
        "redis": "disabled",
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "database": db_check, "redis": { "status": "disabled" } },
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}
