//! The durable outbox (SPEC §5.3). A request writes its message to `mail_outbox` in the
//! transaction of the change that caused it and never waits for SMTP; a background
//! sender on every node claims due rows with a lease, delivers them with exponential
//! backoff behind the transport's circuit breaker, and wipes their bodies once sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use tessera_domain::Error;
use tessera_store::entity::mail_outbox;
use tessera_store::query::outbox::{self, NewMail};
use tessera_store::Db;

use crate::app::Core;
use crate::caller::{now, ClientInfo};
use crate::mail::transport::{OutgoingMail, SEND_TIMEOUT};

/// A request resolved into mail in the background (see [`Core::queue_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailRequest {
    PasswordReset,
    VerificationResend,
}

impl MailRequest {
    fn kind(self) -> &'static str {
        match self {
            MailRequest::PasswordReset => "request.password_reset",
            MailRequest::VerificationResend => "request.verify_email_resend",
        }
    }

    fn of_kind(kind: &str) -> Option<MailRequest> {
        [MailRequest::PasswordReset, MailRequest::VerificationResend].into_iter().find(|r| r.kind() == kind)
    }
}

/// Who asked for a request queued by [`Core::queue_request`].
pub(crate) fn requester(row: &mail_outbox::Model) -> ClientInfo {
    let v: serde_json::Value = serde_json::from_str(&row.text_body).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    ClientInfo {
        ip: field("ip"),
        user_agent: field("user_agent"),
        request_id: field("request_id"),
        ..Default::default()
    }
}

/// Where the link of a request queued by [`Core::queue_request`] leads back to, if it said.
pub(crate) fn link_back(row: &mail_outbox::Model) -> Option<crate::mail::link_back::LinkBack> {
    let v: serde_json::Value = serde_json::from_str(&row.text_body).ok()?;
    serde_json::from_value(v.get("link_back")?.clone()).ok()
}

/// How long a claim on an outbox row lasts: a sender that dies holds its messages this
/// long at most (see [`LEASE_RENEW_EVERY`]).
const LEASE: i64 = 15;
/// How often a sender renews the lease of the message it is sending.
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);
const MAX_ATTEMPTS: i32 = 30;

/// The wait before the next attempt after `attempts` failed ones: 1 s, doubling, at most
/// `max` (the mail outbox's and the webhook sender's).
pub(crate) fn backoff(attempts: i32, max: Duration) -> ChronoDuration {
    let secs = 1u64 << attempts.clamp(0, 20);
    ChronoDuration::from_std(Duration::from_secs(secs).min(max.max(Duration::from_secs(1))))
        .unwrap_or(ChronoDuration::MAX)
}

impl Core {
    /// Queues a mail through `conn`: the caller's transaction, so the message exists if
    /// and only if the change that caused it does.
    pub async fn queue_mail(&self, conn: &impl Db, mail: OutgoingMail) -> Result<(), Error> {
        // A user without an address (anonymous, or a provider's without one) gets no mail.
        if tessera_domain::Email::is_placeholder(&mail.to) {
            return Ok(());
        }
        // The send-email hook takes the message in SMTP's place: queued as its payload.
        if self.hook_enabled(crate::hooks::HookName::SendEmail) {
            let payload = self.send_email_payload(conn, &mail).await?;
            let mail = NewMail {
                kind: crate::hooks::send::SEND_EMAIL_KIND.to_owned(),
                to: mail.to,
                subject: mail.template.name().to_owned(),
                text_body: payload.to_string(),
                html_body: String::new(),
                at: now(),
            };
            return outbox::queue(conn, mail).await;
        }
        let vars: Vec<(&str, &str)> = mail.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (subject, text, html) = self.mailer.templates.render(mail.template, &vars);
        let mail = NewMail {
            kind: mail.template.name().to_owned(),
            to: mail.to,
            subject,
            text_body: text,
            html_body: html,
            at: now(),
        };
        outbox::queue(conn, mail).await
    }

    /// Queues a request to resolve in the background (through `conn`, in one statement
    /// when it is the writer): the same write whoever asked, so that the answer takes the
    /// same time whether `email` belongs to an account or not.
    pub(crate) async fn queue_request(
        &self,
        conn: &impl Db,
        request: MailRequest,
        email: &str,
        back: Option<&crate::mail::link_back::LinkBack>,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let now = now();
        // Who asked, for the audit row the request becomes, and where its link leads.
        let mut requester = serde_json::json!({
            "ip": client.ip, "user_agent": client.user_agent, "request_id": client.request_id,
        });
        if let Some(back) = back {
            requester["link_back"] = serde_json::json!(back);
        }
        let mail = NewMail {
            kind: request.kind().to_owned(),
            to: email.to_owned(),
            subject: String::new(),
            text_body: requester.to_string(),
            html_body: String::new(),
            at: now,
        };
        outbox::queue(conn, mail).await
    }

    /// Resolves the requests that are due into mail (or into nothing, for an address
    /// that has no account); returns how many.
    async fn resolve_due_requests(&self) -> Result<usize, Error> {
        let now = now();
        let due = outbox::due(self.store.reader(), now, 64, true).await?;
        let mut resolved = 0;
        for row in due {
            if !outbox::claim(self.store.writer(), row.id, now, now + ChronoDuration::seconds(LEASE)).await? {
                continue;
            }
            let result = match MailRequest::of_kind(&row.kind) {
                Some(MailRequest::PasswordReset) => self.resolve_password_reset(&row).await,
                Some(MailRequest::VerificationResend) => self.resolve_verification_resend(&row).await,
                None => Err(Error::Internal(format!("unknown request kind {}", row.kind))),
            };
            match result {
                Ok(()) => resolved += 1,
                Err(e) => self.record_failure(&row, &e.cause()).await?,
            }
        }
        if resolved > 0 {
            self.mailer.wake.notify_one();
        }
        Ok(resolved)
    }

    async fn record_failure(&self, row: &mail_outbox::Model, error: &str) -> Result<(), Error> {
        let attempts = row.attempts + 1;
        let outcome = if attempts >= MAX_ATTEMPTS { "given_up" } else { "failed" };
        if !row.kind.starts_with(tessera_store::query::outbox::REQUEST_PREFIX) {
            metrics::counter!("tessera_mail_deliveries_total", "outcome" => outcome).increment(1);
        }
        tracing::warn!(kind = %row.kind, attempts, error = %error, "outbox row failed; will retry");
        let done = crate::caller::now();
        let next = done + backoff(attempts - 1, self.mailer.max_delay);
        let failed_at = (attempts >= MAX_ATTEMPTS).then_some(done);
        let error = crate::audit::truncate(error, 1000);
        outbox::record_failure(self.store.writer(), row.id, attempts, next, failed_at, error).await
    }

    /// Resolves due requests, then delivers the messages that are due; returns how many
    /// messages were sent. Mail goes by SMTP (behind its circuit breaker), or to the
    /// send-email hook; SMS to their provider.
    pub async fn deliver_due_mail(&self) -> Result<usize, Error> {
        self.resolve_due_requests().await?;
        let now = now();
        let due = outbox::due(self.store.reader(), now, 16, false).await?;
        let mut sent = 0;
        for row in due {
            let by_smtp = row.kind != crate::hooks::send::SEND_EMAIL_KIND
                && !row.kind.starts_with(crate::hooks::send::SMS_PREFIX);
            if by_smtp && self.mailer.breaker_open() {
                continue;
            }
            // Claim it with a lease; another node that got here first wins.
            if !outbox::claim(self.store.writer(), row.id, now, now + ChronoDuration::seconds(LEASE)).await? {
                continue;
            }
            let result = if row.kind == crate::hooks::send::SEND_EMAIL_KIND {
                self.deliver_by_hook(&row, crate::hooks::HookName::SendEmail).await
            } else if !by_smtp {
                self.deliver_sms(&row).await
            } else {
                let result = self.deliver_renewing_the_lease(&row).await;
                self.mailer.record_result(result.is_ok());
                result
            };
            match &result {
                Ok(()) => {
                    sent += 1;
                    metrics::counter!("tessera_mail_deliveries_total", "outcome" => "sent").increment(1);
                    // The bodies may hold a link or code: gone once delivered.
                    outbox::record_sent(self.store.writer(), row.id, row.attempts + 1, crate::caller::now()).await?;
                }
                Err(e) => self.record_failure(&row, e).await?,
            }
        }
        Ok(sent)
    }

    /// Delivers one claimed message, renewing its lease every [`LEASE_RENEW_EVERY`] while
    /// the SMTP server takes its time, so that a live sender keeps it and a dead one lets
    /// it go [`LEASE`] seconds after its last renewal.
    async fn deliver_renewing_the_lease(&self, row: &mail_outbox::Model) -> Result<(), String> {
        // lettre bounds the connect, not the conversation: a server that stops answering
        // would hold the sender (and every message behind this one) for ever.
        let delivery = tokio::time::timeout(SEND_TIMEOUT, self.mailer.deliver(row));
        tokio::pin!(delivery);
        loop {
            tokio::select! {
                result = &mut delivery => {
                    return result.unwrap_or_else(|_| Err(format!("SMTP did not answer within {} s", SEND_TIMEOUT.as_secs())));
                }
                () = tokio::time::sleep(LEASE_RENEW_EVERY) => {
                    let until = now() + ChronoDuration::seconds(LEASE);
                    if let Err(e) = outbox::renew(self.store.writer(), row.id, until).await {
                        tracing::warn!(error = %e.cause(), "could not renew an outbox lease");
                    }
                }
            }
        }
    }

    /// The background sender: delivers due mail whenever woken, and at least twice a
    /// second, until `stop` turns true; a delivery under way is finished first, so a
    /// clean shutdown leaves no message leased.
    pub async fn run_mail_sender(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            if let Err(e) = self.deliver_due_mail().await {
                tracing::warn!(error = %e.cause(), "mail outbox pass failed");
            }
            tokio::select! {
                _ = self.mailer.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::transport::Template;

    #[test]
    fn requests_are_kinds_the_outbox_tells_apart() {
        for r in [MailRequest::PasswordReset, MailRequest::VerificationResend] {
            assert!(r.kind().starts_with(tessera_store::query::outbox::REQUEST_PREFIX));
            assert_eq!(MailRequest::of_kind(r.kind()), Some(r));
        }
        for t in Template::ALL {
            assert!(!t.name().starts_with(tessera_store::query::outbox::REQUEST_PREFIX));
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(0, max).num_seconds(), 1);
        assert_eq!(backoff(3, max).num_seconds(), 8);
        assert_eq!(backoff(10, max).num_seconds(), 60);
    }
}
