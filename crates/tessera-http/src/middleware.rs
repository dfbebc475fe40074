//! Request ids, access logs, security headers and allowed hosts.

use std::sync::Arc;
use std::time::Instant;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use tessera_core::domain::Cidr;

use crate::client_ip::{self, ClientIp};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{ApiError, REQUEST_ID};
use crate::state::BODY_LIMIT;

/// The id of a request, in its extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

fn sane_id(headers: &HeaderMap) -> Option<String> {
    [&X_REQUEST_ID, &X_CORRELATION_ID].into_iter().find_map(|name| {
        let v = headers.get(name)?.to_str().ok()?.trim();
        let ok =
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        ok.then(|| v.to_owned())
    })
}

/// Gives every request an id (a sane incoming `X-Request-ID`/`X-Correlation-ID`, or a
/// new UUIDv7), runs it inside a span carrying that id, echoes it, and writes one access
/// log line. Only the path is logged: never the query, headers or body.
pub async fn request_context(State(proxies): State<Arc<Vec<Cidr>>>, mut req: Request, next: Next) -> Response {
    let id = sane_id(req.headers()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    if let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
        let ip = client_ip::resolve(peer, req.headers(), &proxies);
        req.extensions_mut().insert(ClientIp(ip));
    }
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = Instant::now();
    let mut res = REQUEST_ID.scope(id.clone(), next.run(req).instrument(span.clone())).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let status = res.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_ms = ms, "request failed");
        } else {
            tracing::info!(status, latency_ms = ms, "request");
        }
    });
    res
}

/// The Content-Security-Policy of a router's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csp {
    /// Nothing may load: the APIs, and every page without a policy of its own.
    Strict,
    /// The console: its own stylesheet and script only (the script fetches the passkey
    /// sign-in's challenge from the console); charts are inline SVG.
    Console,
    /// The link pages' forms: their stylesheet only.
    LinkPages,
    /// The OAuth provider's sign-in and consent pages: their stylesheet and script (the
    /// passkey sign-in), a client's logo over https; forms may lead on to any client's
    /// redirect URI.
    ProviderPages,
    /// The Swagger UI.
    SwaggerUi,
    /// A path no router claims: the Swagger UI's policy under `/docs` (as when it is
    /// served there), else `Strict`.
    Unclaimed,
}

impl Csp {
    fn value(self, path: &str) -> &'static str {
        match self {
            Csp::SwaggerUi => {
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            }
            Csp::Unclaimed if path.starts_with("/docs") => Csp::SwaggerUi.value(path),
            Csp::Console => {
                "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            }
            Csp::LinkPages => {
                "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            }
            Csp::ProviderPages => {
                "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'"
            }
            Csp::Strict | Csp::Unclaimed => {
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            }
        }
    }
}

/// Security headers on every response, with the CSP of the router that answers.
pub async fn security_headers(State((secure, csp)): State<(bool, Csp)>, req: Request, next: Next) -> Response {
    let csp = csp.value(req.uri().path());
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    if secure {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// With `ALLOWED_HOSTS` set, answers 400 to any other Host header. An entry is a host
/// (any port) or a `host:port`, as the header carries them.
pub async fn allowed_hosts(State(hosts): State<Arc<Vec<String>>>, req: Request, next: Next) -> Response {
    if !hosts.is_empty() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or_default()
            .trim();
        let name = match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        };
        if !hosts.iter().any(|h| h == "*" || h.eq_ignore_ascii_case(name) || h.eq_ignore_ascii_case(host)) {
            return ApiError::bad_request("Invalid Host header.").into_response();
        }
    }
    next.run(req).await
}

/// Runs the request so that the audit events it records also go to the node's audit
/// file (`AUDIT_LOG_DIR`), when there is one.
pub async fn audit_file(
    State(file): State<Option<Arc<tessera_core::audit::AuditFile>>>,
    req: Request,
    next: Next,
) -> Response {
    tessera_core::audit::with_audit_file(file, next.run(req)).await
}

/// A body announced (`Content-Length`) larger than [`BODY_LIMIT`] is refused with
/// 413 at once, before any of it is read, and the connection is closed.
pub async fn announced_body_limit(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT as u64) {
        let mut res = ApiError::http(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "payload_too_large",
            "The request body is too large.",
        )
        .into_response();
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    next.run(req).await
}
