//! The binary as an operator runs it: subcommands, start-up validation, the development
//! secret, graceful shutdown, and logs that never hold a secret.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::*;

fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env_clear().kill_on_drop(true);
    c
}

async fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = tessera().args(args).envs(envs.iter().copied()).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `tessera serve` child process and everything it printed.
struct Proc {
    child: Child,
    base: String,
    output: Arc<Mutex<String>>,
}

impl Proc {
    async fn start(dir: &std::path::Path, envs: &[(&str, &str)]) -> Proc {
        Self::launch(tessera(), dir, envs).await
    }

    /// `tessera serve` with at most `open_files` file descriptors (soft and hard limit).
    async fn start_with_open_files(dir: &std::path::Path, open_files: u32, envs: &[(&str, &str)]) -> Proc {
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", &format!("ulimit -n {open_files} && exec \"$0\""), env!("CARGO_BIN_EXE_tessera")])
            .env_clear()
            .kill_on_drop(true);
        Self::launch(sh, dir, envs).await
    }

    async fn launch(mut command: Command, dir: &std::path::Path, envs: &[(&str, &str)]) -> Proc {
        let mut child = command
            .current_dir(dir)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = lines.next_line().await.unwrap().unwrap_or_else(|| panic!("server exited"));
                output.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("tessera listening on ") {
                    return url.trim().to_owned();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("server did not start: {}", output.lock().unwrap()));
        let sink = output.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Proc { child, base, output }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Sends SIGTERM and returns the exit code and everything printed.
    async fn terminate(mut self) -> (i32, String) {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = self.output.lock().unwrap().clone();
        (status.code().unwrap_or(-1), out)
    }
}

const BAD_PRODUCTION: &[(&str, &str)] = &[
    ("ENVIRONMENT", "production"),
    ("DEBUG", "true"),
    ("JWT_SECRET_KEY", "too-short"),
    ("CORS_ORIGINS", "*"),
    ("SECURE_COOKIES", "false"),
    ("MAIL_TRANSPORT", "log"),
];

#[tokio::test]
async fn config_docs_lists_every_setting_with_default_and_meaning() {
    let (code, out, _) = run(&["config", "docs"], &[]).await;
    assert_eq!(code, 0);
    for name in [
        "ENVIRONMENT",
        "APP_ENV",
        "DEBUG",
        "HOST",
        "PORT",
        "DATABASE_URL",
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_POOL_TIMEOUT",
        "DB_POOL_RECYCLE",
        "JWT_SECRET_KEY",
        "JWT_SECRET",
        "JWT_ALGORITHM",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "REFRESH_TOKEN_EXPIRE_DAYS",
        "REFRESH_TOKEN_REUSE_INTERVAL",
        "MAX_SESSIONS_PER_USER",
        "CORS_ORIGINS",
        "ALLOWED_HOSTS",
        "SECURE_COOKIES",
        "TRUSTED_PROXIES",
        "REQUIRE_EMAIL_VERIFICATION",
        "MAIL_TRANSPORT",
        "ARGON2_MEMORY_KIB",
        "ARGON2_ITERATIONS",
        "ARGON2_PARALLELISM",
        "PASSWORD_MIN_LENGTH",
        "PUBLIC_URL",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "LOG_FILE",
        "OPENAPI_ENABLED",
    ] {
        assert!(out.contains(&format!("`{name}`")), "{name} missing from config docs");
    }
    assert!(out.contains("| `DATABASE_URL` | `sqlite://tessera.db` |"));
    assert!(out.contains("| `REFRESH_TOKEN_SECRET` |"));
}

/// `docs/configuration.md` is the output of `tessera config docs`, kept equal.
#[tokio::test]
async fn the_configuration_page_is_what_config_docs_prints() {
    let (code, out, _) = run(&["config", "docs"], &[]).await;
    assert_eq!(code, 0);
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let page = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(page == out, "docs/configuration.md is stale: run `cargo run -q -- config docs > docs/configuration.md`");
}

#[tokio::test]
async fn config_check_reports_every_production_problem_on_its_own_line() {
    let (code, _, err) = run(&["config", "check"], BAD_PRODUCTION).await;
    assert_ne!(code, 0);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("configuration error:")).collect();
    assert_eq!(lines.len(), 6, "{err}");
    for needle in ["DEBUG", "JWT_SECRET_KEY", "CORS_ORIGINS", "SECURE_COOKIES", "MAIL_TRANSPORT", "MFA_ENCRYPTION_KEY"]
    {
        assert!(lines.iter().any(|l| l.contains(needle)), "{needle}: {err}");
    }

    let good = [
        ("ENVIRONMENT", "production"),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("MAIL_TRANSPORT", "file"),
        ("CORS_ORIGINS", "https://app.example.com"),
        ("MFA_ENCRYPTION_KEY", MFA_KEY),
    ];
    let (code, out, err) = run(&["config", "check"], &good).await;
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn config_check_rejects_unparsable_values() {
    let (code, _, err) =
        run(&["config", "check"], &[("PORT", "eighty"), ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon")]).await;
    assert_ne!(code, 0);
    assert!(err.contains("PORT") && err.contains("ACCESS_TOKEN_EXPIRE_MINUTES"), "{err}");
}

/// Issue 34, item 3: `config check` passed what `serve` then refused: a `LOG_FILE` in a
/// missing folder, a database encrypted under a PII key the setting lacks; it accepted
/// `PUBLIC_URL='not a url'` (tokens then carried `iss: "not a url/auth/v1"`) and
/// `LOG_LEVEL=verbose` (which turns every log off). Now each is refused by both, with a
/// line that names it.
#[tokio::test]
async fn config_check_refuses_what_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let missing_folder = dir.path().join("no-such-folder").join("tessera.log");
    let log_file = missing_folder.to_str().unwrap();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("LOG_FILE", log_file)], "LOG_FILE"),
        (&[("PUBLIC_URL", "not a url")], "PUBLIC_URL"),
        (&[("LOG_LEVEL", "verbose")], "LOG_LEVEL"),
        (&[("REDIRECT_URLS", "https://app.example.com,app.example.com/cb")], "REDIRECT_URLS"),
    ];
    for (extra, name) in cases {
        let mut env = vec![("DATABASE_URL", db.as_str())];
        env.extend_from_slice(extra);
        let (code, out, err) = run(&["config", "check"], &env).await;
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains(name), "{name}: {err}");
        let (code, out, err) = run(&["serve"], &[&env[..], &[("PORT", "0")]].concat()).await;
        assert_eq!(code, 2, "serve refuses it too: {name}: {out}{err}");
    }
    for good in ["info", "warn,tessera_core=debug", "OFF"] {
        let (code, out, err) = run(&["config", "check"], &[("DATABASE_URL", db.as_str()), ("LOG_LEVEL", good)]).await;
        assert_eq!(code, 0, "{good}: {out}{err}");
    }

    // A database whose addresses are sealed under a PII key, checked without the key.
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let sealed = [("DATABASE_URL", db.as_str()), ("PII_ENCRYPTION_KEY", key)];
    let server = Proc::start(dir.path(), &sealed).await;
    sign_up_and_in(&server, "sealed@example.com").await;
    server.terminate().await;
    let (code, out, err) = run(&["config", "check"], &sealed).await;
    assert_eq!(code, 0, "with its key: {out}{err}");
    let (code, out, err) = run(&["config", "check"], &[("DATABASE_URL", db.as_str())]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("encrypted under PII key"), "{err}");
}

/// Issue 34, item 9: with `AUTO_MIGRATE=false` on a new database the server started,
/// `/health/detailed` said healthy and every call answered 500 while the log repeated a
/// bare "Internal server error.". It refuses to start, saying where the database is and
/// what to run; `config check` says the same; after `tessera migrate` it starts.
#[tokio::test]
async fn a_server_that_does_not_migrate_refuses_a_database_that_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let env = [("DATABASE_URL", db.as_str()), ("AUTO_MIGRATE", "false")];
    let (code, out, err) = run(&["serve"], &[&env[..], &[("PORT", "0")]].concat()).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("the database is at migration 0 of") && err.contains("run `tessera migrate`"), "{err}");
    let (code, out, err) = run(&["config", "check"], &env).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("AUTO_MIGRATE=false") && err.contains("run `tessera migrate`"), "{err}");

    let (code, _, err) = run(&["migrate"], &env).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["config", "check"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let server = Proc::start(dir.path(), &env).await;
    sign_up_and_in(&server, "migrated@example.com").await;
    server.terminate().await;
}

#[tokio::test]
async fn serve_refuses_to_start_in_production_with_unsafe_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        tessera().current_dir(dir.path()).envs(BAD_PRODUCTION.iter().copied()).env("PORT", "0").output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(err.lines().filter(|l| l.starts_with("configuration error:")).count(), 6, "{err}");
}

#[tokio::test]
async fn openapi_subcommand_prints_the_document() {
    let (code, out, _) = run(&["openapi"], &[]).await;
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/auth/login"].is_object());
}

#[tokio::test]
async fn migrate_up_status_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let env = [("DATABASE_URL", db.as_str())];

    let (code, out, err) = run(&["migrate", "status"], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("m20261122_000001_initial") && out.contains("Pending"), "{out}");

    let (code, _, err) = run(&["migrate", "up"], &env).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["migrate", "status"], &env).await;
    assert!(out.contains("Applied"), "{out}");

    let (code, _, err) = run(&["migrate", "down"], &env).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["migrate", "status"], &env).await;
    assert!(out.contains("Pending"), "{out}");

    let (code, _, err) = run(&["migrate"], &env).await;
    assert_eq!(code, 0, "plain `migrate` applies: {err}");
}

/// Where a development server before keys lived in the database kept each one.
fn legacy_key_file(dir: &std::path::Path, what: &str) -> std::path::PathBuf {
    if backend_url().is_some() {
        dir.join(format!("tessera.{what}"))
    } else {
        dir.join(format!("tessera.db.{what}"))
    }
}

/// Signs up and signs in `email` on `server`: the access token and the refresh token.
async fn sign_up_and_in(server: &Proc, email: &str) -> (String, String) {
    let client = crate::harness::http_client();
    let res = client
        .post(server.url("/v1/users"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = client.post(server.url("/v1/auth/login")).json(&json!({ "email": email, "password": PASSWORD })).send();
    let res = res.await.unwrap();
    let (refresh, _) = refresh_cookie(res.headers()).unwrap();
    let login: Value = res.json().await.unwrap();
    (login["access_token"].as_str().unwrap().to_owned(), refresh)
}

#[tokio::test]
async fn development_keys_are_generated_once_in_the_database_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let env = [("DATABASE_URL", db.as_str()), ("ARGON2_MEMORY_KIB", "1024"), ("ARGON2_ITERATIONS", "1")];
    let client = crate::harness::http_client();

    let (code, out, err) = run(&["config", "check"], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("JWT secret: generated by the first development server to start"), "{out}");

    let first = Proc::start(dir.path(), &env).await;
    let (token, refresh) = sign_up_and_in(&first, "dev@example.com").await;
    let (code, _) = first.terminate().await;
    assert_eq!(code, 0);
    for what in ["jwt-secret", "refresh-secret", "mfa-key"] {
        assert!(!legacy_key_file(dir.path(), what).exists(), "no key is written to a file: {what}");
    }

    let (code, out, err) = run(&["config", "check"], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("JWT secret: generated by a development server on"), "{out}");
    assert!(out.contains("refresh-token key: derived from the JWT secret"), "{out}");
    assert!(out.contains("MFA key: generated by a development server on"), "{out}");
    let with_secret = [env[0], ("JWT_SECRET_KEY", JWT_SECRET)];
    let (_, out, _) = run(&["config", "check"], &with_secret).await;
    assert!(out.contains("JWT secret: from JWT_SECRET_KEY"), "{out}");
    assert!(out.contains("refresh-token key: derived from the JWT secret"), "{out}");

    let second = Proc::start(dir.path(), &env).await;
    let me = client.get(second.url("/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "a token from the first run works after a restart");
    let res = client.post(second.url("/v1/auth/refresh")).json(&json!({ "refresh_token": refresh })).send();
    assert_eq!(res.await.unwrap().status(), StatusCode::OK, "so does a refresh token");
    second.terminate().await;
}

#[tokio::test]
async fn keys_an_older_development_server_kept_in_files_are_taken_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let jwt = "an-older-development-jwt-secret-kept-in-a-file-0123";
    let refresh_key = "an-older-development-refresh-secret-kept-in-a-file-0123";
    let base = [("DATABASE_URL", db.as_str()), ("ARGON2_MEMORY_KIB", "1024"), ("ARGON2_ITERATIONS", "1")];
    // What an older development server did: keys of its own, in files beside the database.
    let older = [base[0], base[1], base[2], ("JWT_SECRET_KEY", jwt), ("REFRESH_TOKEN_SECRET", refresh_key)];
    let first = Proc::start(dir.path(), &older).await;
    let (token, refresh) = sign_up_and_in(&first, "older@example.com").await;
    first.terminate().await;
    std::fs::write(legacy_key_file(dir.path(), "jwt-secret"), jwt).unwrap();
    std::fs::write(legacy_key_file(dir.path(), "refresh-secret"), refresh_key).unwrap();

    let upgraded = Proc::start(dir.path(), &base).await;
    let client = crate::harness::http_client();
    let me = client.get(upgraded.url("/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "the file's JWT secret is the one taken into the database");
    let res = client.post(upgraded.url("/v1/auth/refresh")).json(&json!({ "refresh_token": refresh })).send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a refresh token sealed under the old file's key still refreshes");
    let next: Value = res.json().await.unwrap();
    let next = next["refresh_token"].as_str().unwrap().to_owned();
    upgraded.terminate().await;

    // The files may go: the database holds the key now.
    std::fs::remove_file(legacy_key_file(dir.path(), "jwt-secret")).unwrap();
    let again = Proc::start(dir.path(), &base).await;
    let me = client.get(again.url("/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let res = client.post(again.url("/v1/auth/refresh")).json(&json!({ "refresh_token": next })).send();
    assert_eq!(res.await.unwrap().status(), StatusCode::OK, "the new refresh token is sealed under the derived key");
    again.terminate().await;
}

/// Hole 8 of the third review: two nodes on one PostgreSQL database, each in its own
/// working directory, both with no key configured (the development defaults) or with
/// `JWT_SECRET_KEY` alone, each made a refresh-token key of its own: a refresh token of
/// node A answered 401 on node B, every time. Nodes that share a database agree on every
/// key with no setting: a token issued by either refreshes on the other, a replay on one
/// revokes the session on the other, a revocation on one is refused at once on the
/// other, and a TOTP secret sealed on one opens on the other. Behind one Redis.
#[tokio::test]
async fn nodes_sharing_a_database_agree_on_every_key_with_no_setting() {
    let redis = RedisServer::start().await;
    let redis_url = redis.url();
    let client = crate::harness::http_client();
    for jwt in [None, Some(JWT_SECRET)] {
        let what = if jwt.is_some() { "JWT_SECRET_KEY alone" } else { "no key configured" };
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db = fresh_database(dir_a.path()).await;
        let mut env = vec![
            ("DATABASE_URL", db.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("ARGON2_ITERATIONS", "1"),
            ("RATE_LIMIT_ENABLED", "false"),
        ];
        if let Some(secret) = jwt {
            env.push(("JWT_SECRET_KEY", secret));
        }
        let a = Proc::start(dir_a.path(), &env).await;
        let b = Proc::start(dir_b.path(), &env).await;
        let refresh = |node: &Proc, token: &str| {
            let req = client.post(node.url("/v1/auth/refresh")).json(&json!({ "refresh_token": token }));
            async move {
                let res = req.send().await.unwrap();
                let status = res.status();
                (status, res.json::<Value>().await.unwrap_or_default())
            }
        };
        let me = |node: &Proc, token: &str| {
            let req = client.get(node.url("/v1/auth/me")).bearer_auth(token);
            async move { req.send().await.unwrap().status() }
        };

        // Issued by A: refreshes on B, and B's token on A; access tokens work on both.
        let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
        let (_, first) = sign_up_and_in(&a, &email).await;
        let (status, from_b) = refresh(&b, &first).await;
        assert_eq!(status, StatusCode::OK, "{what}: A's refresh token on B: {from_b}");
        assert_eq!(me(&a, from_b["access_token"].as_str().unwrap()).await, StatusCode::OK, "{what}");
        let (status, from_a) = refresh(&a, from_b["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{what}: B's refresh token on A: {from_a}");

        // A replay on B (the first token, two rotations old) revokes the session on A.
        let (status, _) = refresh(&b, &first).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: the replay");
        let (status, _) = refresh(&a, from_a["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: the session is revoked on A too");
        assert_eq!(me(&a, from_a["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED, "{what}");

        // A sign-out on B is refused at once on A.
        let res = client.post(b.url("/v1/auth/login")).json(&json!({ "email": email, "password": PASSWORD })).send();
        let login: Value = res.await.unwrap().json().await.unwrap();
        let access = login["access_token"].as_str().unwrap();
        assert_eq!(me(&a, access).await, StatusCode::OK, "{what}: B's access token on A");
        let res = client.post(b.url("/v1/auth/logout")).bearer_auth(access).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(me(&a, access).await, StatusCode::UNAUTHORIZED, "{what}: signed out on B, refused on A");

        // The MFA key: a factor enrolled on A is activated on B.
        let res = client.post(a.url("/v1/auth/login")).json(&json!({ "email": email, "password": PASSWORD })).send();
        let login: Value = res.await.unwrap().json().await.unwrap();
        let access = login["access_token"].as_str().unwrap();
        let res = client.post(a.url("/v1/auth/mfa/totp")).bearer_auth(access).json(&json!({})).send();
        let enrolled: Value = res.await.unwrap().json().await.unwrap();
        let mut totp = Authenticator::new(enrolled["secret"].as_str().unwrap());
        let path = format!("/v1/auth/mfa/totp/{}/activate", enrolled["id"].as_str().unwrap());
        let res = client.post(b.url(&path)).bearer_auth(access).json(&json!({ "code": totp.next().await })).send();
        assert_eq!(res.await.unwrap().status(), StatusCode::OK, "{what}: A's TOTP secret opens on B");
        a.terminate().await;
        b.terminate().await;
    }
}

/// Issue 34, item 6: `tessera keys supabase` run from another folder silently wrote new
/// secrets there and printed keys the server refused (`bad_jwt`). It signs with the key
/// the server signs with (a development server's, read from its database), or fails
/// saying what it needs; it never writes a key.
#[tokio::test]
async fn keys_supabase_signs_with_the_servers_key_or_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let env = [("DATABASE_URL", db.as_str()), ("ARGON2_MEMORY_KIB", "1024"), ("ARGON2_ITERATIONS", "1")];
    let server = Proc::start(dir.path(), &env).await;

    // From another folder, pointed at the server's database: keys the server accepts.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = tessera().current_dir(elsewhere.path()).envs(env).args(["keys", "supabase"]).output().await.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    let service = printed.lines().find_map(|l| l.strip_prefix("service_role=")).unwrap().to_owned();
    let res = crate::harness::http_client()
        .get(server.url("/auth/v1/admin/users"))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the server accepts the printed service_role key");
    server.terminate().await;

    // From a folder with no database and nothing configured: an error that says what to
    // set, and nothing written.
    let empty = tempfile::tempdir().unwrap();
    let out = tessera().current_dir(empty.path()).env_remove("DATABASE_URL").args(["keys", "supabase"]).output();
    let out = out.await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("JWT_SECRET_KEY") && err.contains("DATABASE_URL"), "{err}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "nothing is written");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    // A slow hash keeps the login in flight while the signal arrives.
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("ARGON2_MEMORY_KIB", "65536"),
        ("ARGON2_ITERATIONS", "8"),
    ];
    let server = Proc::start(dir.path(), &env).await;
    let client = crate::harness::http_client();
    let email = "drain@example.com";
    let res = client
        .post(server.url("/v1/users"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let login = tokio::spawn({
        let client = client.clone();
        let url = server.url("/v1/auth/login");
        async move { client.post(url).json(&json!({ "email": email, "password": PASSWORD })).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (code, out) = server.terminate().await;

    assert_eq!(login.await.unwrap(), StatusCode::OK, "the in-flight login completes");
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn logs_never_contain_passwords_tokens_or_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        ("LOG_LEVEL", "trace"),
        ("LOG_FORMAT", "json"),
        ("RATE_LIMIT_ENABLED", "false"),
    ];
    let server = Proc::start(dir.path(), &env).await;
    let client = crate::harness::http_client();
    let email = "logs@example.com";
    let new_password = "An0ther!Secret-Phrase";
    let wrong_password = "Wr0ng!Guess-Phrase";

    let res = client
        .post(server.url("/v1/users"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = client
        .post(server.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": wrong_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client
        .post(server.url("/v1/auth/login"))
        .form(&[("username", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let (refresh, _) = refresh_cookie(res.headers()).unwrap();
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let res = client
        .post(server.url("/v1/auth/refresh"))
        .header("cookie", format!("refresh_token={refresh}"))
        .send()
        .await
        .unwrap();
    let (refresh2, _) = refresh_cookie(res.headers()).unwrap();
    let access2 = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let res = client.get(server.url("/v1/auth/me")).bearer_auth(&access2).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client
        .post(server.url("/v1/auth/change-password"))
        .bearer_auth(&access2)
        .json(&json!({ "current_password": PASSWORD, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = client.get(server.url("/v1/auth/me")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (_, logs) = server.terminate().await;

    assert!(logs.contains("request_id"), "log lines carry the request id");
    for secret in [PASSWORD, new_password, wrong_password, &access, &access2, &refresh, &refresh2, JWT_SECRET] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    // The signature and payload of a token alone must not appear either.
    for token in [&access, &access2] {
        for part in token.split('.').skip(1) {
            assert!(!logs.contains(part), "part of a token reached the log");
        }
    }
    let lower = logs.to_lowercase();
    assert!(!lower.contains("bearer ey"), "no Authorization header value");
    assert!(!lower.contains("refresh_token="), "no cookie");
}

#[tokio::test]
async fn the_log_transport_shows_the_link_in_development() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
    ];
    let server = Proc::start(dir.path(), &env).await;
    let res = crate::harness::http_client()
        .post(server.url("/v1/users"))
        .json(&json!({ "email": "newcomer@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, out) = server.terminate().await;

    assert!(out.contains("mail sent (MAIL_TRANSPORT=log"), "{out}");
    assert!(out.contains("/verify-email?token="), "a newcomer can click the link: {out}");
}

/// CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Out of file descriptors, the accept loop logs, backs off without spinning and
/// without exiting, and serves again once descriptors are free (issue 20, item 1).
#[tokio::test]
async fn the_accept_loop_survives_running_out_of_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Proc::start_with_open_files(dir.path(), 128, &[("HTTP_MAX_CONNECTIONS", "100000"), ("DB_POOL_SIZE", "2")])
            .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.child.id().unwrap();
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = cpu_ticks(pid) - before;
    assert!(spent < 40, "the server spun on EMFILE: {spent} ticks of CPU in 2 s");
    assert!(server.output.lock().unwrap().contains("accept failed"), "{}", server.output.lock().unwrap());

    drop(held);
    let client = crate::harness::http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.get(server.url("/health")).send().await {
            Ok(res) if res.status() == StatusCode::OK => break,
            other => assert!(std::time::Instant::now() < deadline, "no /health after EMFILE: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = server.terminate().await;
    assert_eq!(code, 0);
}

/// A sign-up storm killed with SIGKILL: every sign-up answered 201 is there after a
/// restart on the same database, and signs in (issue 20, guarantees).
#[tokio::test]
async fn a_kill_9_during_a_sign_up_storm_loses_no_acknowledged_sign_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        ("HASH_QUEUE", "256"),
        ("RATE_LIMIT_ENABLED", "false"),
    ];
    let mut server = Proc::start(dir.path(), &envs).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut storm = Vec::new();
    for t in 0..16 {
        let (url, acknowledged) = (server.url("/v1/users"), acknowledged.clone());
        storm.push(tokio::spawn(async move {
            let client = crate::harness::http_client();
            for i in 0.. {
                let email = format!("storm-{t}-{i}@example.com");
                match client.post(&url).json(&json!({ "email": email, "password": PASSWORD })).send().await {
                    Ok(res) if res.status() == StatusCode::CREATED => acknowledged.lock().unwrap().push(email),
                    Ok(res) => panic!("sign-up answered {}", res.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("-KILL");
    server.child.wait().await.unwrap();
    for t in storm {
        t.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 16, "the storm had begun: {}", acknowledged.len());

    let again = Proc::start(dir.path(), &envs).await;
    let client = crate::harness::http_client();
    let signed_in = join_all(acknowledged.iter().map(|email| {
        client.post(again.url("/v1/auth/login")).json(&json!({ "email": email, "password": PASSWORD })).send()
    }))
    .await;
    let lost: Vec<_> = acknowledged
        .iter()
        .zip(signed_in)
        .filter(|(_, res)| !res.as_ref().is_ok_and(|r| r.status() == StatusCode::OK))
        .map(|(email, _)| email)
        .collect();
    eprintln!("kill -9 during a sign-up storm: {} acknowledged, {} lost", acknowledged.len(), lost.len());
    assert!(lost.is_empty(), "acknowledged sign-ups lost after kill -9: {lost:?}");
}

/// The peak resident memory of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A user with 100,000 audit events gets them all in the export, and the server sends
/// them page by page: its peak memory grows by a fraction of the document's size.
#[tokio::test]
async fn an_export_of_100000_events_streams_in_bounded_memory() {
    use tessera_core::entity::audit_log;
    use tessera_store::sea_orm::EntityTrait;

    const EVENTS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    // Two pooled connections: each SQLite connection that reads the history fills its
    // own page cache (2 MiB), a cost of the pool's size, not of the export; with the
    // default ten, that alone moved the peak by up to 20 MiB from run to run.
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        ("DB_POOL_SIZE", "2"),
    ];
    let server = Proc::start(dir.path(), &envs).await;
    let client = crate::harness::http_client();
    let email = "long-history@example.com";
    let res = client.post(server.url("/v1/users")).json(&json!({ "email": email, "password": PASSWORD })).send().await;
    assert_eq!(res.unwrap().status(), StatusCode::CREATED);
    let res = client.post(server.url("/v1/auth/login")).json(&json!({ "email": email, "password": PASSWORD })).send();
    let login: Value = res.await.unwrap().json().await.unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let id: uuid::Uuid = serde_json::from_value(login["user"]["id"].clone()).unwrap();

    // The history, written straight into the database, 1,000 rows per statement.
    let conn = tessera_store::sea_orm::Database::connect(&db).await.unwrap();
    let now = chrono::Utc::now();
    for chunk in 0..EVENTS / 1000 {
        let rows = (0..1000).map(|i| {
            let row = audit_log::Model {
                id: uuid::Uuid::now_v7(),
                created_at: now,
                event: "bulk.test".to_owned(),
                user_id: Some(id),
                actor_id: Some(id),
                ip: Some("192.0.2.1".to_owned()),
                user_agent: Some("HistoryMaker/1.0".to_owned()),
                request_id: None,
                detail: json!({ "n": chunk * 1000 + i, "note": "x".repeat(200) }),
                email_index: None,
            };
            tessera_store::sea_orm::IntoActiveModel::into_active_model(row)
        });
        audit_log::Entity::insert_many(rows).exec_without_returning(&conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let pid = server.child.id().unwrap();
    let before = peak_rss(pid);
    let started = std::time::Instant::now();
    let mut res = client.get(server.url("/v1/users/me/export")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let elapsed = started.elapsed();
    let after = peak_rss(pid);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "export of {EVENTS} events: {:.1} MiB in {:.2} s; server peak RSS {:.1} -> {:.1} MiB",
        mib(body.len() as u64),
        elapsed.as_secs_f64(),
        mib(before),
        mib(after)
    );
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let events = doc["audit_events"].as_array().unwrap();
    assert_eq!(events.iter().filter(|e| e["event"] == "bulk.test").count(), EVENTS);
    assert_eq!(events.last().unwrap()["detail"]["n"], EVENTS - 1);
    assert!(body.len() > 30 << 20, "the document is large: {} bytes", body.len());
    assert!(after - before < 16 << 20, "the server's peak grew by {:.1} MiB", mib(after - before));
}

/// Webhook events waiting for a receiver that is down survive a kill -9 of the server:
/// after a restart on the same database they are all delivered once the receiver is
/// back, each under the `webhook-id` it was queued with (issue 32).
#[tokio::test]
async fn a_kill_9_loses_no_pending_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let mut receiver = crate::receiver::Receiver::start().await;
    let (port, secret) = (receiver.port(), receiver.secret().to_owned());
    let url = receiver.url("/events");
    let signing = format!("v1,{secret}");
    receiver.stop();
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("WEBHOOK_URLS", url.as_str()),
        ("WEBHOOK_SECRET", signing.as_str()),
        ("WEBHOOK_EVENTS", "user.created"),
        ("MAIL_RETRY_MAX_DELAY", "1s"),
    ];
    let mut server = Proc::start(dir.path(), &envs).await;
    let client = crate::harness::http_client();
    let mut ids = Vec::new();
    for i in 0..20 {
        let res = client
            .post(server.url("/v1/users"))
            .json(&json!({ "email": format!("pending-{i}@example.com"), "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        ids.push(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // Failing deliveries under way, then the kill.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("-KILL");
    server.child.wait().await.unwrap();

    let receiver = crate::receiver::Receiver::start_on(port, &[secret]).await;
    let _again = Proc::start(dir.path(), &envs).await;
    let calls = receiver.wait_calls("/events", ids.len(), Duration::from_secs(60)).await;
    let mut delivered: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, String> = Default::default();
    for c in &calls {
        assert_eq!(c["verified"], true, "{c}");
        let user = c["body"]["data"]["user_id"].as_str().unwrap().to_owned();
        // At least once: a repeat carries the id it had.
        let id = c["id"].as_str().unwrap().to_owned();
        if let Some(before) = by_id.insert(user.clone(), id.clone()) {
            assert_eq!(before, id, "one event, one webhook-id");
        }
        if !delivered.contains(&user) {
            delivered.push(user);
        }
    }
    let lost: Vec<_> = ids.iter().filter(|id| !delivered.contains(id)).collect();
    assert!(lost.is_empty(), "events lost after kill -9: {lost:?}");
}
