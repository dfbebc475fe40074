//! The provider's pages: the authorization endpoint, which sends the browser on; the
//! sign-in page (password, then the second factor when the account has one); the
//! consent page; and RP-initiated logout. Server-rendered in the console's look, no
//! script. Every form carries a token bound to the browser (a cookie) and the request,
//! and a browser's cross-site post is refused (`Sec-Fetch-Site`).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use maud::{html, Markup, DOCTYPE};
use secrecy::SecretString;
use serde::Deserialize;
use tessera_core::crypto::{random_token, same_secret};
use tessera_core::domain::Error;
use tessera_core::mfa::SecondFactor;
use tessera_core::oauth::authorize::{AuthorizeParams, Signer, Step};
use tessera_core::session::issued::SignIn;
use tessera_core::ClientInfo;
use uuid::Uuid;

use crate::console::assets::{CSS, JS};
use crate::extract::{cookie_value, from_own_pages, with_cookies, Client};
use crate::state::AppState;

/// The browser's session at the provider.
const SESSION_COOKIE: &str = "tessera_op";
/// The random value the forms' tokens are bound to.
const FLOW_COOKIE: &str = "tessera_op_flow";

/// A `Set-Cookie` value scoped to the provider's pages; `max_age` 0 deletes it.
fn cookie(s: &AppState, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    crate::extract::http_only_cookie(name, value, "/oauth", "Lax", max_age, s.core.settings.secure_cookies)
}

fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => message(StatusCode::BAD_REQUEST, "Cannot continue", "The address to go on to is not valid."),
    }
}

fn layout(title: &str, body: Markup) -> Markup {
    layout_with(title, body, false)
}

/// A page; with `script`, the console's script (the passkey sign-in needs WebAuthn).
fn layout_with(title: &str, body: Markup, script: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex";
                title { (title) }
                link rel="stylesheet" href=(CSS.path);
                @if script { script src=(JS.path) defer {} }
            }
            body { main #main { (body) } }
        }
    }
}

fn render(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(status, layout(title, html! { h1.error { (title) } p { (text) } }))
}

fn error_page(e: &Error) -> Response {
    let status = crate::error::ApiError::from(e.clone()).status;
    if status.is_server_error() {
        tracing::warn!(error = %e, "provider page failed");
    }
    let text =
        if status.is_server_error() { "Something went wrong; try again shortly.".to_owned() } else { e.to_string() };
    message(status, "Cannot sign in", &text)
}

/// A form of these pages, or the page that refuses a malformed one.
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(form)) => Ok(PageForm(form)),
            Err(_) => Err(message(StatusCode::BAD_REQUEST, "Form refused", "The form is malformed.")),
        }
    }
}

/// The browser's session at the provider, from its cookie.
async fn browser(
    s: &AppState,
    headers: &HeaderMap,
) -> Option<(tessera_core::entity::session::Model, tessera_core::entity::user::Model)> {
    s.core.provider_session(cookie_value(headers, SESSION_COOKIE)).await
}

/// Where a step sends the browser.
fn step_response(step: Step) -> Response {
    match step {
        Step::Refused(why) => message(StatusCode::BAD_REQUEST, "This sign-in request cannot be used", &why),
        Step::Redirect(to) | Step::AppConsent(to) => see_other(&to),
        Step::SignIn(id) => see_other(&format!("/oauth/sign-in?authorization_id={id}")),
        Step::Consent(id) => see_other(&format!("/oauth/consent?authorization_id={id}")),
    }
}

fn params(pairs: &[(String, String)]) -> AuthorizeParams {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    AuthorizeParams {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        nonce: get("nonce"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        prompt: get("prompt"),
        max_age: get("max_age"),
        response_mode: get("response_mode"),
        request: get("request").or(get("request_uri")),
    }
}

async fn authorize_with(s: AppState, client: ClientInfo, headers: HeaderMap, pairs: Vec<(String, String)>) -> Response {
    // A parameter given twice is refused before anything else (RFC 6749 §3.1).
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return message(StatusCode::BAD_REQUEST, "This sign-in request cannot be used", "A parameter is given twice.");
    }
    let session = browser(&s, &headers).await;
    match s.core.oauth_authorize(&params(&pairs), session, &client).await {
        Ok(step) => step_response(step),
        Err(e) => error_page(&e),
    }
}

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(pairs)) => authorize_with(s, client, headers, pairs).await,
        Err(_) => message(StatusCode::BAD_REQUEST, "This sign-in request cannot be used", "The query is malformed."),
    }
}

/// `POST /oauth/authorize` (OpenID Connect allows the request as a form).
pub async fn authorize_form(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(pairs): PageForm<Vec<(String, String)>>,
) -> Response {
    authorize_with(s, client, headers, pairs).await
}

/// `?authorization_id=…`
#[derive(Deserialize)]
pub struct PendingQuery {
    #[serde(default)]
    authorization_id: String,
}

fn pending_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw.trim()).ok()
}

/// The token of the sign-in forms: bound to the browser's flow cookie and the request.
fn sign_in_token(s: &AppState, flow: &str, id: Uuid) -> String {
    s.core.provider().map(|p| p.form_token("sign-in", flow, id)).unwrap_or_default()
}

fn sign_in_form(s: &AppState, id: Uuid, csrf: &str, email: &str, problem: Option<&str>) -> Markup {
    let product = &s.core.settings.mail.product_name;
    html! {
        h1 { "Sign in to " (product) }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        form method="post" action="/oauth/sign-in" {
            input type="hidden" name="authorization_id" value=(id);
            input type="hidden" name="csrf" value=(csrf);
            label { "Email" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        @if s.core.settings.passkeys_enabled {
            form #passkey method="post" action="/oauth/sign-in/passkey" data-options="/oauth/sign-in/passkey/options" hidden {
                input type="hidden" name="authorization_id" value=(id);
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="challenge_id";
                input type="hidden" name="credential";
                button #passkey-sign-in.secondary type="button" { "Sign in with a passkey" }
                p #passkey-error.error role="alert" hidden {}
            }
        }
        @let providers = s.core.providers.enabled_names();
        @if !providers.is_empty() {
            p { "Or sign in with:" }
            ul.providers {
                @for name in &providers {
                    li { a.button href=(format!("/oauth/sign-in/external?authorization_id={id}&provider={name}")) { (name) } }
                }
            }
        }
    }
}

/// `GET /oauth/sign-in?authorization_id=…`: the sign-in form (a browser already signed in
/// goes on).
pub async fn sign_in_page(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Query(q): Query<PendingQuery>,
) -> Response {
    let Some(id) = pending_id(&q.authorization_id) else {
        return error_page(&Error::OAuthAuthorizationNotFound);
    };
    if let Some(session) = browser(&s, &headers).await {
        match s.core.oauth_resume(id, Some(session), &client).await {
            Ok(Step::SignIn(_)) => {}
            Ok(step) => return step_response(step),
            Err(e) => return error_page(&e),
        }
    } else if let Err(e) = s.core.oauth_pending(id).await {
        return error_page(&e);
    }
    let (flow, set) = match cookie_value(&headers, FLOW_COOKIE) {
        Some(f) => (f.to_owned(), None),
        None => {
            let f = random_token(24);
            let c = cookie(&s, FLOW_COOKIE, &f, 3600);
            (f, c)
        }
    };
    let csrf = sign_in_token(&s, &flow, id);
    let page = layout_with("Sign in", sign_in_form(&s, id, &csrf, "", None), true);
    with_cookies(render(StatusCode::OK, page), set)
}

/// The sign-in form's body.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignInForm {
    authorization_id: String,
    csrf: String,
    email: String,
    password: String,
}

/// The second step's body.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SecondFactorForm {
    authorization_id: String,
    csrf: String,
    mfa_token: String,
    code: String,
}

/// Checks a sign-in form: from this server's pages, with the token of this browser.
fn checked_sign_in(s: &AppState, headers: &HeaderMap, raw_id: &str, csrf: &str) -> Result<Uuid, Response> {
    let id = pending_id(raw_id).ok_or_else(|| error_page(&Error::OAuthAuthorizationNotFound))?;
    let flow = cookie_value(headers, FLOW_COOKIE).unwrap_or_default();
    if !from_own_pages(headers) || flow.is_empty() || !same_secret(csrf, &sign_in_token(s, flow, id)) {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Form refused",
            "The form has expired or did not come from this page. Go back to the application and sign in again.",
        ));
    }
    Ok(id)
}

/// A session just opened at the provider: its cookie, then the request goes on.
async fn signed_in(s: &AppState, id: Uuid, session_id: Uuid, client: &ClientInfo) -> Response {
    let Ok(provider) = s.core.provider() else { return error_page(&Error::OAuthServerDisabled) };
    let ttl = s.core.settings.refresh_token_ttl.as_secs() as i64;
    let set = cookie(s, SESSION_COOKIE, &provider.session_cookie(session_id), ttl);
    let session = match s.core.store.session_for_refresh(session_id).await {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let res = match s.core.oauth_resume(id, session, client).await {
        Ok(step) => step_response(step),
        Err(e) => error_page(&e),
    };
    with_cookies(res, set)
}

/// `POST /oauth/sign-in`: the password; then the second factor, or on to consent.
pub async fn sign_in(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<SignInForm>,
) -> Response {
    let id = match checked_sign_in(&s, &headers, &form.authorization_id, &form.csrf) {
        Ok(id) => id,
        Err(res) => return res,
    };
    let password = SecretString::from(form.password);
    match s.core.login(form.email.trim(), &password, &client).await {
        Ok(SignIn::Session(issued)) => signed_in(&s, id, issued.session_id, &client).await,
        Ok(SignIn::MfaRequired(challenge)) => {
            render(StatusCode::OK, layout("Second step", mfa_form(id, &form.csrf, &challenge.mfa_token, None)))
        }
        Err(e @ (Error::InvalidCredentials | Error::AccountInactive | Error::EmailNotVerified)) => {
            let text = e.to_string();
            let page = layout_with("Sign in", sign_in_form(&s, id, &form.csrf, form.email.trim(), Some(&text)), true);
            render(StatusCode::UNAUTHORIZED, page)
        }
        Err(e) => error_page(&e),
    }
}

/// `POST /oauth/sign-in/mfa`: the second factor.
pub async fn second_factor(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<SecondFactorForm>,
) -> Response {
    let id = match checked_sign_in(&s, &headers, &form.authorization_id, &form.csrf) {
        Ok(id) => id,
        Err(res) => return res,
    };
    let code = form.code.trim().to_owned();
    let proof = if code.chars().all(|c| c.is_ascii_digit()) {
        SecondFactor::Code(code)
    } else {
        SecondFactor::RecoveryCode(code)
    };
    match s.core.verify_mfa(&form.mfa_token, proof, &client).await {
        Ok(issued) => signed_in(&s, id, issued.session_id, &client).await,
        Err(e @ Error::InvalidMfaCode) => {
            let page = layout("Second step", mfa_form(id, &form.csrf, &form.mfa_token, Some(&e.to_string())));
            render(StatusCode::UNAUTHORIZED, page)
        }
        Err(e) => error_page(&e),
    }
}

/// The second step's form.
fn mfa_form(id: Uuid, csrf: &str, mfa_token: &str, problem: Option<&str>) -> Markup {
    html! {
        h1 { "Second step" }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        p { "Enter the code of your authenticator app, or a recovery code." }
        form method="post" action="/oauth/sign-in/mfa" {
            input type="hidden" name="authorization_id" value=(id);
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="mfa_token" value=(mfa_token);
            label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
            button type="submit" { "Verify" }
        }
    }
}

/// The token of the consent form: bound to the browser's session and the request.
fn consent_token(s: &AppState, session_id: Uuid, id: Uuid) -> String {
    s.core.provider().map(|p| p.form_token("consent", &session_id.to_string(), id)).unwrap_or_default()
}

fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are (your account's identifier)",
        "profile" => "See your name",
        "email" => "See your email address",
        "phone" => "See your phone number",
        "offline_access" => "Stay signed in while you are away",
        _ => "",
    }
}

/// The request a consent page is about and the browser's session at the provider; a
/// browser not signed in goes to the sign-in page first.
async fn consenting(
    s: &AppState,
    headers: &HeaderMap,
    raw_id: &str,
) -> Result<(Uuid, tessera_core::entity::session::Model, tessera_core::entity::user::Model), Response> {
    let id = pending_id(raw_id).ok_or_else(|| error_page(&Error::OAuthAuthorizationNotFound))?;
    let (session, user) =
        browser(s, headers).await.ok_or_else(|| see_other(&format!("/oauth/sign-in?authorization_id={id}")))?;
    Ok((id, session, user))
}

/// `GET /oauth/consent?authorization_id=…`: what the client asks for, to approve or deny.
pub async fn consent_page(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Query(q): Query<PendingQuery>,
) -> Response {
    let (id, session, user) = match consenting(&s, &headers, &q.authorization_id).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    match s.core.oauth_resume(id, Some((session.clone(), user.clone())), &client).await {
        Ok(Step::Consent(_)) => {}
        Ok(step) => return step_response(step),
        Err(e) => return error_page(&e),
    }
    let pending = match s.core.oauth_pending(id).await {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let csrf = consent_token(&s, session.id, id);
    let name = &pending.client.name;
    let body = html! {
        @if let Some(logo) = pending.client.logo_uri.as_deref().filter(|l| l.starts_with("https://")) {
            img src=(logo) alt="" width="64" height="64";
        }
        h1 { (name) " wants to use your account" }
        p { "Signed in as " strong { (user.email) } "." }
        ul {
            @for scope in &pending.scopes {
                li { (describe(scope)) }
            }
        }
        @if let Some(uri) = &pending.client.client_uri { p { "About this application: " (uri) } }
        p { "You will be sent back to " code { (pending.redirect_uri) } "." }
        form method="post" action="/oauth/consent" {
            input type="hidden" name="authorization_id" value=(id);
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" name="decision" value="approve" { "Allow" }
            " "
            button.secondary type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    render(StatusCode::OK, layout("Allow access", body))
}

/// The consent form's body.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConsentForm {
    authorization_id: String,
    csrf: String,
    decision: String,
}

/// `POST /oauth/consent`: approve (a code to the client) or deny (`access_denied`).
pub async fn consent(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<ConsentForm>,
) -> Response {
    let (id, session, user) = match consenting(&s, &headers, &form.authorization_id).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    if !from_own_pages(&headers) || !same_secret(&form.csrf, &consent_token(&s, session.id, id)) {
        return message(StatusCode::FORBIDDEN, "Form refused", "The form has expired or did not come from this page.");
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return message(StatusCode::BAD_REQUEST, "Form refused", "Choose Allow or Deny."),
    };
    match s.core.oauth_decide(id, &Signer::of(&session, &user), approve, true, &client).await {
        Ok(to) => see_other(&to),
        Err(e) => error_page(&e),
    }
}

/// The parameters of RP-initiated logout.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    /// The confirmation form's token.
    csrf: Option<String>,
}

/// The token of the logout confirmation: bound to the browser's session at the provider.
fn logout_token(s: &AppState, cookie: &str) -> String {
    s.core.provider().map(|p| p.form_token("logout", cookie, Uuid::nil())).unwrap_or_default()
}

async fn logout_with(s: AppState, client: ClientInfo, headers: HeaderMap, p: LogoutParams, posted: bool) -> Response {
    let op_cookie = cookie_value(&headers, SESSION_COOKIE).unwrap_or_default().to_owned();
    let browser_session = s.core.provider().ok().and_then(|provider| provider.session_of_cookie(&op_cookie));
    // Without an ID token naming the client's session, the browser signs out only once
    // the person confirms (a link on another site must not sign anyone out).
    let hinted = p.id_token_hint.as_deref().is_some_and(|h| !h.is_empty());
    let confirmed = posted
        && from_own_pages(&headers)
        && p.csrf.as_deref().is_some_and(|t| !op_cookie.is_empty() && same_secret(t, &logout_token(&s, &op_cookie)));
    if !hinted && !confirmed && browser_session.is_some() {
        let body = html! {
            h1 { "Sign out?" }
            p { "Sign out of " (s.core.settings.mail.product_name) " in this browser." }
            form method="post" action="/oauth/logout" {
                input type="hidden" name="csrf" value=(logout_token(&s, &op_cookie));
                @if let Some(c) = &p.client_id { input type="hidden" name="client_id" value=(c); }
                @if let Some(u) = &p.post_logout_redirect_uri { input type="hidden" name="post_logout_redirect_uri" value=(u); }
                @if let Some(st) = &p.state { input type="hidden" name="state" value=(st); }
                button type="submit" { "Sign out" }
            }
        };
        return render(StatusCode::OK, layout("Sign out", body));
    }
    let ended = s
        .core
        .oauth_end_session(
            p.id_token_hint.as_deref(),
            p.client_id.as_deref(),
            p.post_logout_redirect_uri.as_deref(),
            p.state.as_deref(),
            browser_session,
            &client,
        )
        .await;
    // Only a logout that ended something clears the cookie (a refused one ended nothing).
    let clear = cookie(&s, SESSION_COOKIE, "", 0);
    match ended {
        Ok(Some(to)) => with_cookies(see_other(&to), clear),
        Ok(None) => {
            with_cookies(message(StatusCode::OK, "Signed out", "You are signed out. You may close this window."), clear)
        }
        Err(e) => error_page(&e),
    }
}

/// `GET /oauth/logout` (OpenID Connect RP-Initiated Logout).
pub async fn logout(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    query: Result<Query<LogoutParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(p)) => logout_with(s, client, headers, p, false).await,
        Err(_) => message(StatusCode::BAD_REQUEST, "Cannot sign out", "The query is malformed."),
    }
}

/// `POST /oauth/logout`.
pub async fn logout_form(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(p): PageForm<LogoutParams>,
) -> Response {
    logout_with(s, client, headers, p, true).await
}

/// The verifier of a sign-in with another provider started on the sign-in page.
const PKCE_COOKIE: &str = "tessera_op_pkce";

/// `?authorization_id=…&provider=…`
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ExternalQuery {
    authorization_id: String,
    provider: String,
}

/// `GET /oauth/sign-in/external`: signs in with another provider (SPEC §5.11), coming
/// back to [`external_done`] with a code this browser alone can exchange.
pub async fn external_start(State(s): State<AppState>, Query(q): Query<ExternalQuery>) -> Response {
    let Some(id) = pending_id(&q.authorization_id) else {
        return error_page(&Error::OAuthAuthorizationNotFound);
    };
    if let Err(e) = s.core.oauth_pending(id).await {
        return error_page(&e);
    }
    let verifier = random_token(32);
    let back = format!("{}{}?authorization_id={id}", s.core.settings.public_url, tessera_core::oauth::EXTERNAL_RETURN);
    let a = tessera_core::identity::Authorize {
        provider: q.provider,
        redirect_to: Some(back),
        code_challenge: Some(tessera_core::identity::state::s256(&verifier)),
        code_challenge_method: Some("s256".to_owned()),
        ..Default::default()
    };
    match s.core.oauth_start(a, tessera_core::Surface::Native, None).await {
        Ok(to) => {
            let res = crate::oauth::to_provider(&to, s.core.settings.secure_cookies);
            with_cookies(res, cookie(&s, PKCE_COOKIE, &verifier, 600))
        }
        Err(e) => error_page(&e),
    }
}

/// `?authorization_id=…&code=…` (or the provider's error).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ExternalDone {
    authorization_id: String,
    code: Option<String>,
    error_description: Option<String>,
}

/// `GET /oauth/sign-in/external/done`: the code of the other provider's sign-in,
/// exchanged with this browser's verifier; then the second step, or on to consent.
pub async fn external_done(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Query(q): Query<ExternalDone>,
) -> Response {
    let Some(id) = pending_id(&q.authorization_id) else {
        return error_page(&Error::OAuthAuthorizationNotFound);
    };
    let clear = cookie(&s, PKCE_COOKIE, "", 0);
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        let why =
            q.error_description.unwrap_or_else(|| "The sign-in with the other provider did not finish.".to_owned());
        return with_cookies(message(StatusCode::BAD_REQUEST, "Cannot sign in", &why), clear);
    };
    let verifier = cookie_value(&headers, PKCE_COOKIE).unwrap_or_default().to_owned();
    let res = match s.core.exchange_code(&code, &verifier, &client).await {
        Ok(SignIn::Session(issued)) => signed_in(&s, id, issued.session_id, &client).await,
        Ok(SignIn::MfaRequired(challenge)) => {
            let flow = cookie_value(&headers, FLOW_COOKIE).unwrap_or_default();
            let csrf = sign_in_token(&s, flow, id);
            render(StatusCode::OK, layout("Second step", mfa_form(id, &csrf, &challenge.mfa_token, None)))
        }
        Err(e) => error_page(&e),
    };
    with_cookies(res, clear)
}

/// `POST /oauth/sign-in/passkey/options`: a usernameless challenge for the page's script.
pub async fn passkey_options(State(s): State<AppState>) -> Response {
    match s.core.passkey_authentication_options(None).await {
        Ok(o) => axum::Json(crate::dto::PasskeyOptionsOut::from(o)).into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// The passkey form's body, as the script posts it.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasskeyForm {
    authorization_id: String,
    csrf: String,
    challenge_id: String,
    credential: String,
}

/// `POST /oauth/sign-in/passkey`: the challenge and the browser's answer
/// (`PublicKeyCredential.toJSON()`); then the second step, or on to consent.
pub async fn passkey_sign_in(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<PasskeyForm>,
) -> Response {
    let id = match checked_sign_in(&s, &headers, &form.authorization_id, &form.csrf) {
        Ok(id) => id,
        Err(res) => return res,
    };
    let challenge_id = Uuid::try_parse(form.challenge_id.trim());
    let credential = serde_json::from_str::<serde_json::Value>(&form.credential);
    let (Ok(challenge_id), Ok(credential)) = (challenge_id, credential) else {
        let page = sign_in_form(&s, id, &form.csrf, "", Some("The passkey's answer could not be read: try again."));
        return render(StatusCode::BAD_REQUEST, layout_with("Sign in", page, true));
    };
    match s.core.sign_in_with_passkey(challenge_id, &credential, &client).await {
        Ok(SignIn::Session(issued)) => signed_in(&s, id, issued.session_id, &client).await,
        Ok(SignIn::MfaRequired(challenge)) => {
            render(StatusCode::OK, layout("Second step", mfa_form(id, &form.csrf, &challenge.mfa_token, None)))
        }
        Err(e) => {
            let api = crate::error::ApiError::from(e);
            let page = sign_in_form(&s, id, &form.csrf, "", Some(&api.detail));
            render(api.status, layout_with("Sign in", page, true))
        }
    }
}
