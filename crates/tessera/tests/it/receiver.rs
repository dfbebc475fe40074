//! Where the webhook tests send their hooks: a receiver of signed webhooks ("Standard
//! Webhooks"), one process per test (`scripts/hook-receiver.py`; `scripts/hook-receiver`
//! installs it and `scripts/test` names its launcher in `TESSERA_TEST_HOOK_RECEIVER`).
//!
//! Its signatures are verified by the Standard Webhooks team's own library
//! (`standardwebhooks` from PyPI), never by tessera's code: a call that does not verify
//! under any of its secrets is recorded with `"verified": false` and answered 401
//! `{"error": "bad signature"}`; one that does is answered as [`Receiver::respond`]
//! configured its path (default: 200 `{}`). Every call is recorded, in arrival order, as
//! `{"path", "query", "id", "timestamp", "verified", "error" (when not verified),
//! "body" (the parsed JSON, else the text), "headers" {lower-case name: value},
//! "status" (what it was answered), "received_at" (Unix seconds, a float)}`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Client, StatusCode, Url};
use serde_json::{json, Value};
use sha2::Sha256;

/// A fresh Standard Webhooks secret: `whsec_` and the base64 of 24 random bytes.
pub fn new_secret() -> String {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut key).unwrap();
    format!("whsec_{}", STANDARD.encode(key))
}

/// The hook receiver on a loopback port, killed on drop (and ending by itself when the
/// test process dies: it watches its stdin).
pub struct Receiver {
    child: Option<Child>,
    /// Its stdin, never written: closed when this process dies, which ends it.
    stdin: Option<ChildStdin>,
    port: u16,
    /// The first is [`Receiver::secret`]; a call verifies if any verifies it.
    secrets: Vec<String>,
    /// Its stderr (errors only; it logs no requests).
    log: tempfile::NamedTempFile,
    client: Client,
}

impl Receiver {
    /// Starts one on a free port with a fresh random secret ([`new_secret`]).
    pub async fn start() -> Receiver {
        Self::spawn_on(0, &[new_secret()])
            .await
            .unwrap_or_else(|log| panic!("the hook receiver did not start; its log:\n{log}"))
    }

    /// Starts one on `port` with `secrets` (the first is [`Receiver::secret`]), e.g. to
    /// bring a stopped receiver back up at the same URL, or with a rotated secret beside
    /// the old one. Waits up to 5 s for the port to be free.
    pub async fn start_on(port: u16, secrets: &[String]) -> Receiver {
        assert!(!secrets.is_empty(), "a hook receiver needs at least one secret");
        let mut last = String::new();
        for _attempt in 0..50 {
            match Self::spawn_on(port, secrets).await {
                Ok(receiver) => return receiver,
                Err(log) if log.contains("already in use") => last = log,
                Err(log) => panic!("the hook receiver did not start on port {port}; its log:\n{log}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the hook receiver found port {port} taken for 5 s; its log:\n{last}");
    }

    /// Starts one on `port` (0: a free one, as it prints it); `Err(its log)` when it
    /// exited instead (e.g. the port is taken).
    async fn spawn_on(port: u16, secrets: &[String]) -> Result<Receiver, String> {
        let exe = std::env::var("TESSERA_TEST_HOOK_RECEIVER").unwrap_or_else(|_| {
            panic!(
                "TESSERA_TEST_HOOK_RECEIVER is not set: run the suite with scripts/test, or set it to \
                 what scripts/hook-receiver prints (the hook receiver's launcher)"
            )
        });
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(&exe);
        command.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--exit-with-stdin"]);
        for secret in secrets {
            command.arg("--secret").arg(secret);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe} ({e}): run scripts/hook-receiver to install it"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        // Its one line on stdout, `listening PORT`, once it accepts connections.
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = match tokio::time::timeout(Duration::from_secs(30), first_line).await {
            Ok(joined) => joined.unwrap().unwrap_or_default(),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the hook receiver did not print `listening PORT` within 30 s; its log:\n{}", read(&log));
            }
        };
        let Some(port) = line.trim().strip_prefix("listening ").and_then(|p| p.parse::<u16>().ok()) else {
            let _ = child.kill();
            let status = child.wait();
            return Err(format!("(exit: {status:?}; stdout: {line:?})\n{}", read(&log)));
        };
        let client = crate::harness::http_client_builder().timeout(Duration::from_secs(30)).build().unwrap();
        Ok(Receiver { child: Some(child), stdin, port, secrets: secrets.to_vec(), log, client })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its (first) secret, `whsec_…`.
    pub fn secret(&self) -> &str {
        &self.secrets[0]
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it has written to stderr so far (errors only).
    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// The answers to the next verified calls to `path`, one each, in order (a JSON
    /// array); once they are used up, `then` (or the default, 200 `{}`) answers every
    /// later one. Each answer is an object, every field optional: `status` (200),
    /// `body` (a JSON value, sent serialised, or a string, sent as is; `{}`),
    /// `body_size` (instead of `body`: that many bytes, `{"claims":{"pad":"xxx…"}}`),
    /// `content_type` (`application/json`), `headers` (`{"Retry-After": "1"}`),
    /// `delay_ms` (0). Replaces what was set for `path` before; calls that do not
    /// verify use none of them.
    pub async fn respond(&self, path: &str, responses: Value, then: Option<Value>) {
        let mut spec = json!({ "path": path, "responses": responses });
        if let Some(then) = then {
            spec["then"] = then;
        }
        self.control("/_respond", &spec).await;
    }

    /// The calls recorded on `path` so far (see the module's doc), in arrival order.
    pub async fn calls(&self, path: &str) -> Vec<Value> {
        let mut url = Url::parse(&self.url("/_calls")).unwrap();
        url.query_pairs_mut().append_pair("path", path);
        let res = self.client.get(url).send().await.unwrap_or_else(|e| panic!("GET /_calls of the hook receiver: {e}"));
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET /_calls: {body}");
        body["calls"].as_array().unwrap_or_else(|| panic!("GET /_calls: {body}")).clone()
    }

    /// Waits (polling, up to `timeout`) until at least `n` calls to `path` were
    /// recorded, and returns them all; panics, with what did arrive, when they don't.
    pub async fn wait_calls(&self, path: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let calls = self.calls(path).await;
            if calls.len() >= n {
                return calls;
            }
            if Instant::now() >= deadline {
                let got = calls.len();
                panic!(
                    "the hook receiver got {got} call(s) to {path} within {timeout:?}, not {n}: {}\nits log:\n{}",
                    Value::Array(calls),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Forgets every recorded call and every configured answer.
    pub async fn reset(&self) {
        self.control("/_reset", &json!({})).await;
    }

    /// Kills it (SIGKILL) and waits for it: its port refuses connections from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdin = None;
    }

    async fn control(&self, path: &str, body: &Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} to the hook receiver: {e}"));
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "POST {path} {body}: {text}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read(log: &tempfile::NamedTempFile) -> String {
    std::fs::read_to_string(log.path()).unwrap_or_default()
}

/// The `webhook-signature` of a message (`v1,` and the base64 of its HMAC-SHA256), for
/// this module's own test only: what tessera sends is judged by the receiver.
fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let tag: &[u8] = &tag;
    format!("v1,{}", STANDARD.encode(tag))
}

/// POSTs `body` to `url` signed with `secret` now; the status and body of the answer.
async fn post_signed(client: &Client, url: &str, secret: &str, id: &str, body: &[u8]) -> (StatusCode, String) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sign(secret, id, now, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn receiver_verifies_with_standardwebhooks() {
    // The spec's example: this module's signer is right, so what follows tests the receiver.
    let vector = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(vector, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

    let mut receiver = Receiver::start().await;
    let secret = receiver.secret().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 32, "{secret}");
    let client = crate::harness::http_client();
    let url = receiver.url("/hook");
    let body = br#"{"type":"user.created"}"#;
    receiver
        .respond(
            "/hook",
            json!([{"status": 500, "body": "down", "content_type": "text/plain"}, {"body": {"ok": true}}]),
            Some(json!({"status": 410})),
        )
        .await;
    assert_eq!(
        post_signed(&client, &url, &secret, "msg_1", body).await,
        (StatusCode::INTERNAL_SERVER_ERROR, "down".to_owned())
    );
    let (status, answer) = post_signed(&client, &url, &secret, "msg_2", body).await;
    assert_eq!((status, serde_json::from_str::<Value>(&answer).unwrap()), (StatusCode::OK, json!({"ok": true})));
    assert_eq!(post_signed(&client, &url, &secret, "msg_3", body).await.0, StatusCode::GONE);
    // Signed with another secret: refused, recorded unverified.
    let other = new_secret();
    let (status, answer) = post_signed(&client, &url, &other, "msg_4", body).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&answer).unwrap()),
        (StatusCode::UNAUTHORIZED, json!({"error": "bad signature"}))
    );

    let calls = receiver.wait_calls("/hook", 4, Duration::from_secs(5)).await;
    let seen: Vec<_> = calls.iter().map(|c| (c["id"].as_str().unwrap(), c["verified"].as_bool().unwrap())).collect();
    assert_eq!(seen, [("msg_1", true), ("msg_2", true), ("msg_3", true), ("msg_4", false)]);
    assert_eq!(calls[0]["body"], json!({"type": "user.created"}));
    assert_eq!(calls[0]["headers"]["webhook-id"], "msg_1");
    assert!(calls[3]["error"].is_string(), "{}", calls[3]);
    assert!(receiver.calls("/other").await.is_empty());
    receiver.reset().await;
    assert!(receiver.calls("/hook").await.is_empty());
    assert_eq!(post_signed(&client, &url, &secret, "msg_5", body).await, (StatusCode::OK, "{}".to_owned()));

    // Back up on the same port, the new secret beside the old one: either verifies.
    let port = receiver.port();
    receiver.stop();
    assert!(client.post(&url).body("{}").send().await.is_err(), "a stopped receiver answered");
    let receiver = Receiver::start_on(port, &[other.clone(), secret.clone()]).await;
    assert_eq!(receiver.secret(), other);
    assert_eq!(receiver.url("/hook"), url);
    let client = crate::harness::http_client();
    assert_eq!(post_signed(&client, &url, &secret, "msg_6", body).await.0, StatusCode::OK);
    assert_eq!(post_signed(&client, &url, &other, "msg_7", body).await.0, StatusCode::OK);
    assert_eq!(post_signed(&client, &url, &new_secret(), "msg_8", body).await.0, StatusCode::UNAUTHORIZED);
    let calls = receiver.wait_calls("/hook", 3, Duration::from_secs(5)).await;
    let verified: Vec<_> = calls.iter().map(|c| c["verified"].as_bool().unwrap()).collect();
    assert_eq!(verified, [true, true, false]);
}
