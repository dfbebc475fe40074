//! API keys: the list, a new key (shown once, on the answer to its form), revocation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration as ChronoDuration, Utc};
use maud::html;
use tessera_core::api_keys::{scopes_of, NewApiKey};
use tessera_core::domain::{Error, Permission};
use uuid::Uuid;

use super::extract::{Console, ConsoleForm};
use super::page::{csrf_field, error_page, layout, render, see_other, when, Section};
use super::session::Signed;
use crate::extract::Client;
use crate::permission::perm;
use crate::state::AppState;

/// The key list, with the creation form and, right after a creation, the new key.
async fn keys_page(s: &AppState, who: &Signed, created: Option<(&str, &str)>, status: StatusCode) -> Response {
    // A key just created is shown even if the list cannot be read: it is shown only once.
    let (keys, unlisted) = match s.core.list_api_keys().await {
        Ok(k) => (k, false),
        Err(e) if created.is_some() => {
            tracing::warn!(error = %e, "the API keys could not be listed after a creation");
            (Vec::new(), true)
        }
        Err(e) => return error_page(s, Some(who), &e),
    };
    let can_write = who.actor.require(Permission::ApiKeysWrite).is_ok();
    let now = Utc::now();
    let body = html! {
        h1 { "API keys" }
        @if let Some((name, key)) = created {
            div.flash.created role="status" {
                p { "The key " strong { (name) } " is created. Copy it now: it is shown only once." }
                code #new-key { (key) }
            }
        }
        @if unlisted {
            p.flash.error role="alert" {
                "The list of keys could not be read just now; once the key is copied, open "
                a href="/admin/api-keys" { "API keys" } " again."
            }
        }
        div.table-wrap {
            table #api-keys {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Starts with" } th scope="col" { "Scopes" }
                    th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Expires" }
                    th scope="col" { "State" } th scope="col" { span.visually-hidden { "Revoke" } }
                } }
                tbody {
                    @for k in &keys {
                        @let live = k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now);
                        tr.key #(format!("key-{}", k.id)) {
                            td.key-name { (k.name) }
                            td { code { (k.prefix) "…" } }
                            td { (scopes_of(k).list().iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (when(&k.created_at)) }
                            td { (k.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".to_owned())) }
                            td { (k.expires_at.as_ref().map(when).unwrap_or_else(|| "never".to_owned())) }
                            td.key-state { @if k.revoked_at.is_some() { "revoked" } @else if live { "live" } @else { "expired" } }
                            td {
                                @if can_write && k.revoked_at.is_none() {
                                    form.inline method="post" action=(format!("/admin/api-keys/{}/revoke", k.id)) {
                                        (csrf_field(who))
                                        button.revoke-key.danger type="submit" aria-label=(format!("Revoke {}", k.name)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                    @if keys.is_empty() { tr { td colspan="8" { "No key yet." } } }
                }
            }
        }
        @if can_write {
            section aria-labelledby="create-heading" {
                h2 #create-heading { "New key" }
                form #create-key method="post" action="/admin/api-keys" {
                    (csrf_field(who))
                    label for="key-name" { "Name" }
                    input #key-name type="text" name="name" maxlength="100" required;
                    fieldset {
                        legend { "Scopes" }
                        @for p in Permission::ALL {
                            @let id = format!("scope-{}", p.as_str().replace(':', "-"));
                            div.check {
                                input id=(id) type="checkbox" name="scopes" value=(p.as_str());
                                label for=(id) { code { (p.as_str()) } }
                            }
                        }
                    }
                    label for="expires-days" { "Expires after (days, empty: never)" }
                    input #expires-days type="number" name="expires_days" min="1" max="3650";
                    button #create-key-submit type="submit" { "Create key" }
                }
            }
        }
    };
    render(status, layout(s, "API keys", Some(who), Section::Keys, body))
}

/// GET /admin/api-keys
pub(crate) async fn page(State(s): State<AppState>, Console(who, _): Console<perm::ApiKeysRead>) -> Response {
    keys_page(&s, &who, None, StatusCode::OK).await
}

/// POST /admin/api-keys: creates a key and shows it once.
pub(crate) async fn create(
    State(s): State<AppState>,
    Client(client): Client,
    form: ConsoleForm<perm::ApiKeysWrite>,
) -> Response {
    let who = form.who.clone();
    let expires_at = match form.get("expires_days").map(str::parse::<i64>) {
        None => None,
        Some(Ok(d)) if (1..=3650).contains(&d) => Some(tessera_core::now() + ChronoDuration::days(d)),
        Some(_) => {
            let e = Error::field("expires_days", "out_of_range", "Between 1 and 3650 days.");
            return error_page(&s, Some(&who), &e);
        }
    };
    let new = NewApiKey {
        name: form.get("name").unwrap_or_default().to_owned(),
        scopes: form.all("scopes").map(str::to_owned).collect(),
        expires_at,
    };
    match s.core.create_api_key(&who.actor, new, &client).await {
        Ok(created) => keys_page(&s, &who, Some((&created.row.name, &created.key)), StatusCode::CREATED).await,
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

/// POST /admin/api-keys/{id}/revoke
pub(crate) async fn revoke(
    State(s): State<AppState>,
    Client(client): Client,
    Path(raw): Path<String>,
    form: ConsoleForm<perm::ApiKeysWrite>,
) -> Response {
    let who = form.who.clone();
    let Ok(id) = Uuid::try_parse(&raw) else { return error_page(&s, Some(&who), &Error::ApiKeyNotFound) };
    match s.core.revoke_api_key(&who.actor, id, &client).await {
        Ok(()) => see_other("/admin/api-keys"),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}
