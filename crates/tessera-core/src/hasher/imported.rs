//! The password hashes other systems keep, verified as they are so that imported users
//! (SPEC §5.15) sign in with their old passwords; each is re-hashed to Argon2id at the
//! first sign-in. Each format is stored as one self-describing string:
//!
//! - **PBKDF2** (Keycloak's `pbkdf2`, `pbkdf2-sha256`, `pbkdf2-sha512`; RFC 8018):
//!   `$pbkdf2-sha256$i=27500$SALT$HASH`, salt and derived key in unpadded standard base64
//!   (the PHC string format). The derived key's length is the stored one's.
//! - **Firebase's modified scrypt** (firebase/scrypt): the key is
//!   `scrypt(password, salt ‖ separator, N = 2^n, r, p, 32 bytes)`, and the hash is the
//!   project's signer key encrypted with it under AES-256-CTR with a zero IV. Stored in
//!   GoTrue's form, `$fbscrypt$v=1,n=14,r=8,p=1,ss=SEPARATOR,sk=SIGNER_KEY$SALT$HASH`
//!   (standard base64), so that the hashes of a Supabase project that imported Firebase
//!   users verify as they are: the project's parameters travel with each hash.
//!
//! Every format's cost is bounded (the constants below): a hash that asks for more is not
//! one tessera reads, so no imported account can make a sign-in tie up the hashing pool.

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use ring::pbkdf2;
use subtle::ConstantTimeEq;

/// The most iterations a stored PBKDF2 hash may ask for (Keycloak's defaults are 27,500
/// and, since version 24, 600,000 for SHA-256; OWASP's advice for SHA-1 is 1,300,000).
pub const PBKDF2_MAX_ITERATIONS: u32 = 2_000_000;
/// The longest PBKDF2 derived key (Keycloak's is 64 bytes, or 32 since version 24).
pub const PBKDF2_MAX_KEY: usize = 64;
/// The most memory a Firebase scrypt hash may ask for (128 · r · N bytes; Firebase's
/// default, N = 2^14 and r = 8, is 16 MiB), and the most passes.
pub const SCRYPT_MAX_MEMORY: u64 = 64 << 20;
pub const SCRYPT_MAX_P: u32 = 4;

/// A parsed imported hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Imported {
    Pbkdf2 { digest: Pbkdf2Digest, iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
    FirebaseScrypt(FirebaseScrypt),
}

/// PBKDF2's pseudo-random function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbkdf2Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl Pbkdf2Digest {
    fn name(self) -> &'static str {
        match self {
            Pbkdf2Digest::Sha1 => "pbkdf2-sha1",
            Pbkdf2Digest::Sha256 => "pbkdf2-sha256",
            Pbkdf2Digest::Sha512 => "pbkdf2-sha512",
        }
    }

    fn algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Pbkdf2Digest::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Pbkdf2Digest::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Pbkdf2Digest::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

/// A Firebase project's hash parameters with one user's salt and hash.
#[derive(Clone, PartialEq, Eq)]
pub struct FirebaseScrypt {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub signer_key: Vec<u8>,
    pub separator: Vec<u8>,
}

/// The stored form of a PBKDF2 hash.
pub fn pbkdf2_string(digest: Pbkdf2Digest, iterations: u32, salt: &[u8], hash: &[u8]) -> String {
    format!("${}$i={iterations}${}${}", digest.name(), STANDARD_NO_PAD.encode(salt), STANDARD_NO_PAD.encode(hash))
}

impl FirebaseScrypt {
    /// Whether the parameters are within the cost tessera computes.
    pub fn affordable(log_n: u8, r: u32, p: u32) -> bool {
        (1..=40).contains(&log_n)
            && (1..=SCRYPT_MAX_P).contains(&p)
            && r >= 1
            && 128u64.saturating_mul(u64::from(r)).saturating_mul(1u64 << log_n) <= SCRYPT_MAX_MEMORY
    }
}

/// The stored form of a Firebase scrypt hash (GoTrue's `$fbscrypt$`).
pub fn firebase_string(f: &FirebaseScrypt) -> String {
    let b = |v: &[u8]| STANDARD.encode(v);
    format!(
        "$fbscrypt$v=1,n={},r={},p={},ss={},sk={}${}${}",
        f.log_n,
        f.r,
        f.p,
        b(&f.separator),
        b(&f.signer_key),
        b(&f.salt),
        b(&f.hash)
    )
}

/// Reads an imported hash; `None` when `stored` is not one (or is malformed).
pub fn parse(stored: &str) -> Option<Imported> {
    let mut parts = stored.split('$');
    if !parts.next()?.is_empty() {
        return None;
    }
    let name = parts.next()?;
    let params = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let bytes = |s: &str| STANDARD_NO_PAD.decode(s.trim_end_matches('=')).ok();
    match name {
        "pbkdf2-sha1" | "pbkdf2-sha256" | "pbkdf2-sha512" => {
            let digest = match name {
                "pbkdf2-sha1" => Pbkdf2Digest::Sha1,
                "pbkdf2-sha256" => Pbkdf2Digest::Sha256,
                _ => Pbkdf2Digest::Sha512,
            };
            let iterations: u32 = params.strip_prefix("i=")?.parse().ok()?;
            let [salt, hash] = rest.as_slice() else { return None };
            let (salt, hash) = (bytes(salt)?, bytes(hash)?);
            ((1..=PBKDF2_MAX_ITERATIONS).contains(&iterations) && !hash.is_empty() && hash.len() <= PBKDF2_MAX_KEY)
                .then_some(Imported::Pbkdf2 { digest, iterations, salt, hash })
        }
        "fbscrypt" => {
            let (mut version, mut log_n, mut r, mut p) = (None, None, None, None);
            let (mut separator, mut key) = (Vec::new(), Vec::new());
            for kv in params.split(',') {
                match kv.split_once('=')? {
                    ("v", v) => version = Some(v),
                    ("n", v) => log_n = v.parse::<u8>().ok(),
                    ("r", v) => r = v.parse::<u32>().ok(),
                    ("p", v) => p = v.parse::<u32>().ok(),
                    ("ss", v) => separator = bytes(v)?,
                    ("sk", v) => key = bytes(v)?,
                    _ => return None,
                }
            }
            let [salt, hash] = rest.as_slice() else { return None };
            let f = FirebaseScrypt {
                log_n: log_n?,
                r: r?,
                p: p?,
                salt: bytes(salt)?,
                hash: bytes(hash)?,
                signer_key: key,
                separator,
            };
            let sane = version == Some("1")
                && FirebaseScrypt::affordable(f.log_n, f.r, f.p)
                && !f.hash.is_empty()
                && f.hash.len() == f.signer_key.len();
            sane.then_some(Imported::FirebaseScrypt(f))
        }
        _ => None,
    }
}

/// Checks `password` against an imported hash: `None` when `stored` is not one.
pub fn verify(password: &str, stored: &str) -> Option<bool> {
    if !stored.starts_with("$pbkdf2-") && !stored.starts_with("$fbscrypt$") {
        return None;
    }
    let Some(parsed) = parse(stored) else { return Some(false) };
    Some(matches(password.as_bytes(), &parsed))
}

fn matches(password: &[u8], stored: &Imported) -> bool {
    match stored {
        Imported::Pbkdf2 { digest, iterations, salt, hash } => {
            let Some(iterations) = std::num::NonZeroU32::new(*iterations) else { return false };
            // ring compares in constant time.
            pbkdf2::verify(digest.algorithm(), iterations, salt, password, hash).is_ok()
        }
        Imported::FirebaseScrypt(f) => firebase_hash(password, f).is_some_and(|h| bool::from(h.ct_eq(&f.hash))),
    }
}

/// Firebase's modified scrypt of `password` with `f`'s parameters and salt.
fn firebase_hash(password: &[u8], f: &FirebaseScrypt) -> Option<Vec<u8>> {
    let params = scrypt::Params::new(f.log_n, f.r, f.p).ok()?;
    let mut salt = Vec::with_capacity(f.salt.len() + f.separator.len());
    salt.extend_from_slice(&f.salt);
    salt.extend_from_slice(&f.separator);
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).ok()?;
    let mut out = f.signer_key.clone();
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new(&key.into(), &[0u8; 16].into());
    cipher.apply_keystream(&mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// Firebase's own published example (github.com/firebase/scrypt, README).
    #[test]
    fn firebase_scrypt_matches_firebases_published_example() {
        let d = |s: &str| STANDARD.decode(s).unwrap();
        let f = FirebaseScrypt {
            log_n: 14,
            r: 8,
            p: 1,
            salt: d("42xEC+ixf3L2lw=="),
            hash: d("lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ=="),
            signer_key: d("jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="),
            separator: d("Bw=="),
        };
        let stored = firebase_string(&f);
        assert!(parse(&stored) == Some(Imported::FirebaseScrypt(f)));
        // GoTrue's own form of the same hash (internal/crypto/password.go).
        assert!(stored.starts_with("$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=jxspr8Ki0RYyc"), "{stored}");
        assert_eq!(verify("user1password", &stored), Some(true));
        assert_eq!(verify("user1passwore", &stored), Some(false));
    }

    /// RFC 6070's PBKDF2-HMAC-SHA1 vector and RFC 7914's PBKDF2-HMAC-SHA256 one (§11).
    #[test]
    fn pbkdf2_matches_the_rfc_vectors() {
        let sha1 = pbkdf2_string(
            Pbkdf2Digest::Sha1,
            4096,
            b"salt",
            &hex::decode("4b007901b765489abead49d926f721d065a429c1").unwrap(),
        );
        assert_eq!(verify("password", &sha1), Some(true));
        assert_eq!(verify("passwore", &sha1), Some(false));
        let sha256 = pbkdf2_string(
            Pbkdf2Digest::Sha256,
            80000,
            b"NaCl",
            &hex::decode(
                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
                 a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
            )
            .unwrap(),
        );
        assert_eq!(verify("Password", &sha256), Some(true));
        assert_eq!(verify("password", &sha256), Some(false));
    }

    #[test]
    fn malformed_imported_hashes_never_match() {
        for bad in [
            "$pbkdf2-sha256$i=0$c2FsdA$AAAA",
            "$pbkdf2-sha256$i=99999999999$c2FsdA$AAAA",
            "$pbkdf2-sha256$c2FsdA$AAAA",
            "$pbkdf2-md5$i=1$c2FsdA$AAAA",
            "$fbscrypt$v=1,n=20,r=8,p=1,ss=Bw==,sk=AAAA$AA==$AAAA",
            "$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=AA==$AA==$AAAA",
            "$fbscrypt$v=2,n=14,r=8,p=1,ss=Bw==,sk=AAAA$AA==$AAAA",
            "$pbkdf2-sha256$i=1000$c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
            assert_ne!(verify("x", bad), Some(true), "{bad}");
        }
        assert_eq!(verify("x", "$2b$10$abc"), None);
        assert!(parse("$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=AAAA$AA==$AAAA").is_some(), "the smallest sane one");
    }
}
