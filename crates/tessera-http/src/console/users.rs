//! Users: the search (the API's `q`, role and active filters, keyset pages), a user's
//! page with its actions, and bulk actions behind a confirmation step. Every action is
//! a core service of the admin API, audited as the admin who clicked.

use axum::extract::rejection::QueryRejection;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use tessera_core::account::admin::{AdminUserPatch, AuditQuery, BulkAction, UserQuery};
use tessera_core::domain::{Error, Permission, Role};
use tessera_core::entity::user;
use uuid::Uuid;

use super::extract::{Console, ConsoleForm};
use super::page::{csrf_field, error_page, layout, query_string, render, see_other, when, Section};
use super::session::{Session, Signed};
use crate::extract::Client;
use crate::permission::perm;
use crate::state::AppState;

/// Users per page of the search.
const PAGE: u64 = 50;
/// Audit events on a user's page.
const USER_EVENTS: u64 = 20;

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    q: Option<String>,
    role: Option<String>,
    active: Option<String>,
    /// The keyset cursor: `created_at` (RFC 3339) and id of the last user shown.
    after: Option<String>,
    done: Option<String>,
    n: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(crate) struct UserPageQuery {
    done: Option<String>,
}

/// The cursor after a user.
fn cursor_of(u: &user::Model) -> String {
    format!("{}_{}", u.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true), u.id)
}

fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (at, id) = raw.rsplit_once('_')?;
    Some((DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc), Uuid::try_parse(id).ok()?))
}

/// The flash message of a finished action (`?done=`), from a fixed list.
fn flash(done: Option<&str>, n: Option<u64>) -> Option<String> {
    let text = match done? {
        "deactivate" => "The user is deactivated and signed out everywhere.".to_owned(),
        "activate" => "The user is active again.".to_owned(),
        "verify" => "The address is marked verified.".to_owned(),
        "role" => "The role is changed.".to_owned(),
        "logout" => "Every session of the user is revoked.".to_owned(),
        "session" => "The session is revoked.".to_owned(),
        "mfa-reset" => "MFA is reset: every factor and recovery code is gone, and every session revoked.".to_owned(),
        "passkey" => "The passkey is removed: it no longer signs in.".to_owned(),
        "delete" => "The user is deleted; you can restore them until the retention period ends.".to_owned(),
        "restore" => "The user is restored.".to_owned(),
        "bulk" => format!("Done: {} users changed.", n.unwrap_or(0)),
        _ => return None,
    };
    Some(text)
}

fn flash_box(text: Option<String>) -> Markup {
    html! { @if let Some(t) = text { p.flash role="status" { (t) } } }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// GET /admin/users
pub(crate) async fn list(
    State(s): State<AppState>,
    Console(who, _): Console<perm::UsersRead>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error_page(&s, Some(&who), &Error::BadRequest("The search could not be read.".to_owned()));
    };
    let text = q.q.clone().unwrap_or_default();
    let role = q.role.clone().unwrap_or_default();
    let active = q.active.clone().unwrap_or_default();
    let is_active = match active.as_str() {
        "" => None,
        "true" => Some(true),
        "false" => Some(false),
        _ => return error_page(&s, Some(&who), &Error::field("active", "invalid", "true, false or empty.")),
    };
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => match parse_cursor(raw) {
            Some(c) => Some(c),
            None => return error_page(&s, Some(&who), &Error::field("after", "invalid_cursor", "Not a cursor.")),
        },
    };
    let query = UserQuery { skip: 0, limit: PAGE, q: Some(text.clone()), role: Some(role.clone()), is_active, after };
    let (items, total) = match s.core.admin_list_users(query).await {
        Ok(r) => r,
        Err(e) => return error_page(&s, Some(&who), &e),
    };
    let next = (items.len() as u64 == PAGE).then(|| items.last().map(cursor_of)).flatten().map(|c| {
        format!("/admin/users?{}", query_string(&[("q", &text), ("role", &role), ("active", &active), ("after", &c)]))
    });
    let first = after
        .is_some()
        .then(|| format!("/admin/users?{}", query_string(&[("q", &text), ("role", &role), ("active", &active)])));
    let can_write = who.actor.require(Permission::UsersWrite).is_ok();
    let body = html! {
        h1 { "Users" }
        (flash_box(flash(q.done.as_deref(), q.n)))
        form #search.filters method="get" action="/admin/users" role="search" {
            div {
                label for="q" { "Email or name starts with" }
                input #q type="search" name="q" value=(text) maxlength="320";
            }
            div {
                label for="role" { "Role" }
                select #role name="role" {
                    option value="" selected[role.is_empty()] { "Any" }
                    @for r in [Role::User, Role::Admin] {
                        option value=(r.as_str()) selected[role == r.as_str()] { (r.as_str()) }
                    }
                }
            }
            div {
                label for="active" { "State" }
                select #active name="active" {
                    option value="" selected[active.is_empty()] { "Any" }
                    option value="true" selected[active == "true"] { "Active" }
                    option value="false" selected[active == "false"] { "Inactive" }
                }
            }
            button #search-submit type="submit" { "Search" }
        }
        p.muted #user-count { (total) " matching users." }
        form #bulk method="post" action="/admin/users/bulk" {
            (csrf_field(&who))
            div.table-wrap {
                table #users {
                    caption.visually-hidden { "Users, newest first" }
                    thead { tr {
                        th scope="col" { span.visually-hidden { "Select" } }
                        th scope="col" { "Email" } th scope="col" { "Name" } th scope="col" { "Role" }
                        th scope="col" { "State" } th scope="col" { "Verified" } th scope="col" { "MFA" }
                        th scope="col" { "Created" }
                    } }
                    tbody {
                        @for u in &items {
                            tr.user {
                                td { input type="checkbox" name="ids" value=(u.id) aria-label=(format!("Select {}", u.email)); }
                                td { a.user-link href=(format!("/admin/users/{}", u.id)) { (u.email) } }
                                td { (u.full_name.as_deref().unwrap_or("")) }
                                td { (u.role) }
                                td { @if u.is_active { "active" } @else { span.warn { "inactive" } } }
                                td { (yes_no(u.email_verified_at.is_some())) }
                                td { (if u.mfa_enabled { "on" } else { "off" }) }
                                td { (when(&u.created_at)) }
                            }
                        }
                        @if items.is_empty() { tr { td colspan="8" { "No user matches." } } }
                    }
                }
            }
            @if can_write && !items.is_empty() {
                div.bulk {
                    label for="bulk-action" { "With the selected users:" }
                    select #bulk-action name="action" {
                        option value="activate" { "Activate" }
                        option value="deactivate" { "Deactivate (signs them out)" }
                        option value="set_role_user" { "Make user" }
                        option value="set_role_admin" { "Make admin" }
                        option value="delete" { "Delete for good" }
                    }
                    button #bulk-submit type="submit" { "Continue…" }
                }
            }
        }
        nav.pages aria-label="Pages" {
            @if let Some(f) = &first { a #first-page href=(f) { "« First page" } }
            @if let Some(n) = &next { a #next-page href=(n) { "Next page »" } }
        }
    };
    render(StatusCode::OK, layout(&s, "Users", Some(&who), Section::Users, body))
}

/// A bulk action's name in the form, its service action and role, and its sentence.
fn bulk_action(name: &str) -> Option<(BulkAction, Option<&'static str>, &'static str)> {
    Some(match name {
        "activate" => (BulkAction::Activate, None, "Activate"),
        "deactivate" => (BulkAction::Deactivate, None, "Deactivate and sign out"),
        "set_role_user" => (BulkAction::SetRole, Some("user"), "Give the role user to"),
        "set_role_admin" => (BulkAction::SetRole, Some("admin"), "Give the role admin to"),
        "delete" => (BulkAction::Delete, None, "Delete for good"),
        _ => return None,
    })
}

/// The ids a bulk form names; `None` if one is not an id.
fn ids_of<P>(form: &ConsoleForm<P>) -> Option<Vec<Uuid>> {
    form.all("ids").map(|v| Uuid::try_parse(v).ok()).collect()
}

/// POST /admin/users/bulk: the confirmation step (nothing changes yet).
pub(crate) async fn bulk_confirm(State(s): State<AppState>, form: ConsoleForm<perm::UsersWrite>) -> Response {
    let who = form.who.clone();
    let Some((_, _, sentence)) = form.get("action").and_then(bulk_action) else {
        return error_page(&s, Some(&who), &Error::field("action", "invalid", "Choose an action."));
    };
    let ids = match ids_of(&form) {
        Some(ids) if !ids.is_empty() => ids,
        Some(_) => return error_page(&s, Some(&who), &Error::field("ids", "required", "Select at least one user.")),
        None => return error_page(&s, Some(&who), &Error::field("ids", "invalid", "Not a user id.")),
    };
    if ids.len() > tessera_core::account::admin::BULK_MAX_IDS {
        return error_page(&s, Some(&who), &Error::field("ids", "out_of_range", "Too many users at once."));
    }
    let shown = match s.core.admin_users_by_ids(&ids[..ids.len().min(PAGE as usize)]).await {
        Ok(users) => users,
        Err(e) => return error_page(&s, Some(&who), &e),
    };
    let action = form.get("action").unwrap_or_default();
    let body = html! {
        h1 { "Confirm" }
        p { (sentence) " " strong { (ids.len()) } " users?" }
        ul #bulk-users { @for u in &shown { li { (u.email) } } }
        @if ids.len() > shown.len() { p.muted { "…and " (ids.len() - shown.len()) " more." } }
        form #bulk-apply method="post" action="/admin/users/bulk/apply" {
            (csrf_field(&who))
            input type="hidden" name="action" value=(action);
            @for id in &ids { input type="hidden" name="ids" value=(id); }
            button #bulk-confirm.danger[action == "delete" || action == "deactivate"] type="submit" { (sentence) }
            " "
            a href="/admin/users" { "Cancel" }
        }
    };
    render(StatusCode::OK, layout(&s, "Confirm", Some(&who), Section::Users, body))
}

/// POST /admin/users/bulk/apply: one transaction, all or nothing (the API's bulk).
pub(crate) async fn bulk_apply(
    State(s): State<AppState>,
    Client(client): Client,
    form: ConsoleForm<perm::UsersWrite>,
) -> Response {
    let who = form.who.clone();
    let Some((action, role, _)) = form.get("action").and_then(bulk_action) else {
        return error_page(&s, Some(&who), &Error::field("action", "invalid", "Choose an action."));
    };
    let Some(ids) = ids_of(&form) else {
        return error_page(&s, Some(&who), &Error::field("ids", "invalid", "Not a user id."));
    };
    match s.core.admin_bulk(&who.actor, action, ids, role.map(str::to_owned), &client).await {
        Ok(n) => see_other(&format!("/admin/users?done=bulk&n={n}")),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

/// The user of a `/admin/users/{id}/…` path; an id that cannot be one names no user (a
/// 404 page).
pub(crate) struct UserId(Uuid);

impl FromRequestParts<AppState> for UserId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, s).await.ok();
        match params.as_ref().and_then(|Path(p)| p.get("id")).and_then(|raw| Uuid::try_parse(raw).ok()) {
            Some(id) => Ok(UserId(id)),
            None => {
                let who = match parts.extensions.get::<Session>() {
                    Some(Session::Signed(who)) => Some(who.clone()),
                    _ => None,
                };
                Err(error_page(s, who.as_deref(), &Error::UserNotFound))
            }
        }
    }
}

/// A form of one button posting to `action`.
fn button_form(who: &Signed, action: &str, id: &str, label: &str, danger: bool) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(who))
            button id=(id) .danger[danger] type="submit" { (label) }
        }
    }
}

/// GET /admin/users/{id}
pub(crate) async fn page(
    State(s): State<AppState>,
    Console(who, _): Console<perm::UsersRead>,
    UserId(id): UserId,
    q: Result<Query<UserPageQuery>, QueryRejection>,
) -> Response {
    let done = q.ok().and_then(|Query(q)| q.done);
    let can_audit = who.actor.require(Permission::AuditRead).is_ok();
    let events = async {
        if can_audit {
            let q = AuditQuery { user_id: Some(id), limit: Some(USER_EVENTS), ..Default::default() };
            s.core.audit_log(q).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (u, sessions, factors, passkeys, events) =
        tokio::join!(s.core.admin_user(id), s.core.list_sessions(id), s.core.factors(id), s.core.passkeys(id), events);
    let (u, sessions, factors, passkeys, events) = match (u, sessions, factors, passkeys, events) {
        (Ok(u), Ok(ss), Ok(f), Ok(p), Ok(ev)) => (u, ss, f, p, ev),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
            return error_page(&s, Some(&who), &e)
        }
    };
    let identities = match s.core.identities_of(&u).await {
        Ok(i) => i,
        Err(e) => return error_page(&s, Some(&who), &e),
    };
    let names = match &events {
        Some((ev, _)) => match super::audit::names_of(&s, ev).await {
            Ok(n) => n,
            Err(e) => return error_page(&s, Some(&who), &e),
        },
        None => Default::default(),
    };
    let can_write = who.actor.require(Permission::UsersWrite).is_ok();
    let can_sessions = who.actor.require(Permission::SessionsWrite).is_ok();
    let base = format!("/admin/users/{id}");
    let deleted = u.deleted_at.is_some();
    let state = match (deleted, u.is_active && !u.is_anonymous) {
        (false, false) if u.is_active => "active (anonymous)",
        (true, _) => "deleted (restorable)",
        (false, true) => "active",
        (false, false) => "inactive",
    };
    let verified_factors = factors.iter().filter(|f| f.status == "verified").count();
    let body = html! {
        p.crumbs { a href="/admin/users" { "Users" } " › " }
        h1 { (u.email) }
        (flash_box(flash(done.as_deref(), None)))
        div.columns {
            section aria-labelledby="profile-heading" {
                h2 #profile-heading { "Profile" }
                dl #profile.fields {
                    dt { "Id" } dd { code { (u.id) } }
                    dt { "Email" } dd { (u.email) }
                    @if let Some(pending) = &u.new_email { dt { "Pending address" } dd { (pending) } }
                    dt { "Name" } dd { (u.full_name.as_deref().unwrap_or("—")) }
                    dt { "Phone" } dd { (u.phone.as_deref().unwrap_or("—")) }
                    dt { "Role" } dd #role { (u.role) }
                    dt { "State" } dd #state { (state) }
                    dt { "Verified" } dd #verified { (yes_no(u.email_verified_at.is_some())) }
                    dt { "MFA" } dd #mfa { (if u.mfa_enabled { "on" } else { "off" }) " (" (verified_factors) " factors)" }
                    dt { "Created" } dd { (when(&u.created_at)) }
                    dt { "Last sign-in" } dd { (u.last_login_at.as_ref().map(when).unwrap_or_else(|| "never".to_owned())) }
                    @if let Some(d) = &u.deleted_at { dt { "Deleted" } dd { (when(d)) } }
                }
            }
            @if can_write {
                section.actions aria-labelledby="actions-heading" {
                    h2 #actions-heading { "Actions" }
                    @if deleted {
                        (button_form(&who, &format!("{base}/restore"), "restore", "Restore", false))
                    } @else {
                        @if u.is_active {
                            (button_form(&who, &format!("{base}/deactivate"), "deactivate", "Deactivate", true))
                        } @else {
                            (button_form(&who, &format!("{base}/activate"), "activate", "Activate", false))
                        }
                        @if u.email_verified_at.is_none() {
                            (button_form(&who, &format!("{base}/verify"), "verify", "Mark verified", false))
                        }
                        form.inline method="post" action=(format!("{base}/role")) {
                            (csrf_field(&who))
                            label for="role-select" { "Role" }
                            select #role-select name="role" {
                                @for r in [Role::User, Role::Admin] {
                                    option value=(r.as_str()) selected[u.role == r.as_str()] { (r.as_str()) }
                                }
                            }
                            button #role-submit type="submit" { "Set role" }
                        }
                        @if u.mfa_enabled {
                            (button_form(&who, &format!("{base}/mfa-reset"), "mfa-reset", "Reset MFA", true))
                        }
                        @if can_sessions {
                            (button_form(&who, &format!("{base}/logout"), "revoke-all", "Sign out everywhere", true))
                        }
                        p { a #delete.danger-link href=(format!("{base}/delete")) { "Delete…" } }
                    }
                }
            }
        }
        section aria-labelledby="sessions-heading" {
            h2 #sessions-heading { "Sessions (" (sessions.len()) ")" }
            div.table-wrap {
                table #sessions {
                    thead { tr {
                        th scope="col" { "Started" } th scope="col" { "Last used" } th scope="col" { "Address" }
                        th scope="col" { "Client" } th scope="col" { "Level" } th scope="col" { span.visually-hidden { "Revoke" } }
                    } }
                    tbody {
                        @for ss in &sessions {
                            tr.session #(format!("session-{}", ss.id)) {
                                td { (when(&ss.created_at)) @if ss.id == who.who.session_id { " " span.muted { "(this console)" } } }
                                td { (when(&ss.last_used_at)) }
                                td { (ss.ip.as_deref().unwrap_or("—")) }
                                td.ua { (ss.user_agent.as_deref().unwrap_or("—")) }
                                td { (tessera_core::session::issued::shown_aal(&ss.aal)) }
                                td {
                                    @if can_sessions {
                                        form.inline method="post" action=(format!("{base}/sessions/{}/revoke", ss.id)) {
                                            (csrf_field(&who))
                                            button.revoke-session type="submit" aria-label=(format!("Revoke the session started {}", when(&ss.created_at))) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                        @if sessions.is_empty() { tr { td colspan="6" { "No live session." } } }
                    }
                }
            }
        }
        section aria-labelledby="identities-heading" {
            h2 #identities-heading { "Sign-in identities (" (identities.len()) ")" }
            div.table-wrap {
                table #identities {
                    thead { tr {
                        th scope="col" { "Provider" } th scope="col" { "Subject" } th scope="col" { "Email" }
                        th scope="col" { "Linked" } th scope="col" { "Last sign-in" }
                    } }
                    tbody {
                        @for i in &identities {
                            tr.identity #(format!("identity-{}", i.id)) {
                                td { (i.provider) }
                                td { (i.provider_id) }
                                td { (i.email.clone().unwrap_or_default()) }
                                td { (when(&i.created_at)) }
                                td { (i.last_sign_in_at.as_ref().map(when).unwrap_or_else(|| "never".to_owned())) }
                            }
                        }
                        @if identities.is_empty() { tr { td colspan="5" { "No way to sign in but a passkey." } } }
                    }
                }
            }
        }
        section aria-labelledby="passkeys-heading" {
            h2 #passkeys-heading { "Passkeys (" (passkeys.len()) ")" }
            div.table-wrap {
                table #passkeys {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" }
                        th scope="col" { "Backed up" } th scope="col" { span.visually-hidden { "Remove" } }
                    } }
                    tbody {
                        @for p in &passkeys {
                            tr.passkey #(format!("passkey-{}", p.id)) {
                                td { (p.name) }
                                td { (when(&p.created_at)) }
                                td { (p.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".to_owned())) }
                                td { (yes_no(p.backed_up)) }
                                td {
                                    @if can_write {
                                        form.inline method="post" action=(format!("{base}/passkeys/{}/remove", p.id)) {
                                            (csrf_field(&who))
                                            button.danger.remove-passkey type="submit" aria-label=(format!("Remove the passkey {}", p.name)) { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                        @if passkeys.is_empty() { tr { td colspan="5" { "No passkey." } } }
                    }
                }
            }
        }
        @if let Some((events, more)) = &events {
            section aria-labelledby="audit-heading" {
                h2 #audit-heading { "Recent events" }
                (super::audit::table("user-audit", events, &names))
                @if more.is_some() {
                    p { a href=(format!("/admin/audit?user_id={id}")) { "All events of this user »" } }
                }
            }
        }
    };
    render(StatusCode::OK, layout(&s, &u.email, Some(&who), Section::Users, body))
}

/// POST /admin/users/{id}/{action}: deactivate, activate, verify, role, logout,
/// mfa-reset, restore.
pub(crate) async fn act(
    State(s): State<AppState>,
    Client(client): Client,
    UserId(id): UserId,
    Path((_, action)): Path<(String, String)>,
    form: ConsoleForm<perm::UsersWrite>,
) -> Response {
    let who = form.who.clone();
    let actor = &who.actor;
    let update = |p: AdminUserPatch| Some(p);
    let patch = match action.as_str() {
        "deactivate" => update(AdminUserPatch { is_active: Some(false), ..Default::default() }),
        "activate" => update(AdminUserPatch { is_active: Some(true), ..Default::default() }),
        "verify" => update(AdminUserPatch { is_verified: Some(true), ..Default::default() }),
        "role" => {
            update(AdminUserPatch { role: Some(form.get("role").unwrap_or_default().to_owned()), ..Default::default() })
        }
        _ => None,
    };
    let result = match (patch, action.as_str()) {
        (Some(p), _) => s.core.admin_update_user(actor, id, p, &client).await.map(|_| ()),
        (None, "logout") => match actor.require(Permission::SessionsWrite) {
            Ok(()) => s.core.admin_logout_user(actor, id, &client).await,
            Err(e) => Err(e),
        },
        (None, "mfa-reset") => s.core.admin_reset_mfa(actor, id, &client).await,
        (None, "restore") => s.core.admin_restore_user(actor, id, &client).await.map(|_| ()),
        _ => return error_page(&s, Some(&who), &Error::BadRequest("Unknown action.".to_owned())),
    };
    match result {
        Ok(()) => see_other(&format!("/admin/users/{id}?done={action}")),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

/// GET /admin/users/{id}/delete: the confirmation step.
pub(crate) async fn delete_confirm(
    State(s): State<AppState>,
    Console(who, _): Console<perm::UsersWrite>,
    UserId(id): UserId,
) -> Response {
    let u = match s.core.admin_user(id).await {
        Ok(u) => u,
        Err(e) => return error_page(&s, Some(&who), &e),
    };
    let days = s.core.settings.deleted_retention.as_secs() / 86_400;
    let body = html! {
        h1 { "Delete " (u.email) "?" }
        p { "The account is deleted at once: its sessions end and it cannot sign in. For " (days)
            " days you can restore it from this page; then the purge removes it for good." }
        form #delete-form method="post" action=(format!("/admin/users/{id}/delete")) {
            (csrf_field(&who))
            button #confirm-delete.danger type="submit" { "Delete" }
            " "
            a href=(format!("/admin/users/{id}")) { "Cancel" }
        }
    };
    render(StatusCode::OK, layout(&s, "Delete", Some(&who), Section::Users, body))
}

/// POST /admin/users/{id}/delete: a deletion the admin can undo within the retention
/// period.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Client(client): Client,
    UserId(id): UserId,
    form: ConsoleForm<perm::UsersWrite>,
) -> Response {
    let who = form.who.clone();
    match s.core.admin_soft_delete_user(&who.actor, id, &client).await {
        Ok(()) => see_other(&format!("/admin/users/{id}?done=delete")),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

/// POST /admin/users/{id}/sessions/{sid}/revoke
pub(crate) async fn revoke_session(
    State(s): State<AppState>,
    Client(client): Client,
    UserId(id): UserId,
    Path((_, sid)): Path<(String, String)>,
    form: ConsoleForm<perm::SessionsWrite>,
) -> Response {
    let who = form.who.clone();
    let Ok(sid) = Uuid::try_parse(&sid) else { return error_page(&s, Some(&who), &Error::SessionNotFound) };
    match s.core.admin_revoke_session(&who.actor, id, sid, &client).await {
        Ok(()) => see_other(&format!("/admin/users/{id}?done=session")),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

/// POST /admin/users/{id}/passkeys/{pid}/remove
pub(crate) async fn remove_passkey(
    State(s): State<AppState>,
    Client(client): Client,
    UserId(id): UserId,
    Path((_, pid)): Path<(String, String)>,
    form: ConsoleForm<perm::UsersWrite>,
) -> Response {
    let who = form.who.clone();
    let Ok(pid) = Uuid::try_parse(&pid) else { return error_page(&s, Some(&who), &Error::PasskeyNotFound) };
    match s.core.admin_remove_passkey(&who.actor, id, pid, &client).await {
        Ok(()) => see_other(&format!("/admin/users/{id}?done=passkey")),
        Err(e) => error_page(&s, Some(&who), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote_to_the_microsecond() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T21:50:06.123456Z").unwrap().with_timezone(&Utc);
        let id = Uuid::now_v7();
        let mut u = user::Model {
            id,
            email: "a@example.com".to_owned(),
            password_hash: String::new(),
            full_name: None,
            phone: None,
            email_verified_at: None,
            phone_verified_at: None,
            is_active: true,
            role: "user".to_owned(),
            token_version: 0,
            last_login_at: None,
            created_at: at,
            updated_at: at,
            deleted_at: None,
            new_email: None,
            mfa_enabled: false,
            email_index: None,
            new_email_index: None,
            is_anonymous: false,
            has_identities: false,
            phone_index: None,
        };
        assert_eq!(parse_cursor(&cursor_of(&u)), Some((at, id)));
        u.created_at = DateTime::parse_from_rfc3339("2026-12-02T21:50:06Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_cursor(&cursor_of(&u)), Some((u.created_at, id)));
        for bad in ["", "_", "2026-12-02_x", "nonsense", &format!("2026-13-02T00:00:00Z_{id}")] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn flash_messages_come_from_a_fixed_list() {
        assert!(flash(Some("deactivate"), None).is_some());
        assert_eq!(flash(Some("bulk"), Some(3)).as_deref(), Some("Done: 3 users changed."));
        assert_eq!(flash(Some("<script>"), None), None);
        assert_eq!(flash(None, None), None);
    }
}
