//! Passkeys (SPEC §5.10, issue 29) in a real headless Chromium with JavaScript on and
//! WebDriver's virtual authenticators: a page of tessera's own origin
//! (`http://localhost:PORT`, the relying party `localhost`) calls the API with `fetch`
//! and `navigator.credentials.create/get`, through the W3C JSON forms
//! (`PublicKeyCredential.parse*OptionsFromJSON`, `credential.toJSON()`) with no glue.
//! Registration, the usernameless sign-in, the passkey as the only step for a TOTP user
//! and as the second step after a password, the refusals (another authenticator's key,
//! a replayed assertion, an expired challenge), and the console's passkey sign-in and
//! an admin removing a user's passkey (and the console's passkey routes over plain HTTP).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admin::{csrf_of, ConsoleHttp};
use crate::browser::Browser;
use crate::harness::*;
use crate::mfa::{claims, user_with_mfa};

const ADMIN_EMAIL: &str = "root@example.com";

/// A P-256 private key (PKCS#8, base64url) no passkey of the tests was made with: the
/// key of a credential that only claims a registered credential's id.
const FOREIGN_KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgotcBdrPWqPY6dJaFOZkHajyDJ0MeNEAk8wt_5xqlDVGhRANCAASQsejjqeBG3hHYq8JQ2pATtvpJpTNc9lfkWJDVO0V7lU6Xo7YnFBY0NUSDuql84-FUOznSXSwBuwUYOkN7egD6";

/// What every script the page runs starts with: the API over `fetch`, and the two
/// ceremonies from and to the W3C JSON forms.
const PAGE_LIBRARY: &str = r#"
async function api(method, path, body, token) {
  const headers = { "Accept": "application/json" };
  if (body !== null && body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = "Bearer " + token;
  const res = await fetch(path, { method, headers, body: body == null ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch (e) {}
  return { status: res.status, body: parsed };
}
async function createPasskey(options) {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  return (await navigator.credentials.create({ publicKey })).toJSON();
}
async function getPasskey(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  return (await navigator.credentials.get({ publicKey })).toJSON();
}
"#;

/// Registers a passkey for the bearer of `args[0]`, named `args[1]`.
const REGISTER: &str = r#"
const [token, name] = args;
const options = await api("POST", "/v1/auth/passkeys/registration/options", {}, token);
if (options.status !== 200) return { options };
const credential = await createPasskey(options.body.options);
const body = { challenge_id: options.body.challenge_id, credential, name };
const verify = await api("POST", "/v1/auth/passkeys/registration/verify", body, token);
return { options, credential, verify };
"#;

/// Signs in with a passkey the authenticator offers, no email typed.
const SIGN_IN: &str = r#"
const options = await api("POST", "/v1/auth/passkeys/authentication/options", {});
if (options.status !== 200) return { options };
const credential = await getPasskey(options.body.options);
const body = { challenge_id: options.body.challenge_id, credential };
const verify = await api("POST", "/v1/auth/passkeys/authentication/verify", body);
return { options, credential, verify };
"#;

/// The second step of a password sign-in (`args[0]`: its `mfa_token`) with a passkey.
const SECOND_STEP: &str = r#"
const [mfa_token] = args;
const options = await api("POST", "/v1/auth/mfa/webauthn/options", { mfa_token });
if (options.status !== 200) return { options };
const credential = await getPasskey(options.body.options);
const webauthn = { challenge_id: options.body.challenge_id, credential };
const verify = await api("POST", "/v1/auth/mfa/verify", { mfa_token, webauthn });
return { options, credential, verify };
"#;

/// tessera on a port its relying party names, and a Chromium with JavaScript on and one
/// virtual authenticator, showing a page of tessera's origin.
struct Rig {
    app: TestApp,
    browser: Browser,
    /// `http://localhost:PORT`: the page's origin, the one the relying party accepts.
    origin: String,
    /// The virtual authenticator.
    authenticator: String,
}

impl Rig {
    /// The server's settings are the test settings, the relying party's, and `extra`.
    async fn start(extra: &[(&str, &str)]) -> Rig {
        let port = free_port().to_string();
        let origin = format!("http://localhost:{port}");
        let mut vars = vec![
            ("PORT", port.as_str()),
            ("WEBAUTHN_RP_ID", "localhost"),
            ("WEBAUTHN_RP_ORIGINS", origin.as_str()),
            ("WEBAUTHN_RP_NAME", "Tessera Test"),
        ];
        vars.extend_from_slice(extra);
        let app = TestApp::with(&vars).await;
        let browser = Browser::start_with_javascript().await;
        let authenticator = browser.add_authenticator().await;
        let rig = Rig { app, browser, origin, authenticator };
        rig.open_api_page().await;
        rig
    }

    /// Shows a page of tessera's origin whose scripts may call the API. The API's pages
    /// forbid every fetch (`default-src 'none'`); a test's script stands in for an app's
    /// page of the same origin, so that page's CSP is lifted.
    async fn open_api_page(&self) {
        self.browser.bypass_csp(true).await;
        self.browser.open(&format!("{}/health", self.origin)).await;
    }

    /// Runs `body` (an async function body; `args` holds `args`) in the page, after
    /// [`PAGE_LIBRARY`]: what it returned, or the name and message of what it threw.
    async fn run(&self, body: &str, args: Vec<Value>) -> Result<Value, String> {
        let script = format!(
            "{PAGE_LIBRARY}\nconst done = arguments[arguments.length - 1];\n\
             (async (args) => {{ {body} }})(Array.from(arguments).slice(0, -1))\n\
             .then(value => done({{ value }}), e => done({{ error: `${{e.name}}: ${{e.message}}` }}));"
        );
        let out = self.browser.execute_async(&script, args).await;
        match out.get("error").and_then(Value::as_str) {
            Some(e) => Err(e.to_owned()),
            None => Ok(out["value"].clone()),
        }
    }

    /// Registers a passkey named `name` for the bearer of `token` through the page:
    /// the ceremony's steps, each `{status, body}`, and the credential.
    async fn register(&self, token: &str, name: &str) -> Value {
        let out = self.run(REGISTER, vec![json!(token), json!(name)]).await.unwrap();
        assert_eq!(out["options"]["status"], 200, "registration options: {out}");
        assert_eq!(out["verify"]["status"], 201, "registration: {out}");
        out
    }

    /// The usernameless sign-in through the page: the options, the assertion and the
    /// answer to it (whatever it is).
    async fn sign_in(&self) -> Value {
        let out = self.run(SIGN_IN, vec![]).await.unwrap();
        assert_eq!(out["options"]["status"], 200, "authentication options: {out}");
        out
    }

    /// The usernameless sign-in, which must open a session: its answer.
    async fn signed_in(&self) -> Value {
        let out = self.sign_in().await;
        assert_eq!(out["verify"]["status"], 200, "passkey sign-in: {out}");
        out["verify"]["body"].clone()
    }

    /// The credentials the virtual authenticator holds.
    async fn held(&self) -> Vec<Value> {
        self.browser.credentials(&self.authenticator).await
    }
}

/// The access token of a sign-in answer.
fn access_of(answer: &Value) -> String {
    answer["access_token"].as_str().unwrap_or_else(|| panic!("no access token in {answer}")).to_owned()
}

/// The user's passkeys, through the API.
async fn passkeys_of(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = json_of(app.get("/v1/auth/passkeys", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["passkeys"].as_array().unwrap_or_else(|| panic!("no list of passkeys: {body}")).clone()
}

/// Signs out the session of `token` (the API answers 204) and checks the token is dead.
async fn sign_out(app: &TestApp, token: &str) {
    assert_eq!(app.post("/v1/auth/logout", Some(token), json!({})).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/auth/me", Some(token)).await.status(), StatusCode::UNAUTHORIZED);
}

/// A sign-in answer (`{status, body}`) that opened nothing: the SPEC §6 error `code`
/// with `status`, and no token.
fn assert_refused(answer: &Value, status: StatusCode, code: &str, what: &str) {
    assert_eq!(answer["status"], status.as_u16(), "{what}: {answer}");
    let body = &answer["body"];
    assert_eq!(body["error_code"], code, "{what}: {answer}");
    assert!(body["detail"].is_string() && body.get("access_token").is_none(), "{what}: {answer}");
}

/// Posts an assertion to the sign-in's verify call from outside the browser (as whoever
/// captured it would): `{status, body}`.
async fn post_assertion(app: &TestApp, challenge_id: &Value, credential: &Value) -> Value {
    let body = json!({ "challenge_id": challenge_id, "credential": credential });
    let (status, body) = json_of(app.post("/v1/auth/passkeys/authentication/verify", None, body).await).await;
    json!({ "status": status.as_u16(), "body": body })
}

#[tokio::test]
async fn a_passkey_registered_in_chromium_signs_in_with_no_email_typed() {
    let rig = Rig::start(&[]).await;
    let (email, login) = rig.app.user().await;

    let reg = rig.register(&login.access, "Laptop").await;
    let options = &reg["options"]["body"];
    assert!(options["challenge_id"].is_string() && options["expires_at"].is_string(), "{options}");
    let creation = &options["options"];
    assert_eq!(creation["rp"]["id"], "localhost", "{creation}");
    assert_eq!(creation["rp"]["name"], "Tessera Test", "{creation}");
    assert_eq!(creation["authenticatorSelection"]["residentKey"], "required", "discoverable: {creation}");
    let algs: Vec<i64> =
        creation["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
    for alg in [-7, -8, -257] {
        assert!(algs.contains(&alg), "ES256, EdDSA and RS256 offered: {algs:?}");
    }
    let registered = &reg["verify"]["body"];
    assert_eq!(registered["name"], "Laptop", "{registered}");
    assert!(registered["last_used_at"].is_null() && registered["backed_up"].is_boolean(), "{registered}");
    let listed = passkeys_of(&rig.app, &login.access).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], registered["id"]);
    let held = rig.held().await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], true, "a discoverable credential: {held:?}");
    assert_eq!(held[0]["rpId"], "localhost");
    assert_eq!(held[0]["credentialId"], reg["credential"]["id"]);

    // A second registration excludes the first passkey.
    let (_, again) =
        json_of(rig.app.post("/v1/auth/passkeys/registration/options", Some(&login.access), json!({})).await).await;
    let excluded: Vec<&Value> =
        again["options"]["excludeCredentials"].as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(excluded, vec![&reg["credential"]["id"]], "{again}");

    sign_out(&rig.app, &login.access).await;
    let out = rig.sign_in().await;
    let request = &out["options"]["body"]["options"];
    assert!(
        request.get("allowCredentials").is_none_or(|a| a.as_array().is_some_and(Vec::is_empty)),
        "no allowCredentials without an email: {request}"
    );
    assert_eq!(request["rpId"], "localhost", "{request}");
    assert_eq!(out["credential"]["id"], reg["credential"]["id"], "the authenticator offered the passkey");
    assert_eq!(out["verify"]["status"], 200, "{out}");
    let answer = &out["verify"]["body"];
    assert_eq!(answer["token_type"], "bearer", "{answer}");
    assert_eq!(answer["user"]["email"], email.as_str(), "{answer}");
    let access = access_of(answer);
    assert_eq!(claims(&access)["aal"], "aal2", "the authenticator verified its user");
    let (status, me) = json_of(rig.app.get("/v1/auth/me", Some(&access)).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], email.as_str());

    let listed = passkeys_of(&rig.app, &access).await;
    assert!(listed[0]["last_used_at"].is_string(), "the sign-in is remembered: {listed:?}");
}

#[tokio::test]
async fn a_totp_user_signs_in_with_a_passkey_in_one_step_at_aal2() {
    let rig = Rig::start(&[]).await;
    let (email, _, _, _, aal2) = user_with_mfa(&rig.app).await;
    rig.register(&aal2, "Phone").await;
    sign_out(&rig.app, &aal2).await;

    let (status, body) =
        json_of(rig.app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!((status, &body["mfa_required"]), (StatusCode::OK, &json!(true)), "a password needs a code: {body}");

    let answer = rig.signed_in().await;
    assert!(answer.get("mfa_required").is_none_or(|m| m == false), "the passkey is the whole sign-in: {answer}");
    let access = access_of(&answer);
    assert_eq!(claims(&access)["aal"], "aal2", "{answer}");
    let (status, me) = json_of(rig.app.get("/v1/auth/me", Some(&access)).await).await;
    assert_eq!((status, &me["email"]), (StatusCode::OK, &json!(email)), "{me}");
}

#[tokio::test]
async fn a_passkey_is_the_second_step_after_a_password() {
    let rig = Rig::start(&[]).await;
    let (email, _, _, _, aal2) = user_with_mfa(&rig.app).await;
    let reg = rig.register(&aal2, "Key").await;
    sign_out(&rig.app, &aal2).await;

    let (status, first) =
        json_of(rig.app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["mfa_required"], true, "{first}");
    assert_eq!(first["methods"], json!(["totp", "recovery_code", "webauthn"]), "{first}");
    assert!(first.get("access_token").is_none(), "{first}");
    let mfa_token = first["mfa_token"].as_str().unwrap();

    let out = rig.run(SECOND_STEP, vec![json!(mfa_token)]).await.unwrap();
    assert_eq!(out["options"]["status"], 200, "{out}");
    let allowed: Vec<&Value> = out["options"]["body"]["options"]["allowCredentials"]
        .as_array()
        .unwrap_or_else(|| panic!("the user's passkeys are named: {out}"))
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(allowed, vec![&reg["credential"]["id"]], "{out}");
    assert_eq!(out["verify"]["status"], 200, "{out}");
    let access = access_of(&out["verify"]["body"]);
    assert_eq!(claims(&access)["aal"], "aal2");
    assert_eq!(rig.app.get("/v1/auth/me", Some(&access)).await.status(), StatusCode::OK);

    // The mfa_token is spent.
    let res = rig
        .app
        .post(
            "/v1/auth/mfa/verify",
            None,
            json!({ "mfa_token": mfa_token, "webauthn": { "challenge_id": out["options"]["body"]["challenge_id"], "credential": out["credential"] } }),
        )
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
}

#[tokio::test]
async fn a_credential_of_another_authenticator_is_refused() {
    let rig = Rig::start(&[]).await;
    let (_, login) = rig.app.user().await;
    let reg = rig.register(&login.access, "Laptop").await;
    let original = rig.held().await.remove(0);
    sign_out(&rig.app, &login.access).await;

    // Authenticator A is gone; B holds a credential of its own for the same site and
    // user, under the registered credential's id.
    rig.browser.remove_authenticator(&rig.authenticator).await;
    let other = rig.browser.add_authenticator().await;
    let forged = json!({
        "credentialId": original["credentialId"],
        "isResidentCredential": true,
        "rpId": "localhost",
        "userHandle": original["userHandle"],
        "privateKey": FOREIGN_KEY,
        "signCount": 0,
    });
    rig.browser.add_credential(&other, forged).await;
    let out = rig.sign_in().await;
    assert_eq!(out["credential"]["id"], reg["credential"]["id"], "B offered its credential: {out}");
    let refused = StatusCode::UNAUTHORIZED;
    assert_refused(
        &out["verify"],
        refused,
        "webauthn_verification_failed",
        "a key the passkey was not registered with",
    );

    // Under an id of its own, the same.
    rig.browser.remove_credentials(&other).await;
    let own = json!({
        "credentialId": "b3duLWNyZWRlbnRpYWwtb2YtYg",
        "isResidentCredential": true,
        "rpId": "localhost",
        "userHandle": original["userHandle"],
        "privateKey": FOREIGN_KEY,
        "signCount": 0,
    });
    rig.browser.add_credential(&other, own).await;
    let out = rig.sign_in().await;
    assert_eq!(out["credential"]["id"], "b3duLWNyZWRlbnRpYWwtb2YtYg", "{out}");
    assert_refused(&out["verify"], refused, "webauthn_verification_failed", "a credential never registered");

    // The registered credential itself, moved into B with its key, still signs in: the
    // refusals were the keys'.
    rig.browser.remove_credentials(&other).await;
    rig.browser.add_credential(&other, original).await;
    let answer = rig.signed_in().await;
    assert_eq!(rig.app.get("/v1/auth/me", Some(&access_of(&answer))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_assertion_a_reused_challenge_and_an_expired_one_are_refused() {
    let rig = Rig::start(&[]).await;
    let (_, login) = rig.app.user().await;
    rig.register(&login.access, "Laptop").await;
    sign_out(&rig.app, &login.access).await;

    let out = rig.sign_in().await;
    assert_eq!(out["verify"]["status"], 200, "{out}");
    let challenge_id = &out["options"]["body"]["challenge_id"];

    // The same assertion again: its challenge is spent.
    let replay = post_assertion(&rig.app, challenge_id, &out["credential"]).await;
    let gone = StatusCode::BAD_REQUEST;
    assert_refused(&replay, gone, "webauthn_challenge_not_found", "a replayed assertion");

    // A fresh assertion over the spent challenge: refused as well.
    let options = out["options"]["body"]["options"].clone();
    let fresh = rig.run("return await getPasskey(args[0]);", vec![options]).await.unwrap();
    assert_ne!(fresh["response"]["signature"], out["credential"]["response"]["signature"], "a new signature");
    let again = post_assertion(&rig.app, challenge_id, &fresh).await;
    assert_refused(&again, gone, "webauthn_challenge_not_found", "a used challenge");

    // A challenge past its five minutes (its row aged, as no endpoint does) is refused,
    // though the assertion over it is sound.
    let (status, options) =
        json_of(rig.app.post("/v1/auth/passkeys/authentication/options", None, json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let assertion = rig.run("return await getPasskey(args[0]);", vec![options["options"].clone()]).await.unwrap();
    rig.app.sql("UPDATE webauthn_challenges SET expires_at = created_at").await;
    let late = post_assertion(&rig.app, &options["challenge_id"], &assertion).await;
    assert_refused(&late, gone, "webauthn_challenge_expired", "an expired challenge");
    let late = post_assertion(&rig.app, &options["challenge_id"], &assertion).await;
    assert_refused(&late, gone, "webauthn_challenge_not_found", "an expired challenge is gone once tried");
}

// --- the console -----------------------------------------------------------------------

/// A console server (its first admin from FIRST_ADMIN_*), with the relying party.
async fn console_rig() -> Rig {
    Rig::start(&[("FIRST_ADMIN_EMAIL", ADMIN_EMAIL), ("FIRST_ADMIN_PASSWORD", PASSWORD)]).await
}

/// Audit events through the admin API (`query`: its filters), newest first.
async fn audit(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (status, page) = json_of(app.get(&format!("/v1/admin/audit?{query}&limit=100"), Some(admin)).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Opens the console's sign-in page with the console's own CSP, and clicks **Sign in
/// with a passkey** (which the script shows): the browser is on the page that answered.
async fn console_passkey_sign_in(rig: &Rig) {
    rig.browser.bypass_csp(false).await;
    rig.browser.open(&format!("{}/admin/sign-in", rig.origin)).await;
    assert_eq!(rig.browser.count("form#sign-in input#password").await, 1, "the password form stays");
    let button = rig.browser.find("form#passkey button#passkey-sign-in").await;
    assert!(rig.browser.displayed(&button).await, "the script shows the button: {}", rig.browser.source().await);
    assert_eq!(rig.browser.count("form#passkey input[name=csrf]").await, 1, "the form's CSRF token");
    rig.browser.submit_el(&button).await;
}

#[tokio::test]
async fn console_an_admin_signs_in_with_a_passkey() {
    let rig = console_rig().await;
    let admin = rig.app.login(ADMIN_EMAIL, PASSWORD).await;
    let admin_id = admin.body["user"]["id"].clone();
    rig.register(&admin.access, "Admin laptop").await;
    sign_out(&rig.app, &admin.access).await;

    // The console's pages keep their CSP: the script fetches under `connect-src 'self'`.
    console_passkey_sign_in(&rig).await;
    rig.browser.wait_for("chart-signups").await;
    assert_eq!(rig.browser.url().await, format!("{}/admin", rig.origin), "the dashboard");
    assert!(rig.browser.text("#sign-out .who").await.contains(ADMIN_EMAIL));
    let cookies = rig.browser.cookies().await;
    let console = cookies.iter().find(|c| c["name"] == "tessera_console").expect("the session cookie");
    assert_eq!((console["httpOnly"].as_bool(), console["path"].as_str()), (Some(true), Some("/admin")), "{console}");
    assert!(cookies.iter().any(|c| c["name"] == "tessera_console_refresh"), "{cookies:?}");

    // An ordinary session, opened by the passkey, listed with the admin's others.
    let admin = rig.app.login(ADMIN_EMAIL, PASSWORD).await;
    let (_, sessions) = json_of(rig.app.get("/v1/auth/sessions", Some(&admin.access)).await).await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(2), "the console's and this one: {sessions}");
    let query = format!("event=login.success&user_id={}", admin_id.as_str().unwrap());
    let events = audit(&rig.app, &admin.access, &query).await;
    let methods: Vec<&Value> = events.iter().map(|e| &e["detail"]["method"]).collect();
    assert_eq!(methods, [&Value::Null, &json!("passkey"), &Value::Null], "password, the console's passkey, password");
}

#[tokio::test]
async fn console_an_admin_sees_and_removes_a_users_passkey() {
    let rig = console_rig().await;
    let (email, login) = rig.app.user().await;
    let user_id = login.body["user"]["id"].as_str().unwrap().to_owned();
    let reg = rig.register(&login.access, "Work phone").await;
    let passkey = &reg["verify"]["body"];
    let passkey_id = passkey["id"].as_str().unwrap().to_owned();

    rig.browser.bypass_csp(false).await;
    rig.browser.open(&format!("{}/admin/sign-in", rig.origin)).await;
    rig.browser.fill("form#sign-in input#email", ADMIN_EMAIL).await;
    rig.browser.fill("form#sign-in input#password", PASSWORD).await;
    rig.browser.submit("button#sign-in-submit").await;
    rig.browser.open(&format!("{}/admin/users/{user_id}", rig.origin)).await;
    rig.browser.wait_for(&email).await;
    let rows = rig.browser.find_all("table#passkeys tbody tr.passkey").await;
    assert_eq!(rows.len(), 1, "{}", rig.browser.source().await);
    let mut cells = Vec::new();
    for td in rig.browser.find_all_in(&rows[0], "td").await {
        cells.push(rig.browser.text_of(&td).await);
    }
    let backed_up = if passkey["backed_up"] == true { "yes" } else { "no" };
    assert_eq!(cells[0], "Work phone", "{cells:?}");
    assert!(
        cells[1].starts_with(&passkey["created_at"].as_str().unwrap()[..10]) && cells[1].ends_with("UTC"),
        "{cells:?}"
    );
    assert_eq!((cells[2].as_str(), cells[3].as_str()), ("never", backed_up), "last used, backed up: {cells:?}");
    let form = rig.browser.find(&format!("form[action='/admin/users/{user_id}/passkeys/{passkey_id}/remove']")).await;
    assert_eq!(rig.browser.find_all_in(&form, "input[name=csrf]").await.len(), 1, "the form carries the CSRF token");

    rig.browser.submit_el(&rig.browser.find_in(&form, "button").await).await;
    let html = rig.browser.wait_for("passkey is removed").await;
    assert!(rig.browser.url().await.ends_with(&format!("/admin/users/{user_id}?done=passkey")), "{html}");
    assert_eq!(rig.browser.count("table#passkeys tbody tr.passkey").await, 0, "{html}");
    assert!(passkeys_of(&rig.app, &login.access).await.is_empty());
    let admin = rig.app.login(ADMIN_EMAIL, PASSWORD).await;
    let events = audit(&rig.app, &admin.access, "event=admin.user.passkey_removed").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((&events[0]["user_id"], &events[0]["detail"]["passkey_id"]), (&json!(user_id), &json!(passkey_id)));
    assert_eq!(events[0]["actor_id"], admin.body["user"]["id"], "{events:?}");

    // The authenticator still holds the credential; tessera no longer takes it, on the
    // console (the sign-in page says why) nor on the API.
    rig.browser.submit("form#sign-out button").await;
    console_passkey_sign_in(&rig).await;
    let html = rig.browser.wait_for("The passkey could not be verified.").await;
    assert_eq!(rig.browser.count("form#sign-out").await, 0, "not signed in: {html}");
    assert!(!rig.browser.cookies().await.iter().any(|c| c["name"] == "tessera_console"), "no session cookie");
    rig.open_api_page().await;
    let out = rig.sign_in().await;
    assert_refused(&out["verify"], StatusCode::UNAUTHORIZED, "webauthn_verification_failed", "a removed passkey");
}

/// The console's passkey routes from outside a browser: the options need the sign-in
/// form's token, an answer that is no passkey's is refused on the sign-in page, and with
/// `PASSKEYS_ENABLED=false` the page offers no passkey and the options answer 404.
#[tokio::test]
async fn console_passkey_routes_check_the_form_token_and_follow_passkeys_enabled() {
    for enabled in [true, false] {
        let vars = [
            ("PASSKEYS_ENABLED", if enabled { "true" } else { "false" }),
            ("WEBAUTHN_RP_ID", "localhost"),
            ("WEBAUTHN_RP_ORIGINS", "http://localhost:8000"),
        ];
        let app = TestApp::with(&vars).await;
        let mut console = ConsoleHttp::new(&app);
        let (_, page) = console.get("/admin/sign-in").await;
        assert_eq!(page.contains("id=\"passkey-sign-in\""), enabled, "passkeys on: {enabled}: {page}");
        let csrf = csrf_of(&page);
        let res = console.post("/admin/sign-in/passkey/options", &[("csrf", "forged")]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "a stale form token");
        let res = console.post("/admin/sign-in/passkey/options", &[("csrf", &csrf)]).await;
        if !enabled {
            assert_error(res, StatusCode::NOT_FOUND, "passkey_disabled").await;
            continue;
        }
        let (status, options) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{options}");
        assert!(options["options"]["challenge"].is_string(), "{options}");
        assert!(options["options"].get("allowCredentials").is_none(), "usernameless: {options}");
        let challenge_id = options["challenge_id"].as_str().unwrap();

        let form = [("csrf", csrf.as_str()), ("challenge_id", challenge_id), ("credential", "{}")];
        let res = console.post("/admin/sign-in/passkey", &form).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().get("set-cookie").is_none(), "no session");
        assert!(res.text().await.unwrap().contains("The passkey could not be verified."));
        let form = [("csrf", csrf.as_str()), ("challenge_id", "not-an-id"), ("credential", "{}")];
        let res = console.post("/admin/sign-in/passkey", &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.text().await.unwrap().contains("could not be read"));
    }
}

// --- the OpenID provider's sign-in page -------------------------------------------------

#[tokio::test]
async fn the_openid_providers_sign_in_page_signs_in_with_a_passkey() {
    let rig = console_rig().await;
    let admin = rig.app.login(ADMIN_EMAIL, PASSWORD).await;
    let (_, login) = rig.app.user().await;
    rig.register(&login.access, "Laptop").await;
    // A client whose redirect URI is a page of the same origin (the browser lands there).
    let back = format!("{}/health", rig.origin);
    let (status, client) = json_of(
        rig.app
            .post(
                "/v1/admin/oauth/clients",
                Some(&admin.access),
                json!({ "client_name": "Wiki", "client_type": "public", "redirect_uris": [back] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    use base64::Engine;
    use sha2::Digest;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(b"a-verifier-of-at-least-forty-three-characters-long"));
    let url = format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256",
        rig.origin,
        client["client_id"].as_str().unwrap(),
        url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
    );
    // The provider's pages keep their CSP: the script fetches under `connect-src 'self'`.
    rig.browser.bypass_csp(false).await;
    rig.browser.open(&url).await;
    assert!(rig.browser.url().await.contains("/oauth/sign-in?authorization_id="));
    let button = rig.browser.find("form#passkey button#passkey-sign-in").await;
    assert!(rig.browser.displayed(&button).await, "the script shows the button: {}", rig.browser.source().await);
    rig.browser.submit_el(&button).await;
    rig.browser.wait_for("wants to use your account").await;
    assert!(rig.browser.url().await.contains("/oauth/consent?authorization_id="), "{}", rig.browser.url().await);
    rig.browser.submit("button[value=approve]").await;
    let landed = rig.browser.url().await;
    assert!(landed.starts_with(&back) && landed.contains("code="), "{landed}");
}
