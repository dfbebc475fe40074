//! The link pages in a real headless Chromium, with JavaScript off, driven through
//! chromedriver's W3C WebDriver protocol (SPEC §5.3, issue 3). [`Browser`] also starts
//! with JavaScript on, with WebDriver's virtual authenticators, for the passkey tests
//! (passkeys_browser.rs).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session.
pub(crate) struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A browser with JavaScript off: every page must work without it.
    pub(crate) async fn start() -> Browser {
        Self::launch(false).await
    }

    /// A browser with JavaScript on, for what needs it (WebAuthn).
    pub(crate) async fn start_with_javascript() -> Browser {
        Self::launch(true).await
    }

    async fn launch(javascript: bool) -> Browser {
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
        let http = crate::harness::http_client();
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
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        }}});
        let res: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {res}")).to_owned();
        Browser { driver, base, session, http, _profile: profile }
    }

    /// One WebDriver command: its value, or the error WebDriver answered.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        match v["value"].get("error") {
            Some(_) => Err(v),
            None => Ok(v["value"].clone()),
        }
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|v| panic!("WebDriver {path}: {v}"))
    }

    pub(crate) async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The page's HTML once it contains `needle` (a submitted form may still be
    /// loading when the click returns).
    pub(crate) async fn wait_for(&self, needle: &str) -> String {
        let mut html = String::new();
        for _ in 0..100 {
            let v = self.try_call(reqwest::Method::GET, "/source", None).await.unwrap_or_default();
            html = v.as_str().unwrap_or_default().to_owned();
            if html.contains(needle) {
                return html;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never showed {needle:?}: {html}");
    }

    /// The page's HTML as the browser holds it now.
    pub(crate) async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The address of the page shown.
    pub(crate) async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap().to_owned()
    }

    pub(crate) async fn find(&self, css: &str) -> String {
        let all = self.find_all(css).await;
        match all.into_iter().next() {
            Some(el) => el,
            None => panic!("no {css:?} on {}: {}", self.url().await, self.source().await),
        }
    }

    /// Every element matching `css`, in document order.
    pub(crate) async fn find_all(&self, css: &str) -> Vec<String> {
        let v =
            self.call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        elements(&v)
    }

    /// Every element matching `css` inside the element `el`.
    pub(crate) async fn find_all_in(&self, el: &str, css: &str) -> Vec<String> {
        let path = format!("/element/{el}/elements");
        elements(&self.call(reqwest::Method::POST, &path, Some(json!({ "using": "css selector", "value": css }))).await)
    }

    /// The first element matching `css` inside `el`.
    pub(crate) async fn find_in(&self, el: &str, css: &str) -> String {
        let all = self.find_all_in(el, css).await;
        match all.into_iter().next() {
            Some(found) => found,
            None => panic!("no {css:?} inside an element of {}: {}", self.url().await, self.source().await),
        }
    }

    /// The first element matching an XPath expression.
    pub(crate) async fn find_xpath(&self, xpath: &str) -> String {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({ "using": "xpath", "value": xpath }))).await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// How many elements match `css`.
    pub(crate) async fn count(&self, css: &str) -> usize {
        self.find_all(css).await.len()
    }

    /// Whether an element is shown.
    pub(crate) async fn displayed(&self, el: &str) -> bool {
        self.call(reqwest::Method::GET, &format!("/element/{el}/displayed"), None).await.as_bool().unwrap()
    }

    /// The rendered text of the first element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.text_of(&el).await
    }

    pub(crate) async fn text_of(&self, el: &str) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{el}/text"), None).await.as_str().unwrap().to_owned()
    }

    /// A DOM property of an element (`href` is absolute, `textContent` includes text
    /// that is not rendered, such as an SVG `<title>`'s).
    pub(crate) async fn property_of(&self, el: &str, name: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/element/{el}/property/{name}"), None).await
    }

    /// A DOM property of the first element matching `css`, as text.
    pub(crate) async fn property(&self, css: &str, name: &str) -> String {
        let el = self.find(css).await;
        let v = self.property_of(&el, name).await;
        v.as_str().unwrap_or_else(|| panic!("{css} has no text property {name}: {v}")).to_owned()
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text }))).await;
    }

    /// Empties a text field, then types `text` into it.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text }))).await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.click_el(&el).await;
    }

    pub(crate) async fn click_el(&self, el: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    /// Picks the option of value `value` in the `<select>` matching `css`.
    pub(crate) async fn choose(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]")).await;
    }

    /// Clicks `css` (a submit button or a link) and waits until the browser has left
    /// the page: the next command then sees the page that answered.
    pub(crate) async fn submit(&self, css: &str) {
        let el = self.find(css).await;
        self.submit_el(&el).await;
    }

    pub(crate) async fn submit_el(&self, el: &str) {
        let old = self.find("html").await;
        self.click_el(el).await;
        for _ in 0..200 {
            // An element of a page the browser has left is stale.
            if self.try_call(reqwest::Method::GET, &format!("/element/{old}/name"), None).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the click did not lead to another page: {}", self.source().await);
    }

    /// The cookies of the page shown, with their attributes (HttpOnly ones included).
    pub(crate) async fn cookies(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/cookie", None).await.as_array().unwrap().clone()
    }

    /// Those cookies as a `Cookie` request header.
    pub(crate) async fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies()
            .await
            .iter()
            .map(|c| format!("{}={}", c["name"].as_str().unwrap(), c["value"].as_str().unwrap()))
            .collect();
        pairs.join("; ")
    }

    /// Forgets every cookie of the page shown.
    pub(crate) async fn delete_cookies(&self) {
        self.call(reqwest::Method::DELETE, "/cookie", None).await;
    }

    pub(crate) async fn set_window_size(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// A PNG of the viewport.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
    }

    /// Runs `script` (a function body; `arguments` holds `args`, then the callback that
    /// ends it) in the page and waits for its callback: the value it was called with.
    pub(crate) async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(reqwest::Method::POST, "/execute/async", Some(json!({ "script": script, "args": args }))).await
    }

    /// Whether pages loaded from now on ignore their Content-Security-Policy (Chromium's
    /// DevTools `Page.setBypassCSP`, through chromedriver).
    pub(crate) async fn bypass_csp(&self, bypass: bool) {
        let body = json!({ "cmd": "Page.setBypassCSP", "params": { "enabled": bypass } });
        self.call(reqwest::Method::POST, "/goog/cdp/execute", Some(body)).await;
    }

    /// Adds a virtual authenticator (WebDriver's WebAuthn extension): a platform
    /// authenticator holding discoverable credentials, that verifies its user. Its id.
    pub(crate) async fn add_authenticator(&self) -> String {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        let v = self.call(reqwest::Method::POST, "/webauthn/authenticator", Some(options)).await;
        v.as_str().unwrap_or_else(|| panic!("no authenticator id: {v}")).to_owned()
    }

    /// Removes a virtual authenticator and every credential it holds.
    pub(crate) async fn remove_authenticator(&self, id: &str) {
        self.call(reqwest::Method::DELETE, &format!("/webauthn/authenticator/{id}"), None).await;
    }

    /// The credentials an authenticator holds: `credentialId`, `isResidentCredential`,
    /// `rpId`, `userHandle`, `privateKey` (PKCS#8), `signCount`, all base64url.
    pub(crate) async fn credentials(&self, id: &str) -> Vec<Value> {
        let v = self.call(reqwest::Method::GET, &format!("/webauthn/authenticator/{id}/credentials"), None).await;
        v.as_array().unwrap_or_else(|| panic!("no credential list: {v}")).clone()
    }

    /// Puts a credential (the fields [`Browser::credentials`] lists) into an authenticator.
    pub(crate) async fn add_credential(&self, id: &str, credential: Value) {
        self.call(reqwest::Method::POST, &format!("/webauthn/authenticator/{id}/credential"), Some(credential)).await;
    }

    /// Removes every credential of an authenticator.
    pub(crate) async fn remove_credentials(&self, id: &str) {
        self.call(reqwest::Method::DELETE, &format!("/webauthn/authenticator/{id}/credentials"), None).await;
    }

    /// Computed style of the first element matching `css`: proves the stylesheet loaded.
    pub(crate) async fn style(&self, css: &str, property: &str) -> String {
        let el = self.find(css).await;
        let v = self.call(reqwest::Method::GET, &format!("/element/{el}/css/{property}"), None).await;
        v.as_str().unwrap().to_owned()
    }
}

/// Whether `bytes` hold a whole HTTP answer: its head, and as much body as its
/// Content-Length says (or the last chunk of a chunked one).
fn http_answer_complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = &bytes[end + 4..];
    match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        Some(len) => len.trim().parse::<usize>().map_or(true, |len| body.len() >= len),
        None => !head.contains("transfer-encoding: chunked") || body.ends_with(b"0\r\n\r\n"),
    }
}

/// The element references of a WebDriver answer listing elements.
fn elements(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_owned()).collect()
}

impl Drop for Browser {
    /// Ends the WebDriver session first, so chromedriver quits its Chromium: killing the
    /// driver alone left every test's browser running. Blocking std I/O, as Drop must be.
    /// chromedriver answers once its Chromium has quit, but keeps the connection open
    /// whatever `Connection: close` says: the answer ends where its Content-Length says
    /// (reading to the end of the stream waited out the 10 s timeout in every test).
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
                let (mut answer, mut chunk) = (Vec::new(), [0u8; 4096]);
                while !http_answer_complete(&answer) {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&chunk[..n]),
                    }
                }
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
