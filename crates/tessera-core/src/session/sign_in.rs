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
use tessera_store::query::sessions::{self, NewSession, SignInWrites, Spent, Written};
use tessera_store::Tx;
use uuid::Uuid;

use crate::app::Core;
use crate::audit::{append_to_file, audit_row, record, truncate, AuditEvent};
use crate::caller::{now, ClientInfo, Surface};
use crate::session::issued::{is_usable, Issued, SignIn, AAL1_STEP_UP};

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
    /// An identity at another provider (first factor; [`Proven::provider`] names it).
    External,
    /// A new anonymous user's first session.
    Anonymous,
    /// A code sent by SMS to the account's phone (first factor).
    Phone,
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
    /// What the verifier spent and the pipeline writes with the session (a passkey's
    /// challenge and counter): a sign-in whose challenge is already gone, or whose passkey
    /// counter did not move forwards, stops there.
    pub spent: Spent,
    /// The provider of a [`Proof::External`].
    pub provider: Option<String>,
}

impl Proven {
    pub fn new(user: user::Model, proof: Proof) -> Proven {
        Proven { user, proof, rehash: None, weak_password: None, spent: Spent::default(), provider: None }
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
        let Proven { user, proof, rehash, weak_password, spent, provider } = proven;
        let refusal = self.refusal(&user);
        // The hash costs what it costs outside any transaction.
        let new_hash = match rehash {
            Some(password) if refusal.is_none() => Some(self.hasher.hash(&password).await?),
            _ => None,
        };
        // The session's assurance level, or `None` when a second step comes first.
        let aal = match proof {
            Proof::SecondFactor | Proof::Passkey { user_verified: true } => Some("aal2"),
            _ if !user.mfa_enabled => Some("aal1"),
            // The Supabase surface opens a session its client steps up at
            // `/auth/v1/factors/{id}/verify`; only that surface accepts it meanwhile.
            _ if client.surface == Surface::Supabase => Some(AAL1_STEP_UP),
            _ => None,
        };
        let tx = match (tx, aal) {
            (Some(tx), _) => tx,
            // A session to open and no transaction of the verifier's: its writes go to the
            // store as one (on a SQLite file, sharing a commit with others under way).
            (None, Some(aal)) if refusal.is_none() => {
                let writes = self.session_writes(&user, aal, proof, provider.as_deref(), spent, new_hash, client);
                let session = writes.session.clone();
                let written = self.store.sign_in(writes).await?;
                return self.opened(written, None, user, session, weak_password, client).await;
            }
            (None, _) => self.store.begin().await?,
        };
        if let Some(stopped) = sessions::spend(&tx, &spent, now()).await? {
            return Err(stopped_sign_in(tx, stopped).await?);
        }
        if let Some((error, reason)) = refusal {
            let ev = AuditEvent::by_user("login.failure", user.id).detail(json!({ "reason": reason }));
            record(&tx, client, ev).await?;
            tx.commit().await?;
            return Err(error);
        }
        let Some(aal) = aal else {
            let challenge = self.start_second_step(&tx, &user, new_hash.as_deref()).await?;
            tx.commit().await?;
            return Ok(SignIn::MfaRequired(challenge));
        };
        let writes = self.session_writes(&user, aal, proof, provider.as_deref(), Spent::default(), new_hash, client);
        let session = writes.session.clone();
        let written = sessions::write_sign_in(&tx, writes).await?;
        self.opened(written, Some(tx), user, session, weak_password, client).await
    }

    /// The writes of a sign-in that opens a session: what was spent, the session (on the
    /// `token_version` read when the check began), the cap, the audit event.
    #[allow(clippy::too_many_arguments)]
    fn session_writes(
        &self,
        user: &user::Model,
        aal: &str,
        proof: Proof,
        provider: Option<&str>,
        spent: Spent,
        new_hash: Option<String>,
        client: &ClientInfo,
    ) -> SignInWrites {
        let now = now();
        let ttl = chrono_dur(self.settings.refresh_token_ttl);
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_version: user.token_version,
            now,
            expires_at: now + ttl,
            ip: client.ip.clone(),
            user_agent: client.user_agent.as_ref().map(|ua| truncate(ua, 512)),
            aal: aal.to_owned(),
            amr: match proof {
                Proof::Passkey { .. } => Some("passkey".to_owned()),
                Proof::External => Some("oauth".to_owned()),
                Proof::Anonymous => Some("anonymous".to_owned()),
                Proof::Phone => Some("otp".to_owned()),
                _ => None,
            },
            new_password_hash: new_hash,
            oauth_client_id: None,
            oauth_scope: None,
            oauth_auth_time: None,
        };
        let mut detail = json!({ "session_id": session.id, "rehashed": session.new_password_hash.is_some() });
        match proof {
            Proof::Passkey { user_verified } => {
                detail["method"] = json!("passkey");
                detail["user_verified"] = json!(user_verified);
            }
            Proof::External => {
                detail["method"] = json!("oauth");
                detail["provider"] = json!(provider);
            }
            Proof::Anonymous => detail["method"] = json!("anonymous"),
            Proof::Phone => detail["method"] = json!("sms"),
            _ => {}
        }
        let audit = audit_row(client, AuditEvent::by_user("login.success", user.id).detail(detail));
        SignInWrites { spent, session, max_sessions: self.settings.max_sessions_per_user, audit }
    }

    /// Opens the session `id` of an OAuth client for a user who approved it at the
    /// provider (SPEC §5.12): the account rule and the `token_version` of `user` as read,
    /// the assurance the user signed in with there, the cap, the audit event
    /// `oauth.token`. `false` when no session opened (the account changed meanwhile).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_client_session(
        &self,
        id: Uuid,
        user: &user::Model,
        aal: &str,
        amr: Option<&str>,
        auth_time: DateTime<Utc>,
        client_id: Uuid,
        scope: &str,
        client: &ClientInfo,
    ) -> Result<bool, Error> {
        if self.refusal(user).is_some() {
            return Ok(false);
        }
        let mut writes = self.session_writes(user, aal, Proof::Password, None, Spent::default(), None, client);
        writes.session.id = id;
        writes.session.amr = amr.map(str::to_owned);
        writes.session.oauth_client_id = Some(client_id);
        writes.session.oauth_scope = Some(scope.to_owned());
        writes.session.oauth_auth_time = Some(auth_time);
        let detail =
            json!({ "session_id": id, "client_id": client_id, "scope": scope, "grant_type": "authorization_code" });
        writes.audit = audit_row(client, AuditEvent::by_user("oauth.token", user.id).detail(detail));
        let audit = writes.audit.clone();
        match self.store.sign_in(writes).await? {
            Written::Opened(_) => {
                append_to_file(&audit);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The answer to a sign-in's writes, in the verifier's transaction `tx` (committed
    /// here) or in their own (already committed): the tokens of the session opened, or
    /// why none was. A session refused because the account changed meanwhile (a password
    /// change, logout-all, deactivation) is audited and answers as a wrong password would.
    async fn opened(
        &self,
        written: Written,
        tx: Option<Tx>,
        mut user: user::Model,
        session: NewSession,
        weak_password: Option<Vec<FieldError>>,
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        match written {
            Written::Opened(row) => {
                if let Some(tx) = tx {
                    tx.commit().await?;
                }
                append_to_file(&row);
                user.last_login_at = Some(session.now);
                if let Some(hash) = session.new_password_hash {
                    user.password_hash = hash;
                }
                let aal = session.aal.as_str();
                let issued = self
                    .issue(user, session.id, aal, session.amr.as_deref(), 0, session.expires_at, session.now, client)
                    .await?;
                Ok(SignIn::Session(Box::new(Issued { weak_password, ..issued })))
            }
            Written::Revoked => {
                let ev =
                    AuditEvent::by_user("login.failure", user.id).detail(json!({ "reason": "revoked_during_sign_in" }));
                match tx {
                    Some(tx) => {
                        record(&tx, client, ev).await?;
                        tx.commit().await?;
                    }
                    None => record(self.store.writer(), client, ev).await?,
                }
                Err(Error::InvalidCredentials)
            }
            stopped => Err(match tx {
                Some(tx) => stopped_sign_in(tx, stopped).await?,
                None => spent_error(&stopped),
            }),
        }
    }

    /// The access token and the refresh token at `counter` of a session: what a new
    /// session, a refresh and a step-up hand out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn issue(
        &self,
        user: user::Model,
        session_id: Uuid,
        aal: &str,
        amr: Option<&str>,
        counter: i64,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let (access_token, expires_in, expires_at, profile) =
            self.access_token(&user, session_id, aal, amr, now, client).await?;
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

/// Ends `tx` where the verifier's spending stopped (a spent challenge and a passkey
/// counter that did not move stay written) and answers why.
async fn stopped_sign_in(tx: Tx, stopped: Written) -> Result<Error, Error> {
    if !matches!(stopped, Written::ChallengeGone) {
        tx.commit().await?;
    }
    Ok(spent_error(&stopped))
}

/// The error of a sign-in stopped by what its verifier spent.
fn spent_error(stopped: &Written) -> Error {
    match stopped {
        Written::ChallengeGone => Error::ChallengeNotFound,
        Written::PasskeyStale => Error::PasskeyRefused,
        Written::Opened(_) | Written::Revoked => Error::Internal("a sign-in stopped where it did not".to_owned()),
    }
}
