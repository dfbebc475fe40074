//! The audit log: the API's filters (user, event or prefix, time range), keyset pages,
//! and each event linked to its user and its acting admin.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use tessera_core::account::admin::AuditQuery;
use tessera_core::entity::audit_log;
use uuid::Uuid;

use tessera_core::domain::Error;

use super::extract::Console;
use super::page::{error_page, layout, query_string, render, when, Section};
use crate::permission::perm;
use crate::state::AppState;

/// Events per page.
const PAGE: u64 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct AuditPageQuery {
    user_id: Option<String>,
    event: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

/// A time as the form sends it: RFC 3339, or a `datetime-local` value read as UTC.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M").ok().map(|t| t.and_utc()))
        .or_else(|| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc()))
}

/// The emails of the users and actors of some events, by id (one read).
pub(crate) async fn names_of(s: &AppState, events: &[audit_log::Model]) -> Result<HashMap<Uuid, String>, Error> {
    let mut ids: Vec<Uuid> = events.iter().flat_map(|e| [e.user_id, e.actor_id]).flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    let users = s.core.admin_users_by_ids(&ids).await?;
    Ok(users.into_iter().map(|u| (u.id, u.email)).collect())
}

fn person(id: Option<Uuid>, names: &HashMap<Uuid, String>) -> Markup {
    html! {
        @match id {
            Some(id) => a.user-link href=(format!("/admin/users/{id}")) {
                @match names.get(&id) { Some(email) => (email), None => code { (id) } }
            },
            None => span.muted { "—" },
        }
    }
}

/// A table of events: time, event, actor, user, address, detail.
pub(crate) fn table(id: &str, events: &[audit_log::Model], names: &HashMap<Uuid, String>) -> Markup {
    html! {
        div.table-wrap {
            table id=(id) .audit {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "By" }
                    th scope="col" { "User" } th scope="col" { "Address" } th scope="col" { "Detail" }
                } }
                tbody {
                    @for e in events {
                        tr.event {
                            td { time datetime=(e.created_at.to_rfc3339()) { (when(&e.created_at)) } }
                            td.event-name { code { (e.event) } }
                            td.actor {
                                @if e.actor_id.is_none() && e.detail.get("api_key_id").is_some() { "API key" }
                                @else { (person(e.actor_id, names)) }
                            }
                            td.subject { (person(e.user_id, names)) }
                            td { (e.ip.as_deref().unwrap_or("")) }
                            td.detail { @if e.detail.as_object().is_some_and(|o| !o.is_empty()) { code { (e.detail.to_string()) } } }
                        }
                    }
                    @if events.is_empty() { tr { td colspan="6" { "No event." } } }
                }
            }
        }
    }
}

/// GET /admin/audit
pub(crate) async fn page(
    State(s): State<AppState>,
    Console(who, _): Console<perm::AuditRead>,
    q: Result<Query<AuditPageQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error_page(&s, Some(&who), &Error::BadRequest("The filter could not be read.".to_owned()));
    };
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let (user_raw, event, from_raw, to_raw) = (text(&q.user_id), text(&q.event), text(&q.from), text(&q.to));
    let mut errors = Vec::new();
    let user_id = if user_raw.is_empty() {
        None
    } else {
        match Uuid::try_parse(&user_raw) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(tessera_core::domain::FieldError::new("user_id", "invalid", "A user id."));
                None
            }
        }
    };
    let mut time = |field: &str, raw: &str| {
        if raw.is_empty() {
            return None;
        }
        let t = parse_time(raw);
        if t.is_none() {
            errors.push(tessera_core::domain::FieldError::new(field, "invalid", "A date and time (UTC)."));
        }
        t
    };
    let (from, to) = (time("from", &from_raw), time("to", &to_raw));
    if !errors.is_empty() {
        return error_page(&s, Some(&who), &Error::Validation(errors));
    }
    let query =
        AuditQuery { user_id, event: Some(event.clone()), from, to, limit: Some(PAGE), cursor: q.cursor.clone() };
    let (events, next) = match s.core.audit_log(query).await {
        Ok(r) => r,
        Err(e) => return error_page(&s, Some(&who), &e),
    };
    let names = match names_of(&s, &events).await {
        Ok(n) => n,
        Err(e) => return error_page(&s, Some(&who), &e),
    };
    let link = |cursor: Option<&str>| {
        let pairs = [
            ("user_id", user_raw.as_str()),
            ("event", &event),
            ("from", &from_raw),
            ("to", &to_raw),
            ("cursor", cursor.unwrap_or_default()),
        ];
        format!("/admin/audit?{}", query_string(&pairs))
    };
    let body = html! {
        h1 { "Audit log" }
        form #audit-filter.filters method="get" action="/admin/audit" {
            div { label for="user_id" { "User id" } input #user_id type="text" name="user_id" value=(user_raw) size="36"; }
            div { label for="event" { "Event, or prefix such as admin.*" } input #event type="text" name="event" value=(event) maxlength="64"; }
            div { label for="from" { "From (UTC)" } input #from type="datetime-local" name="from" value=(from_raw); }
            div { label for="to" { "To (UTC)" } input #to type="datetime-local" name="to" value=(to_raw); }
            button #audit-submit type="submit" { "Filter" }
        }
        (table("audit", &events, &names))
        nav.pages aria-label="Pages" {
            @if q.cursor.as_deref().is_some_and(|c| !c.is_empty()) { a #first-page href=(link(None)) { "« Newest" } }
            @if let Some(c) = &next { a #next-page href=(link(Some(c))) { "Older »" } }
        }
    };
    render(StatusCode::OK, layout(&s, "Audit log", Some(&who), Section::Audit, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_datetime_local_value_in_utc() {
        let t = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(t("2026-12-02T10:30").as_deref(), Some("2026-12-02T10:30:00+00:00"));
        assert_eq!(t("2026-12-02T10:30:15").as_deref(), Some("2026-12-02T10:30:15+00:00"));
        assert_eq!(t("2026-12-02T10:30:00+02:00").as_deref(), Some("2026-12-02T08:30:00+00:00"));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("2026-12-02"), None);
    }
}
