//! Administration (SPEC §2.1 Admin, §5.2, §5.7): who may act, the user list and search,
//! creating, changing and deleting any user, bulk changes, the last-admin rule, analytics
//! and the audit log. Every change is audited in its own transaction.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tessera_domain::{Email, Error, FieldError, Permission, Permissions, Role};
use tessera_store::entity::{audit_log, user};
use tessera_store::query::admin::analytics::DailySeries;
use tessera_store::query::admin::{analytics, users as admin_users, AuditFilter, UserFilter};
use tessera_store::query::sessions;
use tessera_store::query::users::{self, UserChanges};
use uuid::Uuid;

use crate::account::users::{
    check_metadata, full_name, insert_account, optional_phone, set_name, set_phone, Account, Metadata, NewAccount,
    Patch,
};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, Actor, ClientInfo, Principal};

/// The most users one bulk request may name.
pub const BULK_MAX_IDS: usize = 1000;
/// The largest page of the user list and the audit log.
pub const PAGE_MAX: u64 = 100;
/// The most users a list may skip.
pub const SKIP_MAX: u64 = 1_000_000_000;

impl Actor {
    /// An audit event of this actor's, naming the API key it acted with.
    pub(crate) fn event(&self, event: &'static str, user_id: Option<Uuid>, mut detail: Value) -> AuditEvent {
        if let (Some(key), Some(obj)) = (self.api_key_id, detail.as_object_mut()) {
            obj.insert("api_key_id".to_owned(), json!(key));
        }
        AuditEvent { event, user_id, actor_id: self.user_id, detail }
    }
}

/// A user as an admin creates it.
pub struct NewUser {
    pub email: String,
    /// `None`: a password nobody knows (the owner signs in by link, or an admin sets one
    /// later); the policy applies to a given one.
    pub password: Option<SecretString>,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    /// `user` when absent.
    pub role: Option<String>,
    /// `true` when absent.
    pub is_active: Option<bool>,
    /// `false` when absent.
    pub is_verified: Option<bool>,
    /// `user_metadata` and `app_metadata`.
    pub metadata: Metadata,
    /// Whether this is an invitation (sets `invited_at`).
    pub invited: bool,
}

/// An admin's changes to any user: `None` leaves a field alone.
#[derive(Default)]
pub struct AdminUserPatch {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    pub full_name: Patch<String>,
    pub phone: Patch<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
    pub is_verified: Option<bool>,
    /// `user_metadata` and `app_metadata` merged into the profile's (JSON objects).
    pub metadata: Metadata,
    /// Whether a user their owner deleted answers `UserNotFound`, as on the Supabase
    /// surface, whose admin API knows no soft-deleted users.
    pub deleted_is_gone: bool,
}

/// The user-list query, as the client sent it.
#[derive(Debug, Default)]
pub struct UserQuery {
    pub skip: u64,
    pub limit: u64,
    pub q: Option<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
    /// Keyset navigation: only the users listed after this one (its `created_at` and
    /// id), whatever `skip` says.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// A bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Activate,
    Deactivate,
    Delete,
    SetRole,
}

impl BulkAction {
    fn as_str(self) -> &'static str {
        match self {
            BulkAction::Activate => "activate",
            BulkAction::Deactivate => "deactivate",
            BulkAction::Delete => "delete",
            BulkAction::SetRole => "set_role",
        }
    }
}

/// The analytics dashboard (SPEC §2.1): days are UTC dates, oldest first, one per day.
#[derive(Debug, Clone)]
pub struct Analytics {
    pub total_users: u64,
    pub active_users: u64,
    pub verified_users: u64,
    pub admins: u64,
    pub deleted_users: u64,
    pub active_sessions: u64,
    pub failed_logins_24h: u64,
    pub signups_per_day: Vec<(String, u64)>,
    pub logins_per_day: Vec<(String, u64)>,
    pub failed_logins_per_day: Vec<(String, u64)>,
}

/// The mail outbox at a glance: messages waiting, and messages given up on.
#[derive(Debug, Clone, Copy)]
pub struct OutboxStats {
    pub pending: u64,
    pub failed: u64,
    /// Webhook events waiting and given up on, when webhooks are configured.
    pub webhooks: Option<(u64, u64)>,
}

/// The audit-log query, as the client sent it.
#[derive(Debug, Default)]
pub struct AuditQuery {
    pub user_id: Option<Uuid>,
    pub event: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

fn parse_role(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<Role> {
    let role = Role::parse(raw);
    if role.is_none() {
        errors.push(FieldError::new(field, "invalid_role", "The role must be user or admin."));
    }
    role
}

pub(crate) fn stored_role(u: &user::Model) -> Role {
    Role::parse(&u.role).unwrap_or(Role::User)
}

/// Whether a user counts towards "an active admin remains".
pub(crate) fn is_active_admin(u: &user::Model) -> bool {
    stored_role(u) == Role::Admin && u.is_active && u.deleted_at.is_none()
}

fn page_limit(field: &str, limit: u64) -> Result<u64, Error> {
    if (1..=PAGE_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::field(field, "out_of_range", format!("Between 1 and {PAGE_MAX}.")))
    }
}

impl Core {
    /// The actor behind an access token: its user, with the permissions of its role. With
    /// `ADMIN_MFA_REQUIRED`, only from a session that proved a second factor.
    pub async fn admin_actor(&self, token: &str) -> Result<Actor, Error> {
        let who = self.authenticate(token).await?;
        self.actor_of(&who)
    }

    /// The actor a signed-in user is on the administration surfaces (the API and the
    /// console): the permissions of the role; with `ADMIN_MFA_REQUIRED`, only from a
    /// session that proved a second factor.
    pub fn actor_of(&self, who: &Principal) -> Result<Actor, Error> {
        let aal2 = who.aal == "aal2";
        if self.settings.admin_mfa_required && !aal2 {
            return Err(Error::MfaRequired);
        }
        Ok(Actor {
            user_id: Some(who.user.id),
            api_key_id: None,
            permissions: Permissions::of_role(who.role()),
            mfa_satisfied: aal2 || !who.user.mfa_enabled,
        })
    }

    /// Another user as the caller may see them (`GET /v1/users/{id}`): `(user, true)` in
    /// full to themselves and to whoever may read users on the administration surface
    /// (the admin routes' rule: `users:read`, from an aal2 session under
    /// `ADMIN_MFA_REQUIRED`); `(user, false)`, the public view, to anyone else.
    pub async fn user_as_seen_by(&self, who: &Principal, id: Uuid) -> Result<(user::Model, bool), Error> {
        if id == who.user.id {
            return Ok((who.user.clone(), true));
        }
        let user = self.user(id).await?;
        let admin = self.actor_of(who).is_ok_and(|a| a.require(Permission::UsersRead).is_ok());
        Ok((user, admin))
    }

    /// Creates the `FIRST_ADMIN_EMAIL` admin if no active admin exists. Idempotent, and
    /// safe when several nodes start at once: the unique email index lets one win.
    pub async fn bootstrap_first_admin(&self) -> Result<(), String> {
        let Some((email, password)) = self.settings.first_admin.clone() else { return Ok(()) };
        if admin_users::active_admin_count(self.store.reader()).await.map_err(|e| e.to_string())? > 0 {
            return Ok(());
        }
        let new = NewUser {
            email: email.clone(),
            password: Some(password),
            full_name: None,
            phone: None,
            role: Some(Role::Admin.as_str().to_owned()),
            is_active: Some(true),
            is_verified: Some(true),
            metadata: Default::default(),
            invited: false,
        };
        match self.insert_user(&Actor::system(), new, "admin.bootstrap", &ClientInfo::default()).await {
            Ok(u) => {
                tracing::info!(user_id = %u.id, "created the first admin from FIRST_ADMIN_EMAIL");
                Ok(())
            }
            Err(Error::EmailTaken) => {
                let existing = Email::parse(&email).ok();
                let existing = match existing {
                    Some(e) => users::by_email(self.store.reader(), e.as_str()).await.map_err(|e| e.to_string())?,
                    None => None,
                };
                match existing {
                    // Another node starting at the same moment created it.
                    Some(u) if is_active_admin(&u) => Ok(()),
                    _ => {
                        tracing::warn!(
                            "FIRST_ADMIN_EMAIL belongs to an account that is not an active admin; it is left \
                             unchanged (promote an admin with `tessera admin create` or the admin API)"
                        );
                        Ok(())
                    }
                }
            }
            Err(e) => Err(format!("cannot create the first admin: {e}")),
        }
    }

    /// Creates a user with any role and state (POST /v1/admin/users, `tessera admin
    /// create`). The password policy applies; a taken email is 409.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn admin_create_user(
        &self,
        actor: &Actor,
        new: NewUser,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        self.insert_user(actor, new, "admin.user.create", client).await
    }

    pub(crate) async fn insert_user(
        &self,
        actor: &Actor,
        new: NewUser,
        event: &'static str,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let mut errors = Vec::new();
        let email = Email::parse(&new.email).map_err(|e| errors.push(e)).ok();
        let full_name = full_name("full_name", new.full_name, &mut errors);
        let phone = optional_phone(new.phone, &mut errors);
        check_metadata("user_metadata", &new.metadata.user, &mut errors);
        check_metadata("app_metadata", &new.metadata.app, &mut errors);
        let role = match &new.role {
            Some(raw) => parse_role("role", raw, &mut errors),
            None => Some(Role::User),
        };
        if let Some(password) = &new.password {
            if let Err(mut broken) =
                self.settings.password_policy.check("password", password.expose_secret(), email.as_ref())
            {
                errors.append(&mut broken);
            }
        }
        let (Some(email), Some(role)) = (email, role) else { return Err(Error::Validation(errors)) };
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        actor.may_manage(role)?;
        let password = new.password.unwrap_or_else(|| SecretString::from(crate::crypto::random_token(32)));
        let hash = self.hasher.hash(&password).await?;
        let account = NewAccount {
            email,
            password_hash: hash,
            full_name,
            phone,
            role,
            is_active: new.is_active.unwrap_or(true),
            verified: new.is_verified.unwrap_or(false),
            metadata: new.metadata,
            invited: new.invited,
            anonymous: false,
        };
        self.vet_new_account(&account, client).await?;
        let tx = self.store.begin().await?;
        let created = insert_account(&tx, account).await?;
        let detail = json!({ "role": created.role, "is_active": created.is_active });
        record(&tx, client, actor.event(event, Some(created.id), detail)).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Any user by id, soft-deleted or not.
    pub async fn admin_user(&self, id: Uuid) -> Result<user::Model, Error> {
        users::by_id(self.store.reader(), id).await?.ok_or(Error::UserNotFound)
    }

    /// The users among `ids`, soft-deleted or not (unknown ids are left out).
    pub async fn admin_users_by_ids(&self, ids: &[Uuid]) -> Result<Vec<user::Model>, Error> {
        users::by_ids(self.store.reader(), ids).await
    }

    /// A page of live users, newest first, and how many match in all.
    pub async fn admin_list_users(&self, q: UserQuery) -> Result<(Vec<user::Model>, u64), Error> {
        let limit = page_limit("limit", q.limit)?;
        let mut errors = Vec::new();
        let role = q.role.as_deref().filter(|r| !r.trim().is_empty()).and_then(|r| parse_role("role", r, &mut errors));
        // The limit counts the characters sent, before lower-casing (which may add some).
        let too_long = q.q.as_deref().is_some_and(|p| p.trim().chars().count() > 320);
        let prefix = q.q.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        if too_long {
            errors.push(FieldError::new("q", "too_long", "At most 320 characters."));
        }
        if q.skip > SKIP_MAX {
            errors.push(FieldError::new("skip", "out_of_range", format!("Between 0 and {SKIP_MAX}.")));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        // No address or name holds a NUL (and PostgreSQL cannot compare one): nothing
        // matches, without asking the database.
        if prefix.as_deref().is_some_and(|p| p.contains('\0')) {
            return Ok((Vec::new(), 0));
        }
        let filter = UserFilter { prefix, role: role.map(|r| r.as_str().to_owned()), is_active: q.is_active };
        let skip = if q.after.is_some() { 0 } else { q.skip };
        let (items, total) = tokio::try_join!(
            admin_users::page(self.store.reader(), &filter, q.after, skip, limit),
            admin_users::total(self.store.reader(), &filter),
        )?;
        Ok((items, total))
    }

    /// Page `page` (from 1) of `per_page` users, newest first, each with its profile and
    /// factors and identities (read in three statements, whatever the page's size), and how many users
    /// there are. A page past the last is empty, however far.
    pub async fn admin_accounts_page(&self, page: u64, per_page: u64) -> Result<(Vec<Account>, u64), Error> {
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        let (users, total) = if skip > SKIP_MAX {
            let (_, total) = self.admin_list_users(UserQuery { skip: 0, limit: 1, ..Default::default() }).await?;
            (Vec::new(), total)
        } else {
            self.admin_list_users(UserQuery { skip, limit: per_page, ..Default::default() }).await?
        };
        let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
        let reader = self.store.reader();
        let (profiles, factors, identities) = tokio::try_join!(
            tessera_store::query::profiles::of_users(reader, &ids),
            tessera_store::query::mfa::factors_of_users(reader, &ids),
            tessera_store::query::identities::of_users(reader, &ids),
        )?;
        let accounts = users
            .into_iter()
            .map(|user| Account {
                profile: profiles.iter().find(|p| p.user_id == user.id).cloned(),
                factors: factors.iter().filter(|f| f.user_id == user.id).cloned().collect(),
                identities: crate::identity::view::views(&user, identities.clone()),
                user,
            })
            .collect();
        Ok((accounts, total))
    }

    /// Changes any field of any user, and merges metadata into the profile, all or
    /// nothing in one transaction. Email uniqueness, the password policy and role
    /// validity apply; a new password or a deactivation signs the user out everywhere;
    /// the last active admin can be neither demoted nor deactivated.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %id))]
    pub async fn admin_update_user(
        &self,
        actor: &Actor,
        id: Uuid,
        patch: AdminUserPatch,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let current = self.admin_user(id).await?;
        if patch.deleted_is_gone && current.deleted_at.is_some() {
            return Err(Error::UserNotFound);
        }
        actor.may_manage(stored_role(&current))?;
        let mut errors = Vec::new();
        check_metadata("user_metadata", &patch.metadata.user, &mut errors);
        check_metadata("app_metadata", &patch.metadata.app, &mut errors);
        let mut row = UserChanges::default();
        let mut changed: Vec<&'static str> = Vec::new();
        let now = now();
        let mut email_for_policy = Email::parse(&current.email).ok();
        if let Some(raw) = &patch.email {
            match Email::parse(raw) {
                Ok(email) if email.as_str() != current.email => {
                    row.email = Some(email.as_str().to_owned());
                    row.email_verified_at = Some(None);
                    // A pending change by the user is void: the admin decided the address.
                    row.new_email = Some(None);
                    changed.push("email");
                    email_for_policy = Some(email);
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        set_name(&mut row, patch.full_name, &mut changed, &mut errors);
        set_phone(&mut row, &current, patch.phone, &mut changed, &mut errors);
        let mut new_role = stored_role(&current);
        if let Some(raw) = &patch.role {
            if let Some(role) = parse_role("role", raw, &mut errors) {
                if role.as_str() != current.role {
                    row.role = Some(role.as_str().to_owned());
                    changed.push("role");
                }
                new_role = role;
            }
        }
        let mut sign_out = false;
        if let Some(active) = patch.is_active.filter(|a| *a != current.is_active) {
            row.is_active = Some(active);
            changed.push("is_active");
            sign_out |= !active;
        }
        if let Some(verified) = patch.is_verified {
            let was = current.email_verified_at.is_some() && !changed.contains(&"email");
            if verified != was {
                row.email_verified_at = Some(verified.then_some(now));
                changed.push("is_verified");
            }
        }
        if let Some(password) = &patch.password {
            if let Err(mut broken) =
                self.settings.password_policy.check("password", password.expose_secret(), email_for_policy.as_ref())
            {
                errors.append(&mut broken);
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        actor.may_manage(new_role)?;
        if let Some(password) = &patch.password {
            row.password_hash = Some(self.hasher.hash(password).await?);
            changed.push("password");
            sign_out = true;
        }
        let Metadata { user: user_metadata, app: app_metadata } = patch.metadata;
        let metadata = user_metadata.is_some() || app_metadata.is_some();
        if changed.is_empty() && !metadata {
            return Ok(current);
        }
        let removes_admin = is_active_admin(&current) && (new_role != Role::Admin || patch.is_active == Some(false));
        row.updated_at = Some(now);
        let tx = self.store.begin().await?;
        if removes_admin {
            admin_users::lock_admins(&tx).await?;
        }
        let mut updated = current;
        if !changed.is_empty() {
            updated = users::update(&tx, &updated, row).await?;
            if sign_out {
                users::revoke_credentials(&tx, id, now).await?;
                sessions::revoke_all_for_user(&tx, id, now).await?;
                updated.token_version += 1;
            } else if changed.contains(&"email") {
                // Links and codes sent to the old address (sign-up verification, a pending
                // change) must not confirm, or sign anyone in, for the new one.
                users::cancel_pending(&tx, id, now).await?;
            }
            record(&tx, client, actor.event("admin.user.update", Some(id), json!({ "fields": changed }))).await?;
            if removes_admin && admin_users::active_admin_count(&tx).await? == 0 {
                return Err(Error::LastAdmin);
            }
        }
        if metadata {
            self.merge_metadata_in(&tx, id, user_metadata, app_metadata, Some(actor), client).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Hard-deletes a user; the profile, sessions and one-time tokens go with it. The
    /// last active admin cannot be deleted.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %id))]
    pub async fn admin_delete_user(&self, actor: &Actor, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let current = self.admin_user(id).await?;
        actor.may_manage(stored_role(&current))?;
        let removes_admin = is_active_admin(&current);
        let tx = self.store.begin().await?;
        if removes_admin {
            admin_users::lock_admins(&tx).await?;
        }
        if admin_users::delete(&tx, &[id]).await? == 0 {
            return Err(Error::UserNotFound);
        }
        // The user's id says whom; their address stays nowhere once they are gone.
        let detail = json!({ "role": current.role });
        record(&tx, client, actor.event("admin.user.delete", Some(id), detail)).await?;
        if removes_admin && admin_users::active_admin_count(&tx).await? == 0 {
            return Err(Error::LastAdmin);
        }
        tx.commit().await
    }

    /// Signs a user out everywhere: every session revoked, every access token void.
    pub async fn admin_logout_user(&self, actor: &Actor, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let current = self.admin_user(id).await?;
        actor.may_manage(stored_role(&current))?;
        self.logout_everywhere(id, "admin.user.logout", actor.user_id, client).await?;
        Ok(())
    }

    /// Applies one action to many users in one transaction, all or nothing: an unknown
    /// id or role, a user the actor may not manage, or losing the last active admin
    /// changes nothing. Returns how many users were affected.
    #[tracing::instrument(skip_all, err(level = "info"), fields(action = action.as_str()))]
    pub async fn admin_bulk(
        &self,
        actor: &Actor,
        action: BulkAction,
        ids: Vec<Uuid>,
        role: Option<String>,
        client: &ClientInfo,
    ) -> Result<u64, Error> {
        let mut errors = Vec::new();
        let ids: Vec<Uuid> = ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        if ids.is_empty() || ids.len() > BULK_MAX_IDS {
            errors.push(FieldError::new("ids", "out_of_range", format!("Between 1 and {BULK_MAX_IDS} user ids.")));
        }
        let new_role = match (action, role.as_deref()) {
            (BulkAction::SetRole, Some(raw)) => parse_role("role", raw, &mut errors),
            (BulkAction::SetRole, None) => {
                errors.push(FieldError::new("role", "required", "set_role needs a role."));
                None
            }
            _ => None,
        };
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        if let Some(r) = new_role {
            actor.may_manage(r)?;
        }
        let removes_admins = match action {
            BulkAction::Activate => false,
            BulkAction::Deactivate | BulkAction::Delete => true,
            BulkAction::SetRole => new_role != Some(Role::Admin),
        };
        let now = now();
        let tx = self.store.begin().await?;
        if removes_admins {
            admin_users::lock_admins(&tx).await?;
        }
        let found = admin_users::touch(&tx, &ids, now).await?;
        let roles = admin_users::roles_of(&tx, &ids).await?;
        if (found as usize) < ids.len() || roles.len() < ids.len() {
            let known: BTreeSet<Uuid> = roles.iter().map(|(id, _)| *id).collect();
            let unknown: Vec<String> = ids.iter().filter(|id| !known.contains(id)).map(Uuid::to_string).collect();
            tracing::info!(unknown = %unknown.join(", "), "bulk action names unknown users; nothing changed");
            return Err(Error::UserNotFound);
        }
        for role in
            roles.iter().map(|(_, r)| Role::parse(r).unwrap_or(Role::User)).collect::<std::collections::HashSet<_>>()
        {
            actor.may_manage(role)?;
        }
        let affected = match action {
            BulkAction::Activate => admin_users::set_active(&tx, &ids, true, now).await,
            BulkAction::Deactivate => match admin_users::set_active(&tx, &ids, false, now).await {
                Ok(n) => admin_users::revoke_sessions(&tx, &ids, now).await.map(|_| n),
                Err(e) => Err(e),
            },
            BulkAction::Delete => admin_users::delete(&tx, &ids).await,
            BulkAction::SetRole => {
                admin_users::set_role(&tx, &ids, new_role.map(Role::as_str).unwrap_or("user"), now).await
            }
        }?;
        let detail = json!({ "action": action.as_str(), "role": new_role.map(Role::as_str), "batch": ids.len() });
        for id in &ids {
            record(&tx, client, actor.event("admin.user.bulk", Some(*id), detail.clone())).await?;
        }
        if removes_admins && admin_users::active_admin_count(&tx).await? == 0 {
            return Err(Error::LastAdmin);
        }
        tx.commit().await?;
        Ok(affected)
    }

    /// The dashboard over the last `days` UTC days (today included): the user totals
    /// kept by triggers, and SQL aggregates on indexes for the rest, run concurrently.
    pub async fn analytics(&self, days: u32) -> Result<Analytics, Error> {
        if !(1..=366).contains(&days) {
            return Err(Error::field("days", "out_of_range", "Between 1 and 366."));
        }
        let now = now();
        let first_day = now.date_naive() - ChronoDuration::days(i64::from(days) - 1);
        let since = first_day.and_time(NaiveTime::MIN).and_utc();
        let today = now.date_naive().and_time(NaiveTime::MIN).and_utc();
        let db = self.store.reader();
        let (totals, active_sessions, failed, signups, logins, failures) = tokio::try_join!(
            analytics::user_totals(db),
            analytics::active_sessions(db, now),
            analytics::events_since(db, "login.failure", now - ChronoDuration::hours(24)),
            self.store.per_day(DailySeries::Signups, since, today),
            self.store.per_day(DailySeries::Events("login.success"), since, today),
            self.store.per_day(DailySeries::Events("login.failure"), since, today),
        )?;
        let total = totals.live();
        let fill = |counts: Vec<(String, u64)>| -> Vec<(String, u64)> {
            let counts: BTreeMap<String, u64> = counts.into_iter().collect();
            (0..i64::from(days))
                .map(|d| {
                    let day = (first_day + ChronoDuration::days(d)).format("%Y-%m-%d").to_string();
                    let n = counts.get(&day).copied().unwrap_or(0);
                    (day, n)
                })
                .collect()
        };
        Ok(Analytics {
            total_users: total,
            active_users: total.saturating_sub(totals.inactive),
            verified_users: total.saturating_sub(totals.unverified),
            admins: totals.admins,
            deleted_users: totals.deleted,
            active_sessions,
            failed_logins_24h: failed,
            signups_per_day: fill(signups),
            logins_per_day: fill(logins),
            failed_logins_per_day: fill(failures),
        })
    }

    /// The mail outbox's depth and the messages it gave up on.
    pub async fn outbox_stats(&self) -> Result<OutboxStats, Error> {
        let db = self.store.reader();
        let (pending, failed) = tokio::try_join!(
            tessera_store::query::outbox::pending_count(db),
            tessera_store::query::outbox::failed_count(db)
        )?;
        let webhooks = match self.settings.webhooks {
            Some(_) => Some(self.webhook_counts().await?),
            None => None,
        };
        Ok(OutboxStats { pending, failed, webhooks })
    }

    /// Revokes one session of a user (the console's "revoke"); its access tokens die
    /// with it. A session of another user, or one already ended, is not found.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %user_id))]
    pub async fn admin_revoke_session(
        &self,
        actor: &Actor,
        user_id: Uuid,
        session_id: Uuid,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        actor.require(Permission::SessionsWrite)?;
        let current = self.admin_user(user_id).await?;
        actor.may_manage(stored_role(&current))?;
        let tx = self.store.begin().await?;
        match sessions::by_id(&tx, session_id).await? {
            Some(s) if s.user_id == user_id && s.revoked_at.is_none() => {
                if !sessions::revoke(&tx, s.id, now()).await? {
                    return Err(Error::SessionNotFound);
                }
            }
            _ => return Err(Error::SessionNotFound),
        }
        let detail = json!({ "session_id": session_id });
        record(&tx, client, actor.event("admin.session.revoke", Some(user_id), detail)).await?;
        tx.commit().await
    }

    /// The token a console form carries against cross-site requests: a MAC of the
    /// console session's id under the server's code key, so every node agrees on it and
    /// it dies with the session.
    pub fn console_csrf(&self, session_id: Uuid) -> String {
        let mut mac = crate::crypto::mac(&self.code_key, b"tessera console csrf v1");
        hmac::Mac::update(&mut mac, session_id.as_bytes());
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    }

    /// Whether `given` is the console session's CSRF token (compared in constant time).
    pub fn console_csrf_matches(&self, session_id: Uuid, given: &str) -> bool {
        crate::crypto::same_secret(&self.console_csrf(session_id), given)
    }

    /// A page of the audit log, newest first, and the cursor of the next page (the id of
    /// the last event returned) when there may be more.
    pub async fn audit_log(&self, q: AuditQuery) -> Result<(Vec<audit_log::Model>, Option<String>), Error> {
        let limit = page_limit("limit", q.limit.unwrap_or(50))?;
        let mut errors = Vec::new();
        // A cursor is the id of an event, as this API writes it (hyphenated); empty is
        // the first page.
        let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => (c.len() == 36)
                .then(|| Uuid::try_parse(c).ok())
                .flatten()
                .ok_or_else(|| errors.push(FieldError::new("cursor", "invalid_cursor", "Not a cursor from this API.")))
                .ok(),
            None => None,
        };
        // An event name, or a prefix ending in `.*`; at most 64 characters.
        let event = q.event.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        let event = match event {
            Some(e) if e.chars().count() > 64 || e.strip_suffix(".*").unwrap_or(&e).contains('*') => {
                errors.push(FieldError::new("event", "invalid_event", "An event name, or a prefix such as admin.*."));
                None
            }
            Some(e) => Some(e.strip_suffix('*').unwrap_or(&e).to_owned()),
            None => None,
        };
        // `from` after `to` is an empty range: an empty page, like any range without events.
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        // No event name holds a NUL (and PostgreSQL cannot compare one): an empty page.
        if event.as_deref().is_some_and(|e| e.contains('\0')) {
            return Ok((Vec::new(), None));
        }
        let filter = AuditFilter { user_id: q.user_id, event, from: q.from, to: q.to, before };
        let mut rows = tessera_store::query::admin::audit_page(self.store.reader(), &filter, limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|r| r.id.to_string()) } else { None };
        Ok((rows, next))
    }
}
