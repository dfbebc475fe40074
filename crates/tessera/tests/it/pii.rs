//! PII encryption at rest (SPEC §5.8, issue 17): with `PII_ENCRYPTION_KEY`, no address or
//! phone number is stored in plaintext anywhere, and everything that finds or shows one
//! still works; `tessera pii encrypt` encrypts a database filled without the key, online;
//! `tessera pii rotate` moves everything to a new key (resuming after a kill), after
//! which the old key can be dropped; a missing or wrong key stops the server at start-up.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_core::entity::{mail_outbox, user};
use tessera_core::settings::Settings;
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};

use crate::harness::*;

/// Two keys (base64 of 32 bytes). `K1` bare is named by its fingerprint.
const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const ADMIN_EMAIL: &str = "Root.Admin@Example.com";

/// Every table, as text, lower-cased (what a stolen backup would show).
async fn dump_all(app: &TestApp) -> String {
    let jobs = app.dump("job_runs").await + &app.dump("pii_keys").await;
    dump_personal_tables(app).await + &jobs.to_lowercase()
}

/// Why a server on `db_url` with `extra` settings does not start (panics if it does).
async fn start_error(db_url: &str, extra: &[(&str, &str)]) -> String {
    let settings = Settings::from_vars(&test_vars(db_url, extra)).expect("settings");
    match tessera::Server::start(settings).await {
        Ok(server) => {
            server.stop().await.unwrap();
            panic!("the server started with {extra:?}");
        }
        Err(e) => e,
    }
}

/// How many user rows hold an email encrypted under key `kid`, and how many in plaintext.
async fn users_under(app: &TestApp, kid: &str) -> (u64, u64) {
    let under = user::Entity::find()
        .filter(user::Column::Email.starts_with(format!("pii1:{kid}:")))
        .count(app.db())
        .await
        .unwrap();
    let plain = user::Entity::find().filter(user::Column::Email.not_like("pii1:%")).count(app.db()).await.unwrap();
    (under, plain)
}

/// Admin user search.
async fn search(app: &TestApp, admin: &str, q: &str) -> Vec<String> {
    let (status, body) = json_of(app.get(&format!("/v1/admin/users?q={q}&limit=100"), Some(admin)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect()
}

/// Fills a database with every kind of row that names a person: an account with a phone,
/// a pending email change (its token and mails), a failed sign-in for an unknown address
/// (its audit detail), a lockout, an admin's change of someone's address, a reset request.
/// Returns the traces that must never be stored in plaintext.
async fn fill(app: &TestApp, smtp: &SmtpServer, admin: &str) -> Vec<&'static str> {
    let res = app
        .post(
            "/v1/users",
            None,
            json!({ "email": "Mixed.Case@Example.com", "password": PASSWORD, "full_name": "Zed Quill", "phone": "+14155550199" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let login = app.login("MIXED.case@example.com", PASSWORD).await;
    let patch = json!({ "email": "Pending.Move@Example.com" });
    let res = app.send(Method::PATCH, "/v1/users/me", Some(&login.access), Some(patch)).await;
    assert_eq!(res.status(), StatusCode::OK);
    smtp.latest("pending.move@example.com", "Confirm your new email").await;
    let res = app.post("/v1/auth/login", None, json!({ "email": "Ghost.Person@Example.com", "password": "x" })).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.post("/v1/auth/password-reset", None, json!({ "email": "Mixed.Case@Example.com" })).await;
    assert!(res.status().is_success(), "{}", res.status());
    let res = app.post("/v1/auth/password-reset", None, json!({ "email": "Nobody.Here@Example.com" })).await;
    assert!(res.status().is_success());
    smtp.latest("mixed.case@example.com", "Reset your").await;
    let other = app.register("Other.Person@Example.com", PASSWORD).await;
    let path = format!("/v1/admin/users/{}", other["id"].as_str().unwrap());
    let res = app.send(Method::PATCH, &path, Some(admin), Some(json!({ "email": "Renamed.Person@Example.com" }))).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    vec![
        "mixed.case@example.com",
        "pending.move@example.com",
        "ghost.person@example.com",
        "nobody.here@example.com",
        "other.person@example.com",
        "renamed.person@example.com",
        "4155550199",
    ]
}

fn pii_key(ring: &str) -> [(&'static str, String); 1] {
    [("PII_ENCRYPTION_KEY", ring.to_owned())]
}

/// The settings of a server with mail, a first admin and `ring` (none: no key).
fn settings(smtp: &SmtpServer, ring: Option<&str>) -> Vec<(&'static str, String)> {
    let mut s = smtp.settings();
    s.push(("FIRST_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()));
    s.push(("FIRST_ADMIN_PASSWORD", PASSWORD.to_owned()));
    s.push(("SECURE_EMAIL_CHANGE", "false".to_owned()));
    if let Some(ring) = ring {
        s.extend(pii_key(ring));
    }
    s
}

/// Waits until the outbox has sent everything queued.
async fn outbox_drained(app: &TestApp) {
    for _ in 0..300 {
        let row = app.dump("mail_outbox").await;
        let rows: Vec<Value> = serde_json::from_str(&row).unwrap();
        if rows.iter().all(|r| !r["sent_at"].is_null() || !r["failed_at"].is_null()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox did not drain");
}

#[tokio::test]
async fn with_the_key_nothing_personal_is_stored_in_plaintext_and_everything_still_works() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::with(&pairs(&settings(&smtp, Some(K1)))).await;
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    let traces = fill(&app, &smtp, &admin).await;

    // Sign-in with another case, a duplicate in another case refused, on both surfaces.
    let login = app.login("mixed.CASE@EXAMPLE.com", PASSWORD).await;
    let res = app.post("/v1/users", None, json!({ "email": "MIXED.CASE@example.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
    let res =
        app.post("/auth/register", None, json!({ "email": "mixed.case@EXAMPLE.COM", "password": PASSWORD })).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    // Shown in plaintext to whoever may see it.
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!((me["email"].as_str(), me["phone"].as_str()), (Some("mixed.case@example.com"), Some("+14155550199")));
    let (_, kreeda) = json_of(app.get("/auth/user", Some(&login.access)).await).await;
    assert_eq!(kreeda["new_email"], "pending.move@example.com", "{kreeda}");
    let export = app.get("/v1/users/me/export", Some(&login.access)).await.text().await.unwrap();
    assert!(export.contains("mixed.case@example.com") && export.contains("+14155550199"), "{export}");
    // Admin search: an exact address (any case) or the start of a name; not an address prefix.
    assert_eq!(search(&app, &admin, "Mixed.Case%40example.com").await, ["mixed.case@example.com"]);
    assert_eq!(search(&app, &admin, "zed").await, ["mixed.case@example.com"]);
    assert!(search(&app, &admin, "mixed").await.is_empty(), "an encrypted address has no prefix");
    assert!(search(&app, &admin, "pii1").await.is_empty(), "nor does its ciphertext");
    // The pending change still confirms (its token finds its address by the blind index).
    let code = smtp.latest("pending.move@example.com", "Confirm your new email").await.code();
    let res =
        app.post("/v1/auth/verify-email", None, json!({ "email": "Pending.Move@example.com", "code": code })).await;
    let (status, moved) = json_of(res).await;
    assert_eq!((status, moved["email"].as_str()), (StatusCode::OK, Some("pending.move@example.com")), "{moved}");
    app.login("pending.move@example.com", PASSWORD).await;

    outbox_drained(&app).await;
    let dump = dump_all(&app).await;
    for trace in traces {
        assert!(!dump.contains(trace), "{trace} is stored in plaintext");
    }
    assert!(!dump.contains("root.admin@example.com") && !dump.contains("14155550199"));
    assert!(dump.contains("pii1:"), "the values are there, encrypted");
}

#[tokio::test]
async fn pii_encrypt_encrypts_a_database_filled_without_the_key_while_a_server_with_it_serves() {
    let smtp = SmtpServer::start().await;
    let before = TestApp::with(&pairs(&settings(&smtp, None))).await;
    let admin = before.login(ADMIN_EMAIL, PASSWORD).await.access;
    let traces = fill(&before, &smtp, &admin).await;
    outbox_drained(&before).await;
    assert!(dump_all(&before).await.contains("mixed.case@example.com"));
    // A mail that failed with a long SMTP error quoting the address (PostgreSQL had
    // bounded that column below an encrypted error's length).
    let failed = mail_outbox::Model {
        id: uuid::Uuid::now_v7(),
        kind: "verify_email".to_owned(),
        to_addr: "bounced.person@example.com".to_owned(),
        subject: "Hello bounced.person@example.com".to_owned(),
        text_body: String::new(),
        html_body: String::new(),
        attempts: 8,
        next_attempt_at: chrono::Utc::now(),
        locked_until: None,
        sent_at: None,
        failed_at: Some(chrono::Utc::now()),
        last_error: Some(format!("550 <bounced.person@example.com> {}", "x".repeat(960))),
        created_at: chrono::Utc::now(),
        to_index: None,
    };
    mail_outbox::Entity::insert(failed.into_active_model()).exec_without_returning(before.db()).await.unwrap();
    let traces = [traces, vec!["bounced.person@example.com"]].concat();
    let db_url = before.db_url.clone();
    let dir = before.shutdown().await;

    // Restarted with the key, it reads the plaintext rows and refuses a duplicate of one.
    let app = TestApp::with_database(&db_url, &pairs(&settings(&smtp, Some(K1)))).await;
    let login = app.login("Mixed.CASE@example.com", PASSWORD).await;
    let res = app.post("/v1/users", None, json!({ "email": "mixed.case@EXAMPLE.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;

    // Encrypted online, beside the serving node.
    let (code, out, err) = tessera_command(&db_url, &["pii", "encrypt"], &[("PII_ENCRYPTION_KEY", K1)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rewrote 3 users") && out.contains("1 one_time_tokens"), "{out}");
    assert!(err.contains("users: 3/3 rows read"), "plain progress lines off a terminal: {err}");
    let dump = dump_all(&app).await;
    for trace in &traces {
        assert!(!dump.contains(trace), "{trace} is still stored in plaintext");
    }
    // Everything still works: the session, sign-in, the duplicate rule, admin search.
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["email"], "mixed.case@example.com");
    app.login("MIXED.case@example.com", PASSWORD).await;
    app.login("renamed.person@example.com", PASSWORD).await;
    let res = app.post("/v1/users", None, json!({ "email": "Renamed.Person@example.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    assert_eq!(search(&app, &admin, "renamed.person%40example.com").await, ["renamed.person@example.com"]);

    // Again: nothing left to do.
    let (code, out, err) = tessera_command(&db_url, &["pii", "encrypt"], &[("PII_ENCRYPTION_KEY", K1)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rewrote 0 users, 0 one_time_tokens, 0 mail_outbox, 0 audit_log"), "{out}");
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn pii_rotate_moves_everything_to_the_new_key_and_the_old_one_can_be_dropped() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::with(&pairs(&settings(&smtp, Some(K1)))).await;
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    let traces = fill(&app, &smtp, &admin).await;
    outbox_drained(&app).await;
    let old_kid = tessera_store::pii::Pii::parse(K1).unwrap().primary_kid().unwrap().to_owned();
    assert_eq!(users_under(&app, &old_kid).await, (3, 0));
    let db_url = app.db_url.clone();
    let dir = app.shutdown().await;

    // The new key first, the old one (bare: named by its fingerprint) still in the ring.
    let ring = format!("new:{K2},{K1}");
    let (code, out, err) = tessera_command(&db_url, &["pii", "rotate"], &[("PII_ENCRYPTION_KEY", &ring)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rewrote 3 users") && out.contains("1 old keys may now be dropped"), "{out}");

    // The old key dropped: everything reads and finds under the new one alone.
    let app = TestApp::with_database(&db_url, &pairs(&settings(&smtp, Some(&format!("new:{K2}"))))).await;
    assert_eq!(users_under(&app, "new").await, (3, 0));
    let login = app.login("MIXED.case@example.com", PASSWORD).await;
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!((me["email"].as_str(), me["phone"].as_str()), (Some("mixed.case@example.com"), Some("+14155550199")));
    let res = app.post("/v1/users", None, json!({ "email": "Mixed.Case@example.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
    let export = app.get("/v1/users/me/export", Some(&login.access)).await.text().await.unwrap();
    assert!(export.contains("pending.move@example.com") || export.contains("mixed.case@example.com"));
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    assert_eq!(search(&app, &admin, "ghost").await.len(), 0);
    let page: Value = app.get("/v1/admin/audit?limit=100", Some(&admin)).await.json().await.unwrap();
    assert!(page.to_string().contains("ghost.person@example.com"), "audit details decrypt under the new key: {page}");
    let dump = dump_all(&app).await;
    for trace in traces {
        assert!(!dump.contains(trace), "{trace} is stored in plaintext");
    }
    assert!(!dump.contains(&format!("pii1:{old_kid}:")), "nothing is left under the old key");
    app.stop().await;

    // The old key alone, or a wrong key under the new id, or no key: a clear start-up error.
    let e = start_error(&db_url, &[("PII_ENCRYPTION_KEY", K1)]).await;
    assert!(e.contains("\"new\"") && e.contains("PII_ENCRYPTION_KEY lacks"), "{e}");
    let e = start_error(&db_url, &[("PII_ENCRYPTION_KEY", &format!("new:{K1}"))]).await;
    assert!(e.contains("is not the key"), "{e}");
    let e = start_error(&db_url, &[]).await;
    assert!(e.contains("set PII_ENCRYPTION_KEY"), "{e}");
    let (code, _, err) = tessera_command(&db_url, &["pii", "rotate"], &[("PII_ENCRYPTION_KEY", K1)]).await;
    assert_ne!(code, 0);
    assert!(err.contains("PII key \"new\""), "{err}");
    drop(dir);
}

#[tokio::test]
async fn a_killed_pii_rotate_resumes_where_it_stopped() {
    const USERS: u64 = 30_000;
    let app = TestApp::with(&[("PII_ENCRYPTION_KEY", K1)]).await;
    let count = USERS.to_string();
    let (code, out, err) =
        tessera_command(&app.db_url, &["admin", "seed-users", "--count", &count], &[("PII_ENCRYPTION_KEY", K1)]).await;
    assert_eq!(code, 0, "{out}{err}");
    let old_kid = tessera_store::pii::Pii::parse(K1).unwrap().primary_kid().unwrap().to_owned();
    assert_eq!(users_under(&app, &old_kid).await, (USERS, 0));

    let ring = format!("new:{K2},{K1}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["pii", "rotate"])
        .env_clear()
        .envs(test_vars(&app.db_url, &[("PII_ENCRYPTION_KEY", &ring)]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the first batches are in.
    for _ in 0..2000 {
        if users_under(&app, "new").await.0 >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let (moved, _) = users_under(&app, "new").await;
    assert!(moved > 0 && moved < USERS, "killed midway: {moved} of {USERS} rows moved");
    assert_eq!(moved % 1000, 0, "a batch commits whole or not at all");

    let (code, out, err) = tessera_command(&app.db_url, &["pii", "rotate"], &[("PII_ENCRYPTION_KEY", &ring)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(resumed)"), "{out}");
    let rest = USERS - moved;
    assert!(out.contains(&format!("rewrote {rest} users")), "the second run did only what was left ({rest}): {out}");
    assert_eq!(users_under(&app, "new").await, (USERS, 0));
    // A seeded user signs in under the new key alone.
    let db_url = app.db_url.clone();
    let dir = app.shutdown().await;
    let app = TestApp::with_database(&db_url, &[("PII_ENCRYPTION_KEY", &format!("new:{K2}"))]).await;
    app.login("seed17@seed.example", "Seed!Passw0rd-bench").await;
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn concurrent_sign_ups_of_one_address_create_one_account_with_the_key() {
    let app = TestApp::with(&[("PII_ENCRYPTION_KEY", K1)]).await;
    let results = futures::future::join_all((0..8).map(|i| {
        let email = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" };
        app.post("/v1/users", None, json!({ "email": email, "password": PASSWORD }))
    }))
    .await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409], "the blind index's unique rule decides");
    assert_eq!(user::Entity::find().count(app.db()).await.unwrap(), 1);
}

#[tokio::test]
async fn a_resumed_rotation_rewrites_what_its_first_run_never_reached_before_dropping_the_old_key() {
    let app = TestApp::with(&[("PII_ENCRYPTION_KEY", K1)]).await;
    let early = app.register("early.bird@example.com", PASSWORD).await;
    app.register("late.comer@example.com", PASSWORD).await;
    // A stopped rotation's position, past the early account (as if a serving node had
    // changed it, with the old key, while its batch ran).
    let at = format!("new|users|{}", early["id"].as_str().unwrap());
    let job = tessera_store::query::pii::save_cursor(app.db(), "pii.rotate", Some(&at));
    job.await.unwrap();
    let db_url = app.db_url.clone();
    let dir = app.shutdown().await;

    let ring = format!("new:{K2},{K1}");
    let (code, out, err) = tessera_command(&db_url, &["pii", "rotate"], &[("PII_ENCRYPTION_KEY", &ring)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(resumed)") && out.contains("1 old keys may now be dropped"), "{out}");
    let app = TestApp::with_database(&db_url, &[("PII_ENCRYPTION_KEY", &format!("new:{K2}"))]).await;
    assert_eq!(users_under(&app, "new").await, (2, 0), "the row before the position was rewritten too");
    app.login("early.bird@example.com", PASSWORD).await;
    app.login("late.comer@example.com", PASSWORD).await;
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn pii_encrypt_runs_online_beside_a_server_that_writes_all_the_time() {
    const USERS: u64 = 20_000;
    let before = TestApp::spawn().await;
    let (code, out, err) =
        tessera_command(&before.db_url, &["admin", "seed-users", "--count", &USERS.to_string()], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    let db_url = before.db_url.clone();
    let dir = before.shutdown().await;
    let app = TestApp::with_database(&db_url, &[("PII_ENCRYPTION_KEY", K1)]).await;
    // Failed sign-ins all along: each writes an audit row (with an address to encrypt).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, client, url) = (stop.clone(), app.client.clone(), app.url("/v1/auth/login"));
        tokio::spawn(async move {
            let (mut n, mut slowest) = (0u64, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({ "email": format!("Stranger{n}@Example.com"), "password": "wrong" });
                let started = std::time::Instant::now();
                let res = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
                slowest = slowest.max(started.elapsed());
                n += 1;
            }
            (n, slowest)
        })
    };
    let started = std::time::Instant::now();
    let (code, out, err) = tessera_command(&db_url, &["pii", "encrypt"], &[("PII_ENCRYPTION_KEY", K1)]).await;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (attempts, slowest) = writer.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("rewrote {USERS} users")), "{out}");
    println!(
        "pii encrypt of {USERS} users beside a writing server: {took:?}; {attempts} sign-ins, slowest {slowest:?}"
    );
    assert!(attempts >= took.as_secs(), "the server kept writing ({attempts} failed sign-ins in {took:?})");
    assert!(slowest < Duration::from_secs(2), "no request waited long: {slowest:?}");
    let old_kid = tessera_store::pii::Pii::parse(K1).unwrap().primary_kid().unwrap().to_owned();
    assert_eq!(users_under(&app, &old_kid).await, (USERS, 0));
    assert!(!dump_all(&app).await.contains("stranger1@example.com"));
    app.stop().await;
    drop(dir);
}
