//! The keys TOTP secrets are encrypted under (`MFA_ENCRYPTION_KEY`).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use tessera_domain::Error;

use crate::crypto::os_rng;

/// A new 32-byte key, base64: what `MFA_ENCRYPTION_KEY` holds (generated in development).
pub fn new_key() -> String {
    let mut key = [0u8; 32];
    os_rng().fill_bytes(&mut key);
    STANDARD.encode(key)
}

/// The keys TOTP secrets are encrypted under: the first encrypts, each decrypts what was
/// encrypted under it (found by the key id stored with the ciphertext).
pub struct MfaKeys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl MfaKeys {
    /// Parses `BASE64KEY` or `KID:BASE64KEY,KID:BASE64KEY,…`; a key without an id is named
    /// by its fingerprint.
    pub fn parse(ring: &str) -> Result<MfaKeys, String> {
        let keys = tessera_store::pii::parse_key_ring(ring)?
            .into_iter()
            .map(|(kid, key)| (kid, Aes256Gcm::new(&key.into())))
            .collect();
        Ok(MfaKeys { keys })
    }

    /// Encrypts with the first key and a fresh nonce: `KID:NONCE:CIPHERTEXT` (base64).
    pub(crate) fn encrypt(&self, plain: &[u8]) -> Result<String, Error> {
        let (kid, cipher) = self.keys.first().ok_or_else(|| Error::Internal("no MFA key".to_owned()))?;
        let mut nonce = [0u8; 12];
        os_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| Error::Internal("cannot encrypt a TOTP secret".to_owned()))?;
        Ok(format!("{kid}:{}:{}", STANDARD.encode(nonce), STANDARD.encode(sealed)))
    }

    /// Decrypts what [`MfaKeys::encrypt`] made, under the key it names.
    pub(crate) fn decrypt(&self, stored: &str) -> Result<Vec<u8>, Error> {
        let broken =
            || Error::Internal("a TOTP secret cannot be decrypted (is its key in MFA_ENCRYPTION_KEY?)".to_owned());
        let mut parts = stored.splitn(3, ':');
        let (Some(kid), Some(nonce), Some(sealed)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(broken());
        };
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == kid).ok_or_else(broken)?;
        let nonce = STANDARD.decode(nonce).map_err(|_| broken())?;
        let sealed = STANDARD.decode(sealed).map_err(|_| broken())?;
        let nonce = Nonce::try_from(nonce.as_slice()).map_err(|_| broken())?;
        cipher.decrypt(&nonce, sealed.as_ref()).map_err(|_| broken())
    }
}

impl std::fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaKeys").field("kids", &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>()).finish()
    }
}

/// Parses `MFA_ENCRYPTION_KEY` from settings.
pub fn keys_from(secret: Option<&SecretString>) -> Result<MfaKeys, String> {
    let ring = secret.ok_or("MFA_ENCRYPTION_KEY must be set")?;
    MfaKeys::parse(ring.expose_secret()).map_err(|e| format!("MFA_ENCRYPTION_KEY: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_under_the_ring_and_fail_without_their_key() {
        let (a, b) = (new_key(), new_key());
        let ring = MfaKeys::parse(&format!("new:{a},old:{b}")).unwrap();
        let old = MfaKeys::parse(&format!("old:{b}")).unwrap();
        let sealed = old.encrypt(b"secret").unwrap();
        assert!(sealed.starts_with("old:"));
        assert_eq!(ring.decrypt(&sealed).unwrap(), b"secret", "an old key still decrypts");
        assert!(ring.encrypt(b"secret").unwrap().starts_with("new:"), "the first key encrypts");
        assert_ne!(ring.encrypt(b"x").unwrap(), ring.encrypt(b"x").unwrap(), "a fresh nonce each time");
        assert!(MfaKeys::parse(&a).unwrap().decrypt(&sealed).is_err());
        assert!(MfaKeys::parse("not base64!").is_err());
        assert!(MfaKeys::parse(&STANDARD.encode([0u8; 16])).is_err(), "16 bytes is no AES-256 key");
    }
}
