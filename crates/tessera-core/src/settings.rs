//! Configuration from environment variables (and an optional `.env` file), with the
//! names the seed systems use (SPEC §7), production validation and generated docs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tessera_domain::{Cidr, PasswordPolicy};

use crate::kv::{parse_duration, parse_windows, LockoutPolicy, Window};

/// The rate-limit windows of each limited action (SPEC §5.4).
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub login: Vec<Window>,
    pub register: Vec<Window>,
    pub recover: Vec<Window>,
    pub otp: Vec<Window>,
}

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransport {
    Smtp,
    File,
    Log,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
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

/// One documented setting: every name it is read from (the first is canonical), its
/// default and what it means.
pub struct SettingDoc {
    pub names: &'static [&'static str],
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every setting tessera reads, in the order `tessera config docs` prints them.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc { names: &["ENVIRONMENT", "APP_ENV"], default: "development", meaning: "development, staging or production; production refuses unsafe settings" },
    SettingDoc { names: &["DEBUG"], default: "false", meaning: "debug mode; refused in production" },
    SettingDoc { names: &["HOST"], default: "127.0.0.1", meaning: "address to listen on" },
    SettingDoc { names: &["PORT"], default: "8000", meaning: "TCP port to listen on" },
    SettingDoc { names: &["PUBLIC_URL"], default: "http://HOST:PORT", meaning: "the public base URL of this server, used to build links" },
    SettingDoc { names: &["DATABASE_URL"], default: "sqlite://tessera.db", meaning: "sqlite://FILE or postgres://USER:PASS@HOST/DB (postgresql+asyncpg:// accepted)" },
    SettingDoc { names: &["DB_POOL_SIZE"], default: "10", meaning: "database connections kept in the pool; on PostgreSQL up to this many of them stay checked out between the statements every request runs (the session check, refresh)" },
    SettingDoc { names: &["DB_MAX_OVERFLOW"], default: "20", meaning: "extra PostgreSQL connections allowed above the pool size" },
    SettingDoc { names: &["DB_POOL_TIMEOUT"], default: "30", meaning: "seconds to wait for a free connection before answering 503" },
    SettingDoc { names: &["DB_POOL_RECYCLE"], default: "3600", meaning: "seconds after which a PostgreSQL connection is replaced" },
    SettingDoc { names: &["SESSION_CACHE_MS"], default: "1000", meaning: "on a SQLite file, the session check keeps each session and its user in memory this long; writes made through this server drop them at once, so this only bounds how long a write by another program to the file goes unseen; 0 turns it off" },
    SettingDoc { names: &["AUTO_MIGRATE"], default: "true", meaning: "run pending migrations at start-up" },
    SettingDoc { names: &["REDIS_URL"], default: "(none: in memory)", meaning: "redis://[:PASSWORD@]HOST:PORT/DB; shares rate limits and lockout across nodes" },
    SettingDoc { names: &["REDIS_HOST"], default: "(none)", meaning: "Redis host, when REDIS_URL is not set" },
    SettingDoc { names: &["REDIS_PORT"], default: "6379", meaning: "Redis port, with REDIS_HOST" },
    SettingDoc { names: &["REDIS_PASSWORD"], default: "(none)", meaning: "Redis password, with REDIS_HOST" },
    SettingDoc { names: &["JWT_SECRET_KEY", "JWT_SECRET"], default: "(generated in development)", meaning: "HMAC key for access tokens, at least 32 bytes; in development a random one is kept in a file beside the SQLite database" },
    SettingDoc { names: &["JWT_ALGORITHM"], default: "HS256", meaning: "HS256, HS384 or HS512" },
    SettingDoc { names: &["JWT_ISSUER"], default: "tessera", meaning: "the iss claim of access tokens" },
    SettingDoc { names: &["JWT_AUDIENCE"], default: "authenticated", meaning: "the aud claim of access tokens" },
    SettingDoc { names: &["ACCESS_TOKEN_EXPIRE_MINUTES"], default: "15", meaning: "access token lifetime" },
    SettingDoc { names: &["REFRESH_TOKEN_EXPIRE_DAYS"], default: "7", meaning: "refresh token (session) lifetime" },
    SettingDoc { names: &["REFRESH_TOKEN_REUSE_INTERVAL"], default: "10", meaning: "seconds during which a just-rotated refresh token still refreshes" },
    SettingDoc { names: &["MAX_SESSIONS_PER_USER"], default: "0", meaning: "0 = unlimited; otherwise the oldest session is revoked when a new one would exceed it" },
    SettingDoc { names: &["SECURE_COOKIES"], default: "true", meaning: "mark the refresh cookie Secure (and send HSTS); must be true in production" },
    SettingDoc { names: &["CORS_ORIGINS"], default: "(none)", meaning: "comma-separated origins allowed by CORS; * is refused in production" },
    SettingDoc { names: &["ALLOWED_HOSTS"], default: "(any)", meaning: "comma-separated Host header values accepted; others answer 400" },
    SettingDoc { names: &["TRUSTED_PROXIES"], default: "(none)", meaning: "comma-separated IPs or CIDRs of proxies whose X-Forwarded-For / X-Real-IP is believed" },
    SettingDoc { names: &["RATE_LIMIT_ENABLED"], default: "true", meaning: "false turns every rate limit and the lockout off" },
    SettingDoc { names: &["RATE_LIMIT_LOGIN"], default: "5/15m,1/1s", meaning: "sign-ins per client IP: LIMIT/PERIOD windows (units s, m, h, d)" },
    SettingDoc { names: &["RATE_LIMIT_REGISTER"], default: "3/1h", meaning: "sign-ups per client IP" },
    SettingDoc { names: &["RATE_LIMIT_RECOVER"], default: "3/1h", meaning: "password-recovery requests per email address" },
    SettingDoc { names: &["RATE_LIMIT_OTP"], default: "3/1h", meaning: "verification and one-time-code sends per address" },
    SettingDoc { names: &["LOCKOUT_THRESHOLD"], default: "5", meaning: "consecutive failed sign-ins for one email before it is locked" },
    SettingDoc { names: &["LOCKOUT_DURATION"], default: "15m", meaning: "first lockout; doubles on each repeat offence" },
    SettingDoc { names: &["LOCKOUT_MAX"], default: "24h", meaning: "longest lockout" },
    SettingDoc { names: &["REQUIRE_EMAIL_VERIFICATION"], default: "false", meaning: "unverified accounts answer 403 email_not_verified at sign-in" },
    SettingDoc { names: &["MAIL_TRANSPORT"], default: "log", meaning: "smtp, file or log; log is refused in production" },
    SettingDoc { names: &["MAIL_FROM"], default: "tessera <no-reply@localhost>", meaning: "sender of every mail" },
    SettingDoc { names: &["MAIL_DIR"], default: "mail", meaning: "where the file transport writes one .eml per message" },
    SettingDoc { names: &["MAIL_TEMPLATES_DIR"], default: "(built in)", meaning: "directory of NAME.subject / NAME.txt / NAME.html files overriding the built-in templates" },
    SettingDoc { names: &["MAIL_RETRY_MAX_DELAY"], default: "5m", meaning: "longest wait between delivery attempts, and longest circuit-breaker pause" },
    SettingDoc { names: &["SMTP_HOST"], default: "localhost", meaning: "SMTP server" },
    SettingDoc { names: &["SMTP_PORT"], default: "587 (465 with SMTP_TLS=tls, 25 with none)", meaning: "SMTP port" },
    SettingDoc { names: &["SMTP_USER"], default: "(none)", meaning: "SMTP user name; authentication is used when set" },
    SettingDoc { names: &["SMTP_PASSWORD"], default: "(none)", meaning: "SMTP password" },
    SettingDoc { names: &["SMTP_TLS"], default: "starttls", meaning: "starttls, tls (implicit) or none" },
    SettingDoc { names: &["PRODUCT_NAME"], default: "tessera", meaning: "the product name in mails and pages" },
    SettingDoc { names: &["VERIFY_EMAIL_URL"], default: "PUBLIC_URL/verify-email", meaning: "page that email-verification links open (gets ?token=…)" },
    SettingDoc { names: &["RESET_PASSWORD_URL"], default: "PUBLIC_URL/reset-password", meaning: "page that password-reset links open (gets ?token=…)" },
    SettingDoc { names: &["PASSWORD_MIN_LENGTH"], default: "8", meaning: "minimum password length" },
    SettingDoc { names: &["PASSWORD_MAX_LENGTH"], default: "128", meaning: "maximum password length" },
    SettingDoc { names: &["PASSWORD_REQUIRE_UPPERCASE"], default: "true", meaning: "a password needs an upper-case letter" },
    SettingDoc { names: &["PASSWORD_REQUIRE_LOWERCASE"], default: "true", meaning: "a password needs a lower-case letter" },
    SettingDoc { names: &["PASSWORD_REQUIRE_DIGIT"], default: "true", meaning: "a password needs a digit" },
    SettingDoc { names: &["PASSWORD_REQUIRE_SPECIAL"], default: "true", meaning: "a password needs a special character" },
    SettingDoc { names: &["PASSWORD_REJECT_COMMON"], default: "true", meaning: "refuse passwords from the shipped list of common passwords" },
    SettingDoc { names: &["PASSWORD_REJECT_EMAIL"], default: "true", meaning: "refuse passwords containing the email's local part" },
    SettingDoc { names: &["ARGON2_MEMORY_KIB"], default: "19456", meaning: "Argon2id memory cost in KiB" },
    SettingDoc { names: &["ARGON2_ITERATIONS"], default: "2", meaning: "Argon2id time cost" },
    SettingDoc { names: &["ARGON2_PARALLELISM"], default: "1", meaning: "Argon2id lanes" },
    SettingDoc { names: &["HASH_WORKERS"], default: "(CPU count)", meaning: "threads computing password hashes, each keeping its Argon2 memory while busy (let go after 1 s idle)" },
    SettingDoc { names: &["HASH_QUEUE"], default: "64", meaning: "password hashes allowed to wait; beyond it sign-in answers 503 with Retry-After" },
    SettingDoc { names: &["LOG_LEVEL"], default: "info", meaning: "trace, debug, info, warn or error (or a tracing filter)" },
    SettingDoc { names: &["LOG_FORMAT"], default: "pretty (json in production)", meaning: "json or pretty" },
    SettingDoc { names: &["LOG_FILE"], default: "(stdout)", meaning: "append logs to this file instead of stdout" },
    SettingDoc { names: &["OPENAPI_ENABLED"], default: "true (false in production)", meaning: "serve /docs and /openapi.json" },
    SettingDoc { names: &["FIRST_ADMIN_EMAIL"], default: "(none)", meaning: "with FIRST_ADMIN_PASSWORD: the admin created at start-up when no admin exists" },
    SettingDoc { names: &["FIRST_ADMIN_PASSWORD"], default: "(none)", meaning: "the first admin's password; must satisfy the password policy" },
    SettingDoc { names: &["AUDIT_LOG_DIR"], default: "(none)", meaning: "also append every audit event as a JSON line to audit-YYYY-MM-DD.jsonl (UTC) in this directory" },
];

/// tessera's whole configuration.
#[derive(Clone)]
pub struct Settings {
    pub environment: Environment,
    pub debug: bool,
    pub host: String,
    pub port: u16,
    pub public_url: String,
    pub database_url: SecretString,
    pub db_pool_size: u32,
    pub db_max_overflow: u32,
    pub db_pool_timeout: Duration,
    pub db_pool_recycle: Duration,
    /// On a SQLite file, how long a session check's rows are answered from memory; 0: off.
    pub session_cache_ms: u64,
    pub auto_migrate: bool,
    /// `None` until [`Settings::ensure_jwt_secret`] has run in development.
    pub jwt_secret: Option<SecretString>,
    pub jwt_algorithm: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_interval: Duration,
    pub max_sessions_per_user: u32,
    pub secure_cookies: bool,
    pub cors_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub trusted_proxies: Vec<Cidr>,
    pub redis_url: Option<SecretString>,
    pub rate_limit_enabled: bool,
    pub rate_limits: RateLimits,
    pub lockout: LockoutPolicy,
    pub require_email_verification: bool,
    pub mail_transport: MailTransport,
    pub mail: MailSettings,
    pub password_policy: PasswordPolicy,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_workers: usize,
    pub hash_queue: usize,
    pub log_level: String,
    pub log_format: LogFormat,
    pub log_file: Option<PathBuf>,
    pub openapi_enabled: bool,
    /// The admin to create at start-up when none exists (email, password).
    pub first_admin: Option<(String, SecretString)>,
    pub audit_log_dir: Option<PathBuf>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("environment", &self.environment)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &redact_url(self.database_url.expose_secret()))
            .finish_non_exhaustive()
    }
}

/// A database URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Reads variables from a map, collecting every problem instead of stopping at the first.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, names: &[&str]) -> Option<(String, String)> {
        names.iter().find_map(|n| {
            self.vars.get(*n).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(|v| ((*n).to_owned(), v))
        })
    }

    fn string(&self, names: &[&str], default: &str) -> String {
        self.raw(names).map(|(_, v)| v).unwrap_or_else(|| default.to_owned())
    }

    fn opt(&self, names: &[&str]) -> Option<String> {
        self.raw(names).map(|(_, v)| v)
    }

    fn parse<T: std::str::FromStr>(&mut self, names: &[&str], default: T, what: &str) -> T {
        match self.raw(names) {
            None => default,
            Some((name, v)) => match v.parse() {
                Ok(x) => x,
                Err(_) => {
                    self.problems.push(format!("{name}={v:?} is not {what}"));
                    default
                }
            },
        }
    }

    fn boolean(&mut self, names: &[&str], default: bool) -> bool {
        match self.raw(names) {
            None => default,
            Some((name, v)) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    self.problems.push(format!("{name}={v:?} is not true or false"));
                    default
                }
            },
        }
    }

    fn windows(&mut self, name: &str, default: &str) -> Vec<Window> {
        let raw = self.string(&[name], default);
        parse_windows(&raw).unwrap_or_else(|e| {
            self.problems.push(format!("{name}: {e}"));
            parse_windows(default).unwrap_or_default()
        })
    }

    fn duration(&mut self, name: &str, default: &str) -> u64 {
        let raw = self.string(&[name], default);
        parse_duration(&raw).filter(|d| *d > 0).unwrap_or_else(|| {
            self.problems.push(format!("{name}={raw:?} is not a duration such as 15m, 24h or 30s"));
            parse_duration(default).unwrap_or(1)
        })
    }

    fn list(&self, names: &[&str]) -> Vec<String> {
        let raw = self.opt(names).unwrap_or_default();
        // The seeds write lists either comma-separated or as a JSON array.
        let raw = raw.trim().trim_start_matches('[').trim_end_matches(']');
        raw.split(',')
            .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl Settings {
    /// Reads the process environment, with a `.env` file in the working directory
    /// filling in what the environment does not set.
    pub fn from_process_env() -> Result<Settings, Vec<String>> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(iter) = dotenvy::from_path_iter(".env") {
            for (k, v) in iter.flatten() {
                vars.insert(k, v);
            }
        }
        vars.extend(std::env::vars());
        Settings::from_vars(&vars)
    }

    /// Builds settings from a map of variables. Returns every unparsable value at once.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Settings, Vec<String>> {
        let mut r = Reader { vars, problems: Vec::new() };
        let environment = match r.string(&["ENVIRONMENT", "APP_ENV"], "development").to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" => Environment::Development,
            "staging" => Environment::Staging,
            "production" | "prod" => Environment::Production,
            other => {
                r.problems.push(format!("ENVIRONMENT={other:?} is not development, staging or production"));
                Environment::Development
            }
        };
        let production = environment == Environment::Production;
        let host = r.string(&["HOST"], "127.0.0.1");
        let port: u16 = r.parse(&["PORT"], 8000, "a port number");
        let public_url =
            r.opt(&["PUBLIC_URL"]).unwrap_or_else(|| format!("http://{host}:{port}")).trim_end_matches('/').to_owned();
        let jwt_algorithm = r.string(&["JWT_ALGORITHM"], "HS256").to_ascii_uppercase();
        if !matches!(jwt_algorithm.as_str(), "HS256" | "HS384" | "HS512") {
            r.problems.push(format!("JWT_ALGORITHM={jwt_algorithm:?} is not supported (use HS256, HS384 or HS512)"));
        }
        let mail_transport = match r.string(&["MAIL_TRANSPORT"], "log").to_ascii_lowercase().as_str() {
            "smtp" => MailTransport::Smtp,
            "file" => MailTransport::File,
            "log" => MailTransport::Log,
            other => {
                r.problems.push(format!("MAIL_TRANSPORT={other:?} is not smtp, file or log"));
                MailTransport::Log
            }
        };
        let log_format = match r.opt(&["LOG_FORMAT"]).map(|s| s.to_ascii_lowercase()).as_deref() {
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") | Some("text") => LogFormat::Pretty,
            Some(other) => {
                r.problems.push(format!("LOG_FORMAT={other:?} is not json or pretty"));
                LogFormat::Pretty
            }
        };
        let defaults = PasswordPolicy::default();
        let password_policy = PasswordPolicy {
            min_length: r.parse(&["PASSWORD_MIN_LENGTH"], defaults.min_length, "a whole number"),
            max_length: r.parse(&["PASSWORD_MAX_LENGTH"], defaults.max_length, "a whole number"),
            require_uppercase: r.boolean(&["PASSWORD_REQUIRE_UPPERCASE"], true),
            require_lowercase: r.boolean(&["PASSWORD_REQUIRE_LOWERCASE"], true),
            require_digit: r.boolean(&["PASSWORD_REQUIRE_DIGIT"], true),
            require_special: r.boolean(&["PASSWORD_REQUIRE_SPECIAL"], true),
            reject_common: r.boolean(&["PASSWORD_REJECT_COMMON"], true),
            reject_email: r.boolean(&["PASSWORD_REJECT_EMAIL"], true),
        };
        if password_policy.min_length > password_policy.max_length || password_policy.max_length > 1024 {
            r.problems
                .push("PASSWORD_MIN_LENGTH must not exceed PASSWORD_MAX_LENGTH, which must be at most 1024".to_owned());
        }
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let secs = |r: &mut Reader, names: &[&str], d: u64| {
            Duration::from_secs(r.parse(names, d, "a whole number of seconds"))
        };
        let public_url_for_links = public_url.clone();
        let s = Settings {
            environment,
            debug: r.boolean(&["DEBUG"], false),
            host,
            port,
            public_url,
            database_url: SecretString::from(r.string(&["DATABASE_URL"], "sqlite://tessera.db")),
            db_pool_size: r.parse(&["DB_POOL_SIZE"], 10, "a whole number"),
            db_max_overflow: r.parse(&["DB_MAX_OVERFLOW"], 20, "a whole number"),
            db_pool_timeout: secs(&mut r, &["DB_POOL_TIMEOUT"], 30),
            db_pool_recycle: secs(&mut r, &["DB_POOL_RECYCLE"], 3600),
            session_cache_ms: r.parse(&["SESSION_CACHE_MS"], 1000, "a whole number of milliseconds"),
            auto_migrate: r.boolean(&["AUTO_MIGRATE"], true),
            jwt_secret: r.opt(&["JWT_SECRET_KEY", "JWT_SECRET"]).map(SecretString::from),
            jwt_algorithm,
            jwt_issuer: r.string(&["JWT_ISSUER"], "tessera"),
            jwt_audience: r.string(&["JWT_AUDIENCE"], "authenticated"),
            access_token_ttl: Duration::from_secs(
                60 * r.parse::<u64>(&["ACCESS_TOKEN_EXPIRE_MINUTES"], 15, "a whole number of minutes"),
            ),
            refresh_token_ttl: Duration::from_secs(
                86_400 * r.parse::<u64>(&["REFRESH_TOKEN_EXPIRE_DAYS"], 7, "a whole number of days"),
            ),
            refresh_reuse_interval: secs(&mut r, &["REFRESH_TOKEN_REUSE_INTERVAL"], 10),
            max_sessions_per_user: r.parse(&["MAX_SESSIONS_PER_USER"], 0, "a whole number"),
            secure_cookies: r.boolean(&["SECURE_COOKIES"], true),
            cors_origins: r.list(&["CORS_ORIGINS"]),
            allowed_hosts: r.list(&["ALLOWED_HOSTS"]),
            trusted_proxies: {
                let mut nets = Vec::new();
                for raw in r.list(&["TRUSTED_PROXIES"]) {
                    match Cidr::parse(&raw) {
                        Ok(c) => nets.push(c),
                        Err(e) => r.problems.push(format!("TRUSTED_PROXIES: {e}")),
                    }
                }
                nets
            },
            redis_url: redis_url(&r).map(SecretString::from),
            rate_limit_enabled: r.boolean(&["RATE_LIMIT_ENABLED"], true),
            rate_limits: RateLimits {
                login: r.windows("RATE_LIMIT_LOGIN", "5/15m,1/1s"),
                register: r.windows("RATE_LIMIT_REGISTER", "3/1h"),
                recover: r.windows("RATE_LIMIT_RECOVER", "3/1h"),
                otp: r.windows("RATE_LIMIT_OTP", "3/1h"),
            },
            lockout: LockoutPolicy {
                threshold: r.parse(&["LOCKOUT_THRESHOLD"], 5, "a whole number").max(1),
                base_secs: r.duration("LOCKOUT_DURATION", "15m"),
                max_secs: r.duration("LOCKOUT_MAX", "24h"),
            },
            require_email_verification: r.boolean(&["REQUIRE_EMAIL_VERIFICATION"], false),
            mail_transport,
            mail: {
                let smtp_tls = match r.string(&["SMTP_TLS"], "starttls").to_ascii_lowercase().as_str() {
                    "starttls" => SmtpTls::StartTls,
                    "tls" | "ssl" | "true" => SmtpTls::Tls,
                    "none" | "false" | "off" => SmtpTls::None,
                    other => {
                        r.problems.push(format!("SMTP_TLS={other:?} is not starttls, tls or none"));
                        SmtpTls::StartTls
                    }
                };
                let default_port = match smtp_tls {
                    SmtpTls::StartTls => 587,
                    SmtpTls::Tls => 465,
                    SmtpTls::None => 25,
                };
                let link = |name: &str, path: &str, r: &Reader| {
                    r.opt(&[name]).unwrap_or_else(|| format!("{public_url_for_links}{path}"))
                };
                MailSettings {
                    transport: mail_transport,
                    from: r.string(&["MAIL_FROM"], "tessera <no-reply@localhost>"),
                    dir: PathBuf::from(r.string(&["MAIL_DIR"], "mail")),
                    templates_dir: r.opt(&["MAIL_TEMPLATES_DIR"]).map(PathBuf::from),
                    retry_max_delay: Duration::from_secs(r.duration("MAIL_RETRY_MAX_DELAY", "5m")),
                    smtp_host: r.string(&["SMTP_HOST"], "localhost"),
                    smtp_port: r.parse(&["SMTP_PORT"], default_port, "a port number"),
                    smtp_user: r.opt(&["SMTP_USER"]),
                    smtp_password: r.opt(&["SMTP_PASSWORD"]).map(SecretString::from),
                    smtp_tls,
                    product_name: r.string(&["PRODUCT_NAME"], "tessera"),
                    verify_email_url: link("VERIFY_EMAIL_URL", "/verify-email", &r),
                    reset_password_url: link("RESET_PASSWORD_URL", "/reset-password", &r),
                }
            },
            password_policy,
            argon2_memory_kib: r.parse(&["ARGON2_MEMORY_KIB"], 19_456, "a whole number of KiB"),
            argon2_iterations: r.parse(&["ARGON2_ITERATIONS"], 2, "a whole number"),
            argon2_parallelism: r.parse(&["ARGON2_PARALLELISM"], 1, "a whole number"),
            hash_workers: r.parse(&["HASH_WORKERS"], cpus, "a whole number").max(1),
            hash_queue: r.parse(&["HASH_QUEUE"], 64, "a whole number"),
            log_level: r.string(&["LOG_LEVEL"], "info"),
            log_format,
            log_file: r.opt(&["LOG_FILE"]).map(PathBuf::from),
            openapi_enabled: r.boolean(&["OPENAPI_ENABLED"], !production),
            first_admin: match (r.opt(&["FIRST_ADMIN_EMAIL"]), r.opt(&["FIRST_ADMIN_PASSWORD"])) {
                (Some(email), Some(password)) => Some((email, SecretString::from(password))),
                (None, None) => None,
                _ => {
                    r.problems.push("FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD must be set together".to_owned());
                    None
                }
            },
            audit_log_dir: r.opt(&["AUDIT_LOG_DIR"]).map(PathBuf::from),
        };
        if lettre::message::Mailbox::from_str(&s.mail.from).is_err() {
            r.problems.push(format!(
                "MAIL_FROM={:?} is not a mailbox such as \"tessera <no-reply@example.com>\"",
                s.mail.from
            ));
        }
        if let Some((email, password)) = &s.first_admin {
            match tessera_domain::Email::parse(email) {
                Err(_) => r.problems.push(format!("FIRST_ADMIN_EMAIL={email:?} is not a valid email address")),
                Ok(e) => {
                    if let Err(broken) = s.password_policy.check("password", password.expose_secret(), Some(&e)) {
                        let rules: Vec<String> = broken.into_iter().map(|b| b.message).collect();
                        r.problems
                            .push(format!("FIRST_ADMIN_PASSWORD breaks the password policy: {}", rules.join(" ")));
                    }
                }
            }
        }
        if s.access_token_ttl.is_zero() || s.refresh_token_ttl.is_zero() {
            r.problems.push("ACCESS_TOKEN_EXPIRE_MINUTES and REFRESH_TOKEN_EXPIRE_DAYS must be positive".to_owned());
        }
        if let Some(url) = &s.redis_url {
            let u = url.expose_secret();
            if !(u.starts_with("redis://")
                || u.starts_with("rediss://")
                || u.starts_with("redis+unix://")
                || u.starts_with("unix://"))
            {
                r.problems.push("REDIS_URL must start with redis://".to_owned());
            }
        }
        if let Err(e) = tessera_store::normalise_url(s.database_url.expose_secret()) {
            r.problems.push(e);
        }
        if argon2::Params::new(s.argon2_memory_kib, s.argon2_iterations, s.argon2_parallelism, None).is_err() {
            r.problems.push(
                "ARGON2_MEMORY_KIB, ARGON2_ITERATIONS and ARGON2_PARALLELISM do not form valid Argon2 parameters"
                    .to_owned(),
            );
        }
        if r.problems.is_empty() {
            Ok(s)
        } else {
            Err(r.problems)
        }
    }

    /// What production refuses: one line per problem. Empty outside production.
    pub fn production_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.environment != Environment::Production {
            return p;
        }
        if self.debug {
            p.push("DEBUG must be false in production".to_owned());
        }
        match &self.jwt_secret {
            None => p.push("JWT_SECRET_KEY must be set in production".to_owned()),
            Some(s) if s.expose_secret().len() < 32 => {
                p.push("JWT_SECRET_KEY must be at least 32 bytes long".to_owned())
            }
            Some(_) => {}
        }
        if self.cors_origins.iter().any(|o| o == "*") {
            p.push("CORS_ORIGINS must not allow * in production".to_owned());
        }
        if !self.secure_cookies {
            p.push("SECURE_COOKIES must be true in production".to_owned());
        }
        if self.mail_transport == MailTransport::Log {
            p.push("MAIL_TRANSPORT must be smtp or file in production, not log".to_owned());
        }
        p
    }

    /// Whether this is a development deployment.
    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }

    /// In development with no JWT secret set, reads the one kept beside the database
    /// (or generates it, 0600, on first start). Elsewhere the secret must be configured.
    pub fn ensure_jwt_secret(&mut self) -> Result<(), String> {
        if let Some(secret) = &self.jwt_secret {
            if secret.expose_secret().len() < 32 && !self.is_development() {
                return Err("JWT_SECRET_KEY must be at least 32 bytes long".to_owned());
            }
            return Ok(());
        }
        if !self.is_development() {
            return Err("JWT_SECRET_KEY must be set outside development".to_owned());
        }
        let path = self.dev_secret_path();
        self.jwt_secret = Some(SecretString::from(load_or_create_secret(&path)?));
        Ok(())
    }

    /// Where the development JWT secret is kept: beside the SQLite file.
    pub fn dev_secret_path(&self) -> PathBuf {
        match tessera_store::sqlite_path(self.database_url.expose_secret()) {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".jwt-secret");
                db.with_file_name(name)
            }
            None => PathBuf::from("tessera.jwt-secret"),
        }
    }
}

/// `REDIS_URL`, or one built from `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD`.
fn redis_url(r: &Reader) -> Option<String> {
    if let Some(url) = r.opt(&["REDIS_URL"]) {
        return Some(url);
    }
    let host = r.opt(&["REDIS_HOST"])?;
    let port = r.string(&["REDIS_PORT"], "6379");
    let auth = match r.opt(&["REDIS_PASSWORD"]) {
        Some(pw) => {
            let encoded: String = pw
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!(":{encoded}@")
        }
        None => String::new(),
    };
    Some(format!("redis://{auth}{host}:{port}/0"))
}

fn load_or_create_secret(path: &Path) -> Result<String, String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    let secret = crate::tokens::random_token(48);
    write_private(path, &secret)
        .map_err(|e| format!("cannot write the development JWT secret to {}: {e}", path.display()))?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.port, 8000);
        assert_eq!(s.public_url, "http://127.0.0.1:8000");
        assert!(s.production_problems().is_empty());
        assert!(s.openapi_enabled);
    }

    #[test]
    fn reads_second_names_and_lists() {
        let s = Settings::from_vars(&vars(&[
            ("APP_ENV", "staging"),
            ("JWT_SECRET", "x"),
            ("CORS_ORIGINS", r#"["http://a.test", "http://b.test"]"#),
        ]))
        .unwrap();
        assert_eq!(s.environment, Environment::Staging);
        assert_eq!(s.jwt_secret.unwrap().expose_secret(), "x");
        assert_eq!(s.cors_origins, ["http://a.test", "http://b.test"]);
    }

    #[test]
    fn production_lists_every_problem() {
        let s = Settings::from_vars(&vars(&[
            ("ENVIRONMENT", "production"),
            ("DEBUG", "true"),
            ("JWT_SECRET_KEY", "short"),
            ("CORS_ORIGINS", "*"),
            ("SECURE_COOKIES", "false"),
        ]))
        .unwrap();
        assert_eq!(s.production_problems().len(), 5, "{:?}", s.production_problems());
        assert!(!s.openapi_enabled);
    }

    #[test]
    fn bad_values_are_all_reported() {
        let errs = Settings::from_vars(&vars(&[("PORT", "eighty"), ("DEBUG", "maybe"), ("DATABASE_URL", "mysql://x")]))
            .err()
            .unwrap();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn rate_limits_lockout_and_redis() {
        let s = Settings::from_vars(&vars(&[
            ("RATE_LIMIT_LOGIN", "10/1m"),
            ("LOCKOUT_DURATION", "30s"),
            ("REDIS_HOST", "cache"),
            ("REDIS_PASSWORD", "p@ss word"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(s.rate_limits.login, vec![Window { limit: 10, secs: 60 }]);
        assert_eq!(s.rate_limits.register, vec![Window { limit: 3, secs: 3600 }]);
        assert_eq!((s.lockout.threshold, s.lockout.base_secs, s.lockout.max_secs), (5, 30, 86_400));
        assert_eq!(s.redis_url.unwrap().expose_secret(), "redis://:p%40ss%20word@cache:6379/0");
        assert_eq!(s.trusted_proxies.len(), 2);
        let errs = Settings::from_vars(&vars(&[
            ("RATE_LIMIT_LOGIN", "lots"),
            ("TRUSTED_PROXIES", "nope"),
            ("LOCKOUT_MAX", "x"),
        ]))
        .err()
        .unwrap();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn redacts_database_password() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("sqlite://tessera.db"), "sqlite://tessera.db");
    }

    #[test]
    fn every_read_name_is_documented() {
        let src = include_str!("settings.rs");
        for doc in SETTINGS {
            for name in doc.names {
                assert!(src.matches(&format!("\"{name}\"")).count() >= 2, "{name} documented but never read");
            }
        }
    }
}
