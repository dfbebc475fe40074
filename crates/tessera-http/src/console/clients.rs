//! OAuth clients (SPEC §5.12): the applications that sign their users in through
//! tessera: the list, a new client (its secret shown once, on the answer to its form),
//! a new secret, deletion.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use secrecy::ExposeSecret;
use tessera_core::domain::{Error, Permission};
use tessera_core::oauth::clients::ClientInput;
use uuid::Uuid;

use super::extract::{Console, ConsoleForm};
use super::page::{csrf_field, error_page, layout, render, see_other, when, Section};
use super::session::Signed;
use crate::extract::Client;
use crate::permission::perm;
use crate::state::AppState;

/// The client list, with the registration form and, right after a registration or a new
/// secret, the secret.
async fn clients_page(s: &AppState, who: &Signed, made: Option<(&str, &str, &str)>, status: StatusCode) -> Response {
    let (clients, unlisted) = match s.core.oauth_clients(&who.actor, 1, 1000).await {
        Ok((c, _)) => (c, false),
        Err(e) if made.is_some() => {
            tracing::warn!(error = %e, "the OAuth clients could not be listed after a change");
            (Vec::new(), true)
        }
        Err(e) => return error_page(s, Some(who), &e),
    };
    let can_write = who.actor.require(Permission::OAuthClientsWrite).is_ok();
    let issuer = s.core.provider().map(|p| p.issuer.clone()).unwrap_or_default();
    let body = html! {
        h1 { "OAuth clients" }
        p { "Applications that sign their users in with this server (OpenID Connect). Discovery: "
            code { (issuer) "/.well-known/openid-configuration" } }
        @if let Some((name, id, secret)) = made {
            div.flash.created role="status" {
                p { "The client " strong { (name) } " (" code { (id) } ") has a new secret. Copy it now: it is shown only once." }
                code #new-secret { (secret) }
            }
        }
        @if unlisted {
            p.flash.error role="alert" { "The list of clients could not be read just now; reload the page." }
        }
        div.table-wrap {
            table #oauth-clients {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Client ID" } th scope="col" { "Type" }
                    th scope="col" { "Redirect URIs" } th scope="col" { "Scopes" } th scope="col" { "Created" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for c in &clients {
                        tr.client #(format!("client-{}", c.id)) {
                            td.client-name { (c.name) }
                            td { code { (c.id) } }
                            td { (c.client_type) @if c.registration_type == "dynamic" { " (dynamic)" } }
                            td { @for uri in &c.redirect_uris { code { (uri) } br; } }
                            td { (c.scope) }
                            td { (when(&c.created_at)) }
                            td {
                                @if can_write {
                                    @if c.client_type == "confidential" {
                                        form.inline method="post" action=(format!("/admin/oauth-clients/{}/secret", c.id)) {
                                            (csrf_field(who))
                                            button type="submit" aria-label=(format!("New secret for {}", c.name)) { "New secret" }
                                        }
                                    }
                                    form.inline method="post" action=(format!("/admin/oauth-clients/{}/delete", c.id)) {
                                        (csrf_field(who))
                                        button.danger type="submit" aria-label=(format!("Delete {}", c.name)) { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                    @if clients.is_empty() { tr { td colspan="7" { "No client yet." } } }
                }
            }
        }
        @if can_write {
            section aria-labelledby="register-heading" {
                h2 #register-heading { "New client" }
                form #register-client method="post" action="/admin/oauth-clients" {
                    (csrf_field(who))
                    label for="client-name" { "Name" }
                    input #client-name type="text" name="client_name" maxlength="255" required;
                    label for="client-type" { "Type" }
                    select #client-type name="client_type" {
                        option value="confidential" { "Confidential (a server: has a secret)" }
                        option value="public" { "Public (a browser or mobile app: PKCE only)" }
                    }
                    label for="redirect-uris" { "Redirect URIs (one per line)" }
                    textarea #redirect-uris name="redirect_uris" rows="3" required {}
                    label for="logout-uris" { "Post-logout redirect URIs (one per line, optional)" }
                    textarea #logout-uris name="post_logout_redirect_uris" rows="2" {}
                    label for="client-scope" { "Scopes it may ask for" }
                    input #client-scope type="text" name="scope" value="openid profile email phone offline_access";
                    label for="logo-uri" { "Logo URL (https, optional)" }
                    input #logo-uri type="url" name="logo_uri";
                    button #register-client-submit type="submit" { "Register client" }
                }
            }
        }
    };
    render(status, layout(s, "OAuth clients", Some(who), Section::Clients, body))
}

/// GET /admin/oauth-clients
pub(crate) async fn page(State(s): State<AppState>, Console(who, _): Console<perm::OAuthClientsRead>) -> Response {
    clients_page(&s, &who, None, StatusCode::OK).await
}

fn lines(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// POST /admin/oauth-clients: registers a client and shows its secret once.
pub(crate) async fn create(
    State(s): State<AppState>,
    Client(client): Client,
    form: ConsoleForm<perm::OAuthClientsWrite>,
) -> Response {
    let who = form.who.clone();
    let input = ClientInput {
        name: form.get("client_name").map(str::to_owned),
        client_type: form.get("client_type").map(str::to_owned),
        redirect_uris: Some(lines(form.get("redirect_uris"))),
        post_logout_redirect_uris: Some(lines(form.get("post_logout_redirect_uris"))),
        scope: form.get("scope").map(str::to_owned),
        logo_uri: form.get("logo_uri").map(str::to_owned),
        ..ClientInput::default()
    };
    match s.core.register_oauth_client(Some(&who.actor), &input, &client).await {
        Ok(made) => match &made.secret {
            Some(secret) => {
                let id = made.client.id.to_string();
                clients_page(&s, &who, Some((&made.client.name, &id, secret.expose_secret())), StatusCode::CREATED)
                    .await
            }
            None => see_other("/admin/oauth-clients"),
        },
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

fn client_id(s: &AppState, who: &Signed, raw: &str) -> Result<Uuid, Response> {
    Uuid::try_parse(raw).map_err(|_| error_page(s, Some(who), &Error::OAuthClientNotFound))
}

/// POST /admin/oauth-clients/{id}/secret: a new secret, shown once.
pub(crate) async fn new_secret(
    State(s): State<AppState>,
    Client(client): Client,
    Path(raw): Path<String>,
    form: ConsoleForm<perm::OAuthClientsWrite>,
) -> Response {
    let who = form.who.clone();
    let id = match client_id(&s, &who, &raw) {
        Ok(id) => id,
        Err(res) => return res,
    };
    match s.core.regenerate_oauth_client_secret(&who.actor, id, &client).await {
        Ok(made) => {
            let secret = made.secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default();
            clients_page(&s, &who, Some((&made.client.name, &id.to_string(), &secret)), StatusCode::OK).await
        }
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

/// POST /admin/oauth-clients/{id}/delete
pub(crate) async fn delete(
    State(s): State<AppState>,
    Client(client): Client,
    Path(raw): Path<String>,
    form: ConsoleForm<perm::OAuthClientsWrite>,
) -> Response {
    let who = form.who.clone();
    let id = match client_id(&s, &who, &raw) {
        Ok(id) => id,
        Err(res) => return res,
    };
    match s.core.delete_oauth_client(&who.actor, id, &client).await {
        Ok(()) => see_other("/admin/oauth-clients"),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}
