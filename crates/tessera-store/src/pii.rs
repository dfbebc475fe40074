//! PII encryption at rest (SPEC §5.8). With `PII_ENCRYPTION_KEY`, email addresses and
//! phone numbers (a user's, a pending new address, an audit detail's, a queued mail's
//! recipient and body) are stored AES-256-GCM encrypted, `pii1:KID:BASE64(nonce‖sealed)`
//! with a fresh nonce each time, and addresses are found through a blind index: the
//! HMAC-SHA-256 of the normalised (trimmed, lower-case) address. Both keys are derived
//! from each key of the ring with HKDF-SHA-256 under different labels, so the index key
//! is never the data key. The first key of the ring encrypts and indexes; every key
//! decrypts what names it and indexes what it indexed, so lookups ask for the index of
//! every key.
//!
//! Values without the `pii1:` prefix are plaintext and pass through: a server with the
//! key reads a database that is only partly encrypted (`tessera pii encrypt` finishes
//! the job). A plaintext email cannot begin with `pii1:` (a colon is only allowed in a
//! quoted local part, which begins with a quote).

use aes_gcm::aead::{Aead, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_domain::Error;

use crate::entity::{mail_outbox, one_time_token, user};

/// The prefix of an encrypted value.
pub(crate) const PREFIX: &str = "pii1:";
/// The HKDF label of the data key.
const DATA_LABEL: &[u8] = b"tessera pii data key v1";
/// The HKDF label of the blind-index key.
const INDEX_LABEL: &[u8] = b"tessera pii blind index key v1";
/// What the key check of a key id is the blind index of.
const CHECK_INPUT: &str = "tessera pii key check v1";
/// The fields of an audit detail that hold an address or a phone number.
const DETAIL_FIELDS: [&str; 5] = ["email", "address", "new_email", "old_email", "phone"];

/// Parses a key ring setting: `BASE64KEY` or `KID:BASE64KEY,KID:BASE64KEY,…`, each key the
/// base64 of 32 bytes. A key without an id is named by its fingerprint (the first four
/// bytes of the SHA-256 of its base64, in hex), so the same key always has the same id.
pub fn parse_key_ring(ring: &str) -> Result<Vec<(String, [u8; 32])>, String> {
    let mut keys: Vec<(String, [u8; 32])> = Vec::new();
    for entry in ring.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, b64) = match entry.split_once(':') {
            Some((kid, b64)) => (kid.trim().to_owned(), b64.trim()),
            None => (hex::encode(&Sha256::digest(entry.as_bytes())[..4]), entry),
        };
        let n = keys.len() + 1;
        // The entry is not echoed: written the wrong way round, it would show the key.
        if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("entry {n} of the ring: a key id must be letters, digits, - or _ (KID:BASE64KEY)"));
        }
        let bytes = STANDARD.decode(b64).map_err(|_| format!("key {kid} is not base64"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| format!("key {kid} is not 32 bytes"))?;
        if keys.iter().any(|(k, _)| *k == kid) {
            return Err(format!("the key id {kid} appears twice"));
        }
        keys.push((kid, key));
    }
    if keys.is_empty() {
        return Err("no key".to_owned());
    }
    Ok(keys)
}

struct PiiKey {
    kid: String,
    data: Aes256Gcm,
    index: Hmac<Sha256>,
}

/// The PII cipher of a store: off (no key) or a key ring.
#[derive(Default)]
pub struct Pii {
    keys: Vec<PiiKey>,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pii").field("kids", &self.kids()).finish()
    }
}

/// Normalises an address for its blind index: trimmed and lower-case (the unique rule is
/// case-insensitive).
fn normalise(value: &str) -> String {
    value.trim().to_lowercase()
}

impl Pii {
    /// Encryption off: values are stored as they are.
    pub fn off() -> Pii {
        Pii::default()
    }

    /// The cipher of a `PII_ENCRYPTION_KEY` setting (see [`parse_key_ring`]).
    pub fn parse(ring: &str) -> Result<Pii, String> {
        let mut keys = Vec::new();
        for (kid, secret) in parse_key_ring(ring)? {
            if kid.len() > 32 {
                return Err(format!("the key id {kid} is longer than 32 characters"));
            }
            let hk = Hkdf::<Sha256>::new(Some(b"tessera pii"), &secret);
            let mut data = [0u8; 32];
            let mut index = [0u8; 32];
            hk.expand(DATA_LABEL, &mut data).map_err(|_| "key derivation failed".to_owned())?;
            hk.expand(INDEX_LABEL, &mut index).map_err(|_| "key derivation failed".to_owned())?;
            let data = Aes256Gcm::new_from_slice(&data).map_err(|_| "key derivation failed".to_owned())?;
            let index =
                <Hmac<Sha256> as KeyInit>::new_from_slice(&index).map_err(|_| "key derivation failed".to_owned())?;
            keys.push(PiiKey { kid, data, index });
        }
        Ok(Pii { keys })
    }

    /// Whether values are encrypted.
    pub fn is_on(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The key ids, the encrypting one first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The id of the key that encrypts.
    pub fn primary_kid(&self) -> Option<&str> {
        self.keys.first().map(|k| k.kid.as_str())
    }

    fn key(&self, kid: &str) -> Option<&PiiKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    fn mac(key: &PiiKey, value: &str) -> String {
        let mut mac = key.index.clone();
        mac.update(normalise(value).as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The value a key id's row in `pii_keys` holds: the blind index of a constant, which
    /// tells whether a key given under that id is the key the data was written with.
    pub(crate) fn key_check(&self, kid: &str) -> Option<String> {
        self.key(kid).map(|k| Self::mac(k, CHECK_INPUT))
    }

    /// The blind index of an address under the encrypting key; `None` when off.
    pub(crate) fn index(&self, value: &str) -> Option<String> {
        self.keys.first().map(|k| Self::mac(k, value))
    }

    /// The blind index of an address under every key of the ring (what a lookup asks for
    /// while rows written under an older key remain); empty when off.
    pub(crate) fn indexes(&self, value: &str) -> Vec<String> {
        self.keys.iter().map(|k| Self::mac(k, value)).collect()
    }

    /// Encrypts a value under the first key with a fresh nonce; off, the value as it is.
    pub(crate) fn seal(&self, plain: &str) -> Result<String, Error> {
        let Some(key) = self.keys.first() else { return Ok(plain.to_owned()) };
        let nonce = Nonce::generate();
        let sealed = key
            .data
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| Error::Internal("a value could not be encrypted".to_owned()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.kid, STANDARD.encode(blob)))
    }

    fn seal_opt(&self, value: Option<String>) -> Result<Option<String>, Error> {
        value.map(|v| self.seal(&v)).transpose()
    }

    /// The id of the key a stored value is encrypted under; `None` for plaintext.
    pub(crate) fn kid_of(stored: &str) -> Option<&str> {
        stored.strip_prefix(PREFIX).and_then(|rest| rest.split_once(':')).map(|(kid, _)| kid)
    }

    /// Whether a stored value is plaintext or encrypted under another key than the first:
    /// what `tessera pii encrypt` (plaintext only) and `rotate` (both) rewrite.
    pub(crate) fn needs_sealing(&self, stored: &str, rotate: bool) -> bool {
        match Self::kid_of(stored) {
            None => true,
            Some(kid) => rotate && Some(kid) != self.primary_kid(),
        }
    }

    /// Decrypts a stored value; plaintext passes through. A value under a key the ring
    /// lacks, or that does not decrypt, is an error naming the key id (never garbage).
    pub(crate) fn open(&self, stored: String) -> Result<String, Error> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored) };
        let Some((kid, b64)) = rest.split_once(':') else { return Err(broken(None)) };
        let key = self.key(kid).ok_or_else(|| broken(Some(kid)))?;
        let blob = STANDARD.decode(b64).map_err(|_| broken(Some(kid)))?;
        if blob.len() < 12 {
            return Err(broken(Some(kid)));
        }
        let (nonce, sealed) = blob.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| broken(Some(kid)))?;
        let plain = key.data.decrypt(&nonce, sealed).map_err(|_| broken(Some(kid)))?;
        String::from_utf8(plain).map_err(|_| broken(Some(kid)))
    }

    fn open_opt(&self, stored: Option<String>) -> Result<Option<String>, Error> {
        stored.map(|v| self.open(v)).transpose()
    }

    /// Encrypts a new user's email, phone and pending email and sets their blind indexes.
    pub(crate) fn seal_user(&self, mut u: user::Model) -> Result<user::Model, Error> {
        u.email_index = self.index(&u.email);
        u.new_email_index = u.new_email.as_deref().and_then(|e| self.index(e));
        u.phone_index = u.phone.as_deref().and_then(|p| self.index(p));
        if self.is_on() {
            u.email = self.seal(&u.email)?;
            u.phone = self.seal_opt(u.phone)?;
            u.new_email = self.seal_opt(u.new_email)?;
        }
        Ok(u)
    }

    /// The changed email, phone and pending email of a user, encrypted, with their blind
    /// indexes (cleared when off, so no stale index outlives an address).
    pub(crate) fn seal_user_changes(&self, mut u: user::ActiveModel) -> Result<user::ActiveModel, Error> {
        use sea_orm::ActiveValue::Set;
        if let Set(email) = u.email.clone() {
            u.email_index = Set(self.index(&email));
            u.email = Set(self.seal(&email)?);
        }
        if let Set(new_email) = u.new_email.clone() {
            u.new_email_index = Set(new_email.as_deref().and_then(|e| self.index(e)));
            u.new_email = Set(self.seal_opt(new_email)?);
        }
        if let Set(phone) = u.phone.clone() {
            u.phone_index = Set(phone.as_deref().and_then(|p| self.index(p)));
            u.phone = Set(self.seal_opt(phone)?);
        }
        Ok(u)
    }

    /// A user as stored, with its email, phone and pending email decrypted.
    pub(crate) fn open_user(&self, mut u: user::Model) -> Result<user::Model, Error> {
        u.email = self.open(u.email)?;
        u.phone = self.open_opt(u.phone)?;
        u.new_email = self.open_opt(u.new_email)?;
        Ok(u)
    }

    /// A one-time token with its new address encrypted and indexed.
    pub(crate) fn seal_token(&self, mut t: one_time_token::Model) -> Result<one_time_token::Model, Error> {
        t.new_email_index = t.new_email.as_deref().and_then(|e| self.index(e));
        t.new_email = self.seal_opt(t.new_email)?;
        Ok(t)
    }

    /// A one-time token as stored, its new address decrypted.
    pub(crate) fn open_token(&self, mut t: one_time_token::Model) -> Result<one_time_token::Model, Error> {
        t.new_email = self.open_opt(t.new_email)?;
        Ok(t)
    }

    /// A queued mail with its recipient and bodies encrypted and the recipient indexed.
    pub(crate) fn seal_mail(&self, mut m: mail_outbox::Model) -> Result<mail_outbox::Model, Error> {
        m.to_index = self.index(&m.to_addr);
        if self.is_on() {
            m.to_addr = self.seal(&m.to_addr)?;
            m.subject = self.seal_nonempty(m.subject)?;
            m.text_body = self.seal_nonempty(m.text_body)?;
            m.html_body = self.seal_nonempty(m.html_body)?;
        }
        Ok(m)
    }

    fn seal_nonempty(&self, body: String) -> Result<String, Error> {
        if body.is_empty() {
            Ok(body)
        } else {
            self.seal(&body)
        }
    }

    /// A queued mail as stored, decrypted.
    pub(crate) fn open_mail(&self, mut m: mail_outbox::Model) -> Result<mail_outbox::Model, Error> {
        m.to_addr = self.open(m.to_addr)?;
        m.subject = self.open(m.subject)?;
        m.text_body = self.open(m.text_body)?;
        m.html_body = self.open(m.html_body)?;
        Ok(m)
    }

    /// Encrypts, in an audit detail, the strings of the fields that hold an address or a
    /// phone number (at any depth).
    pub(crate) fn seal_detail(&self, detail: &mut Value) -> Result<(), Error> {
        if self.is_on() {
            walk_detail(detail, &mut |s| if Self::kid_of(s).is_none() { self.seal(s).map(Some) } else { Ok(None) })?;
        }
        Ok(())
    }

    /// The blind index of the address an audit detail names (its `email`, plaintext or
    /// sealed), under the encrypting key; `None` when off or when it names none.
    pub(crate) fn detail_index(&self, detail: &Value) -> Option<String> {
        let email = detail.get("email")?.as_str()?;
        let plain = if Self::kid_of(email).is_some() { self.open(email.to_owned()).ok()? } else { email.to_owned() };
        self.index(&plain)
    }

    /// Decrypts what [`Pii::seal_detail`] encrypted.
    pub(crate) fn open_detail(&self, detail: &mut Value) -> Result<(), Error> {
        walk_detail(detail, &mut |s| {
            if Self::kid_of(s).is_some() {
                self.open(s.to_owned()).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Whether an audit detail holds a personal field that [`Pii::needs_sealing`].
    pub(crate) fn detail_needs_sealing(&self, detail: &Value, rotate: bool) -> bool {
        let mut needed = false;
        let _ = walk_detail(&mut detail.clone(), &mut |s| {
            needed |= self.needs_sealing(s, rotate);
            Ok(None)
        });
        needed
    }
}

/// Calls `f` on every string of a personal field of `detail`; a `Some` answer replaces it.
fn walk_detail(detail: &mut Value, f: &mut impl FnMut(&str) -> Result<Option<String>, Error>) -> Result<(), Error> {
    match detail {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(s) if DETAIL_FIELDS.contains(&k.as_str()) => {
                        if let Some(new) = f(s)? {
                            *s = new;
                        }
                    }
                    other => walk_detail(other, f)?,
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                walk_detail(v, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The error of a value that cannot be decrypted.
fn broken(kid: Option<&str>) -> Error {
    match kid {
        Some(kid) => Error::Internal(format!(
            "a value encrypted under PII key {kid:?} cannot be decrypted: is that key, unchanged, in PII_ENCRYPTION_KEY?"
        )),
        None => Error::Internal("a stored encrypted value is malformed".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn seals_with_a_fresh_nonce_and_opens_under_the_named_key() {
        let pii = Pii::parse(&format!("new:{K2},old:{K1}")).unwrap();
        let a = pii.seal("ada@example.com").unwrap();
        let b = pii.seal("ada@example.com").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(a.starts_with("pii1:new:") && !a.contains("ada"));
        assert_eq!(pii.open(a).unwrap(), "ada@example.com");
        let old = Pii::parse(&format!("old:{K1}")).unwrap().seal("x@y.z").unwrap();
        assert_eq!(pii.open(old.clone()).unwrap(), "x@y.z");
        let err = Pii::parse(&format!("new:{K2}")).unwrap().open(old).unwrap_err();
        assert!(format!("{err:?}").contains("\\\"old\\\""), "{err:?}");
        assert_eq!(pii.open("plain@example.com".to_owned()).unwrap(), "plain@example.com");
    }

    #[test]
    fn the_blind_index_is_keyed_case_insensitive_and_not_the_data_key() {
        let one = Pii::parse(K1).unwrap();
        let two = Pii::parse(K2).unwrap();
        assert_eq!(one.index("Ada@Example.com "), one.index("ada@example.com"));
        assert_ne!(one.index("ada@example.com"), two.index("ada@example.com"));
        let plain_sha = URL_SAFE_NO_PAD.encode(Sha256::digest(b"ada@example.com"));
        assert_ne!(one.index("ada@example.com"), Some(plain_sha));
        assert_eq!(one.primary_kid().map(str::len), Some(8), "a bare key is named by its fingerprint");
    }

    #[test]
    fn a_wrong_key_under_the_same_id_does_not_decrypt() {
        let sealed = Pii::parse(&format!("k:{K1}")).unwrap().seal("+441234567890").unwrap();
        assert!(Pii::parse(&format!("k:{K2}")).unwrap().open(sealed).is_err());
        assert!(Pii::parse("k:short").is_err());
        assert!(Pii::parse(&format!("a:{K1},a:{K2}")).is_err());
    }

    #[test]
    fn audit_details_seal_only_personal_fields() {
        let pii = Pii::parse(K1).unwrap();
        let mut d = serde_json::json!({ "email": "a@b.c", "reason": "x", "nested": [{ "phone": "+1555" }] });
        pii.seal_detail(&mut d).unwrap();
        assert_eq!(d["reason"], "x");
        assert!(d["email"].as_str().unwrap().starts_with(PREFIX));
        assert!(d["nested"][0]["phone"].as_str().unwrap().starts_with(PREFIX));
        assert!(!pii.detail_needs_sealing(&d, true));
        pii.open_detail(&mut d).unwrap();
        assert_eq!(d, serde_json::json!({ "email": "a@b.c", "reason": "x", "nested": [{ "phone": "+1555" }] }));
        assert!(pii.detail_needs_sealing(&d, false));
    }
}
