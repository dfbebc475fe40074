//! GoTrue's user object and its factors.

use serde_json::{json, Value};
use tessera_core::entity::{mfa_factor, profile, user};
use tessera_core::Core;

use super::error::GoTrueError;

/// A factor as GoTrue shows it.
pub fn factor_json(f: &mfa_factor::Model) -> Value {
    json!({
        "id": f.id,
        "friendly_name": f.name,
        "factor_type": f.factor_type,
        "status": f.status,
        "created_at": f.created_at,
        "updated_at": f.last_used_at.unwrap_or(f.created_at),
    })
}

/// GoTrue's user object (SPEC §3.4): `phone` always a string, one `email` identity,
/// `app_metadata` with `provider` and `providers`, the stored `user_metadata`, the factors.
pub fn user_json(u: &user::Model, profile: Option<&profile::Model>, factors: &[mfa_factor::Model]) -> Value {
    let (user_metadata, app_metadata) = tessera_core::account::users::metadata_of(u, profile);
    let identity = json!({
        "identity_id": u.id,
        "id": u.id,
        "user_id": u.id,
        "identity_data": {
            "email": u.email,
            "email_verified": u.email_verified_at.is_some(),
            "phone_verified": u.phone_verified_at.is_some(),
            "sub": u.id,
        },
        "provider": "email",
        "last_sign_in_at": u.last_login_at,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "email": u.email,
    });
    let mut out = json!({
        "id": u.id,
        "aud": tessera_core::session::tokens::SUPABASE_AUDIENCE,
        "role": tessera_core::session::tokens::SUPABASE_AUDIENCE,
        "email": u.email,
        "email_confirmed_at": u.email_verified_at,
        "phone": u.phone.clone().unwrap_or_default(),
        "phone_confirmed_at": u.phone_verified_at,
        "confirmed_at": u.email_verified_at,
        "last_sign_in_at": u.last_login_at,
        "app_metadata": app_metadata,
        "user_metadata": user_metadata,
        "identities": [identity],
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "is_anonymous": false,
    });
    let Some(obj) = out.as_object_mut() else { return out };
    if !factors.is_empty() {
        obj.insert("factors".to_owned(), Value::Array(factors.iter().map(factor_json).collect()));
    }
    if let Some(new_email) = &u.new_email {
        obj.insert("new_email".to_owned(), json!(new_email));
    }
    if let Some(invited) = profile.and_then(|p| p.invited_at) {
        obj.insert("invited_at".to_owned(), json!(invited));
    }
    if !u.is_active {
        obj.insert("banned_until".to_owned(), json!("9999-12-31T23:59:59Z"));
    }
    out
}

/// A user's GoTrue object, read with its profile and factors.
pub async fn load_user(core: &Core, u: &user::Model) -> Result<Value, GoTrueError> {
    let account = core.account(u.clone()).await?;
    Ok(user_json(&account.user, account.profile.as_ref(), &account.factors))
}
