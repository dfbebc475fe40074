//! This surface's extractors: GoTrue's lenient body and query, its callers.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tessera_core::caller::Principal;
use tessera_core::domain::Error;

use super::error::GoTrueError;
use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::state::AppState;

/// A JSON body as GoTrue reads it: no body is `{}`, unknown fields are ignored,
/// anything unreadable (whitespace alone included), or not an object, is 400 `bad_json`.
pub struct SbJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for SbJson<T> {
    type Rejection = GoTrueError;

    async fn from_request(req: Request, state: &S) -> Result<Self, GoTrueError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| GoTrueError::from(ApiError::from(e)))?;
        // No body at all is `{}`; anything sent must be JSON (whitespace alone is not).
        let text = bytes.trim_ascii();
        let value: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(text).map_err(|e| {
                GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_json",
                    format!("Could not parse request body as JSON: {e}"),
                )
            })?
        };
        if !value.is_object() {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "The request body must be a JSON object",
            ));
        }
        serde_json::from_value(value).map(SbJson).map_err(|e| {
            GoTrueError::new(StatusCode::BAD_REQUEST, "bad_json", format!("Could not parse request body as JSON: {e}"))
        })
    }
}

/// The query string, read leniently: unknown parameters are ignored, an unreadable one is
/// 400 `validation_failed`.
pub struct SbQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for SbQuery<T> {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, GoTrueError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| SbQuery(q.0))
            .map_err(|e| GoTrueError::validation(format!("Could not read the query string: {}", e.body_text())))
    }
}

/// The signed-in caller of this surface (which, unlike the others, accepts an aal1
/// session of a user with MFA on: it is stepped up here).
pub struct SbAuth(pub Principal);

impl FromRequestParts<AppState> for SbAuth {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer_token(parts).ok_or(Error::NotAuthenticated)?;
        Ok(SbAuth(state.core.authenticate_supabase(token).await?))
    }
}

/// The caller of the admin API: a JWT signed with the server's key whose `role` is
/// `service_role` or `supabase_admin` (GoTrue's rule: no `sub`, `exp` or `aud` needed).
pub struct ServiceRole(pub tessera_core::caller::Actor);

impl FromRequestParts<AppState> for ServiceRole {
    type Rejection = GoTrueError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GoTrueError> {
        let token = bearer_token(parts).ok_or(Error::NotAuthenticated)?;
        match state.core.jwt.project_key_role(token)?.as_str() {
            "service_role" | "supabase_admin" => Ok(ServiceRole(tessera_core::caller::Actor::system())),
            _ => Err(Error::PermissionDenied.into()),
        }
    }
}
