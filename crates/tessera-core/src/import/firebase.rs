//! Firebase: `firebase auth:export --format=JSON`, with the project's password hash
//! parameters (the console's `hash_config { … }` block, or its JSON form).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

use super::record::{boolean, field as get, object, provider_name, text, time, ImportedIdentity, Reason, Record};
use crate::hasher::imported::{firebase_string, FirebaseScrypt, SCRYPT_MAX_MEMORY};

/// A project's scrypt parameters (no `Debug`: the signer key is a secret).
#[derive(Clone)]
pub struct HashConfig {
    signer_key: Vec<u8>,
    separator: Vec<u8>,
    rounds: u32,
    mem_cost: u8,
}

/// Standard or URL-safe base64, padded or not (Firebase writes both).
fn base64(s: &str) -> Option<Vec<u8>> {
    let s: String = s
        .trim()
        .chars()
        .map(|c| {
            if c == '-' {
                '+'
            } else if c == '_' {
                '/'
            } else {
                c
            }
        })
        .collect();
    let unpadded = s.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded).ok().or_else(|| STANDARD.decode(&s).ok())
}

impl HashConfig {
    /// Reads the console's block (`base64_signer_key: …,` lines) or a JSON object with
    /// the same keys (or the API's `signerKey`, `saltSeparator`, `rounds`, `memoryCost`).
    pub fn parse(text: &str) -> Result<HashConfig, String> {
        let mut fields = std::collections::HashMap::new();
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
            let m = match m.get("hash_config").or_else(|| m.get("hashConfig")) {
                Some(Value::Object(inner)) => inner.clone(),
                _ => m,
            };
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.insert(k, v);
            }
        } else {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once(':') {
                    fields.insert(k.trim().to_owned(), v.trim().trim_end_matches(',').trim().to_owned());
                }
            }
        }
        let field = |names: &[&str]| names.iter().find_map(|n| fields.get(*n).cloned());
        let signer_key = field(&["base64_signer_key", "signerKey"])
            .and_then(|s| base64(&s))
            .ok_or("the hash config has no base64_signer_key")?;
        let separator = field(&["base64_salt_separator", "saltSeparator"])
            .map(|s| base64(&s).ok_or("base64_salt_separator is not base64"))
            .transpose()?
            .unwrap_or_default();
        let rounds: u32 = field(&["rounds"]).and_then(|s| s.parse().ok()).ok_or("the hash config has no rounds")?;
        let mem_cost: u8 =
            field(&["mem_cost", "memoryCost"]).and_then(|s| s.parse().ok()).ok_or("the hash config has no mem_cost")?;
        if let Some(alg) = field(&["algorithm"]) {
            if !alg.eq_ignore_ascii_case("scrypt") {
                return Err(format!("the hash algorithm is {alg}; tessera reads Firebase's SCRYPT"));
            }
        }
        if !FirebaseScrypt::affordable(mem_cost, rounds, 1) || signer_key.is_empty() {
            return Err(format!(
                "rounds {rounds} and mem_cost {mem_cost} ask for more than {} MiB per hash (or no signer key)",
                SCRYPT_MAX_MEMORY >> 20
            ));
        }
        Ok(HashConfig { signer_key, separator, rounds, mem_cost })
    }
}

/// A user of the export. Without a hash config, a user with a password is refused.
pub fn user(row: u64, m: &Map<String, Value>, config: Option<&HashConfig>) -> Result<Record, super::record::Refused> {
    let mut r = Record::at(row);
    r.source_id = text(get(m, "localId"));
    r.email = text(get(m, "email"));
    r.created_at = time(get(m, "createdAt"));
    r.updated_at = r.created_at;
    r.last_sign_in_at = time(get(m, "lastSignedInAt")).or_else(|| time(get(m, "lastLoginAt")));
    if boolean(get(m, "emailVerified")) {
        r.email_verified_at = r.created_at.or_else(|| Some(crate::caller::now()));
    }
    r.phone = text(get(m, "phoneNumber"));
    r.phone_verified_at = r.phone.as_ref().and(r.created_at);
    r.is_active = !boolean(get(m, "disabled"));
    r.full_name = text(get(m, "displayName"));
    r.avatar_url = text(get(m, "photoUrl"));
    // The custom claims stay as they were; a `role: "admin"` or `admin: true` makes an admin.
    let claims = object(get(m, "customAttributes"));
    if claims.get("role").and_then(Value::as_str) == Some("admin")
        || claims.get("admin").and_then(Value::as_bool) == Some(true)
    {
        r.role = Some("admin".to_owned());
    }
    r.app_metadata = claims;
    if let Some(name) = &r.full_name {
        r.user_metadata.insert("full_name".to_owned(), Value::String(name.clone()));
    }
    if let Value::Array(providers) = get(m, "providerUserInfo") {
        for p in providers.iter().filter_map(Value::as_object) {
            let provider = text(get(p, "providerId")).unwrap_or_default();
            if matches!(provider.as_str(), "password" | "phone" | "") {
                continue;
            }
            let Some(subject) = text(get(p, "rawId")) else { continue };
            r.identities.push(ImportedIdentity {
                id: None,
                provider: provider_name(&provider),
                provider_id: subject,
                email: text(get(p, "email")),
                data: Value::Object(p.clone()),
                created_at: r.created_at,
                last_sign_in_at: None,
            });
        }
    }
    if let Some(hash) = text(get(m, "passwordHash")) {
        let Some(config) = config else {
            return Err(r.refused(
                Reason::UnknownHashFormat,
                "the user has a password and no --hash-config was given (the project's hash parameters)",
            ));
        };
        let (Some(hash), Some(salt)) = (base64(&hash), text(get(m, "salt")).and_then(|s| base64(&s))) else {
            return Err(r.refused(Reason::UnknownHashFormat, "the password hash or its salt is missing or not base64"));
        };
        let f = FirebaseScrypt {
            log_n: config.mem_cost,
            r: config.rounds,
            p: 1,
            salt,
            hash,
            signer_key: config.signer_key.clone(),
            separator: config.separator.clone(),
        };
        r.password_hash = Some(firebase_string(&f));
    }
    Ok(r)
}
