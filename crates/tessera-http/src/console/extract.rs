//! The console's extractors: a signed-in user holding a permission, and a form of
//! theirs whose CSRF token is checked.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{error_page, error_page_with, message_page};
use super::session::{from_own_pages, Session, Signed};
use crate::permission::RequiredPermission;
use crate::state::{AppState, BODY_LIMIT};

/// A signed-in console user holding the permission `P`: without a session, a redirect
/// to the sign-in page; without the permission, a 403 page.
pub(crate) struct Console<P>(pub Arc<Signed>, pub(super) PhantomData<P>);

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
pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
}

/// A form body's fields, in order.
pub(super) async fn form_fields(s: &AppState, body: axum::body::Body) -> Result<Vec<(String, String)>, Response> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| message_page(s, None, StatusCode::BAD_REQUEST, "Bad request", "The form could not be read."))?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

pub(super) fn stale_form(s: &AppState, who: Option<&Signed>) -> Response {
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
