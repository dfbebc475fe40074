//! Which audit events (SPEC §5.9) each webhook event (SPEC §5.13) is made of.

use tessera_store::events::EventTap;

use crate::settings::hooks::WebhookSettings;

/// `(webhook event, audit events)`.
pub const EVENTS: &[(&str, &[&str])] = &[
    ("user.created", &["user.register", "user.create", "admin.user.create", "admin.user.invite"]),
    ("user.updated", &["user.update", "admin.user.update", "user.email_change_confirmed", "admin.user.restore"]),
    ("user.deleted", &["user.delete", "admin.user.delete", "admin.user.soft_delete", "user.purge"]),
    ("session.created", &["login.success"]),
    (
        "session.revoked",
        &[
            "logout",
            "logout.all",
            "logout.others",
            "logout.hook",
            "admin.session.revoke",
            "admin.user.logout",
            "token.reuse_detected",
        ],
    ),
    ("password.changed", &["password.change", "password.reset"]),
    ("email.verified", &["email.verify"]),
    ("phone.verified", &["phone.verify"]),
    ("mfa.enabled", &["mfa.activate"]),
    ("mfa.disabled", &["mfa.remove", "admin.user.mfa_reset", "admin.user.mfa_factor_removed"]),
    ("identity.linked", &["identity.link"]),
    ("identity.unlinked", &["identity.unlink"]),
];

/// What the store copies into the webhook outbox for `webhooks`.
pub fn tap(webhooks: Option<&WebhookSettings>) -> EventTap {
    let Some(w) = webhooks else { return EventTap::default() };
    let mut map = Vec::new();
    for (event, audits) in EVENTS {
        if w.events.contains(event) {
            map.extend(audits.iter().map(|a| ((*a).to_owned(), (*event).to_owned())));
        }
    }
    EventTap::new(map, w.urls.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webhook_event_is_made_of_some_audit_event() {
        for e in crate::settings::hooks::WEBHOOK_EVENTS {
            assert!(EVENTS.iter().any(|(w, a)| w == e && !a.is_empty()), "{e}");
        }
    }
}
