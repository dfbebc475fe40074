//! The first proof of an address (SPEC §5.3, hole 2 of the third review): somebody
//! signs up with another person's address and a password of their own, gets a session
//! (verification is not required) and waits. When the owner proves the address for the
//! first time with a link or code they asked for themselves (a resend, a recovery, a
//! sign-in link), everything set before dies: the squatter's password, access token,
//! refresh token and second factor. Only a token mailed in answer to the sign-up that
//! set the password keeps it (its registrant is the one proving). On every surface:
//! `/v1`, Kreeda, Supabase.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

const SQUATTER_PASSWORD: &str = "Squatt3r!Passphrase";
const OWNER_PASSWORD: &str = "0wner!Passphrase";

async fn mail_app(smtp: &SmtpServer) -> TestApp {
    let settings = smtp.settings();
    TestApp::with(&pairs(&settings)).await
}

fn fresh_email() -> String {
    format!("owner-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// What the squatter holds: a password, a session, and a verified TOTP factor.
struct Squatter {
    login: Login,
    totp_secret: String,
}

/// Signs up `email` on `/v1` with the squatter's password, signs in and enrolls TOTP.
async fn squat(app: &TestApp, email: &str) -> Squatter {
    app.register(email, SQUATTER_PASSWORD).await;
    let login = app.login(email, SQUATTER_PASSWORD).await;
    let enrolled: Value = app.post("/v1/auth/mfa/totp", Some(&login.access), json!({})).await.json().await.unwrap();
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    let mut totp = Authenticator::new(&secret);
    let path = format!("/v1/auth/mfa/totp/{}/activate", enrolled["id"].as_str().unwrap());
    let res = app.post(&path, Some(&login.access), json!({ "code": totp.next().await })).await;
    assert_eq!(res.status(), StatusCode::OK);
    Squatter { login, totp_secret: secret }
}

/// Asserts the squatter holds nothing: the password no longer signs in (not even to an
/// MFA step), the access token and the refresh token are dead, no factor is left.
async fn assert_squatter_holds_nothing(app: &TestApp, email: &str, s: &Squatter) {
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": SQUATTER_PASSWORD })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.get("/v1/auth/me", Some(&s.login.access)).await.status(), StatusCode::UNAUTHORIZED);
    let res = app.post("/v1/auth/refresh", None, json!({ "refresh_token": s.login.refresh })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let factors = app.dump("mfa_factors").await;
    assert!(!factors.contains(&s.totp_secret), "no factor of the squatter is left");
    assert!(app.dump("audit_log").await.contains("user.unconfirmed_credentials_voided"));
}

/// `/v1`: the owner asks for the confirmation again and confirms with the code.
#[tokio::test]
async fn native_a_resent_confirmation_voids_what_the_squatter_set() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let email = fresh_email();
    let squatter = squat(&app, &email).await;

    // The owner's own sign-up: the address is taken.
    let res = app.post("/v1/users", None, json!({ "email": email, "password": OWNER_PASSWORD })).await;
    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
    let res = app.post("/v1/auth/verify-email/resend", None, json!({ "email": email })).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let code = smtp.latest(&email, "verification code").await.code();
    let res = app.post("/v1/auth/verify-email", None, json!({ "email": email, "code": code })).await;
    let (status, user) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["is_verified"], true);
    assert_eq!(user["mfa_enabled"], false, "{user}");
    assert_squatter_holds_nothing(&app, &email, &squatter).await;

    // The owner takes the account with a password reset, now that the address is theirs.
    app.post("/v1/auth/password-reset", None, json!({ "email": email })).await;
    let token = smtp.latest(&email, "Reset your").await.token();
    let res =
        app.post("/v1/auth/password-reset/confirm", None, json!({ "token": token, "new_password": OWNER_PASSWORD }));
    assert_eq!(res.await.status(), StatusCode::NO_CONTENT);
    app.login(&email, OWNER_PASSWORD).await;
}

/// `/v1`: a password reset of an unconfirmed account proves the address as well.
#[tokio::test]
async fn native_a_password_reset_confirms_the_address_and_voids_the_squatters_factor() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let email = fresh_email();
    let squatter = squat(&app, &email).await;

    app.post("/v1/auth/password-reset", None, json!({ "email": email })).await;
    let token = smtp.latest(&email, "Reset your").await.token();
    let res =
        app.post("/v1/auth/password-reset/confirm", None, json!({ "token": token, "new_password": OWNER_PASSWORD }));
    assert_eq!(res.await.status(), StatusCode::NO_CONTENT);
    assert_squatter_holds_nothing(&app, &email, &squatter).await;
    let owner = app.login(&email, OWNER_PASSWORD).await;
    assert_eq!(owner.body["user"]["is_verified"], true, "{}", owner.body);
    assert!(owner.body.get("mfa_required").is_none(), "the squatter's factor is gone: {}", owner.body);
}

/// The registrant confirming with the mail of their own sign-up keeps their password,
/// session and factor: the token answers the request that set them.
#[tokio::test]
async fn the_sign_up_mail_of_the_registrant_keeps_what_they_set() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let email = fresh_email();
    let registrant = squat(&app, &email).await;
    let code = smtp.latest(&email, "Confirm your email").await.code();
    let res = app.post("/v1/auth/verify-email", None, json!({ "email": email, "code": code })).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.get("/v1/auth/me", Some(&registrant.login.access)).await.status(), StatusCode::OK);
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": SQUATTER_PASSWORD })).await;
    let (status, body) = json_of(res).await;
    assert_eq!((status, &body["mfa_required"]), (StatusCode::OK, &json!(true)), "{body}");
    assert!(!app.dump("audit_log").await.contains("user.unconfirmed_credentials_voided"));
}

/// Kreeda: the owner confirms with the resent link at `POST /auth/verify type=signup`,
/// or signs in with a recovery link at `type=recovery`.
#[tokio::test]
async fn kreeda_a_resent_link_or_a_recovery_voids_what_the_squatter_set() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    for kind in ["signup", "recovery"] {
        let email = fresh_email();
        let squatter = squat(&app, &email).await;
        let token = if kind == "signup" {
            app.post("/v1/auth/verify-email/resend", None, json!({ "email": email })).await;
            smtp.latest(&email, "verification code").await.token()
        } else {
            let res = app.post("/auth/recover", None, json!({ "email": email })).await;
            assert_eq!(res.status(), StatusCode::OK);
            smtp.latest(&email, "Reset your").await.token()
        };
        let res = app.post("/auth/verify", None, json!({ "type": kind, "token": token })).await;
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        let owner = body["session"]["access_token"].as_str().unwrap_or_else(|| panic!("{kind}: {body}")).to_owned();
        assert!(body["user"]["email_confirmed_at"].is_string(), "{kind}: {body}");
        assert_squatter_holds_nothing(&app, &email, &squatter).await;
        // The owner, signed in by the proof, sets a password of their own.
        let res = app.send(Method::PUT, "/auth/user", Some(&owner), Some(json!({ "password": OWNER_PASSWORD }))).await;
        assert_eq!(res.status(), StatusCode::OK, "{kind}");
        app.login(&email, OWNER_PASSWORD).await;
    }
}

/// Supabase, as the issue reproduced it: the squatter signs up on `/auth/v1/signup` and
/// gets a session; the owner's sign-up answers 422; the owner resends the confirmation
/// (`/resend type=signup`) and confirms with the code (`/verify type=signup`). And the
/// recovery path (`/recover`, then `/verify type=recovery`).
#[tokio::test]
async fn supabase_a_resent_confirmation_or_a_recovery_voids_what_the_squatter_set() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    for kind in ["signup", "recovery"] {
        let email = fresh_email();
        let res = app.post("/auth/v1/signup", None, json!({ "email": email, "password": SQUATTER_PASSWORD })).await;
        let (status, squat) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{squat}");
        let squat_access = squat["access_token"].as_str().unwrap().to_owned();
        let squat_refresh = squat["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(app.get("/auth/v1/user", Some(&squat_access)).await.status(), StatusCode::OK);

        let res = app.post("/auth/v1/signup", None, json!({ "email": email, "password": OWNER_PASSWORD })).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "the owner's sign-up: already registered");
        let proof = if kind == "signup" {
            let res = app.post("/auth/v1/resend", None, json!({ "type": "signup", "email": email })).await;
            assert_eq!(res.status(), StatusCode::OK);
            let code = smtp.latest(&email, "verification code").await.code();
            json!({ "type": kind, "email": email, "token": code })
        } else {
            let res = app.post("/auth/v1/recover", None, json!({ "email": email })).await;
            assert_eq!(res.status(), StatusCode::OK);
            json!({ "type": kind, "token_hash": smtp.latest(&email, "Reset your").await.token() })
        };
        let res = app.post("/auth/v1/verify", None, proof).await;
        let (status, owner) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {owner}");
        assert!(owner["user"]["email_confirmed_at"].is_string(), "{kind}: {owner}");
        let owner_access = owner["access_token"].as_str().unwrap().to_owned();

        let res = app
            .post("/auth/v1/token?grant_type=password", None, json!({ "email": email, "password": SQUATTER_PASSWORD }))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{kind}: the squatter's password is dead");
        assert_eq!(app.get("/auth/v1/user", Some(&squat_access)).await.status(), StatusCode::FORBIDDEN, "{kind}");
        let res = app.post("/auth/v1/token?grant_type=refresh_token", None, json!({ "refresh_token": squat_refresh }));
        assert_eq!(res.await.status(), StatusCode::BAD_REQUEST, "{kind}: the squatter's refresh token is dead");
        assert_eq!(app.get("/auth/v1/user", Some(&owner_access)).await.status(), StatusCode::OK, "{kind}");
    }
}
