//! tessera as an OAuth 2.1 and OpenID Connect provider (SPEC §5.12): other applications
//! ("clients") send their users here to sign in, and get back a code they exchange for
//! an ID token, an access token of their own and, with `offline_access`, a refresh token.
//!
//! - A client's session is a tessera session (`sessions.oauth_client_id`): listed,
//!   revocable, ended by logout-all, a password change or deactivation. Its refresh token
//!   is sealed like every other, under a key derived for that client alone, so that a
//!   token of one client opens nothing for another, nor on tessera's own refresh.
//! - The access tokens handed to clients are RFC 9068 JWTs (`typ: at+jwt`) signed with
//!   the provider's asymmetric key; tessera's own surfaces refuse them (their `type` is
//!   not `access`), and userinfo and introspection check their session at every call.
//! - The browser's sign-in at the provider is an ordinary tessera session too, named by
//!   a MAC'd cookie scoped to `/oauth`.

pub mod authorize;
pub mod clients;
pub mod keys;
pub mod token;

pub use keys::Provider;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tessera_domain::Error;
use tessera_store::entity::{oauth_client, session, user};
use uuid::Uuid;

use crate::app::Core;

/// The scopes the provider knows.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "phone", "offline_access"];
/// How long a code may wait to be exchanged.
pub const CODE_TTL_SECS: i64 = 60;
/// How long an authorization request may wait for sign-in and consent.
pub const REQUEST_TTL_SECS: i64 = 600;
/// Where a sign-in with another provider, started on the provider's sign-in page,
/// comes back to (with `?code=`).
pub const EXTERNAL_RETURN: &str = "/oauth/sign-in/external/done";

/// An OAuth error (RFC 6749 §5.2, RFC 6750, RFC 7009, RFC 7591): the `error` code and a
/// sentence for `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
    /// Seconds to wait, for `slow_down` (a rate limit).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { error, description: description.into(), retry_after: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }

    pub fn invalid_client() -> OAuthError {
        OAuthError::new("invalid_client", "Client authentication failed.")
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> OAuthError {
        match e {
            Error::RateLimited { retry_after_secs } => OAuthError {
                retry_after: Some(retry_after_secs),
                ..OAuthError::new("slow_down", "Too many requests; try again later.")
            },
            Error::Overloaded { .. } | Error::Unavailable(_) => {
                OAuthError::new("temporarily_unavailable", "The server is busy or a required service is unavailable.")
            }
            // Not an OAuth error code: the endpoints answer 404, as every route of a
            // disabled feature does.
            Error::OAuthServerDisabled => OAuthError::new("not_found", e.to_string()),
            Error::Internal(cause) => {
                tracing::error!(%cause, "oauth provider");
                OAuthError::new("server_error", "Internal server error.")
            }
            // An auth hook that refused the token, or could not be run.
            Error::Hook { status, message, .. } if status >= 500 || status == 422 => {
                OAuthError::new("temporarily_unavailable", message)
            }
            Error::Hook { message, .. } => OAuthError::new("invalid_grant", message),
            other => OAuthError::new("invalid_request", other.to_string()),
        }
    }
}

/// A client as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub id: Uuid,
    pub name: String,
    /// `public` or `confidential`.
    pub client_type: String,
    pub token_endpoint_auth_method: String,
    pub registration_type: String,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scope: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl From<&oauth_client::Model> for Client {
    fn from(m: &oauth_client::Model) -> Client {
        Client {
            id: m.id,
            name: m.client_name.clone(),
            client_type: m.client_type.clone(),
            token_endpoint_auth_method: m.token_endpoint_auth_method.clone(),
            registration_type: m.registration_type.clone(),
            client_uri: m.client_uri.clone(),
            logo_uri: m.logo_uri.clone(),
            redirect_uris: strings(&m.redirect_uris),
            post_logout_redirect_uris: strings(&m.post_logout_redirect_uris),
            grant_types: strings(&m.grant_types),
            scope: m.scope.clone(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The claims of an access token handed to a client (RFC 9068).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientAccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The session, absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// What userinfo answers for a user and scopes (OpenID Connect Core §5.1).
pub(crate) fn user_claims(u: &user::Model, scope: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), u.id.to_string().into());
    let has = |s: &str| scope.split(' ').any(|x| x == s);
    if has("profile") {
        if let Some(name) = &u.full_name {
            claims.insert("name".into(), name.clone().into());
        }
        claims.insert("updated_at".into(), u.updated_at.timestamp().into());
    }
    if has("email") && !u.is_anonymous {
        claims.insert("email".into(), u.email.clone().into());
        claims.insert("email_verified".into(), u.email_verified_at.is_some().into());
    }
    if has("phone") {
        if let Some(phone) = &u.phone {
            claims.insert("phone_number".into(), phone.clone().into());
            claims.insert("phone_number_verified".into(), u.phone_verified_at.is_some().into());
        }
    }
    claims
}

/// The `amr` of a session (RFC 8176).
pub(crate) fn amr_of(amr: Option<&str>, aal: &str) -> Vec<&'static str> {
    let mut out = vec![match amr {
        Some("passkey") => "hwk",
        Some("oauth") => "fed",
        Some("anonymous") => "none",
        Some("mail") | Some("otp") => "otp",
        _ => "pwd",
    }];
    if crate::session::issued::shown_aal(aal) == "aal2" {
        out.push("mfa");
    }
    out
}

/// Splits a scope string, keeping known scopes once each, in request order.
pub(crate) fn scope_list(scope: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split([' ', '+']).filter(|s| !s.is_empty()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

impl Core {
    /// The JSON Web Key Set this server publishes: the access-token keys (none with an HS
    /// algorithm) and the provider's key, each once.
    pub fn published_jwks(&self) -> serde_json::Value {
        let mut keys = self.jwt.jwks()["keys"].as_array().cloned().unwrap_or_default();
        if let Some(p) = &self.provider {
            for k in p.jwks() {
                if !keys.iter().any(|have| have.get("kid") == k.get("kid")) {
                    keys.push(k);
                }
            }
        }
        serde_json::json!({ "keys": keys })
    }

    /// The provider, or `oauth_server_disabled`.
    pub fn provider(&self) -> Result<&Provider, Error> {
        self.provider.as_ref().ok_or(Error::OAuthServerDisabled)
    }

    /// The browser's session at the provider, from its cookie: live, of a usable user,
    /// and one of tessera's own (not a client's).
    pub async fn provider_session(&self, cookie: Option<&str>) -> Option<(session::Model, user::Model)> {
        let provider = self.provider.as_ref()?;
        let id = provider.session_of_cookie(cookie?)?;
        let (s, u) = self.store.session_for_refresh(id).await.ok()??;
        let live = s.revoked_at.is_none() && s.expires_at > crate::caller::now() && s.oauth_client_id.is_none();
        (live && crate::session::issued::is_usable(&u)).then_some((s, u))
    }
}

/// Checks a secret against its stored SHA-256, in constant time.
pub(crate) fn secret_matches(secret: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(hash) => crate::crypto::same_secret(&crate::crypto::sha256_hex(secret), hash),
        None => false,
    }
}

/// The hash of a new secret, and the secret.
pub(crate) fn new_secret() -> (String, SecretString) {
    let secret = crate::crypto::random_token(32);
    (crate::crypto::sha256_hex(&secret), SecretString::from(secret))
}
