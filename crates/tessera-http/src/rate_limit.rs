//! Per-IP rate limits on routes (SPEC §5.4): every answer of a limited route carries
//! `X-RateLimit-*`; over the limit it is 429 with `Retry-After`, before the handler runs.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::domain::Error;
use tessera_core::kv::RateDecision;
use tessera_core::limits::RateAction;

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::state::AppState;

/// Adds the `X-RateLimit-*` headers; `X-RateLimit-Reset` is a Unix time in seconds.
pub fn add_headers(headers: &mut HeaderMap, d: &RateDecision) {
    let reset = chrono::Utc::now().timestamp().max(0) as u64 + d.reset_secs;
    headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

/// The middleware: counts the request against `action` for its client IP (not a loopback
/// client's with `RATE_LIMIT_EXEMPT_LOOPBACK`, development's default).
pub async fn per_ip(State((state, action)): State<(AppState, RateAction)>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ClientIp>();
    if state.core.settings.rate_limit_exempt_loopback && client.is_some_and(ClientIp::is_loopback) {
        return next.run(req).await;
    }
    let ip = client.map(ClientIp::limit_key).unwrap_or_else(|| "unknown".to_owned());
    match state.core.rate_limit(action, &ip).await {
        None => next.run(req).await,
        Some(d) if !d.allowed => {
            tracing::info!(action = ?action, "rate limited");
            if action == RateAction::Login {
                metrics::counter!("tessera_sign_ins_total", "outcome" => "rate_limited").increment(1);
            }
            let mut res = ApiError::from(Error::RateLimited { retry_after_secs: d.retry_after_secs }).into_response();
            add_headers(res.headers_mut(), &d);
            res
        }
        Some(d) => {
            let mut res = next.run(req).await;
            add_headers(res.headers_mut(), &d);
            res
        }
    }
}
