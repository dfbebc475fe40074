//! The link pages in a real headless Chromium, with JavaScript off, driven through
//! chromedriver's W3C WebDriver protocol (SPEC §5.3, issue 3).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let bin = std::env::var("TESSERA_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = free_port();
        let driver = std::process::Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install chromium-driver, or run the suite with scripts/test")
            });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let chromium = std::env::var("TESSERA_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--blink-settings=scriptEnabled=false",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let res: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {res}")).to_owned();
        Browser { driver, base, session, http, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The page's HTML once it contains `needle` (a submitted form may still be
    /// loading when the click returns).
    async fn wait_for(&self, needle: &str) -> String {
        let mut html = String::new();
        for _ in 0..100 {
            let url = format!("{}/session/{}/source", self.base, self.session);
            let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
            html = v["value"].as_str().unwrap_or_default().to_owned();
            if html.contains(needle) {
                return html;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never showed {needle:?}: {html}");
    }

    async fn find(&self, css: &str) -> String {
        let v =
            self.call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))).await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text }))).await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    /// Computed style of the first element matching `css`: proves the stylesheet loaded.
    async fn style(&self, css: &str, property: &str) -> String {
        let el = self.find(css).await;
        let v = self.call(reqwest::Method::GET, &format!("/element/{el}/css/{property}"), None).await;
        v.as_str().unwrap().to_owned()
    }
}

impl Drop for Browser {
    /// Ends the WebDriver session first, so chromedriver quits its Chromium: killing the
    /// driver alone left every test's browser running. Blocking std I/O, as Drop must be.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut conn) = std::net::TcpStream::connect(&addr) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if conn.write_all(request.as_bytes()).is_ok() {
                let _ = conn.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn a_person_confirms_their_email_and_resets_their_password_in_chromium() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::with(&pairs(&smtp.settings())).await;
    app.register("browser@example.com", PASSWORD).await;
    let token = smtp.wait_for("browser@example.com", 1).await[0].token();
    let browser = Browser::start().await;

    // Verification: the link opens a page; only the button confirms.
    browser.open(&app.url(&format!("/verify-email?token={token}"))).await;
    browser.wait_for("Confirm your email address").await;
    assert_eq!(
        browser.style("button", "background-color").await,
        "rgba(36, 87, 214, 1)",
        "the embedded stylesheet applies"
    );
    let (_, me) = json_of(
        app.post("/v1/auth/login", None, json!({ "email": "browser@example.com", "password": PASSWORD })).await,
    )
    .await;
    assert_eq!(me["user"]["is_verified"], false, "opening the page burned nothing");
    browser.click("button").await;
    browser.wait_for("Email confirmed").await;
    let (_, me) = json_of(
        app.post("/v1/auth/login", None, json!({ "email": "browser@example.com", "password": PASSWORD })).await,
    )
    .await;
    assert_eq!(me["user"]["is_verified"], true);

    // Recovery: the form shows the policy's errors, then sets the password.
    app.post("/v1/auth/password-reset", None, json!({ "email": "browser@example.com" })).await;
    let reset = smtp.latest("browser@example.com", "Reset").await.token();
    browser.open(&app.url(&format!("/reset-password?token={reset}"))).await;
    browser.type_into("#new_password", "short").await;
    browser.type_into("#confirm_password", "short").await;
    browser.click("button").await;
    let html = browser.wait_for("at least 8 characters").await;
    assert!(html.contains("digit"), "{html}");
    browser.type_into("#new_password", "Sunny!Meadow42x").await;
    browser.type_into("#confirm_password", "Sunny!Meadow42x").await;
    browser.click("button").await;
    browser.wait_for("Password changed").await;
    app.login("browser@example.com", "Sunny!Meadow42x").await;

    // The used link now says so.
    browser.open(&app.url(&format!("/reset-password?token={reset}"))).await;
    browser.type_into("#new_password", "Another!Passw0rd").await;
    browser.type_into("#confirm_password", "Another!Passw0rd").await;
    browser.click("button").await;
    browser.wait_for("no longer works").await;
    let res = app
        .post("/v1/auth/login", None, json!({ "email": "browser@example.com", "password": "Another!Passw0rd" }))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
