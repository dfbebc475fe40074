//! Extractors: JSON, query and path with our error shape; the authenticated caller;
//! who the client is.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tessera_core::caller::Principal;
use tessera_core::domain::Error;
use tessera_core::ClientInfo;

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::AppState;
use crate::surface::Surface;

/// A JSON object body, with every rejection in the SPEC §6 shape: a missing or wrong
/// content type or malformed JSON is 400, a body that is not an object or has missing
/// or mistyped fields is 422, a body over the limit is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
        if !json {
            return Err(ApiError::bad_request("Send the body as JSON with Content-Type: application/json."));
        }
        let bytes = Bytes::from_request(req, state).await?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            None => return Err(ApiError::bad_request("The body is empty; send a JSON object.")),
            Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() => {
                return Err(Error::field("body", "not_an_object", "The body must be a JSON object.").into());
            }
            Some(_) => return Err(ApiError::bad_request("The body is not valid JSON.")),
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// An optional JSON object body (for routes whose body may be left out): no body or
/// `null` is `None`; otherwise it is read as [`ApiJson`] reads it (400 for what is not
/// JSON, whitespace alone included; 422 for what is not an object or has mistyped fields).
pub fn optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    let text = body.trim_ascii();
    if body.is_empty() || text == b"null" {
        return Ok(None);
    }
    if text.first() != Some(&b'{') {
        return Err(if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok() {
            Error::field("body", "not_an_object", "The body must be a JSON object.").into()
        } else {
            ApiError::bad_request("The body is not valid JSON.")
        });
    }
    let axum::Json(value) = axum::Json::<T>::from_bytes(text)?;
    Ok(Some(value))
}

/// `axum::extract::Query` whose rejections answer in the SPEC §6 shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` whose rejections answer 404 in the SPEC §6 shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Whether a browser says the request comes from this server's own pages
/// (`Sec-Fetch-Site: same-origin`); a request without the header is not a browser's
/// (nor carries a browser's cookies). A page of another origin, even of the same site
/// (`same-site`: an app on a sibling subdomain), posts nothing here.
pub fn from_own_pages(headers: &axum::http::HeaderMap) -> bool {
    headers.get("sec-fetch-site").is_none_or(|v| v == "same-origin" || v == "none")
}

/// An HttpOnly `Set-Cookie` value sent to `path` only (`Secure` with `secure`);
/// `max_age` 0 deletes it.
pub fn http_only_cookie(
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: i64,
    secure: bool,
) -> Option<axum::http::HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = max_age.max(0);
    axum::http::HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    ))
    .ok()
}

/// Adds `Set-Cookie` headers to an answer.
pub fn with_cookies(
    mut res: axum::response::Response,
    cookies: impl IntoIterator<Item = axum::http::HeaderValue>,
) -> axum::response::Response {
    for c in cookies {
        res.headers_mut().append(axum::http::header::SET_COOKIE, c);
    }
    res
}

/// The value of a request cookie, if set and not empty.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The bearer token of the request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The authenticated caller: a valid access token (SPEC §4.1), or 401.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(Error::NotAuthenticated)?;
        Ok(Auth(state.core.authenticate(token).await?))
    }
}

impl OptionalFromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        match bearer_token(parts) {
            None => Ok(None),
            Some(token) => Ok(Some(Auth(state.core.authenticate(token).await?))),
        }
    }
}

/// Who is calling: socket IP, user agent and request id.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let client_ip = parts.extensions.get::<ClientIp>();
        let ip = client_ip.map(|c| c.0.to_string());
        let limit_key = client_ip.map(ClientIp::limit_key);
        let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let surface = Surface::of(parts).client_surface();
        Ok(Client(ClientInfo { ip, user_agent, request_id, limit_key, surface }))
    }
}
