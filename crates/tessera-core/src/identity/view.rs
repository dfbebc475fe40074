//! A user's identities as user objects show them: the `email` identity (the address and
//! password) and those of providers.

use serde_json::{json, Value};
use tessera_domain::Email;
use tessera_store::entity::{identity, user};
use uuid::Uuid;

/// An identity as a user object shows it.
#[derive(Debug, Clone)]
pub struct IdentityView {
    pub id: Uuid,
    pub provider: String,
    pub provider_id: String,
    pub email: Option<String>,
    pub data: Value,
    pub last_sign_in_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The id of a user's `email` identity (the address and password): the user's own id,
/// as GoTrue shows it.
pub fn email_identity(u: &user::Model) -> Option<IdentityView> {
    if u.is_anonymous || Email::is_placeholder(&u.email) || u.password_hash.is_empty() {
        return None;
    }
    Some(IdentityView {
        id: u.id,
        provider: "email".to_owned(),
        provider_id: u.id.to_string(),
        email: Some(u.email.clone()),
        data: json!({
            "email": u.email,
            "email_verified": u.email_verified_at.is_some(),
            "phone_verified": u.phone_verified_at.is_some(),
            "sub": u.id,
        }),
        last_sign_in_at: u.last_login_at,
        created_at: u.created_at,
        updated_at: u.updated_at,
    })
}

/// A user's identities as shown: the `email` one (see [`email_identity`]), then `rows`.
pub(crate) fn views(u: &user::Model, rows: Vec<identity::Model>) -> Vec<IdentityView> {
    email_identity(u).into_iter().chain(rows.into_iter().filter(|r| r.user_id == u.id).map(view)).collect()
}

fn view(row: identity::Model) -> IdentityView {
    IdentityView {
        id: row.id,
        data: serde_json::from_str(&row.data).unwrap_or_else(|_| json!({})),
        provider: row.provider,
        provider_id: row.provider_id,
        email: row.email,
        last_sign_in_at: row.last_sign_in_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
