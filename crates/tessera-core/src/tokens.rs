//! Access tokens (JWT, SPEC §4.1) and refresh tokens (SPEC §4.2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_domain::Error;
use uuid::Uuid;

use crate::settings::Settings;

/// `bytes` random bytes from the OS generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Lower-case hex SHA-256 of a secret: how refresh tokens are stored.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The refresh token a client presented, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedRefresh {
    /// A token sealed by this server: the session and the rotation counter it carries.
    Sealed { session_id: Uuid, counter: i64 },
    /// A random token issued before tokens were derived from the session (the SHA-256
    /// of it is what the session row remembers); it stands for counter 0.
    Legacy { hash: String },
}

/// The format byte of a sealed refresh token.
const SEALED_V1: u8 = 1;
/// Format, key id, session id, counter.
const SEALED_BODY: usize = 1 + 4 + 16 + 8;
/// HMAC-SHA-256, untruncated.
const SEALED_TAG: usize = 32;

struct RefreshKey {
    id: [u8; 4],
    mac: Vec<u8>,
}

/// Seals refresh tokens (SPEC §4.2): `base64url(format ‖ key id ‖ session id ‖ counter ‖
/// HMAC-SHA-256 of those under the key)`. Anyone holding the key can derive a session's
/// current token from its row, so the server can hand it out again; nobody without the
/// key can make one, and the database holds no token at all. The first key seals; every
/// key opens the tokens sealed with it, so old keys can stay listed until their tokens
/// have expired.
pub struct RefreshKeys {
    keys: Vec<RefreshKey>,
}

impl RefreshKeys {
    /// Keys from `REFRESH_TOKEN_SECRET` (first seals), or, when it is unset, one key
    /// derived from the JWT secret.
    pub fn from_settings(s: &Settings) -> Result<RefreshKeys, String> {
        if !s.refresh_token_secret.is_empty() {
            let secrets: Vec<&[u8]> = s.refresh_token_secret.iter().map(|k| k.expose_secret().as_bytes()).collect();
            return Ok(RefreshKeys::new(&secrets));
        }
        let jwt = s.jwt_secret.as_ref().ok_or("REFRESH_TOKEN_SECRET must be set when no JWT secret is")?;
        Ok(RefreshKeys::new(&[&derive_key(jwt.expose_secret().as_bytes(), b"tessera refresh-token secret v1")]))
    }

    /// Keys from secrets, the first sealing.
    pub fn new(secrets: &[&[u8]]) -> RefreshKeys {
        let keys = secrets
            .iter()
            .map(|secret| {
                let mac = derive_key(secret, b"tessera refresh-token key v1");
                let digest = Sha256::digest([b"tessera refresh-token key id".as_slice(), &mac].concat());
                RefreshKey { id: [digest[0], digest[1], digest[2], digest[3]], mac }
            })
            .collect();
        RefreshKeys { keys }
    }

    /// The token of a session at a counter value.
    pub fn seal(&self, session_id: Uuid, counter: i64) -> String {
        let mut token = Vec::with_capacity(SEALED_BODY + SEALED_TAG);
        let Some(key) = self.keys.first() else { return String::new() };
        token.push(SEALED_V1);
        token.extend_from_slice(&key.id);
        token.extend_from_slice(session_id.as_bytes());
        token.extend_from_slice(&counter.to_be_bytes());
        let tag = mac(&key.mac, &token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Opens a presented token: `None` for anything this server did not issue (a tag
    /// that does not verify under the key it names, an unknown key, a malformed string).
    pub fn open(&self, raw: &str) -> Option<PresentedRefresh> {
        let raw = raw.trim();
        if raw.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        if bytes.len() == 32 {
            return Some(PresentedRefresh::Legacy { hash: sha256_hex(raw) });
        }
        if bytes.len() != SEALED_BODY + SEALED_TAG || bytes[0] != SEALED_V1 {
            return None;
        }
        let (body, tag) = bytes.split_at(SEALED_BODY);
        let key = self.keys.iter().find(|k| k.id == body[1..5])?;
        // Constant-time comparison of the tag.
        mac(&key.mac, body).verify_slice(tag).ok()?;
        let session_id = Uuid::from_slice(&body[5..21]).ok()?;
        let counter = i64::from_be_bytes(body[21..29].try_into().ok()?);
        Some(PresentedRefresh::Sealed { session_id, counter })
    }
}

/// HMAC-SHA-256 of `label` under `secret`: a key for one purpose, derived from a secret
/// that may serve others.
pub fn derive_key(secret: &[u8], label: &[u8]) -> Vec<u8> {
    mac(secret, label).finalize().into_bytes().to_vec()
}

pub(crate) fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail; an empty key is the fallback
    // that keeps the signature total.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .or_else(|_| <Hmac<Sha256> as Mac>::new_from_slice(&[]))
        .unwrap_or_else(|_| unreachable_mac());
    m.update(data);
    m
}

#[allow(clippy::panic)]
fn unreachable_mac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 rejected a key")
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// Same as `sub`, for seed-000 clients.
    pub user_id: String,
    pub email: String,
    pub role: String,
    #[serde(rename = "type")]
    pub typ: String,
    pub ver: i32,
    pub sid: Uuid,
    pub aal: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Signs and checks access tokens with the configured algorithm only.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    pub issuer: String,
    pub audience: String,
}

impl JwtKeys {
    /// Keys from settings; the secret must already be resolved.
    pub fn from_settings(s: &Settings) -> Result<JwtKeys, String> {
        let secret = s.jwt_secret.as_ref().ok_or("no JWT secret configured")?;
        let alg = match s.jwt_algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            other => return Err(format!("unsupported JWT_ALGORITHM {other}")),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.set_issuer(&[&s.jwt_issuer]);
        validation.set_audience(&[&s.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose_secret().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            header: Header::new(alg),
            validation,
            issuer: s.jwt_issuer.clone(),
            audience: s.jwt_audience.clone(),
        })
    }

    /// Signs claims.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, Error> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("jwt sign: {e}")))
    }

    /// Checks signature, algorithm, `exp` (30 s leeway), `iss`, `aud` and `type`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    JwtErrorKind::ExpiredSignature => Error::TokenExpired,
                    _ => Error::InvalidToken,
                }
            })?;
        if data.claims.typ != "access" || data.claims.sub != data.claims.user_id {
            return Err(Error::InvalidToken);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_open_under_any_listed_key_and_no_other() {
        let old = RefreshKeys::new(&[b"old secret".as_slice()]);
        let ring = RefreshKeys::new(&[b"new secret".as_slice(), b"old secret".as_slice()]);
        let sid = Uuid::now_v7();
        let sealed = PresentedRefresh::Sealed { session_id: sid, counter: 7 };
        assert_eq!(ring.open(&old.seal(sid, 7)), Some(sealed.clone()), "an old key still opens");
        assert_eq!(ring.open(&ring.seal(sid, 7)), Some(sealed));
        assert_eq!(old.open(&ring.seal(sid, 7)), None, "the new key is unknown to the old ring");
        let mut forged = URL_SAFE_NO_PAD.decode(ring.seal(sid, 7)).unwrap();
        forged[28] ^= 1; // the counter
        assert_eq!(ring.open(&URL_SAFE_NO_PAD.encode(forged)), None);
        assert_ne!(ring.seal(sid, 7), ring.seal(sid, 8));
        let legacy = random_token(32);
        assert_eq!(ring.open(&legacy), Some(PresentedRefresh::Legacy { hash: sha256_hex(&legacy) }));
        assert_eq!(ring.open("not a token"), None);
        assert_eq!(ring.open(""), None);
    }

    #[test]
    fn without_a_refresh_secret_the_key_derives_from_the_jwt_secret() {
        let settings = |jwt: &str| {
            let vars = [("ENVIRONMENT", "production"), ("JWT_SECRET_KEY", jwt)];
            Settings::from_vars(&vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).unwrap()
        };
        let a = RefreshKeys::from_settings(&settings(&"a".repeat(40))).unwrap();
        let again = RefreshKeys::from_settings(&settings(&"a".repeat(40))).unwrap();
        let other = RefreshKeys::from_settings(&settings(&"b".repeat(40))).unwrap();
        let sid = Uuid::now_v7();
        assert!(again.open(&a.seal(sid, 1)).is_some(), "every node derives the same key");
        assert!(other.open(&a.seal(sid, 1)).is_none());
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
