//! The kinds of value settings take: the environment, the mail transport and its TLS,
//! the log format, the rate-limit windows, the mail settings, and the words each
//! enumerated setting accepts.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::kv::Window;

/// The rate-limit windows of each limited action (SPEC §5.4).
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub login: Vec<Window>,
    pub register: Vec<Window>,
    pub recover: Vec<Window>,
    pub otp: Vec<Window>,
    pub verify: Vec<Window>,
    pub anonymous: Vec<Window>,
    pub oauth: Vec<Window>,
    /// SMS codes sent, per number and per client IP.
    pub sms: Vec<Window>,
}

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    #[default]
    Development,
    Staging,
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailTransport {
    Smtp,
    File,
    #[default]
    Log,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    #[default]
    StartTls,
    Tls,
    None,
}

/// Mail settings (SPEC §5.3).
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub from: String,
    pub dir: PathBuf,
    pub templates_dir: Option<PathBuf>,
    pub retry_max_delay: Duration,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_user: Option<String>,
    pub smtp_password: Option<SecretString>,
    pub smtp_tls: SmtpTls,
    pub product_name: String,
    pub verify_email_url: String,
    pub reset_password_url: String,
}

/// The words an enumerated setting takes (in any case), and how a refusal lists them.
pub(crate) struct Choices<T: 'static> {
    pub(crate) listed: &'static str,
    pub(crate) words: &'static [(&'static str, T)],
}

pub(crate) const ENVIRONMENTS: Choices<Environment> = Choices {
    listed: "development, staging or production",
    words: &[
        ("development", Environment::Development),
        ("dev", Environment::Development),
        ("local", Environment::Development),
        ("staging", Environment::Staging),
        ("production", Environment::Production),
        ("prod", Environment::Production),
    ],
};

pub(crate) const MAIL_TRANSPORTS: Choices<MailTransport> = Choices {
    listed: "smtp, file or log",
    words: &[("smtp", MailTransport::Smtp), ("file", MailTransport::File), ("log", MailTransport::Log)],
};

pub(crate) const SMTP_TLS_MODES: Choices<SmtpTls> = Choices {
    listed: "starttls, tls or none",
    words: &[
        ("starttls", SmtpTls::StartTls),
        ("tls", SmtpTls::Tls),
        ("ssl", SmtpTls::Tls),
        ("true", SmtpTls::Tls),
        ("none", SmtpTls::None),
        ("false", SmtpTls::None),
        ("off", SmtpTls::None),
    ],
};

pub(crate) const LOG_FORMATS: Choices<LogFormat> = Choices {
    listed: "json or pretty",
    words: &[("json", LogFormat::Json), ("pretty", LogFormat::Pretty), ("text", LogFormat::Pretty)],
};
