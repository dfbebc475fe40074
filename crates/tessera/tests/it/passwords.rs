//! Password hashing (SPEC §5.1): legacy hashes verified and re-hashed, the bounded
//! hashing pool, equal cost for unknown emails, nothing stored in clear.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::entity::user;
use tessera_store::sea_orm::sea_query::Expr;
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::harness::*;

/// Hashes made once by Python's `bcrypt` (12 rounds) and `argon2-cffi` (t=3, m=65536,
/// p=4): see scripts/make_legacy_hashes.py.
fn fixtures() -> Vec<Value> {
    serde_json::from_str(include_str!("../fixtures/legacy_hashes.json")).unwrap()
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    user::Entity::find().filter(user::Column::Email.eq(email)).one(app.db()).await.unwrap().unwrap().password_hash
}

async fn set_hash(app: &TestApp, email: &str, hash: &str) {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Email.eq(email))
        .exec(app.db())
        .await
        .unwrap();
}

#[tokio::test]
async fn legacy_bcrypt_and_argon2_hashes_sign_in_and_are_rehashed() {
    let app = TestApp::spawn().await;
    for (i, f) in fixtures().iter().enumerate() {
        let scheme = f["scheme"].as_str().unwrap();
        let password = f["password"].as_str().unwrap();
        let legacy = f["hash"].as_str().unwrap();
        let email = format!("legacy{i}@example.com");
        app.register(&email, PASSWORD).await;
        set_hash(&app, &email, legacy).await;

        let wrong = app.post("/v1/auth/login", None, json!({ "email": email, "password": "Wrong-Passw0rd!" })).await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(stored_hash(&app, &email).await, legacy, "{scheme}: a failed login changes nothing");

        app.login(&email, password).await;
        let rehashed = stored_hash(&app, &email).await;
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{scheme}: re-hashed to current parameters: {rehashed}"
        );

        app.login(&email, password).await;
        assert_eq!(stored_hash(&app, &email).await, rehashed, "{scheme}: a current hash is not re-hashed again");
    }
    // The detail is jsonb on PostgreSQL and JSON text on SQLite.
    let audit = app.dump("audit_log").await.replace('\\', "");
    assert!(audit.contains(r#""rehashed":true"#), "the re-hash is audited");
}

#[tokio::test]
async fn new_hashes_use_argon2id_with_the_default_parameters() {
    let app =
        TestApp::with(&[("ARGON2_MEMORY_KIB", "19456"), ("ARGON2_ITERATIONS", "2"), ("ARGON2_PARALLELISM", "1")]).await;
    let email = "defaults@example.com";
    app.register(email, PASSWORD).await;

    let hash = stored_hash(&app, email).await;

    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    let users = app.dump("users").await;
    assert!(!users.contains(PASSWORD), "the password is never stored");
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let app = TestApp::with(&[
        ("HASH_WORKERS", "1"),
        ("HASH_QUEUE", "0"),
        ("ARGON2_MEMORY_KIB", "65536"),
        ("ARGON2_ITERATIONS", "4"),
    ])
    .await;

    let results = join_all((0..8).map(|i| {
        let app = &app;
        async move {
            app.post("/v1/auth/login", None, json!({ "email": format!("nobody{i}@example.com"), "password": PASSWORD }))
                .await
        }
    }))
    .await;

    let mut overloaded = 0;
    let mut processed = 0;
    for res in results {
        match res.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(res.headers().contains_key("retry-after"));
                assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "service_overloaded").await;
                overloaded += 1;
            }
            StatusCode::UNAUTHORIZED => processed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(overloaded >= 1, "some logins are shed");
    assert!(processed >= 1, "and the admitted ones are served");
}

#[tokio::test]
async fn an_unknown_email_costs_one_verification_like_a_known_one() {
    let app = TestApp::spawn().await;
    app.register("known@example.com", PASSWORD).await;
    let count = || app.core.hasher.verifications();
    let wrong = |email: &'static str| {
        let app = &app;
        async move { app.post("/v1/auth/login", None, json!({ "email": email, "password": "Wrong-Passw0rd!" })).await }
    };

    let before = count();
    assert_eq!(wrong("known@example.com").await.status(), StatusCode::UNAUTHORIZED);
    let known = count() - before;
    let before = count();
    assert_eq!(wrong("unknown@example.com").await.status(), StatusCode::UNAUTHORIZED);
    let unknown = count() - before;
    let before = count();
    assert_eq!(wrong("not an email").await.status(), StatusCode::UNAUTHORIZED);
    let malformed = count() - before;

    // Each pays exactly one Argon2id verification with the current parameters (the
    // dummy hash's parameters are checked in the hasher's unit tests), so the answer
    // time tells nothing about whether the account exists.
    assert_eq!((known, unknown, malformed), (1, 1, 1));
}

/// bcrypt reads 72 bytes of a password at most. A password longer than that never signs
/// in against a bcrypt hash imported from the seeds, whatever its first 72 bytes (issue
/// 15, hole 7); a password of exactly 72 bytes still does, and is re-hashed.
#[tokio::test]
async fn a_password_over_72_bytes_never_matches_a_bcrypt_hash_by_its_prefix() {
    let app = TestApp::spawn().await;
    let email = "long@example.com";
    app.register(email, PASSWORD).await;
    let first_72 = format!("Aa1!{}", "x".repeat(68));
    assert_eq!(first_72.len(), 72);
    set_hash(&app, email, &bcrypt::hash(&first_72, 4).unwrap()).await;

    for longer in [format!("{first_72}y"), format!("{first_72}-and-then-some")] {
        let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": longer })).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    app.login(email, &first_72).await;
    assert!(stored_hash(&app, email).await.starts_with("$argon2id$"));
    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": format!("{first_72}y") })).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

/// Passwords are NFKC-normalised before hashing and comparison; control characters are
/// refused with a rule of their own (issue 20, item 7).
#[tokio::test]
async fn control_characters_are_refused_with_their_own_rule() {
    let app = TestApp::spawn().await;
    for (i, bad) in ["Str0ng!\0Passw0rd", "Str0ng!\tPassw0rd", "Str0ng!\u{7f}Passw0rd", "Str0ng!\u{9b}Passw0rd"]
        .into_iter()
        .enumerate()
    {
        let email = format!("control{i}@example.com");
        let res = app.post("/v1/users", None, json!({ "email": email, "password": bad })).await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        let codes: Vec<&str> = body["errors"].as_array().unwrap().iter().filter_map(|e| e["code"].as_str()).collect();
        assert_eq!(codes, ["password_control_character"], "{bad:?}: {body}");
    }
    // ...on every path that sets a password.
    let (email, login) = app.user().await;
    let res = app
        .post(
            "/v1/auth/change-password",
            Some(&login.access),
            json!({ "current_password": PASSWORD, "new_password": "Str0ng!\0Passw0rd" }),
        )
        .await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert!(body.to_string().contains("password_control_character"), "{body}");
    app.login(&email, PASSWORD).await;
}

#[tokio::test]
async fn a_password_signs_in_however_its_characters_are_composed() {
    let app = TestApp::spawn().await;
    let email = "nfkc@example.com";
    // "é" as e + U+0301 at sign-up; precomposed U+00E9, then full-width letters, at sign-in.
    app.register(email, "Cafe\u{301}-Str0ng!").await;
    app.login(email, "Caf\u{e9}-Str0ng!").await;
    let hash = stored_hash(&app, email).await;
    app.login(email, "\u{ff23}af\u{e9}-Str0ng!").await;
    assert_eq!(stored_hash(&app, email).await, hash, "a normalised hash is not re-hashed");
    let wrong = app.post("/v1/auth/login", None, json!({ "email": email, "password": "Cafe-Str0ng!" })).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

/// A hash made before normalisation holds the raw form of the password: it still signs
/// in (once through the raw fallback) and is re-hashed to the normalised form.
#[tokio::test]
async fn a_hash_of_the_raw_form_signs_in_once_and_is_rehashed_normalised() {
    let app = TestApp::spawn().await;
    let email = "raw@example.com";
    app.register(email, PASSWORD).await;
    let raw = "\u{ff21}bc-Str0ng!\u{2126}"; // full-width A, Ohm sign: NFKC makes "Abc-Str0ng!Ω"
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(1024, 1, 1, None).unwrap(),
    );
    let old = argon2::PasswordHasher::hash_password(&argon, raw.as_bytes()).unwrap().to_string();
    set_hash(&app, email, &old).await;

    app.login(email, raw).await;
    let rehashed = stored_hash(&app, email).await;
    assert_ne!(rehashed, old, "the raw-form hash is replaced");
    // The new hash is of the normalised form: the normalised spelling signs in now.
    app.login(email, "Abc-Str0ng!\u{3a9}").await;
    assert_eq!(stored_hash(&app, email).await, rehashed);
}
