//! The one sign-in pipeline. Every way in verifies its own proof (a password, a mailed
//! link or code, a second factor, a new account's first session; later a passkey, a
//! provider, a phone) and hands [`Core::finish_sign_in`] the user as read when the check
//! began and what was proven. That function alone checks the account, applies the MFA
//! and assurance rules, opens the session (only on the `token_version` the check read,
//! and only for an active, undeleted account), audits and counts. A new way in is a new
//! verifier and a [`Proof`], not a copy of this tail.
//!
//! A refresh continues a session rather than opening one: the rotation statement holds
//! the same account rule (`is_usable` and the session's `token_version`), and the
//! tokens it hands out come from the same [`Core::issue`].

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::SecretString;
use serde_json::json;
use tessera_domain::{Error, FieldError};
use tessera_store::entity::user;
use tessera_store::query::sessions::{self, NewSession};
use tessera_store::Tx;
use uuid::Uuid;

use crate::app::Core;
use crate::audit::{record, truncate, AuditEvent};
use crate::caller::{now, ClientInfo, Surface};
use crate::session::issued::{commit_unless_failed, is_usable, Issued, SignIn, AAL1_STEP_UP};

/// What a verifier proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The password (first factor).
    Password,
    /// A link or code sent to the address (first factor): a magic link, a one-time code,
    /// a confirmation or recovery that signs in.
    Mail,
    /// A new account's own first session, right after sign-up.
    SignUp,
    /// The second step of a two-step sign-in: a TOTP code, a recovery code or a passkey.
    SecondFactor,
    /// A passkey on its own (usernameless); `user_verified` when the authenticator
    /// verified its user (a PIN, a fingerprint): that is two factors in one, aal2.
    Passkey { user_verified: bool },
}

/// A verified sign-in on its way to a session.
#[derive(Debug, Clone)]
pub struct Proven {
    /// The user as read when the check began: the session opens only on its
    /// `token_version`.
    pub user: user::Model,
    pub proof: Proof,
    /// The password, when the verifier found its stored hash due for re-hashing to the
    /// current parameters (hashed once the account is known to sign in).
    pub rehash: Option<SecretString>,
    /// How a proven password breaks today's policy, if it does (the Supabase surface's
    /// warning; not checked on the others).
    pub weak_password: Option<Vec<FieldError>>,
}

impl Proven {
    pub fn new(user: user::Model, proof: Proof) -> Proven {
        Proven { user, proof, rehash: None, weak_password: None }
    }
}

/// Counts a sign-in's outcome (`tessera_sign_ins_total`).
fn count(result: &Result<SignIn, Error>, proof: Proof) {
    let outcome = match (result, proof) {
        (Ok(SignIn::Session(_)), Proof::SecondFactor) => "success_mfa",
        (Ok(SignIn::Session(_)), _) => "success",
        (Ok(SignIn::MfaRequired(_)), _) => "mfa_required",
        (Err(e), _) => refusal_outcome(e),
    };
    metrics::counter!("tessera_sign_ins_total", "outcome" => outcome).increment(1);
}

/// Counts a verifier's refusal, which never reached the pipeline.
pub(crate) fn count_refusal(error: &Error) {
    metrics::counter!("tessera_sign_ins_total", "outcome" => refusal_outcome(error)).increment(1);
}

fn refusal_outcome(error: &Error) -> &'static str {
    match error {
        Error::InvalidCredentials => "invalid_credentials",
        Error::InvalidMfaCode => "invalid_mfa_code",
        Error::AccountLocked { .. } => "locked",
        Error::AccountInactive => "account_inactive",
        Error::EmailNotVerified => "email_not_verified",
        Error::Overloaded { .. } => "overloaded",
        _ => "error",
    }
}

fn chrono_dur(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

impl Core {
    /// The end of every way in: the account checked, the password re-hashed if due, the
    /// MFA rule applied, then the session opened (or the second step started), audited,
    /// committed and counted.
    pub(crate) async fn finish_sign_in(&self, proven: Proven, client: &ClientInfo) -> Result<SignIn, Error> {
        let proof = proven.proof;
        let result = self.finish(None, proven, client).await;
        count(&result, proof);
        result
    }

    /// [`Core::finish_sign_in`] in `tx`, which holds the verifier's own writes (a spent
    /// token, a used code): they commit with the session, or not at all.
    pub(crate) async fn finish_sign_in_in(&self, tx: Tx, proven: Proven, client: &ClientInfo) -> Result<SignIn, Error> {
        let proof = proven.proof;
        let result = self.finish(Some(tx), proven, client).await;
        count(&result, proof);
        result
    }

    /// Why an account may not sign in now, as the answer and the audit's reason.
    fn refusal(&self, user: &user::Model) -> Option<(Error, &'static str)> {
        if !is_usable(user) {
            Some((Error::AccountInactive, "account_inactive"))
        } else if !self.may_sign_in(user) {
            Some((Error::EmailNotVerified, "email_not_verified"))
        } else {
            None
        }
    }

    async fn finish(&self, tx: Option<Tx>, proven: Proven, client: &ClientInfo) -> Result<SignIn, Error> {
        let Proven { user, proof, rehash, weak_password } = proven;
        let refusal = self.refusal(&user);
        // The hash costs what it costs outside any transaction.
        let new_hash = match rehash {
            Some(password) if refusal.is_none() => Some(self.hasher.hash(&password).await?),
            _ => None,
        };
        let tx = match tx {
            Some(tx) => tx,
            None => self.store.begin().await?,
        };
        if let Some((error, reason)) = refusal {
            let ev = AuditEvent::by_user("login.failure", user.id).detail(json!({ "reason": reason }));
            record(&tx, client, ev).await?;
            tx.commit().await?;
            return Err(error);
        }
        let aal = match proof {
            Proof::SecondFactor | Proof::Passkey { user_verified: true } => "aal2",
            _ if !user.mfa_enabled => "aal1",
            // The Supabase surface opens a session its client steps up at
            // `/auth/v1/factors/{id}/verify`; only that surface accepts it meanwhile.
            _ if client.surface == Surface::Supabase => AAL1_STEP_UP,
            _ => {
                let challenge = self.start_second_step(&tx, &user, new_hash.as_deref()).await?;
                tx.commit().await?;
                return Ok(SignIn::MfaRequired(challenge));
            }
        };
        let opened = self.open_session_in(&tx, user, new_hash, aal, proof, client).await;
        let issued = commit_unless_failed(tx, opened).await?;
        Ok(SignIn::Session(Box::new(Issued { weak_password, ..issued })))
    }

    /// Opens the session in `tx`, enforcing `MAX_SESSIONS_PER_USER`. If the user's
    /// `token_version` moved since `user` was read (a password change, logout-all,
    /// deactivation) or the account is no longer usable, no session is opened and the
    /// sign-in answers as a wrong password would.
    async fn open_session_in(
        &self,
        tx: &Tx,
        mut user: user::Model,
        new_hash: Option<String>,
        aal: &str,
        proof: Proof,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let now = now();
        let ttl = chrono_dur(self.settings.refresh_token_ttl);
        let new = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_version: user.token_version,
            now,
            expires_at: now + ttl,
            ip: client.ip.clone(),
            user_agent: client.user_agent.as_ref().map(|ua| truncate(ua, 512)),
            aal: aal.to_owned(),
            new_password_hash: new_hash,
        };
        if !sessions::open(tx, &new).await? {
            let ev =
                AuditEvent::by_user("login.failure", user.id).detail(json!({ "reason": "revoked_during_sign_in" }));
            record(tx, client, ev).await?;
            return Err(Error::InvalidCredentials);
        }
        let max = self.settings.max_sessions_per_user as usize;
        if max > 0 {
            let live = sessions::active_for_user(tx, user.id, now).await?;
            for old in live.iter().filter(|s| s.id != new.id).take(live.len().saturating_sub(max)) {
                sessions::revoke(tx, old.id, now).await?;
            }
        }
        let mut detail = json!({ "session_id": new.id, "rehashed": new.new_password_hash.is_some() });
        if let Proof::Passkey { user_verified } = proof {
            detail["method"] = json!("passkey");
            detail["user_verified"] = json!(user_verified);
        }
        record(tx, client, AuditEvent::by_user("login.success", user.id).detail(detail)).await?;
        user.last_login_at = Some(now);
        if let Some(hash) = new.new_password_hash {
            user.password_hash = hash;
        }
        self.issue(user, new.id, aal, 0, new.expires_at, now, client.surface).await
    }

    /// The access token and the refresh token at `counter` of a session: what a new
    /// session, a refresh and a step-up hand out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn issue(
        &self,
        user: user::Model,
        session_id: Uuid,
        aal: &str,
        counter: i64,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        surface: Surface,
    ) -> Result<Issued, Error> {
        let (access_token, expires_in, expires_at, profile) =
            self.access_token(&user, session_id, aal, now, surface).await?;
        Ok(Issued {
            profile,
            user,
            session_id,
            access_token,
            expires_in,
            expires_at,
            refresh_token: self.refresh_keys.seal(session_id, counter),
            refresh_expires_in: (session_expires_at - now).num_seconds().max(0),
            weak_password: None,
        })
    }
}
