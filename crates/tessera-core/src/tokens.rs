//! Access tokens (JWT, SPEC §4.1) and refresh-token secrets (SPEC §4.2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
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
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
