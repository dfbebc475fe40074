//! Email verification, email change and password recovery (SPEC §5.3).
//!
//! Link tokens are 32 random bytes stored as SHA-256; codes are 6 characters of an
//! unambiguous alphabet stored as a keyed hash (HMAC with a server key), so the
//! database alone cannot brute-force them. Every use is a conditional update, so of
//! many concurrent uses of one token or code exactly one succeeds.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tessera_domain::{Email, Error};
use tessera_store::entity::{one_time_token, user};
use tessera_store::query::{sessions, users};
use tessera_store::{db_error, is_unique_violation};
use uuid::Uuid;

use crate::audit::{record, AuditEvent};
use crate::limits::RateAction;
use crate::mail::{OutgoingMail, Template};
use crate::tokens::{random_token, sha256_hex};
use crate::{now, ClientInfo, Core};

/// The alphabet of codes: digits and upper-case letters without 0, O, 1 and I.
const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Wrong guesses after which a code is dead.
const CODE_MAX_ATTEMPTS: i32 = 5;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    VerifyEmail,
    EmailChange,
    Recovery,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::VerifyEmail => "verify_email",
            TokenKind::EmailChange => "email_change",
            TokenKind::Recovery => "recovery",
        }
    }
}

/// A 6-character code, uniform over the alphabet (32 divides 256).
fn new_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..6).map(|_| CODE_ALPHABET[(rng.gen::<u8>() & 31) as usize] as char).collect()
}

/// The server key codes are hashed with, derived from the JWT secret.
pub fn derive_code_key(secret: &SecretString) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes()).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot be taken.
        <Hmac<Sha256> as Mac>::new_from_slice(b"tessera").unwrap_or_else(|_| unreachable_mac())
    });
    mac.update(b"tessera one-time code key v1");
    mac.finalize().into_bytes().to_vec()
}

#[allow(clippy::panic)]
fn unreachable_mac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 rejected a key")
}

/// Adds `token=…` to a link base that may already have a query.
fn link(base: &str, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}token={token}")
}

impl Core {
    fn code_hash(&self, token_id: Uuid, code: &str) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.code_key) {
            Ok(m) => m,
            Err(_) => unreachable_mac(),
        };
        mac.update(token_id.as_bytes());
        mac.update(code.trim().to_ascii_uppercase().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A live (unused, unexpired) token by its raw value.
    async fn live_token(&self, token: &str) -> Result<one_time_token::Model, Error> {
        one_time_token::Entity::find()
            .filter(one_time_token::Column::TokenHash.eq(sha256_hex(token.trim())))
            .one(&self.db)
            .await
            .map_err(db_error)?
            .filter(|t| t.used_at.is_none() && t.expires_at > now())
            .ok_or(Error::InvalidVerification)
    }

    /// A live recovery token and its usable user.
    async fn live_recovery_token(&self, token: &str) -> Result<(one_time_token::Model, user::Model), Error> {
        let row = self.live_token(token).await?;
        if row.kind != TokenKind::Recovery.as_str() {
            return Err(Error::InvalidVerification);
        }
        let user = users::by_id(&self.db, row.user_id)
            .await
            .map_err(db_error)?
            .filter(crate::auth::is_usable)
            .ok_or(Error::InvalidVerification)?;
        Ok((row, user))
    }

    /// Marks a token used, if nobody did first: the guard that makes every token and
    /// code single-use under concurrency.
    async fn use_token(&self, conn: &impl ConnectionTrait, id: Uuid, at: DateTime<Utc>) -> Result<(), Error> {
        let used = one_time_token::Entity::update_many()
            .col_expr(one_time_token::Column::UsedAt, Expr::value(at))
            .filter(one_time_token::Column::Id.eq(id))
            .filter(one_time_token::Column::UsedAt.is_null())
            .exec(conn)
            .await
            .map_err(db_error)?;
        if used.rows_affected == 1 {
            Ok(())
        } else {
            Err(Error::InvalidVerification)
        }
    }

    /// Checks a new password for `user` against the policy (422 naming every rule).
    pub(crate) fn check_new_password(
        &self,
        field: &str,
        password: &SecretString,
        user: &user::Model,
    ) -> Result<(), Error> {
        let email = Email::parse(&user.email).ok();
        self.settings.password_policy.check(field, password.expose_secret(), email.as_ref()).map_err(Error::Validation)
    }

    /// Retires every unused token of `kind` for a user (a newer one replaces them).
    async fn retire_tokens(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        kinds: &[TokenKind],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        one_time_token::Entity::update_many()
            .col_expr(one_time_token::Column::UsedAt, Expr::value(at))
            .filter(one_time_token::Column::UserId.eq(user_id))
            .filter(one_time_token::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
            .filter(one_time_token::Column::UsedAt.is_null())
            .exec(conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Creates a token (and, with `code`, a 10-minute code) and returns the raw values.
    async fn issue_token(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        kind: TokenKind,
        ttl: ChronoDuration,
        with_code: bool,
        new_email: Option<&str>,
    ) -> Result<(String, Option<String>), Error> {
        let now = now();
        let id = Uuid::now_v7();
        let token = random_token(32);
        let code = with_code.then(new_code);
        one_time_token::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            kind: Set(kind.as_str().to_owned()),
            token_hash: Set(sha256_hex(&token)),
            code_hash: Set(code.as_deref().map(|c| self.code_hash(id, c))),
            code_expires_at: Set(code.as_ref().map(|_| now + ChronoDuration::minutes(10))),
            code_attempts: Set(0),
            new_email: Set(new_email.map(str::to_owned)),
            expires_at: Set(now + ttl),
            used_at: Set(None),
            created_at: Set(now),
        }
        .insert(conn)
        .await
        .map_err(db_error)?;
        Ok((token, code))
    }

    /// Queues the sign-up verification mail (link 24 h + code 10 min) in `conn`.
    pub(crate) async fn queue_verification(
        &self,
        conn: &impl ConnectionTrait,
        user: &user::Model,
        template: Template,
    ) -> Result<(), Error> {
        self.retire_tokens(conn, user.id, &[TokenKind::VerifyEmail], now()).await?;
        let (token, code) =
            self.issue_token(conn, user.id, TokenKind::VerifyEmail, ChronoDuration::hours(24), true, None).await?;
        let vars = vec![
            ("email", user.email.clone()),
            ("link", link(&self.settings.mail.verify_email_url, &token)),
            ("code", code.unwrap_or_default()),
        ];
        self.queue_mail(conn, OutgoingMail { template, to: user.email.clone(), vars }).await
    }

    /// Confirms an email with a link token: the sign-up address, or a pending new one.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn verify_email_token(&self, token: &str, client: &ClientInfo) -> Result<user::Model, Error> {
        let row = self.live_token(token).await?;
        if row.kind == TokenKind::Recovery.as_str() {
            return Err(Error::InvalidVerification);
        }
        self.consume_verification(row, client).await
    }

    /// Confirms an email with `{email, code}`. Five wrong codes kill the code.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn verify_email_code(&self, email: &str, code: &str, client: &ClientInfo) -> Result<user::Model, Error> {
        let email = Email::parse(email).map_err(|_| Error::InvalidVerification)?;
        let now = now();
        let mut candidates = Vec::new();
        if let Some(u) = users::by_email(&self.db, email.as_str()).await.map_err(db_error)? {
            candidates.push((u.id, TokenKind::VerifyEmail, None));
        }
        let pending = user::Entity::find()
            .filter(user::Column::NewEmail.eq(email.as_str()))
            .all(&self.db)
            .await
            .map_err(db_error)?;
        for u in pending {
            candidates.push((u.id, TokenKind::EmailChange, Some(email.as_str().to_owned())));
        }
        let mut newest: Option<one_time_token::Model> = None;
        for (user_id, kind, new_email) in candidates {
            let mut q = one_time_token::Entity::find()
                .filter(one_time_token::Column::UserId.eq(user_id))
                .filter(one_time_token::Column::Kind.eq(kind.as_str()))
                .filter(one_time_token::Column::UsedAt.is_null())
                .filter(one_time_token::Column::CodeHash.is_not_null())
                .filter(one_time_token::Column::CodeExpiresAt.gt(now));
            if let Some(ne) = new_email {
                q = q.filter(one_time_token::Column::NewEmail.eq(ne));
            }
            if let Some(t) = q.order_by_desc(one_time_token::Column::CreatedAt).one(&self.db).await.map_err(db_error)? {
                if newest.as_ref().is_none_or(|n| t.created_at > n.created_at) {
                    newest = Some(t);
                }
            }
        }
        let row = newest.ok_or(Error::InvalidVerification)?;
        let expected = row.code_hash.clone().unwrap_or_default();
        let given = self.code_hash(row.id, code);
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            // Count the miss; the fifth kills the code.
            one_time_token::Entity::update_many()
                .col_expr(one_time_token::Column::CodeAttempts, Expr::col(one_time_token::Column::CodeAttempts).add(1))
                .filter(one_time_token::Column::Id.eq(row.id))
                .exec(&self.writer)
                .await
                .map_err(db_error)?;
            one_time_token::Entity::update_many()
                .col_expr(one_time_token::Column::CodeHash, Expr::value(Option::<String>::None))
                .filter(one_time_token::Column::Id.eq(row.id))
                .filter(one_time_token::Column::CodeAttempts.gte(CODE_MAX_ATTEMPTS))
                .exec(&self.writer)
                .await
                .map_err(db_error)?;
            return Err(Error::InvalidVerification);
        }
        self.consume_verification(row, client).await
    }

    async fn consume_verification(
        &self,
        row: one_time_token::Model,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let now = now();
        let txn = self.writer.begin().await.map_err(db_error)?;
        // Of concurrent uses, exactly one gets past this.
        self.use_token(&txn, row.id, now).await?;
        let current = users::by_id(&txn, row.user_id).await.map_err(db_error)?.ok_or(Error::InvalidVerification)?;
        if !crate::auth::is_usable(&current) {
            return Err(Error::InvalidVerification);
        }
        let mut changed = current.clone().into_active_model();
        changed.email_verified_at = Set(Some(now));
        changed.updated_at = Set(now);
        let event = if row.kind == TokenKind::EmailChange.as_str() {
            let new_email = row.new_email.clone().ok_or(Error::InvalidVerification)?;
            if current.new_email.as_deref() != Some(new_email.as_str()) {
                // A newer change request replaced this one.
                return Err(Error::InvalidVerification);
            }
            changed.email = Set(new_email);
            changed.new_email = Set(None);
            "user.email_change"
        } else {
            "email.verify"
        };
        let updated = changed.update(&txn).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::EmailTaken
            } else {
                db_error(e)
            }
        })?;
        record(&txn, client, AuditEvent::by_user(event, updated.id)).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(updated)
    }

    /// Sends a new verification mail if the address belongs to an unverified account.
    /// Answers the same whatever the address; at most `RATE_LIMIT_OTP` sends per address.
    pub async fn resend_verification(&self, email: &str, _client: &ClientInfo) -> Result<(), Error> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        if self.rate_limit(RateAction::Otp, email.as_str()).await.is_some_and(|d| !d.allowed) {
            tracing::info!("verification resend over the per-address limit: not sent");
            return Ok(());
        }
        let Some(user) = users::by_email(&self.db, email.as_str()).await.map_err(db_error)? else { return Ok(()) };
        if user.email_verified_at.is_some() || !crate::auth::is_usable(&user) {
            return Ok(());
        }
        let txn = self.writer.begin().await.map_err(db_error)?;
        self.queue_verification(&txn, &user, Template::VerifyEmailResend).await?;
        txn.commit().await.map_err(db_error)?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Starts an email change: the new address stays pending (shown as `new_email`)
    /// until confirmed by link or code; the old address gets a notice.
    pub async fn request_email_change(
        &self,
        current: &user::Model,
        new_email: &Email,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        if new_email.as_str() == current.email {
            return Ok(current.clone());
        }
        if users::by_email(&self.db, new_email.as_str()).await.map_err(db_error)?.is_some() {
            return Err(Error::EmailTaken);
        }
        let now = now();
        let txn = self.writer.begin().await.map_err(db_error)?;
        let mut row = current.clone().into_active_model();
        row.new_email = Set(Some(new_email.as_str().to_owned()));
        row.updated_at = Set(now);
        let updated = row.update(&txn).await.map_err(db_error)?;
        self.retire_tokens(&txn, current.id, &[TokenKind::EmailChange], now).await?;
        let (token, code) = self
            .issue_token(
                &txn,
                current.id,
                TokenKind::EmailChange,
                ChronoDuration::hours(24),
                true,
                Some(new_email.as_str()),
            )
            .await?;
        let vars = vec![
            ("email", current.email.clone()),
            ("new_email", new_email.as_str().to_owned()),
            ("link", link(&self.settings.mail.verify_email_url, &token)),
            ("code", code.unwrap_or_default()),
        ];
        self.queue_mail(
            &txn,
            OutgoingMail { template: Template::EmailChange, to: new_email.as_str().to_owned(), vars: vars.clone() },
        )
        .await?;
        let notice: Vec<_> = vars.into_iter().filter(|(k, _)| *k == "email" || *k == "new_email").collect();
        self.queue_mail(
            &txn,
            OutgoingMail { template: Template::EmailChangeNotice, to: current.email.clone(), vars: notice },
        )
        .await?;
        record(
            &txn,
            client,
            AuditEvent::by_user("user.update", current.id).detail(json!({ "fields": ["email_pending"] })),
        )
        .await?;
        txn.commit().await.map_err(db_error)?;
        self.mailer.wake.notify_one();
        Ok(updated)
    }

    /// Sends a single-use recovery link (1 h) if the address belongs to an active
    /// account; a newer link retires the older ones. Reveals nothing either way; at
    /// most `RATE_LIMIT_RECOVER` requests per address.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<(), Error> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        if self.rate_limit(RateAction::Recover, email.as_str()).await.is_some_and(|d| !d.allowed) {
            tracing::info!("password reset over the per-address limit: not sent");
            return Ok(());
        }
        let Some(user) = users::by_email(&self.db, email.as_str()).await.map_err(db_error)? else { return Ok(()) };
        if !crate::auth::is_usable(&user) {
            return Ok(());
        }
        let txn = self.writer.begin().await.map_err(db_error)?;
        self.retire_tokens(&txn, user.id, &[TokenKind::Recovery], now()).await?;
        let (token, _) =
            self.issue_token(&txn, user.id, TokenKind::Recovery, ChronoDuration::hours(1), false, None).await?;
        let vars = vec![("email", user.email.clone()), ("link", link(&self.settings.mail.reset_password_url, &token))];
        self.queue_mail(&txn, OutgoingMail { template: Template::PasswordReset, to: user.email.clone(), vars }).await?;
        record(&txn, client, AuditEvent::by_user("password.reset_requested", user.id)).await?;
        txn.commit().await.map_err(db_error)?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Sets a new password with a recovery token: single use; bumps `token_version`,
    /// revokes every session, retires every other reset token and sends a notice.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &SecretString,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let (row, user) = self.live_recovery_token(token).await?;
        self.check_new_password("new_password", new_password, &user)?;
        let hash = self.hasher.hash(new_password).await?;
        let now = now();
        let txn = self.writer.begin().await.map_err(db_error)?;
        self.use_token(&txn, row.id, now).await?;
        self.apply_new_password(&txn, &user, &hash, None, "password.reset", client).await?;
        txn.commit().await.map_err(db_error)?;
        self.mailer.wake.notify_one();
        let mut user = user;
        user.password_hash = hash;
        user.token_version += 1;
        Ok(user)
    }

    /// Uses a recovery link to sign in (Kreeda's `POST /auth/verify {type: "recovery"}`):
    /// single use, like a reset confirmation; the client then sets a new password.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn sign_in_with_recovery_token(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<crate::auth::Issued, Error> {
        let (row, user) = self.live_recovery_token(token).await?;
        self.use_token(&self.writer, row.id, now()).await?;
        record(&self.writer, client, AuditEvent::by_user("password.recovery_sign_in", user.id)).await?;
        self.open_session(user, None, "aal1", client).await
    }

    /// Sets the caller's password without asking for the current one (Kreeda's and
    /// Supabase's `PUT /user`): the policy applies, the caller's session is kept and
    /// every other session is revoked.
    pub async fn set_password_keeping_session(
        &self,
        who: &crate::auth::Principal,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.check_new_password("password", new, &who.user)?;
        let hash = self.hasher.hash(new).await?;
        let txn = self.writer.begin().await.map_err(db_error)?;
        self.apply_new_password(&txn, &who.user, &hash, Some(who.session_id), "password.change", client).await?;
        txn.commit().await.map_err(db_error)?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Stores a new password hash in `conn`: bumps `token_version`, revokes the user's
    /// sessions (all, or all but `keep`), retires outstanding reset tokens, audits
    /// `event` and queues the "password changed" notice.
    pub(crate) async fn apply_new_password(
        &self,
        conn: &impl ConnectionTrait,
        user: &user::Model,
        hash: &str,
        keep: Option<Uuid>,
        event: &'static str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let now = now();
        users::set_password_hash(conn, user.id, hash, now).await.map_err(db_error)?;
        match keep {
            None => {
                users::bump_token_version(conn, user.id, now).await.map_err(db_error)?;
                sessions::revoke_all_for_user(conn, user.id, now).await.map_err(db_error)?;
            }
            Some(session_id) => {
                for s in sessions::active_for_user(conn, user.id, now).await.map_err(db_error)? {
                    if s.id != session_id {
                        sessions::revoke(conn, s.id, now).await.map_err(db_error)?;
                    }
                }
            }
        }
        self.retire_tokens(conn, user.id, &[TokenKind::Recovery], now).await?;
        record(conn, client, AuditEvent::by_user(event, user.id)).await?;
        let vars = vec![("email", user.email.clone())];
        self.queue_mail(conn, OutgoingMail { template: Template::PasswordChanged, to: user.email.clone(), vars }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']));
        }
    }

    #[test]
    fn links_take_the_token_parameter() {
        assert_eq!(link("https://a.test/verify-email", "t"), "https://a.test/verify-email?token=t");
        assert_eq!(link("https://app.test/x?y=1", "t"), "https://app.test/x?y=1&token=t");
    }
}
