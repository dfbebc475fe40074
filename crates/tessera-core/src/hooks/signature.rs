//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): every hook call and
//! event delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,BASE64(HMAC-SHA-256(key, "{id}.{timestamp}.{body}"))`, one signature per secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};

/// The keys of one receiver: `v1,whsec_BASE64` (or `whsec_BASE64`), several joined by
/// `|` while a secret is rotated; each signs every message, so the receiver accepts
/// either during the change.
pub struct Secrets {
    keys: Vec<SecretSlice<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} keys)", self.keys.len())
    }
}

impl Clone for Secrets {
    fn clone(&self) -> Self {
        Secrets { keys: self.keys.iter().map(|k| SecretSlice::from(k.expose_secret().to_vec())).collect() }
    }
}

impl Secrets {
    /// Parses `v1,whsec_…|v1,whsec_…`; the problem, naming `setting`, when a part is not
    /// a base64 secret.
    pub fn parse(setting: &str, value: &str) -> Result<Secrets, String> {
        let mut keys = Vec::new();
        for part in value.split('|').map(str::trim).filter(|p| !p.is_empty()) {
            let part = part.strip_prefix("v1,").unwrap_or(part);
            let encoded = part.strip_prefix("whsec_").unwrap_or(part);
            match STANDARD.decode(encoded) {
                Ok(key) if !key.is_empty() => keys.push(SecretSlice::from(key)),
                _ => return Err(format!("{setting} holds a secret that is not v1,whsec_BASE64")),
            }
        }
        if keys.is_empty() {
            return Err(format!("{setting} holds no secret (v1,whsec_BASE64, several joined by |)"));
        }
        Ok(Secrets { keys })
    }

    /// The `webhook-signature` header of a message: `v1,SIG` per key, space-separated.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.expose_secret()) else {
                continue;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            out.push(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
        }
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification, checked with the python
    /// `standardwebhooks` 1.3.0 library too.
    #[test]
    fn signs_the_specification_example() {
        let s = Secrets::parse("X", "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let s = Secrets::parse("X", "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw|whsec_c2VjcmV0").unwrap();
        let sig = s.sign("id", 1, b"{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(Secrets::parse("X", "v1,whsec_!!").is_err());
        assert!(Secrets::parse("X", " | ").is_err());
    }
}
