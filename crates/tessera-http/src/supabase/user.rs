//! GoTrue's user object and its factors.

use serde_json::{json, Value};
use tessera_core::entity::{mfa_factor, profile, user};
use tessera_core::identity::IdentityView;
use tessera_core::Core;

/// The address a user object shows: none for a user who has only a placeholder.
pub fn shown_email(u: &user::Model) -> &str {
    if tessera_core::domain::Email::is_placeholder(&u.email) {
        ""
    } else {
        &u.email
    }
}

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

/// An identity as GoTrue shows it.
pub fn identity_json(u: &user::Model, i: &IdentityView) -> Value {
    json!({
        "identity_id": i.id,
        "id": i.provider_id,
        "user_id": u.id,
        "identity_data": i.data,
        "provider": i.provider,
        "last_sign_in_at": i.last_sign_in_at,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "email": i.email.clone().unwrap_or_default(),
    })
}

/// GoTrue's user object (SPEC §3.4): `phone` always a string, the identities (the `email`
/// one and those of providers), `app_metadata` with `provider` and `providers`, the stored
/// `user_metadata`, the factors, `is_anonymous`.
pub fn user_json(
    u: &user::Model,
    profile: Option<&profile::Model>,
    factors: &[mfa_factor::Model],
    identities: &[IdentityView],
) -> Value {
    let (user_metadata, mut app_metadata) = tessera_core::account::users::metadata_of(u, profile);
    let mut providers: Vec<&str> = Vec::new();
    for i in identities {
        if !providers.contains(&i.provider.as_str()) {
            providers.push(&i.provider);
        }
    }
    if u.is_anonymous && providers.is_empty() {
        providers.push("anonymous");
    }
    if let (Some(first), Some(meta)) = (providers.first(), app_metadata.as_object_mut()) {
        meta.insert("provider".to_owned(), json!(first));
        meta.insert("providers".to_owned(), json!(providers));
    }
    let email = shown_email(u);
    let mut out = json!({
        "id": u.id,
        "aud": tessera_core::session::tokens::SUPABASE_AUDIENCE,
        "role": tessera_core::session::tokens::SUPABASE_AUDIENCE,
        "email": email,
        "email_confirmed_at": u.email_verified_at,
        "phone": u.phone.clone().unwrap_or_default(),
        "phone_confirmed_at": u.phone_verified_at,
        "confirmed_at": u.email_verified_at,
        "last_sign_in_at": u.last_login_at,
        "app_metadata": app_metadata,
        "user_metadata": user_metadata,
        "identities": identities.iter().map(|i| identity_json(u, i)).collect::<Vec<_>>(),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "is_anonymous": u.is_anonymous,
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
    Ok(user_json(&account.user, account.profile.as_ref(), &account.factors, &account.identities))
}
