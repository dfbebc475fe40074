//! Signing in with other providers (SPEC §5.11), against a real OpenID Connect provider
//! on loopback (oidc-provider-mock) and a stand-in of GitHub's OAuth app endpoints: the
//! redirect flow (implicit and PKCE) on both surfaces, ID tokens, linking rules and each
//! refusal, identities, anonymous users.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::github_standin::{GitHubEmail, GitHubStandIn, GitHubUser};
use crate::harness::{json_of, TestApp};
use crate::provider::{url_param, Browser, OidcProvider};

const CLIENT_ID: &str = "tessera-test";
const APP: &str = "http://app.test/welcome";

/// A server on a port known before it starts (the callback registered at the provider is
/// `PUBLIC_URL/auth/v1/callback`), with `vars`.
async fn app_on_known_port(vars: &[(&str, &str)]) -> TestApp {
    let port = crate::harness::free_port().to_string();
    let public = format!("http://127.0.0.1:{port}");
    let mut all = vec![("PORT", port.as_str()), ("PUBLIC_URL", public.as_str())];
    all.extend_from_slice(vars);
    TestApp::with(&all).await
}

/// A server with the mock provider enabled as `mock`.
async fn app_with(provider: &OidcProvider, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("EXTERNAL_MOCK_ENABLED", "true"),
        ("EXTERNAL_MOCK_CLIENT_ID", CLIENT_ID),
        ("EXTERNAL_MOCK_SECRET", "mock-secret"),
        ("EXTERNAL_MOCK_ISSUER", provider.issuer.as_str()),
        ("REDIRECT_URLS", "http://app.test"),
        ("EMAIL_AUTOCONFIRM", "true"),
    ];
    vars.extend_from_slice(extra);
    app_on_known_port(&vars).await
}

fn verifier_and_challenge() -> (String, String) {
    use base64::Engine;
    let verifier = "v".repeat(20) + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn user_of(app: &TestApp, token: &str) -> Value {
    let (status, u) = json_of(app.get("/auth/v1/user", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{u}");
    u
}

fn providers_of(u: &Value) -> Vec<String> {
    u["identities"].as_array().unwrap().iter().map(|i| i["provider"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_implicit_flow_signs_a_new_user_in_and_back_at_the_app() {
    let provider = OidcProvider::start().await;
    provider.set_user("alice", json!({"email": "alice@example.com", "email_verified": true, "name": "Alice"})).await;
    let app = app_with(&provider, &[]).await;
    let start = app.url(&format!("/auth/v1/authorize?provider=mock&redirect_to={APP}"));
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "alice").await;
    assert!(landed.starts_with(APP), "{landed}");
    let token = url_param(&landed, "access_token").unwrap_or_else(|| panic!("no session: {landed}"));
    assert!(url_param(&landed, "refresh_token").is_some());
    let u = user_of(&app, &token).await;
    assert_eq!(u["email"], "alice@example.com");
    assert!(u["email_confirmed_at"].is_string(), "the provider verified it: {u}");
    assert_eq!(providers_of(&u), ["mock"]);
    assert_eq!(u["app_metadata"]["provider"], "mock");
    assert_eq!(u["identities"][0]["identity_data"]["name"], "Alice");
    assert_eq!(u["user_metadata"]["full_name"], "Alice");
    // The same identity signs the same user in again.
    let again = Browser::new().sign_in_at_provider(&start, &provider, "alice").await;
    let u2 = user_of(&app, &url_param(&again, "access_token").unwrap()).await;
    assert_eq!(u2["id"], u["id"]);
    let audit = app.dump("audit_log").await;
    assert!(audit.contains("login.success") && audit.contains("oauth") && audit.contains("mock"), "{audit}");
}

#[tokio::test]
async fn the_pkce_flow_hands_a_code_exchanged_once_with_its_verifier() {
    let provider = OidcProvider::start().await;
    provider.set_user("bob", json!({"email": "bob@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let (verifier, challenge) = verifier_and_challenge();
    let start = app.url(&format!(
        "/auth/v1/authorize?provider=mock&redirect_to={APP}&code_challenge={challenge}&code_challenge_method=s256"
    ));
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "bob").await;
    let code = url_param(&landed, "code").unwrap_or_else(|| panic!("no code: {landed}"));
    assert!(url_param(&landed, "access_token").is_none());
    // A wrong verifier spends the code.
    let res = app
        .post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": "x".repeat(43)}))
        .await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error_code"], "bad_code_verifier");
    let res =
        app.post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier})).await;
    assert_eq!(json_of(res).await.0, StatusCode::NOT_FOUND, "the code is gone");

    let landed = Browser::new().sign_in_at_provider(&start, &provider, "bob").await;
    let code = url_param(&landed, "code").unwrap();
    let res =
        app.post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier})).await;
    let (status, session) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["email"], "bob@example.com");
    assert_eq!(providers_of(&session["user"]), ["mock"]);
    let res =
        app.post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier})).await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error_code"], "flow_state_not_found");
}

#[tokio::test]
async fn a_callback_without_the_browser_that_started_it_is_refused() {
    let provider = OidcProvider::start().await;
    let app = app_with(&provider, &[("SITE_URL", "http://app.test/home")]).await;
    let start = app.url(&format!("/auth/v1/authorize?provider=mock&redirect_to={APP}"));
    let landed = Browser::new().sign_in_at_provider_without_cookie(&start, &provider, "mallory").await;
    assert!(landed.starts_with("http://app.test/home"), "{landed}");
    assert_eq!(url_param(&landed, "error_code").as_deref(), Some("bad_oauth_state"), "{landed}");
    assert!(url_param(&landed, "access_token").is_none());
    // An answer that names another issuer (RFC 9207) is not this provider's.
    let mut browser = Browser::new();
    let back = browser.authorize_at_provider(&start, &provider, "mallory").await;
    let landed = browser.follow(&format!("{back}&iss=http%3A%2F%2Fevil.test")).await;
    assert_eq!(url_param(&landed, "error_code").as_deref(), Some("bad_oauth_callback"), "{landed}");
    // A redirect outside REDIRECT_URLS is replaced by SITE_URL before the provider is asked.
    let evil = app.url("/auth/v1/authorize?provider=mock&redirect_to=http://evil.test/steal");
    provider.set_user("mallory", json!({"email": "mallory@example.com", "email_verified": true})).await;
    let landed = Browser::new().sign_in_at_provider(&evil, &provider, "mallory").await;
    assert!(landed.starts_with("http://app.test/home#access_token="), "{landed}");
    // A forged state, too.
    let res = app.get("/auth/v1/callback?code=x&state=forged.sig", None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(url_param(&to, "error_code").as_deref(), Some("bad_oauth_state"), "{to}");
    // The provider's refusal comes back as the app's error.
    let denied = Browser::new().deny_at_provider(&start, &provider).await;
    assert_eq!(url_param(&denied, "error").as_deref(), Some("access_denied"), "{denied}");
    assert!(url_param(&denied, "access_token").is_none());
}

#[tokio::test]
async fn an_address_links_only_when_both_sides_verified_it() {
    let provider = OidcProvider::start().await;
    let app = app_with(&provider, &[("EMAIL_AUTOCONFIRM", "false")]).await;
    let start = app.url(&format!("/auth/v1/authorize?provider=mock&redirect_to={APP}"));
    // A confirmed account, and a provider that says the address is verified: linked.
    let confirmed = app.register("carol@example.com", "Correct-Horse-9").await;
    let id = confirmed["id"].as_str().unwrap().to_owned();
    app.sql("UPDATE users SET email_verified_at = created_at WHERE email = 'carol@example.com'").await;
    provider.set_user("carol-sub", json!({"email": "carol@example.com", "email_verified": true})).await;
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "carol-sub").await;
    let u = user_of(&app, &url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"))).await;
    assert_eq!(u["id"], id.as_str());
    assert_eq!(providers_of(&u), ["email", "mock"]);
    assert!(app.dump("audit_log").await.contains("identity.link"));

    // The provider does not vouch for the address: a new account, never carol's.
    provider.set_user("eve-1", json!({"email": "carol@example.com", "email_verified": false})).await;
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "eve-1").await;
    let u = user_of(&app, &url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"))).await;
    assert_ne!(u["id"], id.as_str());
    assert_eq!(u["email"], "", "the address is carol's: {u}");

    // The account never confirmed its address: the provider's word is not enough.
    app.register("dave@example.com", "Correct-Horse-9").await;
    provider.set_user("eve-2", json!({"email": "dave@example.com", "email_verified": true})).await;
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "eve-2").await;
    let u = user_of(&app, &url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"))).await;
    assert_eq!(u["email"], "");
    assert_eq!(providers_of(&u), ["mock"]);
}

#[tokio::test]
async fn id_tokens_sign_in_when_key_issuer_audience_and_nonce_hold() {
    let provider = OidcProvider::start().await;
    provider.set_user("frank", json!({"email": "frank@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let nonce = "a-nonce-of-the-app";
    let hashed: String = Sha256::digest(nonce.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let token = provider.id_token(CLIENT_ID, "frank", Some(&hashed)).await;
    let grant = |body: Value| app.post("/auth/v1/token?grant_type=id_token", None, body);
    let (status, body) = json_of(grant(json!({"provider": "mock", "id_token": token, "nonce": "another"})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = json_of(grant(json!({"provider": "mock", "id_token": token})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a nonce in the token needs one in the request: {body}");
    let (status, session) = json_of(grant(json!({"provider": "mock", "id_token": token, "nonce": nonce})).await).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["email"], "frank@example.com");
    // Minted for another client: not ours.
    let foreign = provider.id_token("another-app", "frank", None).await;
    let (status, body) = json_of(grant(json!({"provider": "mock", "id_token": foreign})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["msg"].as_str().unwrap().contains("Bad ID token"), "{body}");
    // A tampered signature.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let flipped = format!("{head}.{first}{}", &sig[1..]);
    let (status, _) = json_of(grant(json!({"provider": "mock", "id_token": flipped, "nonce": nonce})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A provider that is not enabled.
    let (status, body) = json_of(grant(json!({"provider": "google", "id_token": token})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["msg"].as_str().unwrap().contains("not enabled"), "{body}");
}

#[tokio::test]
async fn the_native_surface_exchanges_its_code_for_the_login_response() {
    let provider = OidcProvider::start().await;
    provider.set_user("gina", json!({"email": "gina@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let res = app.get(&format!("/v1/auth/oauth/mock?redirect_to={APP}"), None).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "the native flow is PKCE only");
    let (verifier, challenge) = verifier_and_challenge();
    let start = app.url(&format!("/v1/auth/oauth/mock?redirect_to={APP}&code_challenge={challenge}"));
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "gina").await;
    let code = url_param(&landed, "code").unwrap_or_else(|| panic!("{landed}"));
    let res = app.post("/v1/auth/oauth/token", None, json!({"code": code, "code_verifier": verifier})).await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(body["user"]["email"], "gina@example.com");
    let (status, ids) = json_of(app.get("/v1/users/me/identities", Some(access)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids.as_array().unwrap().len(), 1, "{ids}");
    assert_eq!(ids[0]["provider"], "mock");
    assert_eq!(ids[0]["provider_id"], "gina");
    // The export holds the identity and what the provider said.
    let export: Value = app.get("/v1/users/me/export", Some(access)).await.json().await.unwrap();
    assert_eq!(export["identities"][0]["provider"], "mock", "{export}");
    assert_eq!(export["identities"][0]["identity_data"]["email"], "gina@example.com");
}

#[tokio::test]
async fn an_mfa_user_signed_in_by_a_provider_still_owes_the_second_step() {
    let provider = OidcProvider::start().await;
    provider.set_user("hank", json!({"email": "hank@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    // First sign-in creates the account; then MFA is switched on for it.
    let (verifier, challenge) = verifier_and_challenge();
    let start = app.url(&format!("/v1/auth/oauth/mock?redirect_to={APP}&code_challenge={challenge}"));
    let code = url_param(&Browser::new().sign_in_at_provider(&start, &provider, "hank").await, "code").unwrap();
    let (_, first) =
        json_of(app.post("/v1/auth/oauth/token", None, json!({"code": code, "code_verifier": verifier})).await).await;
    app.sql("UPDATE users SET mfa_enabled = true WHERE email = 'hank@example.com'").await;
    let _ = first;
    let code = url_param(&Browser::new().sign_in_at_provider(&start, &provider, "hank").await, "code").unwrap();
    let (status, body) =
        json_of(app.post("/v1/auth/oauth/token", None, json!({"code": code, "code_verifier": verifier})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn github_signs_in_through_its_api_with_the_primary_verified_address() {
    let github = GitHubStandIn::start("gh-client", "gh-secret").await;
    let mut user = GitHubUser::new(4242, "octo", "octo-public@example.com");
    user.email = None;
    user.emails = vec![
        GitHubEmail::new("octo-unverified@example.com", false, false),
        GitHubEmail::new("octo@example.com", true, true),
    ];
    github.set_user(user);
    let app = app_on_known_port(&[
        ("EXTERNAL_GITHUB_ENABLED", "true"),
        ("EXTERNAL_GITHUB_CLIENT_ID", "gh-client"),
        ("EXTERNAL_GITHUB_SECRET", "gh-secret"),
        ("EXTERNAL_GITHUB_URL", github.url.as_str()),
        ("REDIRECT_URLS", "http://app.test"),
    ])
    .await;
    let start = app.url(&format!("/auth/v1/authorize?provider=github&redirect_to={APP}"));
    let landed = Browser::new().serving(&github.url).follow(&start).await;
    let token = url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"));
    let u = user_of(&app, &token).await;
    assert_eq!(u["email"], "octo@example.com");
    assert_eq!(providers_of(&u), ["github"]);
    assert_eq!(u["identities"][0]["id"], "4242");
    assert_eq!(u["user_metadata"]["user_name"], "octo");
    // A refusal at GitHub lands at the app as an error.
    github.deny_next();
    let denied = Browser::new().serving(&github.url).follow(&start).await;
    assert_eq!(url_param(&denied, "error").as_deref(), Some("access_denied"), "{denied}");
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_clear_error_not_a_500() {
    let port = crate::harness::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let app = TestApp::with(&[
        ("EXTERNAL_DOWN_ENABLED", "true"),
        ("EXTERNAL_DOWN_CLIENT_ID", "x"),
        ("EXTERNAL_DOWN_ISSUER", issuer.as_str()),
        ("REDIRECT_URLS", "http://app.test"),
    ])
    .await;
    let res = app.get(&format!("/auth/v1/authorize?provider=down&redirect_to={APP}"), None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(APP), "{to}");
    assert_eq!(url_param(&to, "error").as_deref(), Some("server_error"), "{to}");
    assert_eq!(url_param(&to, "error_code").as_deref(), Some("provider_unavailable"), "{to}");
}

#[tokio::test]
async fn identities_unlink_only_with_manual_linking_and_never_the_last() {
    let provider = OidcProvider::start().await;
    let app = app_with(&provider, &[("MANUAL_LINKING_ENABLED", "true")]).await;
    let start = app.url(&format!("/auth/v1/authorize?provider=mock&redirect_to={APP}"));
    provider.set_user("ivy", json!({"email": "ivy@example.com", "email_verified": true})).await;
    // An account with a password (confirmed at once), then linked by its verified address.
    let (status, signup) = json_of(
        app.post("/auth/v1/signup", None, json!({"email": "ivy@example.com", "password": "Correct-Horse-9"})).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signup}");
    let landed = Browser::new().sign_in_at_provider(&start, &provider, "ivy").await;
    let token = url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"));
    let u = user_of(&app, &token).await;
    assert_eq!(providers_of(&u), ["email", "mock"]);
    let mock_id = u["identities"][1]["identity_id"].as_str().unwrap().to_owned();
    let email_id = u["identities"][0]["identity_id"].as_str().unwrap().to_owned();
    let res =
        app.send(reqwest::Method::DELETE, &format!("/auth/v1/user/identities/{mock_id}"), Some(&token), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(providers_of(&user_of(&app, &token).await), ["email"]);
    let res =
        app.send(reqwest::Method::DELETE, &format!("/auth/v1/user/identities/{email_id}"), Some(&token), None).await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error_code"], "single_identity_not_deletable");
    assert!(app.dump("audit_log").await.contains("identity.unlink"));
    // The link URL for a signed-in user.
    let (status, body) = json_of(
        app.get("/auth/v1/user/identities/authorize?provider=mock&skip_http_redirect=true", Some(&token)).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["url"].as_str().unwrap().starts_with(&provider.issuer));
}

#[tokio::test]
async fn manual_linking_is_off_by_default() {
    let provider = OidcProvider::start().await;
    let app = app_with(&provider, &[]).await;
    let (_, session) = json_of(
        app.post("/auth/v1/signup", None, json!({"email": "jo@example.com", "password": "Correct-Horse-9"})).await,
    )
    .await;
    let token = session["access_token"].as_str().unwrap();
    let (status, body) =
        json_of(app.get("/auth/v1/user/identities/authorize?provider=mock&skip_http_redirect=true", Some(token)).await)
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["msg"], "Manual linking is disabled");
}

#[tokio::test]
async fn anonymous_users_sign_up_with_no_address_and_become_permanent_by_a_provider() {
    let off = TestApp::spawn().await;
    let (status, body) = json_of(off.post("/auth/v1/signup", None, json!({})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error_code"], "anonymous_provider_disabled");

    let provider = OidcProvider::start().await;
    let app = app_with(&provider, &[("ANONYMOUS_USERS_ENABLED", "true"), ("MANUAL_LINKING_ENABLED", "true")]).await;
    let (status, session) = json_of(app.post("/auth/v1/signup", None, json!({"data": {"color": "teal"}})).await).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["is_anonymous"], true);
    assert_eq!(session["user"]["email"], "");
    assert_eq!(session["user"]["user_metadata"]["color"], "teal");
    let token = session["access_token"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims["is_anonymous"], true);
    let (status, body) = json_of(app.get("/auth/v1/reauthenticate", Some(token)).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["msg"].as_str().unwrap().contains("email or a phone number"));
}

#[tokio::test]
async fn the_settings_list_the_enabled_providers() {
    let provider = OidcProvider::start().await;
    let app = app_with(&provider, &[("ANONYMOUS_USERS_ENABLED", "true")]).await;
    let (_, s) = json_of(app.get("/auth/v1/settings", None).await).await;
    assert_eq!(s["external"]["mock"], true);
    assert_eq!(s["external"]["google"], false);
    assert_eq!(s["external"]["anonymous_users"], true);
}

#[tokio::test]
async fn the_official_client_signs_in_through_the_provider_and_exchanges_its_code() {
    let provider = OidcProvider::start().await;
    provider.set_user("kim", json!({"email": "kim@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let result = crate::provider::authjs_oauth(&app.url("/auth/v1"), "mock", APP, "kim").await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["user"]["email"], "kim@example.com", "{result}");
    assert_eq!(result["user"]["identities"], json!(["mock"]), "{result}");
}

#[tokio::test]
async fn an_anonymous_user_becomes_permanent_by_confirming_an_address() {
    let smtp = crate::harness::SmtpServer::start().await;
    let mut vars = smtp.settings();
    vars.push(("ANONYMOUS_USERS_ENABLED", "true".to_owned()));
    let app = TestApp::with(&crate::harness::pairs(&vars)).await;
    let (_, session) = json_of(app.post("/auth/v1/signup", None, json!({})).await).await;
    let token = session["access_token"].as_str().unwrap();
    let res =
        app.send(reqwest::Method::PUT, "/auth/v1/user", Some(token), Some(json!({"email": "lee@example.com"}))).await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_anonymous"], true, "not until the address is confirmed: {body}");
    // Only the new address confirms: there is no old one.
    let mail = smtp.latest("lee@example.com", "Confirm your new email").await;
    let (status, body) =
        json_of(app.post("/auth/v1/verify", None, json!({"type": "email_change", "token_hash": mail.token()})).await)
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let u = user_of(&app, body["access_token"].as_str().unwrap_or(token)).await;
    assert_eq!(u["email"], "lee@example.com");
    assert_eq!(u["is_anonymous"], false, "{u}");
}

#[tokio::test]
async fn a_pkce_magic_link_comes_back_with_a_code_for_the_verifier() {
    let smtp = crate::harness::SmtpServer::start().await;
    let mut vars = smtp.settings();
    vars.push(("REDIRECT_URLS", "http://app.test".to_owned()));
    let app = TestApp::with(&crate::harness::pairs(&vars)).await;
    let (verifier, challenge) = verifier_and_challenge();
    let res = app
        .post(
            &format!("/auth/v1/otp?redirect_to={APP}"),
            None,
            json!({"email": "mo@example.com", "code_challenge": challenge, "code_challenge_method": "s256"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let link = smtp.wait_for("mo@example.com", 1).await[0].link();
    assert!(link.contains("code_challenge="), "{link}");
    let path = link.split_once("/auth/v1/").map(|(_, p)| format!("/auth/v1/{p}")).unwrap();
    let res = app.get(&path, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(APP) && url_param(&to, "access_token").is_none(), "{to}");
    let code = url_param(&to, "code").unwrap_or_else(|| panic!("{to}"));
    let (status, session) = json_of(
        app.post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier})).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["email"], "mo@example.com");
    // The link is spent.
    let res = app.get(&path, None).await;
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(url_param(&to, "error_code").is_some(), "{to}");
}

#[tokio::test]
async fn the_purge_removes_stale_anonymous_users_and_unused_codes() {
    let app = TestApp::with(&[("ANONYMOUS_USERS_ENABLED", "true"), ("ANONYMOUS_RETENTION_DAYS", "0")]).await;
    let (_, stale) = json_of(app.post("/auth/v1/signup", None, json!({})).await).await;
    let id = stale["user"]["id"].as_str().unwrap().to_owned();
    let report = app.core.purge(false).await.unwrap().unwrap();
    assert_eq!(report.anonymous, 1, "{report}");
    assert!(app.dump("users").await.find(&id).is_none());
    // With the default retention a fresh one stays.
    let app = TestApp::with(&[("ANONYMOUS_USERS_ENABLED", "true")]).await;
    json_of(app.post("/auth/v1/signup", None, json!({})).await).await;
    assert_eq!(app.core.purge(false).await.unwrap().unwrap().anonymous, 0);
}

#[tokio::test]
async fn pkce_sign_up_and_recovery_links_come_back_with_codes() {
    let smtp = crate::harness::SmtpServer::start().await;
    let mut vars = smtp.settings();
    vars.push(("REDIRECT_URLS", "http://app.test".to_owned()));
    vars.push(("REQUIRE_EMAIL_VERIFICATION", "true".to_owned()));
    let app = TestApp::with(&crate::harness::pairs(&vars)).await;
    let (verifier, challenge) = verifier_and_challenge();
    let follow = |link: String| {
        let path = link.split_once("/auth/v1/").map(|(_, p)| format!("/auth/v1/{p}")).unwrap();
        let app = &app;
        async move {
            let res = app.get(&path, None).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            res.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let exchange = |code: String| {
        app.post("/auth/v1/token?grant_type=pkce", None, json!({"auth_code": code, "code_verifier": verifier.clone()}))
    };
    // The sign-up's confirmation.
    let res = app
        .post(
            &format!("/auth/v1/signup?redirect_to={APP}"),
            None,
            json!({"email": "nia@example.com", "password": "Correct-Horse-9", "code_challenge": challenge, "code_challenge_method": "s256"}),
        )
        .await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("access_token").is_none(), "not confirmed yet: {body}");
    let link = smtp.wait_for("nia@example.com", 1).await[0].link();
    assert!(link.contains("/auth/v1/verify") && link.contains("type=signup"), "{link}");
    let to = follow(link).await;
    let code = url_param(&to, "code").unwrap_or_else(|| panic!("{to}"));
    let (status, session) = json_of(exchange(code).await).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert!(session["user"]["email_confirmed_at"].is_string(), "{session}");
    // The recovery.
    let res = app
        .post(
            &format!("/auth/v1/recover?redirect_to={APP}"),
            None,
            json!({"email": "nia@example.com", "code_challenge": challenge, "code_challenge_method": "s256"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let link = smtp.wait_for("nia@example.com", 2).await[1].link();
    assert!(link.contains("type=recovery") && link.contains("code_challenge="), "{link}");
    let code = url_param(&follow(link).await, "code").unwrap();
    let (status, session) = json_of(exchange(code).await).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["access_token"].as_str().unwrap();
    let res = app
        .send(reqwest::Method::PUT, "/auth/v1/user", Some(token), Some(json!({"password": "Another-Horse-7"})))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_provider_that_hangs_costs_the_timeout_not_a_worker() {
    // A provider that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = TestApp::with(&[
        ("EXTERNAL_SLOW_ENABLED", "true"),
        ("EXTERNAL_SLOW_CLIENT_ID", "x"),
        ("EXTERNAL_SLOW_ISSUER", issuer.as_str()),
        ("EXTERNAL_HTTP_TIMEOUT", "1"),
        ("REDIRECT_URLS", "http://app.test"),
    ])
    .await;
    let started = std::time::Instant::now();
    // Several at once, while the server keeps answering others.
    let path = format!("/auth/v1/authorize?provider=slow&redirect_to={APP}");
    let slow: Vec<_> = (0..4).map(|_| app.get(&path, None)).collect();
    let (answers, health) = tokio::join!(futures::future::join_all(slow), app.get("/health", None));
    assert_eq!(health.status(), StatusCode::OK);
    for res in answers {
        assert_eq!(res.status(), StatusCode::FOUND);
        let to = res.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(url_param(&to, "error_code").as_deref(), Some("provider_unavailable"), "{to}");
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    hold.abort();
}

/// Manual linking as a browser does it: the link URL asked for with the user's token,
/// the provider's form signed as `link-sub`, back through the callback; where it lands.
async fn link_through_the_provider(app: &TestApp, provider: &OidcProvider, token: &str) -> String {
    let mut browser = Browser::new();
    let url =
        app.url(&format!("/auth/v1/user/identities/authorize?provider=mock&redirect_to={APP}&skip_http_redirect=true"));
    let res = browser.get_with_bearer(&url, token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let at_provider = res.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned();
    assert!(at_provider.starts_with(&provider.issuer));
    assert_eq!(browser.get(&at_provider).await.status(), StatusCode::OK, "the provider's form");
    let res = browser.post_form(&at_provider, &[("sub", "link-sub")]).await;
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    browser.follow(&back).await
}

#[tokio::test]
async fn a_signed_in_user_links_a_providers_identity_through_the_redirect() {
    let provider = OidcProvider::start().await;
    provider.set_user("link-sub", json!({"email": "elsewhere@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[("MANUAL_LINKING_ENABLED", "true")]).await;
    let signup =
        |email: &'static str| app.post("/auth/v1/signup", None, json!({"email": email, "password": "Correct-Horse-9"}));
    let (_, owner) = json_of(signup("owner@example.com").await).await;
    let token = owner["access_token"].as_str().unwrap();
    let landed = link_through_the_provider(&app, &provider, token).await;
    let u = user_of(&app, &url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"))).await;
    assert_eq!(u["id"], owner["user"]["id"], "the identity is linked to the signed-in user");
    assert_eq!(providers_of(&u), ["email", "mock"]);
    assert_eq!(u["email"], "owner@example.com", "linking does not change the address");
    // Another user cannot take the same identity.
    let (_, other) = json_of(signup("other@example.com").await).await;
    let landed = link_through_the_provider(&app, &provider, other["access_token"].as_str().unwrap()).await;
    assert_eq!(url_param(&landed, "error_code").as_deref(), Some("identity_already_exists"), "{landed}");
}

#[tokio::test]
async fn a_provider_that_rotates_its_keys_is_followed() {
    let mut provider = OidcProvider::start().await;
    provider.set_user("rot", json!({"email": "rot@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let grant = |token: String| {
        app.post("/auth/v1/token?grant_type=id_token", None, json!({"provider": "mock", "id_token": token}))
    };
    let (status, _) = json_of(grant(provider.id_token(CLIENT_ID, "rot", None).await).await).await;
    assert_eq!(status, StatusCode::OK, "the key set is fetched and kept");
    // The provider comes back with a new key (its tokens name none); the cached set is
    // fetched again, once the refetch pause is over.
    provider.restart().await;
    provider.set_user("rot", json!({"email": "rot@example.com", "email_verified": true})).await;
    let token = provider.id_token(CLIENT_ID, "rot", None).await;
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let (status, body) = json_of(grant(token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], "rot@example.com");
}

async fn id_token_sign_in(app: &TestApp, token: String) -> reqwest::Response {
    app.post("/auth/v1/token?grant_type=id_token", None, json!({"provider": "mock", "id_token": token})).await
}

#[tokio::test]
async fn identities_are_encrypted_at_rest_and_by_tessera_pii_encrypt() {
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let provider = OidcProvider::start().await;
    provider.set_user("pat-sub", json!({"email": "pat@example.com", "email_verified": true, "name": "Pat Q"})).await;
    let vars = [
        ("EXTERNAL_MOCK_ENABLED", "true"),
        ("EXTERNAL_MOCK_CLIENT_ID", CLIENT_ID),
        ("EXTERNAL_MOCK_ISSUER", provider.issuer.as_str()),
    ];
    let app = TestApp::with(&vars).await;
    let (status, first) =
        json_of(id_token_sign_in(&app, provider.id_token(CLIENT_ID, "pat-sub", None).await).await).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(app.dump("identities").await.contains("pat@example.com"), "stored as given without a key");
    let db_url = app.db_url.clone();
    let _dir = app.shutdown().await;

    let (code, out, err) =
        crate::harness::tessera_command(&db_url, &["pii", "encrypt"], &[("PII_ENCRYPTION_KEY", KEY)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 identities"), "{out}");
    let mut with_key = vars.to_vec();
    with_key.push(("PII_ENCRYPTION_KEY", KEY));
    let app = TestApp::with_database(&db_url, &with_key).await;
    let dump = app.dump("identities").await.to_lowercase();
    assert!(!dump.contains("pat@example.com") && !dump.contains("pat q"), "{dump}");
    // Read back through the key: the same identity signs the same user in.
    let (status, again) =
        json_of(id_token_sign_in(&app, provider.id_token(CLIENT_ID, "pat-sub", None).await).await).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["user"]["id"], first["user"]["id"]);
    assert_eq!(again["user"]["identities"][0]["identity_data"]["name"], "Pat Q");
    assert!(!app.dump("identities").await.to_lowercase().contains("pat@example.com"), "a sign-in keeps it sealed");
}

#[tokio::test]
async fn a_provider_may_post_its_answer_to_the_callback() {
    let provider = OidcProvider::start().await;
    provider.set_user("poster", json!({"email": "poster@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let start = app.url(&format!("/auth/v1/authorize?provider=mock&redirect_to={APP}"));
    let mut browser = Browser::new();
    let back = browser.authorize_at_provider(&start, &provider, "poster").await;
    // `response_mode=form_post`: the same fields, as a form posted to the callback.
    let (code, state) = (url_param(&back, "code").unwrap(), url_param(&back, "state").unwrap());
    let res = browser.post_form(&app.url("/auth/v1/callback"), &[("code", &code), ("state", &state)]).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let landed = res.headers()["location"].to_str().unwrap().to_owned();
    let token = url_param(&landed, "access_token").unwrap_or_else(|| panic!("{landed}"));
    assert_eq!(user_of(&app, &token).await["email"], "poster@example.com");
}

#[tokio::test]
async fn first_sign_ins_of_one_identity_at_once_make_one_account() {
    let provider = OidcProvider::start().await;
    provider.set_user("twin", json!({"email": "twin@example.com", "email_verified": true})).await;
    let app = app_with(&provider, &[]).await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(provider.id_token(CLIENT_ID, "twin", None).await);
    }
    let answers = futures::future::join_all(tokens.into_iter().map(|t| id_token_sign_in(&app, t))).await;
    let mut ids = std::collections::HashSet::new();
    for res in answers {
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.insert(body["user"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one account: {ids:?}");
}
