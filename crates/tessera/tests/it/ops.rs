//! Operations (SPEC §2.4, §8) and the HTTP layer every surface shares: health checks,
//! the OpenAPI document and Swagger UI, request ids, security headers, CORS, allowed
//! hosts, and the SPEC §6 shape of the framework's own rejections.

use std::collections::BTreeSet;

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, ORIGIN, REFERRER_POLICY,
    RETRY_AFTER, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// GET `path` with extra headers.
async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// POST a raw body with a content type.
async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Response {
    app.client.post(app.url(path)).header(CONTENT_TYPE, content_type).body(body).send().await.unwrap()
}

/// Closes the server's database pool, so every query fails as if the database were down.
async fn close_database(app: &TestApp) {
    app.core.store.close().await;
}

/// Asserts the security headers of SPEC §8 (HSTS only when `hsts`).
fn assert_security_headers(res: &Response, hsts: bool) {
    let what = format!("{} {}", res.status(), res.url().path());
    assert_eq!(header(res, X_CONTENT_TYPE_OPTIONS.as_str()).as_deref(), Some("nosniff"), "{what}");
    assert_eq!(header(res, X_FRAME_OPTIONS.as_str()).as_deref(), Some("DENY"), "{what}");
    let referrer = header(res, REFERRER_POLICY.as_str()).unwrap_or_else(|| panic!("no Referrer-Policy on {what}"));
    assert!(
        ["no-referrer", "strict-origin-when-cross-origin", "same-origin", "strict-origin"].contains(&referrer.as_str()),
        "{what}: Referrer-Policy {referrer}"
    );
    let csp = header(res, CONTENT_SECURITY_POLICY.as_str()).unwrap_or_else(|| panic!("no CSP on {what}"));
    assert!(csp.contains("default-src 'none'") || csp.contains("default-src 'self'"), "{what}: CSP {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: CSP {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: CSP {csp}");
    let sts = header(res, STRICT_TRANSPORT_SECURITY.as_str());
    if hsts {
        let sts = sts.unwrap_or_else(|| panic!("no HSTS on {what}"));
        let max_age: u64 = sts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: HSTS without max-age: {sts}"));
        assert!(max_age >= 31_536_000, "{what}: HSTS max-age {max_age} is under a year");
    } else {
        assert_eq!(sts, None, "{what}: HSTS without Secure cookies");
    }
}

/// A preflight for a credentialed POST from `origin`.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type, authorization")
        .send()
        .await
        .unwrap()
}

/// The 422 body's first field error.
fn first_field(body: &Value) -> &str {
    body["errors"][0]["field"].as_str().unwrap_or_else(|| panic!("no errors[0].field in {body}"))
}

/// Every `.route("/v1…")` / `.route("/health…")` path in the router source, so a route
/// added later without an OpenAPI entry is caught.
fn routed_paths_in_source() -> Vec<String> {
    fn scan(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for chunk in text.split(".route(\"").skip(1) {
                    if let Some((p, _)) = chunk.split_once('"') {
                        if p.starts_with("/v1/") || p.starts_with("/health") {
                            out.push(p.to_owned());
                        }
                    }
                }
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-http/src");
    let mut out = Vec::new();
    scan(&src, &mut out);
    out.sort();
    out.dedup();
    out
}

/// The `Location` of a redirect, resolved against `base` and the request path.
fn resolve(app: &TestApp, from: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        app.url(location)
    } else {
        let dir = &from[..from.rfind('/').map_or(0, |i| i + 1)];
        app.url(&format!("{dir}{location}"))
    }
}

/// GET the Swagger UI page at `path`, following at most a few redirects by hand.
/// Returns the final URL and the response.
async fn get_docs_page(app: &TestApp, path: &str) -> (String, Response) {
    let mut url = app.url(path);
    for _ in 0..5 {
        let res = app.client.get(&url).send().await.unwrap();
        if res.status().is_redirection() {
            let location = header(&res, LOCATION.as_str()).expect("redirect without Location");
            let from = res.url().path().to_owned();
            url = resolve(app, &from, &location);
            assert!(url.starts_with(&app.base), "docs redirect leaves the server: {url}");
            continue;
        }
        return (url, res);
    }
    panic!("too many redirects from {path}");
}

/// The `src`/`href` values of `<script>` and `<link>` tags in an HTML page.
fn asset_refs(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for chunk in html.split(attr).skip(1) {
            if let Some((v, _)) = chunk.split_once('"') {
                refs.push(v.to_owned());
            }
        }
    }
    refs
}

// ---------------------------------------------------------------------------------
// Health.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn health_is_exactly_healthy() {
    let app = TestApp::spawn().await;

    let res = app.get("/health", None).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "content-type").is_some_and(|c| c.starts_with("application/json")));
    let (_, body) = json_of(res).await;
    assert_eq!(body, json!({ "status": "healthy" }));
    app.stop().await;
}

#[tokio::test]
async fn health_detailed_reports_database_and_redis() {
    let app = TestApp::spawn().await;

    let (status, body) = json_of(app.get("/health/detailed", None).await).await;

    assert_eq!(status, StatusCode::OK, "body: {body}");
    assert_eq!(body["status"], "healthy", "body: {body}");
    assert_eq!(body["database"], "healthy", "body: {body}");
    assert_eq!(body["redis"], "disabled", "body: {body}");
    assert_eq!(body["checks"]["database"]["status"], "healthy", "body: {body}");
    let latency = body["checks"]["database"]["latency_ms"].as_f64();
    assert!(latency.is_some_and(|l| (0.0..2000.0).contains(&l)), "latency_ms: {body}");
    assert_eq!(body["checks"]["redis"]["status"], "disabled", "body: {body}");
    app.stop().await;
}

#[tokio::test]
async fn database_down_answers_503_but_liveness_stays_up() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;

    close_database(&app).await;

    let (status, body) = json_of(app.get("/health/detailed", None).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "body: {body}");
    assert_eq!(body["status"], "unhealthy", "body: {body}");
    assert_eq!(body["database"], "unhealthy", "body: {body}");
    assert_eq!(body["checks"]["database"]["status"], "unhealthy", "body: {body}");
    let text = body.to_string().to_lowercase();
    assert!(!text.contains("sqlx") && !text.contains("pool"), "the health body leaks internals: {body}");

    let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
    let retry_after = header(&res, RETRY_AFTER.as_str());
    let err = assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(
        retry_after.as_deref().and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s > 0),
        "503 needs a Retry-After in seconds, got {retry_after:?}"
    );
    let text = err.to_string().to_lowercase();
    assert!(!text.contains("pool") && !text.contains("sqlx") && !text.contains("closed"), "leaks the cause: {err}");

    // A valid token cannot be checked either: that is 503, not 401 (clients must not
    // sign their users out because the database blinked).
    let res = app.get("/v1/auth/me", Some(&login.access)).await;
    assert!(header(&res, RETRY_AFTER.as_str()).is_some(), "503 without Retry-After");
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let res = app.post("/v1/users", None, json!({ "email": "new@example.com", "password": PASSWORD })).await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;

    let res = app.get("/health", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_of(res).await.1, json!({ "status": "healthy" }));
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// OpenAPI and Swagger UI.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let app = TestApp::spawn().await;

    let (status, doc) = json_of(app.get("/openapi.json", None).await).await;

    assert_eq!(status, StatusCode::OK, "body: {doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "openapi: {}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    // Every route of crates/tessera-http/src/v1/mod.rs and the router, with its methods.
    let expected = [
        ("/v1/auth/login", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/auth/logout-all", "post"),
        ("/v1/auth/me", "get"),
        ("/v1/auth/change-password", "post"),
        ("/v1/auth/sessions", "get"),
        ("/v1/auth/sessions/{id}", "delete"),
        ("/v1/users", "post"),
        ("/v1/users/me", "patch"),
        ("/v1/users/me/profile", "get"),
        ("/v1/users/me/profile", "patch"),
        ("/v1/users/{id}", "get"),
        ("/health", "get"),
        ("/health/detailed", "get"),
    ];
    for (path, method) in expected {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{} {path} missing from /openapi.json", method);
    }
    // And whatever else the router source routes today.
    for path in routed_paths_in_source() {
        assert!(paths.contains_key(&path), "{path} is routed but missing from /openapi.json");
    }
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_has_the_bearer_scheme() {
    let app = TestApp::spawn().await;

    let (_, doc) = json_of(app.get("/openapi.json", None).await).await;

    let schemes = doc["components"]["securitySchemes"].as_object().expect("securitySchemes");
    let bearer = schemes
        .values()
        .find(|s| s["type"] == "http" && s["scheme"].as_str().is_some_and(|x| x.eq_ignore_ascii_case("bearer")))
        .unwrap_or_else(|| panic!("no HTTP bearer scheme in {schemes:?}"));
    assert_eq!(bearer["bearerFormat"], "JWT");
    // Endpoints that need a token say so.
    let me = &doc["paths"]["/v1/auth/me"]["get"];
    assert!(me["security"].as_array().is_some_and(|s| !s.is_empty()), "/v1/auth/me has no security: {me}");
    app.stop().await;
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = TestApp::spawn().await;

    for path in ["/docs", "/docs/"] {
        let (url, res) = get_docs_page(&app, path).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path} (ended at {url})");
        assert!(header(&res, "content-type").is_some_and(|c| c.starts_with("text/html")), "GET {path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "GET {path}: not the Swagger UI: {html}");
        let refs = asset_refs(&html);
        assert!(
            refs.iter().all(|r| !r.starts_with("http://") && !r.starts_with("https://") && !r.starts_with("//")),
            "Swagger UI loads assets from a CDN: {refs:?}"
        );

        // Fetch every script and stylesheet the page references.
        let assets: Vec<&String> = refs.iter().filter(|r| r.ends_with(".js") || r.ends_with(".css")).collect();
        assert!(assets.iter().any(|r| r.ends_with(".js")), "no script in {refs:?}");
        assert!(assets.iter().any(|r| r.ends_with(".css")), "no stylesheet in {refs:?}");
        let page_path = url.strip_prefix(&app.base).unwrap().to_owned();
        for asset in assets {
            let asset_url = resolve(&app, &page_path, asset);
            let res = app.client.get(&asset_url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "GET {asset_url}");
            let ct = header(&res, "content-type").unwrap_or_default();
            if asset.ends_with(".js") {
                assert!(ct.contains("javascript"), "{asset_url}: content-type {ct}");
            } else {
                assert!(ct.starts_with("text/css"), "{asset_url}: content-type {ct}");
            }
            assert!(!res.bytes().await.unwrap().is_empty(), "{asset_url} is empty");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn swagger_ui_points_at_the_openapi_document() {
    let app = TestApp::spawn().await;

    let res = app.get("/docs/swagger-initializer.js", None).await;

    assert_eq!(res.status(), StatusCode::OK);
    let js = res.text().await.unwrap();
    assert!(js.contains("/openapi.json"), "initializer does not load /openapi.json: {js}");
    app.stop().await;
}

#[tokio::test]
async fn docs_and_openapi_are_off_in_production() {
    let app =
        TestApp::with(&[("ENVIRONMENT", "production"), ("SECURE_COOKIES", "true"), ("MAIL_TRANSPORT", "file")]).await;

    assert_error(app.get("/openapi.json", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/docs", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/docs/", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/docs/swagger-ui.css", None).await, StatusCode::NOT_FOUND, "not_found").await;
    // The API itself is up.
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn docs_and_openapi_can_be_enabled_in_production() {
    let app = TestApp::with(&[
        ("ENVIRONMENT", "production"),
        ("SECURE_COOKIES", "true"),
        ("MAIL_TRANSPORT", "file"),
        ("OPENAPI_ENABLED", "true"),
    ])
    .await;

    let (status, doc) = json_of(app.get("/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    let (_, res) = get_docs_page(&app, "/docs").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("swagger-ui"));
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Request ids.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn sane_request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let id = "req-123_abc.DEF:42";

    let res = get_with(&app, "/health", &[("x-request-id", id)]).await;

    assert_eq!(header(&res, "x-request-id").as_deref(), Some(id));
    app.stop().await;
}

#[tokio::test]
async fn uuid_request_id_is_echoed_on_an_error_and_in_its_body() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7().to_string();

    let res = get_with(&app, "/v1/auth/me", &[("x-request-id", &id)]).await;

    assert_eq!(header(&res, "x-request-id").as_deref(), Some(id.as_str()));
    let body = assert_error(res, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_eq!(body["request_id"], id);
    app.stop().await;
}

#[tokio::test]
async fn correlation_id_is_accepted_without_request_id() {
    let app = TestApp::spawn().await;
    let id = "corr-7f3e9a";

    let res = get_with(&app, "/nope", &[("x-correlation-id", id)]).await;

    assert_eq!(header(&res, "x-request-id").as_deref(), Some(id));
    let body = assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["request_id"], id);
    app.stop().await;
}

#[tokio::test]
async fn request_id_wins_over_correlation_id() {
    let app = TestApp::spawn().await;

    let res =
        get_with(&app, "/health", &[("x-request-id", "the-request-id"), ("x-correlation-id", "the-corr-id")]).await;

    assert_eq!(header(&res, "x-request-id").as_deref(), Some("the-request-id"));
    app.stop().await;
}

#[tokio::test]
async fn missing_request_id_is_generated() {
    let app = TestApp::spawn().await;

    let a = app.get("/health", None).await;
    let b = app.get("/nope", None).await;

    let id_a = header(&a, "x-request-id").expect("generated X-Request-ID");
    let id_b = header(&b, "x-request-id").expect("generated X-Request-ID");
    assert!(!id_a.is_empty() && id_a.len() <= 128, "{id_a}");
    assert_ne!(id_a, id_b, "each request gets its own id");
    let body = assert_error(b, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["request_id"], id_b);
    app.stop().await;
}

#[tokio::test]
async fn overlong_request_id_is_replaced() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(300);

    let res = get_with(&app, "/nope", &[("x-request-id", &long)]).await;

    let id = header(&res, "x-request-id").expect("X-Request-ID");
    assert_ne!(id, long);
    assert!(!id.is_empty() && id.len() <= 128, "{id}");
    let body = assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["request_id"], id);
    app.stop().await;
}

#[tokio::test]
async fn request_id_with_spaces_or_quotes_is_replaced() {
    let app = TestApp::spawn().await;

    for bad in ["has spaces in it", "quo\"ted", "semi;colon", "<script>", "a\tb"] {
        let res = get_with(&app, "/nope", &[("x-request-id", bad)]).await;

        let id = header(&res, "x-request-id").expect("X-Request-ID");
        assert_ne!(id, bad);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)), "{id:?}");
        let body = assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(body["request_id"], id);
    }
    app.stop().await;
}

#[tokio::test]
async fn insane_request_id_falls_back_to_a_sane_correlation_id() {
    let app = TestApp::spawn().await;

    let res = get_with(&app, "/health", &[("x-request-id", "bad id"), ("x-correlation-id", "good-id")]).await;

    assert_eq!(header(&res, "x-request-id").as_deref(), Some("good-id"));
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Security headers.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn security_headers_on_a_normal_response() {
    let app = TestApp::spawn().await;

    let res = app.get("/health", None).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_security_headers(&res, true);
    app.stop().await;
}

#[tokio::test]
async fn security_headers_on_error_responses() {
    let app = TestApp::spawn().await;

    let not_found = app.get("/nope", None).await;
    let unauthorized = app.get("/v1/auth/me", None).await;
    let unprocessable = app.post("/v1/users", None, json!({ "email": "x@example.com" })).await;

    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&not_found, true);
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&unauthorized, true);
    assert_eq!(unprocessable.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_security_headers(&unprocessable, true);
    app.stop().await;
}

#[tokio::test]
async fn security_headers_on_authenticated_json() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let res = app.get("/v1/auth/me", Some(&login.access)).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_security_headers(&res, true);
    // Personal data is not cached.
    assert!(header(&res, "cache-control").is_some_and(|c| c.contains("no-store")), "cache-control");
    app.stop().await;
}

#[tokio::test]
async fn no_hsts_without_secure_cookies() {
    let app = TestApp::with(&[("SECURE_COOKIES", "false")]).await;

    let res = app.get("/health", None).await;

    assert_security_headers(&res, false);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// CORS.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin() {
    let app = TestApp::with(&[("CORS_ORIGINS", "http://app.test")]).await;

    let res = preflight(&app, "/v1/auth/login", "http://app.test").await;

    assert!(res.status().is_success(), "preflight status {}", res.status());
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(), Some("http://app.test"));
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str()).as_deref(), Some("true"));
    let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "allow-methods: {methods}");
    let headers = header(&res, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "allow-headers: {headers}");
    app.stop().await;
}

#[tokio::test]
async fn cors_actual_request_from_an_allowed_origin() {
    let app = TestApp::with(&[("CORS_ORIGINS", "http://app.test")]).await;

    let res = get_with(&app, "/health", &[("origin", "http://app.test")]).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(), Some("http://app.test"));
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str()).as_deref(), Some("true"));
    let exposed = header(&res, "access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "expose-headers: {exposed}");
    app.stop().await;
}

#[tokio::test]
async fn cors_preflight_from_another_origin_is_not_allowed() {
    let app = TestApp::with(&[("CORS_ORIGINS", "http://app.test")]).await;

    let res = preflight(&app, "/v1/auth/login", "http://evil.test").await;

    // Without Access-Control-Allow-Origin the browser refuses the request (tower-http
    // still sends Allow-Credentials, which is harmless on its own).
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()), None);
    let res = get_with(&app, "/health", &[("origin", "http://evil.test")]).await;
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()), None);
    app.stop().await;
}

#[tokio::test]
async fn cors_origins_as_a_json_list() {
    // The seeds' .env files write lists as JSON arrays; a trailing slash is not part of an origin.
    let app = TestApp::with(&[("CORS_ORIGINS", r#"["http://app.test/", "http://admin.test"]"#)]).await;

    for origin in ["http://app.test", "http://admin.test"] {
        let res = preflight(&app, "/v1/auth/refresh", origin).await;

        assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(), Some(origin));
        assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str()).as_deref(), Some("true"));
    }
    let res = preflight(&app, "/v1/auth/refresh", "http://evil.test").await;
    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()), None);
    app.stop().await;
}

#[tokio::test]
async fn cors_does_not_allow_origins_by_default() {
    let app = TestApp::spawn().await;

    let res = preflight(&app, "/v1/auth/login", "http://app.test").await;

    assert_eq!(header(&res, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()), None);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// Allowed hosts.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn allowed_host_with_port_is_served() {
    let app = TestApp::with(&[("ALLOWED_HOSTS", "api.test")]).await;

    let res = get_with(&app, "/health", &[(HOST.as_str(), "api.test:8000")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = get_with(&app, "/health", &[(HOST.as_str(), "API.TEST")]).await;
    assert_eq!(res.status(), StatusCode::OK, "host names are case-insensitive");
    app.stop().await;
}

/// Issue 34, item 2: `ALLOWED_HOSTS=localhost:19301` refused everything (the port was
/// stripped from the header before the comparison) while `config check` said OK. An
/// entry with a port accepts that host and port, case-insensitively; another port is
/// refused.
#[tokio::test]
async fn an_allowed_host_entry_may_carry_its_port() {
    let app = TestApp::with(&[("ALLOWED_HOSTS", "localhost:19301,api.test")]).await;
    for host in ["localhost:19301", "LOCALHOST:19301", "api.test:8000", "api.test"] {
        let res = get_with(&app, "/health", &[(HOST.as_str(), host)]).await;
        assert_eq!(res.status(), StatusCode::OK, "{host}");
    }
    for host in ["localhost:8000", "localhost", "evil.test:19301"] {
        let res = get_with(&app, "/health", &[(HOST.as_str(), host)]).await;
        assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn other_host_is_rejected() {
    let app = TestApp::with(&[("ALLOWED_HOSTS", "api.test")]).await;

    let res = get_with(&app, "/health", &[(HOST.as_str(), "evil.test")]).await;
    assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
    let res = get_with(&app, "/health", &[(HOST.as_str(), "api.test.evil.test")]).await;
    assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
    // The loopback address the client really used is not on the list either.
    let res = app.get("/health", None).await;
    assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// The framework's own rejections, in the SPEC §6 shape.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_path_is_404() {
    let app = TestApp::spawn().await;

    assert_error(app.get("/does-not-exist", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/v1/auth/nope", None).await, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_path_parameter_is_404() {
    let app = TestApp::spawn().await;
    let (_, login) = app.user().await;

    let res = app.get("/v1/users/not-a-uuid", Some(&login.access)).await;

    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_method_is_405() {
    let app = TestApp::spawn().await;

    let res = app.send(Method::DELETE, "/v1/auth/me", None, None).await;

    let allow = header(&res, "allow");
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert!(allow.as_deref().is_some_and(|a| a.contains("GET")), "405 must list the allowed methods: {allow:?}");
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;

    let res = post_raw(&app, "/v1/users", "application/json", r#"{"email": "x@example.com", "password": "#).await;

    assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
    app.stop().await;
}

#[tokio::test]
async fn non_json_content_type_is_400() {
    let app = TestApp::spawn().await;
    let body = json!({ "email": "x@example.com", "password": PASSWORD }).to_string();

    let res = post_raw(&app, "/v1/users", "text/plain", body).await;

    assert_error(res, StatusCode::BAD_REQUEST, "bad_request").await;
    app.stop().await;
}

#[tokio::test]
async fn missing_field_is_422_naming_it() {
    let app = TestApp::spawn().await;

    let res = app.post("/v1/users", None, json!({ "email": "x@example.com" })).await;

    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_field(&body), "password", "body: {body}");
    assert!(body["errors"][0]["code"].is_string() && body["errors"][0]["message"].is_string(), "body: {body}");
    app.stop().await;
}

#[tokio::test]
async fn wrong_field_type_is_422_naming_it() {
    let app = TestApp::spawn().await;

    let res = app.post("/v1/users", None, json!({ "email": "x@example.com", "password": 12345678 })).await;

    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_field(&body), "password", "body: {body}");
    app.stop().await;
}

#[tokio::test]
async fn json_array_body_is_422() {
    // Bodies are JSON objects (SPEC §2); serde's derive would otherwise also accept a
    // struct written as a positional array, which no client means to send.
    let app = TestApp::spawn().await;

    let res = app.post("/v1/users", None, json!(["x@example.com", PASSWORD])).await;

    assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    app.stop().await;
}

#[tokio::test]
async fn body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let body = json!({ "email": "x@example.com", "password": PASSWORD, "full_name": "x".repeat(65 * 1024) });

    let res = app.post("/v1/users", None, body).await;

    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn body_over_64_kib_to_refresh_is_413_in_the_error_shape() {
    // /v1/auth/refresh reads its body itself; the limit must still answer in SPEC §6.
    let app = TestApp::spawn().await;
    let body = json!({ "refresh_token": "x".repeat(65 * 1024) });

    let res = app.post("/v1/auth/refresh", None, body).await;

    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn form_body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(65 * 1024);

    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .form(&[("username", "someone@example.com"), ("password", big.as_str())])
        .send()
        .await
        .unwrap();

    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn body_just_under_64_kib_is_read() {
    let app = TestApp::spawn().await;
    // Under the limit, so it is read and judged on its content (a name this long may
    // be refused, but as 201 or 422, never 413).
    let body = json!({ "email": "x@example.com", "password": PASSWORD, "full_name": "x".repeat(60 * 1024) });

    let res = app.post("/v1/users", None, body).await;

    assert!([StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY].contains(&res.status()), "status {}", res.status());
    app.stop().await;
}

#[tokio::test]
async fn form_login_works() {
    let app = TestApp::spawn().await;
    let email = "form-user@example.com";
    app.register(email, PASSWORD).await;

    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .form(&[("username", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    let login = login_from(res).await;
    assert_eq!(login.body["token_type"], "bearer");
    assert_eq!(login.body["user"]["email"], email);
    let (status, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], email);
    app.stop().await;
}

#[tokio::test]
async fn form_login_missing_password_is_422() {
    let app = TestApp::spawn().await;

    let res =
        app.client.post(app.url("/v1/auth/login")).form(&[("username", "someone@example.com")]).send().await.unwrap();

    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_field(&body), "password", "body: {body}");
    app.stop().await;
}

#[tokio::test]
async fn form_login_with_wrong_password_is_401() {
    let app = TestApp::spawn().await;
    let email = "form-wrong@example.com";
    app.register(email, PASSWORD).await;

    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .form(&[("username", email), ("password", "Wr0ng!Passphrase")])
        .send()
        .await
        .unwrap();

    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// GET /metrics (SPEC §2.4, issue 15)
// ---------------------------------------------------------------------------------

async fn metrics_text(app: &TestApp, base: &str) -> String {
    let res = app.client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "content-type").is_some_and(|c| c.starts_with("text/plain")));
    res.text().await.unwrap()
}

/// The value of a sample line `name{labels} value` (0 when absent). The recorder is the
/// process's, shared by every server of the test run, so tests compare before and after.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_what_happens_and_hold_no_secret_or_address() {
    let app = TestApp::with(&[("RATE_LIMIT_ENABLED", "true"), ("RATE_LIMIT_LOGIN", "1000/1m")]).await;
    let (email, login) = app.user().await;
    let before = metrics_text(&app, &app.base).await;
    let failures = r#"tessera_sign_ins_total{outcome="invalid_credentials"}"#;

    for _ in 0..3 {
        let res = app.post("/v1/auth/login", None, json!({ "email": email, "password": "Wrong-Passw0rd!" })).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, body) =
        json_of(app.post("/v1/auth/refresh", None, json!({ "refresh_token": login.refresh })).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.get("/v1/auth/me", Some(&login.access)).await.status(), StatusCode::OK);
    let after = metrics_text(&app, &app.base).await;

    assert!(sample(&after, failures) >= sample(&before, failures) + 3.0, "{after}");
    let rotated = r#"tessera_refreshes_total{outcome="rotated"}"#;
    assert!(sample(&after, rotated) >= sample(&before, rotated) + 1.0);
    let me = r#"tessera_http_requests_total{route="/v1/auth/me",method="GET",status="200"}"#;
    assert!(sample(&after, me) >= 1.0, "requests are counted by route template");
    assert!(after.contains("tessera_http_request_duration_seconds_bucket{"), "the latency histogram has buckets");
    assert!(after.contains(r#"le="0.005""#));
    for gauge in [
        "tessera_hash_queue_depth",
        "tessera_mail_outbox_depth",
        "tessera_db_connections{",
        "process_resident_memory_bytes",
    ] {
        assert!(after.contains(gauge), "{gauge} missing");
    }
    assert!(after.contains("tessera_hash_wait_seconds_bucket{"));
    for secret in [email.as_str(), &login.access, &login.refresh, "127.0.0.1", PASSWORD, "Wrong-Passw0rd!"] {
        assert!(!after.contains(secret), "/metrics holds {secret}");
    }
    let id = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await.1["id"].as_str().unwrap().to_owned();
    assert!(!after.contains(&id), "/metrics holds a user id");
    let unmatched = app.get("/no/such/path/ada@example.com", None).await;
    assert_eq!(unmatched.status(), StatusCode::NOT_FOUND);
    assert!(!metrics_text(&app, &app.base).await.contains("ada@example.com"), "an unmatched path is no label");
}

#[tokio::test]
async fn metrics_are_off_in_production_unless_enabled_or_given_a_listener() {
    let production = [("ENVIRONMENT", "production"), ("SECURE_COOKIES", "true"), ("MAIL_TRANSPORT", "file")];
    let off = TestApp::with(&production).await;
    assert_error(off.get("/metrics", None).await, StatusCode::NOT_FOUND, "not_found").await;

    let mut enabled = production.to_vec();
    enabled.push(("METRICS_ENABLED", "true"));
    let on = TestApp::with(&enabled).await;
    assert!(metrics_text(&on, &on.base).await.contains("tessera_"));

    let port = free_port().to_string();
    let at = format!("127.0.0.1:{port}");
    let mut own = production.to_vec();
    own.push(("METRICS_ADDR", at.as_str()));
    let app = TestApp::with(&own).await;
    assert_error(app.get("/metrics", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert!(metrics_text(&app, &format!("http://{at}")).await.contains("tessera_"));
}

/// The document carries the rules the API enforces and every status it can answer
/// (issue 20, item 5); Schemathesis (scripts/fuzz-api) checks the rest from outside.
#[tokio::test]
async fn the_openapi_document_tells_the_truth() {
    let app = TestApp::with(&[("PASSWORD_MIN_LENGTH", "12"), ("PASSWORD_REQUIRE_SPECIAL", "false")]).await;
    let (_, doc) = json_of(app.get("/openapi.json", None).await).await;
    let schemas = &doc["components"]["schemas"];

    // The password policy of this server's settings.
    let password = &schemas["RegisterIn"]["properties"]["password"];
    assert_eq!(password["minLength"], 12, "{password}");
    assert_eq!(password["maxLength"], 128, "{password}");
    let pattern = password["pattern"].as_str().unwrap();
    assert!(pattern.contains("{12,128}") && pattern.contains("[A-Z]") && !pattern.contains("A-Za-z0-9"), "{pattern}");
    // Enforced rules: formats, enums, ranges, exactly-one bodies.
    assert_eq!(schemas["RegisterIn"]["properties"]["email"]["format"], "email");
    assert_eq!(schemas["CreateUserIn"]["properties"]["role"]["enum"], json!(["user", "admin", null]));
    assert_eq!(schemas["KreedaVerifyIn"]["properties"]["type"]["enum"], json!(["signup", "recovery", "email_change"]));
    // A code, a recovery code or a passkey's answer.
    assert_eq!(schemas["MfaVerifyIn"]["oneOf"].as_array().map(Vec::len), Some(3));
    assert_eq!(schemas["BulkIn"]["oneOf"][1]["properties"]["ids"]["maxItems"], 1000);
    let list = doc["paths"]["/v1/admin/users"]["get"]["parameters"].as_array().unwrap();
    let skip = list.iter().find(|p| p["name"] == "skip").unwrap();
    assert_eq!(
        (skip["schema"]["minimum"].clone(), skip["schema"]["maximum"].clone()),
        (json!(0), json!(1_000_000_000))
    );
    // The Supabase surface's bodies are schemas of their own, not the native ones under
    // the same name (utoipa keeps one schema per name: the native PATCH once documented
    // the Supabase `PUT /user` body).
    assert!(schemas["UpdateUserIn"]["properties"].get("nonce").is_none(), "{}", schemas["UpdateUserIn"]);
    assert!(schemas["SbUpdateUserIn"]["properties"].get("nonce").is_some());
    let sb_refs =
        doc["paths"].as_object().unwrap().iter().filter(|(p, _)| p.starts_with("/auth/v1/")).flat_map(|(_, ops)| {
            ops.as_object()
                .unwrap()
                .values()
                .filter_map(|op| op.pointer("/requestBody/content/application~1json/schema/$ref"))
        });
    for r in sb_refs {
        assert!(r.as_str().unwrap().starts_with("#/components/schemas/Sb"), "{r}");
    }
    // Answers that vary by caller.
    let user = &doc["paths"]["/v1/users/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(user["oneOf"].as_array().map(Vec::len), Some(2), "{user}");
    assert_eq!(schemas["PublicUserOut"]["additionalProperties"], false);

    // Every operation documents what any request can answer, with the error body.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let mut needed = vec![];
            if path != "/health" && path != "/auth/v1/health" {
                needed.extend(["500", "503"]);
            }
            if op.get("requestBody").is_some() {
                needed.extend(["400", "408", "413", "422"]);
            }
            if op.get("security").is_some() {
                needed.push("401");
            }
            for status in needed {
                let r = responses.get(status).unwrap_or_else(|| panic!("{method} {path} does not document {status}"));
                // The Supabase surface answers its errors in GoTrue's shape.
                let body = if path.starts_with("/auth/v1/") { "SbError" } else { "ErrorBody" };
                if status != "503" || path != "/health/detailed" {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        format!("#/components/schemas/{body}"),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    // What another user sees is exactly the public shape the document names.
    let (_, me) = app.user().await;
    let (_, other) = app.user().await;
    let other_id = other.body["user"]["id"].as_str().map(str::to_owned);
    let other_id = match other_id {
        Some(id) => id,
        None => json_of(app.get("/v1/auth/me", Some(&other.access)).await).await.1["id"].as_str().unwrap().to_owned(),
    };
    let (status, seen) = json_of(app.get(&format!("/v1/users/{other_id}"), Some(&me.access)).await).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let keys: BTreeSet<&str> = seen.as_object().unwrap().keys().map(String::as_str).collect();
    let documented: BTreeSet<&str> =
        schemas["PublicUserOut"]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, documented);
}
