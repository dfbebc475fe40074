//! The Kreeda API (seed 000, SPEC §2.2, issue 4): the seed's own examples and every
//! error case, as a Kreeda client sees them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

/// The seed's register example body.
fn seed_register() -> Value {
    json!({ "email": "user@example.com", "password": "SecurePass123!", "phone_number": "+1234567890", "name": "John Doe" })
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn assert_session(session: &Value) {
    assert_eq!(keys(session), ["access_token", "expires_at", "expires_in", "refresh_token", "token_type"]);
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    let now = chrono::Utc::now().timestamp();
    let at = session["expires_at"].as_i64().unwrap();
    assert!((now + 880..=now + 905).contains(&at), "{at}");
}

fn assert_auth_user(user: &Value) {
    for k in [
        "id",
        "aud",
        "role",
        "email",
        "email_confirmed_at",
        "phone",
        "phone_confirmed_at",
        "confirmed_at",
        "last_sign_in_at",
        "app_metadata",
        "user_metadata",
        "created_at",
        "updated_at",
    ] {
        assert!(user.get(k).is_some(), "auth user lacks {k}: {user}");
    }
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["app_metadata"]["provider"], "email");
    assert_eq!(user["app_metadata"]["providers"], json!(["email"]));
    assert!(user.get("password_hash").is_none());
}

async fn kreeda_register(app: &TestApp) -> Value {
    let (status, body) = json_of(app.post("/auth/register", None, seed_register()).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn register_replays_the_seed_example() {
    let app = TestApp::spawn().await;

    let body = kreeda_register(&app).await;

    assert_eq!(keys(&body), ["session", "user"]);
    assert_auth_user(&body["user"]);
    assert_eq!(body["user"]["email"], "user@example.com");
    assert_eq!(body["user"]["phone"], "+1234567890");
    assert_eq!(body["user"]["user_metadata"]["name"], "John Doe");
    assert_eq!(body["user"]["app_metadata"]["roles"], json!(["user"]));
    assert_session(&body["session"]);
    let token = body["session"]["access_token"].as_str().unwrap();
    let (status, profile) = json_of(app.get("/user/profile/", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["name"], "John Doe", "the profile is created with name");
}

#[tokio::test]
async fn register_errors() {
    let app = TestApp::spawn().await;
    kreeda_register(&app).await;

    assert_error(app.post("/auth/register", None, seed_register()).await, StatusCode::CONFLICT, "email_already_exists")
        .await;
    let missing = app.post("/auth/register", None, json!({ "email": "x@example.com" })).await;
    let body = assert_error(missing, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(body["detail"].as_str().unwrap().contains("password"), "{body}");
    let weak = app.post("/auth/register", None, json!({ "email": "w@example.com", "password": "weak" })).await;
    assert_error(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let phone = app
        .post(
            "/auth/register",
            None,
            json!({ "email": "p@example.com", "password": "SecurePass123!", "phone_number": "12345" }),
        )
        .await;
    let body = assert_error(phone, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(body["errors"][0]["field"], "phone_number");
}

#[tokio::test]
async fn sign_in_replays_the_seed_and_its_error_cases() {
    let app = TestApp::spawn().await;
    kreeda_register(&app).await;

    let (status, body) = json_of(
        app.post("/auth/signin/password", None, json!({ "email": "user@example.com", "password": "SecurePass123!" }))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_auth_user(&body["user"]);
    assert_session(&body["session"]);

    let wrong = app
        .post("/auth/signin/password", None, json!({ "email": "user@example.com", "password": "Wrong-Pass123!" }))
        .await;
    let a = assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app
        .post("/auth/signin/password", None, json!({ "email": "nobody@example.com", "password": "Wrong-Pass123!" }))
        .await;
    let b = assert_error(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!((&a["detail"], &a["type"]), (&b["detail"], &b["type"]), "the same body for an unknown email");

    for body in [json!({ "email": "user@example.com" }), json!({ "password": "x" }), json!({})] {
        assert_error(app.post("/auth/signin/password", None, body).await, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    app.sql("UPDATE users SET is_active = false WHERE email = 'user@example.com'").await;
    let inactive = app
        .post("/auth/signin/password", None, json!({ "email": "user@example.com", "password": "SecurePass123!" }))
        .await;
    assert_error(inactive, StatusCode::FORBIDDEN, "account_inactive").await;
}

#[tokio::test]
async fn get_user_and_token_refresh() {
    let app = TestApp::spawn().await;
    let reg = kreeda_register(&app).await;
    let access = reg["session"]["access_token"].as_str().unwrap();
    let refresh = reg["session"]["refresh_token"].as_str().unwrap();

    let (status, user) = json_of(app.get("/auth/user", Some(access)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_auth_user(&user);
    assert_eq!(user["id"], reg["user"]["id"]);
    assert_error(app.get("/auth/user", None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;

    let (status, session) = json_of(app.post("/auth/token", None, json!({ "refresh_token": refresh })).await).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_session(&session);
    assert_ne!(session["refresh_token"], refresh);
    let (status, _) = json_of(app.get("/auth/user", session["access_token"].as_str()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        app.post("/auth/token", None, json!({ "refresh_token": "bogus" })).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_error(app.post("/auth/token", None, json!({})).await, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn put_user_phone_resets_verification_and_password_keeps_only_the_callers_session() {
    let app = TestApp::spawn().await;
    let reg = kreeda_register(&app).await;
    let caller = reg["session"]["access_token"].as_str().unwrap().to_owned();
    let other = app.login("user@example.com", "SecurePass123!").await;
    app.sql("UPDATE users SET phone_verified_at = created_at").await;

    let (status, user) =
        json_of(app.send(Method::PUT, "/auth/user", Some(&caller), Some(json!({ "phone": "+9876543210" }))).await)
            .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["phone"], "+9876543210");
    assert_eq!(user["phone_confirmed_at"], Value::Null, "a new phone resets phone verification");

    let weak = app.send(Method::PUT, "/auth/user", Some(&caller), Some(json!({ "password": "weak" }))).await;
    assert_error(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let res =
        app.send(Method::PUT, "/auth/user", Some(&caller), Some(json!({ "password": "NewSecurePass123!" }))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.get("/auth/user", Some(&caller)).await.status(), StatusCode::OK, "the caller's session is kept");
    assert_eq!(
        app.get("/auth/user", Some(&other.access)).await.status(),
        StatusCode::UNAUTHORIZED,
        "others are signed out"
    );
    app.login("user@example.com", "NewSecurePass123!").await;
}

#[tokio::test]
async fn put_user_email_stays_pending_as_new_email_until_verified() {
    let smtp = SmtpServer::start().await;
    let mut settings = smtp.settings();
    settings.push(("SECURE_EMAIL_CHANGE", "false".to_owned()));
    let app = TestApp::with(&pairs(&settings)).await;
    let reg = kreeda_register(&app).await;
    let access = reg["session"]["access_token"].as_str().unwrap();

    let (status, user) = json_of(
        app.send(Method::PUT, "/auth/user", Some(access), Some(json!({ "email": "newemail@example.com" }))).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "user@example.com");
    assert_eq!(user["new_email"], "newemail@example.com");

    let token = smtp.latest("newemail@example.com", "Confirm your new email").await.token();
    let (status, body) =
        json_of(app.post("/auth/verify", None, json!({ "type": "email_change", "token": token })).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], "newemail@example.com");
    assert!(body["user"]["email_confirmed_at"].is_string());
    assert!(body["user"].get("new_email").is_none());
    assert!(body["session"].is_null(), "an email-change confirmation signs no one in: {body}");
}

#[tokio::test]
async fn verify_signup_confirms_and_signs_in() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::with(&pairs(&smtp.settings())).await;
    kreeda_register(&app).await;
    let token = smtp.wait_for("user@example.com", 1).await[0].token();

    let (status, body) =
        json_of(app.post("/auth/verify", None, json!({ "type": "signup", "token": token })).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["user"]["email_confirmed_at"].is_string());
    assert_session(&body["session"]);
    let again = app.post("/auth/verify", None, json!({ "type": "signup", "token": token })).await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    let bad_type = app.post("/auth/verify", None, json!({ "type": "magic", "token": token })).await;
    assert_error(bad_type, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
}

#[tokio::test]
async fn recover_then_verify_recovery_signs_in_to_set_a_new_password() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::with(&pairs(&smtp.settings())).await;
    kreeda_register(&app).await;

    for email in ["user@example.com", "nobody@example.com"] {
        let (status, body) = json_of(app.post("/auth/recover", None, json!({ "email": email })).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "message": "Password recovery email sent" }));
    }
    let token = smtp.latest("user@example.com", "Reset").await.token();

    let (status, body) =
        json_of(app.post("/auth/verify", None, json!({ "type": "recovery", "token": token })).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_session(&body["session"]);
    let access = body["session"]["access_token"].as_str().unwrap();
    let res = app.send(Method::PUT, "/auth/user", Some(access), Some(json!({ "password": "Recovered#Pass99" }))).await;
    assert_eq!(res.status(), StatusCode::OK);
    app.login("user@example.com", "Recovered#Pass99").await;

    let reuse = app.post("/auth/verify", None, json!({ "type": "recovery", "token": token })).await;
    assert_error(reuse, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    let wrong_kind = app.post("/auth/verify", None, json!({ "type": "signup", "token": token })).await;
    assert_error(wrong_kind, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
}

#[tokio::test]
async fn signout_replays_the_seed() {
    let app = TestApp::spawn().await;
    let reg = kreeda_register(&app).await;
    let access = reg["session"]["access_token"].as_str().unwrap();

    let (status, body) = json_of(app.post("/auth/signout", Some(access), json!({})).await).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "message": "Signed out successfully" }));
    assert_eq!(app.get("/auth/user", Some(access)).await.status(), StatusCode::UNAUTHORIZED);
    let refresh = reg["session"]["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.post("/auth/token", None, json!({ "refresh_token": refresh })).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_error(app.post("/auth/signout", None, json!({})).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test]
async fn profile_replays_the_seed_with_and_without_the_trailing_slash() {
    let app = TestApp::spawn().await;
    let reg = kreeda_register(&app).await;
    let access = reg["session"]["access_token"].as_str().unwrap();

    let (status, profile) = json_of(app.get("/user/profile/", Some(access)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&profile),
        [
            "avatar_url",
            "bio",
            "created_at",
            "date_of_birth",
            "id",
            "location",
            "name",
            "preferences",
            "roles",
            "updated_at",
            "user_id"
        ]
    );
    assert_eq!(profile["user_id"], reg["user"]["id"]);
    assert_eq!(profile["preferences"], json!({}));
    assert_eq!(profile["roles"], json!(["user"]));

    // The seed's PUT example.
    let seed_put =
        json!({ "name": "Jane Doe", "location": "New York", "bio": "Updated bio", "preferences": {"theme": "dark"} });
    let (status, updated) = json_of(app.send(Method::PUT, "/user/profile/", Some(access), Some(seed_put)).await).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["name"], &updated["location"], &updated["bio"]),
        (&json!("Jane Doe"), &json!("New York"), &json!("Updated bio"))
    );
    assert_eq!(updated["preferences"], json!({"theme": "dark"}));

    let more = json!({ "avatar_url": "https://cdn.example.com/a.png", "date_of_birth": "1990-01-01" });
    let (status, updated) = json_of(app.send(Method::PUT, "/user/profile", Some(access), Some(more)).await).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["date_of_birth"], "1990-01-01");
    assert_eq!(updated["name"], "Jane Doe", "absent fields are kept");
    let (_, same) = json_of(app.get("/user/profile", Some(access)).await).await;
    assert_eq!(same["avatar_url"], "https://cdn.example.com/a.png");
    assert_eq!(app.get("/user/profile/", None).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn profile_validation() {
    let app = TestApp::spawn().await;
    let reg = kreeda_register(&app).await;
    let access = reg["session"]["access_token"].as_str().unwrap();
    let put = |body: Value| app.send(Method::PUT, "/user/profile/", Some(access), Some(body));

    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().to_string();
    let body = assert_error(
        put(json!({ "date_of_birth": tomorrow, "avatar_url": "javascript:alert(1)", "preferences": [1] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields.len(), 3, "{body}");
    for f in ["date_of_birth", "avatar_url", "preferences"] {
        assert!(fields.contains(&f), "{f}: {body}");
    }
    let big = json!({ "preferences": { "blob": "x".repeat(17 * 1024) } });
    assert_error(put(big).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_error(
        put(json!({ "date_of_birth": "01/01/1990" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_error(put(json!({ "bio": 5 })).await, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn single_device_rule_with_max_sessions_one() {
    let app = TestApp::with(&[("MAX_SESSIONS_PER_USER", "1")]).await;
    let reg = kreeda_register(&app).await;
    let first = reg["session"]["access_token"].as_str().unwrap();

    let (status, second) = json_of(
        app.post("/auth/signin/password", None, json!({ "email": "user@example.com", "password": "SecurePass123!" }))
            .await,
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get("/auth/user", Some(first)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the old device is signed out"
    );
    assert_eq!(app.get("/auth/user", second["session"]["access_token"].as_str()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn kreeda_and_v1_share_one_registration_limit() {
    let app = TestApp::with(&[("RATE_LIMIT_ENABLED", "true"), ("RATE_LIMIT_REGISTER", "2/1h")]).await;
    assert_eq!(
        app.post("/v1/users", None, json!({ "email": "a1@example.com", "password": PASSWORD })).await.status(),
        StatusCode::CREATED
    );
    let res = app.post("/auth/register", None, json!({ "email": "a2@example.com", "password": PASSWORD })).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    let res = app.post("/auth/register", None, json!({ "email": "a3@example.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn kreeda_routes_are_documented_under_their_own_tag() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    for (path, method) in [
        ("/auth/register", "post"),
        ("/auth/signin/password", "post"),
        ("/auth/user", "get"),
        ("/auth/user", "put"),
        ("/auth/token", "post"),
        ("/auth/recover", "post"),
        ("/auth/verify", "post"),
        ("/auth/signout", "post"),
        ("/user/profile/", "get"),
        ("/user/profile/", "put"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!(["kreeda"]), "{method} {path}");
        assert!(op["responses"].is_object());
    }
    assert!(doc["paths"]["/auth/register"]["post"]["requestBody"].is_object());
}
