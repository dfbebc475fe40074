//! Refresh tokens (SPEC §4.2, §4.3): rotation, convergence of concurrent and retried
//! refreshes, reuse detection, and tokens issued before the upgrade.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_core::entity::session;
use tessera_store::sea_orm::{EntityTrait, Statement};
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

/// Refreshes with the token in the body; the status and the new refresh token.
async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    json_of(refresh_body(app, token).await).await
}

fn session_of(access: &str) -> Uuid {
    use base64::Engine;
    let payload = access.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sid"].as_str().unwrap().parse().unwrap()
}

async fn session_row(app: &TestApp, id: Uuid) -> session::Model {
    session::Entity::find_by_id(id).one(app.db()).await.unwrap().unwrap()
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
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

    let (status, body) = refresh(&app, &login.refresh).await;

    assert_eq!(status, StatusCode::OK);
    let new = body["refresh_token"].as_str().unwrap();
    assert!(new.len() >= 43, "at least 256 bits, base64url");
    let (status, _) = refresh(&app, new).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_unknown_forged_and_malformed_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    assert_error(
        app.client.post(app.url("/v1/auth/refresh")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_error(refresh_body(&app, "not-a-token").await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // One bit of the sealed counter flipped: the tag no longer matches.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = b64.decode(&login.refresh).unwrap();
    bytes[28] ^= 1;
    assert_error(refresh_body(&app, &b64.encode(&bytes)).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A token sealed with another server's key.
    let other = TestApp::with(&[("REFRESH_TOKEN_SECRET", "another-refresh-secret-that-is-long-enough-42")]).await;
    let (_, foreign) = other.user().await;
    assert_error(refresh_body(&app, &foreign.refresh).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
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

/// A retried refresh inside the interval (the answer was lost) gets the very token the
/// first one got, and writes nothing.
#[tokio::test]
async fn a_retried_refresh_within_the_interval_gets_the_same_token() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    let (s1, first) = refresh(&app, &login.refresh).await;
    let after_first = session_row(&app, sid).await;
    let (s2, second) = refresh(&app, &login.refresh).await;

    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{first} {second}");
    assert_eq!(first["refresh_token"], second["refresh_token"], "both answers carry the session's current token");
    assert_eq!(session_row(&app, sid).await, after_first, "the retry wrote nothing");
    assert_eq!(after_first.refresh_counter, 1);
    let me = app.get("/v1/auth/me", second["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK, "the retry's access token works");
    let (s3, _) = refresh(&app, second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s3, StatusCode::OK, "the current token rotates");
}

/// Six tabs refreshing one token at once all succeed with the same new token, and that
/// token still refreshes once the interval is over.
#[tokio::test]
async fn six_parallel_refreshes_converge_on_one_token_that_outlives_the_interval() {
    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "1")]).await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    let results = join_all((0..6).map(|_| refresh(&app, &login.refresh))).await;

    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["refresh_token"], results[0].1["refresh_token"], "every tab holds the same token");
    }
    assert_eq!(session_row(&app, sid).await.refresh_counter, 1, "one rotation");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (status, body) = refresh(&app, results[3].1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the converged token is the live one: {body}");
}

/// Eight tabs refreshing one session in rounds: in each round every tab presents the
/// token it holds, and all of them end the round holding the same live token.
#[tokio::test]
async fn eight_tabs_refreshing_in_rounds_all_succeed_and_stay_on_one_token() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);

    let mut held = vec![login.refresh.clone(); 8];
    for round in 0..10 {
        let results = join_all(held.iter().map(|t| refresh(&app, t))).await;
        for (status, body) in &results {
            assert_eq!(*status, StatusCode::OK, "round {round}: {body}");
        }
        held = results.iter().map(|(_, b)| b["refresh_token"].as_str().unwrap().to_owned()).collect();
        assert!(held.iter().all(|t| *t == held[0]), "round {round}: the tabs diverged");
    }
    assert_eq!(session_row(&app, sid).await.refresh_counter, 10, "one rotation per round");
}

#[tokio::test]
async fn reuse_after_the_interval_revokes_the_session_and_is_audited() {
    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "1")]).await;
    let (_, login) = app.user().await;
    let (_, rotated) = refresh(&app, &login.refresh).await;
    let newest = rotated["refresh_token"].as_str().unwrap().to_owned();
    let newest_access = rotated["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;

    let res = refresh_body(&app, &login.refresh).await;

    assert_error(res, StatusCode::UNAUTHORIZED, "token_reused").await;
    assert_error(refresh_body(&app, &newest).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
    assert_eq!(app.get("/v1/auth/me", Some(&newest_access)).await.status(), StatusCode::UNAUTHORIZED);
    assert!(app.dump("audit_log").await.contains("token.reuse_detected"));
}

/// A token two rotations old is a reuse even inside the interval: only the token that
/// was current just before converges.
#[tokio::test]
async fn a_token_two_rotations_old_is_a_reuse_at_once() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let (_, first) = refresh(&app, &login.refresh).await;
    let (status, second) = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    assert_error(refresh_body(&app, &login.refresh).await, StatusCode::UNAUTHORIZED, "token_reused").await;
    let current = second["refresh_token"].as_str().unwrap();
    assert_error(refresh_body(&app, current).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn twelve_concurrent_refreshes_without_grace_let_exactly_one_through() {
    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let (_, login) = app.user().await;

    let results = join_all((0..12).map(|_| refresh(&app, &login.refresh))).await;

    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

/// A client that sends a reused token and hangs up at once cannot cancel the
/// revocation: it is committed on a task of its own.
#[tokio::test]
async fn a_reuse_revokes_the_session_even_when_the_client_hangs_up() {
    use tokio::io::AsyncWriteExt;

    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);
    let (_, rotated) = refresh(&app, &login.refresh).await;

    let body = json!({ "refresh_token": login.refresh }).to_string();
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /v1/auth/refresh HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    drop(conn);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while session_row(&app, sid).await.revoked_at.is_none() {
        assert!(std::time::Instant::now() < deadline, "the reuse never revoked the session");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let current = rotated["refresh_token"].as_str().unwrap();
    assert_error(refresh_body(&app, current).await, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

/// The database holds nothing a refresh token can be recovered from, or looked up by.
#[tokio::test]
async fn no_refresh_token_is_stored() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let (_, rotated) = refresh(&app, &login.refresh).await;

    for table in ["sessions", "audit_log", "users"] {
        let dump = app.dump(table).await;
        for token in [login.refresh.as_str(), rotated["refresh_token"].as_str().unwrap()] {
            assert!(!dump.contains(token), "{table} holds a raw token");
            assert!(!dump.contains(&hex_sha256(token)), "{table} holds a token's hash");
        }
    }
}

/// A token issued before the upgrade (a random token whose SHA-256 the session row
/// remembers) refreshes once, into the new form; presented again after the interval it
/// is a reuse like any other.
#[tokio::test]
async fn a_token_from_before_the_upgrade_refreshes_once_into_the_new_form() {
    let app = TestApp::with(&[("REFRESH_TOKEN_REUSE_INTERVAL", "1")]).await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);
    let legacy = tessera_core::crypto::random_token(32); // as the old tokens were made
    app.sql(&format!("UPDATE sessions SET legacy_token_hash = '{}' WHERE id = {}", hex_sha256(&legacy), sql_uuid(sid)))
        .await;

    let (status, body) = refresh(&app, &legacy).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["refresh_token"].as_str().unwrap();
    assert_ne!(new, legacy);
    assert_eq!(session_of(body["access_token"].as_str().unwrap()), sid, "the same session");
    let (retry, again) = refresh(&app, &legacy).await;
    assert_eq!((retry, &again["refresh_token"]), (StatusCode::OK, &body["refresh_token"]), "a retry converges");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (status, _) = refresh(&app, new).await;
    assert_eq!(status, StatusCode::OK, "the new-form token rotates");
    assert_error(refresh_body(&app, &legacy).await, StatusCode::UNAUTHORIZED, "token_reused").await;
}

/// Signs in until a sign-in is not overtaken by a concurrent logout-all (which leaves
/// the sign-in under way without a session); the refresh token.
async fn sign_in(app: &TestApp, email: &str) -> String {
    loop {
        let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
        match res.status() {
            StatusCode::OK => return login_from(res).await.refresh,
            StatusCode::UNAUTHORIZED => continue,
            other => panic!("sign-in answered {other}"),
        }
    }
}

/// A session id as a SQL literal for this backend.
fn sql_uuid(id: Uuid) -> String {
    match backend() {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.simple()),
    }
}

/// Many clients refreshing six sessions while another signs in over and over and signs
/// out everywhere: no answer is a server error, and PostgreSQL detects no deadlock.
#[tokio::test]
async fn refreshes_racing_sign_ins_and_logout_all_never_fail() {
    let app = TestApp::spawn().await;
    let (email, _) = app.user().await;
    let mut holders = Vec::new();
    for _ in 0..6 {
        holders.push(app.login(&email, PASSWORD).await.refresh);
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let refreshers = holders.into_iter().map(|mut token| {
        let (app, stop, email) = (&app, &stop, &email);
        async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) = refresh(app, &token).await;
                statuses.push(status);
                match body["refresh_token"].as_str() {
                    Some(next) => token = next.to_owned(),
                    // Revoked by a logout-all: sign in again and go on.
                    None => token = sign_in(app, email).await,
                }
            }
            statuses
        }
    });
    let revoker = async {
        for _ in 0..8 {
            let access = loop {
                let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
                if res.status() == StatusCode::OK {
                    break login_from(res).await.access;
                }
            };
            let res = app.post("/v1/auth/logout-all", Some(&access), json!({})).await;
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (all, ()) = tokio::join!(join_all(refreshers), revoker);

    let statuses: Vec<StatusCode> = all.into_iter().flatten().collect();
    assert!(statuses.contains(&StatusCode::OK), "no refresh went through");
    let errors: Vec<_> = statuses.iter().filter(|s| s.is_server_error()).collect();
    assert!(errors.is_empty(), "server errors: {errors:?}");
    if backend() == Backend::Postgres {
        use tessera_store::sea_orm::ConnectionTrait;
        let sql = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()";
        let row = app.db().query_one_raw(Statement::from_string(app.db().get_database_backend(), sql)).await.unwrap();
        let deadlocks: i64 = row.unwrap().try_get_by_index(0).unwrap();
        assert_eq!(deadlocks, 0, "PostgreSQL detected deadlocks");
    }
}

#[tokio::test]
async fn an_expired_session_does_not_refresh() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let sid = session_of(&login.access);
    use tessera_store::sea_orm::sea_query::Expr;
    use tessera_store::sea_orm::{ColumnTrait, QueryFilter};
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
