//! Passkeys (SPEC §5.10, issue 29) over HTTP, played by a software authenticator: ES256
//! keys and signatures from ring, attestation objects and COSE keys in CBOR, as a
//! security key writes them. The browser's own authenticator plays them in
//! passkeys_browser.rs; upstream's (auth-js) in the Supabase suite.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::*;

pub const RP_ID: &str = "localhost";
pub const ORIGIN: &str = "http://localhost:5173";

/// The settings of a server whose passkeys live on `http://localhost:5173`.
pub const RP: [(&str, &str); 2] = [("WEBAUTHN_RP_ID", RP_ID), ("WEBAUTHN_RP_ORIGINS", ORIGIN)];

/// A security key holding one discoverable credential.
pub struct SoftKey {
    origin: String,
    rp_id: String,
    pub credential_id: Vec<u8>,
    key: EcdsaKeyPair,
    user_handle: Option<Vec<u8>>,
    pub counter: u32,
    /// Whether it verifies its user (a PIN): the UV flag.
    pub verifies_user: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SoftKey {
    pub fn new() -> SoftKey {
        SoftKey::at(RP_ID, ORIGIN)
    }

    pub fn at(rp_id: &str, origin: &str) -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let credential_id: Vec<u8> = (0..32).map(|_| rand_byte()).collect();
        SoftKey {
            origin: origin.to_owned(),
            rp_id: rp_id.to_owned(),
            credential_id,
            key,
            user_handle: None,
            counter: 0,
            verifies_user: true,
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut f = 0x01;
        if self.verifies_user {
            f |= 0x04;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create()` for these options: `RegistrationResponseJSON`.
    pub fn create(&mut self, options: &Value) -> Value {
        self.user_handle = Some(URL_SAFE_NO_PAD.decode(options["user"]["id"].as_str().unwrap()).unwrap());
        let point = self.key.public_key().as_ref();
        let cose = Cbor::Map(
            [
                (Cbor::Integer(1), Cbor::Integer(2)),
                (Cbor::Integer(3), Cbor::Integer(-7)),
                (Cbor::Integer(-1), Cbor::Integer(1)),
                (Cbor::Integer(-2), Cbor::Bytes(point[1..33].to_vec())),
                (Cbor::Integer(-3), Cbor::Bytes(point[33..65].to_vec())),
            ]
            .into_iter()
            .collect(),
        );
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0x2f; 16]); // an AAGUID
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&serde_cbor_2::to_vec(&cose).unwrap());
        let attestation = Cbor::Map(
            [
                (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
                (Cbor::Text("attStmt".into()), Cbor::Map(Default::default())),
                (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
            ]
            .into_iter()
            .collect(),
        );
        let client_data = self.client_data("webauthn.create", options["challenge"].as_str().unwrap());
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&serde_cbor_2::to_vec(&attestation).unwrap()),
                "clientDataJSON": b64(&client_data),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        })
    }

    /// `navigator.credentials.get()` for these options: `AuthenticationResponseJSON`, its
    /// counter one up.
    pub fn get(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert(options, self.counter)
    }

    /// An assertion with this counter (a clone's, when it is behind).
    pub fn assert(&self, options: &Value, counter: u32) -> Value {
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(false));
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", options["challenge"].as_str().unwrap());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": self.user_handle.as_deref().map(b64),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        })
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).unwrap();
    b[0]
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Registers a passkey on `key` for the holder of `token`: the passkey as answered.
pub async fn register(app: &TestApp, token: &str, key: &mut SoftKey) -> Value {
    let (status, o) = json_of(app.post("/v1/auth/passkeys/registration/options", Some(token), json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    let credential = key.create(&o["options"]);
    let body = json!({ "challenge_id": o["challenge_id"], "credential": credential, "name": "My key" });
    let (status, p) = json_of(app.post("/v1/auth/passkeys/registration/verify", Some(token), body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    p
}

/// Usernameless sign-in options: `(challenge_id, options)`.
async fn sign_in_options(app: &TestApp) -> (Value, Value) {
    let (status, o) = json_of(app.post("/v1/auth/passkeys/authentication/options", None, json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    (o["challenge_id"].clone(), o["options"].clone())
}

async fn verify(app: &TestApp, challenge_id: &Value, credential: Value) -> reqwest::Response {
    app.post(
        "/v1/auth/passkeys/authentication/verify",
        None,
        json!({ "challenge_id": challenge_id, "credential": credential }),
    )
    .await
}

#[tokio::test]
async fn register_then_sign_in_without_an_email_and_use_the_session() {
    let app = TestApp::with(&RP).await;
    let (email, login) = app.user().await;
    let mut key = SoftKey::new();

    let (_, o) =
        json_of(app.post("/v1/auth/passkeys/registration/options", Some(&login.access), json!({})).await).await;
    let opts = &o["options"];
    assert_eq!(opts["rp"]["id"], RP_ID);
    assert_eq!(opts["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(opts["attestation"], "none");
    let algs: Vec<i64> =
        opts["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
    assert_eq!(algs, [-7, -8, -257], "ES256, EdDSA and RS256 offered");
    assert!(o["expires_at"].as_str().is_some(), "{o}");

    let p = register(&app, &login.access, &mut key).await;
    assert_eq!(p["name"], "My key");
    assert_eq!(p["aaguid"], "2f2f2f2f-2f2f-2f2f-2f2f-2f2f2f2f2f2f");
    assert!(p.get("credential").is_none() && p.get("public_key").is_none(), "no key material: {p}");

    // The next registration excludes it.
    let (_, o) =
        json_of(app.post("/v1/auth/passkeys/registration/options", Some(&login.access), json!({})).await).await;
    assert_eq!(o["options"]["excludeCredentials"][0]["id"], URL_SAFE_NO_PAD.encode(&key.credential_id));

    let (challenge, options) = sign_in_options(&app).await;
    assert!(options.get("allowCredentials").is_none(), "usernameless: {options}");
    assert_eq!(options["rpId"], RP_ID);
    let (status, body) = json_of(verify(&app, &challenge, key.get(&options)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], email);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["aal"], "aal2", "the authenticator verified its user");
    let (status, me) = json_of(app.get("/v1/auth/me", Some(access)).await).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some(email.as_str())));

    let (_, list) = json_of(app.get("/v1/auth/passkeys", Some(access)).await).await;
    assert_eq!(list["passkeys"].as_array().unwrap().len(), 1);
    assert!(list["passkeys"][0]["last_used_at"].is_string(), "{list}");
    let audit = app.dump("audit_log").await;
    assert!(audit.contains("passkey.register") && audit.replace('\\', "").contains(r#""method":"passkey""#), "{audit}");
}

#[tokio::test]
async fn replays_foreign_keys_clones_other_origins_and_expired_challenges_are_refused() {
    let app = TestApp::with(&RP).await;
    let (_, login) = app.user().await;
    let mut key = SoftKey::new();
    register(&app, &login.access, &mut key).await;

    // The same challenge twice: the second finds it gone.
    let (challenge, options) = sign_in_options(&app).await;
    let assertion = key.get(&options);
    assert_eq!(verify(&app, &challenge, assertion.clone()).await.status(), StatusCode::OK);
    assert_error(verify(&app, &challenge, assertion).await, StatusCode::BAD_REQUEST, "webauthn_challenge_not_found")
        .await;

    // A key never registered, claiming the same user.
    let mut stranger = SoftKey::new();
    let (_, o) =
        json_of(app.post("/v1/auth/passkeys/registration/options", Some(&login.access), json!({})).await).await;
    stranger.create(&o["options"]);
    let (challenge, options) = sign_in_options(&app).await;
    assert_error(
        verify(&app, &challenge, stranger.get(&options)).await,
        StatusCode::UNAUTHORIZED,
        "webauthn_verification_failed",
    )
    .await;

    // The registered key's id, signed by another key.
    let mut forger = SoftKey::new();
    forger.credential_id = key.credential_id.clone();
    forger.create(&o["options"]);
    let (challenge, options) = sign_in_options(&app).await;
    forger.counter = 100;
    assert_error(
        verify(&app, &challenge, forger.get(&options)).await,
        StatusCode::UNAUTHORIZED,
        "webauthn_verification_failed",
    )
    .await;

    // A clone: a counter behind the last one seen.
    let (challenge, options) = sign_in_options(&app).await;
    let behind = key.assert(&options, 0);
    assert_error(verify(&app, &challenge, behind).await, StatusCode::UNAUTHORIZED, "webauthn_verification_failed")
        .await;
    assert!(app.dump("audit_log").await.contains("passkey.clone_suspected"));

    // Another origin, signed properly by the registered key.
    let (challenge, options) = sign_in_options(&app).await;
    key.origin = "http://evil.localhost:5173".to_owned();
    let assertion = key.get(&options);
    key.origin = ORIGIN.to_owned();
    assert_error(verify(&app, &challenge, assertion).await, StatusCode::UNAUTHORIZED, "webauthn_verification_failed")
        .await;

    // An expired challenge (made so by the clock in the database).
    let (challenge, options) = sign_in_options(&app).await;
    app.sql("UPDATE webauthn_challenges SET expires_at = created_at").await;
    assert_error(
        verify(&app, &challenge, key.get(&options)).await,
        StatusCode::BAD_REQUEST,
        "webauthn_challenge_expired",
    )
    .await;

    // Garbage is a clear 4xx.
    let (challenge, _) = sign_in_options(&app).await;
    assert_error(
        verify(&app, &challenge, json!({ "id": 1 })).await,
        StatusCode::UNAUTHORIZED,
        "webauthn_verification_failed",
    )
    .await;
    let res = app.post("/v1/auth/passkeys/authentication/verify", None, json!({ "challenge_id": "nope" })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn one_challenge_signs_in_once_however_many_ask_at_once_and_on_any_node() {
    let app = TestApp::with(&RP).await;
    let other = app.another_node(&RP).await;
    let (_, login) = app.user().await;
    let mut key = SoftKey::new();
    register(&app, &login.access, &mut key).await;

    let (challenge, options) = sign_in_options(&app).await;
    let assertion = key.get(&options);
    let answers = join_all((0..6).map(|i| {
        let node = if i % 2 == 0 { &app } else { &other };
        verify(node, &challenge, assertion.clone())
    }))
    .await;
    let ok = answers.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(ok, 1, "{:?}", answers.iter().map(|r| r.status()).collect::<Vec<_>>());

    // A clone: two assertions with the same counter for two challenges, at once. One
    // signs in; the other is refused whether it is checked before or after the first is
    // written (the counter check, or the conditional write), and audited.
    key.counter += 5;
    let (c1, o1) = sign_in_options(&app).await;
    let (c2, o2) = sign_in_options(&other).await;
    let (a1, a2) = (key.assert(&o1, key.counter), key.assert(&o2, key.counter));
    let answers = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        join_all([verify(&app, &c1, a1), verify(&other, &c2, a2)]),
    )
    .await
    .expect("no sign-in waits on another");
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);
    assert!(app.dump("audit_log").await.contains("passkey.clone_suspected"));

    // A challenge handed out by one node is honoured by the other.
    let (challenge, options) = sign_in_options(&other).await;
    assert_eq!(verify(&app, &challenge, key.get(&options)).await.status(), StatusCode::OK);
    other.stop().await;
}

#[tokio::test]
async fn an_email_names_the_passkeys_and_an_unknown_one_gets_the_same_shape() {
    let app = TestApp::with(&RP).await;
    let (email, login) = app.user().await;
    let mut key = SoftKey::new();
    register(&app, &login.access, &mut key).await;
    let ask = |e: &str| app.post("/v1/auth/passkeys/authentication/options", None, json!({ "email": e }));
    let (_, known) = json_of(ask(&email).await).await;
    assert_eq!(known["options"]["allowCredentials"][0]["id"], URL_SAFE_NO_PAD.encode(&key.credential_id));
    let (_, unknown) = json_of(ask("nobody-here@example.com").await).await;
    let (_, again) = json_of(ask("nobody-here@example.com").await).await;
    let fake = &unknown["options"]["allowCredentials"];
    assert_eq!(fake.as_array().map(Vec::len), Some(1), "{unknown}");
    assert_eq!(
        fake[0]["id"].as_str().map(str::len),
        known["options"]["allowCredentials"][0]["id"].as_str().map(str::len)
    );
    assert_eq!(fake, &again["options"]["allowCredentials"], "the same stand-in each time");
    // The passkey signs in from the email's options too.
    let assertion = key.get(&known["options"]);
    assert_eq!(verify(&app, &known["challenge_id"], assertion).await.status(), StatusCode::OK);
}

/// The options' body may be left out, or be `null`; whatever else is sent must be a JSON
/// object: whitespace alone is not JSON (found by Schemathesis: a lone `\r` was read as
/// no body).
#[tokio::test]
async fn the_sign_in_options_body_is_left_out_or_a_json_object() {
    let app = TestApp::with(&RP).await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/v1/auth/passkeys/authentication/options"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in ["", "null", "{}", " {} "] {
        assert_eq!(raw(body).await.unwrap().status(), StatusCode::OK, "{body:?}");
    }
    for body in ["\r", " ", "\n\t", "{", "nul"] {
        assert_error(raw(body).await.unwrap(), StatusCode::BAD_REQUEST, "bad_request").await;
    }
    for body in ["[]", "1", "\"a\""] {
        assert_eq!(raw(body).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
    }
}

#[tokio::test]
async fn with_totp_on_a_passkey_signs_in_in_one_step_or_completes_the_second() {
    let app = TestApp::with(&RP).await;
    let (email, login) = app.user().await;
    let mut key = SoftKey::new();
    register(&app, &login.access, &mut key).await;
    let (status, e) = json_of(app.post("/v1/auth/mfa/totp", Some(&login.access), json!({})).await).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let mut totp = Authenticator::new(e["secret"].as_str().unwrap());
    let path = format!("/v1/auth/mfa/totp/{}/activate", e["id"].as_str().unwrap());
    let (status, _) = json_of(app.post(&path, Some(&login.access), json!({ "code": totp.next().await })).await).await;
    assert_eq!(status, StatusCode::OK);

    // One step: the passkey verified its user.
    let (challenge, options) = sign_in_options(&app).await;
    let (status, body) = json_of(verify(&app, &challenge, key.get(&options)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aal"], "aal2");

    // A key that verifies nobody (registered so, from that aal2 session) is a first
    // factor only: the second step follows. A key registered verifying its user must keep
    // doing so (webauthn-rs refuses the downgrade).
    let aal2 = body["access_token"].as_str().unwrap().to_owned();
    let mut no_pin = SoftKey::new();
    no_pin.verifies_user = false;
    register(&app, &aal2, &mut no_pin).await;
    let (challenge, options) = sign_in_options(&app).await;
    let (_, body) = json_of(verify(&app, &challenge, no_pin.get(&options)).await).await;
    assert_eq!(body["mfa_required"], true, "{body}");
    key.verifies_user = false;
    let (challenge, options) = sign_in_options(&app).await;
    assert_error(
        verify(&app, &challenge, key.get(&options)).await,
        StatusCode::UNAUTHORIZED,
        "webauthn_verification_failed",
    )
    .await;
    key.verifies_user = true;
    // The password, then the passkey as the second factor.
    let (_, first) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!(first["methods"], json!(["totp", "recovery_code", "webauthn"]));
    let mfa_token = first["mfa_token"].clone();
    let (status, o) =
        json_of(app.post("/v1/auth/mfa/webauthn/options", None, json!({ "mfa_token": mfa_token })).await).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(o["options"]["allowCredentials"][0]["id"], URL_SAFE_NO_PAD.encode(&key.credential_id));
    // Another key of nobody's is a wrong second factor; the token survives it.
    let mut stranger = SoftKey::new();
    stranger.create(&json!({ "user": { "id": "AAAA" }, "challenge": "x" }));
    let body = json!({ "mfa_token": mfa_token, "webauthn": { "challenge_id": o["challenge_id"], "credential": stranger.get(&o["options"]) } });
    assert_error(app.post("/v1/auth/mfa/verify", None, body).await, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let (_, o) =
        json_of(app.post("/v1/auth/mfa/webauthn/options", None, json!({ "mfa_token": mfa_token })).await).await;
    let body = json!({ "mfa_token": mfa_token, "webauthn": { "challenge_id": o["challenge_id"], "credential": key.get(&o["options"]) } });
    let (status, done) = json_of(app.post("/v1/auth/mfa/verify", None, body).await).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(claims(done["access_token"].as_str().unwrap())["aal"], "aal2");
}

#[tokio::test]
async fn rename_remove_admin_export_and_the_switch() {
    let app = TestApp::with(&RP).await;
    let (_, login) = app.user().await;
    let mut key = SoftKey::new();
    let p = register(&app, &login.access, &mut key).await;
    let id = p["id"].as_str().unwrap();
    let path = format!("/v1/auth/passkeys/{id}");

    let (status, renamed) =
        json_of(app.send(Method::PATCH, &path, Some(&login.access), Some(json!({ "name": "Laptop" }))).await).await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Laptop")));
    let res = app.send(Method::PATCH, &path, Some(&login.access), Some(json!({ "name": " " }))).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .send(
            Method::PATCH,
            "/v1/auth/passkeys/0190d2b8-0000-7000-8000-000000000000",
            Some(&login.access),
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_error(res, StatusCode::NOT_FOUND, "passkey_not_found").await;

    // Another user cannot touch it.
    let (_, other) = app.user().await;
    let res = app.send(Method::DELETE, &path, Some(&other.access), None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The export lists it without a key.
    let export = app.get("/v1/users/me/export", Some(&login.access)).await.text().await.unwrap();
    let doc: Value = serde_json::from_str(&export).unwrap();
    assert_eq!(doc["passkeys"][0]["name"], "Laptop");
    assert!(!export.contains("\"cred\"") && !export.contains(&URL_SAFE_NO_PAD.encode(&key.credential_id)), "{export}");

    // An admin lists and removes it.
    let admin_email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
    app.register(&admin_email, PASSWORD).await;
    app.sql(&format!("UPDATE users SET role = 'admin' WHERE email = '{admin_email}'")).await;
    let admin = app.login(&admin_email, PASSWORD).await;
    let user_id = login.body["user"]["id"].as_str().unwrap();
    let (status, listed) =
        json_of(app.get(&format!("/v1/admin/users/{user_id}/passkeys"), Some(&admin.access)).await).await;
    assert_eq!((status, listed["passkeys"][0]["id"].as_str()), (StatusCode::OK, Some(id)));
    let res = app.get(&format!("/v1/admin/users/{user_id}/passkeys"), Some(&other.access)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res =
        app.send(Method::DELETE, &format!("/v1/admin/users/{user_id}/passkeys/{id}"), Some(&admin.access), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (challenge, options) = sign_in_options(&app).await;
    assert_error(
        verify(&app, &challenge, key.get(&options)).await,
        StatusCode::UNAUTHORIZED,
        "webauthn_verification_failed",
    )
    .await;

    // The owner's own removal.
    let p = register(&app, &login.access, &mut SoftKey::new()).await;
    let res = app
        .send(Method::DELETE, &format!("/v1/auth/passkeys/{}", p["id"].as_str().unwrap()), Some(&login.access), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, list) = json_of(app.get("/v1/auth/passkeys", Some(&login.access)).await).await;
    assert_eq!(list["passkeys"], json!([]));
    let audit = app.dump("audit_log").await;
    for event in ["passkey.rename", "passkey.remove", "admin.user.passkey_removed"] {
        assert!(audit.contains(event), "{event}");
    }

    // PASSKEYS_ENABLED=false closes every passkey route.
    let off = app.another_node(&[("PASSKEYS_ENABLED", "false")]).await;
    assert_error(
        off.post("/v1/auth/passkeys/authentication/options", None, json!({})).await,
        StatusCode::NOT_FOUND,
        "passkey_disabled",
    )
    .await;
    off.stop().await;
}

#[tokio::test]
async fn a_broken_relying_party_is_named_at_start() {
    let vars = test_vars(
        "sqlite::memory:",
        &[("WEBAUTHN_RP_ID", "example.com"), ("WEBAUTHN_RP_ORIGINS", "https://evil.test")],
    );
    let settings = tessera_core::settings::Settings::from_vars(&vars).unwrap();
    let problems = tessera_core::start_problems(&settings, None).await;
    assert!(problems.iter().any(|p| p.contains("WEBAUTHN_RP_ORIGINS") && p.contains("evil.test")), "{problems:?}");
}

#[tokio::test]
async fn the_supabase_surface_speaks_gotrue_passkeys() {
    let app = TestApp::with(&RP).await;
    let (email, _) = app.user().await;
    let (_, session) = json_of(
        app.post("/auth/v1/token?grant_type=password", None, json!({ "email": email, "password": PASSWORD })).await,
    )
    .await;
    let token = session["access_token"].as_str().unwrap();
    let mut key = SoftKey::new();
    let (status, o) = json_of(app.post("/auth/v1/passkeys/registration/options", Some(token), json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert!(o["expires_at"].is_i64(), "Unix seconds: {o}");
    let body = json!({ "challenge_id": o["challenge_id"], "credential": key.create(&o["options"]) });
    let (status, p) = json_of(app.post("/auth/v1/passkeys/registration/verify", Some(token), body).await).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["friendly_name"], "Passkey");

    let (_, o) = json_of(app.post("/auth/v1/passkeys/authentication/options", None, json!({})).await).await;
    let body = json!({ "challenge_id": o["challenge_id"], "credential": key.get(&o["options"]) });
    let (status, s) = json_of(app.post("/auth/v1/passkeys/authentication/verify", None, body.clone()).await).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["user"]["email"], email);
    assert!(s["refresh_token"].is_string());
    let amr = |token: &str| claims(token)["amr"].clone();
    assert_eq!(amr(s["access_token"].as_str().unwrap())[0]["method"], "passkey");
    assert_eq!(claims(s["access_token"].as_str().unwrap())["aal"], "aal2");
    // A refresh keeps saying how the session was proven.
    let (_, r) = json_of(
        app.post("/auth/v1/token?grant_type=refresh_token", None, json!({ "refresh_token": s["refresh_token"] })).await,
    )
    .await;
    assert_eq!(
        amr(r["access_token"].as_str().unwrap()),
        json!([{ "method": "passkey", "timestamp": claims(r["access_token"].as_str().unwrap())["iat"] }])
    );
    let (status, e) = json_of(app.post("/auth/v1/passkeys/authentication/verify", None, body).await).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::BAD_REQUEST, Some("webauthn_challenge_not_found")));
    let (status, e) = json_of(
        app.post("/auth/v1/passkeys/authentication/verify", None, json!({ "challenge_id": "x", "credential": {} }))
            .await,
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::BAD_REQUEST, Some("validation_failed")));
    let (status, list) = json_of(app.get("/auth/v1/passkeys", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list[0]["last_used_at"].is_string(), "{list}");
}

#[tokio::test]
async fn a_supabase_webauthn_factor_is_created_then_requested_and_steps_up_the_session() {
    let app = TestApp::with(&RP).await;
    let (email, _) = app.user().await;
    let sign_in = || async {
        let (_, s) = json_of(
            app.post("/auth/v1/token?grant_type=password", None, json!({ "email": email, "password": PASSWORD })).await,
        )
        .await;
        s["access_token"].as_str().unwrap().to_owned()
    };
    let token = sign_in().await;
    let (status, f) = json_of(
        app.post("/auth/v1/factors", Some(&token), json!({ "factor_type": "webauthn", "friendly_name": "" })).await,
    )
    .await;
    assert_eq!((status, f["type"].as_str()), (StatusCode::OK, Some("webauthn")), "{f}");
    let factor = f["id"].as_str().unwrap().to_owned();
    let mut key = SoftKey::new();

    let (status, c) =
        json_of(app.post(&format!("/auth/v1/factors/{factor}/challenge"), Some(&token), json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["webauthn"]["type"], "create");
    let options = &c["webauthn"]["credential_options"]["publicKey"];
    let body = json!({ "challenge_id": c["id"], "webauthn": { "type": "create", "rpId": RP_ID, "credential_response": key.create(options) } });
    let (status, s) = json_of(app.post(&format!("/auth/v1/factors/{factor}/verify"), Some(&token), body).await).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(claims(s["access_token"].as_str().unwrap())["aal"], "aal2");
    assert_eq!(s["user"]["factors"][0]["factor_type"], "webauthn");
    assert_eq!(s["user"]["factors"][0]["status"], "verified");

    // A new session is aal1 until the factor is asserted.
    let token = sign_in().await;
    assert_eq!(claims(&token)["aal"], "aal1");
    let (_, c) =
        json_of(app.post(&format!("/auth/v1/factors/{factor}/challenge"), Some(&token), json!({})).await).await;
    assert_eq!(c["webauthn"]["type"], "request");
    let options = c["webauthn"]["credential_options"]["publicKey"].clone();
    assert_eq!(options["allowCredentials"][0]["id"], URL_SAFE_NO_PAD.encode(&key.credential_id));
    // A code is no answer to a WebAuthn factor.
    let res = app
        .post(
            &format!("/auth/v1/factors/{factor}/verify"),
            Some(&token),
            json!({ "challenge_id": c["id"], "code": "123456" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "no TOTP challenge has this id");
    let (_, c) =
        json_of(app.post(&format!("/auth/v1/factors/{factor}/challenge"), Some(&token), json!({})).await).await;
    let options = c["webauthn"]["credential_options"]["publicKey"].clone();
    let body =
        json!({ "challenge_id": c["id"], "webauthn": { "type": "request", "credential_response": key.get(&options) } });
    let (status, s) =
        json_of(app.post(&format!("/auth/v1/factors/{factor}/verify"), Some(&token), body.clone()).await).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(claims(s["access_token"].as_str().unwrap())["aal"], "aal2");
    // The same answer again finds its challenge gone.
    let res = app.post(&format!("/auth/v1/factors/{factor}/verify"), Some(&token), body).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The native surface asks for the second step, as for any factor.
    let (_, first) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!(first["mfa_required"], true, "{first}");
}

#[tokio::test]
async fn wrong_assertions_of_a_webauthn_factor_count_toward_the_lockout() {
    let settings = [
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("RATE_LIMIT_VERIFY", "1000/1m"),
        RP[0],
        RP[1],
    ];
    let app = TestApp::with(&settings).await;
    let (email, _) = app.user().await;
    let password = json!({ "email": email, "password": PASSWORD });
    let token = |s: Value| s["access_token"].as_str().unwrap().to_owned();
    let (_, s) = json_of(app.post("/auth/v1/token?grant_type=password", None, password.clone()).await).await;
    let access = token(s);
    let (_, f) = json_of(app.post("/auth/v1/factors", Some(&access), json!({ "factor_type": "webauthn" })).await).await;
    let factor = f["id"].as_str().unwrap().to_owned();
    let (challenge, verify) =
        (format!("/auth/v1/factors/{factor}/challenge"), format!("/auth/v1/factors/{factor}/verify"));
    let mut key = SoftKey::new();
    let (_, c) = json_of(app.post(&challenge, Some(&access), json!({})).await).await;
    let credential = key.create(&c["webauthn"]["credential_options"]["publicKey"]);
    let body = json!({ "challenge_id": c["id"], "webauthn": { "type": "create", "credential_response": credential } });
    assert_eq!(app.post(&verify, Some(&access), body).await.status(), StatusCode::OK);

    // A new aal1 session asserts the factor with a key that is not it, five times.
    let (_, s) = json_of(app.post("/auth/v1/token?grant_type=password", None, password.clone()).await).await;
    let access = token(s);
    let mut stranger = SoftKey::new();
    stranger.credential_id = key.credential_id.clone();
    stranger.create(&json!({ "user": { "id": "AAAA" }, "challenge": "x" }));
    for _ in 0..5 {
        let (_, c) = json_of(app.post(&challenge, Some(&access), json!({})).await).await;
        let assertion = stranger.get(&c["webauthn"]["credential_options"]["publicKey"]);
        let body =
            json!({ "challenge_id": c["id"], "webauthn": { "type": "request", "credential_response": assertion } });
        let (status, e) = json_of(app.post(&verify, Some(&access), body).await).await;
        assert_eq!((status, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("mfa_verification_failed")));
    }
    let (status, e) = json_of(app.post("/auth/v1/token?grant_type=password", None, password).await).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("over_request_rate_limit")), "{e}");
}
