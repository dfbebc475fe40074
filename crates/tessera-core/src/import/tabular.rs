//! tessera's own CSV: `email, password_hash, email_verified, full_name, phone, created_at,
//! role, metadata` (and, optionally, `id`), any hash the hasher verifies.

use serde_json::{Map, Value};

use super::record::{boolean, field, object, text, time, Record};

/// A row of the CSV.
pub fn user(row: u64, m: &Map<String, Value>) -> Record {
    let get = |k: &str| field(m, k);
    let mut r = Record::at(row);
    r.source_id = text(get("id"));
    r.email = text(get("email"));
    r.password_hash = text(get("password_hash"));
    r.created_at = time(get("created_at"));
    r.updated_at = r.created_at;
    if boolean(get("email_verified")) {
        r.email_verified_at = r.created_at.or_else(|| Some(crate::caller::now()));
    }
    r.full_name = text(get("full_name"));
    r.phone = text(get("phone"));
    r.role = text(get("role"));
    if m.contains_key("is_active") {
        r.is_active = boolean(get("is_active"));
    }
    r.user_metadata = object(get("metadata"));
    r
}
