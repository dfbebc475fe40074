//! Which audit events also become webhook events (SPEC §5.13), and for which receivers:
//! set by the core from its settings, read by [`crate::query::audit::insert`], which
//! queues one `webhook_outbox` row per receiver in the transaction of the audit row.

/// Audit events to webhook events, and the receivers' URLs.
#[derive(Debug, Default, Clone)]
pub struct EventTap {
    /// `(audit event, webhook event)`.
    map: Vec<(String, String)>,
    urls: Vec<String>,
}

/// No webhooks.
pub static NO_EVENTS: EventTap = EventTap { map: Vec::new(), urls: Vec::new() };

impl EventTap {
    pub fn new(map: Vec<(String, String)>, urls: Vec<String>) -> EventTap {
        EventTap { map, urls }
    }

    /// The webhook event an audit event becomes, when one does and there are receivers.
    pub fn webhook_event(&self, audit_event: &str) -> Option<&str> {
        if self.urls.is_empty() {
            return None;
        }
        self.map.iter().find(|(a, _)| a == audit_event).map(|(_, w)| w.as_str())
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}
