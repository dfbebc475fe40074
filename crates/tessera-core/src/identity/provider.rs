//! The sign-in providers (SPEC §5.11): their settings (`EXTERNAL_<NAME>_*`, GoTrue's names
//! less `GOTRUE_`), the presets, and what is learnt from a provider at run time: its
//! endpoints (OpenID Connect discovery) and its signing keys, cached and fetched again
//! when a token names a key the cache does not hold. Every call has a timeout and runs on
//! the async client: a provider that is slow or down costs a request its wait, never a
//! worker thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_domain::Error;
use tokio::sync::Mutex;

pub use crate::settings::external::{Preset, ProviderSettings};

/// How long discovery documents and key sets are trusted before they are fetched again.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches of a key set prompted by an unknown `kid`: tokens
/// naming made-up keys cannot make tessera hammer the provider.
const REFETCH_GAP: Duration = Duration::from_secs(10);
/// Clock skew allowed on an ID token's `exp`, `iat` and `nbf`.
const LEEWAY_SECS: u64 = 60;

/// Where a provider's endpoints are.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Endpoints {
    #[serde(default)]
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RFC 9207: the provider adds `iss` to its answer at the callback.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

struct Cached<T> {
    value: Arc<T>,
    fetched: Instant,
}

/// A provider at run time: its settings and what was learnt from it.
pub(crate) struct Provider {
    pub settings: ProviderSettings,
    endpoints: Mutex<Option<Cached<Endpoints>>>,
    keys: Mutex<Option<Cached<JwkSet>>>,
}

/// Every configured provider, and the HTTP client that reaches them.
pub struct Providers {
    http: reqwest::Client,
    list: HashMap<String, Arc<Provider>>,
}

impl Providers {
    /// The providers of `settings`, and a client whose every call times out after `timeout`.
    pub fn new(settings: &[ProviderSettings], timeout: Duration) -> Result<Providers, String> {
        install_tls_crypto();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client of the sign-in providers: {e}"))?;
        let list = settings
            .iter()
            .map(|s| {
                let p = Provider { settings: s.clone(), endpoints: Mutex::new(None), keys: Mutex::new(None) };
                (s.name.clone(), Arc::new(p))
            })
            .collect();
        Ok(Providers { http, list })
    }

    /// The enabled provider called `name` (GoTrue's `custom:<name>` too), or
    /// `ProviderDisabled`.
    pub(crate) fn enabled(&self, name: &str) -> Result<Arc<Provider>, Error> {
        let name = name.trim().to_ascii_lowercase();
        let name = name.strip_prefix("custom:").unwrap_or(&name);
        self.list.get(name).filter(|p| p.settings.enabled).cloned().ok_or(Error::ProviderDisabled)
    }

    /// The names of the enabled providers, for `/settings`.
    pub fn enabled_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.list.values().filter(|p| p.settings.enabled).map(|p| p.settings.name.clone()).collect();
        names.sort();
        names
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// Makes ring the process's TLS crypto (the one rustls already runs on for mail); any
/// HTTPS client built afterwards uses it. Idempotent.
pub fn install_tls_crypto() {
    // ring lacks the post-quantum key exchange; it is the backend the build already has.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A provider's failure as the user's answer: a timeout or a refused connection is the
/// provider being down, anything else its answer being unusable.
pub(crate) fn unreachable(what: &str, e: reqwest::Error) -> Error {
    Error::ProviderUnavailable(format!("{what}: {e}"))
}

/// GETs a JSON document.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T, Error> {
    fetch_json(http.get(url).header("Accept", "application/json"), what).await
}

/// Sends `request` and reads its JSON answer: a provider that does not answer, or answers
/// a server error, is unavailable; any other failure is its answer being unusable.
pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, Error> {
    let res = request.send().await.map_err(|e| unreachable(what, e))?;
    let status = res.status();
    if status.is_server_error() {
        return Err(Error::ProviderUnavailable(format!("{what}: {status}")));
    }
    if !status.is_success() {
        return Err(Error::ProviderRefused(format!("{what} answered {status}")));
    }
    res.json().await.map_err(|e| Error::ProviderRefused(format!("{what} is not what was expected: {e}")))
}

impl Provider {
    /// The provider's endpoints: GitHub's are fixed; an OpenID Connect provider's come
    /// from its discovery document (cached an hour), whose `issuer` must be the one
    /// configured.
    pub(crate) async fn endpoints(&self, http: &reqwest::Client) -> Result<Arc<Endpoints>, Error> {
        let s = &self.settings;
        let Some(issuer) = s.issuer() else {
            let web = s.url.clone().unwrap_or_else(|| "https://github.com".to_owned());
            return Ok(Arc::new(Endpoints {
                issuer: web.clone(),
                authorization_endpoint: format!("{web}/login/oauth/authorize"),
                token_endpoint: format!("{web}/login/oauth/access_token"),
                userinfo_endpoint: None,
                jwks_uri: None,
                authorization_response_iss_parameter_supported: false,
            }));
        };
        let mut cached = self.endpoints.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.fetched.elapsed() < CACHE_TTL) {
            return Ok(c.value.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let found: Endpoints = get_json(http, &url, "the provider's discovery document").await?;
        if !issuer_matches(&found.issuer, &issuer) {
            return Err(Error::ProviderRefused(format!(
                "the discovery document names issuer {:?}, not the configured {issuer:?}",
                found.issuer
            )));
        }
        let value = Arc::new(found);
        *cached = Some(Cached { value: value.clone(), fetched: Instant::now() });
        Ok(value)
    }

    /// The key `kid` of the provider's key set: cached an hour, and fetched again when a
    /// token names a key the cache lacks (a rotation), at most every [`REFETCH_GAP`].
    /// With `stale`, the cached key just failed a signature: the set is fetched again
    /// (within the same limit), for a provider that rotated keys its tokens do not name.
    async fn key(&self, http: &reqwest::Client, kid: Option<&str>, stale: bool) -> Result<DecodingKey, Error> {
        let endpoints = self.endpoints(http).await?;
        let jwks_uri = endpoints
            .jwks_uri
            .as_deref()
            .ok_or_else(|| Error::ProviderRefused("the provider publishes no signing keys (jwks_uri)".to_owned()))?;
        let mut cached = self.keys.lock().await;
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let fresh = !stale && cached.as_ref().is_some_and(|c| c.fetched.elapsed() < CACHE_TTL);
        if let Some(jwk) = cached.as_ref().filter(|_| fresh).and_then(|c| pick(&c.value)) {
            return DecodingKey::from_jwk(&jwk).map_err(|e| Error::ProviderRefused(format!("the provider's key: {e}")));
        }
        let may_fetch = cached.as_ref().is_none_or(|c| c.fetched.elapsed() >= REFETCH_GAP);
        if may_fetch {
            let set: JwkSet = get_json(http, jwks_uri, "the provider's key set").await?;
            *cached = Some(Cached { value: Arc::new(set), fetched: Instant::now() });
        }
        let jwk = cached.as_ref().and_then(|c| pick(&c.value)).ok_or_else(|| {
            Error::ProviderRefused("Bad ID token: signed with a key the provider does not publish".to_owned())
        })?;
        DecodingKey::from_jwk(&jwk).map_err(|e| Error::ProviderRefused(format!("the provider's key: {e}")))
    }

    /// The claims of an ID token the provider signed for one of our client ids, unexpired,
    /// from the configured issuer. The nonce is the caller's to check.
    pub(crate) async fn verify_id_token(
        &self,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<Map<String, Value>, Error> {
        let bad = |why: String| Error::ProviderRefused(format!("Bad ID token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        // Only the provider's public keys sign ID tokens: never a shared secret, never none.
        let asymmetric = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ];
        if !asymmetric.contains(&header.alg) {
            return Err(bad(format!("{:?} is not a signature algorithm of a provider", header.alg)));
        }
        let issuer = self.settings.issuer().unwrap_or_default();
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.set_audience(&self.settings.client_ids);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        let kid = header.kid.as_deref();
        let key = self.key(http, kid, false).await?;
        let data = match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v) {
            // A signature the cached key refuses may be a new key's: once more, with the set
            // fetched again.
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                let key = self.key(http, kid, true).await?;
                jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| bad(e.to_string()))?
            }
            other => other.map_err(|e| bad(e.to_string()))?,
        };
        let claims = data.claims;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
        if !issuer_matches(iss, &issuer) {
            return Err(bad(format!("issued by {iss:?}, not {issuer:?}")));
        }
        Ok(claims)
    }
}

/// Whether `found` is the issuer `configured`, a trailing slash aside; Azure's multi-tenant
/// issuer template (`…/{tenantid}/v2.0`) matches any one tenant.
pub(crate) fn issuer_matches(found: &str, configured: &str) -> bool {
    let found = found.trim_end_matches('/');
    let configured = configured.trim_end_matches('/');
    if found == configured {
        return true;
    }
    let azure = |s: &str| s.starts_with("https://login.microsoftonline.com/");
    if azure(found) && azure(configured) {
        let tail = |s: &str| {
            s.trim_start_matches("https://login.microsoftonline.com/").split_once('/').map(|(_, t)| t.to_owned())
        };
        let tenant =
            |s: &str| s.trim_start_matches("https://login.microsoftonline.com/").split('/').next().map(str::to_owned);
        let multi =
            matches!(tenant(configured).as_deref(), Some("common" | "organizations" | "consumers" | "{tenantid}"));
        return multi && tail(found) == tail(configured);
    }
    false
}

/// The scopes to ask `provider` for: its preset's, plus those the request names.
pub(crate) fn scopes_for(settings: &ProviderSettings, asked: Option<&str>) -> String {
    let mut scopes: Vec<&str> = settings.preset.scopes().split(' ').collect();
    for s in asked.unwrap_or_default().split([' ', ',']).filter(|s| !s.is_empty()) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_match_exactly_or_as_an_azure_tenant() {
        assert!(issuer_matches("https://accounts.google.com", "https://accounts.google.com/"));
        assert!(!issuer_matches("https://accounts.google.com.evil", "https://accounts.google.com"));
        assert!(issuer_matches(
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "https://login.microsoftonline.com/common/v2.0"
        ));
        assert!(!issuer_matches(
            "https://login.microsoftonline.com/9188040d/v2.0",
            "https://login.microsoftonline.com/one-tenant/v2.0"
        ));
    }
}
