//! Extractors: JSON, query and path with our error shape; the authenticated caller;
//! who the client is.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use tessera_core::auth::Principal;
use tessera_core::domain::Error;
use tessera_core::ClientInfo;

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::AppState;

/// `axum::Json` whose rejections answer in the SPEC §6 shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` whose rejections answer in the SPEC §6 shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` whose rejections answer 404 in the SPEC §6 shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

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
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        Ok(Client(ClientInfo { ip, user_agent, request_id }))
    }
}
