//! A stand-in for GitHub Enterprise Server's OAuth app endpoints, as GitHub documents
//! them ("Authorizing OAuth apps", and the REST API's `GET /user` and
//! `GET /user/emails`), on a free loopback port: tessera is pointed at it with
//! `EXTERNAL_GITHUB_URL` = [`GitHubStandIn::url`], which makes it use
//! `{url}/login/oauth/authorize`, `{url}/login/oauth/access_token` and the API at
//! `{url}/api/v3`.
//!
//! Like GitHub: the authorization page signs the current user in at once (a user who
//! already authorized the app) and redirects to `redirect_uri` with `code` and `state`;
//! a code is good once, for ten minutes; the token endpoint takes its parameters as a
//! form, as JSON or in the query, answers 200 even for errors (`{"error":
//! "bad_verification_code", ...}`), and answers JSON only when asked with `Accept:
//! application/json` (else a form-encoded body); a `code_challenge` (S256) at the
//! authorization binds the code to its `code_verifier`; the API wants a `User-Agent`
//! (403 without), `Authorization: Bearer <token>` or `token <token>` (401 `Bad
//! credentials`), and the `user:email` (or `user`) scope for `/user/emails` (404
//! without).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, USER_AGENT};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Url;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A GitHub user as the stand-in signs them in and as `GET /user` shows them.
#[derive(Debug, Clone)]
pub struct GitHubUser {
    pub id: i64,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: String,
    /// The public address (`null` in `GET /user` when the user keeps it private).
    pub email: Option<String>,
    /// What `GET /user/emails` lists.
    pub emails: Vec<GitHubEmail>,
}

/// One entry of `GET /user/emails`.
#[derive(Debug, Clone)]
pub struct GitHubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
    /// `"public"` or `"private"` for the primary address, `None` (null) for the others.
    pub visibility: Option<String>,
}

impl GitHubUser {
    /// A user named after `login` whose only address, `email`, is primary, verified and
    /// public.
    pub fn new(id: i64, login: &str, email: &str) -> GitHubUser {
        GitHubUser {
            id,
            login: login.to_owned(),
            name: Some(format!("{login} (GitHub)")),
            avatar_url: format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
            email: Some(email.to_owned()),
            emails: vec![GitHubEmail::new(email, true, true)],
        }
    }

    /// `GET /user` of this user, in GitHub's shape (the fields an app reads, and some).
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "login": self.login,
            "id": self.id,
            "node_id": URL_SAFE_NO_PAD.encode(format!("04:User{}", self.id)),
            "avatar_url": self.avatar_url,
            "gravatar_id": "",
            "url": format!("{base}/api/v3/users/{}", self.login),
            "html_url": format!("{base}/{}", self.login),
            "type": "User",
            "site_admin": false,
            "name": self.name,
            "company": null,
            "blog": "",
            "location": null,
            "email": self.email,
            "hireable": null,
            "bio": null,
            "public_repos": 2,
            "public_gists": 0,
            "followers": 1,
            "following": 0,
            "created_at": "2015-03-01T10:00:00Z",
            "updated_at": "2026-01-01T10:00:00Z",
        })
    }
}

impl GitHubEmail {
    /// An address; the primary one is `"public"`, the others have no visibility.
    pub fn new(email: &str, primary: bool, verified: bool) -> GitHubEmail {
        GitHubEmail { email: email.to_owned(), primary, verified, visibility: primary.then(|| "public".to_owned()) }
    }

    fn to_json(&self) -> Value {
        json!({"email": self.email, "primary": self.primary, "verified": self.verified, "visibility": self.visibility})
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Query and body parameters (form or JSON, strings only) together.
    pub params: HashMap<String, String>,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
}

struct Grant {
    user_id: i64,
    redirect_uri: String,
    scope: String,
    code_challenge: Option<String>,
    issued: Instant,
}

struct Token {
    user_id: i64,
    scope: String,
}

struct Inner {
    client_id: String,
    secret: String,
    base: String,
    current: i64,
    users: HashMap<i64, GitHubUser>,
    deny_next: bool,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Token>,
    received: Vec<Received>,
}

type Shared = Arc<Mutex<Inner>>;

/// The stand-in, serving until dropped.
pub struct GitHubStandIn {
    /// `http://127.0.0.1:PORT`, the value for `EXTERNAL_GITHUB_URL`.
    pub url: String,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl GitHubStandIn {
    /// Starts one for the OAuth app `client_id` / `secret`, signing in
    /// `GitHubUser::new(1, "octocat", "octocat@example.com")` until told otherwise.
    pub async fn start(client_id: &str, secret: &str) -> GitHubStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let first = GitHubUser::new(1, "octocat", "octocat@example.com");
        let inner = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            base: url.clone(),
            current: first.id,
            users: HashMap::from([(first.id, first)]),
            deny_next: false,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            received: Vec::new(),
        }));
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/api/v3/user", get(user))
            .route("/api/v3/user/emails", get(user_emails))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GitHubStandIn { url, inner, server }
    }

    /// Makes `user` the one who signs in from now on (and updates what the API shows of
    /// a user with that id, for tokens already issued to them).
    pub fn set_user(&self, user: GitHubUser) {
        let mut inner = self.inner.lock().unwrap();
        inner.current = user.id;
        inner.users.insert(user.id, user);
    }

    /// The next authorization is denied by the user (GitHub's `error=access_denied`).
    pub fn deny_next(&self) {
        self.inner.lock().unwrap().deny_next = true;
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The requests received so far on `path` (e.g. `/login/oauth/access_token`).
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for GitHubStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn record(inner: &mut Inner, method: Method, path: &str, params: &HashMap<String, String>, headers: &HeaderMap) {
    let headers =
        headers.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect();
    inner.received.push(Received {
        method: method.to_string(),
        path: path.to_owned(),
        params: params.clone(),
        headers,
    });
}

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// `redirect_uri` with `params` added to its query.
fn with_params(redirect_uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    for (k, v) in params {
        url.query_pairs_mut().append_pair(k, v);
    }
    Some(url.to_string())
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(LOCATION, to)]).into_response()
}

/// `GET /login/oauth/authorize`: the user is signed in and has authorized the app.
async fn authorize(
    State(inner): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    record(&mut inner, Method::GET, "/login/oauth/authorize", &params, &headers);
    if params.get("client_id") != Some(&inner.client_id) {
        return (StatusCode::NOT_FOUND, "Not Found (no OAuth app with this client_id)").into_response();
    }
    // GitHub falls back to the app's registered callback URL; the stand-in has none.
    let Some(redirect_uri) = params.get("redirect_uri").filter(|u| Url::parse(u).is_ok()).cloned() else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is required by the stand-in").into_response();
    };
    let state = params.get("state").map(String::as_str);
    if std::mem::take(&mut inner.deny_next) {
        let mut back = vec![
            ("error", "access_denied"),
            ("error_description", "The user has denied your application access."),
            (
                "error_uri",
                "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
            ),
        ];
        back.extend(state.map(|s| ("state", s)));
        return redirect(with_params(&redirect_uri, &back).unwrap());
    }
    if params.contains_key("code_challenge") && params.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        let mut back = vec![("error", "invalid_request"), ("error_description", "code_challenge_method must be S256")];
        back.extend(state.map(|s| ("state", s)));
        return redirect(with_params(&redirect_uri, &back).unwrap());
    }
    let code = random_hex(10);
    let grant = Grant {
        user_id: inner.current,
        redirect_uri: redirect_uri.clone(),
        // Requested as a space- (or comma-) separated list; granted as a comma-separated one.
        scope: params
            .get("scope")
            .map(|s| s.split([' ', ',']).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        code_challenge: params.get("code_challenge").cloned(),
        issued: Instant::now(),
    };
    inner.codes.insert(code.clone(), grant);
    let mut back = vec![("code", code.as_str())];
    back.extend(state.map(|s| ("state", s)));
    redirect(with_params(&redirect_uri, &back).unwrap())
}

/// The token endpoint's parameters: the query, then the body (JSON or a form).
fn token_params(query: HashMap<String, String>, headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let mut params = query;
    let json = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
    if json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    params.insert(k, s.to_owned());
                }
            }
        }
    } else if let Ok(form) = Url::parse(&format!("http://form.invalid/?{}", String::from_utf8_lossy(body))) {
        params.extend(form.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    params
}

/// The token endpoint's answer in the format the `Accept` header asks for (JSON, XML,
/// or else a form-encoded body), always 200, as GitHub answers.
fn token_answer(headers: &HeaderMap, fields: &[(&str, &str)]) -> Response {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("application/json") {
        let map: serde_json::Map<String, Value> = fields.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        return Json(Value::Object(map)).into_response();
    }
    if accept.contains("application/xml") {
        let inner: String = fields.iter().map(|(k, v)| format!("<{k}>{v}</{k}>")).collect();
        return ([(CONTENT_TYPE, "application/xml; charset=utf-8")], format!("<OAuth>{inner}</OAuth>")).into_response();
    }
    let mut form = Url::parse("http://form.invalid/").unwrap();
    for (k, v) in fields {
        form.query_pairs_mut().append_pair(k, v);
    }
    ([(CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")], form.query().unwrap_or_default().to_owned())
        .into_response()
}

fn token_error(headers: &HeaderMap, error: &str, description: &str, anchor: &str) -> Response {
    let uri = format!("https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#{anchor}");
    token_answer(headers, &[("error", error), ("error_description", description), ("error_uri", &uri)])
}

/// `POST /login/oauth/access_token`: a code for a token.
async fn access_token(
    State(inner): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = token_params(query, &headers, &body);
    let mut inner = inner.lock().unwrap();
    record(&mut inner, Method::POST, "/login/oauth/access_token", &params, &headers);
    let param = |name: &str| params.get(name).map(String::as_str);
    if param("client_id") != Some(inner.client_id.as_str()) || param("client_secret") != Some(inner.secret.as_str()) {
        return token_error(
            &headers,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            "incorrect-client-credentials",
        );
    }
    let bad_code = |headers: &HeaderMap| {
        token_error(
            headers,
            "bad_verification_code",
            "The code passed is incorrect or expired.",
            "bad-verification-code",
        )
    };
    // A code is good once, used or not by this request.
    let Some(grant) = param("code").and_then(|c| inner.codes.remove(c)) else { return bad_code(&headers) };
    if grant.issued.elapsed() > Duration::from_secs(600) {
        return bad_code(&headers);
    }
    if param("redirect_uri").is_some_and(|u| u != grant.redirect_uri) {
        return token_error(
            &headers,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
            "redirect-uri-mismatch2",
        );
    }
    if let Some(challenge) = &grant.code_challenge {
        let verified =
            param("code_verifier").is_some_and(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *challenge);
        if !verified {
            return bad_code(&headers);
        }
    }
    let token = format!("gho_{}", random_hex(18));
    let scope = grant.scope.clone();
    inner.tokens.insert(token.clone(), Token { user_id: grant.user_id, scope: scope.clone() });
    token_answer(&headers, &[("access_token", &token), ("token_type", "bearer"), ("scope", &scope)])
}

/// The API's checks: a User-Agent, then a token it issued. The user and the token's scope.
fn api_caller(inner: &Inner, headers: &HeaderMap) -> Result<(GitHubUser, String), Response> {
    if headers.get(USER_AGENT).is_none() {
        return Err((
            StatusCode::FORBIDDEN,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header \
             (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). \
             Check https://developer.github.com for other possible causes.\n",
        )
            .into_response());
    }
    let unauthorized = |message: &str| {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response()
    };
    let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized("Requires authentication"));
    };
    let token = auth.split_once(' ').and_then(|(scheme, token)| {
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")).then(|| token.trim())
    });
    let Some(grant) = token.and_then(|t| inner.tokens.get(t)) else { return Err(unauthorized("Bad credentials")) };
    let user = inner.users.get(&grant.user_id).cloned().ok_or_else(|| unauthorized("Bad credentials"))?;
    Ok((user, grant.scope.clone()))
}

/// `GET /api/v3/user`.
async fn user(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    record(&mut inner, Method::GET, "/api/v3/user", &HashMap::new(), &headers);
    match api_caller(&inner, &headers) {
        Ok((user, scope)) => ([("x-oauth-scopes", scope)], Json(user.to_json(&inner.base))).into_response(),
        Err(res) => res,
    }
}

/// `GET /api/v3/user/emails` (needs the `user:email` or `user` scope).
async fn user_emails(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    record(&mut inner, Method::GET, "/api/v3/user/emails", &HashMap::new(), &headers);
    let (user, scope) = match api_caller(&inner, &headers) {
        Ok(found) => found,
        Err(res) => return res,
    };
    if !scope.split(',').any(|s| s == "user:email" || s == "user") {
        let body = json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user",
            "status": "404",
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let emails: Vec<Value> = user.emails.iter().map(GitHubEmail::to_json).collect();
    ([("x-oauth-scopes", scope)], Json(Value::Array(emails))).into_response()
}

// The stand-in on its own, as an OAuth app (not tessera) uses it.

#[tokio::test]
async fn github_standin_serves_an_oauth_app() {
    let github = GitHubStandIn::start("gh-client", "gh-secret").await;
    let mut user = GitHubUser::new(4242, "ann", "ann@example.com");
    user.email = None; // a private address: only /user/emails shows it
    user.emails.push(GitHubEmail::new("ann@old.example", false, false));
    github.set_user(user);
    let client = crate::harness::http_client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect_uri = "http://127.0.0.1:1/auth/v1/callback";
    let verifier = "a-code-verifier-of-enough-length-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));

    let authorize = format!("{}/login/oauth/authorize", github.url);
    let res = client
        .get(
            Url::parse_with_params(
                &authorize,
                &[
                    ("client_id", "gh-client"),
                    ("redirect_uri", redirect_uri),
                    ("state", "st-1"),
                    ("scope", "read:user user:email"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let back = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(back.starts_with(&format!("{redirect_uri}?code=")), "{back}");
    assert_eq!(crate::provider::url_param(&back, "state").as_deref(), Some("st-1"));
    let code = crate::provider::url_param(&back, "code").unwrap();

    // Wrong secret, wrong verifier: 200 with an error; the code is spent either way.
    let token_url = format!("{}/login/oauth/access_token", github.url);
    let res = client
        .post(&token_url)
        .header(ACCEPT, "application/json")
        .form(&[("client_id", "gh-client"), ("client_secret", "nope"), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "incorrect_client_credentials", "{body}");

    let exchange = |code: String, verifier: &'static str| {
        let client = client.clone();
        let token_url = token_url.clone();
        async move {
            let res = client
                .post(&token_url)
                .header(ACCEPT, "application/json")
                .json(&json!({"client_id": "gh-client", "client_secret": "gh-secret", "code": code,
                              "redirect_uri": redirect_uri, "code_verifier": verifier}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    let body = exchange(code.clone(), "another-verifier-of-enough-length-0123456789").await;
    assert_eq!(body["error"], "bad_verification_code", "{body}");
    let body = exchange(code, verifier).await;
    assert_eq!(body["error"], "bad_verification_code", "a code is good once: {body}");

    // The whole flow again, rightly.
    let res = client
        .get(
            Url::parse_with_params(
                &authorize,
                &[
                    ("client_id", "gh-client"),
                    ("redirect_uri", redirect_uri),
                    ("state", "st-2"),
                    ("scope", "read:user user:email"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let code = crate::provider::url_param(res.headers()[LOCATION].to_str().unwrap(), "code").unwrap();
    let body = exchange(code, verifier).await;
    assert_eq!(body["token_type"], "bearer", "{body}");
    assert_eq!(body["scope"], "read:user,user:email");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gho_"));

    let api = |path: &str, auth: Option<String>, agent: bool| {
        let mut req = client.get(format!("{}/api/v3{path}", github.url));
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        if agent {
            req = req.header(USER_AGENT, "tessera-test");
        }
        req.send()
    };
    let res = api("/user", Some(format!("Bearer {token}")), true).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], 4242);
    assert_eq!(me["login"], "ann");
    assert_eq!(me["email"], Value::Null);
    let res = api("/user/emails", Some(format!("token {token}")), true).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let emails: Value = res.json().await.unwrap();
    assert_eq!(
        emails,
        json!([{"email": "ann@example.com", "primary": true, "verified": true, "visibility": "public"},
               {"email": "ann@old.example", "primary": false, "verified": false, "visibility": null}])
    );
    assert_eq!(api("/user", Some(format!("Bearer {token}")), false).await.unwrap().status(), StatusCode::FORBIDDEN);
    let res = api("/user", Some("Bearer gho_unknown".to_owned()), true).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "Bad credentials");
    assert_eq!(api("/user", None, true).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Without the user:email scope, no addresses; without Accept: JSON, a form.
    let res = client
        .get(
            Url::parse_with_params(
                &authorize,
                &[("client_id", "gh-client"), ("redirect_uri", redirect_uri), ("scope", "read:user")],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let back = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(crate::provider::url_param(&back, "state"), None);
    let code = crate::provider::url_param(&back, "code").unwrap();
    let res = client
        .post(&token_url)
        .form(&[("client_id", "gh-client"), ("client_secret", "gh-secret"), ("code", &code)])
        .send()
        .await
        .unwrap();
    let form = res.text().await.unwrap();
    assert!(form.starts_with("access_token=gho_") && form.ends_with("&token_type=bearer&scope=read%3Auser"), "{form}");
    let token = crate::provider::url_param(&format!("http://x.invalid/?{form}"), "access_token").unwrap();
    assert_eq!(
        api("/user/emails", Some(format!("Bearer {token}")), true).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // A denial, and an unknown app.
    github.deny_next();
    let res = client
        .get(
            Url::parse_with_params(
                &authorize,
                &[("client_id", "gh-client"), ("redirect_uri", redirect_uri), ("state", "st-3")],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let back = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(crate::provider::url_param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(crate::provider::url_param(&back, "state").as_deref(), Some("st-3"));
    let res = client
        .get(Url::parse_with_params(&authorize, &[("client_id", "other"), ("redirect_uri", redirect_uri)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(github.received_on("/login/oauth/access_token").len(), 5);
}
