//! Access-token checks (SPEC §4.1): every way a bearer token can be wrong is refused on
//! `GET /v1/auth/me` with 401, the SPEC §6 body and `WWW-Authenticate: Bearer`.
//!
//! Forged tokens are built by hand: take a real token's claims, change one thing,
//! re-sign with HMAC (or don't).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Sha256, Sha512};
use tessera_core::entity::{session, user};
use tessera_store::sea_orm::sea_query::Expr;
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::harness::*;

// ---------------------------------------------------------------------------------
// Helpers: JWT parts, forging, and the one assertion every test ends with.
// ---------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn part(token: &str, i: usize) -> &str {
    token.split('.').nth(i).unwrap_or_else(|| panic!("token has no part {i}: {token}"))
}

fn decode_part(token: &str, i: usize) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part(token, i)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The claims of a token.
fn claims(token: &str) -> Value {
    decode_part(token, 1)
}

/// The JOSE header of a token.
fn header(token: &str) -> Value {
    decode_part(token, 0)
}

fn encode_json(v: &Value) -> String {
    b64(&serde_json::to_vec(v).unwrap())
}

fn hs256(key: &[u8], input: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

fn hs512(key: &[u8], input: &str) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

/// `base64url(header).base64url(claims)`: the signing input.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", encode_json(header), encode_json(claims))
}

/// An HS256 token signed with `key`.
fn sign_hs256_with(key: &[u8], claims: &Value) -> String {
    let input = signing_input(&json!({ "alg": "HS256", "typ": "JWT" }), claims);
    let sig = hs256(key, &input);
    format!("{input}.{sig}")
}

/// An HS256 token signed with the test server's secret: valid unless the claims say otherwise.
fn forge(claims: &Value) -> String {
    sign_hs256_with(JWT_SECRET.as_bytes(), claims)
}

/// The claims of `token` with `key` set to `value`.
fn with_claim(token: &str, key: &str, value: Value) -> Value {
    let mut c = claims(token);
    c[key] = value;
    c
}

/// The claims of `token` without `key`.
fn without_claim(token: &str, key: &str) -> Value {
    let mut c = claims(token);
    c.as_object_mut().unwrap().remove(key);
    c
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `GET /v1/auth/me` with a raw `Authorization` header (or none).
async fn me_with_authorization(app: &TestApp, authorization: Option<&str>) -> Response {
    let mut req = app.client.get(app.url("/v1/auth/me"));
    if let Some(v) = authorization {
        req = req.header(AUTHORIZATION, v);
    }
    req.send().await.unwrap()
}

/// Asserts a 401 with `WWW-Authenticate: Bearer` and the SPEC §6 body carrying `code`.
async fn assert_unauthorized(res: Response, code: &str) -> Value {
    let challenge = res.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
    assert!(
        challenge.as_deref().is_some_and(|c| c.starts_with("Bearer")),
        "401 must carry WWW-Authenticate: Bearer, got {challenge:?} (status {})",
        res.status()
    );
    assert_error(res, StatusCode::UNAUTHORIZED, code).await
}

/// Presents `token` as a bearer token to `GET /v1/auth/me` and asserts it is refused
/// with `code`; the body never echoes the token.
async fn assert_rejected(app: &TestApp, token: &str, code: &str) -> Value {
    let res = app.get("/v1/auth/me", Some(token)).await;
    let body = assert_unauthorized(res, code).await;
    if token.len() > 8 {
        assert!(!body.to_string().contains(token), "the error body echoes the token: {body}");
    }
    body
}

/// Asserts `token` is accepted by `GET /v1/auth/me` for `email`.
async fn assert_accepted(app: &TestApp, token: &str, email: &str) {
    let (status, body) = json_of(app.get("/v1/auth/me", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "token should be accepted: {body}");
    assert_eq!(body["email"], email, "body: {body}");
}

/// A `none`-algorithm token over `claims` with the given signature part.
fn unsigned(alg: &str, claims: &Value, signature: &str) -> String {
    let input = signing_input(&json!({ "alg": alg, "typ": "JWT" }), claims);
    format!("{input}.{signature}")
}

// ---------------------------------------------------------------------------------
// Controls: the forging helpers produce tokens the server accepts, so every
// rejection below is caused by the one thing each test changes.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn real_token_has_the_documented_claims() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    let h = header(&login.access);
    let c = claims(&login.access);

    assert_eq!(h["alg"], "HS256");
    assert_eq!(c["iss"], "tessera");
    assert_eq!(c["aud"], "authenticated");
    assert_eq!(c["type"], "access");
    assert_eq!(c["email"], email);
    assert_eq!(c["role"], "user");
    assert_eq!(c["sub"], c["user_id"]);
    assert_eq!(c["sub"], login.body["user"]["id"]);
    assert!(c["ver"].is_i64(), "ver: {c}");
    assert!(c["sid"].as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()), "sid: {c}");
    assert_eq!(c["aal"], "aal1");
    assert!(c["jti"].is_string(), "jti: {c}");
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert!((iat - now()).abs() < 60, "iat {iat} is now");
    assert_eq!(exp - iat, 15 * 60, "default lifetime is 15 minutes");
    app.stop().await;
}

#[tokio::test]
async fn re_signed_unchanged_claims_are_accepted() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    let token = forge(&claims(&login.access));

    assert_accepted(&app, &token, &email).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Algorithm `none`.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_lowercase_with_empty_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = unsigned("none", &claims(&login.access), "");

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn alg_none_capitalised_with_empty_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = unsigned("None", &claims(&login.access), "");

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn alg_none_uppercase_with_empty_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = unsigned("NONE", &claims(&login.access), "");

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn alg_none_mixed_case_with_empty_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = unsigned("nOnE", &claims(&login.access), "");

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn alg_none_without_signature_part_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    // `header.payload` with no trailing dot at all.
    let token = signing_input(&json!({ "alg": "none", "typ": "JWT" }), &claims(&login.access));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn alg_none_with_copied_signature_is_rejected_in_every_case() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let real_sig = part(&login.access, 2).to_owned();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = unsigned(alg, &claims(&login.access), &real_sig);

        assert_rejected(&app, &token, "invalid_token").await;
    }
    // The real token still works: nothing above touched the session.
    assert_accepted(&app, &login.access, &email).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Signature and payload tampering.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn tampered_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let mut parts: Vec<String> = login.access.split('.').map(str::to_owned).collect();
    // Change the first character (the last one may only carry padding bits).
    let first = if parts[2].starts_with('A') { "B" } else { "A" };
    parts[2].replace_range(0..1, first);
    let token = parts.join(".");
    assert_ne!(token, login.access);

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn truncated_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let token = login.access[..login.access.len() - 4].to_owned();

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn tampered_payload_role_admin_with_original_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let forged_claims = with_claim(&login.access, "role", json!("admin"));
    let token = format!("{}.{}.{}", part(&login.access, 0), encode_json(&forged_claims), part(&login.access, 2));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn tampered_payload_extended_exp_with_original_signature_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let forged_claims = with_claim(&login.access, "exp", json!(now() + 365 * 24 * 3600));
    let token = format!("{}.{}.{}", part(&login.access, 0), encode_json(&forged_claims), part(&login.access, 2));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn signed_with_another_secret_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = sign_hs256_with(b"another-secret-key-that-is-long-enough-9876543210", &claims(&login.access));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn signed_with_hs512_while_configured_hs256_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let input = signing_input(&json!({ "alg": "HS512", "typ": "JWT" }), &claims(&login.access));
    // A correct HS512 signature with the right secret: only the algorithm is wrong.
    let token = format!("{input}.{}", hs512(JWT_SECRET.as_bytes(), &input));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn hs256_signature_under_hs512_header_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let input = signing_input(&json!({ "alg": "HS512", "typ": "JWT" }), &claims(&login.access));
    let token = format!("{input}.{}", hs256(JWT_SECRET.as_bytes(), &input));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Claims.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = forge(&with_claim(&login.access, "aud", json!("some-other-service")));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = forge(&with_claim(&login.access, "iss", json!("https://evil.test")));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_type_refresh_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = forge(&with_claim(&login.access, "type", json!("refresh")));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn missing_exp_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = forge(&without_claim(&login.access, "exp"));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn missing_other_required_claims_are_rejected() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    for claim in ["iss", "aud", "sub", "type", "ver", "sid", "iat"] {
        let token = forge(&without_claim(&login.access, claim));

        let res = app.get("/v1/auth/me", Some(&token)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "token without `{claim}` must be refused");
        assert_unauthorized(res, "invalid_token").await;
    }
    assert_accepted(&app, &login.access, &email).await;
    app.stop().await;
}

#[tokio::test]
async fn expired_beyond_leeway_is_rejected_as_token_expired() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let exp = now() - 120;
    let mut c = with_claim(&login.access, "exp", json!(exp));
    c["iat"] = json!(exp - 15 * 60);

    let token = forge(&c);

    assert_rejected(&app, &token, "token_expired").await;
    app.stop().await;
}

#[tokio::test]
async fn expired_within_leeway_is_accepted() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let exp = now() - 10;
    let mut c = with_claim(&login.access, "exp", json!(exp));
    c["iat"] = json!(exp - 15 * 60);

    let token = forge(&c);

    assert_accepted(&app, &token, &email).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Server-side state: sessions, token_version, account status.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn token_of_logged_out_session_is_rejected() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    // A second session of the same user, which logout must not touch.
    let other = app.login(&email, PASSWORD).await;

    let res = app.post("/v1/auth/logout", Some(&login.access), json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_rejected(&app, &login.access, "token_revoked").await;
    assert_accepted(&app, &other.access, &email).await;
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_rejected_after_logout_all() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let other = app.login(&email, PASSWORD).await;
    assert_accepted(&app, &other.access, &email).await; // the session check has read it once

    let res = app.post("/v1/auth/logout-all", Some(&login.access), json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_rejected(&app, &login.access, "token_revoked").await;
    assert_rejected(&app, &other.access, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_rejected_after_change_password() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let other = app.login(&email, PASSWORD).await;
    assert_accepted(&app, &other.access, &email).await; // the session check has read it once

    let res = app
        .post(
            "/v1/auth/change-password",
            Some(&login.access),
            json!({ "current_password": PASSWORD, "new_password": "An0ther!Passphrase-42" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_rejected(&app, &login.access, "token_revoked").await;
    assert_rejected(&app, &other.access, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn stale_token_version_on_a_live_session_is_rejected() {
    // Isolates the `ver` check from session revocation: a new session after
    // logout-all is live, but a token for it carrying the old version must fail.
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let old_ver = claims(&login.access)["ver"].clone();
    let res = app.post("/v1/auth/logout-all", Some(&login.access), json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let fresh = app.login(&email, PASSWORD).await;
    assert_ne!(claims(&fresh.access)["ver"], old_ver, "logout-all bumps token_version");

    let token = forge(&with_claim(&fresh.access, "ver", old_ver));

    assert_rejected(&app, &token, "token_revoked").await;
    assert_accepted(&app, &fresh.access, &email).await;
    app.stop().await;
}

#[tokio::test]
async fn token_of_deactivated_user_is_rejected() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    assert_accepted(&app, &login.access, &email).await; // the session check has read it once

    app.sql(&format!("UPDATE users SET is_active = false WHERE email = '{email}'")).await;

    assert_rejected(&app, &login.access, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn token_of_soft_deleted_user_is_rejected() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    assert_accepted(&app, &login.access, &email).await;

    let res = user::Entity::update_many()
        .col_expr(user::Column::DeletedAt, Expr::value(chrono::Utc::now()))
        .filter(user::Column::Email.eq(email.as_str()))
        .exec(app.db())
        .await
        .unwrap();
    assert_eq!(res.rows_affected, 1);

    assert_rejected(&app, &login.access, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn token_of_expired_session_is_rejected() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    assert_accepted(&app, &login.access, &email).await;
    let sid = uuid::Uuid::parse_str(claims(&login.access)["sid"].as_str().unwrap()).unwrap();

    let res = session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)))
        .filter(session::Column::Id.eq(sid))
        .exec(app.db())
        .await
        .unwrap();
    assert_eq!(res.rows_affected, 1);

    assert_rejected(&app, &login.access, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn token_with_unknown_session_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let token = forge(&with_claim(&login.access, "sid", json!(uuid::Uuid::now_v7().to_string())));

    assert_rejected(&app, &token, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn token_with_another_users_session_is_rejected() {
    let app = TestApp::spawn().await;
    let (email_a, a) = app.user().await;
    let (email_b, b) = app.user().await;
    let sid_of_b = claims(&b.access)["sid"].clone();

    // A's identity, B's live session, a valid signature.
    let token = forge(&with_claim(&a.access, "sid", sid_of_b));

    assert_rejected(&app, &token, "invalid_token").await;
    // Neither real token was affected.
    assert_accepted(&app, &a.access, &email_a).await;
    assert_accepted(&app, &b.access, &email_b).await;
    app.stop().await;
}

#[tokio::test]
async fn token_with_sub_and_user_id_disagreeing_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, a) = app.user().await;
    let (_, b) = app.user().await;

    let token = forge(&with_claim(&a.access, "user_id", claims(&b.access)["user_id"].clone()));

    assert_rejected(&app, &token, "invalid_token").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Not a JWT at all.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_token_as_bearer_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    assert_rejected(&app, &login.refresh, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn garbage_bearer_abc_is_rejected() {
    let app = TestApp::spawn().await;

    assert_rejected(&app, "abc", "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn garbage_bearer_three_dotted_parts_is_rejected() {
    let app = TestApp::spawn().await;

    assert_rejected(&app, "a.b.c", "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    for scheme in ["bearer", "BEARER"] {
        let res = me_with_authorization(&app, Some(&format!("{scheme} {}", login.access))).await;

        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "scheme {scheme}: {body}");
        assert_eq!(body["email"], email);
    }
    app.stop().await;
}

#[tokio::test]
async fn empty_bearer_is_rejected() {
    let app = TestApp::spawn().await;

    let res = me_with_authorization(&app, Some("Bearer ")).await;

    assert_unauthorized(res, "not_authenticated").await;
    app.stop().await;
}

#[tokio::test]
async fn basic_scheme_is_rejected() {
    let app = TestApp::spawn().await;

    let res = me_with_authorization(&app, Some("Basic xyz")).await;

    assert_unauthorized(res, "not_authenticated").await;
    app.stop().await;
}

#[tokio::test]
async fn basic_scheme_carrying_a_valid_access_token_is_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let res = me_with_authorization(&app, Some(&format!("Basic {}", login.access))).await;

    assert_unauthorized(res, "not_authenticated").await;
    app.stop().await;
}

#[tokio::test]
async fn missing_authorization_header_is_rejected() {
    let app = TestApp::spawn().await;

    let res = me_with_authorization(&app, None).await;

    assert_unauthorized(res, "not_authenticated").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// The session cache (SQLite file): exact for this server's writes, bounded for others'.
// ---------------------------------------------------------------------------------

/// Session checks racing a revocation: once the revocation has answered, no check that
/// starts afterwards is let through, however many were answered from memory just before.
#[tokio::test]
async fn no_session_check_after_a_revocation_gets_through() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let app = Arc::new(TestApp::spawn().await);
    let (email, login) = app.user().await;
    let other = app.login(&email, PASSWORD).await;
    for (revoke, token, via) in [
        ("/v1/auth/logout", login.access.clone(), login.access.clone()),
        ("/v1/auth/logout-all", other.access.clone(), other.access.clone()),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut checkers = Vec::new();
        for _ in 0..4 {
            let (app, stop, seen, token) = (app.clone(), stop.clone(), seen.clone(), token.clone());
            checkers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let status = app.get("/v1/auth/me", Some(&token)).await.status();
                    seen.lock().unwrap().push((started, status));
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let res = app.post(revoke, Some(&via), json!({})).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let revoked = Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        stop.store(true, Ordering::Relaxed);
        for c in checkers {
            c.await.unwrap();
        }
        let seen = seen.lock().unwrap();
        let before = seen.iter().filter(|(at, s)| *at < revoked && *s == StatusCode::OK).count();
        let after: Vec<_> = seen.iter().filter(|(at, _)| *at >= revoked).map(|(_, s)| *s).collect();
        assert!(before > 0, "{revoke}: no check went through before the revocation");
        assert!(!after.is_empty(), "{revoke}: no check after the revocation");
        assert!(after.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{revoke}: a check after it answered {after:?}");
    }
    Arc::try_unwrap(app).ok().expect("the checkers are done").stop().await;
}

/// Checks that arrive together (on PostgreSQL, read in one statement) each get their own
/// answer: their own user, and the refusal of their own revoked session, in every wave,
/// with the same token several times in one wave and an unknown session among them.
#[tokio::test]
async fn session_checks_arriving_together_each_get_their_own_answer() {
    use futures::future::join_all;

    let app = TestApp::spawn().await;
    let mut users = Vec::new();
    for _ in 0..12 {
        users.push(app.user().await);
    }
    let revoked: Vec<bool> = (0..users.len()).map(|i| i % 3 == 1).collect();
    for ((_, login), gone) in users.iter().zip(&revoked) {
        if *gone {
            let res = app.post("/v1/auth/logout", Some(&login.access), json!({})).await;
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
        }
    }
    // A well-signed token of a session that never existed.
    let unknown = forge(&with_claim(&users[0].1.access, "sid", json!(uuid::Uuid::now_v7().to_string())));

    for wave in 0..3 {
        let mut checks: Vec<(Option<usize>, &str)> =
            users.iter().enumerate().map(|(i, (_, l))| (Some(i), l.access.as_str())).collect();
        checks.extend([
            (Some(0), users[0].1.access.as_str()),
            (Some(1), users[1].1.access.as_str()),
            (None, unknown.as_str()),
        ]);
        checks.rotate_left(wave * 5);
        let answers = join_all(checks.iter().map(|(_, token)| app.get("/v1/auth/me", Some(token)))).await;
        for ((who, _), res) in checks.iter().zip(answers) {
            match who {
                Some(i) if !revoked[*i] => {
                    let (status, body) = json_of(res).await;
                    assert_eq!(
                        (status, &body["email"]),
                        (StatusCode::OK, &json!(users[*i].0)),
                        "wave {wave}, user {i}: {body}"
                    );
                }
                Some(_) | None => {
                    assert_unauthorized(res, "token_revoked").await;
                }
            }
        }
    }
    app.stop().await;
}

/// Two servers on one database (a SQLite file or PostgreSQL): a logout made through one
/// is refused at once by the other, whether that one checked the session just before,
/// and whether the server that logged out is still running or came and went between
/// two checks.
#[tokio::test]
async fn a_logout_through_another_server_on_the_same_database_is_seen_at_once() {
    let a = TestApp::spawn().await;
    let (email, first) = a.user().await;
    let second = a.login(&email, PASSWORD).await;
    let third = a.login(&email, PASSWORD).await;
    for login in [&first, &second, &third] {
        assert_accepted(&a, &login.access, &email).await;
    }

    let b = a.another_node(&[]).await;
    let res = b.post("/v1/auth/logout", Some(&first.access), json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_rejected(&a, &first.access, "token_revoked").await;
    assert_accepted(&a, &second.access, &email).await;
    let res = b.post("/v1/auth/logout", Some(&second.access), json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_rejected(&a, &second.access, "token_revoked").await;
    b.stop().await;

    assert_accepted(&a, &third.access, &email).await;
    let c = a.another_node(&[]).await;
    let res = c.post("/v1/auth/logout", Some(&third.access), json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    c.stop().await;
    assert_rejected(&a, &third.access, "token_revoked").await;
    a.stop().await;
}

/// The session cache of a SQLite file: exact for the writes of every tessera server and
/// command on the file, bounded for everyone else's. PostgreSQL has no cache.
mod sqlite_only {
    use super::*;

    /// The SQLite file the server uses.
    fn sqlite_file(app: &TestApp) -> std::path::PathBuf {
        let url = secrecy::ExposeSecret::expose_secret(&app.core.settings.database_url).to_owned();
        tessera_store::sqlite_path(&url).expect("a SQLite file")
    }

    /// A pool of its own on the database at `url` that does not announce itself: a writer
    /// from outside tessera (the `sqlite3` shell, say), which no session cache hears from.
    async fn unannounced_writer(url: &str) -> tessera_store::sea_orm::DatabaseConnection {
        tessera_store::sea_orm::Database::connect(url).await.unwrap()
    }

    /// Another tessera command on the database at `url` (as `tessera migrate` is): it
    /// announces itself beside a SQLite file for as long as it is open.
    async fn announced_neighbour(url: &str) -> tessera_store::Store {
        tessera_store::Store::open(&tessera_store::StoreConfig::tool(url)).await.unwrap()
    }

    async fn full_name_on_me(app: &TestApp, token: &str) -> Value {
        let (status, body) = json_of(app.get("/v1/auth/me", Some(token)).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["full_name"].clone()
    }

    /// Writes through any of the server's own connections are seen by the next session
    /// check; a write by a connection the server does not know of is seen once the entry's
    /// time is up (`SESSION_CACHE_MS`), or at once while that writer has announced itself
    /// beside the file as `tessera migrate` and other servers do.
    #[tokio::test]
    #[ignore = "SQLite only: scripts/test runs it on SQLite"]
    async fn the_session_cache_sees_this_servers_writes_at_once_and_others_in_time() {
        use tessera_store::sea_orm::ConnectionTrait;

        expect_backend(Backend::Sqlite);
        let app = TestApp::with(&[("SESSION_CACHE_MS", "600")]).await;
        let (email, login) = app.user().await;
        let token = login.access.as_str();
        assert_eq!(full_name_on_me(&app, token).await, json!("Test User"));

        // The server's read pool.
        app.sql(&format!("UPDATE users SET full_name = 'Through the pool' WHERE email = '{email}'")).await;
        assert_eq!(full_name_on_me(&app, token).await, json!("Through the pool"));
        // The server's writer, through the API.
        let res =
            app.send(reqwest::Method::PATCH, "/v1/users/me", Some(token), Some(json!({ "full_name": "Api" }))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(full_name_on_me(&app, token).await, json!("Api"));

        // A connection of its own, unannounced: the cached rows answer until their time is up.
        let url = secrecy::ExposeSecret::expose_secret(&app.core.settings.database_url).to_owned();
        let other = unannounced_writer(&url).await;
        let rename = |name: &str| format!("UPDATE users SET full_name = '{name}' WHERE email = '{email}'");
        other.execute_unprepared(&rename("Elsewhere")).await.unwrap();
        let written = std::time::Instant::now();
        assert_eq!(full_name_on_me(&app, token).await, json!("Api"), "the cache answers within its time");
        tokio::time::sleep(std::time::Duration::from_millis(600).saturating_sub(written.elapsed())).await;
        assert_eq!(full_name_on_me(&app, token).await, json!("Elsewhere"), "read again once its time is up");

        // Announced: while a neighbour is there, the cache answers nothing...
        let neighbour = announced_neighbour(&url).await;
        other.execute_unprepared(&rename("Announced")).await.unwrap();
        assert_eq!(full_name_on_me(&app, token).await, json!("Announced"));
        other.execute_unprepared(&rename("Still there")).await.unwrap();
        assert_eq!(full_name_on_me(&app, token).await, json!("Still there"));
        neighbour.close().await;
        drop(neighbour);
        assert_eq!(full_name_on_me(&app, token).await, json!("Still there"));
        // ...and one that came, wrote and went between two checks is not missed.
        let passing = announced_neighbour(&url).await;
        other.execute_unprepared(&rename("Came and went")).await.unwrap();
        passing.close().await;
        drop(passing);
        assert_eq!(full_name_on_me(&app, token).await, json!("Came and went"));

        // A commit SQLite makes in `sqlite3_reset` (an autocommit `UPDATE … RETURNING` read
        // for one row) never reaches the WAL hook at once; the commit hook drops the rows.
        assert_eq!(full_name_on_me(&app, token).await, json!("Came and went"));
        let returning = format!("UPDATE users SET full_name = 'Returning' WHERE email = '{email}' RETURNING id");
        let row = app
            .db()
            .query_one_raw(tessera_store::sea_orm::Statement::from_string(
                tessera_store::sea_orm::DbBackend::Sqlite,
                returning,
            ))
            .await
            .unwrap();
        assert!(row.is_some());
        assert_eq!(full_name_on_me(&app, token).await, json!("Returning"));

        // Logging out through the server is seen at once, cached or not.
        let res = app.post("/v1/auth/logout", Some(token), json!({})).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_rejected(&app, token, "token_revoked").await;
        other.close().await.ok();
        app.stop().await;
    }

    /// The hook that reports commits to the session cache replaces SQLite's own automatic
    /// checkpoint on the pool's connections; it must still copy the WAL into the database
    /// once the WAL passes its mark (4,000 pages).
    #[tokio::test]
    #[ignore = "SQLite only: scripts/test runs it on SQLite"]
    async fn the_wal_is_still_checkpointed_on_watched_connections() {
        expect_backend(Backend::Sqlite);
        let app = TestApp::spawn().await;
        let file = sqlite_file(&app);
        let before = std::fs::metadata(&file).unwrap().len();
        app.sql(
            "CREATE TABLE bulk (b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
             INSERT INTO bulk SELECT randomblob(3000) FROM n",
        )
        .await;
        let after = std::fs::metadata(&file).unwrap().len();
        assert!(
            after > before + 15_000_000,
            "the database file grew from {before} to only {after} bytes: no checkpoint"
        );
        app.sql("DROP TABLE bulk").await;
        app.stop().await;
    }

    /// A server that starts while another holder is already on the SQLite file answers
    /// nothing from its cache until that holder has left.
    #[tokio::test]
    #[ignore = "SQLite only: scripts/test runs it on SQLite"]
    async fn a_server_starting_beside_a_holder_does_not_cache_until_it_leaves() {
        use tessera_store::sea_orm::ConnectionTrait;

        expect_backend(Backend::Sqlite);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.db");
        let url = format!("sqlite://{}", file.display());
        let holder = announced_neighbour(&url).await;
        let app = TestApp::with_database(&url, &[("SESSION_CACHE_MS", "60000")]).await;
        let (email, login) = app.user().await;
        let token = login.access.as_str();
        let other = unannounced_writer(&url).await;
        let rename = |name: &str| format!("UPDATE users SET full_name = '{name}' WHERE email = '{email}'");

        assert_eq!(full_name_on_me(&app, token).await, json!("Test User"));
        other.execute_unprepared(&rename("Beside")).await.unwrap();
        assert_eq!(full_name_on_me(&app, token).await, json!("Beside"), "cached while a holder was there");

        // Alone now: the cache answers again (an unannounced write is not seen within the TTL).
        holder.close().await;
        drop(holder);
        assert_eq!(full_name_on_me(&app, token).await, json!("Beside"));
        other.execute_unprepared(&rename("Unannounced")).await.unwrap();
        assert_eq!(full_name_on_me(&app, token).await, json!("Beside"));
        other.close().await.ok();
        app.stop().await;
    }
}
