//! The console's session: an ordinary tessera session held in cookies scoped to
//! `/admin`, read (and refreshed when its access token expired) by [`session_layer`].

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tessera_core::caller::{Actor, Principal};
use tessera_core::domain::{Error, ErrorKind};
use tessera_core::session::issued::Issued;

use crate::extract::Client;
use crate::state::AppState;

/// The console session's access token.
pub(super) const ACCESS_COOKIE: &str = "tessera_console";
/// The console session's refresh token.
pub(super) const REFRESH_COOKIE: &str = "tessera_console_refresh";
/// The second step of a sign-in: the MFA token of the password step (5 minutes).
pub(super) const MFA_COOKIE: &str = "tessera_console_mfa";
/// The CSRF token of the sign-in forms, before any session.
pub(super) const FORM_COOKIE: &str = "tessera_console_form";

pub(super) use crate::extract::{cookie_value, from_own_pages, with_cookies};

/// A `Set-Cookie` value scoped to the console; `max_age` 0 deletes it.
pub(super) fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    crate::extract::http_only_cookie(name, value, "/admin", "Strict", max_age, secure)
}

/// The cookies of a console session just opened or refreshed.
pub(super) fn session_cookies(issued: &Issued, secure: bool) -> Vec<HeaderValue> {
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
pub(super) fn cleared_cookies(secure: bool) -> Vec<HeaderValue> {
    [cookie(ACCESS_COOKIE, "", 0, secure), cookie(REFRESH_COOKIE, "", 0, secure)].into_iter().flatten().collect()
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
pub(super) enum Session {
    None,
    /// Signed in, but refused (e.g. `ADMIN_MFA_REQUIRED` without a second factor; the
    /// session and its CSRF token are kept, so that signing out revokes it), or the
    /// session could not be read (the database is down).
    Refused(Arc<Error>, Option<Arc<(Principal, String)>>),
    Signed(Arc<Signed>),
}

impl Session {
    /// The session of the cookies, signed in or refused, and its CSRF token.
    pub(super) fn principal(&self) -> Option<(&Principal, &str)> {
        match self {
            Session::Signed(s) => Some((&s.who, s.csrf.as_str())),
            Session::Refused(_, Some(p)) => Some((&p.0, p.1.as_str())),
            _ => None,
        }
    }
}

/// Reads the console session from the cookies, refreshing an expired access token
/// through the refresh token (the new cookies go with the answer).
pub(super) async fn session_layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
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
