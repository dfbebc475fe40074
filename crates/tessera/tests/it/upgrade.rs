//! Stored formats across upgrades (issue 27): a database written by an earlier build
//! (`tests/fixtures/upgrade`, made by `scripts/make_upgrade_fixture.py` with the release
//! build of commit b394110, before the dependency upgrade) is read by this one. Its
//! Argon2id and bcrypt hashes still verify, its sealed refresh token still refreshes, its
//! RS256 access token still verifies and the JWKS is byte for byte the same, its
//! PII-encrypted addresses and its MFA-encrypted TOTP secret still open.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::*;

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn a_database_written_by_the_build_before_the_upgrade_still_works() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path("upgrade/fixture.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tessera.db");
    std::fs::copy(fixture_path("upgrade/tessera.db"), &db).unwrap();
    let db_url = format!("sqlite://{}", db.display());
    let key_file = fixture_path(fixture["private_key_fixture"].as_str().unwrap());
    let mut vars: Vec<(String, String)> = fixture["settings"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    vars.push(("JWT_PRIVATE_KEY_FILE".to_owned(), key_file));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::with_database(&db_url, &vars).await;

    // The JWKS, as the earlier build published it.
    let (status, jwks) = json_of(app.get("/.well-known/jwks.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks, fixture["jwks"]);

    // Its RS256 access token verifies, and the session's user opens (PII encryption).
    let user = &fixture["user"];
    let access = fixture["access_token"].as_str().unwrap();
    let (status, me) = json_of(app.get("/v1/auth/me", Some(access)).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], user["email"], "{me}");
    assert_eq!(me["mfa_enabled"], true);

    // Its sealed refresh token refreshes.
    let (status, refreshed) =
        json_of(app.post("/v1/auth/refresh", None, json!({ "refresh_token": fixture["refresh_token"] })).await).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    // The Argon2id password, then the TOTP secret sealed under the MFA key.
    let email = user["email"].as_str().unwrap();
    let (status, first) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": email, "password": user["password"] })).await).await;
    assert_eq!((status, &first["mfa_required"]), (StatusCode::OK, &json!(true)), "{first}");
    let mut totp = Authenticator::new(user["totp_secret"].as_str().unwrap());
    let body = json!({ "mfa_token": first["mfa_token"], "code": totp.next().await });
    let (status, second) = json_of(app.post("/v1/auth/mfa/verify", None, body).await).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["user"]["email"], user["email"]);

    // The bcrypt hash of the other user (made by Python's bcrypt).
    let other = &fixture["bcrypt_user"];
    let login = app.login(other["email"].as_str().unwrap(), other["password"].as_str().unwrap()).await;
    assert_eq!(login.body["user"]["email"], other["email"]);

    // Nothing decrypted was written back in clear.
    let users = app.dump("users").await;
    assert!(!users.contains("example.com"), "{users}");
}
