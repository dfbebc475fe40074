//! Mail's templates and transports (SMTP, file, log), behind a circuit breaker that
//! spares a dead SMTP server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tessera_store::entity::mail_outbox;
use tokio::sync::Notify;

use crate::settings::{MailSettings, MailTransport, SmtpTls};

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
    pub(crate) const ALL: [Template; 10] = [
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
                    include_str!(concat!("../../templates/", $n, ".subject")),
                    include_str!(concat!("../../templates/", $n, ".txt")),
                    include_str!(concat!("../../templates/", $n, ".html")),
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
/// How long one SMTP delivery may take before it counts as failed (and is retried).
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Sends mail through the configured transport.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    pub templates: Templates,
    breaker: Mutex<Breaker>,
    pub(crate) max_delay: Duration,
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

    pub(crate) fn breaker_open(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open_until.is_some_and(|t| t > Instant::now())
    }

    pub(crate) fn record_result(&self, ok: bool) {
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

    pub(crate) async fn deliver(&self, row: &mail_outbox::Model) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

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
}
