//! MFA (SPEC §5.6, issue 16): TOTP factors enrolled and activated, the two-step sign-in
//! on both surfaces, replay and brute-force protection, recovery codes, step-up, admins.
//! Codes are computed from the secret, as an authenticator app does.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

/// An authenticator app: the secret, and the newest step it showed a code for (a code
/// is accepted once, so each use takes a newer step, within one step of now).
pub(crate) async fn user_with_mfa(app: &TestApp) -> (String, Authenticator, Vec<String>, String, String) {
    let (email, login) = app.user().await;
    let (status, e) =
        json_of(app.post("/v1/auth/mfa/totp", Some(&login.access), json!({ "name": "Phone" })).await).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let mut auth = Authenticator::new(e["secret"].as_str().unwrap());
    let id = e["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/auth/mfa/totp/{id}/activate");
    let (status, a) = json_of(app.post(&path, Some(&login.access), json!({ "code": auth.next().await })).await).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let codes = a["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (email, auth, codes, id, a["access_token"].as_str().unwrap().to_owned())
}

/// The first step of a sign-in for a user with MFA on: the `mfa_token`.
async fn first_step(app: &TestApp, email: &str) -> String {
    let (status, body) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none(), "no token before the second step: {body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/auth/mfa/verify", None, body).await
}

pub(crate) fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn enrol_activate_and_sign_in_in_two_steps_on_both_surfaces() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    assert_eq!(claims(&login.access)["aal"], "aal1", "aal is always present");
    let (status, e) = json_of(app.post("/v1/auth/mfa/totp", Some(&login.access), json!({})).await).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/tessera:")
            && uri.contains(&format!("secret={}", e["secret"].as_str().unwrap()))
    );
    assert!(uri.contains("issuer=tessera"));
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.decode(e["qr_png"].as_str().unwrap()).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (_, listed) = json_of(app.get("/v1/auth/mfa", Some(&login.access)).await).await;
    assert_eq!(listed["factors"][0]["status"], "unverified");
    assert_eq!(listed["factors"][0]["type"], "totp");
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["mfa_enabled"], false, "an unverified factor is no MFA");

    let mut auth = Authenticator::new(e["secret"].as_str().unwrap());
    let path = format!("/v1/auth/mfa/totp/{}/activate", e["id"].as_str().unwrap());
    let (status, a) = json_of(app.post(&path, Some(&login.access), json!({ "code": auth.next().await })).await).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(claims(a["access_token"].as_str().unwrap())["aal"], "aal2");
    let (_, me) = json_of(app.get("/v1/auth/me", Some(a["access_token"].as_str().unwrap())).await).await;
    assert_eq!(me["mfa_enabled"], true);

    // /v1: step one answers no token and no cookie; step two a session, aal2.
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
    assert!(res.headers().get("set-cookie").is_none(), "no cookie at step one");
    let token = json_of(res).await.1["mfa_token"].as_str().unwrap().to_owned();
    let res = second_step(&app, json!({ "mfa_token": token, "code": auth.next().await })).await;
    assert_eq!(res.status(), StatusCode::OK);
    let signed = login_from(res).await;
    assert_eq!(claims(&signed.access)["aal"], "aal2");
    let refreshed = app.post("/v1/auth/refresh", None, json!({ "refresh_token": signed.refresh })).await;
    let refreshed = json_of(refreshed).await.1;
    assert_eq!(claims(refreshed["access_token"].as_str().unwrap())["aal"], "aal2", "the session stays aal2");

    // Kreeda: the same two steps.
    let (status, body) =
        json_of(app.post("/auth/signin/password", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["user"].is_null() && body["session"].is_null(), "{body}");
    assert_eq!(body["mfa_required"], true);
    let (status, body) = json_of(
        app.post("/auth/mfa/verify", None, json!({ "mfa_token": body["mfa_token"], "code": auth.next().await })).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], email);
    assert_eq!(claims(body["session"]["access_token"].as_str().unwrap())["aal"], "aal2");
}

#[tokio::test]
async fn a_code_is_accepted_once_even_by_two_sign_ins_at_once() {
    let app = TestApp::spawn().await;
    let (email, mut auth, _, _, _) = user_with_mfa(&app).await;
    let code = auth.next().await;
    let first = first_step(&app, &email).await;
    let res = second_step(&app, json!({ "mfa_token": first, "code": code })).await;
    assert_eq!(res.status(), StatusCode::OK);
    let again = first_step(&app, &email).await;
    let res = second_step(&app, json!({ "mfa_token": again, "code": code })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;

    let code = auth.next().await;
    let (a, b) = (first_step(&app, &email).await, first_step(&app, &email).await);
    let results = join_all([a, b].map(|t| second_step(&app, json!({ "mfa_token": t, "code": code })))).await;
    let ok = results.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(ok, 1, "two sign-ins raced with one code: {:?}", results.iter().map(|r| r.status()).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_mfa_token_works_once_and_dies_after_five_wrong_codes() {
    let app = TestApp::spawn().await;
    let (email, mut auth, _, _, _) = user_with_mfa(&app).await;
    let token = first_step(&app, &email).await;
    assert_eq!(
        second_step(&app, json!({ "mfa_token": token, "code": auth.next().await })).await.status(),
        StatusCode::OK
    );
    let res = second_step(&app, json!({ "mfa_token": token, "code": auth.next().await })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;

    let token = first_step(&app, &email).await;
    let wrong = if auth.at(0) == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let res = second_step(&app, json!({ "mfa_token": token, "code": wrong })).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    let res = second_step(&app, json!({ "mfa_token": token, "code": auth.next().await })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let res = second_step(&app, json!({ "mfa_token": "not-a-token", "code": auth.at(0) })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout() {
    let app = TestApp::with(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("RATE_LIMIT_VERIFY", "1000/1m"),
    ])
    .await;
    let (email, mut auth, _, _, _) = user_with_mfa(&app).await;
    let wrong = if auth.at(0) == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let token = first_step(&app, &email).await;
        let res = second_step(&app, json!({ "mfa_token": token, "code": wrong })).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let _ = auth.next().await;
}

#[tokio::test]
async fn a_recovery_code_works_once_and_new_ones_kill_the_old() {
    let app = TestApp::spawn().await;
    let (email, _, codes, _, aal2) = user_with_mfa(&app).await;
    let token = first_step(&app, &email).await;
    let messy = codes[0].to_lowercase().replace('-', " ");
    let res = second_step(&app, json!({ "mfa_token": token, "recovery_code": messy })).await;
    assert_eq!(res.status(), StatusCode::OK, "read with or without separators, in any case");
    let token = first_step(&app, &email).await;
    let res = second_step(&app, json!({ "mfa_token": token, "recovery_code": codes[0] })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let (_, listed) = json_of(app.get("/v1/auth/mfa", Some(&aal2)).await).await;
    assert_eq!(listed["recovery_codes_left"], 9);

    let (status, fresh) = json_of(app.post("/v1/auth/mfa/recovery-codes", Some(&aal2), json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let token = first_step(&app, &email).await;
    let res = second_step(&app, json!({ "mfa_token": token, "recovery_code": codes[1] })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let token = first_step(&app, &email).await;
    let res = second_step(&app, json!({ "mfa_token": token, "recovery_code": fresh["recovery_codes"][0] })).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_mfa_on_an_aal1_session_cannot_change_what_matters() {
    let app = TestApp::with(&[("FIRST_ADMIN_EMAIL", "root@example.com"), ("FIRST_ADMIN_PASSWORD", PASSWORD)]).await;
    let before = app.login("root@example.com", PASSWORD).await; // aal1, opened before MFA
    let e = json_of(app.post("/v1/auth/mfa/totp", Some(&before.access), json!({})).await).await.1;
    let mut auth = Authenticator::new(e["secret"].as_str().unwrap());
    let id = e["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/auth/mfa/totp/{id}/activate");
    let other = app.login("root@example.com", PASSWORD).await; // another aal1 session, still before MFA
    let (status, a) = json_of(app.post(&path, Some(&before.access), json!({ "code": auth.next().await })).await).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let aal2 = a["access_token"].as_str().unwrap().to_owned();

    let t = other.access.as_str();
    let tries = [
        (
            Method::POST,
            "/v1/auth/change-password".to_owned(),
            json!({ "current_password": PASSWORD, "new_password": "An0ther!Passphrase" }),
        ),
        (Method::PATCH, "/v1/users/me".to_owned(), json!({ "email": "elsewhere@example.com" })),
        (Method::DELETE, format!("/v1/auth/mfa/totp/{id}"), json!({ "password": PASSWORD })),
        (Method::POST, "/v1/auth/mfa/recovery-codes".to_owned(), json!({})),
        (Method::POST, "/v1/admin/api-keys".to_owned(), json!({ "name": "k", "scopes": ["users:read"] })),
        (Method::PUT, "/auth/user".to_owned(), json!({ "password": "An0ther!Passphrase" })),
        (Method::POST, "/v1/auth/mfa/totp".to_owned(), json!({})),
    ];
    for (method, path, body) in tries.clone() {
        let res = app.send(method, &path, Some(t), Some(body)).await;
        assert_error(res, StatusCode::FORBIDDEN, "mfa_required").await;
    }
    let res = app
        .send(Method::POST, "/v1/admin/api-keys", Some(&aal2), Some(json!({ "name": "k", "scopes": ["users:read"] })))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "the aal2 session may");
    let res = app.send(Method::PATCH, "/v1/users/me", Some(t), Some(json!({ "full_name": "Still fine" }))).await;
    assert_eq!(res.status(), StatusCode::OK, "what needs no step-up still works");
}

#[tokio::test]
async fn admin_mfa_required_closes_admin_routes_to_aal1_tokens_only() {
    let app = TestApp::with(&[
        ("FIRST_ADMIN_EMAIL", "root@example.com"),
        ("FIRST_ADMIN_PASSWORD", PASSWORD),
        ("ADMIN_MFA_REQUIRED", "true"),
    ])
    .await;
    let login = app.login("root@example.com", PASSWORD).await;
    assert_error(app.get("/v1/admin/users", Some(&login.access)).await, StatusCode::FORBIDDEN, "mfa_required").await;
    // Enrolment and activation stay open to it.
    let e = json_of(app.post("/v1/auth/mfa/totp", Some(&login.access), json!({})).await).await.1;
    let mut auth = Authenticator::new(e["secret"].as_str().unwrap());
    let path = format!("/v1/auth/mfa/totp/{}/activate", e["id"].as_str().unwrap());
    let (status, a) = json_of(app.post(&path, Some(&login.access), json!({ "code": auth.next().await })).await).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let aal2 = a["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/admin/users", Some(aal2)).await.status(), StatusCode::OK);
    let key =
        json_of(app.post("/v1/admin/api-keys", Some(aal2), json!({ "name": "k", "scopes": ["users:read"] })).await)
            .await
            .1;
    let res = app
        .client
        .get(app.url("/v1/admin/users"))
        .header("x-api-key", key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "API keys are unaffected");
}

#[tokio::test]
async fn an_admin_resets_the_mfa_of_a_user_who_lost_every_device() {
    let app = TestApp::with(&[("FIRST_ADMIN_EMAIL", "root@example.com"), ("FIRST_ADMIN_PASSWORD", PASSWORD)]).await;
    let admin = app.login("root@example.com", PASSWORD).await.access;
    let (email, _, _, _, aal2) = user_with_mfa(&app).await;
    let id = json_of(app.get("/v1/auth/me", Some(&aal2)).await).await.1["id"].as_str().unwrap().to_owned();
    let res = app.send(Method::DELETE, &format!("/v1/admin/users/{id}/mfa"), Some(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.get("/v1/auth/me", Some(&aal2)).await.status(), StatusCode::UNAUTHORIZED, "tokens are void");
    let login = app.login(&email, PASSWORD).await;
    assert!(login.body.get("mfa_required").is_none(), "one step again");
    let (_, listed) = json_of(app.get("/v1/auth/mfa", Some(&login.access)).await).await;
    assert_eq!((listed["factors"].as_array().unwrap().len(), &listed["recovery_codes_left"]), (0, &json!(0)));
    assert!(app.dump("audit_log").await.contains("admin.user.mfa_reset"));
}

#[tokio::test]
async fn removing_the_last_factor_turns_mfa_off() {
    let app = TestApp::spawn().await;
    let (email, mut auth, _, id, aal2) = user_with_mfa(&app).await;
    let path = format!("/v1/auth/mfa/totp/{id}");
    let wrong = app.send(Method::DELETE, &path, Some(&aal2), Some(json!({ "password": "Wrong-Passw0rd!" }))).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let res = app.send(Method::DELETE, &path, Some(&aal2), Some(json!({ "code": auth.next().await }))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&aal2)).await).await;
    assert_eq!(me["mfa_enabled"], false);
    let login = app.login(&email, PASSWORD).await;
    assert!(login.body.get("mfa_required").is_none());
}

#[tokio::test]
async fn bad_input_gets_clear_4xx() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let (_, other) = app.user().await;
    let t = login.access.as_str();
    assert_error(app.post("/v1/auth/mfa/totp", None, json!({})).await, StatusCode::UNAUTHORIZED, "not_authenticated")
        .await;
    let e = json_of(app.post("/v1/auth/mfa/totp", Some(t), json!({ "name": "Laptop" })).await).await.1;
    let auth = Authenticator::new(e["secret"].as_str().unwrap());
    let id = e["id"].as_str().unwrap();
    assert_error(activate(&app, t, id, json!("12ab56")).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
        .await;
    assert_error(
        activate(&app, t, &uuid::Uuid::now_v7().to_string(), json!("123456")).await,
        StatusCode::NOT_FOUND,
        "factor_not_found",
    )
    .await;
    assert_error(activate(&app, &other.access, id, json!(auth.at(0))).await, StatusCode::NOT_FOUND, "factor_not_found")
        .await;
    for offset in [-3, 3] {
        let res = activate(&app, t, id, json!(auth.at(offset))).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    assert_eq!(activate(&app, t, id, json!(auth.at(0))).await.status(), StatusCode::OK);
    assert_error(activate(&app, t, id, json!(auth.at(1))).await, StatusCode::CONFLICT, "factor_already_active").await;
    let res = app.post("/v1/auth/mfa/verify", None, json!({ "mfa_token": "x" })).await;
    assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let res =
        app.post(&format!("/v1/auth/mfa/totp/{}/activate", "not-a-uuid"), Some(t), json!({ "code": "123456" })).await;
    assert!(res.status().is_client_error());
}

async fn activate(app: &TestApp, token: &str, id: &str, code: Value) -> reqwest::Response {
    app.post(&format!("/v1/auth/mfa/totp/{id}/activate"), Some(token), json!({ "code": code })).await
}

/// A sign-in with a wrong password answers exactly as for a user without MFA: nothing
/// tells whether the account has a second factor before the password is right.
#[tokio::test]
async fn a_wrong_password_does_not_reveal_mfa() {
    let app = TestApp::spawn().await;
    let (email, _, _, _, _) = user_with_mfa(&app).await;
    let (plain, _) = app.user().await;
    for e in [email, plain] {
        let res = app.post("/v1/auth/login", None, json!({ "email": e, "password": "Wrong-Passw0rd!" })).await;
        let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert!(body.get("mfa_required").is_none());
    }
}

/// Neither the TOTP secret nor a recovery code is anywhere in the database.
#[tokio::test]
async fn the_database_holds_no_totp_secret_and_no_recovery_code() {
    let app = TestApp::spawn().await;
    let (_, auth, codes, _, _) = user_with_mfa(&app).await;
    let mut dump = String::new();
    for table in ["mfa_factors", "recovery_codes", "mfa_tokens", "users", "audit_log"] {
        dump.push_str(&app.dump(table).await);
    }
    let dump = dump.to_uppercase();
    assert!(!dump.contains(&auth.secret.to_uppercase()), "the TOTP secret is stored in clear");
    for code in &codes {
        assert!(!dump.contains(&code.replace('-', "")) && !dump.contains(code), "a recovery code is stored in clear");
    }
}

/// A password sign-in on the Supabase surface of a user with MFA on answers an aal1
/// session (GoTrue's flow: the client steps it up at `/auth/v1/factors`). Only that
/// surface accepts it, and its refresh token, taken to the native or Kreeda refresh,
/// must not open those surfaces either: the password alone never does (SPEC §5.6).
#[tokio::test]
async fn a_supabase_aal1_session_opens_no_other_surface_even_refreshed_there() {
    let app = TestApp::spawn().await;
    let (email, _auth, _codes, _id, _) = user_with_mfa(&app).await;
    let body = json!({ "email": email, "password": PASSWORD });
    let (status, s) = json_of(app.post("/auth/v1/token?grant_type=password", None, body).await).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let access = s["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["aal"], "aal1");
    assert_eq!(app.get("/auth/v1/user", Some(access)).await.status(), StatusCode::OK);
    assert_error(app.get("/v1/auth/me", Some(access)).await, StatusCode::FORBIDDEN, "mfa_required").await;

    // The native refresh of that session: its tokens open nothing natively.
    let refresh = s["refresh_token"].as_str().unwrap();
    let (status, r) = json_of(app.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh })).await).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let native = r["access_token"].as_str().unwrap();
    assert_eq!(claims(native)["aal"], "aal1");
    assert_error(app.get("/v1/auth/me", Some(native)).await, StatusCode::FORBIDDEN, "mfa_required").await;
    assert_error(app.get("/v1/users/me/profile", Some(native)).await, StatusCode::FORBIDDEN, "mfa_required").await;

    // Kreeda's refresh neither.
    let refresh = r["refresh_token"].as_str().unwrap();
    let (status, k) = json_of(app.post("/auth/token", None, json!({ "refresh_token": refresh })).await).await;
    assert_eq!(status, StatusCode::OK, "{k}");
    let kreeda = k["access_token"].as_str().unwrap();
    assert_error(app.get("/auth/user", Some(kreeda)).await, StatusCode::FORBIDDEN, "mfa_required").await;
    // The Supabase surface still takes it, to step it up.
    assert_eq!(app.get("/auth/v1/user", Some(kreeda)).await.status(), StatusCode::OK);
}
