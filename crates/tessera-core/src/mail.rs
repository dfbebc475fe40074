//! Mail (SPEC §5.3): templates, transports (SMTP, file, log), and a durable outbox.
//! A request writes its message to `mail_outbox` in the transaction of the change that
//! caused it and never waits for SMTP; a background sender on every node claims due
//! rows with a lease, delivers them with exponential backoff behind a circuit breaker,
//! and wipes their bodies once sent.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::Set;
use secrecy::ExposeSecret;
use tessera_domain::Error;
use tessera_store::entity::mail_outbox;
use tessera_store::query::outbox;
use tessera_store::Db;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::settings::{MailSettings, MailTransport, SmtpTls};
use crate::{now, ClientInfo, Core};

/// The mails tessera sends; each has a subject, a text and an HTML template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    VerifyEmail,
    VerifyEmailResend,
    EmailChange,
    EmailChangeCurrent,
    EmailChangeNotice,
    PasswordReset,
    PasswordChanged,
    MagicLink,
    Invite,
    Reauthentication,
}

impl Template {
    const ALL: [Template; 10] = [
        Template::VerifyEmail,
        Template::VerifyEmailResend,
        Template::EmailChange,
        Template::EmailChangeCurrent,
        Template::EmailChangeNotice,
        Template::PasswordReset,
        Template::PasswordChanged,
        Template::MagicLink,
        Template::Invite,
        Template::Reauthentication,
    ];

    /// The file stem in `MAIL_TEMPLATES_DIR` and the outbox's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Template::VerifyEmail => "verify_email",
            Template::VerifyEmailResend => "verify_email_resend",
            Template::EmailChange => "email_change",
            Template::EmailChangeCurrent => "email_change_current",
            Template::EmailChangeNotice => "email_change_notice",
            Template::PasswordReset => "password_reset",
            Template::PasswordChanged => "password_changed",
            Template::MagicLink => "magic_link",
            Template::Invite => "invite",
            Template::Reauthentication => "reauthentication",
        }
    }

    fn builtin(self) -> (&'static str, &'static str, &'static str) {
        macro_rules! t {
            ($n:literal) => {
                (
                    include_str!(concat!("../templates/", $n, ".subject")),
                    include_str!(concat!("../templates/", $n, ".txt")),
                    include_str!(concat!("../templates/", $n, ".html")),
                )
            };
        }
        match self {
            Template::VerifyEmail => t!("verify_email"),
            Template::VerifyEmailResend => t!("verify_email_resend"),
            Template::EmailChange => t!("email_change"),
            Template::EmailChangeCurrent => t!("email_change_current"),
            Template::EmailChangeNotice => t!("email_change_notice"),
            Template::PasswordReset => t!("password_reset"),
            Template::PasswordChanged => t!("password_changed"),
            Template::MagicLink => t!("magic_link"),
            Template::Invite => t!("invite"),
            Template::Reauthentication => t!("reauthentication"),
        }
    }
}

struct Parts {
    subject: String,
    text: String,
    html: String,
}

/// The templates in force: built in, each part overridable by a file.
pub struct Templates {
    parts: HashMap<Template, Parts>,
    product: String,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn fill(template: &str, vars: &[(&str, &str)], escape: bool) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        let value = if escape { html_escape(value) } else { (*value).to_owned() };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

impl Templates {
    /// Loads the built-in templates and any overrides from `dir`.
    pub fn load(dir: Option<&Path>, product: &str) -> Result<Templates, String> {
        let mut parts = HashMap::new();
        for t in Template::ALL {
            let (subject, text, html) = t.builtin();
            let read = |ext: &str, default: &str| -> Result<String, String> {
                match dir.map(|d| d.join(format!("{}.{ext}", t.name()))) {
                    Some(path) if path.exists() => {
                        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
                    }
                    _ => Ok(default.to_owned()),
                }
            };
            parts.insert(
                t,
                Parts {
                    subject: read("subject", subject)?.trim().to_owned(),
                    text: read("txt", text)?,
                    html: read("html", html)?,
                },
            );
        }
        Ok(Templates { parts, product: product.to_owned() })
    }

    /// Renders a mail; `{{product}}` is always available, values are HTML-escaped in
    /// the HTML part.
    pub fn render(&self, t: Template, vars: &[(&str, &str)]) -> (String, String, String) {
        let mut all: Vec<(&str, &str)> = vec![("product", &self.product)];
        all.extend_from_slice(vars);
        let (subject, text, html) = match self.parts.get(&t) {
            Some(p) => (p.subject.as_str(), p.text.as_str(), p.html.as_str()),
            None => t.builtin(),
        };
        (fill(subject.trim(), &all, false), fill(text, &all, false), fill(html, &all, true))
    }
}

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

/// A message to queue.
pub struct OutgoingMail {
    pub template: Template,
    pub to: String,
    pub vars: Vec<(&'static str, String)>,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
    Log { show_links: bool },
}

/// Opens after consecutive failures and stays open for a cooldown that doubles while
/// the server keeps failing, so a dead SMTP server is not hammered.
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
}

const BREAKER_THRESHOLD: u32 = 3;
/// How long a claim on an outbox row lasts: a sender that dies holds its messages this
/// long at most (see [`LEASE_RENEW_EVERY`]).
const LEASE: i64 = 15;
/// How long one SMTP delivery may take before it counts as failed (and is retried).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a sender renews the lease of the message it is sending.
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);
const MAX_ATTEMPTS: i32 = 30;

/// Sends mail through the configured transport.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    pub templates: Templates,
    breaker: Mutex<Breaker>,
    max_delay: Duration,
    /// Wakes the sender when a request queued a message.
    pub wake: Notify,
}

impl Mailer {
    /// Builds the transport from settings.
    /// Whether [`Mailer::new`] would succeed with `s`, creating nothing (a missing
    /// `MAIL_DIR` is fine where it could be created).
    pub fn check(s: &MailSettings, development: bool) -> Result<(), String> {
        if s.transport == MailTransport::File {
            let existing = s.dir.ancestors().find(|d| d.exists());
            if existing.is_some_and(|d| !d.is_dir()) {
                return Err(format!("MAIL_DIR {}: not a directory", s.dir.display()));
            }
            return Templates::load(s.templates_dir.as_deref(), &s.product_name).map(|_| ());
        }
        Mailer::new(s, development).map(|_| ())
    }

    pub fn new(s: &MailSettings, development: bool) -> Result<Mailer, String> {
        let from: Mailbox = s.from.parse().map_err(|e| format!("MAIL_FROM: {e}"))?;
        let transport = match s.transport {
            MailTransport::Log => Transport::Log { show_links: development },
            MailTransport::File => {
                std::fs::create_dir_all(&s.dir).map_err(|e| format!("MAIL_DIR {}: {e}", s.dir.display()))?;
                Transport::File(AsyncFileTransport::new(&s.dir))
            }
            MailTransport::Smtp => {
                let builder = match s.smtp_tls {
                    SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.smtp_host),
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.smtp_host),
                    SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.smtp_host)),
                }
                .map_err(|e| format!("SMTP_HOST: {e}"))?;
                let mut builder = builder
                    .port(s.smtp_port)
                    .timeout(Some(Duration::from_secs(10)))
                    .pool_config(PoolConfig::new().max_size(4).idle_timeout(Duration::from_secs(30)));
                if let Some(user) = &s.smtp_user {
                    let password = s.smtp_password.as_ref().map(|p| p.expose_secret().to_owned()).unwrap_or_default();
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Mailer {
            transport,
            from,
            templates: Templates::load(s.templates_dir.as_deref(), &s.product_name)?,
            breaker: Mutex::new(Breaker { failures: 0, open_until: None, cooldown: Duration::from_secs(1) }),
            max_delay: s.retry_max_delay,
            wake: Notify::new(),
        })
    }

    fn breaker_open(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open_until.is_some_and(|t| t > Instant::now())
    }

    fn record_result(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            if b.open_until.is_some() {
                tracing::info!("mail server reachable again: circuit closed");
            }
            *b = Breaker { failures: 0, open_until: None, cooldown: Duration::from_secs(1) };
            return;
        }
        b.failures += 1;
        if b.failures >= BREAKER_THRESHOLD {
            let cooldown = b.cooldown;
            b.open_until = Some(Instant::now() + cooldown);
            b.cooldown = (cooldown * 2).min(self.max_delay.max(Duration::from_secs(1)));
            tracing::warn!(cooldown_secs = cooldown.as_secs(), "mail delivery keeps failing: circuit open");
        }
    }

    async fn deliver(&self, row: &mail_outbox::Model) -> Result<(), String> {
        match &self.transport {
            Transport::Log { show_links } => {
                tracing::info!(kind = %row.kind, "mail sent (MAIL_TRANSPORT=log: not delivered)");
                if *show_links {
                    // Development only: the link, so a newcomer can click it.
                    for link in row.text_body.lines().filter(|l| l.trim_start().starts_with("http")) {
                        tracing::info!(link = %link.trim(), "development mail link");
                    }
                }
                Ok(())
            }
            Transport::File(t) => t.send(self.message(row)?).await.map(|_| ()).map_err(|e| e.to_string()),
            Transport::Smtp(t) => t.send(self.message(row)?).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }

    fn message(&self, row: &mail_outbox::Model) -> Result<Message, String> {
        let to: Mailbox = row.to_addr.parse().map_err(|e| format!("bad recipient: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(row.subject.clone())
            .message_id(Some(format!("<{}@tessera>", row.id)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(row.text_body.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(row.html_body.clone())),
            )
            .map_err(|e| e.to_string())
    }
}

fn backoff(attempts: i32, max: Duration) -> ChronoDuration {
    let secs = 1u64 << attempts.clamp(0, 20);
    ChronoDuration::from_std(Duration::from_secs(secs).min(max.max(Duration::from_secs(1))))
        .unwrap_or(ChronoDuration::MAX)
}

impl Core {
    /// Queues a mail through `conn`: the caller's transaction, so the message exists if
    /// and only if the change that caused it does.
    pub async fn queue_mail(&self, conn: &impl Db, mail: OutgoingMail) -> Result<(), Error> {
        let vars: Vec<(&str, &str)> = mail.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (subject, text, html) = self.mailer.templates.render(mail.template, &vars);
        let now = now();
        let row = mail_outbox::Model {
            id: Uuid::now_v7(),
            kind: mail.template.name().to_owned(),
            to_addr: mail.to,
            subject,
            text_body: text,
            html_body: html,
            attempts: 0,
            next_attempt_at: now,
            locked_until: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
            created_at: now,
            to_index: None,
        };
        outbox::insert(conn, row).await
    }

    /// Queues a request to resolve in the background (through `conn`, in one statement
    /// when it is the writer): the same write whoever asked, so that the answer takes the
    /// same time whether `email` belongs to an account or not.
    pub(crate) async fn queue_request(
        &self,
        conn: &impl Db,
        request: MailRequest,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let now = now();
        // Who asked, for the audit row the request becomes.
        let requester = serde_json::json!({
            "ip": client.ip, "user_agent": client.user_agent, "request_id": client.request_id,
        });
        let row = mail_outbox::Model {
            id: Uuid::now_v7(),
            kind: request.kind().to_owned(),
            to_addr: email.to_owned(),
            subject: String::new(),
            text_body: requester.to_string(),
            html_body: String::new(),
            attempts: 0,
            next_attempt_at: now,
            locked_until: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
            created_at: now,
            to_index: None,
        };
        outbox::insert(conn, row).await
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
        let done = crate::now();
        let update = mail_outbox::ActiveModel {
            id: Set(row.id),
            attempts: Set(attempts),
            locked_until: Set(None),
            next_attempt_at: Set(done + backoff(attempts - 1, self.mailer.max_delay)),
            failed_at: Set((attempts >= MAX_ATTEMPTS).then_some(done)),
            last_error: Set(Some(crate::audit::truncate(error, 1000))),
            ..Default::default()
        };
        outbox::record_attempt(self.store.writer(), update).await
    }

    /// Resolves due requests, then delivers the messages that are due; returns how many
    /// messages were sent.
    pub async fn deliver_due_mail(&self) -> Result<usize, Error> {
        self.resolve_due_requests().await?;
        if self.mailer.breaker_open() {
            return Ok(0);
        }
        let now = now();
        let due = outbox::due(self.store.reader(), now, 16, false).await?;
        let mut sent = 0;
        for row in due {
            // Claim it with a lease; another node that got here first wins.
            if !outbox::claim(self.store.writer(), row.id, now, now + ChronoDuration::seconds(LEASE)).await? {
                continue;
            }
            let result = self.deliver_renewing_the_lease(&row).await;
            self.mailer.record_result(result.is_ok());
            match &result {
                Ok(()) => {
                    sent += 1;
                    metrics::counter!("tessera_mail_deliveries_total", "outcome" => "sent").increment(1);
                    let update = mail_outbox::ActiveModel {
                        id: Set(row.id),
                        attempts: Set(row.attempts + 1),
                        sent_at: Set(Some(crate::now())),
                        locked_until: Set(None),
                        last_error: Set(None),
                        // The bodies may hold a link or code: gone once delivered.
                        text_body: Set(String::new()),
                        html_body: Set(String::new()),
                        ..Default::default()
                    };
                    outbox::record_attempt(self.store.writer(), update).await?;
                }
                Err(e) => self.record_failure(&row, e).await?,
            }
            if result.is_err() && self.mailer.breaker_open() {
                break;
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

    #[test]
    fn renders_and_escapes() {
        let t = Templates::load(None, "Acme").unwrap();
        let (subject, text, html) = t.render(
            Template::VerifyEmail,
            &[("email", "a<b>@example.com"), ("link", "https://x.test/v?token=abc"), ("code", "AB23CD")],
        );
        assert_eq!(subject, "Confirm your email address for Acme");
        assert!(text.contains("\nAB23CD\n"), "the code stands on a line of its own");
        assert!(text.contains("https://x.test/v?token=abc"));
        assert!(html.contains("a&lt;b&gt;@example.com"));
        assert!(!html.contains("{{"));
    }

    #[test]
    fn templates_can_be_overridden() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("password_reset.subject"), "Reset for {{product}}!\n").unwrap();
        let t = Templates::load(Some(&dir), "Acme").unwrap();
        assert_eq!(t.render(Template::PasswordReset, &[]).0, "Reset for Acme!");
        assert_eq!(t.render(Template::PasswordChanged, &[]).0, "Your Acme password was changed");
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tessera-tpl-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

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
