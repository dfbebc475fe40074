//! Small cryptographic primitives every capability uses: random tokens from the OS
//! generator, constant-time comparison, SHA-256 and HMAC key derivation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The OS generator, whose failure panics (as `OsRng` always did): no token, key or code
/// can be issued without it.
pub(crate) fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// `bytes` random bytes from the OS generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    os_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Whether two secrets are equal, compared in constant time (their length aside).
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Lower-case hex SHA-256 of a secret: how refresh tokens are stored.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// HMAC-SHA-256 of `label` under `secret`: a key for one purpose, derived from a secret
/// that may serve others.
pub fn derive_key(secret: &[u8], label: &[u8]) -> Vec<u8> {
    mac(secret, label).finalize().into_bytes().to_vec()
}

pub(crate) fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail; an empty key is the fallback
    // that keeps the signature total.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .or_else(|_| <Hmac<Sha256> as KeyInit>::new_from_slice(&[]))
        .unwrap_or_else(|_| unreachable_mac());
    m.update(data);
    m
}

#[allow(clippy::panic)]
fn unreachable_mac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 rejected a key")
}
