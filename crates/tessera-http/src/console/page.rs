//! The console's pages: the layout every page shares, the error and message pages, and
//! small pieces of markup.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use tessera_core::domain::Error;

use super::assets::{CSS, JS};
use super::session::Signed;
use crate::error::ApiError;
use crate::state::AppState;

/// The console's sections, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    None,
    Dashboard,
    Users,
    Audit,
    Keys,
    Clients,
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
                            a #nav-clients href="/admin/oauth-clients" aria-current=[current(Section::Clients)] { "OAuth clients" }
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
pub(super) fn api_error(e: &Error) -> ApiError {
    let api = ApiError::from(e.clone());
    if api.status.is_server_error() {
        tracing::warn!(error = %e, "console request failed");
    }
    api
}

/// [`error_page`]; signed out, its "another account" button carries `csrf`, the token
/// of a session that is refused but alive (so that signing out revokes it).
pub(super) fn error_page_with(s: &AppState, who: Option<&Signed>, csrf: Option<&str>, e: &Error) -> Response {
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
