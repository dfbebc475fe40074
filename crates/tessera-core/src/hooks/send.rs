//! The send-email and send-SMS hooks (SPEC §5.13): with one enabled, the message is
//! queued in the durable outbox as the hook's payload instead of a rendered mail, and the
//! outbox's sender posts it to the hook in place of SMTP (or the SMS provider), retrying
//! with the outbox's backoff until the receiver takes it.

use serde_json::{json, Value};
use tessera_domain::Error;
use tessera_store::entity::{mail_outbox, user};
use tessera_store::query::users;
use tessera_store::Db;

use crate::app::Core;
use crate::caller::ClientInfo;
use crate::hooks::HookName;
use crate::mail::transport::{OutgoingMail, Template};

/// The outbox kind of a message for the send-email hook.
pub const SEND_EMAIL_KIND: &str = "hook.send_email";
/// The outbox kind prefix of SMS.
pub const SMS_PREFIX: &str = "sms.";

/// GoTrue's `email_action_type` of a template.
fn action_type(t: Template) -> &'static str {
    match t {
        Template::VerifyEmail | Template::VerifyEmailResend => "signup",
        Template::EmailChange | Template::EmailChangeCurrent => "email_change",
        Template::EmailChangeNotice => "email_changed_notification",
        Template::PasswordReset => "recovery",
        Template::PasswordChanged => "password_changed_notification",
        Template::MagicLink => "magiclink",
        Template::Invite => "invite",
        Template::Reauthentication => "reauthentication",
    }
}

/// The token a link carries (`?token=` or `?token_hash=`), and where it sends the browser
/// afterwards (`redirect_to`).
fn link_parts(link: &str) -> (String, String) {
    let Ok(url) = url::Url::parse(link) else { return (String::new(), String::new()) };
    let mut token = String::new();
    let mut redirect = String::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "token" | "token_hash" => token = v.into_owned(),
            "redirect_to" => redirect = v.into_owned(),
            _ => {}
        }
    }
    (token, redirect)
}

/// GoTrue's user object, as the hooks get it.
pub(crate) fn hook_user(u: &user::Model) -> Value {
    let placeholder = tessera_domain::Email::is_placeholder(&u.email);
    json!({
        "id": u.id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": if placeholder { "" } else { u.email.as_str() },
        "phone": u.phone.as_deref().map(|p| p.trim_start_matches('+')).unwrap_or_default(),
        "email_confirmed_at": u.email_verified_at,
        "phone_confirmed_at": u.phone_verified_at,
        "last_sign_in_at": u.last_login_at,
        "is_anonymous": u.is_anonymous,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

impl Core {
    /// The payload of the send-email hook for `mail` (its user read through `conn`, the
    /// transaction that queues it): GoTrue's `{user, email_data}`, with the whole `link`
    /// and the `email_to` beside GoTrue's fields.
    pub(crate) async fn send_email_payload(&self, conn: &impl Db, mail: &OutgoingMail) -> Result<Value, Error> {
        let var = |k: &str| mail.vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        // The mail to the new address of an email change is the current user's, found by
        // the current address (GoTrue's user, with `new_email`).
        let owner = if mail.template == Template::EmailChange { var("email") } else { mail.to.clone() };
        let user = users::by_email(conn, &owner).await?;
        let link = var("link");
        let (token_hash, redirect_to) = link_parts(&link);
        let mut user_json = user.as_ref().map(hook_user).unwrap_or_else(|| json!({ "email": mail.to }));
        if mail.template == Template::EmailChange {
            // The mail to the new address: GoTrue's user carries it as `new_email`.
            user_json["new_email"] = json!(var("new_email"));
        }
        Ok(json!({
            "user": user_json,
            "email_data": {
                "token": var("code"),
                "token_hash": token_hash,
                "redirect_to": if redirect_to.is_empty() { self.settings.site_url.clone() } else { redirect_to },
                "email_action_type": action_type(mail.template),
                "site_url": self.settings.site_url,
                "token_new": "",
                "token_hash_new": "",
                "link": link,
                "email_to": mail.to,
                "template": mail.template.name(),
            },
        }))
    }

    /// Posts a queued message to its hook: the send-email hook, or the send-SMS hook.
    /// Its `webhook-id` is the outbox row's: the same on every retry, for the receiver to
    /// deduplicate.
    pub(crate) async fn deliver_by_hook(&self, row: &mail_outbox::Model, name: HookName) -> Result<(), String> {
        let payload: Value = serde_json::from_str(&row.text_body).map_err(|e| format!("queued payload: {e}"))?;
        let id = crate::hooks::dispatch::message_id_of(row.id);
        self.call_hook_as(name, &id, payload, &ClientInfo::default()).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_give_their_token_and_redirect() {
        let (t, r) = link_parts("https://a.example/verify?token=abc&type=signup&redirect_to=https%3A%2F%2Fapp%2Fx");
        assert_eq!((t.as_str(), r.as_str()), ("abc", "https://app/x"));
        assert_eq!(link_parts("not a url"), (String::new(), String::new()));
    }
}
