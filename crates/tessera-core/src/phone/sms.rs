//! The SMS port (SPEC §5.14): messages wait in the durable outbox (`sms.…` rows) and the
//! outbox's sender hands each to the configured provider: Twilio, MessageBird and Vonage
//! through their REST APIs, the send-SMS hook, or the log in development.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tessera_domain::{Error, Phone};
use tessera_store::entity::{mail_outbox, user};
use tessera_store::query::outbox::{self, NewMail};
use tessera_store::Db;

use crate::app::Core;
use crate::caller::now;
use crate::hooks::send::{hook_user, SMS_PREFIX};
use crate::hooks::HookName;
use crate::settings::sms::SmsProvider;

/// What an SMS is for: GoTrue's `sms_type` of the send-SMS hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsKind {
    /// A sign-up or sign-in code.
    Otp,
    /// A code confirming a new number.
    PhoneChange,
    /// A phone factor's challenge code.
    Mfa,
}

impl SmsKind {
    fn name(self) -> &'static str {
        match self {
            SmsKind::Otp => "otp",
            SmsKind::PhoneChange => "phone_change",
            SmsKind::Mfa => "mfa",
        }
    }
}

/// The text of an SMS: `SMS_TEMPLATE` with the code in place of `{{ .Code }}`.
pub(crate) fn render(template: &str, code: &str) -> String {
    template.replace("{{ .Code }}", code).replace("{{.Code}}", code)
}

impl Core {
    /// Queues an SMS through `conn` (the transaction of the code it carries).
    pub(crate) async fn queue_sms(
        &self,
        conn: &impl Db,
        user: &user::Model,
        phone: &Phone,
        code: &str,
        kind: SmsKind,
    ) -> Result<(), Error> {
        let body = json!({
            "message": render(&self.settings.sms_template, code),
            "otp": code,
            "phone": phone.as_str(),
            "sms_type": kind.name(),
            "user": hook_user(user),
        });
        let sms = NewMail {
            kind: format!("{SMS_PREFIX}{}", kind.name()),
            to: phone.as_str().to_owned(),
            subject: String::new(),
            text_body: body.to_string(),
            html_body: String::new(),
            at: now(),
        };
        outbox::queue(conn, sms).await?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Sends one queued SMS through the provider; `Err` with why (never the code).
    pub(crate) async fn deliver_sms(&self, row: &mail_outbox::Model) -> Result<(), String> {
        let body: Value = serde_json::from_str(&row.text_body).map_err(|e| format!("queued SMS: {e}"))?;
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (to, message) = (field("phone"), field("message"));
        let base = self.settings.sms.base_url.clone();
        let http = &self.hook_http;
        let result = match &self.settings.sms.provider {
            None => Err("no SMS_PROVIDER is configured".to_owned()),
            Some(SmsProvider::Log) => {
                tracing::info!(kind = %row.kind, "SMS sent (SMS_PROVIDER=log: not delivered)");
                if self.settings.is_development() {
                    // Development only, like MAIL_TRANSPORT=log's links.
                    tracing::info!(to = %to, text = %message, "development SMS");
                }
                Ok(())
            }
            Some(SmsProvider::Hook) => {
                let payload = json!({
                    "user": body.get("user").cloned().unwrap_or_else(|| json!({})),
                    "sms": { "otp": field("otp"), "phone": to.trim_start_matches('+'), "sms_type": field("sms_type") },
                });
                let client = crate::caller::ClientInfo::default();
                let id = crate::hooks::dispatch::message_id_of(row.id);
                self.call_hook_as(HookName::SendSms, &id, payload, &client).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Some(SmsProvider::Twilio { account_sid, auth_token, from }) => {
                let base = base.unwrap_or_else(|| "https://api.twilio.com".to_owned());
                let url = format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json");
                // A messaging service (MG…) picks the sender itself; otherwise `From`.
                let sender = if from.starts_with("MG") { "MessagingServiceSid" } else { "From" };
                let form = [("To", to.as_str()), (sender, from.as_str()), ("Body", message.as_str())];
                let request = http.post(url).basic_auth(account_sid, Some(auth_token.expose_secret())).form(&form);
                provider_answer("Twilio", request.send().await, |v| {
                    v.get("error_code").filter(|c| !c.is_null()).map(|c| format!("error {c}"))
                })
                .await
            }
            Some(SmsProvider::MessageBird { access_key, originator }) => {
                let base = base.unwrap_or_else(|| "https://rest.messagebird.com".to_owned());
                let form = [
                    ("originator", originator.as_str()),
                    ("recipients", to.trim_start_matches('+')),
                    ("body", message.as_str()),
                ];
                let request = http
                    .post(format!("{base}/messages"))
                    .header("authorization", format!("AccessKey {}", access_key.expose_secret()))
                    .form(&form);
                provider_answer("MessageBird", request.send().await, |_| None).await
            }
            Some(SmsProvider::Vonage { api_key, api_secret, from }) => {
                let base = base.unwrap_or_else(|| "https://rest.nexmo.com".to_owned());
                let form = [
                    ("api_key", api_key.as_str()),
                    ("api_secret", api_secret.expose_secret()),
                    ("from", from.as_str()),
                    ("to", to.trim_start_matches('+')),
                    ("text", message.as_str()),
                ];
                let request = http.post(format!("{base}/sms/json")).form(&form);
                // Vonage answers 200 and tells each message's fate in its body.
                provider_answer("Vonage", request.send().await, |v| {
                    let first = v.get("messages")?.get(0)?;
                    let status = first.get("status")?.as_str()?;
                    (status != "0").then(|| {
                        let text = first.get("error-text").and_then(Value::as_str).unwrap_or("refused");
                        format!("status {status}: {text}")
                    })
                })
                .await
            }
        };
        let outcome = if result.is_ok() { "sent" } else { "failed" };
        let provider = self.settings.sms.provider.as_ref().map_or("none", SmsProvider::name);
        metrics::counter!("tessera_sms_deliveries_total", "provider" => provider, "outcome" => outcome).increment(1);
        result
    }
}

/// A provider's answer: `Ok` for a 2xx whose body `refused` finds nothing wrong in.
async fn provider_answer(
    name: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
    refused: impl Fn(&Value) -> Option<String>,
) -> Result<(), String> {
    let response =
        sent.map_err(|e| format!("{name} unreachable: {}", crate::hooks::dispatch::without_url(&e, "<provider>")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body.get("message").or_else(|| body.get("error-text")).and_then(Value::as_str).unwrap_or("");
        return Err(format!("{name} answered {}: {message}", status.as_u16()));
    }
    match refused(&body) {
        Some(why) => Err(format!("{name} refused the message: {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_takes_the_code() {
        assert_eq!(render("Your code is {{ .Code }}", "123456"), "Your code is 123456");
        assert_eq!(render("{{.Code}} is it", "1"), "1 is it");
    }
}
