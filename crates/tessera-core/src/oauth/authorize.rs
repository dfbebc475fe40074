//! The authorization request (`GET /oauth/authorize`): checked, kept, then taken through
//! the browser's sign-in and the user's consent to a code on the client's redirect URI.
//! The sign-in and consent happen on tessera's own pages, or, with `OAUTH_CONSENT_URL`,
//! on the app's, which decides through Supabase's authorization API.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tessera_domain::Error;
use tessera_store::entity::{oauth_authorization as authz, oauth_client, session, user};
use tessera_store::query::oauth::{self as q, Decision};
use uuid::Uuid;

use super::{scope_list, Client, CODE_TTL_SECS, REQUEST_TTL_SECS, SCOPES};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo};
use crate::crypto::{random_token, sha256_hex};
use crate::limits::RateAction;

/// The parameters of an authorization request, as sent.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    /// `query` only; anything else is refused.
    pub response_mode: Option<String>,
    /// A request object (unsupported, refused).
    pub request: Option<String>,
}

/// Where an authorization request goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nowhere: the request names no client, or no redirect URI of it, so its error is
    /// shown, never sent anywhere.
    Refused(String),
    /// Back to the client: its redirect URI with a code, or with an error.
    Redirect(String),
    /// To the sign-in page.
    SignIn(Uuid),
    /// To the consent page.
    Consent(Uuid),
    /// To the app's own consent page (`OAUTH_CONSENT_URL`).
    AppConsent(String),
}

/// Who decides on a request: the signed-in user and their session at the provider.
#[derive(Debug, Clone)]
pub struct Signer {
    pub user: user::Model,
    pub session_id: Uuid,
    pub auth_time: DateTime<Utc>,
    pub aal: String,
    pub amr: Option<String>,
}

impl Signer {
    /// The signer of a session.
    pub fn of(s: &session::Model, u: &user::Model) -> Signer {
        Signer { user: u.clone(), session_id: s.id, auth_time: s.created_at, aal: s.aal.clone(), amr: s.amr.clone() }
    }
}

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: Uuid,
    pub client: Client,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
}

/// Whether a redirect URI sent matches a registered one: exactly, or for http to a
/// loopback address with any port (RFC 8252 §7.3).
pub fn redirect_matches(registered: &str, sent: &str) -> bool {
    if registered == sent {
        return true;
    }
    let (Ok(r), Ok(s)) = (url::Url::parse(registered), url::Url::parse(sent)) else { return false };
    let loopback = |u: &url::Url| u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "[::1]"));
    loopback(&r)
        && loopback(&s)
        && r.host_str() == s.host_str()
        && r.path() == s.path()
        && r.query() == s.query()
        && r.username() == s.username()
        && r.password().is_none()
        && s.password().is_none()
        && s.fragment().is_none()
}

/// `uri` with `pairs` added to its query.
pub(crate) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// Whether the signer's sign-in is as recent as the request asks: within `max_age`, and
/// for `prompt=login` after the request was made.
fn signed_in_recently(row: &authz::Model, s: &Signer) -> bool {
    let fresh_enough = row.max_age.is_none_or(|m| (now() - s.auth_time).num_seconds() <= m);
    let relogged = !row.prompt.as_deref().unwrap_or_default().contains("login") || s.auth_time >= row.created_at;
    fresh_enough && relogged
}

impl Core {
    /// Checks an authorization request and keeps it, then takes it as far as the
    /// browser's session at the provider (`browser`) allows.
    pub async fn oauth_authorize(
        &self,
        p: &AuthorizeParams,
        browser: Option<(session::Model, user::Model)>,
        client: &ClientInfo,
    ) -> Result<Step, Error> {
        let provider = self.provider()?;
        self.enforce_client_limit(RateAction::OAuth, client).await?;
        let Some(client_id) = p.client_id.as_deref().and_then(|id| Uuid::parse_str(id.trim()).ok()) else {
            return Ok(Step::Refused("The request names no known client (client_id).".to_owned()));
        };
        let Some(app) = q::client(self.store.reader(), client_id).await? else {
            return Ok(Step::Refused("The request names no known client (client_id).".to_owned()));
        };
        let registered: Vec<String> = serde_json::from_str(&app.redirect_uris).unwrap_or_default();
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(sent) => match registered.iter().any(|r| redirect_matches(r, sent)) {
                true => sent.to_owned(),
                false => {
                    return Ok(Step::Refused(
                        "The redirect_uri is not one the client registered (they are matched exactly).".to_owned(),
                    ))
                }
            },
            // OAuth 2.1 lets a client with one redirect URI leave it out; OpenID Connect
            // (scope `openid`) requires it.
            None if registered.len() == 1
                && !scope_list(p.scope.as_deref().unwrap_or("openid")).contains(&"openid") =>
            {
                registered[0].clone()
            }
            None => return Ok(Step::Refused("The request needs a redirect_uri.".to_owned())),
        };
        let state = p.state.clone().filter(|s| !s.is_empty());
        let fail = |error: &str, description: &str| {
            let mut pairs =
                vec![("error", error), ("error_description", description), ("iss", provider.issuer.as_str())];
            if let Some(state) = &state {
                pairs.push(("state", state));
            }
            Ok(Step::Redirect(with_query(&redirect_uri, &pairs)))
        };
        if p.request.is_some() {
            return fail("request_not_supported", "Request objects are not supported.");
        }
        if p.response_mode.as_deref().is_some_and(|m| m != "query") {
            return fail("invalid_request", "Only response_mode=query is supported.");
        }
        if p.response_type.as_deref() != Some("code") {
            return fail("unsupported_response_type", "Only response_type=code is supported.");
        }
        let grants: Vec<String> = serde_json::from_str(&app.grant_types).unwrap_or_default();
        if !grants.iter().any(|g| g == "authorization_code") {
            return fail("unauthorized_client", "The client may not use the authorization code grant.");
        }
        let challenge = p.code_challenge.as_deref().unwrap_or_default();
        if p.code_challenge_method.as_deref() != Some("S256")
            || !(43..=128).contains(&challenge.len())
            || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256.");
        }
        let scopes = scope_list(p.scope.as_deref().unwrap_or("openid"));
        let allowed = scope_list(&app.scope);
        if scopes.is_empty() {
            return fail("invalid_scope", "The request asks for no scope.");
        }
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(s) || !allowed.contains(s)) {
            return fail("invalid_scope", &format!("The client may not ask for the scope {bad}."));
        }
        let prompt = p.prompt.as_deref().map(scope_list).unwrap_or_default();
        if prompt.iter().any(|v| !["none", "login", "consent", "select_account"].contains(v)) {
            return fail("invalid_request", "prompt may be none, login or consent.");
        }
        if prompt.contains(&"none") && prompt.len() > 1 {
            return fail("invalid_request", "prompt=none stands alone.");
        }
        let max_age = match p.max_age.as_deref().filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => match m.parse::<i64>() {
                Ok(v) if v >= 0 => Some(v),
                _ => return fail("invalid_request", "max_age must be a whole number of seconds."),
            },
        };
        if state.as_ref().is_some_and(|s| s.len() > 2048) || p.nonce.as_ref().is_some_and(|n| n.len() > 512) {
            return fail("invalid_request", "state or nonce is too long.");
        }
        let now = now();
        let row = authz::Model {
            id: Uuid::new_v4(),
            client_id: app.id,
            user_id: None,
            redirect_uri,
            scope: scopes.join(" "),
            state,
            nonce: p.nonce.clone().filter(|n| !n.is_empty()),
            code_challenge: challenge.to_owned(),
            prompt: (!prompt.is_empty()).then(|| prompt.join(" ")),
            max_age,
            status: "pending".to_owned(),
            code_hash: None,
            auth_time: None,
            aal: None,
            amr: None,
            session_id: None,
            created_at: now,
            expires_at: now + Duration::seconds(REQUEST_TTL_SECS),
            code_expires_at: None,
        };
        q::insert_authorization(self.store.writer(), row.clone()).await?;
        self.next_step(&row, &app, browser.as_ref().map(|(s, u)| Signer::of(s, u)), true, client).await
    }

    /// Takes a kept request on, after the browser signed in (`browser`) or when the
    /// consent page is asked for.
    pub async fn oauth_resume(
        &self,
        id: Uuid,
        browser: Option<(session::Model, user::Model)>,
        client: &ClientInfo,
    ) -> Result<Step, Error> {
        self.provider()?;
        let (row, app) = self.pending(id).await?;
        self.next_step(&row, &app, browser.as_ref().map(|(s, u)| Signer::of(s, u)), false, client).await
    }

    async fn pending(&self, id: Uuid) -> Result<(authz::Model, oauth_client::Model), Error> {
        let row = q::authorization(self.store.writer(), id).await?.ok_or(Error::OAuthAuthorizationNotFound)?;
        if row.status != "pending" || row.expires_at <= now() {
            return Err(Error::OAuthAuthorizationNotFound);
        }
        let app = q::client(self.store.reader(), row.client_id).await?.ok_or(Error::OAuthAuthorizationNotFound)?;
        Ok((row, app))
    }

    async fn next_step(
        &self,
        row: &authz::Model,
        app: &oauth_client::Model,
        signer: Option<Signer>,
        first: bool,
        client: &ClientInfo,
    ) -> Result<Step, Error> {
        let prompt = row.prompt.as_deref().unwrap_or_default();
        let none = prompt == "none";
        let signed_in = signer.filter(|s| signed_in_recently(row, s));
        let Some(signer) = signed_in else {
            if none {
                return self.refuse(row, "login_required", "The user is not signed in.", client).await;
            }
            if first {
                if let Some(url) = &self.settings.oauth_consent_url {
                    return Ok(Step::AppConsent(with_query(url, &[("authorization_id", &row.id.to_string())])));
                }
            }
            return Ok(Step::SignIn(row.id));
        };
        let consented = q::consent(self.store.reader(), signer.user.id, app.id).await?;
        let covered = consented.is_some_and(|c| {
            let given = scope_list(&c.scope);
            scope_list(&row.scope).iter().all(|s| given.contains(s))
        });
        if covered && !prompt.contains("consent") {
            return self.oauth_decide(row.id, &signer, true, false, client).await.map(Step::Redirect);
        }
        if none {
            return self.refuse(row, "consent_required", "The user has not consented to this client.", client).await;
        }
        if first {
            if let Some(url) = &self.settings.oauth_consent_url {
                return Ok(Step::AppConsent(with_query(url, &[("authorization_id", &row.id.to_string())])));
            }
        }
        Ok(Step::Consent(row.id))
    }

    /// Ends a request with an error sent to the client.
    async fn refuse(
        &self,
        row: &authz::Model,
        error: &str,
        description: &str,
        client: &ClientInfo,
    ) -> Result<Step, Error> {
        let issuer = &self.provider()?.issuer;
        let mut pairs = vec![("error", error), ("error_description", description), ("iss", issuer.as_str())];
        if let Some(state) = &row.state {
            pairs.push(("state", state));
        }
        let ev = AuditEvent {
            event: "oauth.authorize",
            user_id: None,
            actor_id: None,
            detail: json!({
                "client_id": row.client_id, "outcome": error,
            }),
        };
        record(self.store.writer(), client, ev).await?;
        Ok(Step::Redirect(with_query(&row.redirect_uri, &pairs)))
    }

    /// What the consent page shows of a pending request.
    pub async fn oauth_pending(&self, id: Uuid) -> Result<Pending, Error> {
        self.provider()?;
        let (row, app) = self.pending(id).await?;
        Ok(Pending {
            id: row.id,
            client: Client::from(&app),
            scopes: scope_list(&row.scope).into_iter().map(str::to_owned).collect(),
            redirect_uri: row.redirect_uri,
        })
    }

    /// The user's decision on a pending request: approved, a code (60 seconds, once) on
    /// the redirect URI and the consent remembered; denied, `access_denied`. The URL to
    /// send the browser to.
    ///
    /// `asked`: the user decided now (the consent page, Supabase's consent API), rather
    /// than a consent given earlier deciding for them.
    pub async fn oauth_decide(
        &self,
        id: Uuid,
        signer: &Signer,
        approve: bool,
        asked: bool,
        client: &ClientInfo,
    ) -> Result<String, Error> {
        let issuer = self.provider()?.issuer.clone();
        let (row, _) = self.pending(id).await?;
        if !crate::session::issued::is_usable(&signer.user) {
            return Err(Error::AccountInactive);
        }
        if approve && !signed_in_recently(&row, signer) {
            return Err(Error::BadRequest(
                "The request asks for a fresh sign-in (prompt=login or max_age): sign in again first.".to_owned(),
            ));
        }
        let now = now();
        let code = random_token(32);
        let hash = sha256_hex(&code);
        let tx = self.store.begin().await?;
        let decided = q::decide(
            &tx,
            Decision {
                id,
                user_id: signer.user.id,
                code_hash: approve.then_some(hash.as_str()),
                auth_time: signer.auth_time,
                aal: &signer.aal,
                amr: signer.amr.as_deref(),
                now,
                code_expires_at: now + Duration::seconds(CODE_TTL_SECS),
            },
        )
        .await?;
        if !decided {
            return Err(Error::OAuthAuthorizationNotFound);
        }
        if approve {
            let mut given: Vec<String> = match q::consent(&tx, signer.user.id, row.client_id).await? {
                Some(c) => scope_list(&c.scope).into_iter().map(str::to_owned).collect(),
                None => Vec::new(),
            };
            for s in scope_list(&row.scope) {
                if !given.iter().any(|g| g == s) {
                    given.push(s.to_owned());
                }
            }
            q::remember_consent(&tx, signer.user.id, row.client_id, &given.join(" "), now).await?;
        }
        let outcome = if approve { "approved" } else { "denied" };
        let detail = json!({ "client_id": row.client_id, "scope": row.scope, "outcome": outcome });
        if asked {
            record(&tx, client, AuditEvent::by_user("oauth.consent", signer.user.id).detail(detail)).await?;
        }
        let outcome = if approve { "code_issued" } else { "access_denied" };
        let issued = json!({ "client_id": row.client_id, "scope": row.scope, "outcome": outcome });
        record(&tx, client, AuditEvent::by_user("oauth.authorize", signer.user.id).detail(issued)).await?;
        tx.commit().await?;
        let state = row.state.clone().unwrap_or_default();
        let mut pairs: Vec<(&str, &str)> = if approve {
            vec![("code", code.as_str())]
        } else {
            vec![("error", "access_denied"), ("error_description", "The user denied the request.")]
        };
        if !state.is_empty() {
            pairs.push(("state", &state));
        }
        pairs.push(("iss", &issuer));
        Ok(with_query(&row.redirect_uri, &pairs))
    }
}
