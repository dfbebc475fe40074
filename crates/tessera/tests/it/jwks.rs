//! Asymmetric access tokens and the JWKS (SPEC §4.1, §2.4; issue 18): RS256, ES256 and
//! EdDSA tokens carry a `kid` that `/.well-known/jwks.json` publishes with the public key
//! that verifies them; previous public keys keep their tokens valid; an HS secret is
//! never published, and a token whose header names another algorithm (HS256 made with
//! the public key, `none`) is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A server signing with `alg` and the fixture key `key`, plus `extra`.
async fn app_with(alg: &str, key: &str, extra: &[(&str, &str)]) -> TestApp {
    let file = fixture(key);
    let mut vars = vec![("JWT_ALGORITHM", alg), ("JWT_PRIVATE_KEY_FILE", file.as_str())];
    vars.extend_from_slice(extra);
    TestApp::with(&vars).await
}

fn header_of(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).unwrap()
}

async fn jwks(app: &TestApp, path: &str) -> Vec<Value> {
    let res = app.get(path, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["keys"].as_array().unwrap().clone()
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    app.get("/v1/auth/me", Some(token)).await.status()
}

#[tokio::test]
async fn each_asymmetric_algorithm_signs_with_a_kid_that_the_jwks_publishes() {
    for (alg, key, algorithm) in [
        ("RS256", "jwt-rsa-a.pem", Algorithm::RS256),
        ("ES256", "jwt-ec.pem", Algorithm::ES256),
        ("EdDSA", "jwt-ed25519.pem", Algorithm::EdDSA),
    ] {
        let app = app_with(alg, key, &[]).await;
        let (_, login) = app.user().await;
        let header = header_of(&login.access);
        assert_eq!(header.alg, algorithm);
        let kid = header.kid.expect("a kid");
        assert_eq!(kid.len(), 43, "{alg}: the default kid is the key's RFC 7638 thumbprint");
        for path in ["/.well-known/jwks.json", "/auth/v1/.well-known/jwks.json"] {
            let keys = jwks(&app, path).await;
            assert_eq!(keys.len(), 1, "{alg}: {keys:?}");
            let jwk = &keys[0];
            assert_eq!(
                (jwk["kid"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
                (Some(&*kid), Some(alg), Some("sig"))
            );
            assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
            assert!(jwk.get("d").is_none(), "{alg}: public only");
            // A client verifies the token with the published key alone.
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
            let mut validation = Validation::new(algorithm);
            validation.set_audience(&["authenticated"]);
            let claims =
                jsonwebtoken::decode::<Value>(&login.access, &DecodingKey::from_jwk(&parsed).unwrap(), &validation);
            assert!(claims.is_ok(), "{alg}: {claims:?}");
        }
        assert_eq!(me_status(&app, &login.access).await, StatusCode::OK, "{alg}");
    }
}

#[tokio::test]
async fn the_key_id_can_be_named() {
    let app = app_with("RS256", "jwt-rsa-a.pem", &[("JWT_KEY_ID", "suite-kid-1")]).await;
    let (_, login) = app.user().await;
    assert_eq!(header_of(&login.access).kid.as_deref(), Some("suite-kid-1"));
    assert_eq!(jwks(&app, "/.well-known/jwks.json").await[0]["kid"], "suite-kid-1");
}

#[tokio::test]
async fn an_hs_secret_is_never_published_and_no_other_algorithm_is_accepted() {
    let hs = TestApp::spawn().await;
    // Only the OpenID provider's own public key (a development server generates one):
    // never the HS secret, nor any symmetric key.
    let published = jwks(&hs, "/.well-known/jwks.json").await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!((published[0]["kty"].as_str(), published[0]["alg"].as_str()), (Some("EC"), Some("ES256")));
    assert!(published[0].get("k").is_none() && published[0].get("d").is_none());

    let app = app_with("RS256", "jwt-rsa-a.pem", &[]).await;
    let (_, login) = app.user().await;
    let claims: Value = {
        let payload = login.access.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    // The classic confusion: HS256 with the public key (its PEM, its modulus) as the secret.
    let public_pem = std::fs::read(fixture("jwt-rsa-a.pub.pem")).unwrap();
    let jwk = &jwks(&app, "/.well-known/jwks.json").await[0];
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for secret in [public_pem.as_slice(), modulus.as_slice()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = header_of(&login.access).kid;
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap();
        assert_eq!(me_status(&app, &forged).await, StatusCode::UNAUTHORIZED);
    }
    // `alg: none`, and the genuine token as a control.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_eq!(me_status(&app, &none).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &login.access).await, StatusCode::OK);
}

#[tokio::test]
async fn tokens_of_a_previous_key_are_accepted_while_it_is_listed() {
    let before = app_with("RS256", "jwt-rsa-a.pem", &[]).await;
    let (_, login) = before.user().await;
    let old_kid = header_of(&login.access).kid.unwrap();
    let old_keys = serde_json::json!({ "keys": jwks(&before, "/.well-known/jwks.json").await }).to_string();
    let db_url = before.db_url.clone();
    let dir = before.shutdown().await;

    // The new key signs; the old one, listed, still verifies its tokens.
    let file = fixture("jwt-rsa-b.pem");
    let rotated = [
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY_FILE", file.as_str()),
        ("JWT_PREVIOUS_PUBLIC_KEYS", old_keys.as_str()),
    ];
    let app = TestApp::with_database(&db_url, &rotated).await;
    let kids: Vec<String> =
        jwks(&app, "/.well-known/jwks.json").await.iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kids.len(), 2);
    assert!(kids[1] == old_kid && kids[0] != old_kid, "{kids:?}");
    assert_eq!(me_status(&app, &login.access).await, StatusCode::OK, "the old key's token still works");
    let (_, fresh) = app.user().await;
    assert_eq!(header_of(&fresh.access).kid.as_deref(), Some(kids[0].as_str()));
    let dir2 = app.shutdown().await;

    // Dropped from the list, its tokens are refused.
    let app = TestApp::with_database(&db_url, &rotated[..2]).await;
    assert_eq!(me_status(&app, &login.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &fresh.access).await, StatusCode::OK);
    app.stop().await;
    drop((dir, dir2));
}

#[tokio::test]
async fn a_missing_or_wrong_private_key_is_a_configuration_error() {
    let vars = |extra: &[(&str, &str)]| test_vars("sqlite::memory:", extra);
    let problems = |extra: &[(&str, &str)]| {
        let mut s = tessera_core::settings::Settings::from_vars(&vars(extra)).expect("settings parse");
        s.ensure_secrets().unwrap();
        tessera_core::session::tokens::JwtKeys::from_settings(&s).err().unwrap_or_default()
    };
    assert!(problems(&[("JWT_ALGORITHM", "RS256")]).contains("needs JWT_PRIVATE_KEY"));
    let ec = fixture("jwt-ec.pem");
    let e = problems(&[("JWT_ALGORITHM", "RS256"), ("JWT_PRIVATE_KEY_FILE", &ec)]);
    assert!(e.contains("is not a RS256 private key"), "{e}");
    let e = problems(&[("JWT_ALGORITHM", "ES256"), ("JWT_PRIVATE_KEY", "not a pem")]);
    assert!(e.contains("is not a ES256 private key"), "{e}");
    let e = problems(&[
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", &fixture("jwt-ed25519.pem")),
        ("JWT_PREVIOUS_PUBLIC_KEYS", r#"[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]"#),
    ]);
    assert!(e.contains("public keys only"), "{e}");
}

#[tokio::test]
async fn tessera_keys_supabase_prints_anon_and_service_role_keys_the_jwks_verifies() {
    let app = app_with("RS256", "jwt-rsa-a.pem", &[("JWT_KEY_ID", "project-kid")]).await;
    let file = fixture("jwt-rsa-a.pem");
    let extra = [("JWT_ALGORITHM", "RS256"), ("JWT_PRIVATE_KEY_FILE", file.as_str()), ("JWT_KEY_ID", "project-kid")];
    let (code, out, err) = tessera_command(&app.db_url, &["keys", "supabase"], &extra).await;
    assert_eq!(code, 0, "{out}{err}");
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwks(&app, "/.well-known/jwks.json").await[0].clone()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    let mut roles = Vec::new();
    for line in out.lines() {
        let (role, key) = line.split_once('=').unwrap();
        assert_eq!(header_of(key).kid.as_deref(), Some("project-kid"));
        let claims =
            jsonwebtoken::decode::<Value>(key, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap().claims;
        assert_eq!((claims["role"].as_str(), claims["iss"].as_str()), (Some(role), Some("supabase")));
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap() + 9 * 365 * 86_400);
        roles.push(role.to_owned());
    }
    assert_eq!(roles, ["anon", "service_role"]);
}

#[tokio::test]
async fn an_asymmetric_server_needs_no_jwt_secret_when_refresh_tokens_have_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = fresh_database(dir.path()).await;
    let file = fixture("jwt-ed25519.pem");
    let mut vars = test_vars(&db_url, &[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY_FILE", &file)]);
    vars.remove("JWT_SECRET_KEY");
    let mut settings = tessera_core::settings::Settings::from_vars(&vars).unwrap();
    settings.ensure_secrets().unwrap();
    assert!(settings.jwt_secret.is_none(), "none generated either");
    let server = tessera::Server::start(settings).await.expect("starts without JWT_SECRET_KEY");
    let base = format!("http://{}", server.addr);
    let client = crate::harness::http_client();
    let body = serde_json::json!({ "email": "ed@example.com", "password": PASSWORD });
    assert_eq!(client.post(format!("{base}/v1/users")).json(&body).send().await.unwrap().status(), StatusCode::CREATED);
    let res = client.post(format!("{base}/v1/auth/login")).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&token).alg, Algorithm::EdDSA);
    server.stop().await.unwrap();
}
