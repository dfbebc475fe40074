//! The provider's keys (SPEC §5.12): what signs its ID and access tokens (the JWT key when
//! asymmetric, `OAUTH_SIGNING_KEY`, or in development one generated and kept in the
//! database), and the key that MACs its cookies and forms and derives each client's
//! refresh-token key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::crypto::{derive_key, mac};
use crate::session::tokens::{JwtConfig, JwtKeys, RefreshKeys};
use crate::settings::Settings;

/// The name of the generated development key in `server_keys`.
pub(crate) const DEV_KEY: (&str, &str) = ("oauth_signing_key", "oauth-signing-key");

/// The provider's keys: what signs its tokens, and what MACs its cookies and forms and
/// derives its clients' refresh-token keys.
pub struct Provider {
    pub(crate) signer: JwtKeys,
    mac_key: Vec<u8>,
    /// `PUBLIC_URL`: the issuer.
    pub issuer: String,
}

impl Provider {
    /// The provider for `settings`, or `None` when no asymmetric key is configured (nor
    /// generated): then every endpoint answers `oauth_server_disabled`.
    pub fn from_settings(settings: &Settings, server_secret: &[u8]) -> Result<Option<Provider>, String> {
        let issuer = settings.public_url.trim_end_matches('/').to_owned();
        let pem = match (&settings.oauth_signing_key, settings.jwt_asymmetric()) {
            (Some(pem), _) => pem.clone(),
            (None, true) => match &settings.jwt_private_key {
                Some(pem) => pem.clone(),
                None => return Ok(None),
            },
            (None, false) => return Ok(None),
        };
        let algorithm = algorithm_of(pem.expose_secret()).map_err(|e| format!("OAUTH_SIGNING_KEY: {e}"))?;
        // The JWT key itself keeps its configured kid; another key gets its thumbprint.
        let same_as_jwt = settings.oauth_signing_key.is_none();
        let signer = JwtKeys::new(&JwtConfig {
            algorithm,
            secret: None,
            private_key: Some(&pem),
            key_id: if same_as_jwt { settings.jwt_key_id.as_deref() } else { None },
            previous_public_keys: None,
            issuer: &issuer,
            audience: "",
            public_url: &settings.public_url,
        })
        .map_err(|e| format!("OAUTH_SIGNING_KEY: {e}"))?;
        Ok(Some(Provider { signer, mac_key: derive_key(server_secret, b"tessera oauth provider key v1"), issuer }))
    }

    /// The public keys of the provider's tokens (JWKs).
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        self.signer.jwks()["keys"].as_array().cloned().unwrap_or_default()
    }

    /// The ID-token signing algorithm.
    pub fn algorithm(&self) -> String {
        self.signer.algorithm()
    }

    /// A MAC of `parts` under the provider's key, base64url (128 bits).
    pub(crate) fn tag(&self, purpose: &str, parts: &[&[u8]]) -> String {
        let mut m = mac(&self.mac_key, purpose.as_bytes());
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        URL_SAFE_NO_PAD.encode(&m.finalize().into_bytes()[..16])
    }

    /// The keys that seal and open the refresh tokens of one client.
    pub(crate) fn refresh_keys(&self, client_id: Uuid) -> RefreshKeys {
        RefreshKeys::new(&[&derive_key(&self.mac_key, &[b"refresh ".as_slice(), client_id.as_bytes()].concat())])
    }

    /// The cookie value naming the browser's session at the provider.
    pub fn session_cookie(&self, session_id: Uuid) -> String {
        format!("{}.{}", session_id.simple(), self.tag("op-session", &[session_id.as_bytes()]))
    }

    /// The token of a form of the provider's pages: bound to `binding` (the browser's
    /// flow cookie, or its session) and the authorization request.
    pub fn form_token(&self, purpose: &str, binding: &str, id: Uuid) -> String {
        self.tag(&format!("op-form {purpose}"), &[binding.as_bytes(), id.as_bytes()])
    }

    /// The session a cookie names, if its MAC holds.
    pub fn session_of_cookie(&self, cookie: &str) -> Option<Uuid> {
        let (id, tag) = cookie.split_once('.')?;
        let id = Uuid::parse_str(id).ok()?;
        crate::crypto::same_secret(tag, &self.tag("op-session", &[id.as_bytes()])).then_some(id)
    }
}

/// The JWT algorithm of a PEM private key: RS256, ES256 or EdDSA.
fn algorithm_of(pem_text: &str) -> Result<&'static str, String> {
    let block = pem::parse(pem_text.trim()).map_err(|e| format!("not a PEM key: {e}"))?;
    if block.tag() == "RSA PRIVATE KEY" {
        return Ok("RS256");
    }
    let der = block.contents();
    let rng = ring::rand::SystemRandom::new();
    if ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).is_ok() {
        return Ok("ES256");
    }
    if ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).is_ok() {
        return Ok("EdDSA");
    }
    if ring::rsa::KeyPair::from_pkcs8(der).is_ok() {
        return Ok("RS256");
    }
    Err("not an RSA, P-256 or Ed25519 private key in PKCS#8".to_owned())
}

/// A new ES256 key (PKCS#8 PEM): what a development server signs its provider's tokens
/// with when nothing is configured.
pub(crate) fn new_dev_key() -> String {
    let rng = ring::rand::SystemRandom::new();
    match ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng) {
        Ok(doc) => pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref().to_vec())),
        Err(_) => String::new(),
    }
}
