//! Signing in to the console (password, then the second factor when the account has
//! one; or a passkey) and out. The sign-in forms carry a random token, also set as a
//! cookie, against cross-site form posts (there is no session yet to bind it to).

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use secrecy::SecretString;
use tessera_core::crypto::{random_token, same_secret};
use tessera_core::domain::Error;
use tessera_core::mfa::SecondFactor;
use tessera_core::session::issued::SignIn;
use tessera_core::ClientInfo;
use uuid::Uuid;

use super::extract::{field, form_fields, stale_form};
use super::page::{api_error, error_page, layout, message_page, render, see_other, Section};
use super::session::{
    cleared_cookies, cookie, cookie_value, from_own_pages, session_cookies, with_cookies, Session, FORM_COOKIE,
    MFA_COOKIE,
};
use crate::dto::PasskeyOptionsOut;
use crate::extract::Client;
use crate::state::AppState;

/// The form token of the sign-in forms: the cookie's, or a new one (and its cookie).
fn form_token(s: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie_value(headers, FORM_COOKIE) {
        Some(t) => (t.to_owned(), None),
        None => {
            let t = random_token(24);
            let c = cookie(FORM_COOKIE, &t, 3600, s.core.settings.secure_cookies);
            (t, c)
        }
    }
}

/// A sign-in form, once it is known to come from the console's own pages and to
/// carry the token of its cookie (403 otherwise).
pub(crate) struct SignInForm {
    headers: HeaderMap,
    fields: Vec<(String, String)>,
    /// The form token, for the page that answers.
    token: String,
    /// The console session the request already had, if any.
    session: Session,
}

impl FromRequest<AppState> for SignInForm {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let session = parts.extensions.get::<Session>().cloned().unwrap_or(Session::None);
        let fields = form_fields(s, body).await?;
        let token = cookie_value(&parts.headers, FORM_COOKIE).unwrap_or_default().to_owned();
        if token.is_empty() && s.core.settings.secure_cookies && from_own_pages(&parts.headers) {
            return Err(cookie_dropped(s));
        }
        if !from_own_pages(&parts.headers) || token.is_empty() || !same_secret(&token, field(&fields, "csrf")) {
            return Err(stale_form(s, None));
        }
        Ok(SignInForm { headers: parts.headers, fields, token, session })
    }
}

/// The sign-in form came back without the cookie its page set: with Secure cookies, what
/// a browser does over plain http on any host but localhost. The page says what to do.
fn cookie_dropped(s: &AppState) -> Response {
    message_page(
        s,
        None,
        StatusCode::FORBIDDEN,
        "403 · Form refused: the browser dropped the console's cookie",
        "This server marks its cookies Secure (SECURE_COOKIES=true), and a browser keeps a Secure cookie only over \
         https or on localhost. Open the console over https; for local development over plain http on another \
         host, start the server with SECURE_COOKIES=false. Then reload the page.",
    )
}

/// Ends the session a new sign-in replaces.
async fn end_previous(s: &AppState, session: &Session, client: &ClientInfo) {
    if let Some((who, _)) = session.principal() {
        if let Err(e) = s.core.logout(who, client).await {
            tracing::info!(error = %e, "the console session a sign-in replaced was not revoked");
        }
    }
}

fn sign_in_page(s: &AppState, token: &str, email: &str, error: Option<&str>) -> Markup {
    let body = html! {
        section.narrow {
            h1 { "Sign in" }
            p.muted { "The console is for accounts with an admin role." }
            @if let Some(e) = error { p.flash.error role="alert" { (e) } }
            form #sign-in method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button #sign-in-submit type="submit" { "Sign in" }
            }
            // Shown by the console's script where the browser has WebAuthn: it fetches a
            // challenge, asks the browser for a passkey, and posts the answer here.
            @if s.core.settings.passkeys_enabled {
                form #passkey method="post" action="/admin/sign-in/passkey" data-options="/admin/sign-in/passkey/options" hidden {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="challenge_id";
                    input type="hidden" name="credential";
                    p.or { "or" }
                    button #passkey-sign-in.secondary type="button" { "Sign in with a passkey" }
                    p #passkey-error.flash.error role="alert" hidden {}
                }
            }
        }
    };
    layout(s, "Sign in", None, Section::None, body)
}

fn mfa_page(s: &AppState, token: &str, error: Option<&str>) -> Markup {
    let body = html! {
        section.narrow {
            h1 { "Second factor" }
            p { "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }
            @if let Some(e) = error { p.flash.error role="alert" { (e) } }
            form #mfa method="post" action="/admin/sign-in/mfa" {
                input type="hidden" name="csrf" value=(token);
                label for="code" { "Code" }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus;
                button #mfa-submit type="submit" { "Verify" }
            }
            p { a href="/admin/sign-in" { "Start again" } }
        }
    };
    layout(s, "Second factor", None, Section::None, body)
}

fn signed_in(req_session: Option<&Session>) -> bool {
    matches!(req_session, Some(Session::Signed(_)))
}

/// GET /admin/sign-in
pub(crate) async fn form(State(s): State<AppState>, req: Request) -> Response {
    if signed_in(req.extensions().get::<Session>()) {
        return see_other("/admin");
    }
    let (token, set) = form_token(&s, req.headers());
    with_cookies(render(StatusCode::OK, sign_in_page(&s, &token, "", None)), set)
}

/// The answer to a first step that succeeded: the session's cookies and the dashboard,
/// or the second step's cookie and its page.
async fn first_step_done(s: &AppState, form: &SignInForm, sign_in: SignIn, client: &ClientInfo) -> Response {
    let secure = s.core.settings.secure_cookies;
    match sign_in {
        SignIn::Session(issued) => {
            end_previous(s, &form.session, client).await;
            with_cookies(see_other("/admin"), session_cookies(&issued, secure))
        }
        SignIn::MfaRequired(ch) => {
            with_cookies(see_other("/admin/sign-in/mfa"), cookie(MFA_COOKIE, &ch.mfa_token, 300, secure))
        }
    }
}

/// POST /admin/sign-in
pub(crate) async fn submit(State(s): State<AppState>, Client(client): Client, form: SignInForm) -> Response {
    let email = field(&form.fields, "email").trim().to_owned();
    let password = SecretString::from(field(&form.fields, "password").to_owned());
    match s.core.login(&email, &password, &client).await {
        Ok(sign_in) => first_step_done(&s, &form, sign_in, &client).await,
        Err(e) => {
            let api = api_error(&e);
            render(api.status, sign_in_page(&s, &form.token, &email, Some(&api.detail)))
        }
    }
}

/// POST /admin/sign-in/passkey/options: a challenge for the console's script, for any
/// passkey of this site (no email: the browser offers the passkeys it holds). JSON, as
/// the API answers it.
pub(crate) async fn passkey_options(State(s): State<AppState>, _form: SignInForm) -> Response {
    match s.core.passkey_authentication_options(None).await {
        Ok(o) => Json(PasskeyOptionsOut::from(o)).into_response(),
        Err(e) => api_error(&e).into_response(),
    }
}

/// POST /admin/sign-in/passkey: the challenge and the browser's answer
/// (`PublicKeyCredential.toJSON()`), as the script posts them.
pub(crate) async fn passkey_submit(State(s): State<AppState>, Client(client): Client, form: SignInForm) -> Response {
    let challenge_id = Uuid::try_parse(field(&form.fields, "challenge_id").trim());
    let credential = serde_json::from_str::<serde_json::Value>(field(&form.fields, "credential"));
    let (Ok(challenge_id), Ok(credential)) = (challenge_id, credential) else {
        let page = sign_in_page(&s, &form.token, "", Some("The passkey's answer could not be read: try again."));
        return render(StatusCode::BAD_REQUEST, page);
    };
    match s.core.sign_in_with_passkey(challenge_id, &credential, &client).await {
        Ok(sign_in) => first_step_done(&s, &form, sign_in, &client).await,
        Err(e) => {
            let api = api_error(&e);
            render(api.status, sign_in_page(&s, &form.token, "", Some(&api.detail)))
        }
    }
}

/// GET /admin/sign-in/mfa
pub(crate) async fn mfa_form(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if cookie_value(&headers, MFA_COOKIE).is_none() {
        return see_other("/admin/sign-in");
    }
    let (token, set) = form_token(&s, &headers);
    with_cookies(render(StatusCode::OK, mfa_page(&s, &token, None)), set)
}

/// POST /admin/sign-in/mfa: a TOTP code or a recovery code.
pub(crate) async fn mfa_submit(State(s): State<AppState>, Client(client): Client, form: SignInForm) -> Response {
    let (token, secure) = (&form.token, s.core.settings.secure_cookies);
    let Some(mfa_token) = cookie_value(&form.headers, MFA_COOKIE) else { return see_other("/admin/sign-in") };
    let code: String = field(&form.fields, "code").chars().filter(|c| !c.is_whitespace()).collect();
    if code.is_empty() {
        return render(StatusCode::UNPROCESSABLE_ENTITY, mfa_page(&s, token, Some("Enter a code.")));
    }
    let proof = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        SecondFactor::Code(code)
    } else {
        SecondFactor::RecoveryCode(code)
    };
    match s.core.verify_mfa(mfa_token, proof, &client).await {
        Ok(issued) => {
            end_previous(&s, &form.session, &client).await;
            let mut set = session_cookies(&issued, secure);
            set.extend(cookie(MFA_COOKIE, "", 0, secure));
            with_cookies(see_other("/admin"), set)
        }
        Err(Error::InvalidMfaToken) => {
            let page = sign_in_page(&s, token, "", Some("The sign-in expired: sign in again."));
            with_cookies(render(StatusCode::UNAUTHORIZED, page), cookie(MFA_COOKIE, "", 0, secure))
        }
        Err(e) => {
            let api = api_error(&e);
            render(api.status, mfa_page(&s, token, Some(&api.detail)))
        }
    }
}

/// POST /admin/sign-out: revokes the session (signed in, or refused but alive) when the
/// form is this session's, and clears the cookies.
pub(crate) async fn sign_out(State(s): State<AppState>, Client(client): Client, req: Request) -> Response {
    let session = req.extensions().get::<Session>().cloned().unwrap_or(Session::None);
    let from_own = from_own_pages(req.headers());
    let fields = match form_fields(&s, req.into_body()).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let signed = match &session {
        Session::Signed(signed) => Some(signed.as_ref()),
        _ => None,
    };
    if let Some((who, _)) = session.principal() {
        if !from_own || !s.core.console_csrf_matches(who.session_id, field(&fields, "csrf")) {
            return stale_form(&s, signed);
        }
        if let Err(e) = s.core.logout(who, &client).await {
            return error_page(&s, signed, &e);
        }
    }
    with_cookies(see_other("/admin/sign-in"), cleared_cookies(s.core.settings.secure_cookies))
}
