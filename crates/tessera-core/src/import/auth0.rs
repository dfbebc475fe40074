//! Auth0: the bulk user export (NDJSON) and, from Auth0's support, the password-hash
//! export (NDJSON of `{_id: {$oid}, email, passwordHash}`), joined by the id after
//! `auth0|` (or, failing that, the address).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::record::{boolean, field as get, object, phone, provider_name, text, time, ImportedIdentity, Record};

/// Password hashes by Auth0's database id and by address.
#[derive(Default)]
pub struct Hashes {
    by_id: HashMap<String, String>,
    by_email: HashMap<String, String>,
}

impl Hashes {
    /// Adds a row of the hash export.
    pub fn add(&mut self, m: &Map<String, Value>) {
        let Some(hash) = text(get(m, "passwordHash")) else { return };
        let id = match get(m, "_id") {
            Value::Object(o) => o.get("$oid").and_then(text),
            other => text(other),
        };
        if let Some(id) = id {
            self.by_id.insert(id, hash.clone());
        }
        if let Some(email) = text(get(m, "email")) {
            self.by_email.insert(email.to_lowercase(), hash);
        }
    }

    /// The hash of a database-connection user (`auth0|…`): by id, or else by address. A
    /// social user has no password, even when a database user shares the address.
    fn of(&self, user_id: Option<&str>, email: Option<&str>) -> Option<String> {
        let id = user_id?.strip_prefix("auth0|")?;
        let by_id = self.by_id.get(id);
        by_id.or_else(|| email.and_then(|e| self.by_email.get(&e.to_lowercase()))).cloned()
    }
}

/// A user of the bulk export.
pub fn user(row: u64, m: &Map<String, Value>, hashes: &Hashes) -> Record {
    let mut r = Record::at(row);
    r.source_id = text(get(m, "user_id"));
    r.email = text(get(m, "email"));
    r.created_at = time(get(m, "created_at"));
    r.updated_at = time(get(m, "updated_at"));
    r.last_sign_in_at = time(get(m, "last_login"));
    if boolean(get(m, "email_verified")) {
        r.email_verified_at = r.created_at.or(r.updated_at).or_else(|| Some(crate::caller::now()));
    }
    r.phone = phone(text(get(m, "phone_number")));
    if r.phone.is_some() && boolean(get(m, "phone_verified")) {
        r.phone_verified_at = r.created_at;
    }
    r.is_active = !boolean(get(m, "blocked"));
    // Auth0 fills `name` with the address when the user gave none.
    r.full_name = text(get(m, "name")).filter(|n| Some(n) != r.email.as_ref());
    r.avatar_url = text(get(m, "picture"));
    r.password_hash = hashes.of(r.source_id.as_deref(), r.email.as_deref());
    r.user_metadata = object(get(m, "user_metadata"));
    let app_metadata = object(get(m, "app_metadata"));
    // The roles stay in app_metadata as Auth0 had them; `admin` among them makes an admin.
    let admin = match app_metadata.get("roles").or_else(|| app_metadata.get("role")) {
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some("admin")),
        Some(Value::String(s)) => s == "admin",
        _ => false,
    };
    if admin {
        r.role = Some("admin".to_owned());
    }
    r.app_metadata = app_metadata;
    if let Value::Array(identities) = get(m, "identities") {
        for i in identities.iter().filter_map(Value::as_object) {
            let provider = text(get(i, "provider")).unwrap_or_default();
            // The database connection is the password; `sms`/`email` are passwordless.
            if !boolean(get(i, "isSocial")) || matches!(provider.as_str(), "auth0" | "sms" | "email") {
                continue;
            }
            let Some(subject) = text(get(i, "user_id")) else { continue };
            let data = Value::Object(object(get(i, "profileData")));
            r.identities.push(ImportedIdentity {
                id: None,
                provider: provider_name(&provider),
                provider_id: subject,
                email: data.get("email").and_then(text).or_else(|| r.email.clone()),
                data,
                created_at: r.created_at,
                last_sign_in_at: None,
            });
        }
    }
    r
}
