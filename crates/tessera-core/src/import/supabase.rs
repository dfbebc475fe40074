//! Supabase: rows of `auth.users`, `auth.identities` and `auth.mfa_factors`, from a CSV or
//! JSON export or straight from the project's database (the same JSON objects).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::record::{
    boolean, field as get, object, phone, provider_name, text, time, ImportedIdentity, ImportedTotp, Reason, Record,
};

/// A user of `auth.users`.
pub fn user(row: u64, m: &Map<String, Value>) -> Record {
    let mut r = Record::at(row);
    r.source_id = text(get(m, "id"));
    r.email = text(get(m, "email"));
    r.password_hash = text(get(m, "encrypted_password"));
    // Not `confirmed_at`: it is the earlier of the address's and the phone's confirmations.
    r.email_verified_at = time(get(m, "email_confirmed_at"));
    r.phone = phone(text(get(m, "phone")));
    r.phone_verified_at = r.phone.as_ref().and_then(|_| time(get(m, "phone_confirmed_at")));
    r.created_at = time(get(m, "created_at"));
    r.updated_at = time(get(m, "updated_at"));
    r.last_sign_in_at = time(get(m, "last_sign_in_at"));
    r.deleted = time(get(m, "deleted_at")).is_some();
    r.is_active = time(get(m, "banned_until")).is_none_or(|until| until <= crate::caller::now());
    if boolean(get(m, "is_anonymous")) {
        r.skip = Some(Reason::Anonymous);
    }
    let user_metadata = object(get(m, "raw_user_meta_data"));
    let mut app_metadata = object(get(m, "raw_app_meta_data"));
    let is_admin = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s == "admin",
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some("admin")),
        _ => false,
    };
    if is_admin(app_metadata.get("roles")) || is_admin(app_metadata.get("role")) {
        r.role = Some("admin".to_owned());
    }
    // tessera writes these itself, from what the user has; `role` and `roles` stay as
    // the project had them (policies read them), and show so on the Supabase surface.
    for own in ["provider", "providers"] {
        app_metadata.remove(own);
    }
    r.full_name = ["full_name", "name"].iter().find_map(|k| user_metadata.get(*k).and_then(text));
    r.avatar_url = ["avatar_url", "picture"].iter().find_map(|k| user_metadata.get(*k).and_then(text));
    r.user_metadata = user_metadata;
    r.app_metadata = app_metadata;
    r
}

/// An identity of `auth.identities`, by the id of its user; `None` for the email
/// identity (tessera's is implicit) and rows without a user or subject.
pub fn identity(m: &Map<String, Value>) -> Option<(String, ImportedIdentity)> {
    let user_id = text(get(m, "user_id"))?;
    let provider = text(get(m, "provider"))?;
    if matches!(provider.as_str(), "email" | "phone" | "anonymous") {
        return None;
    }
    let data = Value::Object(object(get(m, "identity_data")));
    // Rows from before `provider_id` existed keep the subject in `id` and identity_data.sub.
    let subject = text(get(m, "provider_id")).or_else(|| data.get("sub").and_then(text))?;
    let identity = ImportedIdentity {
        id: text(get(m, "id")).and_then(|s| uuid::Uuid::parse_str(&s).ok()),
        provider: provider_name(&provider),
        provider_id: subject,
        email: text(get(m, "email")).or_else(|| data.get("email").and_then(text)),
        data,
        created_at: time(get(m, "created_at")),
        last_sign_in_at: time(get(m, "last_sign_in_at")),
    };
    Some((user_id, identity))
}

/// What a row of `auth.mfa_factors` brings.
pub enum Factor {
    Totp(String, ImportedTotp),
    /// A factor that does not come along, with what to say about it.
    Left(String, String),
    /// Not a factor in use (unverified).
    Unused,
}

/// A factor of `auth.mfa_factors`: a verified TOTP factor's secret is base32 in the
/// table (unless the project encrypted it, which the export cannot undo).
pub fn factor(m: &Map<String, Value>) -> Factor {
    let Some(user_id) = text(get(m, "user_id")) else { return Factor::Unused };
    if text(get(m, "status")).as_deref() != Some("verified") {
        return Factor::Unused;
    }
    let kind = text(get(m, "factor_type")).unwrap_or_default();
    if kind != "totp" {
        return Factor::Left(user_id, format!("a {kind} factor is not imported (enrol it again)"));
    }
    let secret = text(get(m, "secret")).unwrap_or_default();
    match totp_rs::Secret::try_from_base32(secret.to_uppercase().replace(['=', ' '], "")).map(|s| s.as_bytes().to_vec())
    {
        Ok(bytes) if !bytes.is_empty() => Factor::Totp(
            user_id,
            ImportedTotp {
                id: text(get(m, "id")).and_then(|s| uuid::Uuid::parse_str(&s).ok()),
                name: text(get(m, "friendly_name")),
                secret: bytes,
                created_at: time(get(m, "created_at")),
            },
        ),
        _ => Factor::Left(
            user_id,
            "a TOTP factor's secret is not base32 (encrypted in the project?); it is not imported".to_owned(),
        ),
    }
}

/// Identities and factors by the id of their user, read before the users.
#[derive(Default)]
pub struct Extras {
    pub identities: HashMap<String, Vec<ImportedIdentity>>,
    pub factors: HashMap<String, Vec<ImportedTotp>>,
    pub notes: HashMap<String, Vec<String>>,
}

impl Extras {
    pub fn add_identity(&mut self, m: &Map<String, Value>) {
        if let Some((user, identity)) = identity(m) {
            self.identities.entry(user).or_default().push(identity);
        }
    }

    pub fn add_factor(&mut self, m: &Map<String, Value>) {
        match factor(m) {
            Factor::Totp(user, totp) => self.factors.entry(user).or_default().push(totp),
            Factor::Left(user, note) => self.notes.entry(user).or_default().push(note),
            Factor::Unused => {}
        }
    }

    /// Gives `r` what belongs to it.
    pub fn attach(&mut self, r: &mut Record) {
        let Some(id) = r.source_id.clone() else { return };
        r.identities.extend(self.identities.remove(&id).unwrap_or_default());
        r.factors.extend(self.factors.remove(&id).unwrap_or_default());
        r.warnings.extend(self.notes.remove(&id).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_confirmed_phone_does_not_confirm_the_address() {
        // `confirmed_at` is the earlier of the two confirmations (a generated column).
        let row = json!({
            "id": "e8497678-5604-4c7b-a9a4-a576dee63161",
            "email": "a@example.com",
            "phone": "4915112345678",
            "email_confirmed_at": null,
            "phone_confirmed_at": "2024-03-01 10:00:00+00",
            "confirmed_at": "2024-03-01 10:00:00+00",
        });
        let r = user(1, row.as_object().unwrap());
        assert!(r.email_verified_at.is_none());
        assert!(r.phone_verified_at.is_some());
        assert_eq!(r.phone.as_deref(), Some("+4915112345678"));
    }
}
