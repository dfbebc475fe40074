//! The permission a route requires, named by a type: `RequirePermission<perm::UsersRead>`
//! accepts an admin's access token (permissions from the role) or an API key
//! (`Authorization: Bearer tsk_…` or `X-API-Key`, permissions from its scopes, every use
//! audited). The administration API asks for it; the console's pages name theirs the
//! same way.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use tessera_core::api_keys::KEY_PREFIX;
use tessera_core::caller::Actor;
use tessera_core::domain::{Error, Permission};

use crate::error::ApiError;
use crate::extract::{bearer_token, Client};
use crate::state::AppState;

/// A permission a route requires, named by a type.
pub trait RequiredPermission: Send + Sync + 'static {
    /// The permission.
    const PERMISSION: Permission;
}

/// One type per permission, for [`RequirePermission`].
pub mod perm {
    use super::{Permission, RequiredPermission};

    macro_rules! permission_types {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Requires `Permission::", stringify!($name), "`.")]
            pub struct $name;
            impl RequiredPermission for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    permission_types!(
        UsersRead,
        UsersWrite,
        SessionsWrite,
        AuditRead,
        AnalyticsRead,
        ApiKeysRead,
        ApiKeysWrite,
        OAuthClientsRead,
        OAuthClientsWrite
    );
}

/// The caller, if it holds `P`: 401 without credentials or with bad ones, 403 when the
/// role or the key's scopes lack `P`.
pub struct RequirePermission<P>(pub Actor, pub(crate) PhantomData<P>);

/// The API key of a request: `X-API-Key`, or a bearer token that starts with `tsk_`.
fn api_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-api-key") {
        return Some(v.to_str().unwrap_or_default().trim().to_owned());
    }
    bearer_token(parts).filter(|t| t.starts_with(KEY_PREFIX)).map(str::to_owned)
}

impl<P: RequiredPermission> FromRequestParts<AppState> for RequirePermission<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let needed = P::PERMISSION;
        let actor = match api_key(parts) {
            Some(key) => {
                let Client(client) = Client::from_request_parts(parts, state).await?;
                let path = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned());
                let route = format!("{} {}", parts.method, path.as_deref().unwrap_or(parts.uri.path()));
                state.core.authenticate_api_key(&key, needed, &route, &client).await?
            }
            None => {
                let token = bearer_token(parts).ok_or(Error::NotAuthenticated)?;
                let actor = state.core.admin_actor(token).await?;
                actor.require(needed)?;
                actor
            }
        };
        Ok(RequirePermission(actor, PhantomData))
    }
}
