//! Phone sign-in (SPEC §5.14, issue 32): codes by SMS on both surfaces, through the
//! send-SMS hook (a real receiver, [`Receiver`]) and through stand-ins of Twilio,
//! MessageBird and Vonage shaped from their API documentation ([`SmsStandIn`]); test
//! numbers, the SMS limit, number changes, phone and password.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);

/// One request a stand-in got: its path, `Authorization` header and form.
#[derive(Debug, Clone)]
struct SmsRequest {
    path: String,
    authorization: String,
    form: Vec<(String, String)>,
}

impl SmsRequest {
    fn field(&self, name: &str) -> &str {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    }
}

/// The stand-in of the three SMS providers' REST APIs, as their documentation shows them:
/// - Twilio "Create a Message": `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
///   HTTP Basic with the account SID and auth token, form `To`, `Body` and
///   `MessagingServiceSid` or `From`; 201 with the message, or an error
///   `{code, message, status}` (20003 for bad credentials, 21211 for an invalid `To`);
/// - MessageBird "Send outbound SMS": `POST /messages`, `Authorization: AccessKey KEY`,
///   form `originator`, `recipients`, `body`; 201, or 401 `{errors: [{code: 2}]}`;
/// - Vonage "Send an SMS": `POST /sms/json`, form `api_key`, `api_secret`, `from`, `to`,
///   `text`; always 200, each message's `status` "0" when accepted ("4": bad credentials).
struct SmsStandIn {
    url: String,
    requests: Arc<Mutex<Vec<SmsRequest>>>,
}

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token";
const MESSAGEBIRD_KEY: &str = "live_messagebird_key";
const VONAGE_KEY: &str = "vonage-key";
const VONAGE_SECRET: &str = "vonage-secret";
/// Twilio's magic number that its API refuses as invalid.
const INVALID_TO: &str = "+15005550001";

type Shared = Arc<Mutex<Vec<SmsRequest>>>;

fn record(requests: &Shared, path: String, headers: &HeaderMap, form: Vec<(String, String)>) -> SmsRequest {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let r = SmsRequest { path, authorization, form };
    requests.lock().unwrap().push(r.clone());
    r
}

async fn twilio(
    State(requests): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let r = record(&requests, format!("/2010-04-01/Accounts/{sid}/Messages.json"), &headers, form);
    let basic = format!("Basic {}", STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}")));
    if sid != TWILIO_SID || r.authorization != basic {
        let e = json!({ "code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401 });
        return (AxumStatus::UNAUTHORIZED, Json(e)).into_response();
    }
    if r.field("To") == INVALID_TO {
        let e = json!({ "code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400 });
        return (AxumStatus::BAD_REQUEST, Json(e)).into_response();
    }
    if r.field("Body").is_empty() || (r.field("MessagingServiceSid").is_empty() && r.field("From").is_empty()) {
        let e = json!({ "code": 21604, "message": "A 'From' phone number is required.", "status": 400 });
        return (AxumStatus::BAD_REQUEST, Json(e)).into_response();
    }
    let m = json!({ "sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "to": r.field("To"),
                    "body": r.field("Body"), "error_code": null, "error_message": null });
    (AxumStatus::CREATED, Json(m)).into_response()
}

async fn messagebird(
    State(requests): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let r = record(&requests, "/messages".to_owned(), &headers, form);
    if r.authorization != format!("AccessKey {MESSAGEBIRD_KEY}") {
        let e = json!({ "errors": [{ "code": 2, "description": "Request not allowed (incorrect access_key)", "parameter": "access_key" }] });
        return (AxumStatus::UNAUTHORIZED, Json(e)).into_response();
    }
    let m = json!({ "id": "e8077d803532c0b5937c639b60216938", "originator": r.field("originator"), "body": r.field("body"),
                    "recipients": { "totalCount": 1, "totalSentCount": 1, "items": [{ "recipient": r.field("recipients"), "status": "sent" }] } });
    (AxumStatus::CREATED, Json(m)).into_response()
}

async fn vonage(
    State(requests): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let r = record(&requests, "/sms/json".to_owned(), &headers, form);
    let message = if r.field("api_key") == VONAGE_KEY && r.field("api_secret") == VONAGE_SECRET {
        json!({ "to": r.field("to"), "message-id": "0A0000000123ABCD1", "status": "0", "remaining-balance": "3.14", "message-price": "0.03" })
    } else {
        json!({ "status": "4", "error-text": "Bad Credentials" })
    };
    Json(json!({ "message-count": "1", "messages": [message] })).into_response()
}

impl SmsStandIn {
    async fn start() -> SmsStandIn {
        let requests: Shared = Arc::default();
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio))
            .route("/messages", post(messagebird))
            .route("/sms/json", post(vonage))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        SmsStandIn { url, requests }
    }

    async fn wait(&self, n: usize) -> Vec<SmsRequest> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let got = self.requests.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "the provider got {} of {n} requests: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The code in an SMS text of the default template.
fn code_in(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn fresh_phone() -> String {
    let n = uuid::Uuid::now_v7().as_u128() % 10_000_000;
    format!("+1415{n:07}")
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    json_of(app.send(method, path, token, body).await).await
}

/// Asks for a code on the native surface and signs in with what `code` reads from the
/// SMS the provider got; the user.
async fn native_round_trip(app: &TestApp, phone: &str, code: impl std::future::Future<Output = String>) -> Value {
    let (status, body) = send(app, Method::POST, "/v1/auth/otp", None, Some(json!({ "phone": phone }))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let code = code.await;
    let (status, body) =
        send(app, Method::POST, "/v1/auth/otp/verify", None, Some(json!({ "phone": phone, "code": code }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    body["user"].clone()
}

#[tokio::test]
async fn each_sms_provider_gets_the_request_its_api_documents() {
    let standin = SmsStandIn::start().await;
    let providers: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "twilio",
            vec![
                ("SMS_TWILIO_ACCOUNT_SID", TWILIO_SID),
                ("SMS_TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
                ("SMS_TWILIO_MESSAGE_SERVICE_SID", "MG0123456789abcdef0123456789abcdef"),
            ],
        ),
        (
            "messagebird",
            vec![("SMS_MESSAGEBIRD_ACCESS_KEY", MESSAGEBIRD_KEY), ("SMS_MESSAGEBIRD_ORIGINATOR", "tessera")],
        ),
        (
            "vonage",
            vec![
                ("SMS_VONAGE_API_KEY", VONAGE_KEY),
                ("SMS_VONAGE_API_SECRET", VONAGE_SECRET),
                ("SMS_VONAGE_FROM", "tessera"),
            ],
        ),
    ];
    let mut seen = 0;
    for (provider, creds) in providers {
        let mut vars = vec![("SMS_PROVIDER", provider), ("SMS_PROVIDER_URL", standin.url.as_str())];
        vars.extend(creds);
        let app = TestApp::with(&vars).await;
        let phone = fresh_phone();
        seen += 1;
        let user = native_round_trip(&app, &phone, async {
            let r = standin.wait(seen).await.pop().unwrap();
            let text = match provider {
                "twilio" => {
                    assert_eq!(r.path, format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"));
                    assert_eq!(r.field("To"), phone);
                    assert_eq!(r.field("MessagingServiceSid"), "MG0123456789abcdef0123456789abcdef");
                    r.field("Body").to_owned()
                }
                "messagebird" => {
                    assert_eq!(
                        (r.path.as_str(), r.authorization.as_str()),
                        ("/messages", "AccessKey live_messagebird_key")
                    );
                    assert_eq!(
                        (r.field("recipients"), r.field("originator")),
                        (phone.trim_start_matches('+'), "tessera")
                    );
                    r.field("body").to_owned()
                }
                _ => {
                    assert_eq!(r.path, "/sms/json");
                    assert_eq!((r.field("api_key"), r.field("to")), (VONAGE_KEY, phone.trim_start_matches('+')));
                    r.field("text").to_owned()
                }
            };
            assert!(text.starts_with("Your code is "), "SMS_TEMPLATE: {text}");
            let code = code_in(&text);
            assert_eq!(code.len(), 6, "SMS_OTP_LENGTH: {text}");
            code
        })
        .await;
        assert_eq!((user["phone"].as_str(), user["is_phone_verified"].as_bool()), (Some(phone.as_str()), Some(true)));
        // Nothing of the code stays in the outbox once sent.
        assert!(!app.dump("mail_outbox").await.contains("Your code is"), "{provider}");
    }

    // A provider that refuses: the message stays in the outbox, retried, its error kept
    // without the code; the request was answered at once all the same.
    let app = TestApp::with(&[
        ("SMS_PROVIDER", "twilio"),
        ("SMS_PROVIDER_URL", standin.url.as_str()),
        ("SMS_TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("SMS_TWILIO_AUTH_TOKEN", "wrong-token"),
        ("SMS_TWILIO_MESSAGE_SERVICE_SID", "+14155550000"),
    ])
    .await;
    let (status, _) = send(&app, Method::POST, "/v1/auth/otp", None, Some(json!({ "phone": fresh_phone() }))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let r = standin.wait(seen + 1).await.pop().unwrap();
    assert_eq!(r.field("From"), "+14155550000", "a number, not a messaging service: From");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outbox = app.dump("mail_outbox").await;
    assert!(outbox.contains("Twilio answered 401: Authenticate"), "{outbox}");
}

#[tokio::test]
async fn phone_sign_in_through_the_send_sms_hook_on_both_surfaces() {
    let (app, r) = sms_app(&[("SMS_OTP_LENGTH", "8")]).await;
    let sms_code = |n: usize| {
        let r = &r;
        async move {
            let calls = r.wait_calls("/sms", n, WAIT).await;
            let call = &calls[n - 1];
            assert_eq!(call["verified"], true, "{call}");
            assert_eq!(call["body"]["metadata"]["name"], "send-sms", "{call}");
            call["body"]["sms"]["otp"].as_str().unwrap().to_owned()
        }
    };

    // Native: a new number signs up, then signs in again.
    let phone = fresh_phone();
    let user = native_round_trip(&app, &phone, sms_code(1)).await;
    assert_eq!(user["is_phone_verified"], true, "{user}");
    let calls = r.calls("/sms").await;
    assert_eq!(calls[0]["body"]["sms"]["phone"], phone.trim_start_matches('+'));
    assert_eq!(calls[0]["body"]["sms"]["otp"].as_str().unwrap().len(), 8, "SMS_OTP_LENGTH");
    let again = native_round_trip(&app, &phone, sms_code(2)).await;
    assert_eq!(again["id"], user["id"], "the same account");
    // A wrong code, a used code: refused.
    let (status, _) = send(&app, Method::POST, "/v1/auth/otp", None, Some(json!({ "phone": phone }))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = sms_code(3).await;
    let verify = |code: String| {
        send(&app, Method::POST, "/v1/auth/otp/verify", None, Some(json!({ "phone": phone, "code": code })))
    };
    let (status, body) = verify("00000000".to_owned()).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_or_expired_token")),
        "{body}"
    );
    assert_eq!(verify(code.clone()).await.0, StatusCode::OK);
    assert_eq!(verify(code).await.0, StatusCode::BAD_REQUEST, "single use");
    // Not E.164: 422 on the native surface.
    let (status, body) = send(&app, Method::POST, "/v1/auth/otp", None, Some(json!({ "phone": "4155550123" }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Supabase: /otp, /verify type=sms; the number without its +, as GoTrue writes it.
    let phone = fresh_phone();
    let bare = phone.trim_start_matches('+').to_owned();
    let (status, body) =
        send(&app, Method::POST, "/auth/v1/otp", None, Some(json!({ "phone": bare, "channel": "sms" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = sms_code(4).await;
    let (status, s) = sb_verify(&app, "sms", &bare, &code).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let token = s["access_token"].as_str().unwrap().to_owned();
    assert_eq!(crate::mfa::claims(&token)["phone"], phone, "{s}");
    assert!(s["user"]["phone_confirmed_at"].is_string(), "{s}");
    // GoTrue's refusals.
    let (status, e) = sb_verify(&app, "sms", &bare, "12345678").await;
    assert_eq!((status, e["msg"].as_str()), (StatusCode::FORBIDDEN, Some("Token has expired or is invalid")), "{e}");
    let (status, e) = sb_verify(&app, "sms", &format!("{bare}-invalid"), "12345678").await;
    assert_eq!(
        (status, e["msg"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Invalid phone number format (E.164 required)"))
    );
    let (status, e) =
        send(&app, Method::POST, "/auth/v1/otp", None, Some(json!({ "phone": fresh_phone(), "create_user": false })))
            .await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("otp_disabled")), "{e}");

    // A number change, confirmed by a code to the new number; the session it opens.
    let new_phone = fresh_phone();
    let (status, body) =
        send(&app, Method::PUT, "/auth/v1/user", Some(&token), Some(json!({ "phone": new_phone }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["phone"], phone, "the old number until the new one is confirmed: {body}");
    let calls = r.wait_calls("/sms", 5, WAIT).await;
    assert_eq!(calls[4]["body"]["sms"]["sms_type"], "phone_change");
    let code = calls[4]["body"]["sms"]["otp"].as_str().unwrap().to_owned();
    let (status, s) = sb_verify(&app, "phone_change", &new_phone, &code).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(crate::mfa::claims(s["access_token"].as_str().unwrap())["phone"], new_phone);

    // Phone and password: a sign-up confirmed by its code, then the password grant.
    let phone = fresh_phone();
    let (status, u) =
        send(&app, Method::POST, "/auth/v1/signup", None, Some(json!({ "phone": phone, "password": PASSWORD }))).await;
    assert_eq!(status, StatusCode::OK, "{u}");
    let grant = json!({ "phone": phone, "password": PASSWORD });
    let (status, _) = send(&app, Method::POST, "/auth/v1/token?grant_type=password", None, Some(grant.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unconfirmed number does not sign in with a password");
    let code = nth_code(&r, 6).await;
    let (status, s) = sb_verify(&app, "sms", &phone, &code).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let (status, s) = send(&app, Method::POST, "/auth/v1/token?grant_type=password", None, Some(grant)).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let (status, e) = send(
        &app,
        Method::POST,
        "/auth/v1/token?grant_type=password",
        None,
        Some(json!({ "phone": "+34123", "password": PASSWORD })),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_credentials")), "{e}");
}

#[tokio::test]
async fn test_numbers_take_their_code_and_the_sms_limit_holds_per_number_and_ip() {
    let app = TestApp::with(&[
        ("SMS_PROVIDER", "log"),
        ("SMS_TEST_OTP", "+15550001111=424242, 15550002222=135790"),
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_SMS", "2/1h"),
        ("RATE_LIMIT_VERIFY", "1000/1h"),
        ("RATE_LIMIT_REGISTER", "1000/1h"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    // A test number: no SMS, its fixed code signs in.
    let user = native_round_trip(&app, "+15550001111", async { "424242".to_owned() }).await;
    assert_eq!(user["phone"], "+15550001111");
    assert!(!app.dump("mail_outbox").await.contains("sms."), "no SMS for a test number");
    let (status, s) = send(&app, Method::POST, "/auth/v1/otp", None, Some(json!({ "phone": "15550002222" }))).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let (status, s) = sb_verify(&app, "sms", "15550002222", "135790").await;
    assert_eq!(status, StatusCode::OK, "{s}");

    // RATE_LIMIT_SMS=2/1h per number, whatever the client: +15550001111 had one send.
    let otp_from = |phone: String, ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/auth/otp"))
                .header("X-Forwarded-For", ip)
                .json(&json!({ "phone": phone }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(otp_from("+15550001111".into(), "203.0.113.1").await.status(), StatusCode::ACCEPTED);
    let res = otp_from("+15550001111".into(), "203.0.113.2").await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // And per client IP: 203.0.113.1 has sent one; its second is its last, whatever the number.
    assert_eq!(otp_from(fresh_phone(), "203.0.113.1").await.status(), StatusCode::ACCEPTED);
    let res = otp_from(fresh_phone(), "203.0.113.1").await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(otp_from(fresh_phone(), "203.0.113.3").await.status(), StatusCode::ACCEPTED, "another client");
}

#[tokio::test]
async fn without_an_sms_provider_phone_sign_in_is_off() {
    let app = TestApp::spawn().await;
    let res = app.post("/v1/auth/otp", None, json!({ "phone": "+14155550123" })).await;
    assert_error(res, StatusCode::BAD_REQUEST, "phone_provider_disabled").await;
    let (status, e) = send(&app, Method::POST, "/auth/v1/otp", None, Some(json!({ "phone": "14155550123" }))).await;
    assert_eq!((status, e["msg"].as_str()), (StatusCode::BAD_REQUEST, Some("Unsupported phone provider")), "{e}");
    let (_, settings) = send(&app, Method::GET, "/auth/v1/settings", None, None).await;
    assert_eq!(settings["external"]["phone"], false, "{settings}");
    // Verifying still answers as GoTrue does for a code that was never sent.
    let (status, e) = sb_verify(&app, "sms", "14155550123", "123456").await;
    assert_eq!((status, e["msg"].as_str()), (StatusCode::FORBIDDEN, Some("Token has expired or is invalid")), "{e}");
    // Settings that cannot work are refused at start.
    let bad = test_vars("sqlite://x.db", &[("SMS_PROVIDER", "twilio"), ("SMS_TEST_OTP", "12=ab")]);
    let errs = tessera_core::settings::Settings::from_vars(&bad).err().unwrap();
    assert!(errs.iter().any(|e| e.contains("SMS_TWILIO_ACCOUNT_SID must be set")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("SMS_TEST_OTP holds")), "{errs:?}");
    let bad = test_vars("sqlite://x.db", &[("SMS_PROVIDER", "hook")]);
    let errs = tessera_core::settings::Settings::from_vars(&bad).err().unwrap();
    assert!(errs.iter().any(|e| e.contains("SMS_PROVIDER=hook needs HOOK_SEND_SMS_ENABLED")), "{errs:?}");
}

#[tokio::test]
async fn the_phone_as_a_second_factor_on_auth_v1_factors() {
    let (app, r) = sms_app(&[]).await;
    let email = "phone-factor@example.com";
    app.register(email, PASSWORD).await;
    let password_grant = json!({ "email": email, "password": PASSWORD });
    let (_, s) =
        send(&app, Method::POST, "/auth/v1/token?grant_type=password", None, Some(password_grant.clone())).await;
    let token = s["access_token"].as_str().unwrap().to_owned();
    let phone = fresh_phone();
    let enroll = json!({ "factor_type": "phone", "phone": phone, "friendly_name": "Work phone" });
    let (status, f) = send(&app, Method::POST, "/auth/v1/factors", Some(&token), Some(enroll)).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!((f["type"].as_str(), f["phone"].as_str()), (Some("phone"), Some(phone.trim_start_matches('+'))), "{f}");
    let fid = f["id"].as_str().unwrap().to_owned();
    let challenge = |token: String| {
        let (app, fid) = (&app, fid.clone());
        async move {
            let (status, c) =
                send(app, Method::POST, &format!("/auth/v1/factors/{fid}/challenge"), Some(&token), Some(json!({})))
                    .await;
            assert_eq!(status, StatusCode::OK, "{c}");
            assert_eq!(c["type"], "phone", "{c}");
            c["id"].as_str().unwrap().to_owned()
        }
    };
    let verify = |token: String, challenge_id: String, code: String| {
        let (app, fid) = (&app, fid.clone());
        async move {
            let body = json!({ "challenge_id": challenge_id, "code": code });
            send(app, Method::POST, &format!("/auth/v1/factors/{fid}/verify"), Some(&token), Some(body)).await
        }
    };
    // A wrong code, then the one the SMS carried: the factor is verified, the session aal2.
    let c = challenge(token.clone()).await;
    let (status, e) = verify(token.clone(), c.clone(), "000000".into()).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("mfa_verification_failed")),
        "{e}"
    );
    let calls = r.wait_calls("/sms", 1, WAIT).await;
    assert_eq!(
        (calls[0]["body"]["sms"]["sms_type"].as_str(), calls[0]["verified"].as_bool()),
        (Some("mfa"), Some(true))
    );
    assert_eq!(calls[0]["body"]["sms"]["phone"], phone.trim_start_matches('+'));
    let code = calls[0]["body"]["sms"]["otp"].as_str().unwrap().to_owned();
    let (status, s2) = verify(token.clone(), c.clone(), code.clone()).await;
    assert_eq!(status, StatusCode::OK, "{s2}");
    assert_eq!(crate::mfa::claims(s2["access_token"].as_str().unwrap())["aal"], "aal2");
    let (status, _) = verify(token.clone(), c, code).await;
    assert_ne!(status, StatusCode::OK, "a challenge works once");
    let (_, u) = send(&app, Method::GET, "/auth/v1/user", s2["access_token"].as_str(), None).await;
    assert_eq!(
        (u["factors"][0]["factor_type"].as_str(), u["factors"][0]["status"].as_str()),
        (Some("phone"), Some("verified"))
    );

    // A new password sign-in is aal1 and steps up with a new SMS code.
    let (_, s) = send(&app, Method::POST, "/auth/v1/token?grant_type=password", None, Some(password_grant)).await;
    let token = s["access_token"].as_str().unwrap().to_owned();
    assert_eq!(crate::mfa::claims(&token)["aal"], "aal1");
    let c = challenge(token.clone()).await;
    let calls = r.wait_calls("/sms", 2, WAIT).await;
    let code = calls[1]["body"]["sms"]["otp"].as_str().unwrap().to_owned();
    let (status, s3) = verify(token, c, code).await;
    assert_eq!(status, StatusCode::OK, "{s3}");
    assert_eq!(crate::mfa::claims(s3["access_token"].as_str().unwrap())["aal"], "aal2");
}

/// Under PII encryption the number is sealed at rest and found by its blind index.
#[tokio::test]
async fn with_pii_encryption_numbers_are_sealed_and_still_sign_in() {
    let app = TestApp::with(&[
        ("SMS_PROVIDER", "log"),
        ("SMS_TEST_OTP", "+15550003333=246810"),
        ("PII_ENCRYPTION_KEY", MFA_KEY),
    ])
    .await;
    let first = native_round_trip(&app, "+15550003333", async { "246810".to_owned() }).await;
    let again = native_round_trip(&app, "+15550003333", async { "246810".to_owned() }).await;
    assert_eq!(first["id"], again["id"], "found again by the blind index");
    assert_eq!(again["phone"], "+15550003333");
    let personal = dump_personal_tables(&app).await;
    assert!(!personal.contains("15550003333"), "a number in clear: {personal}");
}

/// A number stored before PII encryption is switched on gets its blind index from
/// `tessera pii encrypt`, and signs in by phone after.
#[tokio::test]
async fn pii_encrypt_indexes_the_numbers_stored_before_it() {
    let vars = [("SMS_PROVIDER", "log"), ("SMS_TEST_OTP", "+15550004444=112233")];
    let app = TestApp::with(&vars).await;
    let first = native_round_trip(&app, "+15550004444", async { "112233".to_owned() }).await;
    let db_url = app.db_url.clone();
    let _dir = app.shutdown().await;
    let (code, out, err) = tessera_command(&db_url, &["pii", "encrypt"], &[("PII_ENCRYPTION_KEY", MFA_KEY)]).await;
    assert_eq!(code, 0, "{out}{err}");
    let mut keyed = vars.to_vec();
    keyed.push(("PII_ENCRYPTION_KEY", MFA_KEY));
    let app = TestApp::with_database(&db_url, &keyed).await;
    assert!(!dump_personal_tables(&app).await.contains("15550004444"), "sealed");
    let again = native_round_trip(&app, "+15550004444", async { "112233".to_owned() }).await;
    assert_eq!(first["id"], again["id"], "found by the index the encryption wrote");
}

/// `POST /auth/v1/verify` of a `kind` (`sms`, `phone_change`) code sent to `phone`.
async fn sb_verify(app: &TestApp, kind: &str, phone: &str, code: &str) -> (StatusCode, Value) {
    send(app, Method::POST, "/auth/v1/verify", None, Some(json!({ "type": kind, "phone": phone, "token": code }))).await
}

/// An app on the hook provider, and a way to read the codes it was asked to send.
async fn sms_app(extra: &[(&str, &str)]) -> (TestApp, Receiver) {
    let r = Receiver::start().await;
    let (uri, secret) = (r.url("/sms"), format!("v1,{}", r.secret()));
    let mut vars = vec![
        ("SMS_PROVIDER", "hook"),
        ("HOOK_SEND_SMS_ENABLED", "true"),
        ("HOOK_SEND_SMS_URI", uri.as_str()),
        ("HOOK_SEND_SMS_SECRETS", secret.as_str()),
    ];
    vars.extend_from_slice(extra);
    (TestApp::with(&vars).await, r)
}

async fn nth_code(r: &Receiver, n: usize) -> String {
    r.wait_calls("/sms", n, WAIT).await[n - 1]["body"]["sms"]["otp"].as_str().unwrap().to_owned()
}

/// Security (issue 32): a number someone lists on their account without proving it is
/// not a way into that account. An attacker puts the victim's number on theirs; when
/// the victim signs in by SMS, they get an account of their own, never the attacker's.
#[tokio::test]
async fn an_unproven_number_on_another_account_is_no_way_into_it() {
    let (app, r) = sms_app(&[]).await;
    let (attacker, login) = app.user().await;
    let victim_phone = fresh_phone();
    let res =
        app.send(Method::PATCH, "/v1/users/me", Some(&login.access), Some(json!({ "phone": victim_phone }))).await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let victim = native_round_trip(&app, &victim_phone, nth_code(&r, 1)).await;
    assert_ne!(victim["email"], attacker, "the victim landed in the attacker's account: {victim}");
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(me["is_phone_verified"], false, "the attacker's listing stays unproven: {me}");
}

/// Security (issue 32): a password set by a phone sign-up that never proved the number
/// dies when the number's owner proves it with a sign-in code: the owner is not left
/// sharing an account with whoever signed their number up.
#[tokio::test]
async fn a_phone_sign_up_s_password_dies_when_the_owner_proves_the_number() {
    let (app, r) = sms_app(&[]).await;
    let phone = fresh_phone();
    let (status, u) =
        send(&app, Method::POST, "/auth/v1/signup", None, Some(json!({ "phone": phone, "password": PASSWORD }))).await;
    assert_eq!(status, StatusCode::OK, "{u}");
    let _unused_signup_code = nth_code(&r, 1).await;
    // The number's owner signs in by SMS (the code anybody can ask for).
    let (status, _) = send(&app, Method::POST, "/auth/v1/otp", None, Some(json!({ "phone": phone }))).await;
    assert_eq!(status, StatusCode::OK);
    let code = nth_code(&r, 2).await;
    let (status, s) = sb_verify(&app, "sms", &phone, &code).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["user"]["id"], u["id"], "the same account, now proven");
    // The sign-up's password no longer opens it.
    let (status, e) = send(
        &app,
        Method::POST,
        "/auth/v1/token?grant_type=password",
        None,
        Some(json!({ "phone": phone, "password": PASSWORD })),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_credentials")), "{e}");
}

/// Security (issue 32): a number is a way back into an account: with MFA on, an aal1
/// session cannot move it, and nobody can move theirs onto a number another account
/// has confirmed.
#[tokio::test]
async fn changing_the_number_needs_aal2_with_mfa_and_a_free_number() {
    let (app, r) = sms_app(&[]).await;
    let email = "mfa-phone@example.com";
    app.register(email, PASSWORD).await;
    let grant = json!({ "email": email, "password": PASSWORD });
    let (_, s) = send(&app, Method::POST, "/auth/v1/token?grant_type=password", None, Some(grant.clone())).await;
    let token = s["access_token"].as_str().unwrap().to_owned();
    let (_, f) =
        send(&app, Method::POST, "/auth/v1/factors", Some(&token), Some(json!({ "factor_type": "totp" }))).await;
    let fid = f["id"].as_str().unwrap().to_owned();
    let mut auth = Authenticator::new(f["totp"]["secret"].as_str().unwrap());
    let (_, c) =
        send(&app, Method::POST, &format!("/auth/v1/factors/{fid}/challenge"), Some(&token), Some(json!({}))).await;
    let body = json!({ "challenge_id": c["id"], "code": auth.next().await });
    let (status, _) =
        send(&app, Method::POST, &format!("/auth/v1/factors/{fid}/verify"), Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    // A fresh password sign-in: aal1. Moving the number is refused, and no SMS goes out.
    let (_, s) = send(&app, Method::POST, "/auth/v1/token?grant_type=password", None, Some(grant)).await;
    let aal1 = s["access_token"].as_str().unwrap().to_owned();
    let (status, e) =
        send(&app, Method::PUT, "/auth/v1/user", Some(&aal1), Some(json!({ "phone": fresh_phone() }))).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_aal")), "{e}");
    assert!(r.calls("/sms").await.is_empty(), "no code for a refused change");

    // A number another account confirmed cannot be taken.
    let taken = fresh_phone();
    native_round_trip(&app, &taken, nth_code(&r, 1)).await;
    let (_, login) = app.user().await;
    let res = app
        .send(
            Method::POST,
            "/auth/v1/token?grant_type=password",
            None,
            Some(json!({ "email": login.body["user"]["email"], "password": PASSWORD })),
        )
        .await;
    let (_, s) = json_of(res).await;
    let other = s["access_token"].as_str().unwrap().to_owned();
    let (status, e) = send(&app, Method::PUT, "/auth/v1/user", Some(&other), Some(json!({ "phone": taken }))).await;
    assert_eq!((status, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("phone_exists")), "{e}");
}
