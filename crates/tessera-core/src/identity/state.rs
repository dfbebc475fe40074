//! The `state` of a redirect to a provider: what the flow needs back at the callback
//! (provider, redirect, the app's PKCE challenge, a user to link), signed with a server
//! key, valid ten minutes, and bound to the browser that started it. The binding is a
//! random secret in an HttpOnly cookie: `state` carries only its hash, and the PKCE
//! verifier and the nonce sent to the provider are derived from it, so a `state` (or a
//! provider's code) carried to another browser is worth nothing there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_domain::Error;
use uuid::Uuid;

use crate::caller::Surface;
use crate::crypto::{mac, random_token, same_secret};

/// How long a started sign-in may take at the provider.
pub const STATE_TTL_SECS: i64 = 600;

/// What a `state` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FlowState {
    /// The provider's name.
    pub p: String,
    /// Where the browser goes at the end (allowed when the flow started).
    pub r: String,
    /// The app's S256 code challenge: a PKCE flow, answered with `?code=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<String>,
    /// `n`: the native surface started it; else the Supabase surface.
    pub s: char,
    /// The signed-in user an identity is being linked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<Uuid>,
    /// This flow's id: the verifier and nonce are derived from it.
    pub i: String,
    /// SHA-256 of the browser's secret (the cookie), base64url.
    pub b: String,
    /// Expiry, Unix seconds.
    pub e: i64,
}

impl FlowState {
    pub fn surface(&self) -> Surface {
        if self.s == 'n' {
            Surface::Native
        } else {
            Surface::Supabase
        }
    }
}

fn b64_mac(key: &[u8], parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, parts.join("\0").as_bytes()).finalize().into_bytes())
}

/// A new browser secret (the cookie's value).
pub(crate) fn browser_secret() -> String {
    random_token(32)
}

/// A new flow id.
pub(crate) fn flow_id() -> String {
    random_token(16)
}

pub(crate) fn browser_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// The `state` parameter of `flow`.
pub(crate) fn seal(key: &[u8], flow: &FlowState) -> Result<String, Error> {
    let body = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(flow).map_err(|e| Error::Internal(format!("the sign-in state: {e}")))?);
    let sig = b64_mac(key, &["tessera oauth state", &body]);
    Ok(format!("{body}.{sig}"))
}

/// The flow of a `state` that this server signed, unexpired, started by the browser
/// holding `cookie`; else `BadOAuthState`.
pub(crate) fn open(key: &[u8], state: &str, cookie: Option<&str>, now: i64) -> Result<FlowState, Error> {
    let (body, sig) = state.split_once('.').ok_or(Error::BadOAuthState)?;
    if !same_secret(sig, &b64_mac(key, &["tessera oauth state", body])) {
        return Err(Error::BadOAuthState);
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| Error::BadOAuthState)?;
    let flow: FlowState = serde_json::from_slice(&bytes).map_err(|_| Error::BadOAuthState)?;
    if flow.e < now {
        return Err(Error::BadOAuthState);
    }
    let cookie = cookie.ok_or(Error::BadOAuthState)?;
    if !same_secret(&browser_hash(cookie), &flow.b) {
        return Err(Error::BadOAuthState);
    }
    Ok(flow)
}

/// The PKCE verifier sent to the provider for the flow `id` of the browser `cookie`.
pub(crate) fn provider_verifier(key: &[u8], id: &str, cookie: &str) -> String {
    b64_mac(key, &["tessera oauth pkce", id, cookie])
}

/// The nonce sent to the provider for the flow `id` of the browser `cookie`.
pub(crate) fn provider_nonce(key: &[u8], id: &str, cookie: &str) -> String {
    b64_mac(key, &["tessera oauth nonce", id, cookie])
}

/// An app's S256 challenge as sent (`None` when it sent none): 43 to 128 characters of
/// base64url, and a method, whenever one is named, of `s256`; else a 400.
pub fn checked_challenge(c: Option<&str>, method: Option<&str>) -> Result<Option<String>, Error> {
    if method.map(str::trim).is_some_and(|m| !m.is_empty() && !m.eq_ignore_ascii_case("s256")) {
        return Err(Error::BadRequest("Invalid code_challenge_method: only s256 is supported".to_owned()));
    }
    let Some(c) = c.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
    let alphabet = |ch: char| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | '~');
    if !(43..=128).contains(&c.len()) || !c.chars().all(alphabet) {
        return Err(Error::BadRequest("Invalid code_challenge: 43 to 128 characters of base64url".to_owned()));
    }
    Ok(Some(c.to_owned()))
}

/// The S256 challenge of a verifier (RFC 7636).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(cookie: &str, e: i64) -> FlowState {
        FlowState {
            p: "mock".into(),
            r: "https://app.example.com".into(),
            c: None,
            s: 's',
            l: None,
            i: flow_id(),
            b: browser_hash(cookie),
            e,
        }
    }

    #[test]
    fn a_state_opens_only_with_its_key_its_browser_and_in_time() {
        let key = b"k".repeat(32);
        let cookie = browser_secret();
        let state = seal(&key, &flow(&cookie, 100)).unwrap();
        assert!(open(&key, &state, Some(&cookie), 50).is_ok());
        assert!(matches!(open(&key, &state, Some(&cookie), 101), Err(Error::BadOAuthState)));
        assert!(matches!(open(&key, &state, Some("another browser"), 50), Err(Error::BadOAuthState)));
        assert!(matches!(open(&key, &state, None, 50), Err(Error::BadOAuthState)));
        assert!(matches!(open(&b"x".repeat(32), &state, Some(&cookie), 50), Err(Error::BadOAuthState)));
        let (body, _) = state.split_once('.').unwrap();
        assert!(matches!(open(&key, &format!("{body}.forged"), Some(&cookie), 50), Err(Error::BadOAuthState)));
    }

    #[test]
    fn s256_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
