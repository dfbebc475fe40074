//! `/v1/admin/analytics` and `/v1/admin/audit`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::account::admin::AuditQuery;
use tessera_core::entity::audit_log;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::permission::{perm, RequirePermission};
use crate::state::AppState;

/// The analytics query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// UTC days to report, today included: 1 to 366 (default 30).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<u32>,
}

/// A count on one UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub count: u64,
}

/// The dashboard. Totals count live (not soft-deleted) users.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsOut {
    pub total_users: u64,
    pub active_users: u64,
    pub verified_users: u64,
    pub admins: u64,
    /// Soft-deleted users awaiting purge.
    pub deleted_users: u64,
    pub active_sessions: u64,
    pub failed_logins_24h: u64,
    /// One entry per day, oldest first.
    pub signups_per_day: Vec<DayCount>,
    pub logins_per_day: Vec<DayCount>,
}

fn days(list: Vec<(String, u64)>) -> Vec<DayCount> {
    list.into_iter().map(|(date, count)| DayCount { date, count }).collect()
}

/// Totals and per-day sign-ups and sign-ins.
#[utoipa::path(get, path = "/v1/admin/analytics", tag = "admin", params(AnalyticsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = AnalyticsOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs analytics:read"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn analytics(
    State(s): State<AppState>,
    _: RequirePermission<perm::AnalyticsRead>,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Json<AnalyticsOut>, ApiError> {
    let a = s.core.analytics(q.days.unwrap_or(30)).await?;
    Ok(Json(AnalyticsOut {
        total_users: a.total_users,
        active_users: a.active_users,
        verified_users: a.verified_users,
        admins: a.admins,
        deleted_users: a.deleted_users,
        active_sessions: a.active_sessions,
        failed_logins_24h: a.failed_logins_24h,
        signups_per_day: days(a.signups_per_day),
        logins_per_day: days(a.logins_per_day),
    }))
}

/// The audit-log query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQueryIn {
    /// Events about this user.
    pub user_id: Option<Uuid>,
    /// An event name (`login.failure`), or a prefix (`admin.*`).
    pub event: Option<String>,
    /// From this moment (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Until this moment (RFC 3339), exclusive.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One security event (SPEC §5.9).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventOut {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub event: String,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<audit_log::Model> for AuditEventOut {
    fn from(r: audit_log::Model) -> Self {
        Self {
            id: r.id,
            created_at: r.created_at,
            event: r.event,
            user_id: r.user_id,
            actor_id: r.actor_id,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            detail: r.detail,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventOut>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The audit log, newest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", params(AuditQueryIn),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Needs audit:read"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn audit(
    State(s): State<AppState>,
    _: RequirePermission<perm::AuditRead>,
    ApiQuery(q): ApiQuery<AuditQueryIn>,
) -> Result<Json<AuditPage>, ApiError> {
    let query =
        AuditQuery { user_id: q.user_id, event: q.event, from: q.from, to: q.to, limit: q.limit, cursor: q.cursor };
    let (rows, next_cursor) = s.core.audit_log(query).await?;
    Ok(Json(AuditPage { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}
