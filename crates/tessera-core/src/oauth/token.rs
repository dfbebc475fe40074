//! The provider's token endpoint and what reads or ends its tokens: userinfo,
//! introspection (RFC 7662), revocation (RFC 7009), RP-initiated logout, and the grants
//! users see and withdraw.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tessera_domain::Error;
use tessera_store::entity::{oauth_client, session, user};
use tessera_store::query::oauth::{self as q, Taken};
use tessera_store::query::users;
use uuid::Uuid;

use super::{amr_of, scope_list, secret_matches, user_claims, Client, ClientAccessClaims, OAuthError};
use crate::app::Core;
use crate::audit::{audit_row, record, AuditEvent};
use crate::caller::{now, ClientInfo};
use crate::crypto::{same_secret, sha256_hex};
use crate::limits::RateAction;
use crate::session::issued::{is_usable, shown_aal};
use crate::session::tokens::PresentedRefresh;

/// How a client authenticated at the token, introspection or revocation endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The parameters of a token request.
#[derive(Debug, Clone, Default)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// What the token endpoint answers.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: String,
}

/// A grant a user gave a client.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client: Client,
    pub scopes: Vec<String>,
    pub granted_at: DateTime<Utc>,
}

/// The claims of an ID token this provider signed, as logout reads them back.
#[derive(Debug, Deserialize)]
struct IdTokenHint {
    iss: String,
    sub: String,
    aud: String,
    #[serde(default)]
    sid: Option<Uuid>,
}

/// A live client session and its user, for a token's `sid`.
struct Live {
    session: session::Model,
    user: user::Model,
}

impl Core {
    /// The client a request authenticates as: a confidential client with its secret
    /// (Basic or in the body), a public client with none (a secret sent by a public
    /// client is refused).
    async fn authenticate_client(&self, c: &ClientCredentials) -> Result<oauth_client::Model, OAuthError> {
        let id = c.client_id.as_deref().and_then(|id| Uuid::parse_str(id.trim()).ok());
        let Some(id) = id else { return Err(OAuthError::invalid_client()) };
        let app = q::client(self.store.reader(), id).await?.ok_or_else(OAuthError::invalid_client)?;
        let ok = match (app.client_type.as_str(), c.client_secret.as_deref()) {
            ("confidential", Some(secret)) => secret_matches(secret, app.secret_hash.as_deref()),
            ("public", None) => true,
            _ => false,
        };
        if !ok {
            return Err(OAuthError::invalid_client());
        }
        Ok(app)
    }

    /// `POST /oauth/token`.
    pub async fn oauth_token(
        &self,
        creds: &ClientCredentials,
        p: &TokenParams,
        client: &ClientInfo,
    ) -> Result<Tokens, OAuthError> {
        self.provider()?;
        self.enforce_client_limit(RateAction::OAuth, client).await?;
        let app = self.authenticate_client(creds).await?;
        let grants: Vec<String> = serde_json::from_str(&app.grant_types).unwrap_or_default();
        let grant = p.grant_type.as_deref().unwrap_or_default();
        if !["authorization_code", "refresh_token", "client_credentials"].contains(&grant) {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials.",
            ));
        }
        if !grants.iter().any(|g| g == grant) {
            return Err(OAuthError::new("unauthorized_client", format!("The client may not use {grant}.")));
        }
        match grant {
            "authorization_code" => self.exchange_client_code(&app, p, client).await,
            "refresh_token" => self.refresh_client_session(&app, p, client).await,
            _ => self.client_credentials(&app, p, client).await,
        }
    }

    async fn exchange_client_code(
        &self,
        app: &oauth_client::Model,
        p: &TokenParams,
        client: &ClientInfo,
    ) -> Result<Tokens, OAuthError> {
        let code = p
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("code is required."))?;
        let verifier = p
            .code_verifier
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)."))?;
        let session_id = Uuid::now_v7();
        let row = match q::take_code(self.store.writer(), &sha256_hex(code), session_id, now()).await? {
            Taken::Fresh(row) => row,
            Taken::Spent(row) => {
                // A code presented again: what it opened is closed (RFC 6749 §4.1.2).
                if let (Some(sid), Some(user_id)) = (row.session_id, row.user_id) {
                    if row.status == "used" {
                        let ev = AuditEvent::by_user("oauth.revoke", user_id).detail(
                            json!({ "session_id": sid, "client_id": row.client_id, "reason": "code_replayed" }),
                        );
                        self.store.revoke_session(sid, audit_row(client, ev)).await?;
                        tracing::warn!(session_id = %sid, client_id = %row.client_id, "authorization code replayed; session revoked");
                    }
                }
                return Err(OAuthError::invalid_grant("The code is invalid, expired or already used."));
            }
            Taken::Unknown => return Err(OAuthError::invalid_grant("The code is invalid, expired or already used.")),
        };
        if row.client_id != app.id {
            return Err(OAuthError::invalid_grant("The code was issued to another client."));
        }
        if p.redirect_uri.as_deref().is_some_and(|r| r != row.redirect_uri) {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's."));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !same_secret(&computed, &row.code_challenge) {
            return Err(OAuthError::invalid_grant("The code_verifier does not match the code_challenge."));
        }
        let user_id = row.user_id.ok_or_else(|| OAuthError::invalid_grant("The code has no user."))?;
        let user = users::by_id(self.store.writer(), user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("The user is gone."))?;
        let aal = row.aal.clone().unwrap_or_else(|| "aal1".to_owned());
        let auth_time = row.auth_time.unwrap_or_else(now);
        let opened = self
            .open_client_session(session_id, &user, &aal, row.amr.as_deref(), auth_time, app.id, &row.scope, client)
            .await?;
        if !opened {
            return Err(OAuthError::invalid_grant("The account can no longer sign in."));
        }
        let Some((session, user)) = self.store.session_for_refresh(session_id).await? else {
            return Err(OAuthError::invalid_grant("The session is gone."));
        };
        self.client_tokens(app, &user, &session, auth_time, row.nonce.as_deref(), 0, client).await
    }

    async fn refresh_client_session(
        &self,
        app: &oauth_client::Model,
        p: &TokenParams,
        client: &ClientInfo,
    ) -> Result<Tokens, OAuthError> {
        let raw =
            p.refresh_token.as_deref().ok_or_else(|| OAuthError::invalid_request("refresh_token is required."))?;
        let keys = self.provider()?.refresh_keys(app.id);
        let (session, user, counter, _) = match self.rotate_refresh(&keys, raw, client).await {
            Ok(done) => done,
            Err(e @ (Error::Unavailable(_) | Error::Internal(_) | Error::Overloaded { .. })) => return Err(e.into()),
            Err(_) => return Err(OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.")),
        };
        if session.oauth_client_id != Some(app.id) {
            return Err(OAuthError::invalid_grant("The refresh token was issued to another client."));
        }
        let auth_time = session.oauth_auth_time.unwrap_or(session.created_at);
        self.client_tokens(app, &user, &session, auth_time, None, counter, client).await
    }

    async fn client_credentials(
        &self,
        app: &oauth_client::Model,
        p: &TokenParams,
        client: &ClientInfo,
    ) -> Result<Tokens, OAuthError> {
        if app.client_type != "confidential" {
            return Err(OAuthError::new(
                "unauthorized_client",
                "Only a confidential client may use client_credentials.",
            ));
        }
        let allowed = scope_list(&app.scope);
        let asked = scope_list(p.scope.as_deref().unwrap_or_default());
        if let Some(bad) = asked.iter().find(|s| !allowed.contains(s) || ["openid", "offline_access"].contains(s)) {
            return Err(OAuthError::new("invalid_scope", format!("The client may not ask for {bad} here.")));
        }
        let provider = self.provider()?;
        let now = now();
        let ttl = self.settings.access_token_ttl.as_secs() as i64;
        let claims = ClientAccessClaims {
            iss: provider.issuer.clone(),
            sub: app.id.to_string(),
            aud: app.id.to_string(),
            client_id: app.id.to_string(),
            scope: asked.join(" "),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl,
            jti: Uuid::new_v4().to_string(),
            sid: None,
            auth_time: None,
        };
        let ev = AuditEvent {
            event: "oauth.token",
            user_id: None,
            actor_id: None,
            detail: json!({
                "client_id": app.id, "grant_type": "client_credentials", "scope": claims.scope,
            }),
        };
        record(self.store.writer(), client, ev).await?;
        Ok(Tokens {
            access_token: provider.signer.sign_typed("at+jwt", &claims)?,
            expires_in: ttl,
            refresh_token: None,
            id_token: None,
            scope: claims.scope,
        })
    }

    /// The tokens of a client session: the access token, the ID token (scope `openid`),
    /// the refresh token at `counter` (scope `offline_access` and the grant allowed).
    #[allow(clippy::too_many_arguments)]
    async fn client_tokens(
        &self,
        app: &oauth_client::Model,
        user: &user::Model,
        session: &session::Model,
        auth_time: DateTime<Utc>,
        nonce: Option<&str>,
        counter: i64,
        client: &ClientInfo,
    ) -> Result<Tokens, OAuthError> {
        let provider = self.provider()?;
        let scope = session.oauth_scope.clone().unwrap_or_default();
        let scopes = scope_list(&scope);
        let now = now();
        let ttl = self.settings.access_token_ttl.as_secs() as i64;
        let claims = ClientAccessClaims {
            iss: provider.issuer.clone(),
            sub: user.id.to_string(),
            aud: app.id.to_string(),
            client_id: app.id.to_string(),
            scope: scope.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl,
            jti: Uuid::new_v4().to_string(),
            sid: Some(session.id),
            auth_time: Some(auth_time.timestamp()),
        };
        // The custom access token hook (SPEC §5.13) sees a client's tokens too, as GoTrue's
        // OAuth server's: their `client_id` and `scope` are the server's.
        let access_token = if self.hook_enabled(crate::hooks::HookName::CustomAccessToken) {
            let method = session.amr.as_deref().unwrap_or("password");
            provider.signer.sign_typed("at+jwt", &self.customize_claims(&claims, user.id, method, client).await?)?
        } else {
            provider.signer.sign_typed("at+jwt", &claims)?
        };
        let id_token = if scopes.contains(&"openid") {
            let mut id: Map<String, Value> = user_claims(user, &scope);
            let aal = shown_aal(&session.aal);
            for (k, v) in [
                ("iss", json!(provider.issuer)),
                ("aud", json!(app.id.to_string())),
                ("azp", json!(app.id.to_string())),
                ("iat", json!(now.timestamp())),
                ("exp", json!(now.timestamp() + ttl)),
                ("auth_time", json!(auth_time.timestamp())),
                ("amr", json!(amr_of(session.amr.as_deref(), &session.aal))),
                ("acr", json!(aal)),
                ("sid", json!(session.id)),
            ] {
                id.insert(k.to_owned(), v);
            }
            if let Some(nonce) = nonce {
                id.insert("nonce".to_owned(), json!(nonce));
            }
            Some(provider.signer.sign_typed("JWT", &Value::Object(id))?)
        } else {
            None
        };
        let grants: Vec<String> = serde_json::from_str(&app.grant_types).unwrap_or_default();
        let refresh_token = (scopes.contains(&"offline_access") && grants.iter().any(|g| g == "refresh_token"))
            .then(|| provider.refresh_keys(app.id).seal(session.id, counter));
        Ok(Tokens { access_token, expires_in: ttl, refresh_token, id_token, scope })
    }

    /// A client access token's claims and, for a user's token, its live session.
    async fn open_access_token(&self, token: &str) -> Result<(ClientAccessClaims, Option<Live>), Error> {
        let provider = self.provider()?;
        let claims: ClientAccessClaims = provider.signer.decode_signed(token, false)?;
        if claims.iss != provider.issuer {
            return Err(Error::InvalidToken);
        }
        let Some(sid) = claims.sid else { return Ok((claims, None)) };
        let (session, user) = self.store.session_for_refresh(sid).await?.ok_or(Error::InvalidToken)?;
        let live = session.revoked_at.is_none()
            && session.expires_at > now()
            && is_usable(&user)
            && session.oauth_client_id.map(|c| c.to_string()) == Some(claims.client_id.clone())
            && user.id.to_string() == claims.sub;
        if !live {
            return Err(Error::TokenRevoked);
        }
        Ok((claims, Some(Live { session, user })))
    }

    /// `GET|POST /oauth/userinfo`: the claims the token's scopes grant, while its session
    /// lives.
    pub async fn oauth_userinfo(&self, token: &str) -> Result<Value, Error> {
        let (claims, live) = self.open_access_token(token).await?;
        let live = live.ok_or(Error::InvalidToken)?;
        if !scope_list(&claims.scope).contains(&"openid") {
            return Err(Error::PermissionDenied);
        }
        let _ = &live.session;
        Ok(Value::Object(user_claims(&live.user, &claims.scope)))
    }

    /// `POST /oauth/introspect` (RFC 7662): what a token of the calling client is, or
    /// `{"active": false}` for anything else (another client's token, a revoked one).
    pub async fn oauth_introspect(
        &self,
        creds: &ClientCredentials,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Value, OAuthError> {
        self.provider()?;
        self.enforce_client_limit(RateAction::OAuth, client).await?;
        let app = self.authenticate_client(creds).await?;
        let inactive = json!({ "active": false });
        if let Ok((claims, live)) = self.open_access_token(token).await {
            if claims.client_id != app.id.to_string() {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "scope": claims.scope,
                "client_id": claims.client_id,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "iat": claims.iat,
                "exp": claims.exp,
                "jti": claims.jti,
            });
            if let Some(live) = live {
                out["sid"] = json!(live.session.id);
                if !live.user.is_anonymous {
                    out["username"] = json!(live.user.email);
                }
            }
            return Ok(out);
        }
        let keys = self.provider()?.refresh_keys(app.id);
        if let Some(PresentedRefresh::Sealed { session_id, counter }) = keys.open(token) {
            if let Some((session, user)) = self.store.session_for_refresh(session_id).await? {
                let live = session.revoked_at.is_none()
                    && session.expires_at > now()
                    && is_usable(&user)
                    && session.oauth_client_id == Some(app.id)
                    && session.refresh_counter == counter;
                if live {
                    return Ok(json!({
                        "active": true,
                        "token_type": "refresh_token",
                        "scope": session.oauth_scope,
                        "client_id": app.id.to_string(),
                        "sub": user.id.to_string(),
                        "iss": self.provider()?.issuer,
                        "exp": session.expires_at.timestamp(),
                        "sid": session.id,
                    }));
                }
            }
        }
        Ok(inactive)
    }

    /// `POST /oauth/revoke` (RFC 7009): a refresh or access token of the calling client
    /// ends its session; anything else is answered the same, with nothing done.
    pub async fn oauth_revoke(
        &self,
        creds: &ClientCredentials,
        token: &str,
        client: &ClientInfo,
    ) -> Result<(), OAuthError> {
        self.provider()?;
        self.enforce_client_limit(RateAction::OAuth, client).await?;
        let app = self.authenticate_client(creds).await?;
        let keys = self.provider()?.refresh_keys(app.id);
        let session_id = match keys.open(token) {
            Some(PresentedRefresh::Sealed { session_id, .. }) => Some(session_id),
            _ => self
                .provider()?
                .signer
                .decode_signed::<ClientAccessClaims>(token, true)
                .ok()
                .filter(|c| c.client_id == app.id.to_string())
                .and_then(|c| c.sid),
        };
        if let Some(sid) = session_id {
            if let Some((session, user)) = self.store.session_for_refresh(sid).await? {
                if session.oauth_client_id == Some(app.id) && session.revoked_at.is_none() {
                    let ev = AuditEvent::by_user("oauth.revoke", user.id)
                        .detail(json!({ "session_id": sid, "client_id": app.id, "reason": "revocation_endpoint" }));
                    self.store.revoke_session(sid, audit_row(client, ev)).await?;
                }
            }
        }
        Ok(())
    }

    /// RP-initiated logout: ends the client session the ID token names and the browser's
    /// session at the provider. The URL to send the browser to, when the client named a
    /// post-logout URI it registered.
    pub async fn oauth_end_session(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        browser: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<Option<String>, Error> {
        let provider = self.provider()?;
        let hint = match id_token_hint.filter(|h| !h.is_empty()) {
            Some(h) => {
                let claims: IdTokenHint = provider.signer.decode_signed(h, true)?;
                if claims.iss != provider.issuer {
                    return Err(Error::InvalidToken);
                }
                Some(claims)
            }
            None => None,
        };
        let app_id = hint.as_ref().map(|h| h.aud.clone()).or(client_id.map(str::to_owned));
        if let (Some(h), Some(c)) = (&hint, client_id) {
            if h.aud != c {
                return Err(Error::BadRequest("client_id is not the ID token's audience.".to_owned()));
            }
        }
        let app = match app_id.and_then(|id| Uuid::parse_str(&id).ok()) {
            Some(id) => q::client(self.store.reader(), id).await?,
            None => None,
        };
        // The post-logout URI is checked before anything is ended.
        let target = match (&app, post_logout_redirect_uri) {
            (Some(app), Some(uri)) => {
                let registered: Vec<String> = serde_json::from_str(&app.post_logout_redirect_uris).unwrap_or_default();
                if !registered.iter().any(|r| r == uri) {
                    return Err(Error::BadRequest(
                        "post_logout_redirect_uri is not one the client registered.".to_owned(),
                    ));
                }
                let pairs: Vec<(&str, &str)> = state.map(|s| vec![("state", s)]).unwrap_or_default();
                Some(super::authorize::with_query(uri, &pairs))
            }
            (None, Some(_)) => {
                return Err(Error::BadRequest(
                    "post_logout_redirect_uri needs the id_token_hint or client_id of a registered client.".to_owned(),
                ))
            }
            _ => None,
        };
        let mut ended = Vec::new();
        if let (Some(h), Some(app)) = (&hint, &app) {
            if let Some(sid) = h.sid {
                if let Some((session, user)) = self.store.session_for_refresh(sid).await? {
                    if session.oauth_client_id == Some(app.id) && user.id.to_string() == h.sub {
                        ended.push((sid, user.id));
                    }
                }
            }
        }
        if let Some(sid) = browser {
            if let Some((session, user)) = self.store.session_for_refresh(sid).await? {
                if session.oauth_client_id.is_none() {
                    ended.push((sid, user.id));
                }
            }
        }
        for (sid, user_id) in ended {
            let ev =
                AuditEvent::by_user("logout", user_id).detail(json!({ "session_id": sid, "via": "oauth.end_session" }));
            self.store.revoke_session(sid, audit_row(client, ev)).await?;
        }
        Ok(target)
    }

    /// The grants a user gave, most recent first.
    pub async fn oauth_grants(&self, user_id: Uuid) -> Result<Vec<Grant>, Error> {
        self.provider()?;
        let rows = q::consents_of(self.store.reader(), user_id).await?;
        Ok(rows
            .into_iter()
            .map(|(c, app)| Grant {
                client: Client::from(&app),
                scopes: scope_list(&c.scope).into_iter().map(str::to_owned).collect(),
                granted_at: c.granted_at,
            })
            .collect())
    }

    /// Withdraws a user's grant to a client: the consent goes and the client's sessions
    /// of the user are revoked at once.
    pub async fn revoke_oauth_grant(&self, user_id: Uuid, client_id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        self.provider()?;
        let tx = self.store.begin().await?;
        if !q::withdraw_consent(&tx, user_id, client_id, now()).await? {
            return Err(Error::OAuthClientNotFound);
        }
        let ev = AuditEvent::by_user("oauth.revoke", user_id)
            .detail(json!({ "client_id": client_id, "reason": "grant_withdrawn" }));
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(())
    }
}
