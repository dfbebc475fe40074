//! Signing in with a provider (SPEC §5.11) in a real headless Chromium with JavaScript
//! on: an app's page, served on loopback by a tiny server of the test (its own origin,
//! `http://127.0.0.1:APPPORT`), links to tessera's `/auth/v1/authorize?provider=mock`;
//! the browser signs in at the OpenID Connect provider's form (oidc-provider-mock), comes
//! back through tessera's callback with the `tessera-oauth` cookie tessera set, and lands
//! on the app's page, whose script calls the API across origins (CORS) with what it got:
//! the access token in the fragment (implicit), or the code it exchanges with the
//! verifier it kept (PKCE). The test reads the signed-in user's email off the app's page.

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::harness::{free_port, json_of, TestApp};
use crate::provider::OidcProvider;

/// What every page of the app starts with: the API's base, and how a page shows an
/// outcome (`#status`, `#email`, `#provider`, then `data-state="done"` on `#result`).
const PAGE_LIBRARY: &str = r#"
function show(status, user) {
  document.getElementById("status").textContent = status;
  document.getElementById("email").textContent = (user && user.email) || "";
  document.getElementById("provider").textContent = (user && user.app_metadata && user.app_metadata.provider) || "";
  document.getElementById("result").dataset.state = "done";
}
async function currentUser(token) {
  const res = await fetch(TESSERA + "/auth/v1/user", { headers: { "Authorization": "Bearer " + token } });
  return { status: res.status, user: await res.json() };
}
function fail(e) { show("error: " + e, null); }
"#;

/// The outcome block every landing page has.
const RESULT: &str = r#"<div id="result"><p id="status"></p><p id="email"></p><p id="provider"></p></div>"#;

/// The app's start page: a plain link to tessera's authorize endpoint (implicit flow).
fn start_page(tessera: &str, app: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>The app</title></head><body>
<h1>Welcome to the app</h1>
<a id="sign-in" href="{tessera}/auth/v1/authorize?provider=mock&redirect_to={app}/callback.html">Sign in with Mock</a>
</body></html>"#
    )
}

/// Where tessera sends the browser back in the implicit flow: reads the session from
/// `location.hash` and asks the API who it is.
fn callback_page(tessera: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>Signed in</title></head><body>
{RESULT}
<script>
const TESSERA = "{tessera}";
{PAGE_LIBRARY}
(async () => {{
  const session = new URLSearchParams(location.hash.slice(1));
  const token = session.get("access_token");
  if (!token) return show("no access token: " + location.href, null);
  const {{ status, user }} = await currentUser(token);
  show(String(status), user);
}})().catch(fail);
</script>
</body></html>"#
    )
}

/// The PKCE start page: its script makes a verifier (kept in `sessionStorage`), puts its
/// S256 challenge into the link, and marks the link ready.
fn pkce_start_page(tessera: &str, app: &str) -> String {
    format!(
        r##"<!doctype html><html><head><title>The app (PKCE)</title></head><body>
<a id="sign-in" href="#">Sign in with Mock</a>
<script>
function base64url(bytes) {{
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}}
(async () => {{
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  sessionStorage.setItem("code_verifier", verifier);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const challenge = base64url(new Uint8Array(digest));
  const link = document.getElementById("sign-in");
  link.href = "{tessera}/auth/v1/authorize?provider=mock"
    + "&redirect_to=" + encodeURIComponent("{app}/pkce-callback.html")
    + "&code_challenge=" + challenge + "&code_challenge_method=s256";
  link.dataset.ready = "1";
}})();
</script>
</body></html>"##
    )
}

/// Where tessera sends the browser back in the PKCE flow: exchanges `?code=` with the
/// kept verifier, then asks the API who the new session is.
fn pkce_callback_page(tessera: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>Signed in (PKCE)</title></head><body>
{RESULT}
<script>
const TESSERA = "{tessera}";
{PAGE_LIBRARY}
(async () => {{
  const code = new URLSearchParams(location.search).get("code");
  if (!code) return show("no code: " + location.href, null);
  const res = await fetch(TESSERA + "/auth/v1/token?grant_type=pkce", {{
    method: "POST",
    headers: {{ "Content-Type": "application/json" }},
    body: JSON.stringify({{ auth_code: code, code_verifier: sessionStorage.getItem("code_verifier") }}),
  }});
  const session = await res.json();
  if (res.status !== 200) return show("exchange " + res.status + ": " + JSON.stringify(session), null);
  const {{ status, user }} = await currentUser(session.access_token);
  show(String(status), user);
}})().catch(fail);
</script>
</body></html>"#
    )
}

/// The app, a tessera whose `mock` provider is `provider` and which lets the app's
/// origin redirect and call, and a Chromium with JavaScript on.
struct Rig {
    app: TestApp,
    /// `http://127.0.0.1:APPPORT`: the app's origin.
    app_origin: String,
    browser: Browser,
    server: tokio::task::JoinHandle<()>,
}

impl Rig {
    async fn start(provider: &OidcProvider) -> Rig {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_origin = format!("http://{}", listener.local_addr().unwrap());
        // tessera on a port known before it starts: its callback is PUBLIC_URL's.
        let port = free_port().to_string();
        let public = format!("http://127.0.0.1:{port}");
        let app = TestApp::with(&[
            ("PORT", port.as_str()),
            ("PUBLIC_URL", public.as_str()),
            ("EXTERNAL_MOCK_ENABLED", "true"),
            ("EXTERNAL_MOCK_CLIENT_ID", "tessera-test"),
            ("EXTERNAL_MOCK_SECRET", "mock-secret"),
            ("EXTERNAL_MOCK_ISSUER", provider.issuer.as_str()),
            ("REDIRECT_URLS", app_origin.as_str()),
            ("CORS_ORIGINS", app_origin.as_str()),
            ("EMAIL_AUTOCONFIRM", "true"),
            // Plain http: the state cookie is SameSite=Lax, not Secure (the default is true).
            ("SECURE_COOKIES", "false"),
        ])
        .await;
        assert_eq!(app.base, public);
        let pages = Router::new()
            .route("/", get(Html(start_page(&public, &app_origin))))
            .route("/callback.html", get(Html(callback_page(&public))))
            .route("/pkce.html", get(Html(pkce_start_page(&public, &app_origin))))
            .route("/pkce-callback.html", get(Html(pkce_callback_page(&public))));
        let server = tokio::spawn(async move {
            axum::serve(listener, pages).await.unwrap();
        });
        let browser = Browser::start_with_javascript().await;
        Rig { app, app_origin, browser, server }
    }

    /// Every cookie the browser holds, for any site and path (DevTools'
    /// `Network.getAllCookies`; WebDriver's `/cookie` lists only the page's own).
    async fn all_cookies(&self) -> Vec<Value> {
        let body = json!({ "cmd": "Network.getAllCookies", "params": {} });
        let v = self.browser.call(reqwest::Method::POST, "/goog/cdp/execute", Some(body)).await;
        v["cookies"].as_array().unwrap_or_else(|| panic!("no cookie list: {v}")).clone()
    }

    /// tessera's state cookie, if the browser holds one.
    async fn state_cookie(&self) -> Option<Value> {
        self.all_cookies().await.into_iter().find(|c| c["name"] == "tessera-oauth")
    }

    /// Clicks the app's "Sign in with Mock" link, checks the browser is at the provider's
    /// form with tessera's state cookie, types `sub` and submits: the browser is then on
    /// its way back through tessera's callback to the app.
    async fn sign_in_at_provider(&self, provider: &OidcProvider, sub: &str) {
        assert_eq!(self.browser.text("a#sign-in").await, "Sign in with Mock");
        self.browser.submit("a#sign-in").await;
        self.browser.wait_for("Authorize Client").await;
        let at = self.browser.url().await;
        assert!(at.starts_with(&format!("{}?", provider.authorize_url())), "not at the provider's form: {at}");
        assert!(at.contains("client_id=tessera-test"), "{at}");
        let cookie = self.state_cookie().await.unwrap_or_else(|| panic!("no tessera-oauth cookie at the provider"));
        assert_eq!(cookie["domain"], "127.0.0.1", "{cookie}");
        assert_eq!(cookie["path"], "/auth/v1/callback", "{cookie}");
        assert_eq!((&cookie["httpOnly"], &cookie["secure"]), (&json!(true), &json!(false)), "{cookie}");
        assert_eq!(cookie["sameSite"], "Lax", "{cookie}");
        self.browser.fill("form input[name=sub]", sub).await;
        self.browser.submit("form:has(input[name=sub]) button[type=submit]").await;
    }

    /// Waits until the app's landing page has shown its outcome: (`#status`, `#email`,
    /// `#provider`).
    async fn outcome(&self) -> (String, String, String) {
        self.browser.wait_for("data-state=\"done\"").await;
        (self.browser.text("#status").await, self.browser.text("#email").await, self.browser.text("#provider").await)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn the_implicit_flow_goes_from_an_app_page_to_the_provider_and_back_in_chromium() {
    let provider = OidcProvider::start().await;
    provider.set_user("chromium-alice", json!({"email": "alice.chromium@example.com", "email_verified": true})).await;
    let rig = Rig::start(&provider).await;

    rig.browser.open(&format!("{}/", rig.app_origin)).await;
    rig.browser.wait_for("Welcome to the app").await;
    rig.sign_in_at_provider(&provider, "chromium-alice").await;

    let (status, email, via) = rig.outcome().await;
    assert_eq!(
        (status.as_str(), email.as_str(), via.as_str()),
        ("200", "alice.chromium@example.com", "mock"),
        "{}",
        rig.browser.source().await
    );
    let landed = rig.browser.url().await;
    assert!(landed.starts_with(&format!("{}/callback.html#", rig.app_origin)), "{landed}");
    assert!(landed.contains("access_token=") && landed.contains("refresh_token="), "{landed}");
    assert!(!landed.contains("code="), "no code in the implicit flow: {landed}");
    assert_eq!(rig.state_cookie().await, None, "the callback cleared the state cookie");

    // The user the page saw is the one tessera made from the provider's claims.
    let token = crate::provider::url_param(&landed, "access_token").unwrap();
    let (status, user) = json_of(rig.app.get("/auth/v1/user", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "alice.chromium@example.com");
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    assert_eq!(user["identities"][0]["provider"], "mock", "{user}");
    assert_eq!(user["identities"][0]["id"], "chromium-alice", "the provider's subject: {user}");
}

#[tokio::test]
async fn the_pkce_flow_goes_from_an_app_page_to_the_provider_and_back_in_chromium() {
    let provider = OidcProvider::start().await;
    provider.set_user("chromium-bob", json!({"email": "bob.chromium@example.com", "email_verified": true})).await;
    let rig = Rig::start(&provider).await;

    rig.browser.open(&format!("{}/pkce.html", rig.app_origin)).await;
    rig.browser.wait_for("data-ready=\"1\"").await;
    rig.sign_in_at_provider(&provider, "chromium-bob").await;

    let (status, email, via) = rig.outcome().await;
    assert_eq!(
        (status.as_str(), email.as_str(), via.as_str()),
        ("200", "bob.chromium@example.com", "mock"),
        "{}",
        rig.browser.source().await
    );
    let landed = rig.browser.url().await;
    assert!(landed.starts_with(&format!("{}/pkce-callback.html?code=", rig.app_origin)), "{landed}");
    assert!(!landed.contains("access_token"), "no token in the PKCE flow's URL: {landed}");
    assert_eq!(rig.state_cookie().await, None, "the callback cleared the state cookie");

    // The page spent the code: it does not sign in twice.
    let code = crate::provider::url_param(&landed, "code").unwrap();
    let verifier = "v".repeat(43);
    let res = rig
        .app
        .post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier}))
        .await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error_code"], "flow_state_not_found", "{body}");
}
