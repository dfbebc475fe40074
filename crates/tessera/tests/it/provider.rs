//! What the social sign-in tests sign in at, and how: a real OpenID Connect provider
//! (oidc-provider-mock from PyPI, one process per test; `scripts/oidc-provider` installs
//! it and `scripts/test` names it in `TESSERA_TEST_OIDC_PROVIDER`), a [`Browser`] that
//! keeps cookies and follows redirects by hand, and the official auth-js client driven
//! through a whole sign-in ([`authjs_oauth`]).
//!
//! The provider's issuer is the URL it is addressed by, so it is always addressed as
//! `http://127.0.0.1:PORT` ([`OidcProvider::issuer`]), never as localhost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{json, Value};

use crate::harness::free_port;

/// The redirect URI [`OidcProvider::tokens`] asks codes for; nobody listens there.
const CLIENT_REDIRECT_URI: &str = "http://127.0.0.1:1/cb";

/// An HTTP client that never follows redirects: every hop is looked at.
pub fn no_redirects() -> Client {
    crate::harness::http_client_builder().redirect(Policy::none()).timeout(Duration::from_secs(30)).build().unwrap()
}

/// The `Location` of a response, resolved against the URL that answered.
pub fn location(res: &Response) -> Option<String> {
    let to = res.headers().get(LOCATION)?.to_str().ok()?;
    Some(res.url().join(to).ok()?.to_string())
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> String {
    Url::parse(url).unwrap_or_else(|e| panic!("not a URL: {url} ({e})")).origin().ascii_serialization()
}

/// A parameter of a URL's query, or else of its fragment (where an implicit-flow
/// redirect puts the tokens).
pub fn url_param(url: &str, name: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    let in_query = url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    in_query.or_else(|| {
        // The fragment is form-encoded too; parsed as the query of a URL (the `url` crate
        // is not a dev-dependency of its own).
        let fragment = Url::parse(&format!("http://fragment.invalid/?{}", url.fragment()?)).ok()?;
        fragment.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    })
}

/// oidc-provider-mock on a free loopback port, killed on drop.
///
/// It accepts any client id with any client secret (`client_secret_basic` or
/// `client_secret_post`; a secret is required), any redirect URI and scope. It ignores
/// PKCE (`code_challenge` is neither stored nor checked). Its ID tokens are RS256, with
/// no `kid` in the header (its JWKS at `/jwks` has one key, with a `kid`), and carry
/// `iss`, `aud` (an array: `[client_id]`), `sub`, `iat`, `exp`, `auth_time`, `nonce`
/// (when the authorization request had one), `at_hash`, and the user's claims the
/// scope allows (`email`, `email_verified` for `email`; `name`, `picture`, ... for
/// `profile`; non-standard claims always).
pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`: the issuer, and the base of every endpoint.
    pub issuer: String,
    child: tokio::process::Child,
    log: tempfile::NamedTempFile,
    client: Client,
    /// The command-line options it was started with (a restart starts it alike).
    options: Vec<String>,
}

impl OidcProvider {
    /// Starts one with the default options (nonce optional, refresh tokens issued).
    pub async fn start() -> OidcProvider {
        Self::start_with(&[]).await
    }

    /// Starts one with more command-line options, e.g. `["--require-nonce", "true"]`.
    pub async fn start_with(options: &[&str]) -> OidcProvider {
        for _attempt in 0..5 {
            if let Some(provider) = Self::spawn_on(free_port(), options).await {
                return provider;
            }
        }
        panic!("oidc-provider-mock found no free port in 5 attempts");
    }

    /// Stops it and starts it again on the same port: the same issuer with new signing
    /// keys (the mock makes its key at start), as a provider that rotated its keys.
    pub async fn restart(&mut self) {
        let port: u16 = self.issuer.rsplit(':').next().unwrap().parse().unwrap();
        self.child.kill().await.unwrap();
        let options: Vec<&str> = self.options.iter().map(String::as_str).collect();
        for _attempt in 0..50 {
            if let Some(again) = Self::spawn_on(port, &options).await {
                *self = again;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider-mock did not start again on port {port}");
    }

    /// Starts one on `port`; `None` when the port is taken.
    async fn spawn_on(port: u16, options: &[&str]) -> Option<OidcProvider> {
        let exe = std::env::var("TESSERA_TEST_OIDC_PROVIDER").unwrap_or_else(|_| {
            panic!(
                "TESSERA_TEST_OIDC_PROVIDER is not set: run the suite with scripts/test, or set it to \
                 what scripts/oidc-provider prints (the oidc-provider-mock executable)"
            )
        });
        let client = no_redirects();
        let log = tempfile::NamedTempFile::new().unwrap();
        // One open file for both streams, so that they append rather than overwrite.
        let out = log.reopen().unwrap();
        let mut child = tokio::process::Command::new(&exe)
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(options)
            .env("NO_COLOR", "1")
            .env("PYTHONWARNINGS", "ignore")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe} ({e}): run scripts/oidc-provider to install it"));
        let issuer = format!("http://127.0.0.1:{port}");
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        let deadline = Instant::now() + Duration::from_secs(30);
        let options = options.iter().map(|o| (*o).to_owned()).collect();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if let Ok(res) = client.get(&discovery).send().await {
                if res.status() == StatusCode::OK && child.try_wait().unwrap().is_none() {
                    return Some(OidcProvider { issuer, child, log, client, options });
                }
            }
            if Instant::now() > deadline {
                panic!("oidc-provider-mock did not answer {discovery} within 30 s; its log:\n{}", read(&log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = read(&log);
        if !out.contains("already in use") {
            panic!("oidc-provider-mock exited at start-up; its log:\n{out}");
        }
        None
    }

    /// What it has logged so far (one line per request, and its errors).
    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// `{issuer}/oauth2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.issuer)
    }

    /// `{issuer}/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }

    /// `{issuer}/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// Sets the claims of the user `sub` (creating it). Without this, a `sub` signed in
    /// at the form gets the claims `{"email": sub}` only (no `email_verified`).
    pub async fn set_user(&self, sub: &str, claims: Value) {
        let mut url = Url::parse(&self.issuer).unwrap();
        url.path_segments_mut().unwrap().push("users").push(sub);
        let res = self.client.put(url).json(&claims).send().await.unwrap();
        let status = res.status();
        assert_eq!(status, StatusCode::NO_CONTENT, "PUT /users/{sub}: {}", res.text().await.unwrap());
    }

    /// The token response (`access_token`, `id_token`, `refresh_token`, `expires_in`,
    /// `scope`, `token_type`) of a whole authorization-code flow for `client_id`, signed
    /// in as `sub`, as a client app would run it (scope `openid email profile`).
    pub async fn tokens(&self, client_id: &str, sub: &str, nonce: Option<&str>) -> Value {
        let mut authorize = Url::parse(&self.authorize_url()).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", CLIENT_REDIRECT_URI)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email profile")
            .append_pair("state", "client-state");
        if let Some(nonce) = nonce {
            authorize.query_pairs_mut().append_pair("nonce", nonce);
        }
        // The form first, as a browser would see it; then the user's answer.
        let res = self.client.get(authorize.clone()).send().await.unwrap();
        let status = res.status();
        assert_eq!(status, StatusCode::OK, "GET {authorize}: {}", res.text().await.unwrap());
        let res = self.client.post(authorize.clone()).form(&[("sub", sub)]).send().await.unwrap();
        let to = location(&res).unwrap_or_else(|| panic!("POST {authorize} did not redirect: {}", res.status()));
        assert_eq!(url_param(&to, "state").as_deref(), Some("client-state"), "{to}");
        let code = url_param(&to, "code").unwrap_or_else(|| panic!("no code in {to}"));
        let res = self
            .client
            .post(self.token_url())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CLIENT_REDIRECT_URI),
                ("client_id", client_id),
                ("client_secret", "any-secret"),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "token endpoint: {body}");
        body
    }

    /// An ID token for `client_id` about `sub`, from a whole authorization-code flow
    /// ([`OidcProvider::tokens`]).
    pub async fn id_token(&self, client_id: &str, sub: &str, nonce: Option<&str>) -> String {
        let tokens = self.tokens(client_id, sub, nonce).await;
        tokens["id_token"].as_str().unwrap_or_else(|| panic!("no id_token in {tokens}")).to_owned()
    }
}

fn read(log: &tempfile::NamedTempFile) -> String {
    std::fs::read_to_string(log.path()).unwrap_or_default()
}

/// One cookie a [`Browser`] keeps.
#[derive(Debug, Clone)]
struct Cookie {
    host: String,
    path: String,
    name: String,
    value: String,
    secure: bool,
    expires: Option<Instant>,
}

/// A browser, as far as redirects and cookies go: every request is a top-level
/// navigation, redirects are followed one hop at a time by [`Browser::follow`], and
/// cookies are kept as RFC 6265 says, simply: host-only (the `Domain` attribute is
/// ignored; ports are not part of a cookie's scope, as in every browser), `Path`
/// matched (default: the directory of the request's path), `Max-Age` / `Expires`
/// honoured, `Secure` cookies sent over https or to a loopback host (as Chromium
/// does). `SameSite` is not looked at: every hop is a top-level GET between
/// same-site loopback origins, where Lax and Strict cookies are sent anyway.
pub struct Browser {
    client: Client,
    cookies: Vec<Cookie>,
    /// The origins that answer; a redirect elsewhere (the app's `redirect_to`) ends
    /// [`Browser::follow`].
    servers: Vec<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies. The origin of every URL [`Browser::follow`] starts
    /// at, and the provider's of [`Browser::sign_in_at_provider`], count as served;
    /// add others with [`Browser::serving`].
    pub fn new() -> Browser {
        Browser { client: no_redirects(), cookies: Vec::new(), servers: Vec::new() }
    }

    /// Counts `base_url`'s origin as one that answers (its redirects are followed).
    pub fn serving(mut self, base_url: &str) -> Browser {
        self.serve(base_url);
        self
    }

    fn serve(&mut self, url: &str) {
        let o = origin(url);
        if !self.servers.contains(&o) {
            self.servers.push(o);
        }
    }

    /// The value of the cookie `name` it would send to `url`, if any.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).unwrap();
        self.cookies_for(&url).into_iter().find(|c| c.name == name).map(|c| c.value.clone())
    }

    /// Forgets every cookie (another browser, the same redirects).
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    /// GET `url` with the cookies that match it; keeps the cookies it sets. Does not
    /// follow a redirect.
    pub async fn get(&mut self, url: &str) -> Response {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("not a URL: {url} ({e})"));
        let mut req = self.client.get(url.clone());
        if let Some(header) = self.cookie_header(&url) {
            req = req.header(COOKIE, header);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.keep_cookies(&url, &res);
        res
    }

    /// GET `url` as a signed-in app would call tessera (with `Authorization: Bearer`),
    /// keeping the cookies it sets.
    pub async fn get_with_bearer(&mut self, url: &str, token: &str) -> Response {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("not a URL: {url} ({e})"));
        let res =
            self.client.get(url.clone()).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.keep_cookies(&url, &res);
        res
    }

    /// POST a form to `url`, as [`Browser::get`] does a GET.
    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("not a URL: {url} ({e})"));
        let mut req = self.client.post(url.clone()).form(form);
        if let Some(header) = self.cookie_header(&url) {
            req = req.header(COOKIE, header);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.keep_cookies(&url, &res);
        res
    }

    /// Follows redirects from `url` (GET, with cookies) and returns where they end: the
    /// first URL that does not answer with a redirect, or the first `Location` on an
    /// origin nobody here serves (the app's `redirect_to`), without requesting it.
    pub async fn follow(&mut self, url: &str) -> String {
        self.serve(url);
        let mut at = url.to_owned();
        for _ in 0..20 {
            if !self.servers.contains(&origin(&at)) {
                return at;
            }
            let res = self.get(&at).await;
            if !res.status().is_redirection() {
                return at;
            }
            at = location(&res).unwrap_or_else(|| panic!("{at} answered {} without a Location", res.status()));
        }
        panic!("more than 20 redirects from {url}");
    }

    /// Starts a sign-in at `start_url` (tessera's `/auth/v1/authorize?provider=…`, or any
    /// URL that redirects to the provider), signs in at the provider's form as `sub`, and
    /// returns the URL the provider sends the browser back to (tessera's callback, with
    /// `code` and `state`), without following it.
    pub async fn authorize_at_provider(&mut self, start_url: &str, provider: &OidcProvider, sub: &str) -> String {
        let at_provider = self.open_provider_form(start_url, provider).await;
        let res = self.post_form(&at_provider, &[("sub", sub)]).await;
        let status = res.status();
        match location(&res) {
            Some(back) if status.is_redirection() => back,
            _ => panic!("the provider did not redirect back ({status}): {}", res.text().await.unwrap()),
        }
    }

    /// A whole sign-in at the provider ([`Browser::authorize_at_provider`]), then back
    /// through tessera's callback with the cookies; returns where tessera sends the
    /// browser (the app's `redirect_to` with `#access_token=…`, `?code=…` or `?error=…`).
    pub async fn sign_in_at_provider(&mut self, start_url: &str, provider: &OidcProvider, sub: &str) -> String {
        let back = self.authorize_at_provider(start_url, provider, sub).await;
        self.follow(&back).await
    }

    /// As [`Browser::sign_in_at_provider`], but the callback arrives in a browser
    /// without the cookies the start set (another browser finishing someone's sign-in).
    pub async fn sign_in_at_provider_without_cookie(
        &mut self,
        start_url: &str,
        provider: &OidcProvider,
        sub: &str,
    ) -> String {
        let back = self.authorize_at_provider(start_url, provider, sub).await;
        self.clear_cookies();
        self.follow(&back).await
    }

    /// Starts a sign-in and presses "Deny" at the provider's form; returns where tessera
    /// sends the browser. The mock's denial carries `error=access_denied` and
    /// `error_description`, but no `state`.
    pub async fn deny_at_provider(&mut self, start_url: &str, provider: &OidcProvider) -> String {
        let at_provider = self.open_provider_form(start_url, provider).await;
        let res = self.post_form(&at_provider, &[("action", "deny")]).await;
        let back = location(&res).unwrap_or_else(|| panic!("the provider did not redirect back: {}", res.status()));
        self.follow(&back).await
    }

    /// GET `start_url`, which must redirect to the provider's authorization endpoint;
    /// GET the provider's form there (it checks the request); its URL.
    async fn open_provider_form(&mut self, start_url: &str, provider: &OidcProvider) -> String {
        self.serve(start_url);
        self.serve(&provider.issuer);
        let res = self.get(start_url).await;
        let status = res.status();
        let Some(to) = location(&res).filter(|_| status.is_redirection()) else {
            panic!("{start_url} answered {status}, not a redirect: {}", res.text().await.unwrap());
        };
        assert!(
            to.starts_with(&format!("{}?", provider.authorize_url())),
            "{start_url} redirected to {to}, not to the provider's authorization endpoint"
        );
        let res = self.get(&to).await;
        let status = res.status();
        assert_eq!(status, StatusCode::OK, "the provider refused {to}: {}", res.text().await.unwrap());
        to
    }

    fn cookies_for(&self, url: &Url) -> Vec<&Cookie> {
        let host = url.host_str().unwrap_or_default();
        let path = url.path();
        let now = Instant::now();
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        let mut found: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| c.host == host && path_matches(&c.path, path))
            .filter(|c| c.expires.is_none_or(|at| at > now))
            .filter(|c| !c.secure || url.scheme() == "https" || loopback)
            .collect();
        // Longer paths first (RFC 6265 5.4).
        found.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        found
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let pairs: Vec<String> = self.cookies_for(url).iter().map(|c| format!("{}={}", c.name, c.value)).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep_cookies(&mut self, url: &Url, res: &Response) {
        let host = url.host_str().unwrap_or_default().to_owned();
        for header in res.headers().get_all(SET_COOKIE) {
            let Ok(line) = header.to_str() else { continue };
            let mut parts = line.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { continue };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            let (mut path, mut secure, mut max_age, mut expires) = (None, false, None, None);
            for attr in parts {
                let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
                match key.trim().to_ascii_lowercase().as_str() {
                    "path" if val.trim().starts_with('/') => path = Some(val.trim().to_owned()),
                    "secure" => secure = true,
                    "max-age" => max_age = val.trim().parse::<i64>().ok(),
                    "expires" => expires = chrono::DateTime::parse_from_rfc2822(val.trim()).ok(),
                    _ => {}
                }
            }
            let path = path.unwrap_or_else(|| default_path(url.path()));
            // Max-Age wins over Expires; zero or less (or a past date) deletes.
            let lifetime = match (max_age, expires) {
                (Some(s), _) => Some(s),
                (None, Some(at)) => Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()),
                (None, None) => None,
            };
            self.cookies.retain(|c| !(c.host == host && c.path == path && c.name == name));
            if lifetime.is_some_and(|s| s <= 0) {
                continue;
            }
            let expires = lifetime.map(|s| Instant::now() + Duration::from_secs(s.unsigned_abs()));
            self.cookies.push(Cookie { host: host.clone(), path, name, value, secure, expires });
        }
    }
}

/// RFC 6265 5.1.4: a cookie's path matches the request's path.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/')))
}

/// RFC 6265 5.1.4: the default path of a cookie set without `Path`.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

/// Runs a whole OAuth sign-in through the official client (`@supabase/auth-js`,
/// `flowType: 'pkce'`): `signInWithOAuth` against `app_auth_url` (tessera's `/auth/v1`
/// base), the redirects and the provider's form by hand (`sub`), then
/// `exchangeCodeForSession` with the code that arrives at `redirect_to`. Returns what
/// `scripts/oauth-authjs.mjs` prints: `{ok, user: {id, email, is_anonymous, identities:
/// [provider, ...]}, access_token_present, error, authorize_url, final_url}`.
///
/// Node and the client come from `TESSERA_TEST_AUTHJS_NODE` (default `node`) and
/// `TESSERA_TEST_AUTHJS_NODE_MODULES` (default `target/client-check/node_modules`, where
/// scripts/client-check installs the pinned client); scripts/test sets both.
pub async fn authjs_oauth(app_auth_url: &str, provider: &str, redirect_to: &str, sub: &str) -> Value {
    authjs_script("oauth-authjs.mjs", &[app_auth_url, provider, redirect_to, sub]).await
}

/// Runs `scripts/SCRIPT` (a script driving @supabase/auth-js) with `args` on the Node and
/// client of [`authjs_oauth`]; the JSON line it prints, whose `ok` matches its exit status.
pub async fn authjs_script(script: &str, args: &[&str]) -> Value {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let node_modules = std::env::var_os("TESSERA_TEST_AUTHJS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/client-check/node_modules"));
    assert!(
        node_modules.join("@supabase/auth-js").is_dir(),
        "@supabase/auth-js is not in {}: run the suite with scripts/test, or set TESSERA_TEST_AUTHJS_NODE_MODULES",
        node_modules.display()
    );
    let node = std::env::var_os("TESSERA_TEST_AUTHJS_NODE").unwrap_or_else(|| "node".into());
    let path = repo.join("scripts").join(script);
    let out = tokio::process::Command::new(&node)
        .arg(&path)
        .args(args)
        .env("TESSERA_TEST_AUTHJS_NODE_MODULES", &node_modules)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap_or_else(|_| panic!("scripts/{script} took more than 60 s"))
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", node.to_string_lossy()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let result: Value = serde_json::from_str(line)
        .unwrap_or_else(|_| panic!("scripts/{script} printed no result ({}):\n{stdout}\n{stderr}", out.status));
    assert_eq!(out.status.success(), result["ok"] == json!(true), "exit status {} for {result}\n{stderr}", out.status);
    result
}

/// The header and claims of an RS256 JWT (an ID token) whose signature verifies under
/// the first key of the JWKS at `jwks_url`; panics otherwise.
pub async fn verified_claims(token: &str, jwks_url: &str) -> (Value, Value) {
    let jwks: Value = crate::harness::http_client().get(jwks_url).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("the ID token's signature verifies under the provider's JWKS");
    let (header, payload) = signed.split_once('.').unwrap();
    let decode = |part: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    (decode(header), decode(payload))
}

#[tokio::test]
async fn mock_provider_mints_id_tokens() {
    let provider = OidcProvider::start().await;
    assert!(provider.issuer.starts_with("http://127.0.0.1:"));
    let discovery: Value = crate::harness::http_client()
        .get(format!("{}/.well-known/openid-configuration", provider.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], provider.issuer.as_str());
    assert_eq!(discovery["jwks_uri"], provider.jwks_url().as_str());
    provider
        .set_user("ann-1", json!({"email": "ann@example.com", "email_verified": true, "name": "Ann", "locale": "en"}))
        .await;

    let tokens = provider.tokens("tessera-client", "ann-1", Some("nonce-1")).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string(), "{tokens}");
    let (header, claims) = verified_claims(tokens["id_token"].as_str().unwrap(), &provider.jwks_url()).await;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], provider.issuer.as_str());
    assert_eq!(claims["aud"], json!(["tessera-client"]));
    assert_eq!(claims["sub"], "ann-1");
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["email"], "ann@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Ann");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap(), "{claims}");

    // Without a nonce, none; a user nobody set has the email claim only.
    let token = provider.id_token("tessera-client", "bob@example.com", None).await;
    let (_, claims) = verified_claims(&token, &provider.jwks_url()).await;
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert_eq!(claims["email"], "bob@example.com");
    assert!(claims.get("email_verified").is_none(), "{claims}");
}

#[tokio::test]
async fn browser_keeps_cookies_by_host_and_path() {
    let mut browser = Browser::new();
    let url = Url::parse("http://127.0.0.1:9/auth/v1/authorize").unwrap();
    let res = axum::http::Response::builder()
        .status(302)
        .header(SET_COOKIE, "tessera-oauth=abc; Path=/auth/v1/callback; Max-Age=600; HttpOnly; SameSite=Lax")
        .header(SET_COOKIE, "plain=1")
        .header(SET_COOKIE, "gone=1; Max-Age=0")
        .body("")
        .unwrap();
    browser.keep_cookies(&url, &Response::from(res));
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/callback?code=x", "tessera-oauth").as_deref(), Some("abc"));
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/callback/more", "tessera-oauth").as_deref(), Some("abc"));
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/callbacks", "tessera-oauth"), None);
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/token", "tessera-oauth"), None);
    assert_eq!(browser.cookie("http://localhost:9/auth/v1/callback", "tessera-oauth"), None);
    // No Path: the directory of the request's path.
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/user", "plain").as_deref(), Some("1"));
    assert_eq!(browser.cookie("http://127.0.0.1:9/v1/auth", "plain"), None);
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/user", "gone"), None);
    // Deleted by a later Max-Age=0 on the same host, path and name.
    let res = axum::http::Response::builder()
        .header(SET_COOKIE, "tessera-oauth=; Path=/auth/v1/callback; Max-Age=0")
        .body("")
        .unwrap();
    browser.keep_cookies(&url, &Response::from(res));
    assert_eq!(browser.cookie("http://127.0.0.1:9/auth/v1/callback", "tessera-oauth"), None);
}
