//! What stands in front of this surface, as Supabase's gateway does: the API version
//! header, GoTrue's error shape on every answer, the `apikey` check.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::shaped;
use crate::state::AppState;

/// The API version whose error shape this surface speaks, sent on every answer.
pub const API_VERSION: &str = "2024-01-01";
/// The header naming it.
pub static API_VERSION_HEADER: HeaderName = HeaderName::from_static("x-supabase-api-version");

/// The layer around this surface's router: every answer carries
/// `X-Supabase-Api-Version`, and every error is in GoTrue's shape, also those of the
/// layers shared with the other surfaces (see [`shaped`]). With
/// `SUPABASE_REQUIRE_APIKEY`, a request without a valid `apikey` is refused first.
pub async fn gateway(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = match apikey_refusal(&state, &req) {
        Some(refusal) => refusal,
        None => shaped(next.run(req).await),
    };
    res.headers_mut().insert(API_VERSION_HEADER.clone(), HeaderValue::from_static(API_VERSION));
    res
}

/// The gateway's refusal of a request without a valid `apikey` (header or query), when
/// `SUPABASE_REQUIRE_APIKEY` is on; the JWKS, `/health` and the pages a browser navigates to
/// (`/authorize`, `/callback`, a mail's `GET /verify`) stay open.
fn apikey_refusal(state: &AppState, req: &Request) -> Option<Response> {
    if !state.core.settings.supabase_require_apikey {
        return None;
    }
    let path = req.uri().path();
    if path.ends_with("/.well-known/jwks.json")
        || path == "/auth/v1/health"
        // A browser comes to these by navigating (a link in a mail, to and from a provider),
        // with no key to show: Supabase's gateway leaves them open too.
        || path == "/auth/v1/callback"
        || path == "/auth/v1/authorize"
        || (path == "/auth/v1/verify" && req.method() == axum::http::Method::GET)
        || req.method() == axum::http::Method::OPTIONS
    {
        return None;
    }
    let from_header = req.headers().get("apikey").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let from_query = || {
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.get("apikey").cloned())
    };
    let body = match from_header.or_else(from_query) {
        None => json!({
            "message": "No API key found in request",
            "hint": "No `apikey` request header or url param was found.",
        }),
        Some(key) => match state.core.jwt.project_key_role(key.trim()) {
            Ok(role) if role == "anon" || role == "service_role" => return None,
            _ => {
                json!({ "message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key." })
            }
        },
    };
    Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
}
