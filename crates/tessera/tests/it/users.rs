//! `/v1/users`: sign-up and the password policy, reading users, updating one's own
//! account, and the profile (SPEC §2.1, §3.2, §3.3, §5.1, §5.2, §6).

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tessera_core::entity::{profile, user};
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::auth::{assert_problem, assert_user_object, keys, mark_verified};
use crate::harness::*;

/// POST /v1/users.
async fn register_raw(app: &TestApp, body: Value) -> Response {
    app.post("/v1/users", None, body).await
}

/// PATCH with a bearer token and a JSON body.
async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> Response {
    app.send(Method::PATCH, path, Some(token), Some(body)).await
}

/// How many users rows hold `email`.
async fn users_with_email(app: &TestApp, email: &str) -> u64 {
    user::Entity::find().filter(user::Column::Email.eq(email)).count(app.db()).await.unwrap()
}

/// Asserts a 422 in the §6 shape and returns its `errors` as (field, code) pairs.
async fn validation_errors(res: Response) -> BTreeSet<(String, String)> {
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("errors missing: {body}"));
    assert!(!errors.is_empty(), "{body}");
    errors
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            (e["field"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The fields named in a set of (field, code) pairs.
fn fields(errors: &BTreeSet<(String, String)>) -> BTreeSet<&str> {
    errors.iter().map(|(f, _)| f.as_str()).collect()
}

/// Registers with `password` and returns the codes of the password errors (asserting
/// that every error is on `password` and that no user was created).
async fn password_codes(app: &TestApp, email: &str, password: &str) -> BTreeSet<String> {
    let res = register_raw(app, json!({ "email": email, "password": password })).await;
    let errors = validation_errors(res).await;
    assert!(errors.iter().all(|(f, _)| f == "password"), "{errors:?}");
    assert_eq!(users_with_email(app, email).await, 0);
    errors.into_iter().map(|(_, c)| c).collect()
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

// ---------------------------------------------------------------- register

#[tokio::test]
async fn register_creates_a_user_with_a_normalised_email() {
    let app = TestApp::spawn().await;

    let res = register_raw(
        &app,
        json!({ "email": "  New.User@Example.COM ", "password": PASSWORD, "full_name": "New User" }),
    )
    .await;

    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_user_object(&body);
    assert_eq!(body["email"], "new.user@example.com");
    assert_eq!(body["full_name"], "New User");
    assert_eq!(body["role"], "user");
    assert_eq!(body["is_active"], true);
    assert_eq!(body["is_verified"], false);
    assert_eq!(body["is_phone_verified"], false);
    assert_eq!(body["mfa_enabled"], false);
    assert_eq!(body["phone"], Value::Null);
    assert_eq!(body["last_login_at"], Value::Null);
    let id = uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    assert_eq!(users_with_email(&app, "new.user@example.com").await, 1);
    app.login("new.user@example.com", PASSWORD).await;
}

#[tokio::test]
async fn register_without_a_full_name_is_fine() {
    let app = TestApp::spawn().await;

    let res = register_raw(&app, json!({ "email": "noname@example.com", "password": PASSWORD })).await;

    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["full_name"], Value::Null);
}

#[tokio::test]
async fn register_a_taken_email_in_another_spelling_is_409() {
    let app = TestApp::spawn().await;
    app.register("dup@example.com", PASSWORD).await;

    let upper = register_raw(&app, json!({ "email": "DUP@Example.com", "password": PASSWORD })).await;
    let spaced = register_raw(&app, json!({ "email": "  dup@example.com  ", "password": PASSWORD })).await;

    assert_error(upper, StatusCode::CONFLICT, "email_already_exists").await;
    assert_error(spaced, StatusCode::CONFLICT, "email_already_exists").await;
    assert_eq!(users_with_email(&app, "dup@example.com").await, 1);
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_user() {
    let app = TestApp::spawn().await;
    let email = "race@example.com";

    let results = join_all((0..8).map(|i| {
        let spelling = if i % 2 == 0 { email.to_owned() } else { email.to_uppercase() };
        register_raw(&app, json!({ "email": spelling, "password": PASSWORD }))
    }))
    .await;

    let mut created = 0;
    let mut conflicts = 0;
    for res in results {
        match res.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!((created, conflicts), (1, 7));
    assert_eq!(users_with_email(&app, email).await, 1);
    assert_eq!(profile::Entity::find().count(app.db()).await.unwrap(), 1, "one profile, for the winner");
}

#[tokio::test]
async fn register_rejects_a_full_name_over_200_characters() {
    let app = TestApp::spawn().await;

    let res =
        register_raw(&app, json!({ "email": "name@example.com", "password": PASSWORD, "full_name": "n".repeat(201) }))
            .await;

    let errors = validation_errors(res).await;
    assert_eq!(fields(&errors), ["full_name"].into(), "{errors:?}");
}

#[tokio::test]
async fn register_missing_fields_is_422() {
    let app = TestApp::spawn().await;

    let res = register_raw(&app, json!({ "email": "missing@example.com" })).await;

    let errors = validation_errors(res).await;
    assert!(fields(&errors).contains("password"), "{errors:?}");
}

// ---------------------------------------------------------------- password policy

#[tokio::test]
async fn policy_names_every_rule_a_common_word_breaks() {
    let app = TestApp::spawn().await;

    let codes = password_codes(&app, "policy@example.com", "password").await;

    assert_eq!(
        codes,
        set(&["password_no_uppercase", "password_no_digit", "password_no_special", "password_too_common"])
    );
}

#[tokio::test]
async fn policy_reports_a_short_password() {
    let app = TestApp::spawn().await;

    let codes = password_codes(&app, "short@example.com", "Ab1!xy").await;

    assert_eq!(codes, set(&["password_too_short"]));
}

#[tokio::test]
async fn policy_reports_many_rules_at_once() {
    let app = TestApp::spawn().await;

    let codes = password_codes(&app, "many@example.com", "xqzv").await;

    assert_eq!(
        codes,
        set(&["password_too_short", "password_no_uppercase", "password_no_digit", "password_no_special"])
    );
}

#[tokio::test]
async fn policy_requires_a_lower_case_letter() {
    let app = TestApp::spawn().await;

    let codes = password_codes(&app, "lower@example.com", "QZXV#9KLMW").await;

    assert_eq!(codes, set(&["password_no_lowercase"]));
}

#[tokio::test]
async fn policy_rejects_a_long_common_password_that_meets_every_other_rule() {
    let app = TestApp::spawn().await;

    let codes = password_codes(&app, "common@example.com", "Password1!").await;

    assert_eq!(codes, set(&["password_too_common"]));
}

#[tokio::test]
async fn policy_rejects_a_password_containing_the_email_local_part() {
    let app = TestApp::spawn().await;

    let codes = password_codes(&app, "johnsmith@example.com", "JohnSmith#2024x").await;

    assert_eq!(codes, set(&["password_contains_email"]));
}

#[tokio::test]
async fn policy_rejects_a_password_over_128_characters() {
    let app = TestApp::spawn().await;
    let at_limit = "Aa1!".repeat(32);
    let over = format!("{at_limit}b");
    assert_eq!(over.chars().count(), 129);

    let codes = password_codes(&app, "long@example.com", &over).await;
    let ok = register_raw(&app, json!({ "email": "limit@example.com", "password": at_limit })).await;

    assert_eq!(codes, set(&["password_too_long"]));
    assert_eq!(ok.status(), StatusCode::CREATED, "128 characters are allowed");
}

#[tokio::test]
async fn invalid_email_and_weak_password_are_both_reported() {
    let app = TestApp::spawn().await;

    let res = register_raw(&app, json!({ "email": "not-an-email", "password": "weak" })).await;

    let errors = validation_errors(res).await;
    assert!(errors.contains(&("email".to_owned(), "invalid_email".to_owned())), "{errors:?}");
    assert!(errors.contains(&("password".to_owned(), "password_too_short".to_owned())), "{errors:?}");
    assert!(errors.contains(&("password".to_owned(), "password_no_uppercase".to_owned())), "{errors:?}");
    assert_eq!(user::Entity::find().count(app.db()).await.unwrap(), 0);
}

#[tokio::test]
async fn register_rejects_an_invalid_phone() {
    let app = TestApp::spawn().await;

    let res =
        register_raw(&app, json!({ "email": "phone@example.com", "password": PASSWORD, "phone": "555-0123" })).await;

    let errors = validation_errors(res).await;
    assert_eq!(fields(&errors), ["phone"].into(), "{errors:?}");
    assert_eq!(users_with_email(&app, "phone@example.com").await, 0);
}

#[tokio::test]
async fn register_stores_a_valid_phone_in_e164() {
    let app = TestApp::spawn().await;

    let res =
        register_raw(&app, json!({ "email": "phone@example.com", "password": PASSWORD, "phone": "+1 (415) 555-0123" }))
            .await;

    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phone"], "+14155550123");
    assert_eq!(body["is_phone_verified"], false);
}

// ---------------------------------------------------------------- GET /v1/users/{id}

#[tokio::test]
async fn get_self_returns_the_full_user() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let id = login.body["user"]["id"].as_str().unwrap();

    let (status, body) = json_of(app.get(&format!("/v1/users/{id}"), Some(&login.access)).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_object(&body);
    assert_eq!(body["email"], email);
    assert_eq!(body["id"], id);
}

#[tokio::test]
async fn get_another_user_shows_only_public_fields() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user().await;
    let bob = app.register("bob@example.com", PASSWORD).await;
    let bob_id = bob["id"].as_str().unwrap();

    let (status, body) = json_of(app.get(&format!("/v1/users/{bob_id}"), Some(&alice.access)).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), set(&["id", "full_name", "created_at"]), "{body}");
    assert_eq!(body["id"], bob_id);
    assert_eq!(body["full_name"], "Test User");
    assert_eq!(body["created_at"], bob["created_at"]);
}

#[tokio::test]
async fn an_admin_sees_another_user_in_full() {
    let app = TestApp::spawn().await;
    app.register("admin@example.com", PASSWORD).await;
    app.sql("UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'").await;
    let admin = app.login("admin@example.com", PASSWORD).await;
    assert_eq!(admin.body["user"]["role"], "admin");
    let bob = app.register("bob@example.com", PASSWORD).await;
    let bob_id = bob["id"].as_str().unwrap();

    let (status, body) = json_of(app.get(&format!("/v1/users/{bob_id}"), Some(&admin.access)).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_object(&body);
    assert_eq!(body["email"], "bob@example.com");
}

#[tokio::test]
async fn get_an_unknown_user_is_404() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let unknown = uuid::Uuid::now_v7();

    let res = app.get(&format!("/v1/users/{unknown}"), Some(&login.access)).await;

    assert_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
}

#[tokio::test]
async fn get_a_soft_deleted_user_is_404() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user().await;
    let gone = app.register("gone@example.com", PASSWORD).await;
    user::Entity::update_many()
        .col_expr(user::Column::DeletedAt, tessera_store::sea_orm::sea_query::Expr::value(Some(chrono::Utc::now())))
        .filter(user::Column::Email.eq("gone@example.com"))
        .exec(app.db())
        .await
        .unwrap();

    let res = app.get(&format!("/v1/users/{}", gone["id"].as_str().unwrap()), Some(&alice.access)).await;

    assert_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
}

#[tokio::test]
async fn get_a_non_uuid_user_is_404() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let res = app.get("/v1/users/not-a-uuid", Some(&login.access)).await;

    assert_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn get_a_user_without_a_token_is_401() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob@example.com", PASSWORD).await;

    let res = app.get(&format!("/v1/users/{}", bob["id"].as_str().unwrap()), None).await;

    assert_error(res, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

// ---------------------------------------------------------------- PATCH /v1/users/me

#[tokio::test]
async fn patch_me_changes_the_full_name() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let (status, body) =
        json_of(patch(&app, "/v1/users/me", &login.access, json!({ "full_name": "Renamed Person" })).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_object(&body);
    assert_eq!(body["full_name"], "Renamed Person");
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["full_name"], "Renamed Person");
}

#[tokio::test]
async fn patch_me_with_a_null_full_name_clears_it() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let (status, body) = json_of(patch(&app, "/v1/users/me", &login.access, json!({ "full_name": null })).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["full_name"], Value::Null);
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["full_name"], Value::Null);
}

#[tokio::test]
async fn patch_me_with_an_empty_body_changes_nothing() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    let (status, body) = json_of(patch(&app, "/v1/users/me", &login.access, json!({})).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], email);
    assert_eq!(body["full_name"], "Test User");
}

#[tokio::test]
async fn patch_me_email_stays_pending_until_confirmed() {
    let app = TestApp::spawn().await;
    let (old_email, login) = app.user().await;
    mark_verified(&app, &old_email).await;

    let (status, body) =
        json_of(patch(&app, "/v1/users/me", &login.access, json!({ "email": "  Moved.Here@Example.com " })).await)
            .await;

    // SPEC §5.3: the new address is unverified until confirmed (mail.rs covers the
    // confirmation); until then the account keeps, and signs in with, the old one.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], old_email);
    assert_eq!(body["is_verified"], true);
    app.login(&old_email, PASSWORD).await;
    let new =
        app.post("/v1/auth/login", None, json!({ "email": "moved.here@example.com", "password": PASSWORD })).await;
    assert_error(new, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn patch_me_with_ones_own_email_in_another_spelling_keeps_it_verified() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    mark_verified(&app, &email).await;

    let (status, body) = json_of(
        patch(&app, "/v1/users/me", &login.access, json!({ "email": format!(" {} ", email.to_uppercase()) })).await,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], email);
    assert_eq!(body["is_verified"], true);
}

#[tokio::test]
async fn patch_me_email_taken_by_another_user_is_409() {
    let app = TestApp::spawn().await;
    app.register("taken@example.com", PASSWORD).await;
    let (email, login) = app.user().await;

    let res = patch(&app, "/v1/users/me", &login.access, json!({ "email": "TAKEN@example.com" })).await;

    assert_error(res, StatusCode::CONFLICT, "email_already_exists").await;
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["email"], email);
}

#[tokio::test]
async fn patch_me_invalid_email_is_422() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    let res = patch(&app, "/v1/users/me", &login.access, json!({ "email": "nope@" })).await;

    let errors = validation_errors(res).await;
    assert_eq!(fields(&errors), ["email"].into(), "{errors:?}");
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["email"], email);
}

#[tokio::test]
async fn patch_me_invalid_phone_is_422() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let res = patch(&app, "/v1/users/me", &login.access, json!({ "phone": "+0123" })).await;

    let errors = validation_errors(res).await;
    assert_eq!(fields(&errors), ["phone"].into(), "{errors:?}");
}

#[tokio::test]
async fn patch_me_valid_phone_is_normalised() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let (status, body) =
        json_of(patch(&app, "/v1/users/me", &login.access, json!({ "phone": "+44 20 7946 0958" })).await).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["phone"], "+442079460958");
}

#[tokio::test]
async fn patch_me_without_a_token_is_401() {
    let app = TestApp::spawn().await;

    let res = app.send(Method::PATCH, "/v1/users/me", None, Some(json!({ "full_name": "x" }))).await;

    assert_error(res, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

// ---------------------------------------------------------------- profile

const PROFILE_KEYS: [&str; 12] = [
    "id",
    "user_id",
    "name",
    "avatar_url",
    "location",
    "date_of_birth",
    "bio",
    "preferences",
    "roles",
    "user_metadata",
    "created_at",
    "updated_at",
];

async fn get_profile(app: &TestApp, access: &str) -> Value {
    let (status, body) = json_of(app.get("/v1/users/me/profile", Some(access)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), set(&PROFILE_KEYS), "{body}");
    body
}

#[tokio::test]
async fn profile_exists_from_sign_up_with_defaults() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let body = get_profile(&app, &login.access).await;

    assert_eq!(body["user_id"], login.body["user"]["id"]);
    assert_ne!(body["id"], body["user_id"]);
    assert_eq!(body["name"], "Test User");
    assert_eq!(body["name"], login.body["user"]["full_name"]);
    assert_eq!(body["preferences"], json!({}));
    assert_eq!(body["roles"], json!(["user"]));
    for k in ["avatar_url", "location", "date_of_birth", "bio"] {
        assert_eq!(body[k], Value::Null, "{k}: {body}");
    }
}

#[tokio::test]
async fn profile_without_a_token_is_401() {
    let app = TestApp::spawn().await;

    let res = app.get("/v1/users/me/profile", None).await;

    assert_error(res, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test]
async fn profile_patch_sets_every_field() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let prefs = json!({ "theme": "dark", "notifications": { "email": false }, "langs": ["en", "pt"] });

    let (status, body) = json_of(
        patch(
            &app,
            "/v1/users/me/profile",
            &login.access,
            json!({
                "name": "Ada Lovelace",
                "avatar_url": "https://cdn.example.com/ada.png",
                "location": "London",
                "date_of_birth": "1990-12-10",
                "bio": "Poetical science.",
                "preferences": prefs,
            }),
        )
        .await,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = get_profile(&app, &login.access).await;
    for p in [&body, &stored] {
        assert_eq!(p["name"], "Ada Lovelace");
        assert_eq!(p["avatar_url"], "https://cdn.example.com/ada.png");
        assert_eq!(p["location"], "London");
        assert_eq!(p["date_of_birth"], "1990-12-10");
        assert_eq!(p["bio"], "Poetical science.");
        assert_eq!(p["preferences"], prefs);
        assert_eq!(p["roles"], json!(["user"]));
    }
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["full_name"], "Ada Lovelace", "the profile name is the user's full_name");
}

#[tokio::test]
async fn profile_patch_keeps_absent_fields_and_null_clears() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let full = json!({
        "avatar_url": "http://cdn.example.com/a.png",
        "location": "Lisbon",
        "date_of_birth": "1985-01-31",
        "bio": "Hi.",
        "preferences": { "theme": "light" },
    });
    assert_eq!(patch(&app, "/v1/users/me/profile", &login.access, full).await.status(), StatusCode::OK);

    let (status, partial) =
        json_of(patch(&app, "/v1/users/me/profile", &login.access, json!({ "location": "Porto" })).await).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert_eq!(partial["location"], "Porto");
    assert_eq!(partial["bio"], "Hi.");
    assert_eq!(partial["preferences"], json!({ "theme": "light" }));
    assert_eq!(partial["name"], "Test User");

    let (status, cleared) = json_of(
        patch(
            &app,
            "/v1/users/me/profile",
            &login.access,
            json!({
                "name": null, "avatar_url": null, "location": null,
                "date_of_birth": null, "bio": null, "preferences": null,
            }),
        )
        .await,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{cleared}");
    let stored = get_profile(&app, &login.access).await;
    for p in [&cleared, &stored] {
        for k in ["name", "avatar_url", "location", "date_of_birth", "bio"] {
            assert_eq!(p[k], Value::Null, "{k}: {p}");
        }
        assert_eq!(p["preferences"], json!({}), "preferences stay an object: {p}");
    }
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["full_name"], Value::Null);
}

/// PATCHes the profile with `body` and returns the (field, code) pairs of the 422.
async fn profile_errors(app: &TestApp, access: &str, body: Value) -> BTreeSet<(String, String)> {
    validation_errors(patch(app, "/v1/users/me/profile", access, body).await).await
}

#[tokio::test]
async fn profile_rejects_a_date_of_birth_in_the_future() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let future = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().to_string();

    let errors = profile_errors(&app, &login.access, json!({ "date_of_birth": future })).await;

    assert_eq!(fields(&errors), ["date_of_birth"].into(), "{errors:?}");
}

#[tokio::test]
async fn profile_rejects_a_date_of_birth_that_is_not_a_date() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    for bad in [json!("not-a-date"), json!("1990-13-45"), json!("10/12/1990"), json!(19901210)] {
        let errors = profile_errors(&app, &login.access, json!({ "date_of_birth": bad })).await;
        assert_eq!(fields(&errors), ["date_of_birth"].into(), "{bad}: {errors:?}");
    }
    assert_eq!(get_profile(&app, &login.access).await["date_of_birth"], Value::Null);
}

#[tokio::test]
async fn profile_rejects_an_avatar_url_that_is_not_http() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    for bad in ["javascript:alert(1)", "ftp://x", "data:image/png;base64,AAAA", "https://", "not a url"] {
        let errors = profile_errors(&app, &login.access, json!({ "avatar_url": bad })).await;
        assert_eq!(fields(&errors), ["avatar_url"].into(), "{bad}: {errors:?}");
    }
    assert_eq!(get_profile(&app, &login.access).await["avatar_url"], Value::Null);
}

#[tokio::test]
async fn profile_rejects_preferences_that_are_not_an_object() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    for bad in [json!([1, 2]), json!("x"), json!(42), json!(true)] {
        let errors = profile_errors(&app, &login.access, json!({ "preferences": bad })).await;
        assert_eq!(fields(&errors), ["preferences"].into(), "{bad}: {errors:?}");
    }
    assert_eq!(get_profile(&app, &login.access).await["preferences"], json!({}));
}

#[tokio::test]
async fn profile_rejects_preferences_over_16_kib() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let big = json!({ "blob": "x".repeat(16 * 1024) });

    let errors = profile_errors(&app, &login.access, json!({ "preferences": big })).await;

    assert_eq!(fields(&errors), ["preferences"].into(), "{errors:?}");
    let fits = json!({ "blob": "x".repeat(15 * 1024) });
    let res = patch(&app, "/v1/users/me/profile", &login.access, json!({ "preferences": fits })).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn profile_rejects_a_bio_over_5000_characters() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let errors = profile_errors(&app, &login.access, json!({ "bio": "b".repeat(5001) })).await;

    assert_eq!(fields(&errors), ["bio"].into(), "{errors:?}");
    let res = patch(&app, "/v1/users/me/profile", &login.access, json!({ "bio": "é".repeat(5000) })).await;
    assert_eq!(res.status(), StatusCode::OK, "5000 characters (not bytes) fit");
}

#[tokio::test]
async fn profile_reports_every_error_at_once_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let future = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive().to_string();

    let errors = profile_errors(
        &app,
        &login.access,
        json!({
            "name": "Should Not Stick",
            "location": "Nowhere",
            "date_of_birth": future,
            "avatar_url": "ftp://x",
            "preferences": [1, 2],
            "bio": "b".repeat(5001),
        }),
    )
    .await;

    assert_eq!(fields(&errors), ["avatar_url", "bio", "date_of_birth", "preferences"].into(), "{errors:?}");
    let stored = get_profile(&app, &login.access).await;
    assert_eq!(stored["name"], "Test User");
    assert_eq!(stored["location"], Value::Null);
}

#[tokio::test]
async fn profile_name_shows_as_full_name_everywhere() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;
    let id = login.body["user"]["id"].as_str().unwrap().to_owned();
    let (_, other) = app.user().await;

    let res = patch(&app, "/v1/users/me/profile", &login.access, json!({ "name": "Grace Hopper" })).await;

    assert_eq!(res.status(), StatusCode::OK);
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["full_name"], "Grace Hopper");
    let (_, public) = json_of(app.get(&format!("/v1/users/{id}"), Some(&other.access)).await).await;
    assert_eq!(public["full_name"], "Grace Hopper");
    assert_eq!(get_profile(&app, &login.access).await["name"], "Grace Hopper");
}
