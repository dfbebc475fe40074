//! tessera as an OAuth 2.1 and OpenID Connect provider (SPEC §5.12, issue 31): certified
//! relying-party libraries (openid-client from npm, Authlib from PyPI) drive the whole
//! flow through `scripts/oidc-rp`; the refusals OAuth 2.1 demands, the sessions, the
//! grants and Supabase's authorization API are driven here over HTTP.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::*;
use crate::provider::{location, no_redirects, url_param, Browser};

const ADMIN_EMAIL: &str = "root@example.com";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const LOGGED_OUT: &str = "http://127.0.0.1:9/logged-out";

/// A server on a known port (its issuer is `PUBLIC_URL`), its first admin's token, and
/// a user (email).
async fn op_app(extra: &[(&str, &str)]) -> (TestApp, String, String) {
    let port = free_port().to_string();
    let public = format!("http://127.0.0.1:{port}");
    let mut vars = vec![
        ("PORT", port.as_str()),
        ("PUBLIC_URL", public.as_str()),
        ("FIRST_ADMIN_EMAIL", ADMIN_EMAIL),
        ("FIRST_ADMIN_PASSWORD", PASSWORD),
    ];
    vars.extend_from_slice(extra);
    let app = TestApp::with(&vars).await;
    assert_eq!(app.base, public);
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    let email = format!("user-{}@example.com", uuid::Uuid::now_v7().simple());
    app.register(&email, PASSWORD).await;
    (app, admin, email)
}

/// Registers a client through the admin API; its JSON (with the secret, if any).
async fn new_client(app: &TestApp, admin: &str, body: Value) -> Value {
    let (status, c) = json_of(app.post("/v1/admin/oauth/clients", Some(admin), body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    c
}

async fn confidential(app: &TestApp, admin: &str) -> (String, String) {
    let c = new_client(
        app,
        admin,
        json!({ "client_name": "Confidential app", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [LOGGED_OUT],
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"] }),
    )
    .await;
    (c["client_id"].as_str().unwrap().to_owned(), c["client_secret"].as_str().unwrap().to_owned())
}

async fn public(app: &TestApp, admin: &str) -> String {
    let c = new_client(
        app,
        admin,
        json!({ "client_name": "Native app", "client_type": "public", "redirect_uris": [REDIRECT] }),
    )
    .await;
    assert!(c.get("client_secret").is_none(), "{c}");
    c["client_id"].as_str().unwrap().to_owned()
}

fn pkce() -> (String, String) {
    let verifier = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(app: &TestApp, client_id: &str, challenge: &str, extra: &str) -> String {
    format!(
        "{}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20email%20offline_access&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        app.base,
        urlencode(REDIRECT)
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The value of the hidden input `name` of a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Follows an authorization through tessera's pages (signing in as `email` when asked,
/// approving when asked) to the client's redirect URI.
async fn through_pages(app: &TestApp, b: &mut Browser, url: &str, email: &str) -> String {
    let mut at = b.follow(url).await;
    for _ in 0..4 {
        if at.starts_with(REDIRECT) {
            return at;
        }
        let page = b.get(&at).await.text().await.unwrap();
        let next = if at.contains("/oauth/sign-in") {
            let form = [
                ("authorization_id", hidden(&page, "authorization_id")),
                ("csrf", hidden(&page, "csrf")),
                ("email", email.to_owned()),
                ("password", PASSWORD.to_owned()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post_form(&format!("{}/oauth/sign-in", app.base), &form).await
        } else if at.contains("/oauth/consent") {
            let form = [
                ("authorization_id", hidden(&page, "authorization_id")),
                ("csrf", hidden(&page, "csrf")),
                ("decision", "approve".to_owned()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post_form(&format!("{}/oauth/consent", app.base), &form).await
        } else {
            panic!("unexpected page {at}: {page}");
        };
        assert_eq!(next.status(), StatusCode::SEE_OTHER, "{at}");
        let to = location(&next).unwrap();
        at = if to.starts_with('/') { format!("{}{to}", app.base) } else { to };
        if !at.starts_with(REDIRECT) {
            at = b.follow(&at).await;
        }
    }
    panic!("no redirect to the client: {at}");
}

async fn token(app: &TestApp, auth: Option<(&str, &str)>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url("/oauth/token")).form(form);
    if let Some((id, secret)) = auth {
        req = req.basic_auth(id, Some(secret));
    }
    json_of(req.send().await.unwrap()).await
}

async fn exchange(
    app: &TestApp,
    auth: Option<(&str, &str)>,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    token(
        app,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
        ],
    )
    .await
}

async fn userinfo(app: &TestApp, access: &str) -> StatusCode {
    app.client.get(app.url("/oauth/userinfo")).bearer_auth(access).send().await.unwrap().status()
}

/// Signs `email` in to `client_id` through the pages: `(code, verifier)`.
async fn code_for(app: &TestApp, b: &mut Browser, client_id: &str, email: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let back = through_pages(app, b, &authorize_url(app, client_id, &challenge, ""), email).await;
    assert_eq!(url_param(&back, "state").as_deref(), Some("st-1"), "{back}");
    assert_eq!(url_param(&back, "iss").as_deref(), Some(app.base.as_str()), "{back}");
    (url_param(&back, "code").unwrap_or_else(|| panic!("no code: {back}")), verifier)
}

#[tokio::test]
async fn openid_client_and_authlib_sign_in_through_tessera() {
    let (app, admin, email) = op_app(&[("OAUTH_DYNAMIC_REGISTRATION", "true")]).await;
    let (id, secret) = confidential(&app, &admin).await;
    let public_id = public(&app, &admin).await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oidc-rp");
    for library in ["openid-client", "authlib"] {
        let out = tokio::process::Command::new(&script)
            .arg(library)
            .env("OP_ISSUER", &app.base)
            .env("OP_CONFIDENTIAL_ID", &id)
            .env("OP_CONFIDENTIAL_SECRET", &secret)
            .env("OP_PUBLIC_ID", &public_id)
            .env("OP_REDIRECT_URI", REDIRECT)
            .env("OP_POST_LOGOUT_URI", LOGGED_OUT)
            .env("OP_EMAIL", &email)
            .env("OP_PASSWORD", PASSWORD)
            .env("OP_DYNAMIC", "1")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{library} failed:\n{stdout}\n{stderr}");
        let steps = stdout.lines().filter(|l| l.contains("\"ok\": true") || l.contains("\"ok\":true")).count();
        println!("{library}: {steps} steps passed");
        assert!(steps >= 8, "{library}: {stdout}");
    }
}

#[tokio::test]
async fn the_authorization_endpoint_refuses_what_oauth_2_1_forbids() {
    let (app, admin, _) = op_app(&[]).await;
    let (id, _) = confidential(&app, &admin).await;
    let client = no_redirects();
    let (_, challenge) = pkce();
    // A redirect URI that differs by one character: shown, never followed.
    let wrong = authorize_url(&app, &id, &challenge, "")
        .replace(&urlencode(REDIRECT), &urlencode("http://127.0.0.1:9/callbacK"));
    let res = client.get(&wrong).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(location(&res).is_none());
    // An unknown client: the same.
    let res = client.get(authorize_url(&app, &uuid::Uuid::new_v4().to_string(), &challenge, "")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // No PKCE, or plain: back to the client with invalid_request.
    let no_pkce =
        authorize_url(&app, &id, &challenge, "").replace("&code_challenge_method=S256", "&code_challenge_method=plain");
    let to = location(&client.get(&no_pkce).send().await.unwrap()).unwrap();
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(url_param(&to, "error").as_deref(), Some("invalid_request"));
    assert_eq!(url_param(&to, "state").as_deref(), Some("st-1"));
    assert_eq!(url_param(&to, "iss").as_deref(), Some(app.base.as_str()));
    // Another response type.
    let implicit = authorize_url(&app, &id, &challenge, "").replace("response_type=code", "response_type=token");
    let to = location(&client.get(&implicit).send().await.unwrap()).unwrap();
    assert_eq!(url_param(&to, "error").as_deref(), Some("unsupported_response_type"));
    // A scope the server does not know.
    let scope = authorize_url(&app, &id, &challenge, "").replace("scope=openid", "scope=openid%20admin");
    let to = location(&client.get(&scope).send().await.unwrap()).unwrap();
    assert_eq!(url_param(&to, "error").as_deref(), Some("invalid_scope"));
    // prompt=none with no session: login_required.
    let to = location(&client.get(authorize_url(&app, &id, &challenge, "&prompt=none")).send().await.unwrap()).unwrap();
    assert_eq!(url_param(&to, "error").as_deref(), Some("login_required"), "{to}");
    // OpenID Connect needs the redirect URI even when the client has one.
    let bare = authorize_url(&app, &id, &challenge, "").replace(&format!("&redirect_uri={}", urlencode(REDIRECT)), "");
    assert_eq!(client.get(&bare).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    // Without a session, the sign-in page.
    let to = location(&client.get(authorize_url(&app, &id, &challenge, "")).send().await.unwrap()).unwrap();
    assert!(to.starts_with(&format!("{}/oauth/sign-in?authorization_id=", app.base)), "{to}");
}

#[tokio::test]
async fn codes_are_single_use_bound_to_their_client_and_verifier_and_a_replay_revokes() {
    let (app, admin, email) = op_app(&[]).await;
    let (id, secret) = confidential(&app, &admin).await;
    let (other, other_secret) = confidential(&app, &admin).await;
    let public_id = public(&app, &admin).await;
    let mut b = Browser::new();
    // A wrong verifier spends the code.
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (status, body) = exchange(&app, Some((&id, &secret)), &id, &code, "x".repeat(43).as_str()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, body) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    // No verifier at all.
    let (code, _) = code_for(&app, &mut b, &id, &email).await;
    let (status, body) =
        token(&app, Some((&id, &secret)), &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    // A code used by another client.
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (status, body) = exchange(&app, Some((&other, &other_secret)), &other, &code, &verifier).await;
    assert_eq!(body["error"], "invalid_grant", "{status} {body}");
    // A wrong secret, and a secret sent by a public client.
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (status, body) = exchange(&app, Some((&id, "wrong")), &id, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    let (status, body) = exchange(&app, Some((&public_id, "anything")), &public_id, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    // The code is still good for its own client (a refused client spends nothing).
    let (status, tokens) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    for k in ["access_token", "id_token", "refresh_token"] {
        assert!(tokens[k].is_string(), "{k}: {tokens}");
    }
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await, StatusCode::OK);
    // tessera's own API refuses a client's token.
    assert_eq!(app.get("/v1/auth/me", Some(access)).await.status(), StatusCode::UNAUTHORIZED);
    // The refresh token works for its client only, and not on tessera's own refresh.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) =
        token(&app, Some((&other, &other_secret)), &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let res = app.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, refreshed) =
        token(&app, Some((&id, &secret)), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    // The code again: refused, and what it opened is revoked at once.
    let (status, body) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert_eq!(userinfo(&app, refreshed["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    // A code that waited more than 60 seconds.
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    app.sql("UPDATE oauth_authorizations SET code_expires_at = created_at WHERE status = 'approved'").await;
    let (_, body) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // client_credentials: a token of the client itself, no user, no refresh.
    let (status, cc) = token(&app, Some((&id, &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{cc}");
    assert!(cc.get("refresh_token").is_none() && cc.get("id_token").is_none(), "{cc}");
    let (status, body) = token(&app, None, &[("grant_type", "client_credentials"), ("client_id", &public_id)]).await;
    assert_eq!(body["error"], "unauthorized_client", "{status} {body}");
}

#[tokio::test]
async fn a_client_session_is_a_tessera_session_and_a_withdrawn_grant_ends_it() {
    let (app, admin, email) = op_app(&[]).await;
    let (id, secret) = confidential(&app, &admin).await;
    let mut b = Browser::new();
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (_, tokens) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let introspect = |token: String| {
        let req =
            app.client.post(app.url("/oauth/introspect")).basic_auth(&id, Some(&secret)).form(&[("token", token)]);
        async move { json_of(req.send().await.unwrap()).await.1 }
    };
    let seen = introspect(access.clone()).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], id.as_str());
    // Listed among the user's sessions; the grant is listed too.
    let login = app.login(&email, PASSWORD).await;
    let (_, sessions) = json_of(app.get("/v1/auth/sessions", Some(&login.access)).await).await;
    assert!(sessions.to_string().contains(&seen["sid"].as_str().unwrap().to_string()), "{sessions}");
    let (status, grants) = json_of(app.get("/v1/users/me/oauth/grants", Some(&login.access)).await).await;
    assert_eq!(status, StatusCode::OK, "{grants}");
    assert_eq!(grants[0]["client_id"], id.as_str());
    // A second sign-in to the same client asks for nothing (the consent is remembered).
    let (verifier2, challenge2) = pkce();
    let back = b.follow(&authorize_url(&app, &id, &challenge2, "")).await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let (_, again) = exchange(&app, Some((&id, &secret)), &id, &url_param(&back, "code").unwrap(), &verifier2).await;
    // Logout-all ends the client's sessions too.
    let res = app.post("/v1/auth/logout-all", Some(&login.access), json!({})).await;
    assert!(res.status().is_success());
    assert_eq!(userinfo(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(access.clone()).await["active"], false);
    assert_eq!(userinfo(&app, again["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    // A withdrawn grant: the consent goes, the sessions end, the next sign-in asks again.
    let login = app.login(&email, PASSWORD).await;
    let (verifier3, challenge3) = pkce();
    let mut fresh = Browser::new();
    let back = through_pages(&app, &mut fresh, &authorize_url(&app, &id, &challenge3, ""), &email).await;
    let (_, third) = exchange(&app, Some((&id, &secret)), &id, &url_param(&back, "code").unwrap(), &verifier3).await;
    assert_eq!(userinfo(&app, third["access_token"].as_str().unwrap()).await, StatusCode::OK);
    let res = app
        .send(reqwest::Method::DELETE, &format!("/v1/users/me/oauth/grants?client_id={id}"), Some(&login.access), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(userinfo(&app, third["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    let (_, grants) = json_of(app.get("/v1/users/me/oauth/grants", Some(&login.access)).await).await;
    assert_eq!(grants, json!([]));
    let (_, challenge4) = pkce();
    let to = location(&no_redirects().get(authorize_url(&app, &id, &challenge4, "&prompt=none")).send().await.unwrap())
        .unwrap();
    assert_eq!(url_param(&to, "error").as_deref(), Some("login_required"), "{to}");
    // An authorization request left to expire cannot be decided.
    let (_, challenge5) = pkce();
    let mut late = Browser::new();
    let at = late.follow(&authorize_url(&app, &id, &challenge5, "")).await;
    let page = late.get(&at).await.text().await.unwrap();
    let form = [
        ("authorization_id", hidden(&page, "authorization_id")),
        ("csrf", hidden(&page, "csrf")),
        ("email", email.clone()),
        ("password", PASSWORD.to_owned()),
    ];
    app.sql("UPDATE oauth_authorizations SET expires_at = created_at WHERE status = 'pending'").await;
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = late.post_form(&format!("{}/oauth/sign-in", app.base), &form).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A form without its cookie's token is refused.
    let mut stranger = Browser::new();
    let res = stranger.post_form(&format!("{}/oauth/sign-in", app.base), &form).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_supabase_app_hosts_its_own_consent_page() {
    let consent_url = "http://app.test/consent";
    let (app, _, email) = op_app(&[("OAUTH_CONSENT_URL", consent_url)]).await;
    let (service_role, _) = supabase_keys(&app).await;
    let sb = |method: reqwest::Method, path: &str, bearer: &str| {
        app.client.request(method, app.url(path)).bearer_auth(bearer).header("apikey", service_role.as_str())
    };
    // The admin registers a client through Supabase's API.
    let res = sb(reqwest::Method::POST, "/auth/v1/admin/oauth/clients", &service_role)
        .json(&json!({ "client_name": "Partner", "redirect_uris": [REDIRECT] }))
        .send()
        .await
        .unwrap();
    let (status, c) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let (id, secret) = (c["client_id"].as_str().unwrap().to_owned(), c["client_secret"].as_str().unwrap().to_owned());
    // The browser is sent to the app's page with the request's id.
    let (verifier, challenge) = pkce();
    let to = location(&no_redirects().get(authorize_url(&app, &id, &challenge, "")).send().await.unwrap()).unwrap();
    assert!(to.starts_with(consent_url), "{to}");
    let authorization = url_param(&to, "authorization_id").unwrap();
    // The app's user, signed in through the Supabase surface, reads and approves it.
    let res = sb(reqwest::Method::POST, "/auth/v1/token?grant_type=password", &service_role)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let (_, session) = json_of(res).await;
    let user_token = session["access_token"].as_str().unwrap().to_owned();
    let (status, details) = json_of(
        sb(reqwest::Method::GET, &format!("/auth/v1/oauth/authorizations/{authorization}"), &user_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{details}");
    assert_eq!(details["client"]["name"], "Partner");
    assert_eq!(details["scope"], "openid email offline_access");
    assert_eq!(details["user"]["email"], email.as_str());
    let (status, decided) = json_of(
        sb(reqwest::Method::POST, &format!("/auth/v1/oauth/authorizations/{authorization}/consent"), &user_token)
            .json(&json!({ "action": "approve" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let back = decided["redirect_url"].as_str().unwrap();
    let (status, tokens) =
        exchange(&app, Some((&id, &secret)), &id, &url_param(back, "code").unwrap(), &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // Deciding twice: not found.
    let res = sb(reqwest::Method::POST, &format!("/auth/v1/oauth/authorizations/{authorization}/consent"), &user_token)
        .json(&json!({ "action": "deny" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The grant, listed and withdrawn.
    let (_, grants) =
        json_of(sb(reqwest::Method::GET, "/auth/v1/user/oauth/grants", &user_token).send().await.unwrap()).await;
    assert_eq!(grants[0]["client"]["id"], id.as_str(), "{grants}");
    assert_eq!(grants[0]["scopes"], json!(["openid", "email", "offline_access"]));
    let res = sb(reqwest::Method::DELETE, &format!("/auth/v1/user/oauth/grants?client_id={id}"), &user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(userinfo(&app, tokens["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
}

/// The `service_role` and `anon` keys of a test server (as `tessera keys supabase` makes
/// them).
async fn supabase_keys(app: &TestApp) -> (String, String) {
    let keys = app.core.jwt.supabase_keys(chrono::Utc::now().timestamp()).unwrap();
    let get = |role: &str| keys.iter().find(|(r, _)| *r == role).unwrap().1.clone();
    (get("service_role"), get("anon"))
}

#[tokio::test]
async fn clients_are_managed_with_their_permissions_and_discovery_names_the_endpoints() {
    let (app, admin, email) = op_app(&[]).await;
    let (status, doc) = json_of(app.get("/.well-known/openid-configuration", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], app.base.as_str());
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert!(doc.get("registration_endpoint").is_none(), "off by default: {doc}");
    let (_, jwks) = json_of(app.get("/.well-known/jwks.json", None).await).await;
    let alg = doc["id_token_signing_alg_values_supported"][0].as_str().unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["alg"] == alg), "{jwks}");
    // Registration is refused unless enabled.
    let res = app.post("/oauth/register", None, json!({ "redirect_uris": [REDIRECT] })).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // CRUD.
    let c = new_client(
        &app,
        &admin,
        json!({ "client_name": "App", "redirect_uris": [REDIRECT], "logo_uri": "https://app.example/logo.png" }),
    )
    .await;
    let cid = c["client_id"].as_str().unwrap();
    let (_, got) = json_of(app.get(&format!("/v1/admin/oauth/clients/{cid}"), Some(&admin)).await).await;
    assert!(got.get("client_secret").is_none(), "{got}");
    assert_eq!(got["registration_type"], "manual");
    let res = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/admin/oauth/clients/{cid}"),
            Some(&admin),
            Some(json!({ "client_name": "Renamed" })),
        )
        .await;
    let (_, changed) = json_of(res).await;
    assert_eq!(
        (changed["client_name"].as_str(), changed["redirect_uris"][0].as_str()),
        (Some("Renamed"), Some(REDIRECT))
    );
    let (_, again) =
        json_of(app.post(&format!("/v1/admin/oauth/clients/{cid}/regenerate-secret"), Some(&admin), json!({})).await)
            .await;
    assert_ne!(again["client_secret"], c["client_secret"]);
    let (_, list) = json_of(app.get("/v1/admin/oauth/clients?per_page=10", Some(&admin)).await).await;
    assert_eq!(list["total"], 1);
    // Bad input: 422 naming the field.
    for bad in [
        json!({ "client_name": "x", "redirect_uris": [] }),
        json!({ "client_name": "x", "redirect_uris": ["http://evil.example/cb"] }),
        json!({ "client_name": "x", "redirect_uris": [REDIRECT], "scope": "openid admin" }),
    ] {
        let (status, body) = json_of(app.post("/v1/admin/oauth/clients", Some(&admin), bad.clone()).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    // A user without the permission is refused.
    let user = app.login(&email, PASSWORD).await.access;
    assert_eq!(app.get("/v1/admin/oauth/clients", Some(&user)).await.status(), StatusCode::FORBIDDEN);
    // Deleted: gone, and audited.
    let res = app.send(reqwest::Method::DELETE, &format!("/v1/admin/oauth/clients/{cid}"), Some(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/admin/oauth/clients/{cid}"), Some(&admin)).await.status(), StatusCode::NOT_FOUND);
    let audit = app.dump("audit_log").await;
    for event in
        ["oauth_client.created", "oauth_client.updated", "oauth_client.secret_regenerated", "oauth_client.deleted"]
    {
        assert!(audit.contains(event), "{event}");
    }
}

#[tokio::test]
async fn the_sign_in_page_asks_for_the_second_factor_and_the_id_token_says_so() {
    let (app, admin, _) = op_app(&[]).await;
    let (id, secret) = confidential(&app, &admin).await;
    let (email, mut auth, _, _, _) = crate::mfa::user_with_mfa(&app).await;
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let at = b.follow(&authorize_url(&app, &id, &challenge, "")).await;
    let page = b.get(&at).await.text().await.unwrap();
    let form = [
        ("authorization_id", hidden(&page, "authorization_id")),
        ("csrf", hidden(&page, "csrf")),
        ("email", email.clone()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.post_form(&format!("{}/oauth/sign-in", app.base), &form).await;
    assert_eq!(res.status(), StatusCode::OK);
    let step = res.text().await.unwrap();
    assert!(step.contains("/oauth/sign-in/mfa"), "{step}");
    // A wrong code: refused, no session.
    let wrong = auth.wrong();
    let second = |code: String| {
        [
            ("authorization_id", hidden(&step, "authorization_id")),
            ("csrf", hidden(&step, "csrf")),
            ("mfa_token", hidden(&step, "mfa_token")),
            ("code", code),
        ]
    };
    let f = second(wrong);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.post_form(&format!("{}/oauth/sign-in/mfa", app.base), &f).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let f = second(auth.next().await);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.post_form(&format!("{}/oauth/sign-in/mfa", app.base), &f).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = through_pages(&app, &mut b, &location(&res).unwrap(), &email).await;
    let (status, tokens) =
        exchange(&app, Some((&id, &secret)), &id, &url_param(&back, "code").unwrap(), &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = es256_claims(&app, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd", "mfa"]));
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["aud"], id.as_str());
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["email"], email.as_str());
    // prompt=login and max_age=0 send a signed-in browser to the sign-in page again.
    for extra in ["&prompt=login", "&max_age=0"] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (_, challenge) = pkce();
        let to = b.follow(&authorize_url(&app, &id, &challenge, extra)).await;
        assert!(to.contains("/oauth/sign-in?authorization_id="), "{extra}: {to}");
    }
    // Without them, the browser's session and the consent suffice.
    let (_, challenge) = pkce();
    let to = b.follow(&authorize_url(&app, &id, &challenge, "&prompt=none")).await;
    assert!(to.starts_with(REDIRECT) && url_param(&to, "code").is_some(), "{to}");
}

/// The claims of an ES256 token, once its signature verifies (with ring) under the key of
/// the server's JWKS its `kid` names.
async fn es256_claims(app: &TestApp, token: &str) -> Value {
    let (_, jwks) = json_of(app.get("/.well-known/jwks.json", None).await).await;
    let mut parts = token.split('.');
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");
    let key =
        jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("the kid is in the JWKS");
    let point = [
        vec![4u8],
        URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap(),
        URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap(),
    ]
    .concat();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap())
        .expect("the token's signature verifies under the JWKS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn logout_needs_the_id_token_or_a_confirmation_and_a_refreshed_id_token_keeps_auth_time() {
    let (app, admin, email) = op_app(&[]).await;
    let (id, secret) = confidential(&app, &admin).await;
    let mut b = Browser::new();
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (_, tokens) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    let first = es256_claims(&app, tokens["id_token"].as_str().unwrap()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (_, refreshed) =
        token(&app, Some((&id, &secret)), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    let again = es256_claims(&app, refreshed["id_token"].as_str().unwrap()).await;
    assert_eq!(again["auth_time"], first["auth_time"], "{again}");
    assert!(again.get("nonce").is_none());
    // A link with no ID token only asks; the browser stays signed in.
    let res = b.get(&format!("{}/oauth/logout", app.base)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("Sign out?"), "{page}");
    let (_, challenge) = pkce();
    let to = b.follow(&authorize_url(&app, &id, &challenge, "&prompt=none")).await;
    assert!(url_param(&to, "code").is_some(), "still signed in: {to}");
    // A post-logout URI the client did not register ends nothing.
    let hint = tokens["id_token"].as_str().unwrap();
    let bad = format!(
        "{}/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
        app.base,
        urlencode("https://evil.example/")
    );
    assert_eq!(b.get(&bad).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(userinfo(&app, refreshed["access_token"].as_str().unwrap()).await, StatusCode::OK);
    // The confirmation form signs the browser out.
    let form = [("csrf", hidden(&page, "csrf"))];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post_form(&format!("{}/oauth/logout", app.base), &form).await.status(), StatusCode::OK);
    let (_, challenge) = pkce();
    let to = b.follow(&authorize_url(&app, &id, &challenge, "&prompt=none")).await;
    assert_eq!(url_param(&to, "error").as_deref(), Some("login_required"), "{to}");
    // With the ID token: the client's session ends too, and back to the registered URI.
    let good = format!(
        "{}/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
        app.base,
        urlencode(LOGGED_OUT)
    );
    let res = b.get(&good).await;
    assert_eq!(location(&res).as_deref(), Some(format!("{LOGGED_OUT}?state=bye").as_str()));
    assert_eq!(userinfo(&app, refreshed["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_sign_in_page_signs_in_with_another_provider() {
    let provider = crate::provider::OidcProvider::start().await;
    provider.set_user("olga", json!({"email": "olga@example.com", "email_verified": true, "name": "Olga"})).await;
    let issuer = provider.issuer.clone();
    let (app, admin, _) = op_app(&[
        ("EXTERNAL_MOCK_ENABLED", "true"),
        ("EXTERNAL_MOCK_CLIENT_ID", "tessera-client"),
        ("EXTERNAL_MOCK_SECRET", "mock-secret"),
        ("EXTERNAL_MOCK_ISSUER", issuer.as_str()),
        ("EMAIL_AUTOCONFIRM", "true"),
    ])
    .await;
    let (id, secret) = confidential(&app, &admin).await;
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let at = b.follow(&authorize_url(&app, &id, &challenge, "")).await;
    let page = b.get(&at).await.text().await.unwrap();
    let start = page
        .find("/oauth/sign-in/external?")
        .map(|i| &page[i..])
        .unwrap_or_else(|| panic!("no provider button: {page}"));
    let start = format!("{}{}", app.base, &start[..start.find('"').unwrap()].replace("&amp;", "&"));
    let consent = b.sign_in_at_provider(&start, &provider, "olga").await;
    assert!(consent.contains("/oauth/consent?authorization_id="), "{consent}");
    let back = through_pages(&app, &mut b, &consent, "olga@example.com").await;
    let (status, tokens) =
        exchange(&app, Some((&id, &secret)), &id, &url_param(&back, "code").unwrap(), &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = es256_claims(&app, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["email"], "olga@example.com");
    assert_eq!(claims["amr"], json!(["fed"]));
}

#[tokio::test]
async fn the_endpoints_are_rate_limited_in_the_oauth_shape_and_decisions_are_audited() {
    let (app, admin, email) =
        op_app(&[("RATE_LIMIT_ENABLED", "true"), ("RATE_LIMIT_OAUTH", "4/1m"), ("RATE_LIMIT_LOGIN", "100/1m")]).await;
    let (id, secret) = confidential(&app, &admin).await;
    let mut b = Browser::new();
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (status, tokens) = exchange(&app, Some((&id, &secret)), &id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mut last = None;
    for _ in 0..4 {
        let res = app
            .client
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let (_, body) = json_of(res).await;
    assert_eq!(body["error"], "slow_down", "{body}");
    let audit = app.dump("audit_log").await;
    for event in ["oauth.consent", "oauth.authorize", "oauth.token"] {
        assert!(audit.contains(event), "{event}");
    }
}

/// The custom access token hook (issue 32) sees a client's access tokens too; the claims
/// a resource server relies on (`client_id`, `scope`, `sub`) stay the server's.
#[tokio::test]
async fn a_client_s_access_token_carries_the_custom_access_token_hook_s_claims() {
    let r = crate::receiver::Receiver::start().await;
    let claims = json!({ "claims": { "plan": "pro", "client_id": "forged", "scope": "admin", "sub": "forged" } });
    r.respond("/claims", json!([]), Some(json!({ "body": claims }))).await;
    let (uri, secret) = (r.url("/claims"), format!("v1,{}", r.secret()));
    let hook = [
        ("HOOK_CUSTOM_ACCESS_TOKEN_ENABLED", "true"),
        ("HOOK_CUSTOM_ACCESS_TOKEN_URI", uri.as_str()),
        ("HOOK_CUSTOM_ACCESS_TOKEN_SECRETS", secret.as_str()),
    ];
    let (app, admin, email) = op_app(&hook).await;
    let (id, client_secret) = confidential(&app, &admin).await;
    let mut b = Browser::new();
    let (code, verifier) = code_for(&app, &mut b, &id, &email).await;
    let (status, t) = exchange(&app, Some((&id, &client_secret)), &id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let access = t["access_token"].as_str().unwrap();
    let c = es256_claims(&app, access).await;
    assert_eq!(c["plan"], "pro", "{c}");
    assert_eq!((c["client_id"].as_str(), c["sub"].as_str()), (Some(id.as_str()), c["sub"].as_str()), "{c}");
    assert_ne!(c["sub"], "forged", "{c}");
    assert_ne!(c["scope"], "admin", "{c}");
    // The token still opens userinfo; the hook got a signed call about this user.
    assert_eq!(userinfo(&app, access).await, StatusCode::OK);
    let calls = r.wait_calls("/claims", 1, std::time::Duration::from_secs(10)).await;
    assert_eq!(calls.last().unwrap()["verified"], true);
    assert_eq!(calls.last().unwrap()["body"]["claims"]["client_id"], id);
}
