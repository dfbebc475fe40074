//! Signing in with other providers, linked identities, anonymous users and PKCE codes
//! (SPEC §5.11). A provider's sign-in is a verifier like any other: it proves who the
//! user is at the provider (an ID token checked against the provider's keys, issuer,
//! audience and nonce; GitHub's API), finds or creates the account the identity belongs
//! to, and hands the one sign-in pipeline [`Proof::External`].
//!
//! Linking by address happens only when the provider says the address is verified and
//! the account's own address is confirmed; otherwise the identity gets a new account of
//! its own, never someone else's.

pub mod provider;
pub mod state;
pub mod view;

pub use view::{email_identity, IdentityView};

use chrono::Duration as ChronoDuration;
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};
use tessera_domain::{Email, Error};
use tessera_store::entity::{flow_state, identity, user};
use tessera_store::query::{identities, users};
use tessera_store::Tx;
use uuid::Uuid;

use crate::account::users::{insert_account, NewAccount};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo, Surface};
use crate::crypto::{random_token, same_secret, sha256_hex};
use crate::limits::RateAction;
use crate::session::issued::SignIn;
use crate::session::sign_in::{Proof, Proven};

use self::provider::{fetch_json, scopes_for, unreachable, Preset, Provider};
use self::state::FlowState;

/// How long the code of a PKCE flow may wait to be exchanged.
const CODE_TTL_SECS: i64 = 300;

/// The query parameters an app may pass on to the provider's authorization page.
const PASSED_ON: &[&str] = &["prompt", "login_hint", "hd", "access_type", "domain_hint", "max_age", "ui_locales"];

/// A request to sign in (or link) with a provider.
#[derive(Debug, Clone, Default)]
pub struct Authorize {
    pub provider: String,
    pub redirect_to: Option<String>,
    pub scopes: Option<String>,
    /// The app's PKCE challenge and its method (only `s256`).
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// Other query parameters of the request; those in [`PASSED_ON`] go to the provider.
    pub extra: Vec<(String, String)>,
}

/// Where to send the browser, and the secret its cookie must hold at the callback.
#[derive(Debug, Clone)]
pub struct ToProvider {
    pub url: String,
    pub browser_secret: String,
}

/// What came back to the callback.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// RFC 9207's `iss`.
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// How a callback ends: where the browser goes, and with what.
#[derive(Debug)]
pub struct Landing {
    pub redirect_to: String,
    pub outcome: Result<Landed, Error>,
}

/// What the app's redirect carries.
#[derive(Debug)]
pub enum Landed {
    /// The implicit flow: the session itself (in the fragment).
    Session(Box<SignIn>),
    /// The PKCE flow: a code to exchange with the verifier.
    Code(String),
}

/// Who the provider says the user is.
#[derive(Debug, Clone)]
struct Profile {
    subject: String,
    email: Option<Email>,
    email_verified: bool,
    /// The identity's data: the provider's claims about the user, in GoTrue's names.
    data: Map<String, Value>,
}

/// The claims of an ID token kept as the identity's data (not the token's own).
const TOKEN_CLAIMS: &[&str] =
    &["aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "auth_time", "azp", "jti", "sid"];

/// A provider's `error` (and its description) at the callback, as the user's answer.
fn refused(error: &str, description: Option<&str>) -> Error {
    let why = description.unwrap_or_default();
    Error::ProviderRefused(format!("{error}: {why}").trim_end_matches(": ").to_owned())
}

/// Whether a claim says true (`true`, or `"true"` as some providers write it).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A profile from an OpenID Connect provider's claims.
fn oidc_profile(claims: &Map<String, Value>) -> Result<Profile, Error> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::ProviderRefused("the provider named no subject".to_owned()))?
        .to_owned();
    let email = claims.get("email").and_then(Value::as_str).and_then(|e| Email::parse(e).ok());
    let email_verified = email.is_some() && truthy(claims.get("email_verified"));
    let mut data: Map<String, Value> = claims
        .iter()
        .filter(|(k, _)| !TOKEN_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    data.insert("provider_id".to_owned(), json!(subject));
    data.insert("email_verified".to_owned(), json!(email_verified));
    if let Some(name) = claims.get("name").cloned() {
        data.entry("full_name").or_insert(name);
    }
    if let Some(picture) = claims.get("picture").cloned() {
        data.entry("avatar_url").or_insert(picture);
    }
    Ok(Profile { subject, email, email_verified, data })
}

impl Core {
    /// The redirect to `a.provider`'s authorization page that starts a sign-in (or, with
    /// `link_to`, links an identity to that signed-in user), from `surface`.
    pub async fn oauth_start(
        &self,
        a: Authorize,
        surface: Surface,
        link_to: Option<Uuid>,
    ) -> Result<ToProvider, Error> {
        let provider = self.providers.enabled(&a.provider)?;
        let challenge = state::checked_challenge(a.code_challenge.as_deref(), a.code_challenge_method.as_deref())?;
        if challenge.is_none() && surface == Surface::Native {
            return Err(Error::field("code_challenge", "required", "A PKCE code challenge (S256) is required."));
        }
        let endpoints = provider.endpoints(self.providers.http()).await?;
        let secret = state::browser_secret();
        let flow = FlowState {
            p: provider.settings.name.clone(),
            r: self.allowed_redirect(a.redirect_to.as_deref()),
            c: challenge,
            s: if surface == Surface::Native { 'n' } else { 's' },
            l: link_to,
            i: state::flow_id(),
            b: state::browser_hash(&secret),
            e: now().timestamp() + state::STATE_TTL_SECS,
        };
        let s = &provider.settings;
        let mut url = url::Url::parse(&endpoints.authorization_endpoint)
            .map_err(|e| Error::ProviderRefused(format!("the provider's authorization endpoint: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", s.client_ids.first().map(String::as_str).unwrap_or_default())
                .append_pair("redirect_uri", &s.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &scopes_for(s, a.scopes.as_deref()))
                .append_pair("state", &state::seal(&self.oauth_key, &flow)?)
                .append_pair(
                    "code_challenge",
                    &state::s256(&state::provider_verifier(&self.oauth_key, &flow.i, &secret)),
                )
                .append_pair("code_challenge_method", "S256");
            if s.preset != Preset::GitHub {
                q.append_pair("nonce", &state::provider_nonce(&self.oauth_key, &flow.i, &secret));
            }
            for (k, v) in a.extra.iter().filter(|(k, _)| PASSED_ON.contains(&k.as_str())) {
                q.append_pair(k, v);
            }
        }
        Ok(ToProvider { url: url.into(), browser_secret: secret })
    }

    /// The provider's answer at the callback: the flow checked against its `state` and the
    /// browser's cookie, the code exchanged, the user found or created, then a session
    /// (implicit flow) or a code for the app to exchange (PKCE). Every failure lands at the
    /// app's redirect (or `SITE_URL` when the state is not ours) with its reason.
    pub async fn oauth_callback(&self, cb: Callback, cookie: Option<&str>, client: &ClientInfo) -> Landing {
        let flow = match (cb.state.as_deref(), cb.error.as_deref()) {
            (Some(s), _) => state::open(&self.oauth_key, s, cookie, now().timestamp()),
            // A provider's refusal without the state (some send none): its reason, at SITE_URL.
            (None, Some(error)) => Err(refused(error, cb.error_description.as_deref())),
            (None, None) => Err(Error::BadOAuthState),
        };
        let flow = match flow {
            Ok(flow) => flow,
            Err(e) => return Landing { redirect_to: self.settings.site_url.clone(), outcome: Err(e) },
        };
        let redirect_to = flow.r.clone();
        let outcome = self.land(flow, cb, cookie.unwrap_or_default(), client).await;
        if let Err(e) = &outcome {
            tracing::info!(error = %e.cause(), "a sign-in through a provider failed");
        }
        Landing { redirect_to, outcome }
    }

    async fn land(&self, flow: FlowState, cb: Callback, cookie: &str, client: &ClientInfo) -> Result<Landed, Error> {
        if let Some(error) = &cb.error {
            return Err(refused(error, cb.error_description.as_deref()));
        }
        let provider = self.providers.enabled(&flow.p)?;
        let code =
            cb.code.filter(|c| !c.is_empty()).ok_or_else(|| Error::ProviderRefused("no code came back".to_owned()))?;
        let http = self.providers.http();
        let endpoints = provider.endpoints(http).await?;
        // RFC 9207: the answer names its issuer where the provider says it does, and the
        // one configured whenever it is there.
        match (&cb.iss, endpoints.authorization_response_iss_parameter_supported) {
            (Some(iss), _) if !provider::issuer_matches(iss, &endpoints.issuer) => {
                return Err(Error::ProviderRefused(format!("the answer came from issuer {iss:?}")))
            }
            (None, true) => return Err(Error::ProviderRefused("the answer names no issuer (RFC 9207)".to_owned())),
            _ => {}
        }
        let s = &provider.settings;
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", s.redirect_uri.clone()),
            ("client_id", s.client_ids.first().cloned().unwrap_or_default()),
            ("code_verifier", state::provider_verifier(&self.oauth_key, &flow.i, cookie)),
        ];
        if let Some(secret) = &s.secret {
            form.push(("client_secret", secret.expose_secret().to_owned()));
        }
        let res = http
            .post(&endpoints.token_endpoint)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable("the provider's token endpoint", e))?;
        if res.status().is_server_error() {
            return Err(Error::ProviderUnavailable(format!("the provider's token endpoint answered {}", res.status())));
        }
        let tokens: Value =
            res.json().await.map_err(|e| Error::ProviderRefused(format!("the provider's token answer: {e}")))?;
        if let Some(error) = tokens.get("error").and_then(Value::as_str) {
            let why = tokens.get("error_description").and_then(Value::as_str).unwrap_or_default();
            return Err(Error::ProviderRefused(
                format!("the provider refused the code: {error} {why}").trim().to_owned(),
            ));
        }
        let profile = match s.preset {
            Preset::GitHub => {
                let token = tokens
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::ProviderRefused("the provider gave no access token".to_owned()))?;
                github_profile(http, &provider, token).await?
            }
            _ => {
                let id_token = tokens
                    .get("id_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::ProviderRefused("the provider gave no ID token".to_owned()))?;
                let claims = provider.verify_id_token(http, id_token).await?;
                let expected = state::provider_nonce(&self.oauth_key, &flow.i, cookie);
                let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
                if !same_secret(nonce, &expected) {
                    return Err(Error::ProviderRefused("Bad ID token: its nonce is not this sign-in's".to_owned()));
                }
                let mut profile = oidc_profile(&claims)?;
                if profile.email.is_none() {
                    if let (Some(userinfo), Some(token)) =
                        (endpoints.userinfo_endpoint.as_deref(), tokens.get("access_token").and_then(Value::as_str))
                    {
                        merge_userinfo(http, userinfo, token, &mut profile).await?;
                    }
                }
                profile
            }
        };
        let (tx, user) = self.resolved(&provider, profile, flow.l, client).await?;
        let surface = flow.surface();
        match flow.c {
            Some(challenge) => {
                let code = self.issue_code(&tx, user.id, &challenge, &provider.settings.name).await?;
                tx.commit().await?;
                Ok(Landed::Code(code))
            }
            None => {
                let proven =
                    Proven { provider: Some(provider.settings.name.clone()), ..Proven::new(user, Proof::External) };
                let client = ClientInfo { surface, ..client.clone() };
                Ok(Landed::Session(Box::new(self.finish_sign_in_in(tx, proven, &client).await?)))
            }
        }
    }

    /// A new code of a PKCE flow for `user_id`, kept (hashed) through `conn` for five
    /// minutes with the app's `challenge`.
    pub(crate) async fn issue_code(
        &self,
        conn: &impl tessera_store::Db,
        user_id: Uuid,
        challenge: &str,
        provider: &str,
    ) -> Result<String, Error> {
        let code = random_token(32);
        let at = now();
        let row = flow_state::Model {
            id: Uuid::now_v7(),
            code_hash: sha256_hex(&code),
            user_id,
            code_challenge: challenge.to_owned(),
            provider: provider.to_owned(),
            created_at: at,
            expires_at: at + ChronoDuration::seconds(CODE_TTL_SECS),
        };
        identities::insert_flow(conn, row).await?;
        Ok(code)
    }

    /// The code of a PKCE flow exchanged, with the verifier of its challenge, for a
    /// session: once, within five minutes. A wrong verifier spends the code too.
    pub async fn exchange_code(&self, code: &str, verifier: &str, client: &ClientInfo) -> Result<SignIn, Error> {
        let code = code.trim();
        if code.is_empty() || verifier.trim().is_empty() {
            return Err(Error::FlowStateNotFound);
        }
        let tx = self.store.begin().await?;
        let Some(flow) = identities::take_flow(&tx, &sha256_hex(code), now()).await? else {
            return Err(Error::FlowStateNotFound);
        };
        if !same_secret(&state::s256(verifier.trim()), &flow.code_challenge) {
            tx.commit().await?;
            return Err(Error::BadCodeVerifier);
        }
        let user = users::by_id(&tx, flow.user_id).await?.ok_or(Error::FlowStateNotFound)?;
        // A mailed link's code signs in as the link would have.
        let proven = match flow.provider.as_str() {
            "email" => Proven::new(user, Proof::Mail),
            _ => Proven { provider: Some(flow.provider), ..Proven::new(user, Proof::External) },
        };
        self.finish_sign_in_in(tx, proven, client).await
    }

    /// `POST /token?grant_type=id_token`: an ID token the provider minted for one of our
    /// client ids, checked against its keys, issuer, audience, expiry and nonce (GoTrue's
    /// rule: the token carries the SHA-256 of the nonce the app passes, or neither has one).
    pub async fn sign_in_with_id_token(
        &self,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        let provider = self.providers.enabled(provider)?;
        if provider.settings.preset == Preset::GitHub {
            return Err(Error::BadRequest("GitHub does not issue ID tokens".to_owned()));
        }
        let claims = provider.verify_id_token(self.providers.http(), id_token).await?;
        let in_token = claims.get("nonce").and_then(Value::as_str).filter(|n| !n.is_empty());
        let given = nonce.map(str::trim).filter(|n| !n.is_empty());
        match (in_token, given) {
            (None, None) => {}
            (Some(hashed), Some(raw)) if same_secret(hashed, &sha256_hex(raw)) => {}
            (Some(_), Some(_)) => return Err(Error::ProviderRefused("Nonces mismatch".to_owned())),
            _ => {
                return Err(Error::ProviderRefused(
                    "Passed nonce and nonce in id_token should either both exist or not.".to_owned(),
                ))
            }
        }
        let profile = oidc_profile(&claims)?;
        let (tx, user) = self.resolved(&provider, profile, None, client).await?;
        let proven = Proven { provider: Some(provider.settings.name.clone()), ..Proven::new(user, Proof::External) };
        self.finish_sign_in_in(tx, proven, client).await
    }

    /// [`Core::resolve`] in a new transaction, handed back with the user. When another
    /// first sign-in of the same identity (or a new account with the same address)
    /// committed between this one's read and its write, the unique index refuses this
    /// one's; it is rolled back and resolved again, and then finds what the other made:
    /// both sign in, to one account.
    async fn resolved(
        &self,
        provider: &Provider,
        profile: Profile,
        link_to: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<(Tx, user::Model), Error> {
        let tx = self.store.begin().await?;
        match self.resolve(&tx, provider, profile.clone(), link_to, client).await {
            Ok(user) => Ok((tx, user)),
            Err(Error::IdentityTaken | Error::EmailTaken) if link_to.is_none() => {
                drop(tx);
                let tx = self.store.begin().await?;
                let user = self.resolve(&tx, provider, profile, None, client).await?;
                Ok((tx, user))
            }
            Err(e) => Err(e),
        }
    }

    /// The account an identity signs in (or is linked to, `link_to`), in `tx`: the
    /// identity's own; else the account of a verified address that is confirmed there too;
    /// else a new account. An anonymous user it is linked to becomes permanent.
    async fn resolve(
        &self,
        tx: &Tx,
        provider: &Provider,
        profile: Profile,
        link_to: Option<Uuid>,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let name = provider.settings.name.as_str();
        let at = now();
        let data = Value::Object(profile.data.clone()).to_string();
        let address = profile.email.as_ref().map(Email::as_str);
        if let Some(found) = identities::by_subject(tx, name, &profile.subject).await? {
            if link_to.is_some_and(|u| u != found.user_id) {
                return Err(Error::IdentityTaken);
            }
            identities::signed_in(tx, found.id, address, &data, at).await?;
            return users::by_id(tx, found.user_id).await?.ok_or(Error::UserNotFound);
        }
        let (user, linked) = match link_to {
            Some(id) => {
                (users::by_id(tx, id).await?.filter(|u| u.deleted_at.is_none()).ok_or(Error::UserNotFound)?, true)
            }
            None => {
                let owner = match &profile.email {
                    Some(email) => users::by_email(tx, email.as_str()).await?,
                    None => None,
                };
                match owner {
                    // The provider vouches for the address and the account proved it owns it.
                    Some(u) if profile.email_verified && u.email_verified_at.is_some() && u.deleted_at.is_none() => {
                        (u, true)
                    }
                    // Taken by an account that cannot be linked: a new account without it.
                    Some(_) => (self.new_external_account(tx, None, &profile, name, client).await?, false),
                    None => {
                        (self.new_external_account(tx, profile.email.clone(), &profile, name, client).await?, false)
                    }
                }
            }
        };
        let row = identity::Model {
            id: Uuid::now_v7(),
            user_id: user.id,
            provider: name.to_owned(),
            provider_id: profile.subject.clone(),
            email: address.map(str::to_owned),
            data,
            last_sign_in_at: Some(at),
            created_at: at,
            updated_at: at,
        };
        let identity = identities::insert(tx, row).await?;
        let mut user = user::Model { has_identities: true, ..user };
        if user.is_anonymous {
            user = self.make_permanent(tx, user, &profile).await?;
        }
        if linked {
            let detail = json!({ "identity_id": identity.id, "provider": name, "provider_id": profile.subject });
            record(tx, client, AuditEvent::by_user("identity.link", user.id).detail(detail)).await?;
        }
        Ok(user)
    }

    /// A new account for an identity: its verified address (or a placeholder when it has
    /// none, or the address is taken), no password, the provider's name and picture.
    async fn new_external_account(
        &self,
        tx: &Tx,
        email: Option<Email>,
        profile: &Profile,
        provider: &str,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let verified = email.is_some() && profile.email_verified;
        let email = email.unwrap_or_else(|| Email::placeholder(&Uuid::now_v7().to_string()));
        let mut metadata = profile.data.clone();
        metadata.insert("sub".to_owned(), json!(profile.subject));
        let full_name = profile.data.get("name").and_then(Value::as_str).map(|n| n.chars().take(200).collect());
        let account =
            NewAccount { full_name, ..NewAccount::passwordless(email, verified, Some(Value::Object(metadata))) };
        self.vet_new_account(&account, client).await?;
        let created = insert_account(tx, account).await?;
        let detail = json!({ "provider": provider });
        record(tx, client, AuditEvent::by_user("user.create", created.id).detail(detail)).await?;
        Ok(created)
    }

    /// An anonymous user made permanent by a linked identity: the identity's verified
    /// address becomes theirs when no one has it.
    async fn make_permanent(&self, tx: &Tx, user: user::Model, profile: &Profile) -> Result<user::Model, Error> {
        let mut changes =
            users::UserChanges { is_anonymous: Some(false), updated_at: Some(now()), ..Default::default() };
        if let Some(email) = profile.email.as_ref().filter(|_| profile.email_verified) {
            if users::by_email(tx, email.as_str()).await?.is_none() {
                changes.email = Some(email.as_str().to_owned());
                changes.email_verified_at = Some(Some(now()));
            }
        }
        users::update(tx, &user, changes).await
    }

    /// A user's identities: the address-and-password one first (when the user has a
    /// password), then those of providers.
    pub async fn identities_of(&self, u: &user::Model) -> Result<Vec<IdentityView>, Error> {
        if !u.has_identities {
            return Ok(view::views(u, Vec::new()));
        }
        Ok(view::views(u, identities::of_user(self.store.reader(), u.id).await?))
    }

    /// The redirect that links `provider`'s identity to the signed-in user (manual
    /// linking, `MANUAL_LINKING_ENABLED`).
    pub async fn link_start(&self, user: &user::Model, a: Authorize, surface: Surface) -> Result<ToProvider, Error> {
        if !self.settings.manual_linking_enabled {
            return Err(Error::ManualLinkingDisabled);
        }
        self.oauth_start(a, surface, Some(user.id)).await
    }

    /// Unlinks identity `id` of the user, never the last way in (manual linking). The
    /// `email` identity goes by forgetting the password.
    pub async fn unlink_identity(&self, user: &user::Model, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        if !self.settings.manual_linking_enabled {
            return Err(Error::ManualLinkingDisabled);
        }
        let tx = self.store.begin().await?;
        let current = users::by_id_for_update(&tx, user.id).await?.ok_or(Error::UserNotFound)?;
        let linked = identities::of_user(&tx, current.id).await?;
        let has_password = email_identity(&current).is_some();
        let ways_in = linked.len() + usize::from(has_password);
        let target = linked.iter().find(|i| i.id == id);
        let is_email = has_password && id == current.id;
        if target.is_none() && !is_email {
            return Err(Error::IdentityNotFound);
        }
        if ways_in <= 1 {
            return Err(Error::LastIdentity);
        }
        let (provider, provider_id) = match target {
            Some(t) => {
                identities::delete(&tx, current.id, t.id).await?;
                (t.provider.clone(), t.provider_id.clone())
            }
            None => {
                let changes = users::UserChanges {
                    password_hash: Some(String::new()),
                    updated_at: Some(now()),
                    ..Default::default()
                };
                users::update(&tx, &current, changes).await?;
                ("email".to_owned(), current.id.to_string())
            }
        };
        let detail = json!({ "identity_id": id, "provider": provider, "provider_id": provider_id });
        record(&tx, client, AuditEvent::by_user("identity.unlink", current.id).detail(detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Signs up an anonymous user (`ANONYMOUS_USERS_ENABLED`), counted per IP by
    /// `RATE_LIMIT_ANONYMOUS`, and opens their first session.
    pub async fn sign_up_anonymously(
        &self,
        user_metadata: Option<Value>,
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        if !self.settings.anonymous_users_enabled {
            return Err(Error::AnonymousDisabled);
        }
        self.enforce_client_limit(RateAction::Anonymous, client).await?;
        let mut errors = Vec::new();
        crate::account::users::check_metadata("data", &user_metadata, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let placeholder = Email::placeholder(&Uuid::now_v7().to_string());
        let account = NewAccount { anonymous: true, ..NewAccount::passwordless(placeholder, false, user_metadata) };
        self.vet_new_account(&account, client).await?;
        let tx = self.store.begin().await?;
        let user = insert_account(&tx, account).await?;
        record(&tx, client, AuditEvent::by_user("user.register", user.id).detail(json!({ "anonymous": true }))).await?;
        self.finish_sign_in_in(tx, Proven::new(user, Proof::Anonymous), client).await
    }
}

/// GitHub's user (`GET /user`, `GET /user/emails`) as a profile: the primary verified
/// address, else any verified one.
async fn github_profile(http: &reqwest::Client, provider: &Provider, token: &str) -> Result<Profile, Error> {
    let api = match &provider.settings.url {
        Some(url) => format!("{url}/api/v3"),
        None => "https://api.github.com".to_owned(),
    };
    let get = |path: &str| {
        http.get(format!("{api}{path}"))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    };
    let user: Value = fetch_json(get("/user"), "GitHub's user").await?;
    let emails: Value = fetch_json(get("/user/emails"), "GitHub's addresses").await?;
    let subject = match user.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Error::ProviderRefused("GitHub named no user id".to_owned())),
    };
    let list = emails.as_array().cloned().unwrap_or_default();
    let verified = |e: &&Value| truthy(e.get("verified"));
    let primary = |e: &&Value| truthy(e.get("primary"));
    let chosen = list
        .iter()
        .filter(verified)
        .find(primary)
        .or_else(|| list.iter().find(verified))
        .or_else(|| list.iter().find(primary));
    let email = chosen.and_then(|e| e.get("email")).and_then(Value::as_str).and_then(|e| Email::parse(e).ok());
    let email_verified = chosen.as_ref().is_some_and(verified) && email.is_some();
    let login = user.get("login").cloned().unwrap_or(Value::Null);
    let mut data = Map::new();
    data.insert("sub".to_owned(), json!(subject));
    data.insert("provider_id".to_owned(), json!(subject));
    data.insert("iss".to_owned(), json!(api));
    data.insert("user_name".to_owned(), login.clone());
    data.insert("preferred_username".to_owned(), login);
    for (from, to) in [("name", "name"), ("name", "full_name"), ("avatar_url", "avatar_url"), ("avatar_url", "picture")]
    {
        if let Some(v) = user.get(from).filter(|v| !v.is_null()) {
            data.insert(to.to_owned(), v.clone());
        }
    }
    if let Some(e) = &email {
        data.insert("email".to_owned(), json!(e.as_str()));
    }
    data.insert("email_verified".to_owned(), json!(email_verified));
    Ok(Profile { subject, email, email_verified, data })
}

/// The address from the provider's user info, when the ID token had none (only when the
/// user info is about the same subject).
async fn merge_userinfo(http: &reqwest::Client, url: &str, token: &str, profile: &mut Profile) -> Result<(), Error> {
    let res = http.get(url).bearer_auth(token).send().await.map_err(|e| unreachable("the provider's user info", e))?;
    if !res.status().is_success() {
        return Ok(());
    }
    let info: Map<String, Value> = match res.json().await {
        Ok(info) => info,
        Err(_) => return Ok(()),
    };
    if info.get("sub").and_then(Value::as_str) != Some(profile.subject.as_str()) {
        return Ok(());
    }
    if let Some(email) = info.get("email").and_then(Value::as_str).and_then(|e| Email::parse(e).ok()) {
        profile.email_verified = truthy(info.get("email_verified"));
        profile.data.insert("email".to_owned(), json!(email.as_str()));
        profile.data.insert("email_verified".to_owned(), json!(profile.email_verified));
        profile.email = Some(email);
    }
    Ok(())
}
