//! Access tokens (JWT, SPEC §4.1) and refresh tokens (SPEC §4.2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_domain::Error;
use uuid::Uuid;

use crate::crypto::{derive_key, mac, sha256_hex};

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

impl RefreshKey {
    fn from_secret(secret: &[u8]) -> RefreshKey {
        let mac = derive_key(secret, b"tessera refresh-token key v1");
        let digest = Sha256::digest([b"tessera refresh-token key id".as_slice(), &mac].concat());
        RefreshKey { id: [digest[0], digest[1], digest[2], digest[3]], mac }
    }
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
    /// Keys from secrets, the first sealing.
    pub fn new(secrets: &[&[u8]]) -> RefreshKeys {
        RefreshKeys { keys: secrets.iter().map(|secret| RefreshKey::from_secret(secret)).collect() }
    }

    /// Also opens the tokens sealed under `secret` (a retired key), sealing none.
    pub fn also_open(&mut self, secret: &[u8]) {
        let key = RefreshKey::from_secret(secret);
        if !self.keys.iter().any(|k| k.id == key.id) {
            self.keys.push(key);
        }
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

/// The audience, and the role claim, of access tokens on the Supabase surface.
pub const SUPABASE_AUDIENCE: &str = "authenticated";

/// An access token of the Supabase surface (SPEC §2.3): the claims every surface checks
/// (with `aud` and `role` = `authenticated` and `iss` = `PUBLIC_URL/auth/v1`) and GoTrue's.
#[derive(Debug, Clone, Serialize)]
pub struct SupabaseClaims<'a> {
    #[serde(flatten)]
    pub base: &'a AccessClaims,
    pub session_id: String,
    pub phone: String,
    pub amr: Vec<serde_json::Value>,
    pub is_anonymous: bool,
    pub app_metadata: serde_json::Value,
    pub user_metadata: serde_json::Value,
}

/// Signs and checks access tokens with the configured algorithm only. With an
/// asymmetric algorithm, tokens carry the signing key's `kid`, and [`JwtKeys::jwks`]
/// publishes its public half with every previous public key still accepted.
pub struct JwtKeys {
    encoding: EncodingKey,
    /// The configured key (the secret, or the signing key's public half).
    decoding: DecodingKey,
    /// Previous public keys by `kid`.
    previous: Vec<(String, DecodingKey)>,
    header: Header,
    validation: Validation,
    /// The public JWKs (empty with an HS algorithm: a secret is never published).
    jwks: Vec<serde_json::Value>,
    /// A validation for the project keys of the Supabase surface (`service_role`): the
    /// algorithm and signature only, `exp` when present (a malformed one is refused).
    project_keys: Validation,
    pub issuer: String,
    pub audience: String,
    /// The issuer of tokens on the Supabase surface: `PUBLIC_URL/auth/v1`.
    pub supabase_issuer: String,
}

/// What access-token keys are made of (`JWT_*` settings).
pub struct JwtConfig<'a> {
    /// `JWT_ALGORITHM`.
    pub algorithm: &'a str,
    /// The HMAC secret (HS algorithms).
    pub secret: Option<&'a SecretString>,
    /// The PEM private key (asymmetric algorithms).
    pub private_key: Option<&'a SecretString>,
    pub key_id: Option<&'a str>,
    /// Public JWKs of retired keys, as JSON.
    pub previous_public_keys: Option<&'a str>,
    pub issuer: &'a str,
    pub audience: &'a str,
    /// `PUBLIC_URL`, under which the Supabase surface's issuer lives.
    pub public_url: &'a str,
}

impl JwtKeys {
    /// Keys for `c`; the secret must already be resolved.
    pub fn new(c: &JwtConfig) -> Result<JwtKeys, String> {
        crate::session::jwt_crypto::install();
        let alg = match c.algorithm {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other => return Err(format!("unsupported JWT_ALGORITHM {other}")),
        };
        let supabase_issuer = format!("{}/auth/v1", c.public_url);
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.set_issuer(&[c.issuer, &supabase_issuer]);
        validation.set_audience(&[c.audience, SUPABASE_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let mut project_keys = Validation::new(alg);
        project_keys.leeway = 30;
        project_keys.validate_aud = false;
        // GoTrue's rule: a project key need not expire. One that says when it expires is
        // held to it; an `exp` that is not a number is refused, not skipped
        // (jsonwebtoken ≥ 10.3, CVE-2026-25537), whether required or not.
        project_keys.set_required_spec_claims::<&str>(&[]);
        let mut header = Header::new(alg);
        let (encoding, decoding, previous, jwks) = if !c.algorithm.starts_with("HS") {
            let pem = c.private_key.ok_or_else(|| {
                format!("JWT_ALGORITHM={} needs JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE (PEM)", c.algorithm)
            })?;
            let signing = SigningKey::from_pem(alg, pem.expose_secret())?;
            let kid = c.key_id.map(str::to_owned).unwrap_or_else(|| signing.thumbprint());
            header.kid = Some(kid.clone());
            let mut jwks = vec![signing.jwk(&kid)];
            let mut previous = Vec::new();
            if let Some(json) = c.previous_public_keys {
                for jwk in previous_jwks(json)? {
                    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
                        .map_err(|e| format!("JWT_PREVIOUS_PUBLIC_KEYS: a key is not a JWK: {e}"))?;
                    let key = DecodingKey::from_jwk(&parsed)
                        .map_err(|e| format!("JWT_PREVIOUS_PUBLIC_KEYS: a key cannot verify: {e}"))?;
                    let kid = parsed.common.key_id.clone().ok_or("JWT_PREVIOUS_PUBLIC_KEYS: every key needs a kid")?;
                    previous.push((kid, key));
                    jwks.push(jwk);
                }
            }
            (signing.encoding, signing.decoding, previous, jwks)
        } else {
            let secret = c.secret.ok_or("no JWT secret configured")?;
            let bytes = secret.expose_secret().as_bytes();
            let bad = |e: jsonwebtoken::errors::Error| format!("the JWT secret cannot sign: {e}");
            (
                EncodingKey::from_secret(bytes).map_err(bad)?,
                DecodingKey::from_secret(bytes).map_err(bad)?,
                Vec::new(),
                Vec::new(),
            )
        };
        Ok(JwtKeys {
            encoding,
            decoding,
            previous,
            header,
            validation,
            jwks,
            project_keys,
            issuer: c.issuer.to_owned(),
            audience: c.audience.to_owned(),
            supabase_issuer,
        })
    }

    /// Signs claims.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, Error> {
        self.sign_any(claims)
    }

    /// Signs any claims with the configured key (the `anon` and `service_role` keys of
    /// `tessera keys supabase`).
    pub fn sign_any(&self, claims: &impl Serialize) -> Result<String, Error> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("jwt sign: {e}")))
    }

    /// The project keys a Supabase client is configured with: `anon` and `service_role`
    /// JWTs (`iss:"supabase"`, the role, ten years' validity), signed with this key.
    pub fn supabase_keys(&self, now: i64) -> Result<Vec<(&'static str, String)>, Error> {
        let ten_years = 10 * 365 * 86_400;
        ["anon", "service_role"]
            .into_iter()
            .map(|role| {
                let claims = serde_json::json!({ "iss": "supabase", "role": role, "iat": now, "exp": now + ten_years });
                Ok((role, self.sign_any(&claims)?))
            })
            .collect()
    }

    /// The JSON Web Key Set: the signing key's public half and every previous public key
    /// (`{"keys":[]}` with an HS algorithm).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.jwks })
    }

    /// The role of a Supabase project key (`service_role`, `anon`, or any JWT signed with
    /// this server's key): the algorithm must be the configured one and the signature
    /// good; `exp` is checked when present, nothing else is required (GoTrue's rule).
    pub fn project_key_role(&self, token: &str) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct RoleOnly {
            #[serde(default)]
            role: String,
        }
        let key = self.key_for(token)?;
        let data = jsonwebtoken::decode::<RoleOnly>(token, key, &self.project_keys).map_err(|e| match e.kind() {
            JwtErrorKind::ExpiredSignature => Error::TokenExpired,
            _ => Error::InvalidToken,
        })?;
        Ok(data.claims.role)
    }

    /// The key a token's header asks for: the configured algorithm only; a `kid` naming a
    /// previous key picks it, any other the current key.
    fn key_for(&self, token: &str) -> Result<&DecodingKey, Error> {
        Ok(match jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken)? {
            h if h.alg != self.header.alg => return Err(Error::InvalidToken),
            h => h
                .kid
                .and_then(|kid| self.previous.iter().find(|(k, _)| *k == kid).map(|(_, key)| key))
                .unwrap_or(&self.decoding),
        })
    }

    /// The algorithm tokens are signed with (`ES256`, `RS256`, ...).
    pub fn algorithm(&self) -> String {
        format!("{:?}", self.header.alg)
    }

    /// Decodes any claims signed with this key and the configured algorithm: the
    /// signature always, `exp` (30 s leeway) unless `expired_ok`; `iss`, `aud` and the rest
    /// are the caller's to check.
    pub fn decode_signed<T: serde::de::DeserializeOwned>(&self, token: &str, expired_ok: bool) -> Result<T, Error> {
        let key = self.key_for(token)?;
        let mut validation = Validation::new(self.header.alg);
        validation.leeway = 30;
        validation.validate_aud = false;
        validation.validate_exp = !expired_ok;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        let data = jsonwebtoken::decode::<T>(token, key, &validation).map_err(|e| match e.kind() {
            JwtErrorKind::ExpiredSignature => Error::TokenExpired,
            _ => Error::InvalidToken,
        })?;
        Ok(data.claims)
    }

    /// Signs claims with a header of type `typ` (`at+jwt` for RFC 9068 access tokens).
    pub fn sign_typed(&self, typ: &str, claims: &impl Serialize) -> Result<String, Error> {
        let mut header = self.header.clone();
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| Error::Internal(format!("jwt sign: {e}")))
    }

    /// Checks signature, algorithm (exactly the configured one: an HS token made with a
    /// published public key is refused), `exp` (30 s leeway), `iss`, `aud` and `type`. A
    /// `kid` naming a previous key is checked with that key; any other with the current.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        let key = self.key_for(token)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|e| match e.kind() {
            JwtErrorKind::ExpiredSignature => Error::TokenExpired,
            _ => Error::InvalidToken,
        })?;
        if data.claims.typ != "access" || data.claims.sub != data.claims.user_id {
            return Err(Error::InvalidToken);
        }
        Ok(data.claims)
    }
}

/// The JWKs of `JWT_PREVIOUS_PUBLIC_KEYS`: a set `{"keys":[…]}` or an array; public only.
fn previous_jwks(json: &str) -> Result<Vec<serde_json::Value>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("JWT_PREVIOUS_PUBLIC_KEYS is not JSON: {e}"))?;
    let keys = match value {
        serde_json::Value::Array(keys) => keys,
        serde_json::Value::Object(mut set) => match set.remove("keys") {
            Some(serde_json::Value::Array(keys)) => keys,
            _ => return Err("JWT_PREVIOUS_PUBLIC_KEYS: a JWK set needs a \"keys\" array".to_owned()),
        },
        _ => return Err("JWT_PREVIOUS_PUBLIC_KEYS must be a JWK set or an array of JWKs".to_owned()),
    };
    for key in &keys {
        if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| key.get(m).is_some()) {
            return Err("JWT_PREVIOUS_PUBLIC_KEYS must hold public keys only".to_owned());
        }
    }
    Ok(keys)
}

/// The RFC 7638 thumbprint of a JWK's required members, given in lexicographic order:
/// the base64url SHA-256 of them as JSON without whitespace (none of their values holds a
/// character JSON would escape).
fn thumbprint(members: &[(&str, String)]) -> String {
    let members: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
    let canonical = format!("{{{}}}", members.join(","));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// An asymmetric signing key: what signs, what verifies, and its public JWK members.
struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The required members of its JWK (RFC 7638), base64url where binary.
    public: Vec<(&'static str, String)>,
    alg: &'static str,
}

impl SigningKey {
    fn from_pem(alg: Algorithm, pem_text: &str) -> Result<SigningKey, String> {
        let bad = |e: &dyn std::fmt::Display| format!("JWT_PRIVATE_KEY is not a {alg:?} private key: {e}");
        let block = pem::parse(pem_text.trim()).map_err(|e| bad(&e))?;
        let der = block.contents();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (encoding, public, name) = match alg {
            Algorithm::RS256 => {
                let pair = match block.tag() {
                    "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(der),
                    _ => ring::rsa::KeyPair::from_pkcs8(der),
                }
                .map_err(|e| bad(&e))?;
                let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                let public = vec![("e", b64(&parts.e)), ("kty", "RSA".to_owned()), ("n", b64(&parts.n))];
                (EncodingKey::from_rsa_pem(pem_text.trim().as_bytes()).map_err(|e| bad(&e))?, public, "RS256")
            }
            Algorithm::ES256 => {
                let rng = ring::rand::SystemRandom::new();
                let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &rng,
                )
                .map_err(|e| bad(&e))?;
                let point = ring::signature::KeyPair::public_key(&pair).as_ref();
                if point.len() != 65 {
                    return Err(bad(&"not an uncompressed P-256 point"));
                }
                let public = vec![
                    ("crv", "P-256".to_owned()),
                    ("kty", "EC".to_owned()),
                    ("x", b64(&point[1..33])),
                    ("y", b64(&point[33..65])),
                ];
                (EncodingKey::from_ec_pem(pem_text.trim().as_bytes()).map_err(|e| bad(&e))?, public, "ES256")
            }
            Algorithm::EdDSA => {
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| bad(&e))?;
                let x = b64(ring::signature::KeyPair::public_key(&pair).as_ref());
                let public = vec![("crv", "Ed25519".to_owned()), ("kty", "OKP".to_owned()), ("x", x)];
                (EncodingKey::from_ed_pem(pem_text.trim().as_bytes()).map_err(|e| bad(&e))?, public, "EdDSA")
            }
            other => return Err(format!("{other:?} is not an asymmetric algorithm")),
        };
        let member = |m: &str| public.iter().find(|(k, _)| *k == m).map(|(_, v)| v.as_str()).unwrap_or_default();
        let decoding = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_components(member("n"), member("e")),
            Algorithm::ES256 => DecodingKey::from_ec_components(member("x"), member("y")),
            _ => DecodingKey::from_ed_components(member("x")),
        }
        .map_err(|e| bad(&e))?;
        Ok(SigningKey { encoding, decoding, public, alg: name })
    }

    /// Its RFC 7638 thumbprint.
    fn thumbprint(&self) -> String {
        thumbprint(&self.public)
    }

    /// Its public JWK, as WebCrypto accepts it for verification.
    fn jwk(&self, kid: &str) -> serde_json::Value {
        let mut jwk: serde_json::Map<String, serde_json::Value> =
            self.public.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(v.as_str()))).collect();
        jwk.insert("kid".to_owned(), kid.into());
        jwk.insert("alg".to_owned(), self.alg.into());
        jwk.insert("use".to_owned(), "sig".into());
        jwk.insert("key_ops".to_owned(), serde_json::json!(["verify"]));
        serde_json::Value::Object(jwk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_token;
    use crate::settings::Settings;

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
    fn the_key_id_is_the_rfc_7638_thumbprint() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n\
                 3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd\
                 AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur\
                 -kEgU8awapJzKnqDKgw";
        let members = [("e", "AQAB".to_owned()), ("kty", "RSA".to_owned()), ("n", n.to_owned())];
        assert_eq!(thumbprint(&members), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    /// The keys of a server with an HS256 secret.
    fn hs256_keys() -> JwtKeys {
        let secret = "k".repeat(40);
        let vars = [("ENVIRONMENT", "production"), ("JWT_SECRET_KEY", secret.as_str())];
        let settings =
            Settings::from_vars(&vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).unwrap();
        JwtKeys::from_settings(&settings).unwrap()
    }

    #[test]
    fn a_project_key_whose_exp_is_not_a_number_is_refused_and_one_without_exp_is_not() {
        use serde_json::json;
        let keys = hs256_keys();
        let sign = |claims: serde_json::Value| keys.sign_any(&claims).unwrap();
        let now = chrono::Utc::now().timestamp();
        // CVE-2026-25537: `exp` checked but not required, and of another type, was skipped.
        for exp in [json!("1"), json!((now + 3600).to_string()), json!(-1), json!(true), json!({ "at": now })] {
            let token = sign(json!({ "role": "service_role", "exp": exp }));
            assert!(matches!(keys.project_key_role(&token), Err(Error::InvalidToken)), "exp {exp}");
        }
        let expired = sign(json!({ "role": "service_role", "exp": now - 3600 }));
        assert!(matches!(keys.project_key_role(&expired), Err(Error::TokenExpired)));
        let live = sign(json!({ "role": "service_role", "exp": now + 3600 }));
        assert_eq!(keys.project_key_role(&live).unwrap(), "service_role");
        // GoTrue's rule: a project key need not expire.
        assert_eq!(keys.project_key_role(&sign(json!({ "role": "anon" }))).unwrap(), "anon");
    }

    #[test]
    fn an_access_token_whose_exp_is_missing_or_not_a_number_is_refused() {
        use serde_json::json;
        let keys = hs256_keys();
        let sign = |claims: serde_json::Value| keys.sign_any(&claims).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = |exp: Option<serde_json::Value>| {
            let sid = Uuid::now_v7();
            let mut c = json!({
                "iss": keys.issuer, "aud": keys.audience, "sub": sid, "user_id": sid, "email": "a@example.com",
                "role": "user", "type": "access", "ver": 1, "sid": sid, "aal": "aal1", "iat": now, "jti": "j",
            });
            if let Some(exp) = exp {
                c["exp"] = exp;
            }
            c
        };
        assert!(keys.verify(&sign(claims(Some(json!(now + 600))))).is_ok(), "the control");
        for exp in [None, Some(json!("1")), Some(json!((now + 600).to_string()))] {
            assert!(matches!(keys.verify(&sign(claims(exp.clone()))), Err(Error::InvalidToken)), "exp {exp:?}");
        }
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
