//! Privacy (SPEC §5.8): a user's export, deletion by the owner (soft, at once) and its
//! undoing by an admin within the retention period, and the purge, which removes the
//! accounts past their retention and the rows nobody needs any more.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::SecretString;
use serde_json::json;
use tessera_domain::{Error, FieldError};
use tessera_store::entity::{audit_log, mfa_factor, profile, session, user};
use tessera_store::query::privacy::{self, Swept};
use tessera_store::query::{admin::users as admin_users, audit, mfa, profiles, sessions, users};
use uuid::Uuid;

use crate::account::admin::{is_active_admin, stored_role};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, Actor, ClientInfo, Principal};
use crate::mfa::SecondFactor;

/// The name of the purge in the job table (its lease).
const PURGE_JOB: &str = "purge";
/// How long a node holds the purge's lease without renewing it (each batch renews it).
const PURGE_LEASE: ChronoDuration = ChronoDuration::minutes(5);
/// Accounts hard-deleted per transaction.
const PURGE_USERS_BATCH: u64 = 500;
/// The most audit events an export holds in memory at once.
pub const EXPORT_PAGE: u64 = 500;

/// What an export starts with; the audit events follow page by page
/// ([`Core::export_audit_page`]).
pub struct ExportHead {
    pub user: user::Model,
    pub profile: Option<profile::Model>,
    pub sessions: Vec<session::Model>,
    pub factors: Vec<mfa_factor::Model>,
    /// The passkeys: names, dates, backup state; never a key.
    pub passkeys: Vec<crate::passkey::Passkey>,
    /// The identities at other providers, with what each provider said of the user.
    pub identities: Vec<crate::identity::view::IdentityView>,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub users: u64,
    /// Anonymous users older than `ANONYMOUS_RETENTION_DAYS` who never became permanent.
    pub anonymous: u64,
    pub swept: Swept,
}

impl std::fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.swept;
        write!(
            f,
            "{} deleted accounts, {} sessions, {} one-time tokens, {} MFA tokens, {} passkey challenges, {} sent mails, \
             {} stale anonymous users, {} unused PKCE codes, {} delivered webhook events",
            self.users,
            s.sessions,
            s.one_time_tokens,
            s.mfa_tokens,
            s.challenges,
            s.mail,
            self.anonymous,
            s.codes,
            s.webhooks
        )
    }
}

impl Core {
    /// The user, profile, every session, the factors and passkeys (their secrets and keys
    /// stay behind) of
    /// the caller, read afresh.
    pub async fn export_head(&self, user_id: Uuid) -> Result<ExportHead, Error> {
        let reader = self.store.reader();
        let user = self.user(user_id).await?;
        let profile = profiles::by_user(reader, user_id).await?;
        let sessions = privacy::sessions_of(reader, user_id).await?;
        let factors = mfa::factors(reader, user_id).await?;
        let passkeys = self.passkeys(user_id).await?;
        let identities = self.identities_of(&user).await?;
        Ok(ExportHead { user, profile, sessions, factors, passkeys, identities })
    }

    /// The next page of the audit events about a user, oldest first, after `after`.
    pub async fn export_audit_page(&self, user_id: Uuid, after: Option<Uuid>) -> Result<Vec<audit_log::Model>, Error> {
        audit::page_for_user(self.store.reader(), user_id, after, EXPORT_PAGE).await
    }

    /// Deletes the caller's own account after checking the password, and with MFA on a
    /// code (or a recovery code): soft at once (every session revoked, every token
    /// dead, one-time tokens retired, mail waiting for the user cancelled), for good at
    /// the first purge after the retention period. The last active admin cannot leave.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %who.user.id))]
    pub async fn delete_own_account(
        &self,
        who: &Principal,
        password: &SecretString,
        second: Option<SecondFactor>,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        // Deleted since the token was checked (a racing deletion): the token is dead.
        let current = match self.user(who.user.id).await {
            Err(Error::UserNotFound) => return Err(Error::TokenRevoked),
            other => other?,
        };
        if current.mfa_enabled && second.is_none() {
            return Err(Error::Validation(vec![FieldError::new(
                "code",
                "required",
                "MFA is on: send the code from your authenticator app, or a recovery code.",
            )]));
        }
        let check = async { Ok(self.hasher.verify(password, Some(&current.password_hash)).await?.matches) };
        if !self.check_again(&current.email, client, check).await? {
            return Err(Error::WrongPassword);
        }
        let now = now();
        if let (true, Some(proof)) = (current.mfa_enabled, &second) {
            let check = async { Ok(self.check_second_factor(&current, proof, now, client).await?.is_some()) };
            if !self.check_again(&current.email, client, check).await? {
                let ev = AuditEvent::by_user("mfa.failure", current.id).detail(json!({ "reason": "account_deletion" }));
                record(self.store.writer(), client, ev).await?;
                return Err(Error::InvalidMfaCode);
            }
        }
        self.soft_delete(&current, now, AuditEvent::by_user("user.delete", current.id), client).await
    }

    /// Deletes an account the way its owner does, restorable within the retention period
    /// (the console's delete; the API's `DELETE` is for good). The last active admin
    /// cannot be deleted.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %id))]
    pub async fn admin_soft_delete_user(&self, actor: &Actor, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let current = self.admin_user(id).await?;
        actor.may_manage(stored_role(&current))?;
        if current.deleted_at.is_some() {
            return Err(Error::UserNotFound);
        }
        let ev = actor.event("admin.user.soft_delete", Some(id), json!({}));
        match self.soft_delete(&current, now(), ev, client).await {
            // Deleted meanwhile by a request racing this one.
            Err(Error::TokenRevoked) => Err(Error::UserNotFound),
            other => other,
        }
    }

    /// Marks the account deleted, cancels its mail, revokes its credentials and sessions
    /// and records `ev` (with what was revoked), in one transaction. `TokenRevoked` when
    /// the account is gone or already deleted.
    async fn soft_delete(
        &self,
        current: &user::Model,
        now: DateTime<Utc>,
        mut ev: AuditEvent,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let tx = self.store.begin().await?;
        // Whether the last active admin goes is decided on the locked row: the admins are
        // locked first, whatever the role read before (a promotion may have raced it).
        admin_users::lock_admins(&tx).await?;
        let Some(locked) = users::by_id_for_update(&tx, current.id).await? else {
            return Err(Error::TokenRevoked);
        };
        let removes_admin = is_active_admin(&locked);
        if !privacy::mark_deleted(&tx, current.id, now).await? {
            // Deleted meanwhile by a request racing this one.
            return Err(Error::TokenRevoked);
        }
        let addresses: Vec<&str> = std::iter::once(locked.email.as_str()).chain(locked.new_email.as_deref()).collect();
        let cancelled = privacy::cancel_mail_to(&tx, &addresses, now).await?;
        users::revoke_credentials(&tx, current.id, now).await?;
        let revoked = sessions::revoke_all_for_user(&tx, current.id, now).await?;
        if let Some(obj) = ev.detail.as_object_mut() {
            obj.insert("sessions_revoked".to_owned(), json!(revoked));
            obj.insert("mail_cancelled".to_owned(), json!(cancelled));
        }
        record(&tx, client, ev).await?;
        if removes_admin && admin_users::active_admin_count(&tx).await? == 0 {
            return Err(Error::LastAdmin);
        }
        tx.commit().await
    }

    /// Undoes a deletion by the account's owner, within the retention period. The user
    /// signs in again (every earlier session stays revoked).
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %id))]
    pub async fn admin_restore_user(&self, actor: &Actor, id: Uuid, client: &ClientInfo) -> Result<user::Model, Error> {
        let current = self.admin_user(id).await?;
        actor.may_manage(stored_role(&current))?;
        let now = now();
        let tx = self.store.begin().await?;
        if !privacy::restore(&tx, id, self.retention_cutoff(now), now).await? {
            return Err(Error::NotRestorable);
        }
        let deleted_at = current.deleted_at.map(|d| d.to_rfc3339());
        record(&tx, client, actor.event("admin.user.restore", Some(id), json!({ "deleted_at": deleted_at }))).await?;
        tx.commit().await?;
        self.admin_user(id).await
    }

    fn retention_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - ChronoDuration::from_std(self.settings.deleted_retention).unwrap_or(ChronoDuration::MAX)
    }

    /// Runs the purge once, unless another node is running it (then `None`); with
    /// `due_only`, only if `PURGE_INTERVAL` has passed since the last run on any node.
    /// Accounts deleted longer ago than `DELETED_RETENTION_DAYS` are hard-deleted (with
    /// their profile, sessions, factors, tokens and mail; their audit rows stay, without
    /// ip, user agent or detail, and one `user.purge` event each is written), then
    /// expired sessions and tokens and old sent mail are removed. Batches of their own
    /// transactions; running it again removes nothing more.
    pub async fn purge(&self, due_only: bool) -> Result<Option<PurgeReport>, Error> {
        let writer = self.store.writer();
        let started = now();
        let holder = Uuid::now_v7().to_string();
        if !privacy::claim_job(writer, PURGE_JOB, &holder, started, started + PURGE_LEASE, due_only).await? {
            return Ok(None);
        }
        let result = self.purge_batches(&holder).await;
        let interval = ChronoDuration::from_std(self.settings.purge_interval).unwrap_or(ChronoDuration::hours(1));
        // A failed run is tried again at the next check rather than after a whole interval.
        let next = if result.is_ok() { started + interval } else { now() };
        privacy::finish_job(writer, PURGE_JOB, &holder, next).await?;
        result.map(Some)
    }

    /// The purge's batches, while `holder` keeps the lease (each batch renews it; one
    /// that finds it lost, after a stall longer than the lease, stops).
    async fn purge_batches(&self, holder: &str) -> Result<PurgeReport, Error> {
        let mut report = PurgeReport::default();
        // The purge's own events carry no address or agent either.
        let system = ClientInfo::default();
        let cutoff = self.retention_cutoff(now());
        loop {
            let batch = privacy::deleted_before(self.store.reader(), cutoff, PURGE_USERS_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            let tx = self.store.begin().await?;
            let removed = privacy::purge_users(&tx, &batch, cutoff).await?;
            for id in &removed {
                let ev = AuditEvent { event: "user.purge", user_id: Some(*id), actor_id: None, detail: json!({}) };
                record(&tx, &system, ev).await?;
            }
            tx.commit().await?;
            report.users += removed.len() as u64;
            if !privacy::renew_job(self.store.writer(), PURGE_JOB, holder, now() + PURGE_LEASE).await? {
                return Ok(report);
            }
            if removed.is_empty() || (batch.len() as u64) < PURGE_USERS_BATCH {
                break;
            }
        }
        let stale = now() - ChronoDuration::from_std(self.settings.anonymous_retention).unwrap_or(ChronoDuration::MAX);
        loop {
            let batch =
                tessera_store::query::identities::stale_anonymous(self.store.reader(), stale, PURGE_USERS_BATCH)
                    .await?;
            if batch.is_empty() {
                break;
            }
            let tx = self.store.begin().await?;
            let removed = tessera_store::query::identities::purge_anonymous(&tx, &batch).await?;
            let detail = json!({ "anonymous": removed });
            record(&tx, &system, AuditEvent { event: "user.purge", user_id: None, actor_id: None, detail }).await?;
            tx.commit().await?;
            report.anonymous += removed;
            if !privacy::renew_job(self.store.writer(), PURGE_JOB, holder, now() + PURGE_LEASE).await? {
                return Ok(report);
            }
            if removed == 0 || (batch.len() as u64) < PURGE_USERS_BATCH {
                break;
            }
        }
        loop {
            let swept = privacy::sweep_batch(self.store.writer(), now()).await?;
            report.swept.sessions += swept.sessions;
            report.swept.one_time_tokens += swept.one_time_tokens;
            report.swept.mfa_tokens += swept.mfa_tokens;
            report.swept.challenges += swept.challenges;
            report.swept.codes += swept.codes;
            report.swept.mail += swept.mail;
            report.swept.webhooks += swept.webhooks;
            if !privacy::renew_job(self.store.writer(), PURGE_JOB, holder, now() + PURGE_LEASE).await? {
                return Ok(report);
            }
            let full = privacy::BATCH;
            if swept.sessions < full
                && swept.one_time_tokens < full
                && swept.mfa_tokens < full
                && swept.challenges < full
                && swept.codes < full
                && swept.mail < full
                && swept.webhooks < full
            {
                break;
            }
        }
        Ok(report)
    }

    /// Checks every minute (or every `PURGE_INTERVAL`, if shorter) whether the purge is
    /// due, and runs it when it is and no other node is; until `stop` turns true.
    pub async fn run_purger(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let check = self.settings.purge_interval.min(Duration::from_secs(60));
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(check) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            match self.purge(true).await {
                Ok(Some(report)) => tracing::info!(%report, "purge"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e.cause(), "purge failed"),
            }
        }
    }
}
