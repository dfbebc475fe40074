//! `TestApp`: starts the real router on a fresh database and talks to it over HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use tessera::Server;
use tessera_core::settings::Settings;
use tessera_core::Core;
use tessera_store::sea_orm::{ConnectionTrait, Statement};

/// The JWT secret every test server uses, so tests can forge tokens.
pub const JWT_SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";
/// The refresh-token key every test server uses.
pub const REFRESH_SECRET: &str = "test-refresh-token-secret-long-enough-0123456789";
/// The key TOTP secrets are encrypted under in tests (base64 of 32 bytes).
pub const MFA_KEY: &str = "dGVzdC1tZmEta2V5LWZvci10aGUtdGVzdHMtMDEyMzQ=";
/// A password that satisfies the default policy.
pub const PASSWORD: &str = "Str0ng!Passphrase";

/// Which database the suite runs on: `TEST_DATABASE_URL` (`sqlite`, unset, or a
/// PostgreSQL URL through which a fresh database is created per test).
pub fn backend_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))
}

pub use tessera_store::Backend;

/// The backend this run of the suite is on.
pub fn backend() -> Backend {
    if backend_url().is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// For a test of one backend only (in a `sqlite_only` or `postgres_only` module, which
/// `scripts/test` runs on that backend and skips on the other): fails, rather than pass
/// without testing anything, when run on the other.
pub fn expect_backend(wanted: Backend) {
    assert_eq!(backend(), wanted, "a {wanted:?}-only test run on {:?}: see scripts/test", backend());
}

/// A fresh database URL: a SQLite file in `dir`, or a new PostgreSQL database.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    match backend_url() {
        None => format!("sqlite://{}/tessera.db", dir.display()),
        Some(admin) => {
            let name = format!("tessera_test_{}", uuid::Uuid::now_v7().simple());
            let admin_db = tessera_store::Store::open(&tessera_store::StoreConfig::tool(&admin))
                .await
                .expect("connect to the PostgreSQL admin database");
            admin_db
                .reader()
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            admin_db.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

/// An HTTP client builder, once TLS has its crypto (the server's HTTP client brings
/// reqwest's TLS into this binary, which wants a provider before any client is built).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    tessera_core::identity::provider::install_tls_crypto();
    reqwest::Client::builder()
}

/// A default HTTP client (see [`http_client_builder`]).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

/// The settings a test server starts with, plus `extra`.
pub fn test_vars(db_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("ENVIRONMENT", "development"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("DATABASE_URL", db_url),
        ("DB_POOL_SIZE", "5"),
        ("DB_MAX_OVERFLOW", "5"),
        ("DB_POOL_TIMEOUT", "10"),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("REFRESH_TOKEN_SECRET", REFRESH_SECRET),
        ("MFA_ENCRYPTION_KEY", MFA_KEY),
        // Cheap hashing keeps the suite fast; the parameters are still Argon2id.
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        ("ARGON2_PARALLELISM", "1"),
        ("HASH_QUEUE", "256"),
        // Limits are tested on their own (limits.rs); elsewhere they would get in the way.
        ("RATE_LIMIT_ENABLED", "false"),
        // The tests' client is on loopback: where limits are on, they count it.
        ("RATE_LIMIT_EXEMPT_LOOPBACK", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

/// A running tessera on a fresh database.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub core: Arc<Core>,
    pub db_url: String,
    server: Option<Server>,
    pub dir: tempfile::TempDir,
}

/// What a sign-in returned.
pub struct Login {
    pub access: String,
    pub refresh: String,
    pub body: Value,
    pub set_cookie: String,
}

impl TestApp {
    /// A server with the default test settings.
    pub async fn spawn() -> TestApp {
        Self::with(&[]).await
    }

    /// A server with extra settings.
    pub async fn with(extra: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db_url = fresh_database(dir.path()).await;
        Self::on_database(dir, db_url, extra).await
    }

    /// A server on an existing database (a restart).
    pub async fn with_database(db_url: &str, extra: &[(&str, &str)]) -> TestApp {
        Self::on_database(tempfile::tempdir().unwrap(), db_url.to_owned(), extra).await
    }

    /// Another node on the same database as `self` (a second tessera behind one load
    /// balancer), with its own settings.
    pub async fn another_node(&self, extra: &[(&str, &str)]) -> TestApp {
        Self::on_database(tempfile::tempdir().unwrap(), self.db_url.clone(), extra).await
    }

    async fn on_database(dir: tempfile::TempDir, db_url: String, extra: &[(&str, &str)]) -> TestApp {
        let settings = Settings::from_vars(&test_vars(&db_url, extra)).expect("test settings");
        let server = Server::start(settings).await.expect("start server");
        let base = format!("http://{}", server.addr);
        let client = crate::harness::http_client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        TestApp { base, client, core: server.core.clone(), db_url, server: Some(server), dir }
    }

    /// Stops the server, draining in-flight requests.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }

    /// Stops the server and hands back its directory (where a SQLite database lives),
    /// so that a later server can start on the same database.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// The database the server uses.
    pub fn db(&self) -> &tessera_store::Reader {
        self.core.store.reader()
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(Method::GET, path, token, None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(Method::POST, path, token, Some(body)).await
    }

    /// Registers a user; panics unless 201.
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let res = self
            .post("/v1/users", None, json!({ "email": email, "password": password, "full_name": "Test User" }))
            .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "register {email}: {body}");
        body
    }

    /// Signs in with JSON; panics unless 200.
    pub async fn login(&self, email: &str, password: &str) -> Login {
        let res = self.post("/v1/auth/login", None, json!({ "email": email, "password": password })).await;
        assert_eq!(res.status(), StatusCode::OK, "login {email}");
        login_from(res).await
    }

    /// Registers and signs in a fresh user.
    pub async fn user(&self) -> (String, Login) {
        let email = format!("user-{}@example.com", uuid::Uuid::now_v7().simple());
        self.register(&email, PASSWORD).await;
        let login = self.login(&email, PASSWORD).await;
        (email, login)
    }

    /// Runs SQL (for arranging states no endpoint reaches yet, e.g. deactivation).
    pub async fn sql(&self, sql: &str) {
        self.db().execute_unprepared(sql).await.unwrap();
    }

    /// Every row of a table, as JSON text, for scanning what is stored.
    pub async fn dump(&self, table: &str) -> String {
        use tessera_store::sea_orm::{FromQueryResult, JsonValue};
        let backend = self.db().get_database_backend();
        let rows = JsonValue::find_by_statement(Statement::from_string(backend, format!("SELECT * FROM {table}")))
            .all(self.db())
            .await
            .unwrap();
        serde_json::to_string(&rows).unwrap()
    }
}

/// Every table that could hold personal data, as text, lower-cased.
pub async fn dump_personal_tables(app: &TestApp) -> String {
    let mut all = String::new();
    for table in [
        "users",
        "profiles",
        "sessions",
        "audit_log",
        "mail_outbox",
        "one_time_tokens",
        "mfa_factors",
        "mfa_tokens",
        "recovery_codes",
        "api_keys",
        "identities",
        "flow_states",
    ] {
        all.push_str(&app.dump(table).await);
    }
    all.to_lowercase()
}

/// Runs `tessera ARGS` on `db_url` with the test settings plus `extra`: exit code,
/// standard output and standard error.
pub async fn tessera_command(db_url: &str, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env_clear()
        .envs(test_vars(db_url, extra))
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of the `refresh_token` cookie set by a response.
pub fn refresh_cookie(headers: &HeaderMap) -> Option<(String, String)> {
    headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let value = c.strip_prefix("refresh_token=")?.split(';').next()?.to_owned();
        Some((value, c.to_owned()))
    })
}

/// Reads a sign-in response.
pub async fn login_from(res: Response) -> Login {
    let (refresh, set_cookie) = refresh_cookie(res.headers()).expect("refresh cookie");
    let body: Value = res.json().await.unwrap();
    Login { access: body["access_token"].as_str().unwrap().to_owned(), refresh, body, set_cookie }
}

/// Reads a JSON body and status.
pub async fn json_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts a SPEC §6 error body with the given status and code.
pub async fn assert_error(res: Response, status: StatusCode, code: &str) -> Value {
    let header_id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (got, body) = json_of(res).await;
    assert_eq!(got, status, "body: {body}");
    assert_eq!(body["error_code"], code, "body: {body}");
    assert!(body["detail"].is_string() && body["type"].is_string(), "body: {body}");
    assert_eq!(body["request_id"].as_str(), header_id.as_deref(), "request_id matches X-Request-ID");
    body
}

/// A free TCP port on 127.0.0.1 (right now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real `redis-server` on a free loopback port, killed on drop. `scripts/test`
/// installs the binary and names it in `TESSERA_TEST_REDIS_SERVER`.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free port.
    pub async fn start() -> RedisServer {
        let mut r = RedisServer { child: None, port: free_port(), dir: tempfile::tempdir().unwrap() };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let bin = std::env::var("TESSERA_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = std::process::Command::new(&bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install redis-server, or run the suite with scripts/test")
            });
        self.child = Some(child);
        for _ in 0..200 {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Whether it answers PING.
    pub async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok() && s.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
    }

    /// Runs one command (no arguments with spaces) and returns the raw reply.
    pub async fn command(&self, cmd: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        s.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (an outage).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A message an [`SmtpServer`] received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message, headers and body, as sent.
    pub data: String,
}

impl Mail {
    /// The message with quoted-printable soft breaks and escapes decoded.
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The `Subject:` header.
    pub fn subject(&self) -> String {
        self.data.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().trim().to_owned()
    }

    /// The first link in the plain-text part.
    pub fn link(&self) -> String {
        self.decoded()
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("http") && l.contains("token="))
            .unwrap_or_else(|| panic!("no link in {}", self.decoded()))
            .to_owned()
    }

    /// The `token` parameter of the link.
    pub fn token(&self) -> String {
        self.link().split("token=").nth(1).unwrap().split('&').next().unwrap().to_owned()
    }

    /// The 6-character code, which stands on a line of its own.
    pub fn code(&self) -> String {
        self.decoded()
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 6 && l.bytes().all(|b| b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ".contains(&b)))
            .unwrap_or_else(|| panic!("no code in {}", self.decoded()))
            .to_owned()
    }
}

/// A real SMTP server on a loopback port (the protocol, over TCP: greeting, EHLO, MAIL,
/// RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) that keeps what it receives. It can
/// be stopped (connections refused) and started again on the same port.
pub struct SmtpServer {
    pub port: u16,
    mails: Arc<std::sync::Mutex<Vec<Mail>>>,
    /// While set, a message's data is read but its acceptance (the `250` after the `.`)
    /// waits: a slow server.
    stall: Arc<std::sync::atomic::AtomicBool>,
    tasks: Option<tokio::task::JoinSet<()>>,
}

impl SmtpServer {
    /// Starts one on a free port.
    pub async fn start() -> SmtpServer {
        let mut s = SmtpServer { port: free_port(), mails: Arc::default(), stall: Arc::default(), tasks: None };
        s.listen().await;
        s
    }

    async fn listen(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let mails = self.mails.clone();
        let stall = self.stall.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let conns = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
        let conns2 = conns.clone();
        tasks.spawn(async move {
            let _keep = conns2.clone();
            while let Ok((stream, _)) = listener.accept().await {
                let (mails, stall) = (mails.clone(), stall.clone());
                conns2.lock().await.spawn(smtp_session(stream, mails, stall));
            }
        });
        // Dropping the JoinSet aborts the listener; the connections' set goes with it.
        tasks.spawn(async move {
            let _conns = conns;
            std::future::pending::<()>().await;
        });
        self.tasks = Some(tasks);
    }

    /// Stops listening and drops every connection.
    pub async fn stop(&mut self) {
        if let Some(mut t) = self.tasks.take() {
            t.shutdown().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    /// Makes the server slow to accept messages (or quick again).
    pub fn stall(&self, on: bool) {
        self.stall.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.listen().await;
    }

    /// SMTP settings pointing tessera at this server.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MAIL_TRANSPORT", "smtp".to_owned()),
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", self.port.to_string()),
            ("SMTP_TLS", "none".to_owned()),
            ("MAIL_FROM", "Tessera Test <no-reply@tessera.test>".to_owned()),
            ("MAIL_RETRY_MAX_DELAY", "1s".to_owned()),
        ]
    }

    /// Everything received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// Messages received for `to`.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to))).collect()
    }

    /// Waits (up to 15 s) until `to` has received `n` messages; returns them.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Mail> {
        for _ in 0..300 {
            let got = self.mails_to(to);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{to} received {} of {n} messages: {:?}", self.mails_to(to).len(), self.mails());
    }

    /// The newest message for `to` whose subject contains `subject`, waiting for it.
    pub async fn latest(&self, to: &str, subject: &str) -> Mail {
        for _ in 0..300 {
            if let Some(m) = self.mails_to(to).into_iter().rev().find(|m| m.subject().contains(subject)) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no {subject:?} mail for {to}: {:?}", self.mails());
    }
}

async fn smtp_session(
    stream: tokio::net::TcpStream,
    mails: Arc<std::sync::Mutex<Vec<Mail>>>,
    stall: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 tessera-test ESMTP\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-tessera-test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") {
            b"250 tessera-test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().trim_matches(['<', '>']).to_owned();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push_str("\r\n");
            }
            while stall.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            // Accepted (whether or not the client is still there to hear it).
            mails.lock().unwrap().push(Mail { from: from.clone(), to: to.clone(), data });
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Settings as `(&str, &str)` pairs, for `TestApp::with`.
pub fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, val)| (*k, val.as_str())).collect()
}

/// An authenticator app: a code is accepted once per factor, so each use takes a newer
/// step, within one step of now.
pub struct Authenticator {
    pub secret: String,
    last: i64,
}

impl Authenticator {
    pub fn new(secret: &str) -> Self {
        Authenticator { secret: secret.to_owned(), last: i64::MIN }
    }

    /// The code of the next usable step, waiting for the clock when every step within
    /// one of now is used.
    pub async fn next(&mut self) -> String {
        loop {
            let now = chrono::Utc::now().timestamp();
            let step = (now / 30 - 1).max(self.last + 1);
            if step <= now / 30 + 1 {
                self.last = step;
                return tessera_core::mfa::code_for(&self.secret, step * 30).unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// A code of a step `offset` steps from now (not remembered as used).
    pub fn at(&self, offset: i64) -> String {
        tessera_core::mfa::code_for(&self.secret, chrono::Utc::now().timestamp() + offset * 30).unwrap()
    }

    /// A code no step near now shows.
    pub fn wrong(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        let near: Vec<String> =
            (-3..=3).map(|k| tessera_core::mfa::code_for(&self.secret, now + k * 30).unwrap()).collect();
        (0..10).map(|d| d.to_string().repeat(6)).find(|c| !near.contains(c)).unwrap()
    }
}
