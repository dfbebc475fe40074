//! Auth hooks and event webhooks (SPEC §5.13, issue 32), against real HTTP receivers on
//! loopback whose signatures the `standardwebhooks` library checks ([`Receiver`]): the
//! custom access token hook on every surface, its failures, the verification-attempt
//! hooks, the before-user-created hook, the send-email hook from the outbox, and the
//! event webhooks delivered in order, at least once, through a receiver that is down.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;
use crate::mfa::claims;
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);

/// The settings that enable hook `name` (e.g. `CUSTOM_ACCESS_TOKEN`) at `path` of `r`.
fn hook_vars(r: &Receiver, name: &str, path: &str) -> Vec<(String, String)> {
    vec![
        (format!("HOOK_{name}_ENABLED"), "true".to_owned()),
        (format!("HOOK_{name}_URI"), r.url(path)),
        (format!("HOOK_{name}_SECRETS"), format!("v1,{}", r.secret())),
    ]
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Every call a receiver saw verified under its secret, by the library.
fn all_verified(calls: &[Value]) {
    for c in calls {
        assert_eq!(c["verified"], true, "a call that does not verify: {c}");
    }
}

async fn sb(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    json_of(app.send(method, path, token, body).await).await
}

/// The claims the custom access token hook answers: whatever the test says, and some
/// it may not set.
fn hook_claims(extra: Value) -> Value {
    let mut c = json!({ "sub": "00000000-0000-0000-0000-000000000000", "role": "admin", "aal": "aal2",
                        "exp": 4102444800i64, "session_id": "forged", "plan": "pro" });
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    json!({ "claims": c })
}

#[tokio::test]
async fn the_custom_access_token_hook_adds_claims_on_every_surface_and_owned_claims_stay() {
    let r = Receiver::start().await;
    r.respond("/claims", json!([]), Some(json!({ "body": hook_claims(json!({ "tier": ["gold"] })) }))).await;
    let vars = hook_vars(&r, "CUSTOM_ACCESS_TOKEN", "/claims");
    let app = TestApp::with(&refs(&vars)).await;
    let email = "claims@example.com";
    let user = app.register(email, PASSWORD).await;
    let uid = user["id"].as_str().unwrap().to_owned();

    // Native: the claims are in the token, and the token still works.
    let login = app.login(email, PASSWORD).await;
    let c = claims(&login.access);
    assert_eq!((c["plan"].as_str(), c["tier"][0].as_str()), (Some("pro"), Some("gold")), "{c}");
    assert_eq!(c["sub"], uid, "sub is the server's: {c}");
    assert_eq!(c["role"], "user", "role is the server's: {c}");
    assert_eq!(c["aal"], "aal1", "{c}");
    assert!(c["exp"].as_i64().unwrap() < 4102444800, "exp is the server's: {c}");
    assert!(c.get("session_id").is_none(), "a claim the native token does not carry stays out: {c}");
    let (status, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], uid);

    // Refreshed tokens carry them too.
    let res = app.post("/v1/auth/refresh", None, json!({ "refresh_token": login.refresh })).await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["plan"], "pro");

    // Supabase: the claims, with GoTrue's own left as the server made them.
    let (status, s) = sb(
        &app,
        Method::POST,
        "/auth/v1/token?grant_type=password",
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let c = claims(s["access_token"].as_str().unwrap());
    assert_eq!(c["plan"], "pro", "{c}");
    assert_eq!((c["sub"].as_str(), c["role"].as_str()), (Some(uid.as_str()), Some("authenticated")), "{c}");
    assert_ne!(c["session_id"], "forged", "{c}");
    let (status, _) = sb(&app, Method::GET, "/auth/v1/user", s["access_token"].as_str(), None).await;
    assert_eq!(status, StatusCode::OK);

    // What the hook got: GoTrue's payload, signed.
    let calls = r.wait_calls("/claims", 3, WAIT).await;
    all_verified(&calls);
    let first = &calls[0]["body"];
    assert_eq!(first["user_id"], uid, "{first}");
    assert_eq!(first["claims"]["sub"], uid, "{first}");
    assert_eq!(first["authentication_method"], "password", "{first}");
    assert_eq!(first["metadata"]["name"], "customize-access-token", "{first}");
    let supabase = &calls[2]["body"];
    assert_eq!(supabase["claims"]["role"], "authenticated", "{supabase}");
    assert!(supabase["claims"]["app_metadata"].is_object(), "{supabase}");
}

#[tokio::test]
async fn a_failing_custom_access_token_hook_fails_the_sign_in_with_gotrue_s_errors() {
    let r = Receiver::start().await;
    let vars = hook_vars(&r, "CUSTOM_ACCESS_TOKEN", "/claims");
    let app = TestApp::with(&refs(&vars)).await;
    r.respond("/claims", json!([]), Some(json!({ "body": hook_claims(json!({})) }))).await;
    let email = "hook-fails@example.com";
    app.register(email, PASSWORD).await;
    async fn login(app: &TestApp) -> reqwest::Response {
        app.post("/v1/auth/login", None, json!({ "email": "hook-fails@example.com", "password": PASSWORD })).await
    }

    // The receiver refuses: its status and message.
    let refusal = json!({ "error": { "http_code": 403, "message": "Your plan has ended" } });
    r.respond("/claims", json!([{ "status": 403, "body": refusal }]), Some(json!({ "body": hook_claims(json!({})) })))
        .await;
    let body = assert_error(login(&app).await, StatusCode::FORBIDDEN, "hook_refused").await;
    assert_eq!(body["detail"], "Your plan has ended");
    // On the Supabase surface, in GoTrue's shape.
    r.respond("/claims", json!([{ "body": refusal }]), Some(json!({ "body": hook_claims(json!({})) }))).await;
    let (status, e) = sb(
        &app,
        Method::POST,
        "/auth/v1/token?grant_type=password",
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
    )
    .await;
    assert_eq!((status, e["msg"].as_str()), (StatusCode::FORBIDDEN, Some("Your plan has ended")), "{e}");

    // An answer without claims, over 200 KB, or not JSON: no token.
    r.respond("/claims", json!([{ "body": { "nothing": true } }]), Some(json!({ "body": hook_claims(json!({})) })))
        .await;
    assert_error(login(&app).await, StatusCode::SERVICE_UNAVAILABLE, "unexpected_failure").await;
    r.respond("/claims", json!([{ "body_size": 300_000 }]), Some(json!({ "body": hook_claims(json!({})) }))).await;
    assert_error(login(&app).await, StatusCode::UNPROCESSABLE_ENTITY, "hook_payload_over_size_limit").await;
    r.respond("/claims", json!([{ "body": "claims", "content_type": "text/plain" }]), None).await;
    assert_error(login(&app).await, StatusCode::BAD_REQUEST, "hook_payload_invalid_content_type").await;

    // 503 with Retry-After is tried again, with the same webhook-id: the sign-in succeeds.
    r.reset().await;
    r.respond(
        "/claims",
        json!([{ "status": 503, "headers": { "Retry-After": "1" }, "body": {} }]),
        Some(json!({ "body": hook_claims(json!({})) })),
    )
    .await;
    let (status, body) = json_of(login(&app).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["plan"], "pro");
    let calls = r.wait_calls("/claims", 2, WAIT).await;
    all_verified(&calls);
    assert_eq!(calls[0]["id"], calls[1]["id"], "a retry is the same message");

    // A receiver that is down: GoTrue's "after maximum retries", never a token.
    let mut r = r;
    r.stop();
    let body = assert_error(login(&app).await, StatusCode::UNPROCESSABLE_ENTITY, "hook_timeout_after_retry").await;
    assert!(!body.to_string().contains("access_token"), "{body}");
    // One that does not answer within 5 s.
    let slow = Receiver::start_on(r.port(), &[r.secret().to_owned()]).await;
    slow.respond("/claims", json!([]), Some(json!({ "delay_ms": 6000, "body": hook_claims(json!({})) }))).await;
    let started = std::time::Instant::now();
    assert_error(login(&app).await, StatusCode::UNPROCESSABLE_ENTITY, "hook_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(6), "the 5 s bound: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_password_verification_hook_rejects_and_signs_the_user_out() {
    let r = Receiver::start().await;
    let vars = hook_vars(&r, "PASSWORD_VERIFICATION_ATTEMPT", "/password");
    let app = TestApp::with(&refs(&vars)).await;
    let email = "guarded@example.com";
    let user = app.register(email, PASSWORD).await;
    let uid = user["id"].as_str().unwrap().to_owned();
    // Accepted: the attempt goes through, and the hook saw it valid.
    r.respond("/password", json!([]), Some(json!({ "body": { "decision": "continue" } }))).await;
    let session = app.login(email, PASSWORD).await;
    let calls = r.wait_calls("/password", 1, WAIT).await;
    all_verified(&calls);
    assert_eq!(calls[0]["body"]["user_id"], uid);
    assert_eq!(calls[0]["body"]["valid"], true);
    assert_eq!(calls[0]["body"]["metadata"]["name"], "password-verification");

    // A wrong password, rejected with a logout: GoTrue's 400, and the session is gone.
    r.respond(
        "/password",
        json!([{ "body": { "decision": "reject", "message": "Too many attempts", "should_logout_user": true } }]),
        Some(json!({ "body": { "decision": "continue" } })),
    )
    .await;
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": "Wrong!Passphrase1" })).await;
    let body = assert_error(res, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    assert_eq!(body["detail"], "Too many attempts");
    let calls = r.wait_calls("/password", 2, WAIT).await;
    assert_eq!(calls[1]["body"]["valid"], false);
    let res = app.post("/v1/auth/refresh", None, json!({ "refresh_token": session.refresh })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the hook signed the user out");
    assert_eq!(app.get("/v1/auth/me", Some(&session.access)).await.status(), StatusCode::UNAUTHORIZED);

    // Rejected without a message: GoTrue's default one; the right password is refused too.
    r.respond("/password", json!([{ "body": { "decision": "reject" } }]), Some(json!({ "body": {} }))).await;
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
    let body = assert_error(res, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    assert_eq!(body["detail"], "Further password verification attempts will be rejected.");
    // And a hook that is down fails the attempt, whatever the password.
    let mut r = r;
    r.stop();
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
    assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "hook_timeout_after_retry").await;
}

#[tokio::test]
async fn the_mfa_verification_hook_rejects_a_code() {
    let r = Receiver::start().await;
    let vars = hook_vars(&r, "MFA_VERIFICATION_ATTEMPT", "/mfa");
    let app = TestApp::with(&refs(&vars)).await;
    let email = "mfa-hook@example.com";
    app.register(email, PASSWORD).await;
    let (status, s) = sb(
        &app,
        Method::POST,
        "/auth/v1/token?grant_type=password",
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let token = s["access_token"].as_str().unwrap().to_owned();
    let (_, e) = sb(&app, Method::POST, "/auth/v1/factors", Some(&token), Some(json!({ "factor_type": "totp" }))).await;
    let fid = e["id"].as_str().unwrap().to_owned();
    let mut auth = Authenticator::new(e["totp"]["secret"].as_str().unwrap());
    let verify = |code: String| {
        let (app, fid, token) = (&app, fid.clone(), token.clone());
        async move {
            let (_, c) =
                sb(app, Method::POST, &format!("/auth/v1/factors/{fid}/challenge"), Some(&token), Some(json!({})))
                    .await;
            let body = json!({ "challenge_id": c["id"], "code": code });
            sb(app, Method::POST, &format!("/auth/v1/factors/{fid}/verify"), Some(&token), Some(body)).await
        }
    };
    r.respond("/mfa", json!([{ "body": { "decision": "reject", "message": "Not from this country" } }]), None).await;
    let (status, body) = verify(auth.next().await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("mfa_verification_rejected")), "{body}");
    assert_eq!(body["msg"], "Not from this country");
    let calls = r.wait_calls("/mfa", 1, WAIT).await;
    all_verified(&calls);
    let payload = &calls[0]["body"];
    assert_eq!((payload["factor_id"].as_str(), payload["factor_type"].as_str()), (Some(fid.as_str()), Some("totp")));
    assert_eq!(payload["valid"], true, "{payload}");
    // Allowed: the factor is verified and the session aal2.
    let (status, body) = verify(auth.next().await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aal"], "aal2");

    // The native second step asks the hook too.
    let (status, step) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!((status, step["mfa_required"].as_bool()), (StatusCode::OK, Some(true)), "{step}");
    r.respond("/mfa", json!([{ "body": { "decision": "reject" } }]), Some(json!({ "body": {} }))).await;
    let body = json!({ "mfa_token": step["mfa_token"], "code": auth.next().await });
    let body = assert_error(
        app.post("/v1/auth/mfa/verify", None, body).await,
        StatusCode::FORBIDDEN,
        "mfa_verification_rejected",
    )
    .await;
    assert_eq!(body["detail"], "Further MFA verification attempts will be rejected.");
    let body = json!({ "mfa_token": step["mfa_token"], "code": auth.next().await });
    let (status, done) = json_of(app.post("/v1/auth/mfa/verify", None, body).await).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let calls = r.wait_calls("/mfa", 4, WAIT).await;
    assert_eq!(
        (calls[2]["body"]["factor_id"].as_str(), calls[2]["body"]["valid"].as_bool()),
        (Some(fid.as_str()), Some(true))
    );
}

#[tokio::test]
async fn the_before_user_created_hook_refuses_a_sign_up_on_every_path() {
    let r = Receiver::start().await;
    let vars = hook_vars(&r, "BEFORE_USER_CREATED", "/before");
    let app = TestApp::with(&refs(&vars)).await;
    let refusal = json!({ "error": { "http_code": 403, "message": "Sign-ups from example.org are closed" } });
    r.respond("/before", json!([{ "body": refusal }, { "body": refusal }]), Some(json!({ "body": {} }))).await;
    let res = app.post("/v1/users", None, json!({ "email": "no@example.org", "password": PASSWORD })).await;
    let body = assert_error(res, StatusCode::FORBIDDEN, "hook_refused").await;
    assert_eq!(body["detail"], "Sign-ups from example.org are closed");
    let (status, e) = sb(
        &app,
        Method::POST,
        "/auth/v1/signup",
        None,
        Some(json!({ "email": "no2@example.org", "password": PASSWORD })),
    )
    .await;
    assert_eq!(
        (status, e["msg"].as_str()),
        (StatusCode::FORBIDDEN, Some("Sign-ups from example.org are closed")),
        "{e}"
    );
    assert_eq!(app.dump("users").await.matches("example.org").count(), 0, "nobody was created");

    // Accepted: created; the hook saw GoTrue's user object.
    app.register("yes@example.com", PASSWORD).await;
    let calls = r.wait_calls("/before", 3, WAIT).await;
    all_verified(&calls);
    let user = &calls[2]["body"]["user"];
    assert_eq!(
        (user["email"].as_str(), user["aud"].as_str()),
        (Some("yes@example.com"), Some("authenticated")),
        "{user}"
    );
    assert_eq!(calls[2]["body"]["metadata"]["name"], "before-user-created");
}

#[tokio::test]
async fn the_send_email_hook_replaces_smtp_and_is_retried_from_the_outbox() {
    let mut r = Receiver::start().await;
    let (port, secret) = (r.port(), r.secret().to_owned());
    let vars = hook_vars(&r, "SEND_EMAIL", "/email");
    let mut vars = refs(&vars);
    vars.push(("MAIL_RETRY_MAX_DELAY", "1s"));
    let smtp = SmtpServer::start().await;
    let settings = smtp.settings();
    vars.extend(pairs(&settings));
    let app = TestApp::with(&vars).await;
    // Down when the mail is queued: the outbox keeps it.
    r.stop();
    let email = "hooked-mail@example.com";
    app.register(email, PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = Receiver::start_on(port, &[secret]).await;
    let calls = r.wait_calls("/email", 1, WAIT).await;
    all_verified(&calls);
    let payload = &calls[0]["body"];
    assert_eq!(payload["user"]["email"], email, "{payload}");
    assert_eq!(payload["email_data"]["email_action_type"], "signup", "{payload}");
    assert_eq!(payload["metadata"]["name"], "send-email");
    let token = payload["email_data"]["token_hash"].as_str().unwrap().to_owned();
    assert!(!token.is_empty() && !payload["email_data"]["token"].as_str().unwrap().is_empty(), "{payload}");
    // SMTP sent nothing; the token the hook got verifies the address.
    assert!(smtp.mails_to(email).is_empty(), "the hook replaced SMTP");
    let res = app.post("/v1/auth/verify-email", None, json!({ "token": token })).await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    // Delivered once: the outbox is empty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.calls("/email").await.len(), 1);
    assert!(app.dump("mail_outbox").await.contains("hook.send_email"));
}

/// The events of one user, in order, as the receiver got them.
fn events_of(calls: &[Value], user_id: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c["body"]["data"]["user_id"] == user_id)
        .map(|c| c["body"]["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn webhooks_are_delivered_in_order_at_least_once_through_a_receiver_that_is_down() {
    let mut r = Receiver::start().await;
    let (port, secret) = (r.port(), r.secret().to_owned());
    let url = r.url("/events");
    let webhook_secret = format!("v1,{secret}");
    let app = TestApp::with(&[
        ("WEBHOOK_URLS", url.as_str()),
        ("WEBHOOK_SECRET", webhook_secret.as_str()),
        ("MAIL_RETRY_MAX_DELAY", "1s"),
        ("METRICS_ENABLED", "true"),
    ])
    .await;
    let email = "events@example.com";
    let uid = app.register(email, PASSWORD).await["id"].as_str().unwrap().to_owned();
    let login = app.login(email, PASSWORD).await;
    let calls = r.wait_calls("/events", 2, WAIT).await;
    all_verified(&calls);
    assert_eq!(events_of(&calls, &uid), ["user.created", "session.created"]);
    let created = &calls[0];
    assert_eq!(created["body"]["data"]["audit_event"], "user.create", "{created}");
    assert!(created["id"].as_str().unwrap().starts_with("msg_"), "{created}");

    // Down: the events wait, in order, and the request never waits for them.
    r.stop();
    let started = std::time::Instant::now();
    let res = app
        .post(
            "/v1/auth/change-password",
            Some(&login.access),
            json!({ "current_password": PASSWORD, "new_password": "An0ther!Passphrase" }),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(2), "never on the request's path");
    let other = app.login(email, "An0ther!Passphrase").await;
    app.post("/v1/auth/logout", Some(&other.access), json!({})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("tessera_webhook_deliveries_total{outcome=\"failed\"}"), "{metrics}");
    assert!(metrics.contains("tessera_webhook_outbox_depth{state=\"waiting\"}"), "{metrics}");

    // Up again: everything arrives, in order per user, each event under one id.
    let r = Receiver::start_on(port, &[secret]).await;
    let calls = r.wait_calls("/events", 3, WAIT).await;
    all_verified(&calls);
    let mut seen = Vec::new();
    for c in &calls {
        if !seen.contains(&c["id"]) {
            seen.push(c["id"].clone());
        }
    }
    let order = events_of(&calls, &uid);
    let first_of = |e: &str| order.iter().position(|x| x == e).unwrap_or_else(|| panic!("no {e} in {order:?}"));
    assert!(first_of("password.changed") < first_of("session.created"), "{order:?}");
    assert!(first_of("session.created") < first_of("session.revoked"), "{order:?}");
    // The dashboard's numbers: nothing left waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (waiting, failed) = app.core.webhook_counts().await.unwrap();
    assert_eq!((waiting, failed), (0, 0));
}

#[tokio::test]
async fn webhook_events_can_be_chosen_and_deleted_users_are_told() {
    let r = Receiver::start().await;
    let url = r.url("/events");
    let secret = format!("v1,{}", r.secret());
    let (app, admin) = {
        let app = TestApp::with(&[
            ("WEBHOOK_URLS", url.as_str()),
            ("WEBHOOK_SECRET", secret.as_str()),
            ("WEBHOOK_EVENTS", "user.created,user.deleted"),
            ("FIRST_ADMIN_EMAIL", "root@example.com"),
            ("FIRST_ADMIN_PASSWORD", PASSWORD),
        ])
        .await;
        let admin = app.login("root@example.com", PASSWORD).await.access;
        (app, admin)
    };
    let uid = app.register("gone@example.com", PASSWORD).await["id"].as_str().unwrap().to_owned();
    app.login("gone@example.com", PASSWORD).await;
    let res = app.send(Method::DELETE, &format!("/v1/admin/users/{uid}"), Some(&admin), None).await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let calls = r.wait_calls("/events", 2, WAIT).await;
    let mine = events_of(&calls, &uid);
    assert_eq!(mine, ["user.created", "user.deleted"], "no session.created: not chosen");
    // Bad settings are refused at start, one line each.
    let bad = test_vars(
        "sqlite://x.db",
        &[("WEBHOOK_URLS", "http://hooks.example.com/x"), ("WEBHOOK_EVENTS", "user.exploded")],
    );
    let errs = tessera_core::settings::Settings::from_vars(&bad).err().unwrap();
    assert!(errs.iter().any(|e| e.contains("WEBHOOK_URLS must be an https URL")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("WEBHOOK_SECRET must be set")), "{errs:?}");
    let bad =
        test_vars("sqlite://x.db", &[("HOOK_SEND_SMS_ENABLED", "true"), ("HOOK_SEND_SMS_URI", "pg-functions://x")]);
    let errs = tessera_core::settings::Settings::from_vars(&bad).err().unwrap();
    assert!(errs.iter().any(|e| e.contains("HOOK_SEND_SMS_URI must be an https URL")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("HOOK_SEND_SMS_SECRETS must be set")), "{errs:?}");
}

/// The hook's claims where a Supabase app reads them: auth-js's `getClaims()`, which
/// verifies the RS256 token against the JWKS itself.
#[tokio::test]
async fn auth_js_get_claims_shows_the_custom_access_token_hook_s_claims() {
    let r = Receiver::start().await;
    r.respond("/claims", json!([]), Some(json!({ "body": hook_claims(json!({ "tenant": "acme" })) }))).await;
    let pem = format!("{}/tests/fixtures/jwt-rsa-a.pem", env!("CARGO_MANIFEST_DIR"));
    let mut vars = refs(&hook_vars(&r, "CUSTOM_ACCESS_TOKEN", "/claims"))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<Vec<_>>();
    vars.push(("JWT_ALGORITHM".into(), "RS256".into()));
    vars.push(("JWT_PRIVATE_KEY_FILE".into(), pem));
    let app = TestApp::with(&refs(&vars)).await;
    let email = "authjs-claims@example.com";
    let uid = app.register(email, PASSWORD).await["id"].as_str().unwrap().to_owned();
    let out = crate::provider::authjs_script("claims-authjs.mjs", &[&app.url("/auth/v1"), email, PASSWORD]).await;
    assert_eq!(out["ok"], true, "{out}");
    let c = &out["claims"];
    assert_eq!((c["tenant"].as_str(), c["plan"].as_str()), (Some("acme"), Some("pro")), "{out}");
    assert_eq!((c["sub"].as_str(), c["role"].as_str()), (Some(uid.as_str()), Some("authenticated")), "{out}");
    assert_eq!(out["header"]["alg"], "RS256", "verified with the JWKS: {out}");
}

/// A refresh whose hook fails rotates nothing: the same refresh token works once the
/// hook is back, even after the reuse interval (it would be a reuse otherwise, and the
/// session revoked).
#[tokio::test]
async fn a_refresh_whose_hook_fails_keeps_the_refresh_token_current() {
    let mut r = Receiver::start().await;
    let (port, secret) = (r.port(), r.secret().to_owned());
    r.respond("/claims", json!([]), Some(json!({ "body": hook_claims(json!({})) }))).await;
    let mut vars = hook_vars(&r, "CUSTOM_ACCESS_TOKEN", "/claims");
    vars.push(("REFRESH_TOKEN_REUSE_INTERVAL".into(), "1".into()));
    let app = TestApp::with(&refs(&vars)).await;
    app.register("refresh-hook@example.com", PASSWORD).await;
    let login = app.login("refresh-hook@example.com", PASSWORD).await;
    r.stop();
    let refresh = || app.post("/v1/auth/refresh", None, json!({ "refresh_token": login.refresh }));
    assert_error(refresh().await, StatusCode::UNPROCESSABLE_ENTITY, "hook_timeout_after_retry").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = Receiver::start_on(port, &[secret]).await;
    r.respond("/claims", json!([]), Some(json!({ "body": hook_claims(json!({})) }))).await;
    let (status, body) = json_of(refresh().await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["plan"], "pro");
    // Supabase's grant too.
    let (status, s) = sb(
        &app,
        Method::POST,
        "/auth/v1/token?grant_type=refresh_token",
        None,
        Some(json!({ "refresh_token": body["refresh_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
}

/// More events waiting than the sender reads at once (256): all are delivered once the
/// receiver is back, each user's in order.
#[tokio::test]
async fn a_backlog_larger_than_one_scan_is_delivered_in_order_per_user() {
    let mut r = Receiver::start().await;
    let (port, secret) = (r.port(), r.secret().to_owned());
    let url = r.url("/events");
    let signing = format!("v1,{secret}");
    r.stop();
    let app = TestApp::with(&[
        ("WEBHOOK_URLS", url.as_str()),
        ("WEBHOOK_SECRET", signing.as_str()),
        ("WEBHOOK_EVENTS", "user.created,session.created"),
        ("MAIL_RETRY_MAX_DELAY", "1s"),
    ])
    .await;
    let mut users = Vec::new();
    for i in 0..150 {
        let email = format!("backlog-{i}@example.com");
        users.push(app.register(&email, PASSWORD).await["id"].as_str().unwrap().to_owned());
        app.login(&email, PASSWORD).await;
    }
    let (waiting, _) = app.core.webhook_counts().await.unwrap();
    assert!(waiting > 256, "a backlog beyond one scan: {waiting}");
    let r = Receiver::start_on(port, &[secret]).await;
    let calls = r.wait_calls("/events", 300, Duration::from_secs(60)).await;
    all_verified(&calls);
    for uid in &users {
        let order = events_of(&calls, uid);
        let created = order.iter().position(|e| e == "user.created").unwrap_or_else(|| panic!("{uid}: {order:?}"));
        let session = order.iter().position(|e| e == "session.created").unwrap_or_else(|| panic!("{uid}: {order:?}"));
        assert!(created < session, "{uid}: {order:?}");
    }
}
