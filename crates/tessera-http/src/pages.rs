//! The small pages behind the links tessera mails (SPEC §5.3): server-rendered, no
//! script, no external asset. Opening a link only shows a form; the token is used by
//! the form's POST, so a mail scanner that follows links burns nothing.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::SecretString;
use serde::Deserialize;
use tessera_core::domain::Error;
use tessera_core::limits::RateAction;
use tessera_core::mail::verification::EMAIL_CONFIRMATIONS;

use crate::extract::Client;
use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::rate_limit;
use crate::state::AppState;
use crate::surface::Surface;

/// The stylesheet of the pages, served from the binary.
pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=86400")],
        include_str!("../assets/tessera.css"),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(state: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
    let product = escape(&state.core.settings.mail.product_name);
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · {product}</title><link rel=\"stylesheet\" href=\"/assets/tessera.css\"></head>\
         <body><main>{body}<p class=\"product\">{product}</p></main></body></html>\n",
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

/// `?token=…`
#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The verification form's body.
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

/// The reset form's body.
#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

fn incomplete(state: &AppState) -> Response {
    page(
        state,
        StatusCode::BAD_REQUEST,
        "Link incomplete",
        "<h1 class=\"error\">This link is incomplete</h1><p>Open the link from the email again, or copy all of it.</p>",
    )
}

fn invalid(state: &AppState) -> Response {
    page(
        state,
        StatusCode::BAD_REQUEST,
        "Link no longer valid",
        "<h1 class=\"error\">This link no longer works</h1><p>It is invalid, has expired or was already used. Ask for a new one.</p>",
    )
}

fn unavailable(state: &AppState) -> Response {
    page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "<h1 class=\"error\">Something went wrong</h1><p>Please try again in a moment.</p>",
    )
}

/// GET /verify-email: a button that confirms.
pub async fn verify_email_form(State(s): State<AppState>, q: Result<Query<TokenQuery>, QueryRejection>) -> Response {
    let token = q.map(|Query(q)| q.token).unwrap_or_default();
    if token.trim().is_empty() {
        return incomplete(&s);
    }
    let body = format!(
        "<h1>Confirm your email address</h1><p>Press the button to confirm the address this link was sent to.</p>\
         <form method=\"post\" action=\"/verify-email\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
         <button type=\"submit\">Confirm my email</button></form>",
        escape(token.trim())
    );
    page(&s, StatusCode::OK, "Confirm your email", &body)
}

/// POST /verify-email: uses the token.
pub async fn verify_email_submit(
    State(s): State<AppState>,
    Client(client): Client,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return incomplete(&s) };
    if form.token.trim().is_empty() {
        return incomplete(&s);
    }
    match s.core.verify_email_token(&form.token, EMAIL_CONFIRMATIONS, &client).await {
        Ok(verified) => match crate::dto::pending(verified.confirmation) {
            Some((_, detail)) => page(
                &s,
                StatusCode::OK,
                "One more confirmation",
                &format!("<h1 class=\"ok\">Confirmed</h1><p>{}</p>", escape(&detail)),
            ),
            None => page(
                &s,
                StatusCode::OK,
                "Email confirmed",
                &format!(
                    "<h1 class=\"ok\">Email confirmed</h1><p>{} is confirmed. You can close this page.</p>",
                    escape(&verified.user.email)
                ),
            ),
        },
        Err(Error::InvalidVerification) => invalid(&s),
        Err(Error::EmailTaken) => page(
            &s,
            StatusCode::CONFLICT,
            "Address taken",
            "<h1 class=\"error\">That address is taken</h1><p>Another account uses this address now, so the change was not made.</p>",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "verification page failed");
            unavailable(&s)
        }
    }
}

fn reset_form(state: &AppState, status: StatusCode, token: &str, errors: &[String]) -> Response {
    let errors = if errors.is_empty() {
        String::new()
    } else {
        let items: String = errors.iter().map(|e| format!("<li>{}</li>", escape(e))).collect();
        format!("<ul class=\"errors\">{items}</ul>")
    };
    let body = format!(
        "<h1>Choose a new password</h1><p>Every device signed in to your account will be signed out.</p>{errors}\
         <form method=\"post\" action=\"/reset-password\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"new_password\">New password</label>\
         <input type=\"password\" id=\"new_password\" name=\"new_password\" autocomplete=\"new-password\" required>\
         <label for=\"confirm_password\">Repeat it</label>\
         <input type=\"password\" id=\"confirm_password\" name=\"confirm_password\" autocomplete=\"new-password\" required>\
         <button type=\"submit\">Set my new password</button></form>",
        escape(token.trim())
    );
    page(state, status, "Choose a new password", &body)
}

/// GET /reset-password: the new-password form.
pub async fn reset_password_form(State(s): State<AppState>, q: Result<Query<TokenQuery>, QueryRejection>) -> Response {
    let token = q.map(|Query(q)| q.token).unwrap_or_default();
    if token.trim().is_empty() {
        return incomplete(&s);
    }
    reset_form(&s, StatusCode::OK, &token, &[])
}

/// POST /reset-password: sets the password, or shows what the policy refused.
pub async fn reset_password_submit(
    State(s): State<AppState>,
    Client(client): Client,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return incomplete(&s) };
    if form.token.trim().is_empty() {
        return incomplete(&s);
    }
    if form.new_password != form.confirm_password {
        return reset_form(
            &s,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.token,
            &["The two passwords differ.".to_owned()],
        );
    }
    let password = SecretString::from(form.new_password);
    match s.core.confirm_password_reset(&form.token, &password, &client).await {
        Ok(_) => page(
            &s,
            StatusCode::OK,
            "Password changed",
            "<h1 class=\"ok\">Password changed</h1><p>Sign in with your new password. Every other device was signed out.</p>",
        ),
        Err(Error::Validation(list)) => {
            let messages: Vec<String> = list.into_iter().map(|e| e.message).collect();
            reset_form(&s, StatusCode::UNPROCESSABLE_ENTITY, &form.token, &messages)
        }
        Err(Error::InvalidVerification) => invalid(&s),
        Err(e) => {
            tracing::warn!(error = %e, "reset page failed");
            unavailable(&s)
        }
    }
}

/// The link pages' routes: the forms, and their stylesheet.
pub fn router(state: &AppState, shared: &SharedLayers) -> Router<AppState> {
    let verify_limit = || axum::middleware::from_fn_with_state((state.clone(), RateAction::Verify), rate_limit::per_ip);
    let forms = Router::new()
        .route("/verify-email", post(verify_email_submit).route_layer(verify_limit()).get(verify_email_form))
        .route("/reset-password", post(reset_password_submit).route_layer(verify_limit()).get(reset_password_form));
    let stylesheet = Router::new().route("/assets/tessera.css", get(stylesheet));
    shared.api(forms, Surface::Pages, Csp::LinkPages).merge(shared.api(stylesheet, Surface::Pages, Csp::Strict))
}
