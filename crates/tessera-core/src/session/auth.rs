//! Sign-in, access-token checks, refresh rotation with reuse detection, sign-out,
//! password change and sessions (SPEC §4, §5.1, §5.2).

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tessera_domain::{Email, Error};
use tessera_store::entity::{session, user};
use tessera_store::query::sessions::{self, Rotation};
use tessera_store::query::{profiles, users};
use tracing::Instrument;
use uuid::Uuid;

use crate::app::Core;
use crate::audit::{append_to_file, audit_row, record, AuditEvent};
use crate::caller::{now, ClientInfo, Principal, Surface};
use crate::session::issued::{is_usable, shown_aal, Issued, SignIn, AAL1_STEP_UP};
use crate::session::sign_in::{count_refusal, Proof, Proven};
use crate::session::tokens::{AccessClaims, PresentedRefresh, RefreshKeys, SupabaseClaims, SUPABASE_AUDIENCE};

/// What a password sign-in names the account by.
#[derive(Clone, Copy)]
enum Login<'a> {
    Email(&'a str),
    Phone(&'a tessera_domain::Phone),
}

/// How a refresh answered.
pub(crate) enum Refreshed {
    /// The presented token was the current one: the counter advanced.
    Rotated,
    /// The presented token had just been replaced: the session's current token again.
    Converged,
}

fn chrono_dur(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

impl Core {
    /// A signed access token for a session, with the claims of the caller's surface:
    /// `(token, expires_in, expires_at)`, and on the Supabase surface the profile its
    /// metadata came from.
    pub(crate) async fn access_token(
        &self,
        user: &user::Model,
        session_id: Uuid,
        aal: &str,
        amr: Option<&str>,
        now: DateTime<Utc>,
        client: &ClientInfo,
    ) -> Result<(String, i64, i64, Option<tessera_store::entity::profile::Model>), Error> {
        let surface = client.surface;
        let ttl = self.settings.access_token_ttl.as_secs() as i64;
        let claims = AccessClaims {
            iss: self.jwt.issuer.clone(),
            aud: self.jwt.audience.clone(),
            sub: user.id.to_string(),
            user_id: user.id.to_string(),
            email: if Email::is_placeholder(&user.email) { String::new() } else { user.email.clone() },
            role: user.role.clone(),
            typ: "access".to_owned(),
            ver: user.token_version,
            sid: session_id,
            aal: shown_aal(aal).to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl,
            jti: Uuid::now_v7().to_string(),
        };
        let hooked = self.hook_enabled(crate::hooks::HookName::CustomAccessToken);
        let method = amr.unwrap_or("password");
        let (token, profile) = match surface {
            Surface::Native if hooked => {
                (self.jwt.sign_any(&self.customize_claims(&claims, user.id, method, client).await?)?, None)
            }
            Surface::Native => (self.jwt.sign(&claims)?, None),
            Surface::Supabase => {
                let claims = AccessClaims {
                    iss: self.jwt.supabase_issuer.clone(),
                    aud: SUPABASE_AUDIENCE.to_owned(),
                    role: SUPABASE_AUDIENCE.to_owned(),
                    ..claims
                };
                let profile = profiles::by_user(self.store.reader(), user.id).await?;
                let (user_metadata, app_metadata) = crate::account::users::metadata_of(user, profile.as_ref());
                // How the session was proven: its first factor (a password unless it
                // says otherwise), and a TOTP code on top once a password's session is
                // aal2 (a verified passkey is aal2 on its own).
                let mut amr = vec![json!({ "method": method, "timestamp": claims.iat })];
                if aal == "aal2" && method == "password" {
                    amr.insert(0, json!({ "method": "totp", "timestamp": claims.iat }));
                }
                let claims = SupabaseClaims {
                    base: &claims,
                    session_id: session_id.to_string(),
                    phone: user.phone.clone().unwrap_or_default(),
                    amr,
                    is_anonymous: user.is_anonymous,
                    app_metadata,
                    user_metadata,
                };
                let token = if hooked {
                    self.jwt.sign_any(&self.customize_claims(&claims, user.id, method, client).await?)?
                } else {
                    self.jwt.sign_any(&claims)?
                };
                (token, profile)
            }
        };
        Ok((token, ttl, now.timestamp() + ttl, profile))
    }

    /// Checks an access token against every rule of SPEC §4.1 and loads its user. A
    /// session the Supabase surface opened with the password alone for a user with MFA
    /// on ([`AAL1_STEP_UP`]: GoTrue hands those out, to be stepped up at
    /// `/auth/v1/factors`) is refused here, on every other surface: 403 `mfa_required`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Error> {
        let who = self.authenticate_supabase(token).await?;
        // Decided by the session, not the token: its refresh token, presented on another
        // surface, hands out tokens of that surface for the same session.
        if who.aal == AAL1_STEP_UP {
            return Err(Error::MfaRequired);
        }
        Ok(who)
    }

    /// [`Core::authenticate`] for the Supabase surface, which also accepts an aal1 session
    /// of a user with MFA on.
    pub async fn authenticate_supabase(&self, token: &str) -> Result<Principal, Error> {
        let claims = self.jwt.verify(token)?;
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| Error::InvalidToken)?;
        let (session, user) = self.store.session_with_user(claims.sid).await?.ok_or(Error::TokenRevoked)?;
        if session.user_id != user_id {
            return Err(Error::InvalidToken);
        }
        if session.revoked_at.is_some()
            || session.expires_at <= now()
            || !is_usable(&user)
            || user.token_version != claims.ver
        {
            return Err(Error::TokenRevoked);
        }
        Ok(Principal { session_id: session.id, aal: session.aal, user, claims })
    }

    /// Signs in with email and password. Unknown emails cost one dummy hash, like known
    /// ones; old-format hashes are re-hashed to the current parameters on success.
    pub async fn login(&self, email: &str, password: &SecretString, client: &ClientInfo) -> Result<SignIn, Error> {
        self.login_as(Login::Email(email), password, client).await
    }

    /// Signs in with a confirmed phone number and password (SPEC §5.14), as
    /// [`Core::login`] does with an email.
    pub async fn login_with_phone(
        &self,
        phone: &tessera_domain::Phone,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        self.login_as(Login::Phone(phone), password, client).await
    }

    async fn login_as(&self, login: Login<'_>, password: &SecretString, client: &ClientInfo) -> Result<SignIn, Error> {
        let proven = match self.check_password(login, password, client).await {
            Ok(proven) => proven,
            Err(e) => {
                count_refusal(&e);
                return Err(e);
            }
        };
        self.finish_sign_in(proven, client).await
    }

    /// The password verifier: the account whose password `password` is, or why not.
    #[tracing::instrument(name = "login", skip_all, err(level = "info"))]
    async fn check_password(
        &self,
        login: Login<'_>,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<Proven, Error> {
        // The lockout counts per address, or per number.
        let raw_email = match login {
            Login::Email(e) => e,
            Login::Phone(p) => p.as_str(),
        };
        // A locked email costs no hash.
        self.lockout_reserve(raw_email).await?;
        let email = match login {
            Login::Email(e) => Email::parse(e).ok(),
            Login::Phone(_) => None,
        };
        let account = match (&email, login) {
            (Some(e), _) => users::by_email(self.store.reader(), e.as_str()).await?,
            // Only a confirmed number signs in with a password.
            (None, Login::Phone(p)) => self.account_of_phone(p).await?.filter(|u| u.phone_verified_at.is_some()),
            (None, Login::Email(_)) => None,
        };
        // An account its owner deleted signs in as no account would: a wrong password.
        let known = account.as_ref().map(|u| u.id);
        let user = account.filter(|u| u.deleted_at.is_none());
        let verdict = match self.hasher.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await {
            Ok(v) => v,
            Err(e) => {
                // Refused before any work (the hashing pool is full): it counts for nothing.
                self.lockout_release(raw_email).await;
                return Err(e);
            }
        };
        // The password verification attempt hook judges every attempt on an account.
        if let Some(u) = user.as_ref() {
            let judged = match self.password_attempt_hook(u.id, verdict.matches, client).await {
                Ok(judged) => judged,
                Err(e) => {
                    self.lockout_release(raw_email).await;
                    return Err(e);
                }
            };
            if let Some(rejection) = judged {
                let detail = json!({ "email": u.email, "reason": "hook_rejected" });
                let ev = AuditEvent { event: "login.failure", user_id: Some(u.id), actor_id: None, detail };
                record(self.store.writer(), client, ev).await?;
                self.lockout_release(raw_email).await;
                if rejection.logout {
                    self.logout_everywhere(u.id, "logout.hook", None, client).await?;
                }
                return Err(Error::Hook { status: 400, code: "invalid_credentials", message: rejection.message });
            }
        }
        // The audit row names the account when there is one (admins filter by it); the
        // answer below is the same either way.
        let Some(user) = user.filter(|_| verdict.matches) else {
            let mut detail = json!({ "email": email.as_ref().map(Email::as_str), "reason": "invalid_credentials" });
            if let Login::Phone(p) = login {
                detail = json!({ "phone": p.as_str(), "reason": "invalid_credentials" });
            }
            let ev = AuditEvent { event: "login.failure", user_id: known, actor_id: None, detail };
            record(self.store.writer(), client, ev).await?;
            self.lockout_failure(raw_email, client).await?;
            return Err(Error::InvalidCredentials);
        };
        if user.mfa_enabled {
            // Not signed in yet: the second step decides; this attempt counts for nothing.
            self.lockout_release(raw_email).await;
        } else {
            self.lockout_success(raw_email).await;
        }
        let rehash = verdict.needs_rehash.then(|| password.clone());
        // Only the Supabase surface warns of it: other sign-ins skip the policy's check
        // (and the common-password list it builds on first use).
        let weak_password = if client.surface == Surface::Supabase {
            let address = Email::parse(&user.email).ok();
            self.settings.password_policy.check("password", password.expose_secret(), address.as_ref()).err()
        } else {
            None
        };
        Ok(Proven { rehash, weak_password, ..Proven::new(user, Proof::Password) })
    }

    /// The tokens of a session as it stands (its current refresh token, a new access
    /// token at `aal`): what a step-up to aal2 hands out again.
    pub(crate) async fn session_tokens(
        &self,
        user: user::Model,
        session: &session::Model,
        aal: &str,
        now: DateTime<Utc>,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let amr = session.amr.as_deref();
        self.issue(user, session.id, aal, amr, session.refresh_counter, session.expires_at, now, client).await
    }

    /// Refreshes (SPEC §4.3). The presented token carries its session and a counter:
    /// - the session's current counter rotates (one conditional update; of concurrent
    ///   rotations, on one node or many, exactly one wins) and answers the next token;
    /// - the counter just before it, retired less than `REFRESH_TOKEN_REUSE_INTERVAL`
    ///   ago (two tabs, a retry, the losers of that race), answers the session's current
    ///   token, the one its winner got, writing nothing;
    /// - anything older revokes the session and answers 401 `token_reused`.
    ///
    /// It runs on a task of its own, so a client that hangs up cancels nothing: a reuse
    /// it presented is revoked all the same, and a rotation it started completes (its
    /// retry then gets the same token).
    pub async fn refresh(self: &Arc<Self>, raw: &str, client: &ClientInfo) -> Result<Issued, Error> {
        let (core, raw, client) = (self.clone(), raw.to_owned(), client.clone());
        let file = self.audit_file.clone();
        let work = async move { crate::audit::with_audit_file(file, core.refresh_to_the_end(&raw, &client)).await };
        let result = tokio::spawn(work.instrument(tracing::Span::current()))
            .await
            .map_err(|e| Error::Internal(format!("refresh task: {e}")))
            .and_then(|r| r);
        let outcome = match &result {
            Ok((_, Refreshed::Rotated)) => "rotated",
            Ok((_, Refreshed::Converged)) => "converged",
            Err(Error::TokenReused) => "reuse_detected",
            Err(Error::TokenRevoked) => "revoked",
            Err(Error::InvalidToken) => "invalid",
            Err(Error::AccountInactive) => "account_inactive",
            Err(_) => "error",
        };
        metrics::counter!("tessera_refreshes_total", "outcome" => outcome).increment(1);
        result.map(|(issued, _)| issued)
    }

    #[tracing::instrument(name = "refresh", skip_all, err(level = "info"))]
    async fn refresh_to_the_end(&self, raw: &str, client: &ClientInfo) -> Result<(Issued, Refreshed), Error> {
        // With the custom access token hook, the access token is made (the hook called)
        // before the rotation: a hook that fails leaves the presented token current, so
        // the client's retry is no reuse (GoTrue's rotation and hook share one
        // transaction, which a failure rolls back).
        let early = self.access_token_before_rotation(raw, client).await?;
        let (session, user, counter, refreshed) = self.rotate_refresh(&self.refresh_keys, raw, client).await?;
        if session.oauth_client_id.is_some() {
            return Err(Error::InvalidToken);
        }
        if let Some((made, version, aal)) = early {
            // Still what the token was made for: hand it out with the rotated refresh token.
            if version == user.token_version && aal == session.aal {
                let (access_token, expires_in, expires_at, profile) = made;
                let now = crate::caller::now();
                let issued = Issued {
                    profile,
                    user,
                    session_id: session.id,
                    access_token,
                    expires_in,
                    expires_at,
                    refresh_token: self.refresh_keys.seal(session.id, counter),
                    refresh_expires_in: (session.expires_at - now).num_seconds().max(0),
                    weak_password: None,
                };
                return Ok((issued, refreshed));
            }
        }
        let issued = self
            .issue(
                user,
                session.id,
                &session.aal,
                session.amr.as_deref(),
                counter,
                session.expires_at,
                crate::caller::now(),
                client,
            )
            .await?;
        Ok((issued, refreshed))
    }

    /// The access token a refresh of `raw` will hand out, made before the rotation when
    /// the custom access token hook is on (see [`Core::refresh`]), with the user's
    /// `token_version` and the session's aal it was made for; `None` without the hook or
    /// for a token that does not name a live session of tessera's own.
    #[allow(clippy::type_complexity)]
    async fn access_token_before_rotation(
        &self,
        raw: &str,
        client: &ClientInfo,
    ) -> Result<Option<((String, i64, i64, Option<tessera_store::entity::profile::Model>), i32, String)>, Error> {
        if !self.hook_enabled(crate::hooks::HookName::CustomAccessToken) {
            return Ok(None);
        }
        let Some(PresentedRefresh::Sealed { session_id, .. }) = self.refresh_keys.open(raw) else { return Ok(None) };
        let Some((session, user)) = self.store.session_for_refresh(session_id).await? else { return Ok(None) };
        if session.revoked_at.is_some() || session.oauth_client_id.is_some() || !is_usable(&user) {
            return Ok(None);
        }
        let made = self.access_token(&user, session.id, &session.aal, session.amr.as_deref(), now(), client).await?;
        Ok(Some((made, user.token_version, session.aal)))
    }

    /// The rotation of SPEC §4.3 for a token `keys` open: the session and user as they
    /// stand, the counter whose token to hand out, and how it went.
    pub(crate) async fn rotate_refresh(
        &self,
        keys: &RefreshKeys,
        raw: &str,
        client: &ClientInfo,
    ) -> Result<(session::Model, user::Model, i64, Refreshed), Error> {
        let presented = keys.open(raw).ok_or(Error::InvalidToken)?;
        let (session_id, counter) = match &presented {
            PresentedRefresh::Sealed { session_id, counter } => (*session_id, *counter),
            PresentedRefresh::Legacy { hash } => {
                let (session, _) = self.store.session_by_legacy_token(hash).await?.ok_or(Error::InvalidToken)?;
                (session.id, 0)
            }
        };
        let interval = chrono_dur(self.settings.refresh_reuse_interval);
        // Each pass rotates, or reads the session and answers, or saw the counter move
        // under it; a counter moves a few times a second at most, so a few passes settle.
        for _ in 0..8 {
            let now = now();
            // Optimistically: the token presented is the session's current one.
            let expires_at = now + chrono_dur(self.settings.refresh_token_ttl);
            let ev = AuditEvent {
                event: "token.refresh",
                user_id: None,
                actor_id: None,
                detail: json!({ "session_id": session_id }),
            };
            let rotation = Rotation { session_id, counter, now, expires_at, audit: audit_row(client, ev) };
            let mut audit = rotation.audit.clone();
            if let Some((session, user)) = self.store.rotate(rotation).await? {
                audit.user_id = Some(user.id);
                audit.actor_id = Some(user.id);
                append_to_file(&audit);
                return Ok((session, user, counter + 1, Refreshed::Rotated));
            }
            // It did not rotate: learn why, from the database itself.
            let (session, user) = self.store.session_for_refresh(session_id).await?.ok_or(Error::InvalidToken)?;
            if session.revoked_at.is_some() || session.expires_at <= now {
                return Err(Error::TokenRevoked);
            }
            if !is_usable(&user) {
                return Err(Error::AccountInactive);
            }
            let current = session.refresh_counter;
            // A refresh that raced the rotation may have read its clock before the winner
            // did (`now` < `refreshed_at`): it is inside any interval, but none at all
            // means none.
            let within = |at| interval > ChronoDuration::zero() && now - at < interval;
            if counter + 1 == current && session.refreshed_at.is_some_and(within) {
                return Ok((session, user, current, Refreshed::Converged));
            }
            if counter > current {
                // Sealed by us for a counter the session never reached: a restored backup.
                return Err(Error::InvalidToken);
            }
            if counter < current {
                return self.reuse_detected(&session, &user, client).await;
            }
            // The counter is still the one presented (a rotation raced a change and lost):
            // try again.
        }
        Err(Error::Unavailable("refresh contention".to_owned()))
    }

    /// A retired refresh token came back: revokes its session and audits the reuse.
    async fn reuse_detected<T>(
        &self,
        session: &session::Model,
        user: &user::Model,
        client: &ClientInfo,
    ) -> Result<T, Error> {
        let ev = AuditEvent::by_user("token.reuse_detected", user.id).detail(json!({ "session_id": session.id }));
        let row = audit_row(client, ev);
        self.store.revoke_session(session.id, row.clone()).await?;
        append_to_file(&row);
        tracing::warn!(session_id = %session.id, user_id = %user.id, "refresh token reuse detected; session revoked");
        Err(Error::TokenReused)
    }

    /// Revokes the caller's current session.
    pub async fn logout(&self, who: &Principal, client: &ClientInfo) -> Result<(), Error> {
        let tx = self.store.begin().await?;
        sessions::revoke(&tx, who.session_id, now()).await?;
        record(&tx, client, AuditEvent::by_user("logout", who.user.id).detail(json!({ "session_id": who.session_id })))
            .await?;
        tx.commit().await
    }

    /// Bumps `token_version`, revokes every session of a user and retires their one-time
    /// tokens, so every outstanding token fails at once.
    pub async fn logout_everywhere(
        &self,
        user_id: Uuid,
        event: &'static str,
        actor: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<u64, Error> {
        let now = now();
        let tx = self.store.begin().await?;
        users::revoke_credentials(&tx, user_id, now).await?;
        let revoked = sessions::revoke_all_for_user(&tx, user_id, now).await?;
        let ev = AuditEvent {
            event,
            user_id: Some(user_id),
            actor_id: actor,
            detail: json!({ "sessions_revoked": revoked }),
        };
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Revokes every session of the caller but the current one (Supabase's `scope=others`).
    pub async fn logout_others(&self, who: &Principal, client: &ClientInfo) -> Result<u64, Error> {
        let now = now();
        let tx = self.store.begin().await?;
        users::by_id_for_update(&tx, who.user.id).await?;
        let revoked = sessions::revoke_all_but(&tx, who.user.id, who.session_id, now).await?;
        let detail = json!({ "kept_session_id": who.session_id, "sessions_revoked": revoked });
        record(&tx, client, AuditEvent::by_user("logout.others", who.user.id).detail(detail)).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Changes the caller's password after checking the current one; revokes every session.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %who.user.id))]
    pub async fn change_password(
        &self,
        who: &Principal,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.require_aal2_if_mfa(who)?;
        self.check_new_password("new_password", new, &who.user)?;
        let check = async { Ok(self.hasher.verify(current, Some(&who.user.password_hash)).await?.matches) };
        if !self.check_again(&who.user.email, client, check).await? {
            return Err(Error::WrongPassword);
        }
        let hash = self.hasher.hash(new).await?;
        let tx = self.store.begin().await?;
        self.apply_new_password(&tx, &who.user, &hash, None, "password.change", client).await?;
        tx.commit().await?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<session::Model>, Error> {
        sessions::active_for_user(self.store.reader(), user_id, now()).await
    }

    /// Revokes one of the caller's own sessions; another user's answers not found.
    pub async fn revoke_session(&self, who: &Principal, session_id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let session = sessions::by_id(self.store.reader(), session_id).await?;
        match session {
            Some(s) if s.user_id == who.user.id && s.revoked_at.is_none() => {
                let tx = self.store.begin().await?;
                sessions::revoke(&tx, s.id, now()).await?;
                record(&tx, client, AuditEvent::by_user("logout", who.user.id).detail(json!({ "session_id": s.id })))
                    .await?;
                tx.commit().await
            }
            _ => Err(Error::SessionNotFound),
        }
    }
}
