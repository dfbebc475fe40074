//! Service API keys (SPEC §5.7): `tsk_` + 32 random bytes, shown once, stored only as
//! SHA-256, with scopes from the permission list, an optional expiry, `last_used_at`,
//! and an audit row for every use.

use chrono::{DateTime, Utc};
use serde_json::json;
use tessera_domain::{Error, FieldError, Permission, Permissions, Role};
use tessera_store::entity::api_key;
use tessera_store::query::admin::api_keys;
use tessera_store::query::users;
use uuid::Uuid;

use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, Actor, ClientInfo};
use crate::crypto::{random_token, sha256_hex};
use crate::session::issued::is_usable;

/// What every key starts with, so that it is recognisable (and scannable) as a secret.
pub const KEY_PREFIX: &str = "tsk_";

/// A new key's request.
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just created: the stored row and the secret, which is never shown again.
pub struct CreatedApiKey {
    pub row: api_key::Model,
    pub key: String,
}

/// The scopes stored with a key.
pub fn scopes_of(row: &api_key::Model) -> Permissions {
    let names = row.scopes.as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>());
    // A stored name this build does not know grants nothing.
    names.unwrap_or_default().into_iter().filter_map(Permission::parse).collect()
}

impl Core {
    /// Creates a key. Its scopes must be known permissions the actor holds itself.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        new: NewApiKey,
        client: &ClientInfo,
    ) -> Result<CreatedApiKey, Error> {
        let mut errors = Vec::new();
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.push(FieldError::new("name", "invalid_name", "1 to 100 printable characters."));
        }
        let scopes = match Permissions::parse_scopes(new.scopes.iter().map(String::as_str)) {
            Ok(s) if s == Permissions::NONE => {
                errors.push(FieldError::new("scopes", "required", "At least one scope."));
                s
            }
            Ok(s) => s,
            Err(unknown) => {
                let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                errors.push(FieldError::new(
                    "scopes",
                    "unknown_scope",
                    format!("Unknown scopes: {}. Known: {}.", unknown.join(", "), known.join(", ")),
                ));
                Permissions::NONE
            }
        };
        let now = now();
        if new.expires_at.is_some_and(|e| e <= now) {
            errors.push(FieldError::new("expires_at", "in_past", "The expiry must be in the future."));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        if !actor.mfa_satisfied {
            return Err(Error::MfaRequired);
        }
        // A key can never mint a key stronger than itself.
        if !actor.permissions.covers(scopes) {
            return Err(Error::PermissionDenied);
        }
        let key = format!("{KEY_PREFIX}{}", random_token(32));
        let names: Vec<&str> = scopes.list().into_iter().map(Permission::as_str).collect();
        let tx = self.store.begin().await?;
        let row = api_key::Model {
            id: Uuid::now_v7(),
            name,
            key_hash: sha256_hex(&key),
            prefix: key.chars().take(12).collect(),
            scopes: json!(names),
            created_by: actor.user_id,
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        api_keys::insert(&tx, row.clone()).await?;
        let mut detail = json!({ "api_key_id": row.id, "name": row.name, "scopes": names });
        if let (Some(by), Some(obj)) = (actor.api_key_id, detail.as_object_mut()) {
            obj.insert("by_api_key_id".to_owned(), json!(by));
        }
        let ev = AuditEvent { event: "api_key.create", user_id: actor.user_id, actor_id: actor.user_id, detail };
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(CreatedApiKey { row, key })
    }

    /// Every key, newest first (never a secret: only hashes are stored).
    pub async fn list_api_keys(&self) -> Result<Vec<api_key::Model>, Error> {
        api_keys::all(self.store.reader()).await
    }

    /// Revokes a key at once. Revoking a revoked key changes nothing; an unknown id is 404.
    pub async fn revoke_api_key(&self, actor: &Actor, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let tx = self.store.begin().await?;
        if !api_keys::revoke(&tx, id, now()).await? {
            drop(tx);
            return match api_keys::by_id(self.store.reader(), id).await? {
                Some(_) => Ok(()),
                None => Err(Error::ApiKeyNotFound),
            };
        }
        let ev = AuditEvent {
            event: "api_key.revoke",
            user_id: actor.user_id,
            actor_id: actor.user_id,
            detail: json!({ "api_key_id": id, "by_api_key_id": actor.api_key_id }),
        };
        record(&tx, client, ev).await?;
        tx.commit().await
    }

    /// Checks a presented key and whether it allows `needed`, recording the use (granted
    /// or denied) and `last_used_at`. The key is looked up by its SHA-256, so no
    /// comparison ever touches the secret itself. A key does what its scopes say and its
    /// creator may do now, never more: its creator's current role bounds it, and a key
    /// whose creator is gone or deactivated is no key at all (SPEC §5.7).
    pub async fn authenticate_api_key(
        &self,
        raw: &str,
        needed: Permission,
        route: &str,
        client: &ClientInfo,
    ) -> Result<Actor, Error> {
        let raw = raw.trim();
        if !raw.starts_with(KEY_PREFIX) || raw.len() > 128 {
            return Err(Error::InvalidApiKey);
        }
        let now = now();
        let row = api_keys::by_hash(self.store.reader(), &sha256_hex(raw)).await?;
        let Some(row) = row.filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now)) else {
            return Err(Error::InvalidApiKey);
        };
        let creator = match row.created_by {
            Some(id) => users::by_id(self.store.reader(), id).await?.filter(is_usable),
            None => None,
        };
        let Some(creator) = creator else { return Err(Error::InvalidApiKey) };
        let role = Role::parse(&creator.role).unwrap_or(Role::User);
        let permissions = scopes_of(&row).intersect(Permissions::of_role(role));
        let granted = permissions.contains(needed);
        let tx = self.store.begin().await?;
        api_keys::touch(&tx, row.id, now).await?;
        let detail = json!({ "api_key_id": row.id, "route": route, "permission": needed.as_str(), "granted": granted });
        let ev = AuditEvent { event: "api_key.use", user_id: row.created_by, actor_id: row.created_by, detail };
        record(&tx, client, ev).await?;
        tx.commit().await?;
        if !granted {
            return Err(Error::PermissionDenied);
        }
        Ok(Actor { user_id: row.created_by, api_key_id: Some(row.id), permissions, mfa_satisfied: true })
    }
}
