//! Configuration from environment variables (and an optional `.env` file), with the
//! names the seed systems use (SPEC §7), production validation and generated docs.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tessera_domain::{Cidr, PasswordPolicy};

pub mod external;
pub mod hooks;
mod kinds;
mod read;
pub mod sms;

pub use kinds::{Environment, LogFormat, MailSettings, MailTransport, RateLimits, SmtpTls};
pub use read::SettingDoc;

use kinds::{ENVIRONMENTS, LOG_FORMATS, MAIL_TRANSPORTS, SMTP_TLS_MODES};
use read::*;

use crate::kv::{LockoutPolicy, Window};

settings! {
    reader r;
    fields {
        /// development, staging or production; production refuses unsafe settings
        environment: Environment = ["ENVIRONMENT", "APP_ENV"] default "development", one_of(&ENVIRONMENTS);
        /// debug mode; refused in production
        debug: bool = ["DEBUG"] default "false", flag;
        /// address to listen on
        host: String = ["HOST"] default "127.0.0.1", text;
        /// TCP port to listen on
        port: u16 = ["PORT"] default "8000", number("a port number");
        /// seconds a request head may take to arrive, from the connection's start or the first byte after an idle
        /// keep-alive; a connection that misses it is closed
        http_header_timeout: Duration = ["HTTP_HEADER_TIMEOUT"] default "10", seconds;
        /// seconds a request may take, its body included, once its head has arrived; beyond it the answer is 408 and
        /// the connection is closed
        http_body_timeout: Duration = ["HTTP_BODY_TIMEOUT"] default "30", seconds;
        /// seconds a keep-alive connection may stay idle between requests before it is closed
        http_idle_timeout: Duration = ["HTTP_IDLE_TIMEOUT"] default "60", seconds;
        /// connections served at once; beyond it new ones wait in the kernel's backlog. The default is the open-file
        /// limit (raised to its hard limit at start) less a tenth of it, at least 128, kept for the database, Redis,
        /// SMTP and files
        http_max_connections: Option<usize> = ["HTTP_MAX_CONNECTIONS"] unset "(from the file-descriptor limit)",
            number("a whole number");
        /// the public base URL of this server, used to build links
        public_url: String = ["PUBLIC_URL"] computed "`http://HOST:PORT`" => format!("http://{host}:{port}"), base_url;
        /// sqlite://FILE or postgres://USER:PASS@HOST/DB (postgresql+asyncpg:// accepted)
        database_url: SecretString = ["DATABASE_URL"] default "sqlite://tessera.db", text;
        /// database connections kept in the pool; on PostgreSQL up to this many of them stay checked out between the
        /// statements every request runs (the session check, refresh)
        db_pool_size: u32 = ["DB_POOL_SIZE"] default "10", number("a whole number");
        /// extra PostgreSQL connections allowed above the pool size
        db_max_overflow: u32 = ["DB_MAX_OVERFLOW"] default "20", number("a whole number");
        /// seconds to wait for a free connection before answering 503
        db_pool_timeout: Duration = ["DB_POOL_TIMEOUT"] default "30", seconds;
        /// seconds after which a PostgreSQL connection is replaced
        db_pool_recycle: Duration = ["DB_POOL_RECYCLE"] default "3600", seconds;
        /// on a SQLite file, how long the session check may answer a session and its user from memory; writes through
        /// any tessera server or command on the file are seen at once, so this only bounds how long a write by another
        /// program (the sqlite3 shell) goes unseen; 0 turns the cache off
        session_cache_ms: u64 = ["SESSION_CACHE_MS"] default "1000", number("a whole number of milliseconds");
        /// run pending migrations at start-up
        auto_migrate: bool = ["AUTO_MIGRATE"] default "true", flag;
        /// redis://[:PASSWORD@]HOST:PORT/DB; shares rate limits and lockout across nodes
        redis_url: Option<SecretString> = ["REDIS_URL"] computed "(none: in memory)"
            => redis_url_from_parts(redis_host, &redis_port, redis_password), some(text);
    }
    inputs {
        /// Redis host, when REDIS_URL is not set
        redis_host: Option<String> = ["REDIS_HOST"] unset "(none)", text;
        /// Redis port, with REDIS_HOST
        redis_port: String = ["REDIS_PORT"] default "6379", text;
        /// Redis password, with REDIS_HOST
        redis_password: Option<String> = ["REDIS_PASSWORD"] unset "(none)", text;
    }
    fields {
        /// HMAC key for access tokens, at least 32 bytes; in development, when unset, a random one is generated once
        /// and kept in the database, so every node sharing the database uses it
        jwt_secret: Option<SecretString> = ["JWT_SECRET_KEY", "JWT_SECRET"] unset "(generated in development)", text;
        /// HS256, HS384 or HS512 (signed with JWT_SECRET_KEY), or RS256, ES256 or EdDSA (signed with JWT_PRIVATE_KEY,
        /// public half at /.well-known/jwks.json); a token whose header names another algorithm is refused
        jwt_algorithm: String = ["JWT_ALGORITHM"] default "HS256", signing_algorithm;
        /// the PEM private key of RS256 (RSA, PKCS#8 or PKCS#1), ES256 (P-256, PKCS#8) or EdDSA (Ed25519, PKCS#8); \n
        /// in the value stands for a line break
        jwt_private_key: Option<SecretString> = ["JWT_PRIVATE_KEY"] computed "(none)"
            => pem_from_file(r, jwt_private_key_file), some(pem);
    }
    inputs {
        /// a file holding JWT_PRIVATE_KEY
        jwt_private_key_file: Option<String> = ["JWT_PRIVATE_KEY_FILE"] unset "(none)", text;
    }
    fields {
        /// the kid of the asymmetric signing key, in every token's header and in the JWKS
        jwt_key_id: Option<String> = ["JWT_KEY_ID"] unset "(the key's RFC 7638 thumbprint)", text;
        /// public keys tokens signed earlier may carry (a JWK set {"keys":[…]} or a JSON array of JWKs, each with its
        /// kid): published in the JWKS and accepted until those tokens expire
        jwt_previous_public_keys: Option<String> = ["JWT_PREVIOUS_PUBLIC_KEYS"] unset "(none)", text;
        /// the iss claim of access tokens
        jwt_issuer: String = ["JWT_ISSUER"] default "tessera", text;
        /// the aud claim of access tokens
        jwt_audience: String = ["JWT_AUDIENCE"] default "authenticated", text;
        /// access token lifetime
        access_token_ttl: Duration = ["ACCESS_TOKEN_EXPIRE_MINUTES"] default "15", minutes;
        /// refresh token (session) lifetime
        refresh_token_ttl: Duration = ["REFRESH_TOKEN_EXPIRE_DAYS"] default "7", days;
        /// key that seals refresh tokens, at least 32 bytes; a comma-separated list rotates keys: the first seals new
        /// tokens, every one listed still opens the tokens it sealed. Unset, a key derived from the JWT secret (set or
        /// generated), in every environment; must be set when only an asymmetric JWT key is configured outside
        /// development
        refresh_token_secret: Vec<SecretString> = ["REFRESH_TOKEN_SECRET"] computed "(derived from the JWT secret)"
            => Vec::new(), secrets;
        /// the key TOTP secrets are encrypted under (AES-256-GCM): the base64 of 32 bytes, or a key ring
        /// KID:BASE64KEY,... whose first key encrypts and every one decrypts; in development, when unset, generated
        /// once and kept in the database
        mfa_encryption_key: Option<SecretString> = ["MFA_ENCRYPTION_KEY"]
            unset "(generated in development; required in production)", text;
        /// admin routes called with a user's token answer 403 mfa_required unless its session signed in with a second
        /// factor (API keys are unaffected)
        admin_mfa_required: bool = ["ADMIN_MFA_REQUIRED"] default "false", flag;
        /// seconds during which the token a refresh just replaced still answers the session's current token (two tabs,
        /// a retry); after that, presenting it revokes the session
        refresh_reuse_interval: Duration = ["REFRESH_TOKEN_REUSE_INTERVAL"] default "10", seconds;
        /// 0 = unlimited; otherwise the oldest session is revoked when a new one would exceed it
        max_sessions_per_user: u32 = ["MAX_SESSIONS_PER_USER"] default "0", number("a whole number");
        /// mark the refresh cookie Secure (and send HSTS); must be true in production
        secure_cookies: bool = ["SECURE_COOKIES"] default "true", flag;
        /// comma-separated origins allowed by CORS; * is refused in production
        cors_origins: Vec<String> = ["CORS_ORIGINS"] computed "(none)" => Vec::new(), list;
        /// comma-separated Host header values accepted, each a host (any port) or a host:port; others answer 400
        allowed_hosts: Vec<String> = ["ALLOWED_HOSTS"] computed "(any)" => Vec::new(), list;
        /// comma-separated IPs or CIDRs of proxies whose X-Forwarded-For / X-Real-IP is believed
        trusted_proxies: Vec<Cidr> = ["TRUSTED_PROXIES"] computed "(none)" => Vec::new(), cidrs;
        /// false turns every rate limit and the lockout off
        rate_limit_enabled: bool = ["RATE_LIMIT_ENABLED"] default "true", flag;
        /// clients on a loopback address (127.0.0.0/8, ::1) are not counted by the per-IP limits, so a developer's
        /// scripts can run again and again; the per-address limits and the lockout still apply
        rate_limit_exempt_loopback: bool = ["RATE_LIMIT_EXEMPT_LOOPBACK"]
            computed "`true` in development (`false` elsewhere)" => environment == Environment::Development, flag;
    }
    inputs {
        /// sign-ins per client IP: LIMIT/PERIOD windows (units s, m, h, d)
        rate_limit_login: Vec<Window> = ["RATE_LIMIT_LOGIN"] default "5/15m,1/1s", windows;
        /// sign-ups per client IP
        rate_limit_register: Vec<Window> = ["RATE_LIMIT_REGISTER"] default "3/1h", windows;
        /// password-recovery requests per email address
        rate_limit_recover: Vec<Window> = ["RATE_LIMIT_RECOVER"] default "3/1h", windows;
        /// verification and one-time-code sends per address
        rate_limit_otp: Vec<Window> = ["RATE_LIMIT_OTP"] default "3/1h", windows;
        /// per client IP: checks of a link token or code (email verification, password-reset confirmation, MFA codes),
        /// and recovery and resend requests
        rate_limit_verify: Vec<Window> = ["RATE_LIMIT_VERIFY"] default "30/1h", windows;
        /// anonymous sign-ups per client IP
        rate_limit_anonymous: Vec<Window> = ["RATE_LIMIT_ANONYMOUS"] default "30/1h", windows;
        /// requests to the OAuth provider's authorization, token, introspection, revocation and registration endpoints per
        /// client IP
        rate_limit_oauth: Vec<Window> = ["RATE_LIMIT_OAUTH"] default "600/1m", windows;
        /// SMS codes sent, per phone number and per client IP
        rate_limit_sms: Vec<Window> = ["RATE_LIMIT_SMS"] default "5/1h", windows;
    }
    fields {
        /// without Redis: the most rate-limit and lockout keys kept in memory; the least recently used go first
        rate_limit_memory_keys: usize = ["RATE_LIMIT_MEMORY_KEYS"] default "100000", at_least(1);
    }
    inputs {
        /// consecutive failed sign-ins for one email before it is locked
        lockout_threshold: u64 = ["LOCKOUT_THRESHOLD"] default "5", at_least(1);
        /// first lockout; doubles on each repeat offence
        lockout_duration: Duration = ["LOCKOUT_DURATION"] default "15m", duration;
        /// longest lockout
        lockout_max: Duration = ["LOCKOUT_MAX"] default "24h", duration;
    }
    fields {
        /// sign-ups on every surface are confirmed at once and no verification mail is sent (GoTrue's mailer
        /// autoconfirm)
        email_autoconfirm: bool = ["EMAIL_AUTOCONFIRM"] default "false", flag;
        /// unverified accounts answer 403 email_not_verified at sign-in
        require_email_verification: bool = ["REQUIRE_EMAIL_VERIFICATION"] default "false", flag;
        /// the application's URL (GoTrue's SITE_URL): where the Supabase surface's links send the browser when the
        /// request names no allowed redirect
        site_url: String = ["SITE_URL"] computed "`PUBLIC_URL`" => public_url.clone(), base_url;
        /// comma-separated URLs (GoTrue's additional redirect URLs) a Supabase request's `redirect_to` may start with;
        /// any other is replaced by SITE_URL
        redirect_urls: Vec<String> = ["REDIRECT_URLS"] computed "(none)" => Vec::new(), list;
        /// `/auth/v1` refuses requests without an `apikey` header holding a JWT signed with the server's key (the
        /// `anon` or `service_role` key of `tessera keys supabase`), as Supabase's gateway does
        supabase_require_apikey: bool = ["SUPABASE_REQUIRE_APIKEY"] default "false", flag;
        /// an email change is confirmed from both the new and the current address; false: from the new one alone
        secure_email_change: bool = ["SECURE_EMAIL_CHANGE"] default "true", flag;
        /// smtp, file or log; log is refused in production
        mail_transport: MailTransport = ["MAIL_TRANSPORT"] default "log", one_of(&MAIL_TRANSPORTS);
    }
    inputs {
        /// sender of every mail
        mail_from: String = ["MAIL_FROM"] default "tessera <no-reply@localhost>", text;
        /// where the file transport writes one .eml per message
        mail_dir: PathBuf = ["MAIL_DIR"] default "mail", text;
        /// directory of NAME.subject / NAME.txt / NAME.html files overriding the built-in templates
        mail_templates_dir: Option<PathBuf> = ["MAIL_TEMPLATES_DIR"] unset "(built in)", text;
        /// longest wait between delivery attempts, and longest circuit-breaker pause
        mail_retry_max_delay: Duration = ["MAIL_RETRY_MAX_DELAY"] default "5m", duration;
        /// SMTP server
        smtp_host: String = ["SMTP_HOST"] default "localhost", text;
        /// SMTP port
        smtp_port: u16 = ["SMTP_PORT"] computed "`587` (`465` with SMTP_TLS=tls, `25` with none)"
            => default_smtp_port(smtp_tls), number("a port number");
        /// SMTP user name; authentication is used when set
        smtp_user: Option<String> = ["SMTP_USER"] unset "(none)", text;
        /// SMTP password
        smtp_password: Option<SecretString> = ["SMTP_PASSWORD"] unset "(none)", text;
        /// starttls, tls (implicit) or none
        smtp_tls: SmtpTls = ["SMTP_TLS"] default "starttls", one_of(&SMTP_TLS_MODES);
        /// the product name in mails and pages
        product_name: String = ["PRODUCT_NAME"] default "tessera", text;
        /// page that email-verification links open (gets ?token=…)
        verify_email_url: String = ["VERIFY_EMAIL_URL"] computed "`PUBLIC_URL/verify-email`"
            => format!("{public_url}/verify-email"), text;
        /// page that password-reset links open (gets ?token=…)
        reset_password_url: String = ["RESET_PASSWORD_URL"] computed "`PUBLIC_URL/reset-password`"
            => format!("{public_url}/reset-password"), text;
        /// minimum password length
        password_min_length: usize = ["PASSWORD_MIN_LENGTH"] default "8", number("a whole number");
        /// maximum password length (at most 1024)
        password_max_length: usize = ["PASSWORD_MAX_LENGTH"] default "128", number("a whole number");
        /// a password needs an upper-case letter
        password_require_uppercase: bool = ["PASSWORD_REQUIRE_UPPERCASE"] default "true", flag;
        /// a password needs a lower-case letter
        password_require_lowercase: bool = ["PASSWORD_REQUIRE_LOWERCASE"] default "true", flag;
        /// a password needs a digit
        password_require_digit: bool = ["PASSWORD_REQUIRE_DIGIT"] default "true", flag;
        /// a password needs a special character
        password_require_special: bool = ["PASSWORD_REQUIRE_SPECIAL"] default "true", flag;
        /// refuse passwords from the shipped list of common passwords
        password_reject_common: bool = ["PASSWORD_REJECT_COMMON"] default "true", flag;
        /// refuse passwords containing the email's local part
        password_reject_email: bool = ["PASSWORD_REJECT_EMAIL"] default "true", flag;
    }
    fields {
        /// a signed-in user may link another provider's identity to their account (`/auth/v1/user/identities/authorize`,
        /// `/v1/users/me/identities/{provider}/link`) and unlink one; off, both answer 404 manual_linking_disabled
        manual_linking_enabled: bool = ["MANUAL_LINKING_ENABLED"] default "false", flag;
        /// the PEM private key (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA; PKCS#8, \n for line breaks) that signs the ID
        /// tokens and access tokens of the OAuth 2.1 / OpenID Connect provider (SPEC §5.12), published in the JWKS; unset:
        /// the JWT key when JWT_ALGORITHM is asymmetric, else in development an ES256 key generated once and kept in the
        /// database; in production with neither, the provider is off (its endpoints answer 404)
        oauth_signing_key: Option<SecretString> = ["OAUTH_SIGNING_KEY"] unset "(the JWT key, or generated in development)", pem;
        /// `POST /oauth/register` registers clients for anyone who asks (RFC 7591 dynamic registration)
        oauth_dynamic_registration: bool = ["OAUTH_DYNAMIC_REGISTRATION"] default "false", flag;
        /// a page of the app's own where the user approves or denies an authorization request: the provider sends
        /// the browser there with ?authorization_id=…, and the page decides through
        /// `/auth/v1/oauth/authorizations/{id}[/consent]` (Supabase's flow); unset: tessera's own sign-in and consent pages
        oauth_consent_url: Option<String> = ["OAUTH_CONSENT_URL"] unset "(tessera's own pages)", text;
        /// comma-separated URLs the event webhooks are delivered to (SPEC §5.13): https, or http to a loopback
        /// address; each gets every event, in order per user, from the durable outbox
        webhook_urls: Vec<String> = ["WEBHOOK_URLS"] computed "(none: no webhooks)" => Vec::new(), list;
        /// the Standard Webhooks secret event deliveries are signed with, `v1,whsec_BASE64` (several joined by a vertical bar
        /// while rotating); required with WEBHOOK_URLS
        webhook_secret: Option<SecretString> = ["WEBHOOK_SECRET"] unset "(none)", text;
        /// comma-separated events delivered (user.created, user.updated, user.deleted, session.created,
        /// session.revoked, password.changed, email.verified, phone.verified, mfa.enabled, mfa.disabled, identity.linked,
        /// identity.unlinked); unset: all of them
        webhook_events: Vec<String> = ["WEBHOOK_EVENTS"] computed "(every event)" => Vec::new(), list;
        /// twilio, messagebird, vonage, hook (the send-SMS hook) or log (development: the message goes to the log);
        /// unset: phone sign-in and phone factors are off (SPEC §5.14)
        sms_provider: Option<String> = ["SMS_PROVIDER"] unset "(none: phone sign-in off)", text;
        /// Twilio's account SID (SMS_PROVIDER=twilio)
        sms_twilio_account_sid: Option<String> = ["SMS_TWILIO_ACCOUNT_SID"] unset "(none)", text;
        /// Twilio's auth token
        sms_twilio_auth_token: Option<SecretString> = ["SMS_TWILIO_AUTH_TOKEN"] unset "(none)", text;
        /// the Twilio messaging service (MG…) or sender number the messages come from
        sms_twilio_message_service_sid: Option<String> = ["SMS_TWILIO_MESSAGE_SERVICE_SID"] unset "(none)", text;
        /// MessageBird's access key (SMS_PROVIDER=messagebird)
        sms_messagebird_access_key: Option<SecretString> = ["SMS_MESSAGEBIRD_ACCESS_KEY"] unset "(none)", text;
        /// the MessageBird originator (a number or a name of up to 11 characters)
        sms_messagebird_originator: Option<String> = ["SMS_MESSAGEBIRD_ORIGINATOR"] unset "(none)", text;
        /// Vonage's API key (SMS_PROVIDER=vonage)
        sms_vonage_api_key: Option<String> = ["SMS_VONAGE_API_KEY"] unset "(none)", text;
        /// Vonage's API secret
        sms_vonage_api_secret: Option<SecretString> = ["SMS_VONAGE_API_SECRET"] unset "(none)", text;
        /// the Vonage sender (a number or a name)
        sms_vonage_from: Option<String> = ["SMS_VONAGE_FROM"] unset "(none)", text;
        /// the provider's API base URL instead of its public one (a proxy, a regional endpoint, a test stand-in)
        sms_provider_url: Option<String> = ["SMS_PROVIDER_URL"] unset "(the provider's own)", text;
        /// the text of an SMS; `{{ .Code }}` stands for the code
        sms_template: String = ["SMS_TEMPLATE"] default "Your code is {{ .Code }}", text;
        /// digits of an SMS code
        sms_otp_length: usize = ["SMS_OTP_LENGTH"] default "6", at_least(6);
        /// seconds an SMS code stays valid
        sms_otp_exp: Duration = ["SMS_OTP_EXP"] default "60", seconds;
        /// comma-separated PHONE=CODE pairs: those numbers get no SMS and sign in with that code (tests, app-store
        /// reviewers); refused in production
        sms_test_otp: Vec<String> = ["SMS_TEST_OTP"] computed "(none)" => Vec::new(), list;
        /// `POST /auth/v1/signup` with no email or phone signs up an anonymous user (SPEC §5.11)
        anonymous_users_enabled: bool = ["ANONYMOUS_USERS_ENABLED"] default "false", flag;
        /// days after which the purge removes an anonymous user who never became permanent
        anonymous_retention: Duration = ["ANONYMOUS_RETENTION_DAYS"] default "30", days_at_most(36_500);
        /// seconds a call to a sign-in provider (discovery, keys, code exchange, user info) may take
        external_http_timeout: Duration = ["EXTERNAL_HTTP_TIMEOUT"] default "10", seconds;
        /// passkey sign-in and registration (SPEC §5.10); off: every passkey route answers 404 passkey_disabled
        passkeys_enabled: bool = ["PASSKEYS_ENABLED"] default "true", flag;
        /// the WebAuthn relying party ID passkeys are bound to: a domain, equal to or a registrable suffix of the host
        /// of every origin in WEBAUTHN_RP_ORIGINS (e.g. example.com for https://app.example.com)
        webauthn_rp_id: String = ["WEBAUTHN_RP_ID"] computed "(the host of PUBLIC_URL)" => url_host(&public_url), text;
        /// comma-separated origins (scheme://host[:port]) whose pages may register and use passkeys: the web app's, and
        /// for a mobile app its origin (android:apk-key-hash:…); a ceremony from any other origin is refused
        webauthn_rp_origins: Vec<String> = ["WEBAUTHN_RP_ORIGINS"] computed "(the origin of PUBLIC_URL)"
            => vec![url_origin(&public_url)], list;
        /// the relying party's name, which the browser shows when it asks for a passkey
        webauthn_rp_name: String = ["WEBAUTHN_RP_NAME"] computed "`PRODUCT_NAME`" => product_name.clone(), text;
        /// Argon2id memory cost in KiB
        argon2_memory_kib: u32 = ["ARGON2_MEMORY_KIB"] default "19456", number("a whole number of KiB");
        /// Argon2id time cost
        argon2_iterations: u32 = ["ARGON2_ITERATIONS"] default "2", number("a whole number");
        /// Argon2id lanes
        argon2_parallelism: u32 = ["ARGON2_PARALLELISM"] default "1", number("a whole number");
        /// threads computing password hashes, each keeping its Argon2 memory while busy (let go after 1 s idle)
        hash_workers: usize = ["HASH_WORKERS"] computed "(CPU count)"
            => std::thread::available_parallelism().map_or(2, |n| n.get()), at_least(1);
        /// password hashes allowed to wait; beyond it sign-in answers 503 with Retry-After
        hash_queue: usize = ["HASH_QUEUE"] default "64", number("a whole number");
        /// trace, debug, info, warn, error or off, or a filter of target=level directives (e.g.
        /// info,tessera_core=debug); anything else is refused
        log_level: String = ["LOG_LEVEL"] default "info", text;
        /// json or pretty
        log_format: LogFormat = ["LOG_FORMAT"] computed "`pretty` (`json` in production)"
            => if environment == Environment::Production { LogFormat::Json } else { LogFormat::Pretty },
            one_of(&LOG_FORMATS);
        /// append logs to this file instead of stdout
        log_file: Option<PathBuf> = ["LOG_FILE"] unset "(stdout)", text;
        /// serve /docs and /openapi.json
        openapi_enabled: bool = ["OPENAPI_ENABLED"] computed "`true` (`false` in production)"
            => environment != Environment::Production, flag;
        /// count requests, sign-ins, refreshes, limits, hashing, mail and the database, and serve them as Prometheus
        /// text at GET /metrics
        metrics_enabled: bool = ["METRICS_ENABLED"]
            computed "`true` (`false` in production, unless METRICS_ADDR is set)"
            => environment != Environment::Production || metrics_addr.is_some(), flag;
        /// HOST:PORT of a listener of its own for GET /metrics (which the main listener then does not serve); setting
        /// it turns metrics on
        metrics_addr: Option<String> = ["METRICS_ADDR"] unset "(the main listener)", text;
    }
    inputs {
        /// with FIRST_ADMIN_PASSWORD: the admin created at start-up when no admin exists
        first_admin_email: Option<String> = ["FIRST_ADMIN_EMAIL"] unset "(none)", text;
        /// the first admin's password; must satisfy the password policy
        first_admin_password: Option<SecretString> = ["FIRST_ADMIN_PASSWORD"] unset "(none)", text;
    }
    fields {
        /// also append every audit event as a JSON line to audit-YYYY-MM-DD.jsonl (UTC) in this directory
        audit_log_dir: Option<PathBuf> = ["AUDIT_LOG_DIR"] unset "(none)", text;
        /// days an account deleted by its owner can still be restored by an admin; after them the purge removes it for
        /// good (0: at the next purge)
        deleted_retention: Duration = ["DELETED_RETENTION_DAYS"] default "30", days_at_most(36_500);
        /// encrypts email addresses and phone numbers at rest (AES-256-GCM; users, pending addresses, audit details,
        /// the mail outbox) and finds addresses through a keyed HMAC-SHA-256 blind index: the base64 of 32 bytes, or a
        /// key ring KID:BASE64KEY,... whose first key encrypts and every one decrypts. `tessera pii encrypt` encrypts
        /// what was stored before, `tessera pii rotate` re-encrypts under the first key. A database holding data under
        /// a key the setting lacks refuses to start
        pii_encryption_key: Option<SecretString> = ["PII_ENCRYPTION_KEY"] unset "(none: stored in plaintext)", text;
        /// how often the purge runs (accounts past their retention, expired sessions and tokens, mail sent over a day
        /// ago); a lease in the database lets one node at a time run it
        purge_interval: Duration = ["PURGE_INTERVAL"] default "1h", duration;
    }

    derived {
        /// The rate-limit windows of each limited action (SPEC §5.4).
        rate_limits: RateLimits = RateLimits {
            login: rate_limit_login,
            register: rate_limit_register,
            recover: rate_limit_recover,
            otp: rate_limit_otp,
            verify: rate_limit_verify,
            anonymous: rate_limit_anonymous,
            oauth: rate_limit_oauth,
            sms: rate_limit_sms,
        };
        /// The sign-in providers (`EXTERNAL_<NAME>_*`, SPEC §5.11), enabled or not.
        external: Vec<external::ProviderSettings> = external::from_vars(r, &public_url);
        /// The auth hooks (`HOOK_<NAME>_*`, SPEC §5.13) that are enabled.
        hooks: hooks::HookSettings = hooks::from_vars(r);
        /// The event webhooks (`WEBHOOK_*`, SPEC §5.13), when WEBHOOK_URLS is set.
        webhooks: Option<hooks::WebhookSettings> =
            hooks::webhooks_from(r, &webhook_urls, webhook_secret.as_ref(), &webhook_events);
        /// The SMS port (`SMS_*`, SPEC §5.14).
        sms: sms::SmsSettings = sms::from_parts(
            r,
            sms_provider.as_deref(),
            (sms_twilio_account_sid.clone(), sms_twilio_auth_token.clone(), sms_twilio_message_service_sid.clone()),
            (sms_messagebird_access_key.clone(), sms_messagebird_originator.clone()),
            (sms_vonage_api_key.clone(), sms_vonage_api_secret.clone(), sms_vonage_from.clone()),
            sms_provider_url.clone(),
            &sms_test_otp,
            hooks.endpoint(hooks::HookName::SendSms).is_some(),
        );
        /// When failed sign-ins lock an address, and for how long.
        lockout: LockoutPolicy = LockoutPolicy {
            threshold: lockout_threshold,
            base_secs: lockout_duration.as_secs(),
            max_secs: lockout_max.as_secs(),
        };
        /// Where and how mail goes.
        mail: MailSettings = MailSettings {
            transport: mail_transport,
            from: mail_from,
            dir: mail_dir,
            templates_dir: mail_templates_dir,
            retry_max_delay: mail_retry_max_delay,
            smtp_host,
            smtp_port,
            smtp_user,
            smtp_password,
            smtp_tls,
            product_name,
            verify_email_url,
            reset_password_url,
        };
        /// What a password must be.
        password_policy: PasswordPolicy = PasswordPolicy {
            min_length: password_min_length,
            max_length: password_max_length,
            require_uppercase: password_require_uppercase,
            require_lowercase: password_require_lowercase,
            require_digit: password_require_digit,
            require_special: password_require_special,
            reject_common: password_reject_common,
            reject_email: password_reject_email,
        };
        /// The admin to create at start-up when none exists (email, password).
        first_admin: Option<(String, SecretString)> = first_admin_pair(r, first_admin_email, first_admin_password);
    }
}

/// The settings of each sign-in provider (SPEC §5.11), `<NAME>` standing for its name:
/// (name, default as shown, meaning).
const EXTERNAL_DOCS: &[(&str, &str, &str)] = &[
    (
        "EXTERNAL_<NAME>_ENABLED",
        "`false`",
        "sign-in with the provider <NAME>: the presets GOOGLE, GITHUB, GITLAB, AZURE and KEYCLOAK, or any other name \
         for an OpenID Connect provider found by EXTERNAL_<NAME>_ISSUER; in URLs (`provider=…`) the name is lower-case",
    ),
    (
        "EXTERNAL_<NAME>_CLIENT_ID",
        "(none)",
        "this server's client id at the provider; a comma-separated list: the first signs in, every one is accepted as \
         the audience of ID tokens (the web, iOS and Android apps of one project)",
    ),
    ("EXTERNAL_<NAME>_SECRET", "(none)", "the client secret at the provider"),
    (
        "EXTERNAL_<NAME>_REDIRECT_URI",
        "`PUBLIC_URL/auth/v1/callback`",
        "the callback URL registered at the provider (the same for every provider and both surfaces)",
    ),
    (
        "EXTERNAL_<NAME>_URL",
        "(the provider's own)",
        "a self-hosted GitLab, a Keycloak realm (https://HOST/realms/REALM), GitHub Enterprise (https://HOST, its API \
         at /api/v3), or an Azure tenant (https://login.microsoftonline.com/TENANT)",
    ),
    (
        "EXTERNAL_<NAME>_ISSUER",
        "(the preset's)",
        "the issuer of an OpenID Connect provider; its discovery document is read from \
         ISSUER/.well-known/openid-configuration and must name this issuer",
    ),
];

/// The settings table as markdown, what `tessera config docs` prints.
pub fn docs_markdown() -> String {
    let mut out = String::from("| setting | default | meaning |\n|---|---|---|\n");
    for s in SETTINGS {
        let names = s.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" / ");
        out.push_str(&format!("| {names} | {} | {} |\n", s.shown_default(), s.meaning));
    }
    for (name, default, meaning) in EXTERNAL_DOCS.iter().chain(hooks::HOOK_DOCS) {
        out.push_str(&format!("| `{name}` | {default} | {meaning} |\n"));
    }
    out
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

/// `JWT_PRIVATE_KEY` read from `JWT_PRIVATE_KEY_FILE`, when that is set.
fn pem_from_file(r: &mut Reader<'_>, path: Option<String>) -> Option<SecretString> {
    let path = path?;
    match std::fs::read_to_string(&path) {
        Ok(pem) => Some(SecretString::from(pem)),
        Err(e) => {
            r.problems.push(format!("JWT_PRIVATE_KEY_FILE {path}: {e}"));
            None
        }
    }
}

/// `REDIS_URL` built from `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD`, when the host is set.
fn redis_url_from_parts(host: Option<String>, port: &str, password: Option<String>) -> Option<SecretString> {
    let host = host?;
    let auth = match password {
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
    Some(SecretString::from(format!("redis://{auth}{host}:{port}/0")))
}

/// The host of a URL (`PUBLIC_URL`'s, for the passkeys' relying party ID); the URL itself
/// when it has none (then the passkey set-up names the problem at start).
fn url_host(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| url.to_owned())
}

/// The origin (scheme://host[:port]) of a URL.
fn url_origin(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| url.to_owned())
}

/// The SMTP port of each way of securing the connection.
fn default_smtp_port(tls: SmtpTls) -> u16 {
    match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    }
}

/// The first admin, when both its email and password are set; one without the other is a problem.
fn first_admin_pair(
    r: &mut Reader<'_>,
    email: Option<String>,
    password: Option<SecretString>,
) -> Option<(String, SecretString)> {
    match (email, password) {
        (Some(email), Some(password)) => Some((email, password)),
        (None, None) => None,
        _ => {
            r.problems.push("FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD must be set together".to_owned());
            None
        }
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

    /// Builds settings from a map of variables. Returns every unparsable value, and every
    /// value that does not fit with the others, at once.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Settings, Vec<String>> {
        let mut r = Reader { vars, problems: Vec::new() };
        let s = Settings::read(&mut r);
        let mut problems = r.problems;
        if s.password_policy.min_length > s.password_policy.max_length || s.password_policy.max_length > 1024 {
            problems
                .push("PASSWORD_MIN_LENGTH must not exceed PASSWORD_MAX_LENGTH, which must be at most 1024".to_owned());
        }
        if lettre::message::Mailbox::from_str(&s.mail.from).is_err() {
            problems.push(format!(
                "MAIL_FROM={:?} is not a mailbox such as \"tessera <no-reply@example.com>\"",
                s.mail.from
            ));
        }
        if let Some((email, password)) = &s.first_admin {
            match tessera_domain::Email::parse(email) {
                Err(_) => problems.push(format!("FIRST_ADMIN_EMAIL={email:?} is not a valid email address")),
                Ok(e) => {
                    if let Err(broken) = s.password_policy.check("password", password.expose_secret(), Some(&e)) {
                        let rules: Vec<String> = broken.into_iter().map(|b| b.message).collect();
                        problems.push(format!("FIRST_ADMIN_PASSWORD breaks the password policy: {}", rules.join(" ")));
                    }
                }
            }
        }
        if s.http_header_timeout.is_zero() || s.http_body_timeout.is_zero() || s.http_idle_timeout.is_zero() {
            problems.push("HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT and HTTP_IDLE_TIMEOUT must be positive".to_owned());
        }
        if s.http_max_connections == Some(0) {
            problems.push("HTTP_MAX_CONNECTIONS must be positive".to_owned());
        }
        if s.access_token_ttl.is_zero() || s.refresh_token_ttl.is_zero() {
            problems.push("ACCESS_TOKEN_EXPIRE_MINUTES and REFRESH_TOKEN_EXPIRE_DAYS must be positive".to_owned());
        }
        if let Some(url) = &s.redis_url {
            let u = url.expose_secret();
            if !(u.starts_with("redis://")
                || u.starts_with("rediss://")
                || u.starts_with("redis+unix://")
                || u.starts_with("unix://"))
            {
                problems.push("REDIS_URL must start with redis://".to_owned());
            }
        }
        if let Err(e) = tessera_store::normalise_url(s.database_url.expose_secret()) {
            problems.push(e);
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
                problems.push(format!("{name}={url:?} is not a URL: {e}"));
            }
        }
        if let Err(e) = check_log_filter(&s.log_level) {
            problems.push(format!("LOG_LEVEL={:?}: {e}", s.log_level));
        }
        if argon2::Params::new(s.argon2_memory_kib, s.argon2_iterations, s.argon2_parallelism, None).is_err() {
            problems.push(
                "ARGON2_MEMORY_KIB, ARGON2_ITERATIONS and ARGON2_PARALLELISM do not form valid Argon2 parameters"
                    .to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(problems)
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
        if self.sms_provider.as_deref().is_some_and(|p| p.trim().eq_ignore_ascii_case("log")) {
            p.push("SMS_PROVIDER must not be log in production".to_owned());
        }
        if !self.sms_test_otp.is_empty() {
            p.push("SMS_TEST_OTP must not be set in production".to_owned());
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
    fn computed_defaults_follow_the_settings_they_come_from() {
        let s = Settings::from_vars(&vars(&[("PUBLIC_URL", "https://id.example.com/"), ("SMTP_TLS", "TLS")])).unwrap();
        assert_eq!(s.site_url, "https://id.example.com");
        assert_eq!(s.mail.verify_email_url, "https://id.example.com/verify-email");
        assert_eq!((s.mail.smtp_tls, s.mail.smtp_port), (SmtpTls::Tls, 465));
        assert!(s.rate_limit_exempt_loopback && s.metrics_enabled);
        let production = [("ENVIRONMENT", "prod")];
        let s = Settings::from_vars(&vars(&production)).unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(!s.rate_limit_exempt_loopback && !s.metrics_enabled && !s.openapi_enabled);
        let s = Settings::from_vars(&vars(&[production[0], ("METRICS_ADDR", "127.0.0.1:9100")])).unwrap();
        assert!(s.metrics_enabled);
        let errs = Settings::from_vars(&vars(&[("APP_ENV", "Live"), ("SMTP_PORT", "x")])).err().unwrap();
        assert_eq!(
            errs,
            ["APP_ENV=\"live\" is not development, staging or production", "SMTP_PORT=\"x\" is not a port number"]
        );
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
    fn every_name_belongs_to_one_setting_and_every_setting_has_a_meaning() {
        let mut seen = std::collections::HashSet::new();
        for doc in SETTINGS {
            for name in doc.names {
                assert!(seen.insert(*name), "{name} is declared twice");
            }
            let name = doc.names[0];
            assert!(!doc.meaning.is_empty(), "{name} has no meaning");
            assert!(!doc.meaning.contains("  ") && doc.meaning.trim() == doc.meaning, "{name}: {:?}", doc.meaning);
        }
    }
}
