//! The dashboard: the analytics of `GET /v1/admin/analytics` as numbers and as bar
//! charts drawn on the server (SVG, one bar per day of the window), the active sessions
//! and the mail outbox.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use tessera_core::domain::Error;

use super::extract::Console;
use super::page::{error_page, layout, render, Section};
use crate::permission::perm;
use crate::state::AppState;

/// The windows the dashboard offers, in days.
const WINDOWS: [u32; 4] = [7, 30, 90, 365];

#[derive(Deserialize)]
pub(crate) struct DashboardQuery {
    days: Option<String>,
}

/// The chart's drawing box (the SVG scales to its container).
const CHART_W: f64 = 730.0;
const CHART_H: f64 = 160.0;

/// A bar chart of one count per day: one `rect.bar` per day, oldest first, each with a
/// `<title>` naming its day and count (a tooltip, and what a screen reader reads).
fn bar_chart(id: &str, caption: &str, series: &[(String, u64)]) -> Markup {
    let max = series.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let total: u64 = series.iter().map(|(_, n)| *n).sum();
    let slot = CHART_W / series.len().max(1) as f64;
    let gap = if slot > 4.0 { slot * 0.2 } else { 0.0 };
    let (first, last) = match (series.first(), series.last()) {
        (Some(f), Some(l)) => (f.0.as_str(), l.0.as_str()),
        _ => ("", ""),
    };
    let label = format!("{caption} per day from {first} to {last}: {total} in all, at most {max} in a day");
    html! {
        figure.chart {
            figcaption { (caption) " per day " span.muted { "(" (total) " in all, peak " (max) ")" } }
            svg id=(id) class="chart" viewBox=(format!("0 0 {CHART_W} {CHART_H}")) preserveAspectRatio="none"
                role="img" aria-label=(label) data-days=(series.len()) {
                @for (i, (day, n)) in series.iter().enumerate() {
                    @let h = if max == 0 { 0.0 } else { (*n as f64 / max as f64) * (CHART_H - 2.0) };
                    rect.bar x=(format!("{:.2}", i as f64 * slot + gap / 2.0)) y=(format!("{:.2}", CHART_H - h))
                        width=(format!("{:.2}", (slot - gap).max(0.5))) height=(format!("{h:.2}")) {
                        title { (day) ": " (n) }
                    }
                }
                line.axis x1="0" y1=(CHART_H) x2=(CHART_W) y2=(CHART_H) {}
            }
            div.range { span { (first) } span { (last) } }
        }
    }
}

fn number(id: &str, label: &str, n: u64) -> Markup {
    html! { div.stat { dt { (label) } dd id=(id) { (n) } } }
}

/// GET /admin?days=7|30|90|365
pub(crate) async fn page(
    State(s): State<AppState>,
    Console(who, _): Console<perm::AnalyticsRead>,
    q: Result<Query<DashboardQuery>, QueryRejection>,
) -> Response {
    let raw = q.ok().and_then(|Query(q)| q.days).filter(|d| !d.is_empty());
    let days = match raw.as_deref().map(str::parse::<u32>) {
        None => 30,
        Some(Ok(d)) if WINDOWS.contains(&d) => d,
        Some(_) => {
            let e = Error::field("days", "out_of_range", "The window is 7, 30, 90 or 365 days.");
            return error_page(&s, Some(&who), &e);
        }
    };
    let (analytics, outbox) = tokio::join!(s.core.analytics(days), s.core.outbox_stats());
    let (a, outbox) = match (analytics, outbox) {
        (Ok(a), Ok(o)) => (a, o),
        (Err(e), _) | (_, Err(e)) => return error_page(&s, Some(&who), &e),
    };
    let body = html! {
        h1 { "Dashboard" }
        nav.windows aria-label="Window" {
            span.muted { "Window:" }
            @for w in WINDOWS {
                a.window href=(format!("/admin?days={w}")) aria-current=[(w == days).then_some("page")] { (w) " days" }
            }
        }
        section aria-labelledby="users-heading" {
            h2 #users-heading { "Users" }
            dl.stats #totals {
                (number("total-users", "Users", a.total_users))
                (number("active-users", "Active", a.active_users))
                (number("verified-users", "Verified", a.verified_users))
                (number("admins", "Admins", a.admins))
                (number("deleted-users", "Deleted, restorable", a.deleted_users))
            }
        }
        section aria-labelledby="activity-heading" {
            h2 #activity-heading { "Activity" }
            dl.stats {
                (number("active-sessions", "Active sessions", a.active_sessions))
                (number("failed-24h", "Failed sign-ins, 24 h", a.failed_logins_24h))
                (number("outbox-pending", "Mail waiting", outbox.pending))
                (number("outbox-failed", "Mail failed", outbox.failed))
                @if let Some((waiting, failed)) = outbox.webhooks {
                    (number("webhooks-waiting", "Webhooks waiting", waiting))
                    (number("webhooks-failed", "Webhooks failed", failed))
                }
            }
        }
        section.charts aria-labelledby="charts-heading" {
            h2 #charts-heading { "Last " (days) " days" }
            (bar_chart("chart-signups", "Sign-ups", &a.signups_per_day))
            (bar_chart("chart-signins", "Sign-ins", &a.logins_per_day))
            (bar_chart("chart-failures", "Failed sign-ins", &a.failed_logins_per_day))
        }
    };
    render(StatusCode::OK, layout(&s, "Dashboard", Some(&who), Section::Dashboard, body))
}
