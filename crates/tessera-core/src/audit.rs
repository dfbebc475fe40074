//! The audit log (SPEC §5.9): one row per security event, written with the change it
//! records. Details never hold secrets.

use sea_orm::{ConnectionTrait, Set};
use serde_json::Value;
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::audit_log;
use crate::ClientInfo;

/// One event to record.
pub struct AuditEvent {
    pub event: &'static str,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub detail: Value,
}

impl AuditEvent {
    /// An event about a user, done by that user.
    pub fn by_user(event: &'static str, user_id: Uuid) -> Self {
        Self { event, user_id: Some(user_id), actor_id: Some(user_id), detail: Value::Object(Default::default()) }
    }

    /// Adds a JSON detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Appends an event through `conn` (a transaction, when it records a change).
pub async fn record(conn: &impl ConnectionTrait, client: &ClientInfo, ev: AuditEvent) -> Result<(), Error> {
    tessera_store::query::audit::insert(
        conn,
        audit_log::ActiveModel {
            id: Set(Uuid::now_v7()),
            created_at: Set(crate::now()),
            event: Set(ev.event.to_owned()),
            user_id: Set(ev.user_id),
            actor_id: Set(ev.actor_id),
            ip: Set(client.ip.clone()),
            user_agent: Set(client.user_agent.as_ref().map(|ua| truncate(ua, 512))),
            request_id: Set(client.request_id.clone()),
            detail: Set(ev.detail),
        },
    )
    .await
    .map_err(tessera_store::db_error)
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
