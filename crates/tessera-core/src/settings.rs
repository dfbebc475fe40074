//! Configuration from environment variables (and an optional `.env` file), with the
//! names the seed systems use (SPEC §7), production validation and generated docs.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
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
    pub verify: Vec<Window>,
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

/// One setting: every name it is read from (the first is canonical), the value it takes
/// when unset (read exactly as a set value would be), and what it means. This table is
/// the only place a default is written; `tessera config docs` prints it.
pub struct SettingDoc {
    pub names: &'static [&'static str],
    /// The value used when the setting is unset; `None`: unset means absent, or a value
    /// computed from other settings (then `shown` says which).
    pub default: Option<&'static str>,
    /// What the documentation shows as the default, when it is not `default` itself.
    pub shown: Option<&'static str>,
    pub meaning: &'static str,
}

impl SettingDoc {
    /// The default as the documentation shows it.
    pub fn shown_default(&self) -> String {
        match (self.shown, self.default) {
            (Some(shown), _) => shown.to_owned(),
            (None, Some(v)) => format!("`{v}`"),
            (None, None) => "(none)".to_owned(),
        }
    }
}

const fn setting(names: &'static [&'static str], default: &'static str, meaning: &'static str) -> SettingDoc {
    SettingDoc { names, default: Some(default), shown: None, meaning }
}

const fn unset(names: &'static [&'static str], shown: &'static str, meaning: &'static str) -> SettingDoc {
    SettingDoc { names, default: None, shown: Some(shown), meaning }
}

/// Every setting tessera reads, in the order `tessera config docs` prints them.
#[rustfmt::skip]
pub const SETTINGS: &[SettingDoc] = &[
    setting(&["ENVIRONMENT", "APP_ENV"], "development", "development, staging or production; production refuses unsafe settings"),
    setting(&["DEBUG"], "false", "debug mode; refused in production"),
    setting(&["HOST"], "127.0.0.1", "address to listen on"),
    setting(&["PORT"], "8000", "TCP port to listen on"),
    setting(&["HTTP_HEADER_TIMEOUT"], "10", "seconds a request head may take to arrive, from the connection's start or the first byte after an idle keep-alive; a connection that misses it is closed"),
    setting(&["HTTP_BODY_TIMEOUT"], "30", "seconds a request may take, its body included, once its head has arrived; beyond it the answer is 408 and the connection is closed"),
    setting(&["HTTP_IDLE_TIMEOUT"], "60", "seconds a keep-alive connection may stay idle between requests before it is closed"),
    unset(&["HTTP_MAX_CONNECTIONS"], "(from the file-descriptor limit)", "connections served at once; beyond it new ones wait in the kernel's backlog. The default is the open-file limit (raised to its hard limit at start) less a tenth of it, at least 128, kept for the database, Redis, SMTP and files"),
    unset(&["PUBLIC_URL"], "`http://HOST:PORT`", "the public base URL of this server, used to build links"),
    setting(&["DATABASE_URL"], "sqlite://tessera.db", "sqlite://FILE or postgres://USER:PASS@HOST/DB (postgresql+asyncpg:// accepted)"),
    setting(&["DB_POOL_SIZE"], "10", "database connections kept in the pool; on PostgreSQL up to this many of them stay checked out between the statements every request runs (the session check, refresh)"),
    setting(&["DB_MAX_OVERFLOW"], "20", "extra PostgreSQL connections allowed above the pool size"),
    setting(&["DB_POOL_TIMEOUT"], "30", "seconds to wait for a free connection before answering 503"),
    setting(&["DB_POOL_RECYCLE"], "3600", "seconds after which a PostgreSQL connection is replaced"),
    setting(&["SESSION_CACHE_MS"], "1000", "on a SQLite file, how long the session check may answer a session and its user from memory; writes through any tessera server or command on the file are seen at once, so this only bounds how long a write by another program (the sqlite3 shell) goes unseen; 0 turns the cache off"),
    setting(&["AUTO_MIGRATE"], "true", "run pending migrations at start-up"),
    unset(&["REDIS_URL"], "(none: in memory)", "redis://[:PASSWORD@]HOST:PORT/DB; shares rate limits and lockout across nodes"),
    unset(&["REDIS_HOST"], "(none)", "Redis host, when REDIS_URL is not set"),
    setting(&["REDIS_PORT"], "6379", "Redis port, with REDIS_HOST"),
    unset(&["REDIS_PASSWORD"], "(none)", "Redis password, with REDIS_HOST"),
    unset(&["JWT_SECRET_KEY", "JWT_SECRET"], "(generated in development)", "HMAC key for access tokens, at least 32 bytes; in development, when unset, a random one is generated once and kept in the database, so every node sharing the database uses it"),
    setting(&["JWT_ALGORITHM"], "HS256", "HS256, HS384 or HS512 (signed with JWT_SECRET_KEY), or RS256, ES256 or EdDSA (signed with JWT_PRIVATE_KEY, public half at /.well-known/jwks.json); a token whose header names another algorithm is refused"),
    unset(&["JWT_PRIVATE_KEY"], "(none)", "the PEM private key of RS256 (RSA, PKCS#8 or PKCS#1), ES256 (P-256, PKCS#8) or EdDSA (Ed25519, PKCS#8); \\n in the value stands for a line break"),
    unset(&["JWT_PRIVATE_KEY_FILE"], "(none)", "a file holding JWT_PRIVATE_KEY"),
    unset(&["JWT_KEY_ID"], "(the key's RFC 7638 thumbprint)", "the kid of the asymmetric signing key, in every token's header and in the JWKS"),
    unset(&["JWT_PREVIOUS_PUBLIC_KEYS"], "(none)", "public keys tokens signed earlier may carry (a JWK set {\"keys\":[…]} or a JSON array of JWKs, each with its kid): published in the JWKS and accepted until those tokens expire"),
    setting(&["JWT_ISSUER"], "tessera", "the iss claim of access tokens"),
    setting(&["JWT_AUDIENCE"], "authenticated", "the aud claim of access tokens"),
    setting(&["ACCESS_TOKEN_EXPIRE_MINUTES"], "15", "access token lifetime"),
    setting(&["REFRESH_TOKEN_EXPIRE_DAYS"], "7", "refresh token (session) lifetime"),
    unset(&["REFRESH_TOKEN_SECRET"], "(derived from the JWT secret)", "key that seals refresh tokens, at least 32 bytes; a comma-separated list rotates keys: the first seals new tokens, every one listed still opens the tokens it sealed. Unset, a key derived from the JWT secret (set or generated), in every environment; must be set when only an asymmetric JWT key is configured outside development"),
    unset(&["MFA_ENCRYPTION_KEY"], "(generated in development; required in production)", "the key TOTP secrets are encrypted under (AES-256-GCM): the base64 of 32 bytes, or a key ring KID:BASE64KEY,... whose first key encrypts and every one decrypts; in development, when unset, generated once and kept in the database"),
    setting(&["ADMIN_MFA_REQUIRED"], "false", "admin routes called with a user's token answer 403 mfa_required unless its session signed in with a second factor (API keys are unaffected)"),
    setting(&["REFRESH_TOKEN_REUSE_INTERVAL"], "10", "seconds during which the token a refresh just replaced still answers the session's current token (two tabs, a retry); after that, presenting it revokes the session"),
    setting(&["MAX_SESSIONS_PER_USER"], "0", "0 = unlimited; otherwise the oldest session is revoked when a new one would exceed it"),
    setting(&["SECURE_COOKIES"], "true", "mark the refresh cookie Secure (and send HSTS); must be true in production"),
    unset(&["CORS_ORIGINS"], "(none)", "comma-separated origins allowed by CORS; * is refused in production"),
    unset(&["ALLOWED_HOSTS"], "(any)", "comma-separated Host header values accepted, each a host (any port) or a host:port; others answer 400"),
    unset(&["TRUSTED_PROXIES"], "(none)", "comma-separated IPs or CIDRs of proxies whose X-Forwarded-For / X-Real-IP is believed"),
    setting(&["RATE_LIMIT_ENABLED"], "true", "false turns every rate limit and the lockout off"),
    unset(&["RATE_LIMIT_EXEMPT_LOOPBACK"], "`true` in development (`false` elsewhere)", "clients on a loopback address (127.0.0.0/8, ::1) are not counted by the per-IP limits, so a developer's scripts can run again and again; the per-address limits and the lockout still apply"),
    setting(&["RATE_LIMIT_LOGIN"], "5/15m,1/1s", "sign-ins per client IP: LIMIT/PERIOD windows (units s, m, h, d)"),
    setting(&["RATE_LIMIT_REGISTER"], "3/1h", "sign-ups per client IP"),
    setting(&["RATE_LIMIT_RECOVER"], "3/1h", "password-recovery requests per email address"),
    setting(&["RATE_LIMIT_OTP"], "3/1h", "verification and one-time-code sends per address"),
    setting(&["RATE_LIMIT_VERIFY"], "30/1h", "per client IP: checks of a link token or code (email verification, password-reset confirmation, MFA codes), and recovery and resend requests"),
    setting(&["RATE_LIMIT_MEMORY_KEYS"], "100000", "without Redis: the most rate-limit and lockout keys kept in memory; the least recently used go first"),
    setting(&["LOCKOUT_THRESHOLD"], "5", "consecutive failed sign-ins for one email before it is locked"),
    setting(&["LOCKOUT_DURATION"], "15m", "first lockout; doubles on each repeat offence"),
    setting(&["LOCKOUT_MAX"], "24h", "longest lockout"),
    setting(&["EMAIL_AUTOCONFIRM"], "false", "sign-ups on every surface are confirmed at once and no verification mail is sent (GoTrue's mailer autoconfirm)"),
    setting(&["REQUIRE_EMAIL_VERIFICATION"], "false", "unverified accounts answer 403 email_not_verified at sign-in"),
    unset(&["SITE_URL"], "`PUBLIC_URL`", "the application's URL (GoTrue's SITE_URL): where the Supabase surface's links send the browser when the request names no allowed redirect"),
    unset(&["REDIRECT_URLS"], "(none)", "comma-separated URLs (GoTrue's additional redirect URLs) a Supabase request's `redirect_to` may start with; any other is replaced by SITE_URL"),
    setting(&["SUPABASE_REQUIRE_APIKEY"], "false", "`/auth/v1` refuses requests without an `apikey` header holding a JWT signed with the server's key (the `anon` or `service_role` key of `tessera keys supabase`), as Supabase's gateway does"),
    setting(&["SECURE_EMAIL_CHANGE"], "true", "an email change is confirmed from both the new and the current address; false: from the new one alone"),
    setting(&["MAIL_TRANSPORT"], "log", "smtp, file or log; log is refused in production"),
    setting(&["MAIL_FROM"], "tessera <no-reply@localhost>", "sender of every mail"),
    setting(&["MAIL_DIR"], "mail", "where the file transport writes one .eml per message"),
    unset(&["MAIL_TEMPLATES_DIR"], "(built in)", "directory of NAME.subject / NAME.txt / NAME.html files overriding the built-in templates"),
    setting(&["MAIL_RETRY_MAX_DELAY"], "5m", "longest wait between delivery attempts, and longest circuit-breaker pause"),
    setting(&["SMTP_HOST"], "localhost", "SMTP server"),
    unset(&["SMTP_PORT"], "`587` (`465` with SMTP_TLS=tls, `25` with none)", "SMTP port"),
    unset(&["SMTP_USER"], "(none)", "SMTP user name; authentication is used when set"),
    unset(&["SMTP_PASSWORD"], "(none)", "SMTP password"),
    setting(&["SMTP_TLS"], "starttls", "starttls, tls (implicit) or none"),
    setting(&["PRODUCT_NAME"], "tessera", "the product name in mails and pages"),
    unset(&["VERIFY_EMAIL_URL"], "`PUBLIC_URL/verify-email`", "page that email-verification links open (gets ?token=…)"),
    unset(&["RESET_PASSWORD_URL"], "`PUBLIC_URL/reset-password`", "page that password-reset links open (gets ?token=…)"),
    setting(&["PASSWORD_MIN_LENGTH"], "8", "minimum password length"),
    setting(&["PASSWORD_MAX_LENGTH"], "128", "maximum password length (at most 1024)"),
    setting(&["PASSWORD_REQUIRE_UPPERCASE"], "true", "a password needs an upper-case letter"),
    setting(&["PASSWORD_REQUIRE_LOWERCASE"], "true", "a password needs a lower-case letter"),
    setting(&["PASSWORD_REQUIRE_DIGIT"], "true", "a password needs a digit"),
    setting(&["PASSWORD_REQUIRE_SPECIAL"], "true", "a password needs a special character"),
    setting(&["PASSWORD_REJECT_COMMON"], "true", "refuse passwords from the shipped list of common passwords"),
    setting(&["PASSWORD_REJECT_EMAIL"], "true", "refuse passwords containing the email's local part"),
    setting(&["ARGON2_MEMORY_KIB"], "19456", "Argon2id memory cost in KiB"),
    setting(&["ARGON2_ITERATIONS"], "2", "Argon2id time cost"),
    setting(&["ARGON2_PARALLELISM"], "1", "Argon2id lanes"),
    unset(&["HASH_WORKERS"], "(CPU count)", "threads computing password hashes, each keeping its Argon2 memory while busy (let go after 1 s idle)"),
    setting(&["HASH_QUEUE"], "64", "password hashes allowed to wait; beyond it sign-in answers 503 with Retry-After"),
    setting(&["LOG_LEVEL"], "info", "trace, debug, info, warn, error or off, or a filter of target=level directives (e.g. info,tessera_core=debug); anything else is refused"),
    unset(&["LOG_FORMAT"], "`pretty` (`json` in production)", "json or pretty"),
    unset(&["LOG_FILE"], "(stdout)", "append logs to this file instead of stdout"),
    unset(&["OPENAPI_ENABLED"], "`true` (`false` in production)", "serve /docs and /openapi.json"),
    unset(&["METRICS_ENABLED"], "`true` (`false` in production, unless METRICS_ADDR is set)", "count requests, sign-ins, refreshes, limits, hashing, mail and the database, and serve them as Prometheus text at GET /metrics"),
    unset(&["METRICS_ADDR"], "(the main listener)", "HOST:PORT of a listener of its own for GET /metrics (which the main listener then does not serve); setting it turns metrics on"),
    unset(&["FIRST_ADMIN_EMAIL"], "(none)", "with FIRST_ADMIN_PASSWORD: the admin created at start-up when no admin exists"),
    unset(&["FIRST_ADMIN_PASSWORD"], "(none)", "the first admin's password; must satisfy the password policy"),
    unset(&["AUDIT_LOG_DIR"], "(none)", "also append every audit event as a JSON line to audit-YYYY-MM-DD.jsonl (UTC) in this directory"),
    setting(&["DELETED_RETENTION_DAYS"], "30", "days an account deleted by its owner can still be restored by an admin; after them the purge removes it for good (0: at the next purge)"),
    unset(&["PII_ENCRYPTION_KEY"], "(none: stored in plaintext)", "encrypts email addresses and phone numbers at rest (AES-256-GCM; users, pending addresses, audit details, the mail outbox) and finds addresses through a keyed HMAC-SHA-256 blind index: the base64 of 32 bytes, or a key ring KID:BASE64KEY,... whose first key encrypts and every one decrypts. `tessera pii encrypt` encrypts what was stored before, `tessera pii rotate` re-encrypts under the first key. A database holding data under a key the setting lacks refuses to start"),
    setting(&["PURGE_INTERVAL"], "1h", "how often the purge runs (accounts past their retention, expired sessions and tokens, mail sent over a day ago); a lease in the database lets one node at a time run it"),
];

/// The entry of `SETTINGS` whose canonical name is `key`.
fn doc(key: &str) -> Option<&'static SettingDoc> {
    SETTINGS.iter().find(|d| d.names.first() == Some(&key))
}

/// The settings table as markdown, what `tessera config docs` prints.
pub fn docs_markdown() -> String {
    let mut out = String::from("| setting | default | meaning |\n|---|---|---|\n");
    for s in SETTINGS {
        let names = s.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" / ");
        out.push_str(&format!("| {names} | {} | {} |\n", s.shown_default(), s.meaning));
    }
    out
}

/// tessera's whole configuration.
#[derive(Clone)]
pub struct Settings {
    pub environment: Environment,
    pub debug: bool,
    pub host: String,
    pub port: u16,
    pub http_header_timeout: Duration,
    pub http_body_timeout: Duration,
    pub http_idle_timeout: Duration,
    /// `None`: derived from the file-descriptor limit when the server starts.
    pub http_max_connections: Option<usize>,
    pub public_url: String,
    pub database_url: SecretString,
    pub db_pool_size: u32,
    pub db_max_overflow: u32,
    pub db_pool_timeout: Duration,
    pub db_pool_recycle: Duration,
    /// On a SQLite file, how long a session check's rows are answered from memory; 0: off.
    pub session_cache_ms: u64,
    pub auto_migrate: bool,
    /// `None` until [`Settings::ensure_secrets`] has run in development.
    pub jwt_secret: Option<SecretString>,
    /// The refresh-token keys, the first sealing; empty: derived from the JWT secret
    /// (filled from the file beside the database by [`Settings::ensure_secrets`] in
    /// development).
    pub refresh_token_secret: Vec<SecretString>,
    /// The key ring TOTP secrets are encrypted under; `None` until
    /// [`Settings::ensure_secrets`] has run in development.
    pub mfa_encryption_key: Option<SecretString>,
    /// `PII_ENCRYPTION_KEY`: the key ring personal data is encrypted under (none: plaintext).
    pub pii_encryption_key: Option<SecretString>,
    /// Whether admin routes need an aal2 session from a user's token.
    pub admin_mfa_required: bool,
    pub jwt_algorithm: String,
    /// `JWT_PRIVATE_KEY` (or the contents of `JWT_PRIVATE_KEY_FILE`): PEM.
    pub jwt_private_key: Option<SecretString>,
    /// `JWT_KEY_ID`.
    pub jwt_key_id: Option<String>,
    /// `JWT_PREVIOUS_PUBLIC_KEYS`: JSON.
    pub jwt_previous_public_keys: Option<String>,
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
    /// Whether loopback clients skip the per-IP limits (development's default).
    pub rate_limit_exempt_loopback: bool,
    pub rate_limits: RateLimits,
    /// Without Redis, the most rate-limit and lockout keys kept in memory.
    pub rate_limit_memory_keys: usize,
    pub lockout: LockoutPolicy,
    pub require_email_verification: bool,
    /// `EMAIL_AUTOCONFIRM`: sign-ups are confirmed at once, with no verification mail.
    pub email_autoconfirm: bool,
    /// Whether an email change needs the current address's confirmation too.
    pub secure_email_change: bool,
    /// `SITE_URL`: where the Supabase surface's links land by default.
    pub site_url: String,
    /// `REDIRECT_URLS`: the prefixes a Supabase `redirect_to` may start with.
    pub redirect_urls: Vec<String>,
    /// `SUPABASE_REQUIRE_APIKEY`: `/auth/v1` refuses requests without a valid `apikey`.
    pub supabase_require_apikey: bool,
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
    /// Whether metrics are counted and served.
    pub metrics_enabled: bool,
    /// Where `/metrics` is served when not on the main listener.
    pub metrics_addr: Option<String>,
    /// The admin to create at start-up when none exists (email, password).
    pub first_admin: Option<(String, SecretString)>,
    pub audit_log_dir: Option<PathBuf>,
    /// How long a self-deleted account can be restored before the purge removes it.
    pub deleted_retention: Duration,
    /// How often the purge runs.
    pub purge_interval: Duration,
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

/// Reads variables from a map by their entry in [`SETTINGS`] (every name, then the
/// default), collecting every problem instead of stopping at the first.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    /// The set value (and the name it was set under), else the default.
    fn lookup(&mut self, key: &str) -> Option<(String, String)> {
        let Some(doc) = doc(key) else {
            self.problems.push(format!("{key} is read but not documented in SETTINGS"));
            return None;
        };
        let set = doc.names.iter().find_map(|n| {
            self.vars.get(*n).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(|v| ((*n).to_owned(), v))
        });
        set.or_else(|| doc.default.map(|d| (key.to_owned(), d.to_owned())))
    }

    /// The value, or `None` when unset with no default.
    fn opt(&mut self, key: &str) -> Option<String> {
        self.lookup(key).map(|(_, v)| v)
    }

    fn string(&mut self, key: &str) -> String {
        self.opt(key).unwrap_or_default()
    }

    fn parse<T: std::str::FromStr + Default>(&mut self, key: &str, what: &str) -> T {
        self.parse_opt(key, what).unwrap_or_default()
    }

    fn parse_opt<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Option<T> {
        let (name, v) = self.lookup(key)?;
        match v.parse() {
            Ok(x) => Some(x),
            Err(_) => {
                self.problems.push(format!("{name}={v:?} is not {what}"));
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> bool {
        self.boolean_opt(key).unwrap_or(false)
    }

    fn boolean_opt(&mut self, key: &str) -> Option<bool> {
        let (name, v) = self.lookup(key)?;
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => {
                self.problems.push(format!("{name}={v:?} is not true or false"));
                None
            }
        }
    }

    fn secs(&mut self, key: &str) -> Duration {
        Duration::from_secs(self.parse(key, "a whole number of seconds"))
    }

    fn windows(&mut self, key: &str) -> Vec<Window> {
        let (name, raw) = self.lookup(key).unwrap_or_default();
        parse_windows(&raw).unwrap_or_else(|e| {
            self.problems.push(format!("{name}: {e}"));
            Vec::new()
        })
    }

    fn duration(&mut self, key: &str) -> u64 {
        let (name, raw) = self.lookup(key).unwrap_or_default();
        parse_duration(&raw).filter(|d| *d > 0).unwrap_or_else(|| {
            self.problems.push(format!("{name}={raw:?} is not a duration such as 15m, 24h or 30s"));
            1
        })
    }

    fn list(&mut self, key: &str) -> Vec<String> {
        let raw = self.opt(key).unwrap_or_default();
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
        let environment = match r.string("ENVIRONMENT").to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" => Environment::Development,
            "staging" => Environment::Staging,
            "production" | "prod" => Environment::Production,
            other => {
                r.problems.push(format!("ENVIRONMENT={other:?} is not development, staging or production"));
                Environment::Development
            }
        };
        let production = environment == Environment::Production;
        let host = r.string("HOST");
        let port: u16 = r.parse("PORT", "a port number");
        let public_url =
            r.opt("PUBLIC_URL").unwrap_or_else(|| format!("http://{host}:{port}")).trim_end_matches('/').to_owned();
        let jwt_algorithm = match r.string("JWT_ALGORITHM").to_ascii_uppercase().as_str() {
            "EDDSA" => "EdDSA".to_owned(),
            other => other.to_owned(),
        };
        if !matches!(jwt_algorithm.as_str(), "HS256" | "HS384" | "HS512" | "RS256" | "ES256" | "EdDSA") {
            r.problems.push(format!(
                "JWT_ALGORITHM={jwt_algorithm:?} is not supported (use HS256, HS384, HS512, RS256, ES256 or EdDSA)"
            ));
        }
        let jwt_private_key = match (r.opt("JWT_PRIVATE_KEY"), r.opt("JWT_PRIVATE_KEY_FILE")) {
            (Some(pem), _) => Some(SecretString::from(pem.replace("\\n", "\n"))),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(pem) => Some(SecretString::from(pem)),
                Err(e) => {
                    r.problems.push(format!("JWT_PRIVATE_KEY_FILE {path}: {e}"));
                    None
                }
            },
            (None, None) => None,
        };
        let mail_transport = match r.string("MAIL_TRANSPORT").to_ascii_lowercase().as_str() {
            "smtp" => MailTransport::Smtp,
            "file" => MailTransport::File,
            "log" => MailTransport::Log,
            other => {
                r.problems.push(format!("MAIL_TRANSPORT={other:?} is not smtp, file or log"));
                MailTransport::Log
            }
        };
        let log_format = match r.opt("LOG_FORMAT").map(|s| s.to_ascii_lowercase()).as_deref() {
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") | Some("text") => LogFormat::Pretty,
            Some(other) => {
                r.problems.push(format!("LOG_FORMAT={other:?} is not json or pretty"));
                LogFormat::Pretty
            }
        };
        let password_policy = PasswordPolicy {
            min_length: r.parse("PASSWORD_MIN_LENGTH", "a whole number"),
            max_length: r.parse("PASSWORD_MAX_LENGTH", "a whole number"),
            require_uppercase: r.boolean("PASSWORD_REQUIRE_UPPERCASE"),
            require_lowercase: r.boolean("PASSWORD_REQUIRE_LOWERCASE"),
            require_digit: r.boolean("PASSWORD_REQUIRE_DIGIT"),
            require_special: r.boolean("PASSWORD_REQUIRE_SPECIAL"),
            reject_common: r.boolean("PASSWORD_REJECT_COMMON"),
            reject_email: r.boolean("PASSWORD_REJECT_EMAIL"),
        };
        if password_policy.min_length > password_policy.max_length || password_policy.max_length > 1024 {
            r.problems
                .push("PASSWORD_MIN_LENGTH must not exceed PASSWORD_MAX_LENGTH, which must be at most 1024".to_owned());
        }
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let public_url_for_links = public_url.clone();
        let s = Settings {
            environment,
            debug: r.boolean("DEBUG"),
            host,
            port,
            http_header_timeout: r.secs("HTTP_HEADER_TIMEOUT"),
            http_body_timeout: r.secs("HTTP_BODY_TIMEOUT"),
            http_idle_timeout: r.secs("HTTP_IDLE_TIMEOUT"),
            http_max_connections: r.parse_opt("HTTP_MAX_CONNECTIONS", "a whole number"),
            public_url: public_url.clone(),
            database_url: SecretString::from(r.string("DATABASE_URL")),
            db_pool_size: r.parse("DB_POOL_SIZE", "a whole number"),
            db_max_overflow: r.parse("DB_MAX_OVERFLOW", "a whole number"),
            db_pool_timeout: r.secs("DB_POOL_TIMEOUT"),
            db_pool_recycle: r.secs("DB_POOL_RECYCLE"),
            session_cache_ms: r.parse("SESSION_CACHE_MS", "a whole number of milliseconds"),
            auto_migrate: r.boolean("AUTO_MIGRATE"),
            jwt_secret: r.opt("JWT_SECRET_KEY").map(SecretString::from),
            refresh_token_secret: r.list("REFRESH_TOKEN_SECRET").into_iter().map(SecretString::from).collect(),
            mfa_encryption_key: r.opt("MFA_ENCRYPTION_KEY").map(SecretString::from),
            pii_encryption_key: r.opt("PII_ENCRYPTION_KEY").map(SecretString::from),
            admin_mfa_required: r.boolean("ADMIN_MFA_REQUIRED"),
            jwt_algorithm,
            jwt_private_key,
            jwt_key_id: r.opt("JWT_KEY_ID"),
            jwt_previous_public_keys: r.opt("JWT_PREVIOUS_PUBLIC_KEYS"),
            jwt_issuer: r.string("JWT_ISSUER"),
            jwt_audience: r.string("JWT_AUDIENCE"),
            access_token_ttl: Duration::from_secs(
                60 * r.parse::<u64>("ACCESS_TOKEN_EXPIRE_MINUTES", "a whole number of minutes"),
            ),
            refresh_token_ttl: Duration::from_secs(
                86_400 * r.parse::<u64>("REFRESH_TOKEN_EXPIRE_DAYS", "a whole number of days"),
            ),
            refresh_reuse_interval: r.secs("REFRESH_TOKEN_REUSE_INTERVAL"),
            max_sessions_per_user: r.parse("MAX_SESSIONS_PER_USER", "a whole number"),
            secure_cookies: r.boolean("SECURE_COOKIES"),
            cors_origins: r.list("CORS_ORIGINS"),
            allowed_hosts: r.list("ALLOWED_HOSTS"),
            trusted_proxies: {
                let mut nets = Vec::new();
                for raw in r.list("TRUSTED_PROXIES") {
                    match Cidr::parse(&raw) {
                        Ok(c) => nets.push(c),
                        Err(e) => r.problems.push(format!("TRUSTED_PROXIES: {e}")),
                    }
                }
                nets
            },
            redis_url: redis_url(&mut r).map(SecretString::from),
            rate_limit_enabled: r.boolean("RATE_LIMIT_ENABLED"),
            rate_limit_exempt_loopback: r
                .boolean_opt("RATE_LIMIT_EXEMPT_LOOPBACK")
                .unwrap_or(environment == Environment::Development),
            rate_limits: RateLimits {
                login: r.windows("RATE_LIMIT_LOGIN"),
                register: r.windows("RATE_LIMIT_REGISTER"),
                recover: r.windows("RATE_LIMIT_RECOVER"),
                otp: r.windows("RATE_LIMIT_OTP"),
                verify: r.windows("RATE_LIMIT_VERIFY"),
            },
            rate_limit_memory_keys: r.parse::<usize>("RATE_LIMIT_MEMORY_KEYS", "a whole number").max(1),
            lockout: LockoutPolicy {
                threshold: r.parse::<u64>("LOCKOUT_THRESHOLD", "a whole number").max(1),
                base_secs: r.duration("LOCKOUT_DURATION"),
                max_secs: r.duration("LOCKOUT_MAX"),
            },
            require_email_verification: r.boolean("REQUIRE_EMAIL_VERIFICATION"),
            email_autoconfirm: r.boolean("EMAIL_AUTOCONFIRM"),
            secure_email_change: r.boolean("SECURE_EMAIL_CHANGE"),
            site_url: r.opt("SITE_URL").unwrap_or_else(|| public_url.clone()).trim_end_matches('/').to_owned(),
            redirect_urls: r.list("REDIRECT_URLS"),
            supabase_require_apikey: r.boolean("SUPABASE_REQUIRE_APIKEY"),
            mail_transport,
            mail: {
                let smtp_tls = match r.string("SMTP_TLS").to_ascii_lowercase().as_str() {
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
                let mut link =
                    |name: &str, path: &str| r.opt(name).unwrap_or_else(|| format!("{public_url_for_links}{path}"));
                let verify_email_url = link("VERIFY_EMAIL_URL", "/verify-email");
                let reset_password_url = link("RESET_PASSWORD_URL", "/reset-password");
                MailSettings {
                    transport: mail_transport,
                    from: r.string("MAIL_FROM"),
                    dir: PathBuf::from(r.string("MAIL_DIR")),
                    templates_dir: r.opt("MAIL_TEMPLATES_DIR").map(PathBuf::from),
                    retry_max_delay: Duration::from_secs(r.duration("MAIL_RETRY_MAX_DELAY")),
                    smtp_host: r.string("SMTP_HOST"),
                    smtp_port: r.parse_opt("SMTP_PORT", "a port number").unwrap_or(default_port),
                    smtp_user: r.opt("SMTP_USER"),
                    smtp_password: r.opt("SMTP_PASSWORD").map(SecretString::from),
                    smtp_tls,
                    product_name: r.string("PRODUCT_NAME"),
                    verify_email_url,
                    reset_password_url,
                }
            },
            password_policy,
            argon2_memory_kib: r.parse("ARGON2_MEMORY_KIB", "a whole number of KiB"),
            argon2_iterations: r.parse("ARGON2_ITERATIONS", "a whole number"),
            argon2_parallelism: r.parse("ARGON2_PARALLELISM", "a whole number"),
            hash_workers: r.parse_opt("HASH_WORKERS", "a whole number").unwrap_or(cpus).max(1),
            hash_queue: r.parse("HASH_QUEUE", "a whole number"),
            log_level: r.string("LOG_LEVEL"),
            log_format,
            log_file: r.opt("LOG_FILE").map(PathBuf::from),
            openapi_enabled: r.boolean_opt("OPENAPI_ENABLED").unwrap_or(!production),
            metrics_addr: r.opt("METRICS_ADDR"),
            metrics_enabled: r.boolean_opt("METRICS_ENABLED").unwrap_or(!production || r.opt("METRICS_ADDR").is_some()),
            first_admin: match (r.opt("FIRST_ADMIN_EMAIL"), r.opt("FIRST_ADMIN_PASSWORD")) {
                (Some(email), Some(password)) => Some((email, SecretString::from(password))),
                (None, None) => None,
                _ => {
                    r.problems.push("FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD must be set together".to_owned());
                    None
                }
            },
            audit_log_dir: r.opt("AUDIT_LOG_DIR").map(PathBuf::from),
            deleted_retention: Duration::from_secs(
                r.parse::<u64>("DELETED_RETENTION_DAYS", "a whole number of days").min(36_500) * 86_400,
            ),
            purge_interval: Duration::from_secs(r.duration("PURGE_INTERVAL")),
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
        if s.http_header_timeout.is_zero() || s.http_body_timeout.is_zero() || s.http_idle_timeout.is_zero() {
            r.problems.push("HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT and HTTP_IDLE_TIMEOUT must be positive".to_owned());
        }
        if s.http_max_connections == Some(0) {
            r.problems.push("HTTP_MAX_CONNECTIONS must be positive".to_owned());
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
        let urls = [
            ("PUBLIC_URL", &s.public_url),
            ("SITE_URL", &s.site_url),
            ("VERIFY_EMAIL_URL", &s.mail.verify_email_url),
            ("RESET_PASSWORD_URL", &s.mail.reset_password_url),
        ];
        let public_url_broken = check_url(&s.public_url).is_err();
        for (name, url) in urls.into_iter().chain(s.redirect_urls.iter().map(|u| ("REDIRECT_URLS", u))) {
            // What defaults to PUBLIC_URL is broken with it: said once, of PUBLIC_URL.
            let derived = name != "PUBLIC_URL" && public_url_broken && url.starts_with(&s.public_url);
            if derived {
                continue;
            }
            if let Err(e) = check_url(url) {
                r.problems.push(format!("{name}={url:?} is not a URL: {e}"));
            }
        }
        if let Err(e) = check_log_filter(&s.log_level) {
            r.problems.push(format!("LOG_LEVEL={:?}: {e}", s.log_level));
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
        if self.jwt_secret.is_none() && self.needs_jwt_secret() {
            p.push("JWT_SECRET_KEY must be set in production (with an asymmetric JWT_ALGORITHM, REFRESH_TOKEN_SECRET will do)".to_owned());
        }
        if self.mfa_encryption_key.is_none() {
            p.push("MFA_ENCRYPTION_KEY must be set in production (the base64 of 32 random bytes)".to_owned());
        }
        p.extend(self.secret_problems());
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

    /// Checks the secrets the server signs with before anything starts. Outside
    /// development the JWT secret must be set (an unset refresh-token key is derived from
    /// it); in development a key nothing configures is generated once and kept in the
    /// database when the core starts ([`crate::secrets::resolve`]).
    pub fn ensure_secrets(&mut self) -> Result<(), String> {
        if self.jwt_secret.is_none() && self.needs_jwt_secret() && !self.is_development() {
            return Err("JWT_SECRET_KEY must be set outside development".to_owned());
        }
        if !self.is_development() {
            let short = self.secret_problems();
            if let Some(first) = short.into_iter().next() {
                return Err(first);
            }
        }
        Ok(())
    }

    /// Secrets set but too short to be keys.
    /// Whether `JWT_SECRET_KEY` is needed: to sign with an HS algorithm, or to derive the
    /// refresh-token key when `REFRESH_TOKEN_SECRET` is unset.
    pub(crate) fn needs_jwt_secret(&self) -> bool {
        !self.jwt_asymmetric() || self.refresh_token_secret.is_empty()
    }

    /// Whether access tokens are signed with a private key (RS256, ES256, EdDSA).
    pub fn jwt_asymmetric(&self) -> bool {
        !self.jwt_algorithm.starts_with("HS")
    }

    fn secret_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.jwt_asymmetric() {
            if let Err(e) = crate::session::tokens::JwtKeys::from_settings(self) {
                p.push(e);
            }
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.expose_secret().len() < 32) {
            p.push("JWT_SECRET_KEY must be at least 32 bytes long".to_owned());
        }
        if self.refresh_token_secret.iter().any(|s| s.expose_secret().len() < 32) {
            p.push("every REFRESH_TOKEN_SECRET key must be at least 32 bytes long".to_owned());
        }
        if let Some(Err(e)) =
            self.mfa_encryption_key.as_ref().map(|k| crate::mfa::keys::MfaKeys::parse(k.expose_secret()))
        {
            p.push(format!("MFA_ENCRYPTION_KEY: {e}"));
        }
        if let Some(Err(e)) =
            self.pii_encryption_key.as_ref().map(|k| tessera_store::pii::Pii::parse(k.expose_secret()))
        {
            p.push(format!("PII_ENCRYPTION_KEY: {e}"));
        }
        p
    }

    /// Where a development server before keys were kept in the database kept one
    /// (`jwt-secret`, `refresh-secret`, `mfa-key`): beside the SQLite file, or in the
    /// working directory for other databases. Read once, to take it into the database.
    pub fn dev_secret_path(&self, what: &str) -> PathBuf {
        match tessera_store::sqlite_path(self.database_url.expose_secret()) {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(format!(".{what}"));
                db.with_file_name(name)
            }
            None => PathBuf::from(format!("tessera.{what}")),
        }
    }
}

/// Whether `url` is an absolute `http://` or `https://` URL with a host, as links and
/// token issuers are built from (a typo there makes every link, and `iss`, wrong).
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must start with http:// or https://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let name = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if name.is_empty() || name.starts_with(':') {
        return Err("it names no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds a space");
    }
    Ok(())
}

/// The levels a log filter names.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Whether `filter` is a log filter that means what it says: a level, or directives
/// `target=level` separated by commas. A bare word that is no level (`verbose`) would be
/// read as a target and silently turn every other log off.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    let level = |l: &str| LOG_LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match directive.rsplit_once('=') {
            Some((target, l)) => !target.trim().is_empty() && level(l),
            None => level(directive),
        };
        if !ok {
            return Err(format!(
                "{directive:?} is not a level ({}) nor a target=level directive",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// `REDIS_URL`, or one built from `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD`.
fn redis_url(r: &mut Reader) -> Option<String> {
    if let Some(url) = r.opt("REDIS_URL") {
        return Some(url);
    }
    let host = r.opt("REDIS_HOST")?;
    let port = r.string("REDIS_PORT");
    let auth = match r.opt("REDIS_PASSWORD") {
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
        assert_eq!(s.production_problems().len(), 6, "{:?}", s.production_problems());
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
    fn refresh_token_keys_are_a_list_each_long_enough_outside_development() {
        let long = "k".repeat(32);
        let ring = format!("{long}1,{long}2");
        let s = Settings::from_vars(&vars(&[("REFRESH_TOKEN_SECRET", ring.as_str())])).unwrap();
        assert_eq!(s.refresh_token_secret.len(), 2);
        let short = format!("{long},short");
        let s = Settings::from_vars(&vars(&[
            ("ENVIRONMENT", "production"),
            ("JWT_SECRET_KEY", long.as_str()),
            ("REFRESH_TOKEN_SECRET", short.as_str()),
        ]))
        .unwrap();
        assert!(s.production_problems().iter().any(|p| p.contains("REFRESH_TOKEN_SECRET")));
        assert!(s.clone().ensure_secrets().is_err());
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
            let name = doc.names[0];
            assert!(src.matches(&format!("\"{name}\"")).count() >= 2, "{name} documented but never read");
        }
    }
}
