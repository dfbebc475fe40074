//! Refresh-token rotation, the reuse interval, family revocation and the concurrent
//! refresh race (SPEC §4.2, §4.3).

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_core::entity::refresh_token;
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::harness::*;

async fn refresh_body(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/v1/auth/refresh", None, json!({ "refresh_token": token })).await
}

async fn refresh_cookie_req(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", format!("refresh_token={token}"))
        .send()
        .await
        .unwrap()
}

fn session_of(access: &str) -> Uuid {
    use base64::Engine;
    let payload = access.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sid"].as_str().unwrap().parse().unwrap()
}

async fn live_tokens(app: &TestApp, session: Uuid) -> u64 {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::SessionId.eq(session))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::Revoked.eq(false))
        .count(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn cookie_refresh_rotates_and_sets_a_new_cookie() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let res = refresh_cookie_req(&app, &login.refresh).await;

    assert_eq!(res.status(), StatusCode::OK);
    let (new_refresh, cookie) = refresh_cookie(res.headers()).unwrap();
    assert_ne!(new_refresh, login.refresh);
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/v1/auth"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("refresh_token").is_none(), "a cookie refresh does not echo the token in the body");
    let me = app.get("/v1/auth/me", body["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn body_refresh_returns_the_new_token_in_the_body() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let (status, body) = json_of(refresh_body(&app, &login.refresh).await).await;

    assert_eq!(status, StatusCode::OK);
    let new = body["refresh_token"].as_str().unwrap();
    assert!(new.len() >= 43, "at least 256 bits, base64url");
    let (status, _) = json_of(refresh_body(&app, new).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_unknown_and_malformed_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    assert_error(
        app.client.post(app.url("/v1/auth/refresh")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_error(refresh_body(&app, "not-a-token").await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn a_retired_token_refreshes_within_the_interval_and_keeps_one_chain() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    let (s1, first) = json_of(refresh_body(&app, &login.refresh).await).await;
    let (s2, second) = json_of(refresh_body(&app, &login.refresh).await).await;

    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "the retired token still works within 10 s");
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    assert_eq!(live_tokens(&app, sid).await, 1, "one live chain");
    let (s3, _) = json_of(refresh_body(&app, second["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(s3, StatusCode::OK, "the newest token works");
}

#[tokio::test]
async fn reuse_after_the_interval_revokes_the_family_and_is_audited() {
    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "1")]).await;
    let (_, login) = app.user().await;
    let (_, rotated) = json_of(refresh_body(&app, &login.refresh).await).await;
    let newest = rotated["refresh_token"].as_str().unwrap().to_owned();
    let newest_access = rotated["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;

    let res = refresh_body(&app, &login.refresh).await;

    assert_error(res, StatusCode::UNAUTHORIZED, "token_reused").await;
    assert_error(refresh_body(&app, &newest).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_eq!(app.get("/v1/auth/me", Some(&newest_access)).await.status(), StatusCode::UNAUTHORIZED);
    assert!(app.dump("audit_log").await.contains("token.reuse_detected"));
}

#[tokio::test]
async fn twelve_concurrent_refreshes_leave_one_live_chain() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    let results = join_all((0..12).map(|_| async { json_of(refresh_body(&app, &login.refresh).await).await })).await;

    // Inside the reuse interval every one of them is a legitimate tab: all succeed.
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_eq!(live_tokens(&app, sid).await, 1, "exactly one live token in the family");
    let sessions =
        app.get("/v1/auth/sessions", results[0].1["access_token"].as_str()).await.json::<Value>().await.unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "one family");
}

#[tokio::test]
async fn eight_tabs_refreshing_one_session_over_and_over_all_succeed() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    // Each tab starts from the same token and keeps rotating whatever it was given last,
    // so every round races the others for the chain's head.
    let tab = |mut token: String| {
        let app = &app;
        async move {
            for round in 0..25 {
                let (status, body) = json_of(refresh_body(app, &token).await).await;
                assert_eq!(status, StatusCode::OK, "round {round}: {body}");
                token = body["refresh_token"].as_str().unwrap().to_owned();
            }
        }
    };
    join_all((0..8).map(|_| tab(login.refresh.clone()))).await;

    assert_eq!(live_tokens(&app, sid).await, 1, "exactly one live token in the family");
}

#[tokio::test]
async fn twelve_concurrent_refreshes_without_grace_let_exactly_one_through() {
    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    let results = join_all((0..12).map(|_| async { json_of(refresh_body(&app, &login.refresh).await).await })).await;

    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(live_tokens(&app, sid).await <= 1);
}

#[tokio::test]
async fn refresh_token_is_stored_only_as_its_sha256() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let dump = app.dump("refresh_tokens").await;

    assert!(!dump.contains(&login.refresh), "the raw token is not stored");
    assert!(dump.contains(&hex_sha256(&login.refresh)), "its SHA-256 is");
}

#[tokio::test]
async fn an_expired_session_does_not_refresh() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);
    use tessera_core::entity::session;
    use tessera_store::sea_orm::sea_query::Expr;
    session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(chrono::Utc::now() - chrono::Duration::hours(1)))
        .filter(session::Column::Id.eq(sid))
        .exec(app.db())
        .await
        .unwrap();

    assert_error(refresh_body(&app, &login.refresh).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn a_deactivated_user_cannot_refresh() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    app.sql(&format!("UPDATE users SET is_active = false WHERE email = '{email}'")).await;

    assert_error(refresh_body(&app, &login.refresh).await, StatusCode::FORBIDDEN, "account_inactive").await;
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
