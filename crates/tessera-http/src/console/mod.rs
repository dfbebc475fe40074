//! The admin console, `/admin` (issue 19): server-rendered pages over the same core
//! services, permissions and audit as the admin API (SPEC §2.1 Admin, §5.7, §5.9).
//!
//! - The session is an ordinary tessera session held in cookies scoped to `/admin`
//!   (HttpOnly, SameSite=Strict, Secure unless `SECURE_COOKIES=false`): its access token,
//!   refreshed through its refresh token when it expires. Revoking the session, or
//!   deactivating the admin, ends the console too.
//! - Every page names the permission it needs as a type, like the API's
//!   `RequirePermission`: a signed-in user without it gets a 403 page.
//! - Every form carries a CSRF token, a MAC of the session's id under the server's key
//!   ([`Core::console_csrf`](tessera_core::Core::console_csrf)); the sign-in forms, before
//!   any session, a random token also set as a cookie.
//! - Templates are compiled in (`maud`, escaping by default); the stylesheet and the one
//!   small script are embedded and served under names holding their hash. The pages
//!   work without the script; the CSP allows no inline script or style.

mod audit;
mod dashboard;
mod keys;
mod sign_in;
mod users;

use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use sha2::{Digest, Sha256};
use tessera_core::caller::Actor;
use tessera_core::caller::Principal;
use tessera_core::domain::{Error, ErrorKind};
use tessera_core::limits::RateAction;
use tessera_core::session::issued::Issued;

use crate::admin::RequiredPermission;
use crate::error::ApiError;
use crate::extract::Client;
use crate::{rate_limit, AppState, BODY_LIMIT};

/// The console session's access token.
const ACCESS_COOKIE: &str = "tessera_console";
/// The console session's refresh token.
const REFRESH_COOKIE: &str = "tessera_console_refresh";
/// The second step of a sign-in: the MFA token of the password step (5 minutes).
const MFA_COOKIE: &str = "tessera_console_mfa";
/// The CSRF token of the sign-in forms, before any session.
const FORM_COOKIE: &str = "tessera_console_form";

/// Whether a path is the console's.
pub fn is_console_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Whether a browser says the request comes from the console's own pages
/// (`Sec-Fetch-Site: same-origin`); a request without the header is not a browser's
/// (nor carries a browser's cookies). A page of another origin, even of the same site
/// (`same-site`: an app on a sibling subdomain), posts nothing here.
fn from_own_pages(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").is_none_or(|v| v == "same-origin" || v == "none")
}

/// A `Set-Cookie` value scoped to the console; `max_age` 0 deletes it.
fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.max(0)
    ))
    .ok()
}

/// The value of a request cookie, if set and not empty.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The cookies of a console session just opened or refreshed.
fn session_cookies(issued: &Issued, secure: bool) -> Vec<HeaderValue> {
    let ttl = issued.refresh_expires_in;
    [
        cookie(ACCESS_COOKIE, &issued.access_token, ttl, secure),
        cookie(REFRESH_COOKIE, &issued.refresh_token, ttl, secure),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The cookies that end a console session.
fn cleared_cookies(secure: bool) -> Vec<HeaderValue> {
    [cookie(ACCESS_COOKIE, "", 0, secure), cookie(REFRESH_COOKIE, "", 0, secure)].into_iter().flatten().collect()
}

/// Adds `Set-Cookie` headers to an answer.
fn with_cookies(mut res: Response, cookies: Vec<HeaderValue>) -> Response {
    for c in cookies {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// A signed-in console user.
pub(crate) struct Signed {
    pub actor: Actor,
    /// The user and the session.
    pub who: Principal,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// What the session layer found for a request.
#[derive(Clone)]
enum Session {
    None,
    /// Signed in, but refused (e.g. `ADMIN_MFA_REQUIRED` without a second factor; the
    /// session and its CSRF token are kept, so that signing out revokes it), or the
    /// session could not be read (the database is down).
    Refused(Arc<Error>, Option<Arc<(Principal, String)>>),
    Signed(Arc<Signed>),
}

impl Session {
    /// The session of the cookies, signed in or refused, and its CSRF token.
    fn principal(&self) -> Option<(&Principal, &str)> {
        match self {
            Session::Signed(s) => Some((&s.who, s.csrf.as_str())),
            Session::Refused(_, Some(p)) => Some((&p.0, p.1.as_str())),
            _ => None,
        }
    }
}

/// Reads the console session from the cookies, refreshing an expired access token
/// through the refresh token (the new cookies go with the answer).
async fn session_layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut set = Vec::new();
    let session = resolve(&s, &mut parts, &mut set).await;
    parts.extensions.insert(session);
    let res = next.run(Request::from_parts(parts, body)).await;
    // A sign-in or sign-out sets the session's cookies itself: they win.
    let own = |v: &HeaderValue| {
        let v = v.as_bytes();
        [ACCESS_COOKIE, REFRESH_COOKIE].iter().any(|c| v.starts_with(c.as_bytes()) && v.get(c.len()) == Some(&b'='))
    };
    if res.headers().get_all(header::SET_COOKIE).iter().any(own) {
        return res;
    }
    with_cookies(res, set)
}

async fn resolve(s: &AppState, parts: &mut Parts, set: &mut Vec<HeaderValue>) -> Session {
    let secure = s.core.settings.secure_cookies;
    let access = cookie_value(&parts.headers, ACCESS_COOKIE).map(str::to_owned);
    let refresh = cookie_value(&parts.headers, REFRESH_COOKIE).map(str::to_owned);
    if access.is_none() && refresh.is_none() {
        return Session::None;
    }
    let mut who = match &access {
        Some(token) => s.core.authenticate(token).await,
        None => Err(Error::TokenExpired),
    };
    if let (Err(Error::TokenExpired), Some(refresh)) = (&who, &refresh) {
        let client = match Client::from_request_parts(parts, s).await {
            Ok(Client(c)) => c,
            Err(_) => Default::default(),
        };
        who = match s.core.refresh(refresh, &client).await {
            Ok(issued) => {
                set.extend(session_cookies(&issued, secure));
                s.core.authenticate(&issued.access_token).await
            }
            Err(e) => Err(e),
        };
    }
    match who {
        Ok(p) => {
            let csrf = s.core.console_csrf(p.session_id);
            match s.core.actor_of(&p) {
                Ok(actor) => Session::Signed(Arc::new(Signed { csrf, actor, who: p })),
                Err(e) => Session::Refused(Arc::new(e), Some(Arc::new((p, csrf)))),
            }
        }
        Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => {
            Session::Refused(Arc::new(e), None)
        }
        Err(_) => {
            // Expired, revoked, or the account is gone: the cookies are dead.
            set.extend(cleared_cookies(secure));
            Session::None
        }
    }
}

/// A signed-in console user holding the permission `P`: without a session, a redirect
/// to the sign-in page; without the permission, a 403 page.
pub(crate) struct Console<P>(pub Arc<Signed>, PhantomData<P>);

impl<P: RequiredPermission> FromRequestParts<AppState> for Console<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        match parts.extensions.get::<Session>().cloned().unwrap_or(Session::None) {
            Session::None => Err(Redirect::to("/admin/sign-in").into_response()),
            Session::Refused(e, who) => Err(error_page_with(s, None, who.as_ref().map(|w| w.1.as_str()), &e)),
            Session::Signed(who) => match who.actor.require(P::PERMISSION) {
                Ok(()) => Ok(Console(who, PhantomData)),
                Err(e) => Err(error_page(s, Some(&who), &e)),
            },
        }
    }
}

/// A console form's fields, once the session, the permission `P` and the form's CSRF
/// token are checked (403 otherwise). Fields may repeat.
pub(crate) struct ConsoleForm<P> {
    pub who: Arc<Signed>,
    fields: Vec<(String, String)>,
    _p: PhantomData<P>,
}

/// The first value of a form field, as sent; empty when absent.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
}

/// A form body's fields, in order.
async fn form_fields(s: &AppState, body: axum::body::Body) -> Result<Vec<(String, String)>, Response> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| message_page(s, None, StatusCode::BAD_REQUEST, "Bad request", "The form could not be read."))?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

fn stale_form(s: &AppState, who: Option<&Signed>) -> Response {
    message_page(
        s,
        who,
        StatusCode::FORBIDDEN,
        "403 · Form refused",
        "This form was not sent by this console session (its security token is missing or stale). Reload the page and try again.",
    )
}

impl<P: RequiredPermission> FromRequest<AppState> for ConsoleForm<P> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Console(who, _) = Console::<P>::from_request_parts(&mut parts, s).await?;
        if !from_own_pages(&parts.headers) {
            return Err(stale_form(s, Some(&who)));
        }
        let fields = form_fields(s, body).await?;
        if !s.core.console_csrf_matches(who.who.session_id, field(&fields, "csrf")) {
            return Err(stale_form(s, Some(&who)));
        }
        Ok(ConsoleForm { who, fields, _p: PhantomData })
    }
}

impl<P> ConsoleForm<P> {
    /// The first value of a field, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        Some(field(&self.fields, name).trim()).filter(|v| !v.is_empty())
    }

    /// Every value of a field.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.trim())
    }
}

// --- Assets ------------------------------------------------------------------------------

/// An embedded asset, served under a name holding its hash (cached for a year).
struct Asset {
    path: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
        let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
        Asset { path: format!("/admin/assets/{stem}.{hash}.{ext}"), content_type, body }
    }
}

static CSS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("console", "css", "text/css; charset=utf-8", include_str!("../../assets/console.css")));
static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("console", "js", "text/javascript; charset=utf-8", include_str!("../../assets/console.js"))
});

/// GET /admin/assets/{file}
async fn asset(Path(file): Path<String>) -> Response {
    for a in [&*CSS, &*JS] {
        if a.path.rsplit('/').next() == Some(file.as_str()) {
            return (
                [
                    (header::CONTENT_TYPE, a.content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                a.body,
            )
                .into_response();
        }
    }
    ApiError::not_found().into_response()
}

// --- Layout ------------------------------------------------------------------------------

/// The console's sections, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    None,
    Dashboard,
    Users,
    Audit,
    Keys,
}

/// A whole page: the navigation (when signed in), a flash message, the body.
pub(crate) fn layout(s: &AppState, title: &str, who: Option<&Signed>, section: Section, body: Markup) -> Markup {
    let product = &s.core.settings.mail.product_name;
    let current = |sec: Section| (sec == section).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex";
                title { (title) " · " (product) " console" }
                link rel="stylesheet" href=(CSS.path);
                script src=(JS.path) defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    span.brand { (product) " console" }
                    @if let Some(who) = who {
                        nav aria-label="Console" {
                            a #nav-dashboard href="/admin" aria-current=[current(Section::Dashboard)] { "Dashboard" }
                            a #nav-users href="/admin/users" aria-current=[current(Section::Users)] { "Users" }
                            a #nav-audit href="/admin/audit" aria-current=[current(Section::Audit)] { "Audit log" }
                            a #nav-keys href="/admin/api-keys" aria-current=[current(Section::Keys)] { "API keys" }
                        }
                        form #sign-out method="post" action="/admin/sign-out" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            span.who { (who.who.user.email) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// An HTML answer.
pub(crate) fn render(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A page with a heading and one sentence.
pub(crate) fn message_page(
    s: &AppState,
    who: Option<&Signed>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let body = html! {
        h1.error { (title) }
        p { (text) }
        @if who.is_some() { p { a href="/admin" { "Back to the dashboard" } } }
        @else { p { a href="/admin/sign-in" { "Sign in" } } }
    };
    render(status, layout(s, title, who, Section::None, body))
}

/// The page of an error a service answered, with its status and the API's sentence
/// (and every broken rule of a 422).
pub(crate) fn error_page(s: &AppState, who: Option<&Signed>, e: &Error) -> Response {
    error_page_with(s, who, None, e)
}

/// The API's answer to an error (a server error is logged).
fn api_error(e: &Error) -> ApiError {
    let api = ApiError::from(e.clone());
    if api.status.is_server_error() {
        tracing::warn!(error = %e, "console request failed");
    }
    api
}

/// [`error_page`]; signed out, its "another account" button carries `csrf`, the token
/// of a session that is refused but alive (so that signing out revokes it).
fn error_page_with(s: &AppState, who: Option<&Signed>, csrf: Option<&str>, e: &Error) -> Response {
    let api = api_error(e);
    let heading = match api.status {
        StatusCode::FORBIDDEN => "403 · Not allowed".to_owned(),
        StatusCode::NOT_FOUND => "404 · Not found".to_owned(),
        st => format!("{} · {}", st.as_u16(), st.canonical_reason().unwrap_or("Error")),
    };
    let text = match e {
        Error::PermissionDenied => "Your account does not hold the permission this page needs.".to_owned(),
        Error::MfaRequired => {
            "The console needs a session that proved a second factor: sign out, set up MFA, and sign in again."
                .to_owned()
        }
        _ => api.detail.clone(),
    };
    let body = html! {
        h1.error { (heading) }
        p { (text) }
        @if let Some(errors) = &api.errors {
            ul.errors { @for fe in errors { li { strong { (fe.field) } ": " (fe.message) } } }
        }
        @if who.is_some() { p { a href="/admin" { "Back to the dashboard" } } }
        @else {
            form method="post" action="/admin/sign-out" {
                @if let Some(t) = csrf { input type="hidden" name="csrf" value=(t); }
                button.link type="submit" { "Sign in with another account" }
            }
        }
    };
    render(api.status, layout(s, &heading, who, Section::None, body))
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf_field(who: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// A short date and time, UTC.
pub(crate) fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A query string from pairs, empty values left out.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

/// 303 to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The `/admin` routes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let login_limit = axum::middleware::from_fn_with_state((state.clone(), RateAction::Login), rate_limit::per_ip);
    let verify_limit = axum::middleware::from_fn_with_state((state.clone(), RateAction::Verify), rate_limit::per_ip);
    Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/sign-in", post(sign_in::submit).route_layer(login_limit).get(sign_in::form))
        .route("/admin/sign-in/mfa", post(sign_in::mfa_submit).route_layer(verify_limit).get(sign_in::mfa_form))
        .route("/admin/sign-out", post(sign_in::sign_out))
        .route("/admin/users", get(users::list))
        .route("/admin/users/bulk", post(users::bulk_confirm))
        .route("/admin/users/bulk/apply", post(users::bulk_apply))
        .route("/admin/users/{id}", get(users::page))
        .route("/admin/users/{id}/delete", get(users::delete_confirm).post(users::delete))
        .route("/admin/users/{id}/{action}", post(users::act))
        .route("/admin/users/{id}/sessions/{sid}/revoke", post(users::revoke_session))
        .route("/admin/audit", get(audit::page))
        .route("/admin/api-keys", get(keys::page).post(keys::create))
        .route("/admin/api-keys/{id}/revoke", post(keys::revoke))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), session_layer))
        .route("/admin/assets/{file}", get(asset))
}
