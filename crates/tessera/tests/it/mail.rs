//! Email (SPEC §5.3, issue 3) over real SMTP: verification by link and by code,
//! resends, email change, recovery, the link pages, a dead SMTP server, restarts with
//! mail pending, and concurrent uses of one token or code.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::*;

async fn mail_app(smtp: &SmtpServer, extra: &[(&'static str, &str)]) -> TestApp {
    let mut settings = smtp.settings();
    for (k, v) in extra {
        settings.push((*k, (*v).to_owned()));
    }
    TestApp::with(&pairs(&settings)).await
}

async fn verify(app: &TestApp, body: Value) -> (StatusCode, Value) {
    json_of(app.post("/v1/auth/verify-email", None, body).await).await
}

#[tokio::test]
async fn signup_mails_a_link_and_a_code_built_from_public_url() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("PUBLIC_URL", "https://auth.example.com"), ("PRODUCT_NAME", "Acme")]).await;

    // A forged Host header must not reach the link.
    let res = app
        .client
        .post(app.url("/v1/users"))
        .header("host", "evil.test")
        .header("x-forwarded-host", "evil.test")
        .json(&json!({ "email": "new@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let mail = &smtp.wait_for("new@example.com", 1).await[0];
    assert_eq!(mail.subject(), "Confirm your email address for Acme");
    assert!(mail.from.contains("no-reply@tessera.test"));
    assert!(mail.link().starts_with("https://auth.example.com/verify-email?token="), "{}", mail.link());
    assert!(!mail.decoded().contains("evil.test"));
    assert!(mail.token().len() >= 43);
    assert_eq!(mail.code().len(), 6);
    assert!(mail.data.contains("text/html"), "an HTML part too");
}

#[tokio::test]
async fn the_link_token_confirms_once() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("link@example.com", PASSWORD).await;
    let token = smtp.wait_for("link@example.com", 1).await[0].token();

    let (status, user) = verify(&app, json!({ "token": token })).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["is_verified"], true);

    let again = app.post("/v1/auth/verify-email", None, json!({ "token": token })).await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    let bogus = app.post("/v1/auth/verify-email", None, json!({ "token": "nope" })).await;
    assert_error(bogus, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    let empty = app.post("/v1/auth/verify-email", None, json!({})).await;
    assert_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
}

#[tokio::test]
async fn the_code_confirms_and_five_wrong_codes_kill_it() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("code@example.com", PASSWORD).await;
    app.register("code2@example.com", PASSWORD).await;
    let code = smtp.wait_for("code@example.com", 1).await[0].code();
    let code2 = smtp.wait_for("code2@example.com", 1).await[0].code();

    let (status, user) = verify(&app, json!({ "email": "CODE@example.com", "code": code.to_lowercase() })).await;
    assert_eq!(status, StatusCode::OK, "codes are case-insensitive: {user}");
    assert_eq!(user["is_verified"], true);

    let wrong = if code2 == "222222" { "333333" } else { "222222" };
    for _ in 0..5 {
        let (status, _) = verify(&app, json!({ "email": "code2@example.com", "code": wrong })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, _) = verify(&app, json!({ "email": "code2@example.com", "code": code2 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the code is dead after five misses");
    // The link still works.
    let token = smtp.mails_to("code2@example.com")[0].token();
    assert_eq!(verify(&app, json!({ "token": token })).await.0, StatusCode::OK);
}

#[tokio::test]
async fn sixteen_concurrent_uses_of_one_token_or_code_succeed_once() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("race-link@example.com", PASSWORD).await;
    app.register("race-code@example.com", PASSWORD).await;
    let token = smtp.wait_for("race-link@example.com", 1).await[0].token();
    let code = smtp.wait_for("race-code@example.com", 1).await[0].code();

    let by_link = join_all((0..16).map(|_| verify(&app, json!({ "token": token })))).await;
    let by_code =
        join_all((0..16).map(|_| verify(&app, json!({ "email": "race-code@example.com", "code": code })))).await;

    for results in [by_link, by_code] {
        let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        let rejected = results.iter().filter(|(s, _)| *s == StatusCode::BAD_REQUEST).count();
        assert_eq!((ok, rejected), (1, 15), "{results:?}");
    }
}

#[tokio::test]
async fn resend_always_answers_202_and_replaces_the_old_link() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("RATE_LIMIT_ENABLED", "true")]).await;
    app.register("again@example.com", PASSWORD).await;
    let first = smtp.wait_for("again@example.com", 1).await[0].token();

    for email in ["again@example.com", "nobody@example.com", "not an email"] {
        let res = app.post("/v1/auth/verify-email/resend", None, json!({ "email": email })).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED, "{email}");
    }
    let resent = smtp.latest("again@example.com", "new").await;
    assert_eq!(resent.subject(), "Your new tessera verification code");
    assert_ne!(resent.token(), first);
    assert_eq!(verify(&app, json!({ "token": first })).await.0, StatusCode::BAD_REQUEST, "the old link is retired");
    assert!(smtp.mails_to("nobody@example.com").is_empty());

    // At most three sends an hour per address: the answer does not change.
    for _ in 0..4 {
        let res = app.post("/v1/auth/verify-email/resend", None, json!({ "email": "again@example.com" })).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(smtp.mails_to("again@example.com").len(), 1 + 3, "sign-up + three resends");

    assert_eq!(verify(&app, json!({ "token": resent.token() })).await.0, StatusCode::BAD_REQUEST, "replaced again");
    let newest = smtp.mails_to("again@example.com").pop().unwrap();
    assert_eq!(verify(&app, json!({ "token": newest.token() })).await.0, StatusCode::OK);
    let res = app.post("/v1/auth/verify-email/resend", None, json!({ "email": "again@example.com" })).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED, "a verified address answers alike");
}

#[tokio::test]
async fn unverified_accounts_cannot_sign_in_when_verification_is_required() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    app.register("strict@example.com", PASSWORD).await;

    let res = app.post("/v1/auth/login", None, json!({ "email": "strict@example.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::FORBIDDEN, "email_not_verified").await;

    let token = smtp.wait_for("strict@example.com", 1).await[0].token();
    assert_eq!(verify(&app, json!({ "token": token })).await.0, StatusCode::OK);
    app.login("strict@example.com", PASSWORD).await;
}

#[tokio::test]
async fn email_change_stays_pending_until_confirmed_and_notifies_the_old_address() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("SECURE_EMAIL_CHANGE", "false")]).await;
    app.register("old@example.com", PASSWORD).await;
    let login = app.login("old@example.com", PASSWORD).await;

    let res = app
        .send(reqwest::Method::PATCH, "/v1/users/me", Some(&login.access), Some(json!({ "email": "New@Example.com" })))
        .await;
    let (status, user) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "old@example.com", "the address in use does not change yet");

    let change = smtp.latest("new@example.com", "Confirm your new email").await;
    let notice = smtp.latest("old@example.com", "is changing").await;
    assert!(notice.decoded().contains("new@example.com"));
    app.login("old@example.com", PASSWORD).await;

    let (status, user) = verify(&app, json!({ "token": change.token() })).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "new@example.com");
    assert_eq!(user["is_verified"], true);
    app.login("new@example.com", PASSWORD).await;
    let res = app.post("/v1/auth/login", None, json!({ "email": "old@example.com", "password": PASSWORD })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn email_change_by_code_and_conflicts() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("SECURE_EMAIL_CHANGE", "false")]).await;
    app.register("first@example.com", PASSWORD).await;
    app.register("taken@example.com", PASSWORD).await;
    let login = app.login("first@example.com", PASSWORD).await;
    let patch = |email: &str| {
        app.send(reqwest::Method::PATCH, "/v1/users/me", Some(&login.access), Some(json!({ "email": email })))
    };

    assert_error(patch("taken@example.com").await, StatusCode::CONFLICT, "email_already_exists").await;

    assert_eq!(patch("later@example.com").await.status(), StatusCode::OK);
    let code = smtp.latest("later@example.com", "Confirm your new email").await.code();
    // Someone takes the address before it is confirmed: 409 at confirmation too.
    app.register("later@example.com", PASSWORD).await;
    let res = app.post("/v1/auth/verify-email", None, json!({ "email": "later@example.com", "code": code })).await;
    let (status, _) = json_of(res).await;
    assert!(status == StatusCode::CONFLICT || status == StatusCode::BAD_REQUEST, "{status}");

    assert_eq!(patch("final@example.com").await.status(), StatusCode::OK);
    let code = smtp.latest("final@example.com", "Confirm your new email").await.code();
    let (status, user) = verify(&app, json!({ "email": "final@example.com", "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "final@example.com");
}

#[tokio::test]
async fn confirming_a_change_to_an_address_taken_since_is_409() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("SECURE_EMAIL_CHANGE", "false")]).await;
    app.register("mover@example.com", PASSWORD).await;
    let login = app.login("mover@example.com", PASSWORD).await;
    let res = app
        .send(
            reqwest::Method::PATCH,
            "/v1/users/me",
            Some(&login.access),
            Some(json!({ "email": "contested@example.com" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let token = smtp.latest("contested@example.com", "Confirm your new email").await.token();
    app.register("contested@example.com", PASSWORD).await;

    let res = app.post("/v1/auth/verify-email", None, json!({ "token": token })).await;

    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["email"], "mover@example.com");
}

#[tokio::test]
async fn recovery_end_to_end() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("forgot@example.com", PASSWORD).await;
    let old = app.login("forgot@example.com", PASSWORD).await;

    for email in ["forgot@example.com", "ghost@example.com"] {
        let res = app.post("/v1/auth/password-reset", None, json!({ "email": email })).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    let mail = smtp.latest("forgot@example.com", "Reset your").await;
    assert!(mail.link().contains("/reset-password?token="), "{}", mail.link());
    assert!(smtp.mails_to("ghost@example.com").is_empty());

    let weak = app
        .post("/v1/auth/password-reset/confirm", None, json!({ "token": mail.token(), "new_password": "weak" }))
        .await;
    assert_error(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    let new_password = "Brand-New!Passw0rd";
    let res = app
        .post("/v1/auth/password-reset/confirm", None, json!({ "token": mail.token(), "new_password": new_password }))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.get("/v1/auth/me", Some(&old.access)).await.status(), StatusCode::UNAUTHORIZED, "sessions revoked");
    let res = app.post("/v1/auth/refresh", None, json!({ "refresh_token": old.refresh })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    app.login("forgot@example.com", new_password).await;
    let reuse = app
        .post(
            "/v1/auth/password-reset/confirm",
            None,
            json!({ "token": mail.token(), "new_password": "An0ther!Passw0rd" }),
        )
        .await;
    assert_error(reuse, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    smtp.latest("forgot@example.com", "password was changed").await;
    assert!(app.dump("audit_log").await.contains("password.reset"));
}

#[tokio::test]
async fn a_newer_reset_link_or_a_password_change_retires_older_links() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("twice@example.com", PASSWORD).await;
    let reset = || app.post("/v1/auth/password-reset", None, json!({ "email": "twice@example.com" }));

    reset().await;
    let first = smtp.latest("twice@example.com", "Reset your").await.token();
    reset().await;
    smtp.wait_for("twice@example.com", 3).await;
    let second = smtp.latest("twice@example.com", "Reset your").await.token();
    assert_ne!(first, second);
    let confirm = |t: String| {
        app.post("/v1/auth/password-reset/confirm", None, json!({ "token": t, "new_password": "Brand-New!Passw0rd" }))
    };
    assert_eq!(confirm(first).await.status(), StatusCode::BAD_REQUEST, "the newer link retired the older");

    // A password change retires the outstanding link too.
    let login = app.login("twice@example.com", PASSWORD).await;
    let res = app
        .post(
            "/v1/auth/change-password",
            Some(&login.access),
            json!({ "current_password": PASSWORD, "new_password": "Changed!Passw0rd" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(confirm(second).await.status(), StatusCode::BAD_REQUEST);
    smtp.latest("twice@example.com", "password was changed").await;
}

#[tokio::test]
async fn sixteen_concurrent_reset_confirmations_succeed_once() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("racer@example.com", PASSWORD).await;
    app.post("/v1/auth/password-reset", None, json!({ "email": "racer@example.com" })).await;
    let token = smtp.latest("racer@example.com", "Reset your").await.token();

    let results = join_all((0..16).map(|i| {
        let body = json!({ "token": token, "new_password": format!("Quick-{i}!Sunflower9") });
        let app = &app;
        async move { app.post("/v1/auth/password-reset/confirm", None, body).await.status() }
    }))
    .await;

    assert_eq!(results.iter().filter(|s| **s == StatusCode::NO_CONTENT).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count(), 15, "{results:?}");
}

#[tokio::test]
async fn a_dead_smtp_server_never_fails_a_request_and_mail_goes_out_when_it_returns() {
    let mut smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    smtp.stop().await;

    let started = std::time::Instant::now();
    app.register("patient@example.com", PASSWORD).await;
    let res = app.post("/v1/auth/password-reset", None, json!({ "email": "patient@example.com" })).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "requests do not wait for SMTP");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(smtp.mails().is_empty());

    smtp.restart().await;
    let mails = smtp.wait_for("patient@example.com", 2).await;
    assert_eq!(mails.len(), 2, "each message once");
}

#[tokio::test]
async fn pending_mail_survives_a_restart() {
    let mut smtp = SmtpServer::start().await;
    let settings = smtp.settings();
    let app = TestApp::with(&pairs(&settings)).await;
    smtp.stop().await;
    app.register("durable@example.com", PASSWORD).await;
    let db = app.db_url.clone();
    let _dir = app.shutdown().await;

    smtp.restart().await;
    let again = TestApp::with_database(&db, &pairs(&settings)).await;

    let mail = &smtp.wait_for("durable@example.com", 1).await[0];
    assert_eq!(verify(&again, json!({ "token": mail.token() })).await.0, StatusCode::OK);
}

#[tokio::test]
async fn two_nodes_send_each_message_exactly_once() {
    let smtp = SmtpServer::start().await;
    let settings = smtp.settings();
    let a = TestApp::with(&pairs(&settings)).await;
    let b = a.another_node(&pairs(&settings)).await;

    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.register(&format!("once{i}@example.com"), PASSWORD).await;
    }
    for i in 0..10 {
        smtp.wait_for(&format!("once{i}@example.com"), 1).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    assert_eq!(smtp.mails().len(), 10, "no message sent twice");
    let outbox = a.dump("mail_outbox").await;
    assert!(!outbox.contains("token="), "bodies are wiped once sent");
}

#[tokio::test]
async fn file_transport_writes_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("outbox");
    let app = TestApp::with(&[("MAIL_TRANSPORT", "file"), ("MAIL_DIR", mail_dir.to_str().unwrap())]).await;
    app.register("file@example.com", PASSWORD).await;

    let mut found = None;
    for _ in 0..100 {
        if let Some(entry) = std::fs::read_dir(&mail_dir).unwrap().flatten().next() {
            found = Some(entry.path());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let path = found.expect("an .eml file");
    assert_eq!(path.extension().unwrap(), "eml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("file@example.com") && text.contains("verify-email"));
}

#[tokio::test]
async fn templates_are_overridable_from_a_directory() {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("verify_email.subject"), "Welcome aboard {{product}}").unwrap();
    std::fs::write(dir.path().join("verify_email.txt"), "Hi {{email}}\n\n{{link}}\n\n{{code}}\n").unwrap();
    let app = mail_app(&smtp, &[("MAIL_TEMPLATES_DIR", dir.path().to_str().unwrap()), ("PRODUCT_NAME", "Acme")]).await;
    app.register("custom@example.com", PASSWORD).await;

    let mail = &smtp.wait_for("custom@example.com", 1).await[0];

    assert_eq!(mail.subject(), "Welcome aboard Acme");
    assert!(mail.decoded().contains("Hi custom@example.com"));
    assert_eq!(verify(&app, json!({ "token": mail.token() })).await.0, StatusCode::OK);
}

#[tokio::test]
async fn link_overrides_point_at_the_apps_own_pages() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(
        &smtp,
        &[("VERIFY_EMAIL_URL", "https://app.test/confirm?from=mail"), ("RESET_PASSWORD_URL", "https://app.test/reset")],
    )
    .await;
    app.register("links@example.com", PASSWORD).await;
    app.post("/v1/auth/password-reset", None, json!({ "email": "links@example.com" })).await;

    let verify_mail = smtp.latest("links@example.com", "Confirm").await;
    let reset_mail = smtp.latest("links@example.com", "Reset").await;

    assert!(verify_mail.link().starts_with("https://app.test/confirm?from=mail&token="), "{}", verify_mail.link());
    assert!(reset_mail.link().starts_with("https://app.test/reset?token="), "{}", reset_mail.link());
}

#[tokio::test]
async fn verify_page_confirms_only_on_post() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("page@example.com", PASSWORD).await;
    let token = smtp.wait_for("page@example.com", 1).await[0].token();

    // A scanner following the link burns nothing.
    let page = app.get(&format!("/verify-email?token={token}"), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/verify-email\">") && html.contains(&token));
    assert!(!html.contains("<script"));
    let (_, me) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": "page@example.com", "password": PASSWORD })).await)
            .await;
    assert_eq!(me["user"]["is_verified"], false);

    let res = app.client.post(app.url("/verify-email")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Email confirmed"));
    let res = app.client.post(app.url("/verify-email")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("no longer works"));
    assert_eq!(app.get("/verify-email", None).await.status(), StatusCode::BAD_REQUEST);
    let css = app.get("/assets/tessera.css", None).await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn reset_page_shows_the_policy_and_sets_the_password() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("pagereset@example.com", PASSWORD).await;
    app.post("/v1/auth/password-reset", None, json!({ "email": "pagereset@example.com" })).await;
    let token = smtp.latest("pagereset@example.com", "Reset").await.token();
    let submit = |a: &str, b: &str| {
        app.client
            .post(app.url("/reset-password"))
            .form(&[("token", token.as_str()), ("new_password", a), ("confirm_password", b)])
            .send()
    };

    let form = app.get(&format!("/reset-password?token={token}"), None).await.text().await.unwrap();
    assert!(form.contains("type=\"password\"") && form.contains(&token));

    let res = submit("abc", "abc").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("at least 8 characters") && html.contains("upper-case"), "{html}");
    let res = submit("Brand-New!Passw0rd", "Different!Passw0rd").await.unwrap();
    assert!(res.text().await.unwrap().contains("differ"));

    let res = submit("Brand-New!Passw0rd", "Brand-New!Passw0rd").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Password changed"));
    app.login("pagereset@example.com", "Brand-New!Passw0rd").await;
}

#[tokio::test]
async fn recovery_is_limited_per_address_across_surfaces_without_telling() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("RATE_LIMIT_ENABLED", "true"), ("RATE_LIMIT_RECOVER", "3/1h")]).await;
    app.register("limited@example.com", PASSWORD).await;

    for i in 0..5 {
        let res = if i % 2 == 0 {
            app.post("/v1/auth/password-reset", None, json!({ "email": "Limited@Example.com" })).await
        } else {
            app.post("/auth/recover", None, json!({ "email": "limited@example.com" })).await
        };
        assert!(res.status().is_success(), "the answer never changes: {}", res.status());
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;

    let resets = smtp.mails_to("limited@example.com").into_iter().filter(|m| m.subject().contains("Reset")).count();
    assert_eq!(resets, 3, "three recovery mails an hour per address");
}

// ---------------------------------------------------------------------------------
// Email change after the security review (issue 15, hole 1): a change link is no login,
// it dies with every revocation, and by default both addresses confirm.
// ---------------------------------------------------------------------------------

/// Starts an email change to `to` with the bearer token `access`.
async fn change_email(app: &TestApp, access: &str, to: &str) {
    let res = app.send(reqwest::Method::PATCH, "/v1/users/me", Some(access), Some(json!({ "email": to }))).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// With a stolen bearer token, an attacker starts a change to an address of theirs; the
/// victim then resets the password, changes it, signs out everywhere, or an admin signs
/// them out. The attacker's link confirms nothing afterwards, on either surface.
#[tokio::test]
async fn an_email_change_link_dies_with_every_revocation() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(
        &smtp,
        &[
            ("SECURE_EMAIL_CHANGE", "false"),
            ("FIRST_ADMIN_EMAIL", "root@example.com"),
            ("FIRST_ADMIN_PASSWORD", PASSWORD),
        ],
    )
    .await;
    let admin = app.login("root@example.com", PASSWORD).await.access;
    for (i, revocation) in ["password-reset", "change-password", "logout-all", "admin-logout"].into_iter().enumerate() {
        let victim = format!("victim{i}@example.com");
        let attacker = format!("att{i}@evil.example");
        app.register(&victim, PASSWORD).await;
        let stolen = app.login(&victim, PASSWORD).await;
        change_email(&app, &stolen.access, &attacker).await;
        let link = smtp.latest(&attacker, "Confirm your new email").await.token();

        let victims = app.login(&victim, PASSWORD).await;
        let new_password = "An0ther!Passphrase-x";
        match revocation {
            "password-reset" => {
                app.post("/v1/auth/password-reset", None, json!({ "email": victim })).await;
                let reset = smtp.latest(&victim, "Reset your").await.token();
                let body = json!({ "token": reset, "new_password": new_password });
                let res = app.post("/v1/auth/password-reset/confirm", None, body).await;
                assert_eq!(res.status(), StatusCode::NO_CONTENT);
            }
            "change-password" => {
                let body = json!({ "current_password": PASSWORD, "new_password": new_password });
                let res = app.post("/v1/auth/change-password", Some(&victims.access), body).await;
                assert_eq!(res.status(), StatusCode::NO_CONTENT);
            }
            "logout-all" => {
                let res = app.post("/v1/auth/logout-all", Some(&victims.access), json!({})).await;
                assert_eq!(res.status(), StatusCode::NO_CONTENT);
            }
            _ => {
                let (_, me) = json_of(app.get("/v1/auth/me", Some(&victims.access)).await).await;
                let path = format!("/v1/admin/users/{}/logout", me["id"].as_str().unwrap());
                assert_eq!(app.post(&path, Some(&admin), json!({})).await.status(), StatusCode::NO_CONTENT);
            }
        }

        let kreeda = app.post("/auth/verify", None, json!({ "type": "email_change", "token": link })).await;
        assert_error(kreeda, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
        let (status, _) = verify(&app, json!({ "token": link })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{revocation}: the change link still confirms");
        let row = app.dump("users").await;
        assert!(!row.contains(&format!("\"{attacker}\"")), "{revocation}: the account moved to {attacker}");
    }
}

/// A confirmation of an email change changes the address and signs no one in; a change
/// token presented as a sign-up verification is refused.
#[tokio::test]
async fn an_email_change_confirmation_signs_no_one_in() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("SECURE_EMAIL_CHANGE", "false")]).await;
    app.register("mover@example.com", PASSWORD).await;
    let login = app.login("mover@example.com", PASSWORD).await;
    change_email(&app, &login.access, "moved@example.com").await;
    let token = smtp.latest("moved@example.com", "Confirm your new email").await.token();

    let as_signup = app.post("/auth/verify", None, json!({ "type": "signup", "token": token })).await;
    assert_error(as_signup, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    let (status, body) =
        json_of(app.post("/auth/verify", None, json!({ "type": "email_change", "token": token })).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], "moved@example.com");
    assert!(body["session"].is_null(), "{body}");
}

/// By default (SECURE_EMAIL_CHANGE) both addresses confirm, by link or code, in either
/// order; the first confirmation says which one is still needed.
#[tokio::test]
async fn a_secure_email_change_waits_for_both_addresses() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    for (i, new_first) in [true, false].into_iter().enumerate() {
        let (old, new) = (format!("both{i}@example.com"), format!("both{i}-new@example.com"));
        app.register(&old, PASSWORD).await;
        let login = app.login(&old, PASSWORD).await;
        change_email(&app, &login.access, &new).await;
        let to_new = smtp.latest(&new, "Confirm your new email").await;
        let to_old = smtp.latest(&old, "Confirm the change of your").await;
        assert!(to_old.decoded().contains(&new), "the current address is told where to");

        let (first, second, waiting) = if new_first {
            (json!({ "token": to_new.token() }), json!({ "email": old, "code": to_old.code() }), "current_email")
        } else {
            (json!({ "email": old, "code": to_old.code() }), json!({ "token": to_new.token() }), "new_email")
        };
        let (status, user) = verify(&app, first.clone()).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["email"], old, "one confirmation changes nothing yet");
        assert_eq!(user["pending_confirmation"], waiting);
        assert!(user["detail"].is_string());
        assert_eq!(verify(&app, first).await.0, StatusCode::BAD_REQUEST, "each confirmation works once");

        let (status, user) = verify(&app, second).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["email"], new);
        assert!(user.get("pending_confirmation").is_none(), "{user}");
        app.login(&new, PASSWORD).await;
    }
}

/// Both sides confirmed at the same moment: the address switches, once.
#[tokio::test]
async fn both_sides_of_an_email_change_confirmed_at_once_switch_it() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("race@example.com", PASSWORD).await;
    let login = app.login("race@example.com", PASSWORD).await;
    change_email(&app, &login.access, "race-new@example.com").await;
    let to_new = smtp.latest("race-new@example.com", "Confirm your new email").await.token();
    let to_old = smtp.latest("race@example.com", "Confirm the change of your").await.token();

    let ((s1, _), (s2, _)) =
        tokio::join!(verify(&app, json!({ "token": to_new })), verify(&app, json!({ "token": to_old })));

    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let (_, me) =
        json_of(app.get("/v1/auth/me", Some(&app.login("race-new@example.com", PASSWORD).await.access)).await).await;
    assert_eq!(me["email"], "race-new@example.com");
}

/// An admin who changes a user's address retires the links and codes sent to the old
/// one: the sign-up verification no longer confirms, nor signs in on Kreeda.
#[tokio::test]
async fn an_admin_email_change_retires_the_links_of_the_old_address() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("FIRST_ADMIN_EMAIL", "root@example.com"), ("FIRST_ADMIN_PASSWORD", PASSWORD)]).await;
    let admin = app.login("root@example.com", PASSWORD).await.access;
    let user = app.register("signup@example.com", PASSWORD).await;
    let mail = smtp.latest("signup@example.com", "Confirm your email").await;
    let path = format!("/v1/admin/users/{}", user["id"].as_str().unwrap());
    let res = app.send(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "email": "set@example.com" }))).await;
    assert_eq!(res.status(), StatusCode::OK);

    let kreeda = app.post("/auth/verify", None, json!({ "type": "signup", "token": mail.token() })).await;
    assert_error(kreeda, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    assert_eq!(verify(&app, json!({ "token": mail.token() })).await.0, StatusCode::BAD_REQUEST);
    let code = json!({ "email": "signup@example.com", "code": mail.code() });
    assert_eq!(verify(&app, code).await.0, StatusCode::BAD_REQUEST);
}

/// Wrong codes are counted before the comparison, in one conditional update: however
/// many guesses arrive at once, five are compared at most, and the code is dead after.
#[tokio::test]
async fn concurrent_wrong_codes_are_counted_before_they_are_compared() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("guess@example.com", PASSWORD).await;
    let code = smtp.latest("guess@example.com", "Confirm your email").await.code();
    let wrong: Vec<String> = ["22222", "33333", "44444", "55555", "66666", "77777", "88888", "99999"]
        .iter()
        .flat_map(|p| ["A", "B", "C"].map(|s| format!("{p}{s}")))
        .filter(|c| *c != code)
        .collect();

    let guesses =
        join_all(wrong.iter().map(|c| verify(&app, json!({ "email": "guess@example.com", "code": c })))).await;

    assert!(guesses.iter().all(|(s, _)| *s == StatusCode::BAD_REQUEST));
    let dump = app.dump("one_time_tokens").await;
    assert!(dump.contains("\"code_attempts\":5"), "more than five guesses were compared: {dump}");
    let (status, _) = verify(&app, json!({ "email": "guess@example.com", "code": code })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the code is dead after five tries");
}

/// Password reset and verification resend answer in the same time whether the address
/// has an account or not (issue 15, hole 6), and the mail for a real one still goes out.
#[tokio::test]
async fn reset_and_resend_take_the_same_time_for_unknown_addresses() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[]).await;
    app.register("timed@example.com", PASSWORD).await;
    for path in ["/v1/auth/password-reset", "/v1/auth/verify-email/resend"] {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..60 {
            // Interleaved, so that drift of the machine hits both alike.
            for (email, times) in
                [("timed@example.com".to_owned(), &mut known), (format!("ghost{i}@example.com"), &mut unknown)]
            {
                let started = std::time::Instant::now();
                let res = app.post(path, None, json!({ "email": email })).await;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(res.status(), StatusCode::ACCEPTED);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (k, u) = (median(&mut known), median(&mut unknown));
        assert!((k - u).abs() < 1.0 || (k - u).abs() < 0.3 * k.max(u), "{path}: known {k:.3} ms, unknown {u:.3} ms");
    }
    assert!(smtp.latest("timed@example.com", "Reset your").await.link().contains("/reset-password?token="));
    smtp.latest("timed@example.com", "verification code").await;
    assert!(smtp.mails_to("ghost0@example.com").is_empty());
}

/// The lease on the mail being sent, read from the outbox.
async fn mail_lease(app: &TestApp, to: &str) -> Option<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> {
    use tessera_core::entity::mail_outbox;
    use tessera_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let row = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::ToAddr.eq(to))
        .filter(mail_outbox::Column::SentAt.is_null())
        .one(app.db())
        .await
        .unwrap()?;
    Some((row.id, row.locked_until?))
}

/// Mail is delivered at least once, with one Message-ID across every attempt (issue 20,
/// item 6). A message being sent is leased for 15 s and the lease is renewed while the
/// SMTP server takes its time; a server that accepts a message after the sender gave up
/// on it gets it twice, under the same Message-ID, so the receiving side can drop the
/// duplicate.
#[tokio::test]
async fn the_lease_is_15_s_renewed_while_sending_and_a_retry_keeps_the_message_id() {
    let smtp = SmtpServer::start().await;
    smtp.stall(true);
    let app = mail_app(&smtp, &[]).await;
    let to = "slow@example.com";
    app.register(to, PASSWORD).await;

    let mut lease = None;
    for _ in 0..100 {
        lease = mail_lease(&app, to).await;
        if lease.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (id, first) = lease.expect("the sender claims the message");
    let held_for = first - chrono::Utc::now();
    assert!(
        held_for > chrono::Duration::seconds(13) && held_for <= chrono::Duration::seconds(15),
        "a 15 s lease: {held_for}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (_, renewed) = mail_lease(&app, to).await.expect("still being sent");
    assert!(renewed > first + chrono::Duration::seconds(4), "renewed while sending: {first} → {renewed}");

    // The sender gives up after its 10 s SMTP timeout and tries again; the server then
    // accepts both attempts.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    smtp.stall(false);
    let mails = smtp.wait_for(to, 2).await;
    let message_id = |m: &Mail| {
        m.data.lines().find_map(|l| l.strip_prefix("Message-ID: ")).map(|v| v.trim().to_owned()).unwrap_or_default()
    };
    assert_eq!(message_id(&mails[0]), format!("<{id}@tessera>"));
    assert_eq!(message_id(&mails[1]), message_id(&mails[0]), "one Message-ID across attempts");
}

/// One rule decides whether a new account signs in at once, on every surface: when its
/// address lets it sign in (confirmed at sign-up by `EMAIL_AUTOCONFIRM`, or confirmation
/// not required). Kreeda's and Supabase's sign-ups then answer a session, and the native
/// sign-up's account signs in; otherwise none of the three does.
#[tokio::test]
async fn the_sign_up_rule_is_one_on_every_surface() {
    let smtp = SmtpServer::start().await;
    for (autoconfirm, required) in [("true", "true"), ("false", "true"), ("false", "false"), ("true", "false")] {
        let app =
            mail_app(&smtp, &[("EMAIL_AUTOCONFIRM", autoconfirm), ("REQUIRE_EMAIL_VERIFICATION", required)]).await;
        let at_once = autoconfirm == "true" || required == "false";
        let case = format!("EMAIL_AUTOCONFIRM={autoconfirm} REQUIRE_EMAIL_VERIFICATION={required}");
        let email = |surface: &str| format!("{surface}-{autoconfirm}-{required}@example.com");

        app.register(&email("native"), PASSWORD).await;
        let res = app.post("/v1/auth/login", None, json!({ "email": email("native"), "password": PASSWORD })).await;
        if at_once {
            assert_eq!(res.status(), StatusCode::OK, "{case}: native sign-in");
        } else {
            assert_error(res, StatusCode::FORBIDDEN, "email_not_verified").await;
        }

        let res = app.post("/auth/register", None, json!({ "email": email("kreeda"), "password": PASSWORD })).await;
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::CREATED, "{case}: {body}");
        assert_eq!(body["session"]["access_token"].is_string(), at_once, "{case}: Kreeda sign-up {body}");

        let res = app.post("/auth/v1/signup", None, json!({ "email": email("supabase"), "password": PASSWORD })).await;
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        assert_eq!(body["access_token"].is_string(), at_once, "{case}: Supabase sign-up {body}");
        app.stop().await;
    }
}

#[tokio::test]
async fn with_email_autoconfirm_sign_ups_are_confirmed_on_every_surface_and_no_mail_is_sent() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp, &[("EMAIL_AUTOCONFIRM", "true"), ("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let user = app.register("auto@example.com", PASSWORD).await;
    assert_eq!(user["is_verified"], true, "{user}");
    app.login("auto@example.com", PASSWORD).await;
    let res =
        app.post("/auth/register", None, json!({ "email": "kreeda-auto@example.com", "password": PASSWORD })).await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["user"]["email_confirmed_at"].is_string(), "{body}");
    // A reset mail still goes out (and is the only mail): nothing was queued at sign-up.
    let res = app.post("/v1/auth/password-reset", None, json!({ "email": "auto@example.com" })).await;
    assert!(res.status().is_success());
    smtp.latest("auto@example.com", "Reset your").await;
    assert_eq!(smtp.mails().len(), 1, "{:?}", smtp.mails().iter().map(|m| m.subject()).collect::<Vec<_>>());
}
