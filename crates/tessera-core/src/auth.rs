//! Sign-in, access-token checks, refresh rotation with reuse detection, sign-out,
//! password change and sessions (SPEC §4, §5.1, §5.2).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};
use secrecy::SecretString;
use serde_json::json;
use tessera_domain::{Email, Error, Role};
use tessera_store::entity::{refresh_token, session, user};
use tessera_store::query::refresh_tokens::{Retire, Rotation};
use tessera_store::query::{refresh_tokens, sessions, users};
use tessera_store::{db_error, db_error_text, DirectError, SqliteDirect};
use uuid::Uuid;

use crate::audit::{append_to_file, audit_row, record, truncate, AuditEvent};
use crate::tokens::{random_token, sha256_hex, AccessClaims};
use crate::{now, ClientInfo, Core};

/// What a successful sign-in or refresh hands out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub user: user::Model,
    pub session_id: Uuid,
    pub access_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
    pub refresh_token: String,
    /// Seconds the refresh token (the session) lives.
    pub refresh_expires_in: i64,
}

/// An authenticated caller, from a checked access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: user::Model,
    pub session_id: Uuid,
    pub claims: AccessClaims,
}

impl Principal {
    /// The caller's role.
    pub fn role(&self) -> Role {
        Role::parse(&self.user.role).unwrap_or(Role::User)
    }
}

fn chrono_dur(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

/// Whether an account may hold a session.
pub fn is_usable(u: &user::Model) -> bool {
    u.is_active && u.deleted_at.is_none()
}

impl Core {
    fn access_token(
        &self,
        user: &user::Model,
        session_id: Uuid,
        aal: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, i64, i64), Error> {
        let ttl = self.settings.access_token_ttl.as_secs() as i64;
        let claims = AccessClaims {
            iss: self.jwt.issuer.clone(),
            aud: self.jwt.audience.clone(),
            sub: user.id.to_string(),
            user_id: user.id.to_string(),
            email: user.email.clone(),
            role: user.role.clone(),
            typ: "access".to_owned(),
            ver: user.token_version,
            sid: session_id,
            aal: aal.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl,
            jti: Uuid::now_v7().to_string(),
        };
        Ok((self.jwt.sign(&claims)?, ttl, claims.exp))
    }

    /// Checks an access token against every rule of SPEC §4.1 and loads its user.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Error> {
        let claims = self.jwt.verify(token)?;
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| Error::InvalidToken)?;
        let (session, user) = self.session_with_user(claims.sid).await?.ok_or(Error::TokenRevoked)?;
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
        Ok(Principal { session_id: session.id, user, claims })
    }

    /// A session and its user.
    async fn session_with_user(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, Error> {
        let kept = async {
            match &self.pg_kept {
                Some(kept) => Some(kept.session_with_user(id).await),
                None => None,
            }
        };
        self.read(|d| d.session_with_user(id), kept, sessions::with_user(&self.db, id)).await
    }

    /// A refresh token by its hash.
    async fn refresh_token(&self, hash: &str) -> Result<Option<refresh_token::Model>, Error> {
        let kept = async { None::<Result<_, sea_orm::sqlx::Error>> };
        self.read(|d| d.refresh_token(hash), kept, refresh_tokens::by_hash(&self.db, hash)).await
    }

    /// A refresh token by its hash, with its session and the session's user.
    async fn refresh_token_with_session(
        &self,
        hash: &str,
    ) -> Result<Option<(refresh_token::Model, session::Model, user::Model)>, Error> {
        let kept = async {
            match &self.pg_kept {
                Some(kept) => Some(kept.refresh_token_with_session(hash).await),
                None => None,
            }
        };
        self.read(|d| d.refresh_token_with_session(hash), kept, refresh_tokens::with_session(&self.db, hash)).await
    }

    /// Reads in place on a SQLite file, on a kept connection on PostgreSQL, and through
    /// the pool when neither is there or could answer.
    async fn read<T>(
        &self,
        direct: impl FnOnce(&SqliteDirect) -> Result<T, DirectError>,
        kept: impl std::future::Future<Output = Option<Result<T, sea_orm::sqlx::Error>>>,
        pooled: impl std::future::Future<Output = Result<T, sea_orm::DbErr>>,
    ) -> Result<T, Error> {
        if let Some(d) = &self.sqlite_direct {
            match direct(d) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(error = %e, "direct SQLite read failed; asking the pool"),
            }
        }
        match kept.await {
            Some(Ok(found)) => return Ok(found),
            Some(Err(e)) => tracing::debug!(error = %e, "read on a kept connection failed; asking the pool"),
            None => {}
        }
        pooled.await.map_err(db_error)
    }

    /// Writes a rotation atomically: on a SQLite file in the next batch of the rotation
    /// writer; on PostgreSQL as one statement on a kept connection; elsewhere (an
    /// in-memory SQLite database) in a transaction of the pool.
    async fn rotate(&self, rotation: Rotation) -> Result<bool, Error> {
        if let Some(rotations) = &self.rotations {
            return rotations.rotate(rotation).await;
        }
        if let Some(kept) = &self.pg_kept {
            return kept.rotate(&rotation).await.map_err(db_error_text);
        }
        let txn = self.writer.begin().await.map_err(db_error)?;
        if !refresh_tokens::rotate(&txn, &rotation).await.map_err(db_error)? {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Signs in with email and password. Unknown emails cost one dummy hash, like known
    /// ones; old-format hashes are re-hashed to the current parameters on success.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn login(&self, email: &str, password: &SecretString, client: &ClientInfo) -> Result<Issued, Error> {
        // A locked email costs no hash.
        self.lockout_reserve(email).await?;
        let raw_email = email;
        let email = Email::parse(email).ok();
        let user = match &email {
            Some(e) => users::by_email(&self.db, e.as_str()).await.map_err(db_error)?,
            None => None,
        };
        let verdict = self.hasher.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        // The audit row names the account when there is one (admins filter by it); the
        // answer below is the same either way.
        let known = user.as_ref().map(|u| u.id);
        let Some(user) = user.filter(|_| verdict.matches) else {
            let detail = json!({ "email": email.as_ref().map(Email::as_str), "reason": "invalid_credentials" });
            let ev = AuditEvent { event: "login.failure", user_id: known, actor_id: None, detail };
            record(&self.writer, client, ev).await?;
            self.lockout_failure(raw_email, client).await?;
            return Err(Error::InvalidCredentials);
        };
        self.lockout_success(raw_email).await;
        if !is_usable(&user) {
            let ev = AuditEvent::by_user("login.failure", user.id).detail(json!({ "reason": "account_inactive" }));
            record(&self.writer, client, ev).await?;
            return Err(Error::AccountInactive);
        }
        if self.settings.require_email_verification && user.email_verified_at.is_none() {
            let ev = AuditEvent::by_user("login.failure", user.id).detail(json!({ "reason": "email_not_verified" }));
            record(&self.writer, client, ev).await?;
            return Err(Error::EmailNotVerified);
        }
        let new_hash = if verdict.needs_rehash { Some(self.hasher.hash(password).await?) } else { None };
        self.open_session(user, new_hash, "aal1", client).await
    }

    /// Creates a session and its first refresh token for a user who has proven who they
    /// are, enforcing `MAX_SESSIONS_PER_USER`.
    pub async fn open_session(
        &self,
        mut user: user::Model,
        new_hash: Option<String>,
        aal: &str,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let now = now();
        let ttl = chrono_dur(self.settings.refresh_token_ttl);
        let session_id = Uuid::now_v7();
        let refresh = random_token(32);
        let txn = self.writer.begin().await.map_err(db_error)?;
        // The first statement writes, so SQLite takes its write lock up front.
        users::touch_login(&txn, user.id, now).await.map_err(db_error)?;
        if let Some(hash) = &new_hash {
            users::set_password_hash(&txn, user.id, hash, now).await.map_err(db_error)?;
        }
        session::ActiveModel {
            id: Set(session_id),
            user_id: Set(user.id),
            created_at: Set(now),
            last_used_at: Set(now),
            expires_at: Set(now + ttl),
            revoked_at: Set(None),
            ip: Set(client.ip.clone()),
            user_agent: Set(client.user_agent.as_ref().map(|ua| truncate(ua, 512))),
            aal: Set(aal.to_owned()),
        }
        .insert(&txn)
        .await
        .map_err(db_error)?;
        refresh_tokens::insert(&txn, &sha256_hex(&refresh), session_id, now).await.map_err(db_error)?;
        let max = self.settings.max_sessions_per_user as usize;
        if max > 0 {
            let live = sessions::active_for_user(&txn, user.id, now).await.map_err(db_error)?;
            for old in live.iter().filter(|s| s.id != session_id).take(live.len().saturating_sub(max)) {
                sessions::revoke(&txn, old.id, now).await.map_err(db_error)?;
            }
        }
        let detail = json!({ "session_id": session_id, "rehashed": new_hash.is_some() });
        record(&txn, client, AuditEvent::by_user("login.success", user.id).detail(detail)).await?;
        txn.commit().await.map_err(db_error)?;
        user.last_login_at = Some(now);
        if let Some(hash) = new_hash {
            user.password_hash = hash;
        }
        let (access_token, expires_in, expires_at) = self.access_token(&user, session_id, aal, now)?;
        Ok(Issued {
            user,
            session_id,
            access_token,
            expires_in,
            expires_at,
            refresh_token: refresh,
            refresh_expires_in: ttl.num_seconds(),
        })
    }

    /// Rotates a refresh token (SPEC §4.3). The live token is retired by a conditional
    /// update, so concurrent refreshes of one token, on any number of nodes, leave one
    /// chain. A token retired less than `REFRESH_TOKEN_REUSE_INTERVAL` ago still
    /// refreshes (it rotates the chain's current head); one retired longer ago revokes
    /// the whole session and is audited as a reuse.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn refresh(&self, raw: &str, client: &ClientInfo) -> Result<Issued, Error> {
        let now = now();
        let hash = sha256_hex(raw.trim());
        let (mut token, session, user) = self.refresh_token_with_session(&hash).await?.ok_or(Error::InvalidToken)?;
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Err(Error::TokenRevoked);
        }
        if !is_usable(&user) {
            return Err(Error::AccountInactive);
        }
        let interval = chrono_dur(self.settings.refresh_reuse_interval);
        for _ in 0..32 {
            if token.revoked {
                return Err(Error::TokenRevoked);
            }
            // A token retired within the interval (two tabs refreshing at once) retires the
            // session's live token instead, whichever that is when the write runs.
            let follow_head = match token.used_at {
                None => false,
                // Measured at this moment, not at the request's start: a token retired by a
                // concurrent refresh a moment ago is inside the interval; with an interval
                // of 0 every second use is a reuse.
                Some(used_at) if crate::now() - used_at >= interval => {
                    let txn = self.writer.begin().await.map_err(db_error)?;
                    sessions::revoke(&txn, session.id, now).await.map_err(db_error)?;
                    let ev = AuditEvent::by_user("token.reuse_detected", user.id)
                        .detail(json!({ "session_id": session.id }));
                    record(&txn, client, ev).await?;
                    txn.commit().await.map_err(db_error)?;
                    tracing::warn!(session_id = %session.id, user_id = %user.id, "refresh token reuse detected; session revoked");
                    return Err(Error::TokenReused);
                }
                Some(_) => true,
            };
            let next = random_token(32);
            let ttl = chrono_dur(self.settings.refresh_token_ttl);
            let ev = AuditEvent::by_user("token.refresh", user.id).detail(json!({ "session_id": session.id }));
            let rotation = Rotation {
                retire: if follow_head { Retire::Live } else { Retire::Presented(hash.clone()) },
                new_hash: sha256_hex(&next),
                session_id: session.id,
                now,
                expires_at: now + ttl,
                audit: audit_row(client, ev),
            };
            let audit = rotation.audit.clone();
            if !self.rotate(rotation).await? {
                // Another refresh retired it first (or the session has no live token left):
                // look again and follow the chain.
                if follow_head && refresh_tokens::head(&self.db, session.id).await.map_err(db_error)?.is_none() {
                    return Err(Error::TokenRevoked);
                }
                token = self.refresh_token(&hash).await?.ok_or(Error::InvalidToken)?;
                continue;
            }
            append_to_file(&audit);
            let (access_token, expires_in, expires_at) = self.access_token(&user, session.id, &session.aal, now)?;
            return Ok(Issued {
                user,
                session_id: session.id,
                access_token,
                expires_in,
                expires_at,
                refresh_token: next,
                refresh_expires_in: ttl.num_seconds(),
            });
        }
        Err(Error::Unavailable("refresh contention".to_owned()))
    }

    /// Revokes the caller's current session.
    pub async fn logout(&self, who: &Principal, client: &ClientInfo) -> Result<(), Error> {
        let txn = self.writer.begin().await.map_err(db_error)?;
        sessions::revoke(&txn, who.session_id, now()).await.map_err(db_error)?;
        record(
            &txn,
            client,
            AuditEvent::by_user("logout", who.user.id).detail(json!({ "session_id": who.session_id })),
        )
        .await?;
        txn.commit().await.map_err(db_error)
    }

    /// Bumps `token_version` and revokes every session of a user, so every outstanding
    /// token fails at once.
    pub async fn logout_everywhere(
        &self,
        user_id: Uuid,
        event: &'static str,
        actor: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<u64, Error> {
        let now = now();
        let txn = self.writer.begin().await.map_err(db_error)?;
        users::bump_token_version(&txn, user_id, now).await.map_err(db_error)?;
        let revoked = sessions::revoke_all_for_user(&txn, user_id, now).await.map_err(db_error)?;
        let ev = AuditEvent {
            event,
            user_id: Some(user_id),
            actor_id: actor,
            detail: json!({ "sessions_revoked": revoked }),
        };
        record(&txn, client, ev).await?;
        txn.commit().await.map_err(db_error)?;
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
        self.check_new_password("new_password", new, &who.user)?;
        let verdict = self.hasher.verify(current, Some(&who.user.password_hash)).await?;
        if !verdict.matches {
            return Err(Error::WrongPassword);
        }
        let hash = self.hasher.hash(new).await?;
        let txn = self.writer.begin().await.map_err(db_error)?;
        self.apply_new_password(&txn, &who.user, &hash, None, "password.change", client).await?;
        txn.commit().await.map_err(db_error)?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<session::Model>, Error> {
        sessions::active_for_user(&self.db, user_id, now()).await.map_err(db_error)
    }

    /// Revokes one of the caller's own sessions; another user's answers not found.
    pub async fn revoke_session(&self, who: &Principal, session_id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let session = sessions::by_id(&self.db, session_id).await.map_err(db_error)?;
        match session {
            Some(s) if s.user_id == who.user.id && s.revoked_at.is_none() => {
                let txn = self.writer.begin().await.map_err(db_error)?;
                sessions::revoke(&txn, s.id, now()).await.map_err(db_error)?;
                record(&txn, client, AuditEvent::by_user("logout", who.user.id).detail(json!({ "session_id": s.id })))
                    .await?;
                txn.commit().await.map_err(db_error)
            }
            _ => Err(Error::SessionNotFound),
        }
    }
}
