//! Keycloak: a realm export (`kc.sh export`, or the admin console's partial export):
//! `users[]` with their `credentials[]` (PBKDF2-SHA1/256/512 or Argon2 password hashes,
//! TOTP secrets), `federatedIdentities[]` and realm roles.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use serde_json::{Map, Value};

use super::record::{
    boolean, field as get, object, provider_name, text, time, ImportedIdentity, ImportedTotp, Reason, Record,
};
use crate::hasher::imported::{pbkdf2_string, Pbkdf2Digest};

fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok().or_else(|| STANDARD_NO_PAD.decode(s.trim().trim_end_matches('=')).ok())
}

/// The first value of one of Keycloak's multi-valued parameters or attributes.
fn first(m: &Map<String, Value>, key: &str) -> Option<String> {
    match get(m, key) {
        Value::Array(a) => a.first().and_then(text),
        other => text(other),
    }
}

/// A user of the export.
pub fn user(row: u64, m: &Map<String, Value>) -> Result<Record, super::record::Refused> {
    let mut r = Record::at(row);
    r.source_id = text(get(m, "id"));
    r.email = text(get(m, "email"));
    r.created_at = time(get(m, "createdTimestamp"));
    r.updated_at = r.created_at;
    if boolean(get(m, "emailVerified")) {
        r.email_verified_at = r.created_at.or_else(|| Some(crate::caller::now()));
    }
    r.is_active = m.get("enabled").is_none_or(boolean);
    if text(get(m, "serviceAccountClientId")).is_some() {
        r.skip = Some(Reason::ServiceAccount);
    }
    let first_name = text(get(m, "firstName"));
    let last_name = text(get(m, "lastName"));
    let full = [first_name.clone(), last_name.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    r.full_name = (!full.is_empty()).then_some(full);
    let attributes = object(get(m, "attributes"));
    r.phone = ["phone", "phoneNumber", "phone_number", "mobile"].iter().find_map(|k| first(&attributes, k));
    r.phone_verified_at =
        first(&attributes, "phoneNumberVerified").filter(|v| boolean(&Value::String(v.clone()))).and(r.created_at);
    let mut meta = Map::new();
    for (k, v) in [("first_name", first_name), ("last_name", last_name), ("username", text(get(m, "username")))] {
        if let Some(v) = v {
            meta.insert(k.to_owned(), Value::String(v));
        }
    }
    for (k, v) in &attributes {
        meta.entry(k.clone()).or_insert_with(|| match v {
            Value::Array(a) if a.len() == 1 => a[0].clone(),
            other => other.clone(),
        });
    }
    if let Some(name) = &r.full_name {
        meta.insert("full_name".to_owned(), Value::String(name.clone()));
    }
    r.user_metadata = meta;
    if let Value::Array(roles) = get(m, "realmRoles") {
        if roles.iter().any(|v| v.as_str() == Some("admin")) {
            r.role = Some("admin".to_owned());
        }
        let roles: Vec<Value> = roles.iter().filter(|v| v.as_str() != Some("admin")).cloned().collect();
        if !roles.is_empty() {
            r.app_metadata.insert("keycloak_roles".to_owned(), Value::Array(roles));
        }
    }
    if let Value::Array(links) = get(m, "federatedIdentities") {
        for l in links.iter().filter_map(Value::as_object) {
            let (Some(provider), Some(subject)) = (text(get(l, "identityProvider")), text(get(l, "userId"))) else {
                continue;
            };
            r.identities.push(ImportedIdentity {
                id: None,
                provider: provider_name(&provider),
                provider_id: subject,
                email: r.email.clone(),
                data: Value::Object(l.clone()),
                created_at: r.created_at,
                last_sign_in_at: None,
            });
        }
    }
    if let Value::Array(credentials) = get(m, "credentials") {
        for c in credentials.iter().filter_map(Value::as_object) {
            match text(get(c, "type")).as_deref() {
                Some("password") => match password(c) {
                    Ok(hash) => r.password_hash = Some(hash),
                    Err(why) => return Err(r.refused(Reason::UnknownHashFormat, why)),
                },
                Some("otp") => match otp(c) {
                    Ok(totp) => r.factors.push(totp),
                    Err(why) => r.warnings.push(why),
                },
                _ => {}
            }
        }
    }
    Ok(r)
}

/// A password credential as a hash string the hasher verifies.
fn password(c: &Map<String, Value>) -> Result<String, String> {
    let secret = object(get(c, "secretData"));
    let data = object(get(c, "credentialData"));
    let algorithm = data.get("algorithm").and_then(text).unwrap_or_else(|| "pbkdf2-sha256".to_owned());
    let default_iterations = if algorithm == "argon2" { 5 } else { 27_500 };
    let iterations = data.get("hashIterations").and_then(Value::as_u64).unwrap_or(default_iterations);
    let (Some(hash), Some(salt)) = (
        secret.get("value").and_then(text).and_then(|s| b64(&s)),
        secret.get("salt").and_then(text).and_then(|s| b64(&s)),
    ) else {
        return Err("the password credential has no base64 value and salt".to_owned());
    };
    let iterations = u32::try_from(iterations).map_err(|_| "too many iterations".to_owned())?;
    let digest = match algorithm.as_str() {
        "pbkdf2" => Some(Pbkdf2Digest::Sha1),
        "pbkdf2-sha256" => Some(Pbkdf2Digest::Sha256),
        "pbkdf2-sha512" => Some(Pbkdf2Digest::Sha512),
        _ => None,
    };
    if let Some(digest) = digest {
        return Ok(pbkdf2_string(digest, iterations, &salt, &hash));
    }
    if algorithm != "argon2" {
        return Err(format!("the password algorithm {algorithm} is not one tessera verifies"));
    }
    let params = object(get(&data, "additionalParameters"));
    let kind = first(&params, "type").unwrap_or_else(|| "id".to_owned());
    let version = match first(&params, "version").as_deref() {
        Some("1.0") => 16,
        _ => 19,
    };
    let number = |key: &str, default: u32| match first(&params, key) {
        None => Ok(default),
        Some(v) => v.parse::<u32>().map_err(|_| format!("the Argon2 {key} is not a number")),
    };
    let (memory, parallelism) = (number("memory", 7168)?, number("parallelism", 1)?);
    if !matches!(kind.as_str(), "id" | "i" | "d") {
        return Err(format!("the Argon2 type {kind} is not one tessera verifies"));
    }
    Ok(format!(
        "$argon2{kind}$v={version}$m={memory},t={iterations},p={parallelism}${}${}",
        STANDARD_NO_PAD.encode(&salt),
        STANDARD_NO_PAD.encode(&hash)
    ))
}

/// An OTP credential: a TOTP secret tessera can check (SHA-1, 6 digits, 30 s).
fn otp(c: &Map<String, Value>) -> Result<ImportedTotp, String> {
    let secret = object(get(c, "secretData"));
    let data = object(get(c, "credentialData"));
    let sub_type = data.get("subType").and_then(text).unwrap_or_else(|| "totp".to_owned());
    let digits = data.get("digits").and_then(Value::as_u64).unwrap_or(6);
    let period = data.get("period").and_then(Value::as_u64).unwrap_or(30);
    let algorithm = data.get("algorithm").and_then(text).unwrap_or_else(|| "HmacSHA1".to_owned());
    if sub_type != "totp" || digits != 6 || period != 30 || algorithm != "HmacSHA1" {
        return Err(format!(
            "an OTP credential ({sub_type}, {algorithm}, {digits} digits, {period} s) is not imported: tessera's TOTP is \
             SHA-1, 6 digits, 30 s (enrol it again)"
        ));
    }
    let value = secret.get("value").and_then(text).ok_or("an OTP credential has no secret")?;
    // Keycloak keys the HMAC with the secret's UTF-8 bytes, unless it says it is base32.
    let encoding = data.get("secretEncoding").or_else(|| secret.get("encoding")).and_then(text);
    let bytes = match encoding.as_deref() {
        Some(e) if e.eq_ignore_ascii_case("base32") => totp_rs::Secret::try_from_base32(value.to_uppercase())
            .map(|s| s.as_bytes().to_vec())
            .map_err(|_| "an OTP credential's base32 secret is not base32".to_owned())?,
        _ => value.into_bytes(),
    };
    Ok(ImportedTotp {
        id: text(get(c, "id")).and_then(|s| uuid::Uuid::parse_str(&s).ok()),
        name: text(get(c, "userLabel")),
        secret: bytes,
        created_at: time(get(c, "createdDate")),
    })
}
