//! Rate limits, client IPs behind proxies, lockout, and Redis shared by many nodes
//! (SPEC §5.4, §5.5, issue 6), against a real redis-server.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

const ON: (&str, &str) = ("RATE_LIMIT_ENABLED", "true");

async fn login_as(app: &TestApp, email: &str, password: &str, forwarded_for: Option<&str>) -> Response {
    let mut req = app.client.post(app.url("/v1/auth/login")).json(&json!({ "email": email, "password": password }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

async fn register_as(app: &TestApp, email: &str, forwarded_for: Option<&str>) -> Response {
    let mut req = app.client.post(app.url("/v1/users")).json(&json!({ "email": email, "password": PASSWORD }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

fn header(res: &Response, name: &str) -> u64 {
    res.headers().get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn login_limit_counts_down_then_answers_429() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "3/1m")]).await;

    let mut remaining = Vec::new();
    for i in 0..3 {
        let res = login_as(&app, &format!("nobody{i}@example.com"), "Wrong-Passw0rd!", None).await;
        assert_eq!(header(&res, "x-ratelimit-limit"), 3);
        let reset = header(&res, "x-ratelimit-reset");
        let now = chrono::Utc::now().timestamp() as u64;
        assert!(reset > now && reset <= now + 61, "reset is a Unix time within the window");
        remaining.push(header(&res, "x-ratelimit-remaining"));
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_eq!(remaining, [2, 1, 0]);

    let res = login_as(&app, "nobody9@example.com", "Wrong-Passw0rd!", None).await;
    let retry = header(&res, "retry-after");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&res, "x-ratelimit-remaining"), 0);
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn default_login_limit_allows_one_per_second() {
    let app = TestApp::with(&[ON]).await;
    app.register("one@example.com", PASSWORD).await;

    let first = login_as(&app, "one@example.com", PASSWORD, None).await;
    let second = login_as(&app, "one@example.com", PASSWORD, None).await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-limit"), 1, "the 1/1s window is the closest to its limit");
    assert_eq!(header(&second, "retry-after"), 1);
    assert_error(second, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(login_as(&app, "one@example.com", PASSWORD, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn registration_is_limited_per_ip() {
    let app = TestApp::with(&[ON]).await;
    for i in 0..3 {
        assert_eq!(register_as(&app, &format!("r{i}@example.com"), None).await.status(), StatusCode::CREATED);
    }
    let res = register_as(&app, "r3@example.com", None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    // Untrusted peer: X-Forwarded-For is ignored, so spoofed addresses share one bucket.
    let app = TestApp::with(&[ON, ("RATE_LIMIT_REGISTER", "1/1h")]).await;
    assert_eq!(register_as(&app, "a@example.com", Some("203.0.113.1")).await.status(), StatusCode::CREATED);
    let res = register_as(&app, "b@example.com", Some("203.0.113.2")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // Trusted proxy: each forwarded client has its own bucket.
    let app = TestApp::with(&[ON, ("RATE_LIMIT_REGISTER", "1/1h"), ("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    assert_eq!(register_as(&app, "a@example.com", Some("203.0.113.1")).await.status(), StatusCode::CREATED);
    assert_eq!(register_as(&app, "b@example.com", Some("203.0.113.2")).await.status(), StatusCode::CREATED);
    assert_eq!(register_as(&app, "c@example.com", Some("203.0.113.1")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // The right-most untrusted hop counts: a client cannot prepend its way out.
    let res = register_as(&app, "d@example.com", Some("198.51.100.1, 203.0.113.2")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // An unparsable header from the proxy falls back to the proxy itself; a missing
    // header does too: neither skips the limit.
    assert_eq!(register_as(&app, "e@example.com", Some("not-an-ip")).await.status(), StatusCode::CREATED);
    assert_eq!(register_as(&app, "f@example.com", None).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_forwarded_client_ip_is_what_sessions_record() {
    let app = TestApp::with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.register("ip@example.com", PASSWORD).await;
    let res = login_as(&app, "ip@example.com", PASSWORD, Some("203.0.113.77")).await;
    let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();

    let sessions: Value = app.get("/v1/auth/sessions", Some(&token)).await.json().await.unwrap();

    assert_eq!(sessions[0]["ip"], "203.0.113.77");
}

#[tokio::test]
async fn lockout_after_five_failures_even_with_the_right_password() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "1000/1m")]).await;
    app.register("lock@example.com", PASSWORD).await;

    for _ in 0..5 {
        let res = login_as(&app, "lock@example.com", "Wrong-Passw0rd!", None).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let res = login_as(&app, "LOCK@example.com", PASSWORD, None).await;

    let retry = header(&res, "retry-after");
    assert!((890..=900).contains(&retry), "{retry}");
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    assert!(app.dump("audit_log").await.contains("lockout"), "the lockout is audited");
}

#[tokio::test]
async fn lockout_applies_to_unknown_emails_alike() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "1000/1m")]).await;
    for _ in 0..5 {
        assert_eq!(
            login_as(&app, "ghost@example.com", "Wrong-Passw0rd!", None).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let res = login_as(&app, "ghost@example.com", "Wrong-Passw0rd!", None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
}

#[tokio::test]
async fn a_successful_login_resets_the_count() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "1000/1m")]).await;
    app.register("reset@example.com", PASSWORD).await;
    for _ in 0..4 {
        login_as(&app, "reset@example.com", "Wrong-Passw0rd!", None).await;
    }
    assert_eq!(login_as(&app, "reset@example.com", PASSWORD, None).await.status(), StatusCode::OK);
    for _ in 0..4 {
        let res = login_as(&app, "reset@example.com", "Wrong-Passw0rd!", None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_as(&app, "reset@example.com", PASSWORD, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn repeat_lockouts_double_up_to_the_maximum() {
    let app = TestApp::with(&[
        ON,
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("LOCKOUT_THRESHOLD", "2"),
        ("LOCKOUT_DURATION", "1s"),
        ("LOCKOUT_MAX", "3s"),
    ])
    .await;
    let mut durations = Vec::new();
    for _ in 0..3 {
        for attempt in 0..2 {
            let res = login_as(&app, "rep@example.com", "Wrong-Passw0rd!", None).await;
            let status = res.status();
            let retry = res.headers().get("retry-after").cloned();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "round {durations:?}, attempt {attempt}, {retry:?}");
        }
        let res = login_as(&app, "rep@example.com", "Wrong-Passw0rd!", None).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let secs = header(&res, "retry-after");
        durations.push(secs);
        tokio::time::sleep(Duration::from_millis(secs * 1000 + 200)).await;
    }
    assert_eq!(durations, [1, 2, 3]);
}

async fn parallel_wrong_passwords(nodes: &[&TestApp], email: &str) -> (usize, usize) {
    let results = join_all((0..30).map(|i| {
        let app = nodes[i % nodes.len()];
        async move { login_as(app, email, "Wrong-Passw0rd!", None).await.status() }
    }))
    .await;
    let evaluated = results.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = results.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(evaluated + refused, 30, "{results:?}");
    (evaluated, refused)
}

#[tokio::test]
async fn thirty_parallel_wrong_passwords_evaluate_at_most_the_threshold_in_memory() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "1000/1m")]).await;
    app.register("race@example.com", PASSWORD).await;

    let (evaluated, _) = parallel_wrong_passwords(&[&app], "race@example.com").await;

    assert!((1..=5).contains(&evaluated), "{evaluated} passwords were checked");
    let res = login_as(&app, "race@example.com", PASSWORD, None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
}

#[tokio::test]
async fn thirty_parallel_wrong_passwords_on_two_nodes_sharing_redis() {
    let redis = RedisServer::start().await;
    let settings = [ON, ("RATE_LIMIT_LOGIN", "1000/1m"), ("REDIS_URL", &redis.url())];
    let a = TestApp::with(&settings).await;
    let b = a.another_node(&settings).await;
    a.register("race2@example.com", PASSWORD).await;

    let (evaluated, _) = parallel_wrong_passwords(&[&a, &b], "race2@example.com").await;

    assert!((1..=5).contains(&evaluated), "{evaluated} passwords were checked");
    assert_eq!(login_as(&b, "race2@example.com", PASSWORD, None).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(redis.command("KEYS tessera:lock:*").await.contains("tessera:lock:"), "the lock lives in Redis");
}

#[tokio::test]
async fn two_nodes_share_one_limit_through_redis() {
    let redis = RedisServer::start().await;
    let settings = [ON, ("RATE_LIMIT_REGISTER", "3/1h"), ("REDIS_URL", &redis.url())];
    let a = TestApp::with(&settings).await;
    let b = a.another_node(&settings).await;

    assert_eq!(register_as(&a, "n1@example.com", None).await.status(), StatusCode::CREATED);
    assert_eq!(register_as(&b, "n2@example.com", None).await.status(), StatusCode::CREATED);
    let third = register_as(&a, "n3@example.com", None).await;
    assert_eq!(header(&third, "x-ratelimit-remaining"), 0);
    assert_eq!(third.status(), StatusCode::CREATED);

    let res = register_as(&b, "n4@example.com", None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn two_nodes_without_redis_count_separately() {
    // The control for the test above: each node's memory is its own.
    let settings = [ON, ("RATE_LIMIT_REGISTER", "1/1h")];
    let a = TestApp::with(&settings).await;
    let b = a.another_node(&settings).await;
    assert_eq!(register_as(&a, "m1@example.com", None).await.status(), StatusCode::CREATED);
    assert_eq!(register_as(&b, "m2@example.com", None).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn redis_outage_falls_back_to_memory_and_recovers() {
    let mut redis = RedisServer::start().await;
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "1000/1m"), ("REDIS_URL", &redis.url())]).await;
    app.register("outage@example.com", PASSWORD).await;
    let (status, health) = json_of(app.get("/health/detailed", None).await).await;
    assert_eq!((status, health["redis"].as_str()), (StatusCode::OK, Some("healthy")), "{health}");

    redis.kill();
    let res = login_as(&app, "outage@example.com", PASSWORD, None).await;
    assert_eq!(res.status(), StatusCode::OK, "still serving");
    assert!(res.headers().contains_key("x-ratelimit-remaining"), "limits still apply, from memory");
    let (status, health) = json_of(app.get("/health/detailed", None).await).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["redis"], "unhealthy");
    assert_eq!(health["status"], "degraded");
    // Lockout still works from memory.
    for _ in 0..5 {
        login_as(&app, "outage@example.com", "Wrong-Passw0rd!", None).await;
    }
    assert_eq!(login_as(&app, "outage@example.com", PASSWORD, None).await.status(), StatusCode::TOO_MANY_REQUESTS);

    redis.restart().await;
    let mut healthy = false;
    for _ in 0..40 {
        let (_, health) = json_of(app.get("/health/detailed", None).await).await;
        if health["redis"] == "healthy" {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healthy, "Redis is used again without a restart");
    let res = login_as(&app, "someone@example.com", "Wrong-Passw0rd!", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(redis.command("KEYS tessera:rl:*").await.contains("tessera:rl:login"), "counters are in Redis again");
}

#[tokio::test]
async fn disabled_limits_mean_no_headers_no_429_and_no_lockout() {
    let app = TestApp::with(&[("RATE_LIMIT_ENABLED", "false"), ("RATE_LIMIT_LOGIN", "1/1h")]).await;
    app.register("free@example.com", PASSWORD).await;
    for _ in 0..8 {
        let res = login_as(&app, "free@example.com", "Wrong-Passw0rd!", None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(!res.headers().contains_key("x-ratelimit-limit"));
    }
    assert_eq!(login_as(&app, "free@example.com", PASSWORD, None).await.status(), StatusCode::OK);
}

/// Every check of a secret link or code is limited per client IP (`RATE_LIMIT_VERIFY`),
/// on every surface, and the requests that send one count too (issue 15, hole 3).
#[tokio::test]
async fn checks_of_links_and_codes_are_limited_per_ip() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_VERIFY", "4/1h"), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let app = &app;
    let from = |ip: &'static str| {
        move |path: &'static str, body: Value| {
            let req = app.client.post(app.url(path)).header("x-forwarded-for", ip).json(&body);
            async move { req.send().await.unwrap() }
        }
    };
    let a = from("203.0.113.10");
    let guesses = [
        ("/v1/auth/verify-email", json!({ "token": "guess" })),
        ("/auth/verify", json!({ "type": "signup", "token": "guess" })),
        ("/v1/auth/password-reset/confirm", json!({ "token": "guess", "new_password": PASSWORD })),
        ("/v1/auth/password-reset", json!({ "email": "someone@example.com" })),
    ];
    for (path, body) in guesses.clone() {
        assert_ne!(a(path, body).await.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    for (path, body) in guesses.into_iter().chain([
        ("/v1/auth/verify-email/resend", json!({ "email": "someone@example.com" })),
        ("/auth/recover", json!({ "email": "someone@example.com" })),
    ]) {
        assert_error(a(path, body).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
    let form =
        app.client.post(app.url("/verify-email")).header("x-forwarded-for", "203.0.113.10").form(&[("token", "x")]);
    assert_eq!(form.send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "the link page too");
    let b = from("203.0.113.11");
    assert_ne!(b("/v1/auth/verify-email", json!({ "token": "guess" })).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// IPv6 clients are limited per /64: a client holding one cannot rotate through it.
#[tokio::test]
async fn ipv6_clients_share_a_limit_per_64() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_REGISTER", "2/1h"), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert_eq!(register_as(&app, "v1@example.com", Some("2001:db8:1:2::1")).await.status(), StatusCode::CREATED);
    assert_eq!(register_as(&app, "v2@example.com", Some("2001:db8:1:2:ffff::9")).await.status(), StatusCode::CREATED);
    let res = register_as(&app, "v3@example.com", Some("2001:db8:1:2:abcd:1:2:3")).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(register_as(&app, "v4@example.com", Some("2001:db8:1:3::1")).await.status(), StatusCode::CREATED);
}

/// The in-memory store holds at most `RATE_LIMIT_MEMORY_KEYS` keys, however many
/// addresses are asked about (issue 15, hole 5); the limits keep working meanwhile.
#[tokio::test]
async fn the_memory_store_holds_at_most_its_keys() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_MEMORY_KEYS", "200"), ("RATE_LIMIT_VERIFY", "100000/1h")]).await;
    let posts =
        (0..1500).map(|i| app.post("/v1/auth/password-reset", None, json!({ "email": format!("m{i}@example.com") })));
    for res in join_all(posts).await {
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    assert!(app.core.kv.memory_keys() <= 200, "{} keys held", app.core.kv.memory_keys());
    for i in 0..3 {
        assert_eq!(register_as(&app, &format!("after{i}@example.com"), None).await.status(), StatusCode::CREATED);
    }
    assert_eq!(register_as(&app, "after3@example.com", None).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A sign-in refused before any work (the hashing queue is full: 503) leaves no lockout
/// key behind (issue 15, hole 5).
#[tokio::test]
async fn a_sign_in_refused_for_a_full_hash_queue_leaves_no_key() {
    let app = TestApp::with(&[
        ON,
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("HASH_WORKERS", "1"),
        ("HASH_QUEUE", "0"),
        ("ARGON2_MEMORY_KIB", "16384"),
        ("ARGON2_ITERATIONS", "4"),
    ])
    .await;
    let before = app.core.kv.memory_keys();
    let emails: Vec<String> = (0..12).map(|i| format!("q{i}@example.com")).collect();
    let attempts = emails.iter().map(|e| login_as(&app, e, "Wrong-Passw0rd!", None));
    let statuses: Vec<StatusCode> = join_all(attempts).await.iter().map(Response::status).collect();
    let refused = statuses.iter().filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    let failed = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert!(refused > 0 && failed > 0, "{statuses:?}");
    // Each failed attempt keeps its email's failure count; the refused ones keep nothing
    // (the login window of the one client IP is the same key for all of them).
    assert_eq!(app.core.kv.memory_keys(), before + failed + 1, "{statuses:?}");
}

/// Hole 1 of the third review: the sign-in limit of `/auth/v1/token` read the raw query,
/// so `grant_type=passwor%64` (a password grant once decoded) ran unthrottled. Every
/// spelling the handler takes for a password grant is limited, refreshes are not.
#[tokio::test]
async fn an_encoded_grant_type_is_limited_like_a_password_grant() {
    let app = TestApp::with(&[ON, ("RATE_LIMIT_LOGIN", "4/15m")]).await;
    // One sign-in (the first of four), and a refresh, which no sign-in limit counts.
    let (email, login) = app.user().await;
    let res = app
        .client
        .post(app.url("/auth/v1/token?grant_type=refresh_token"))
        .json(&json!({ "refresh_token": login.refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a refresh is not a sign-in");
    assert!(!res.headers().contains_key("x-ratelimit-limit"));
    let grants = ["passwor%64", "%70assword", "pass%77ord", "password"];
    let mut statuses = Vec::new();
    for (i, grant) in grants.iter().enumerate() {
        let res = app
            .client
            .post(app.url(&format!("/auth/v1/token?grant_type={grant}")))
            .json(&json!({ "email": email, "password": format!("Wrong-Passw0rd!{i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&res, "x-ratelimit-limit"), 4, "{grant} carries the sign-in limit");
        statuses.push(res.status());
    }
    assert_eq!(statuses[..3], [StatusCode::BAD_REQUEST; 3], "{statuses:?}");
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "the fifth sign-in is over the limit: {statuses:?}");
    // A path spelled with an escape is no route of its own (no unlimited door).
    let res = app.client.post(app.url("/v1/auth/logi%6e")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Hole 4 of the third review: a password or code given again behind a bearer token was
/// an unthrottled oracle (40 wrong passwords on `DELETE /v1/users/me`, all 400). Each
/// such check counts toward `RATE_LIMIT_VERIFY` for the IP and toward the address's
/// lockout, on every surface: account deletion (`/v1`, Kreeda), password change, factor
/// removal, the Supabase reauthentication nonce, and recovery-code regeneration.
#[tokio::test]
async fn password_checks_behind_a_token_are_limited_and_lock_the_account() {
    // The lockout: five wrong passwords on the account deletion, then 429 even with the
    // right one, and a sign-in is locked too.
    let app = TestApp::with(&[
        ON,
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("RATE_LIMIT_VERIFY", "1000/1h"),
        ("RATE_LIMIT_REGISTER", "100/1h"),
    ])
    .await;
    let (email, login) = app.user().await;
    for _ in 0..5 {
        let res = app
            .send(
                reqwest::Method::DELETE,
                "/v1/users/me",
                Some(&login.access),
                Some(json!({ "password": "Wrong-1!aA" })),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a wrong password");
    }
    let res = app
        .send(reqwest::Method::DELETE, "/v1/users/me", Some(&login.access), Some(json!({ "password": PASSWORD })))
        .await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let res = login_as(&app, &email, PASSWORD, None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    assert!(app.dump("audit_log").await.contains("lockout"), "the lockout is audited");

    // The same for the password change, on /v1, and for Kreeda's deletion.
    let (email, login) = app.user().await;
    for _ in 0..5 {
        let body = json!({ "current_password": "Wrong-1!aA", "new_password": "An0ther!Passphrase" });
        let res = app.post("/v1/auth/change-password", Some(&login.access), body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let body = json!({ "current_password": PASSWORD, "new_password": "An0ther!Passphrase" });
    let res = app.post("/v1/auth/change-password", Some(&login.access), body).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let res = login_as(&app, &email, PASSWORD, None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;

    let (_, login) = app.user().await;
    for _ in 0..5 {
        let body = Some(json!({ "password": "Wrong-1!aA" }));
        let res = app.send(reqwest::Method::DELETE, "/auth/user", Some(&login.access), body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let res = app
        .send(reqwest::Method::DELETE, "/auth/user", Some(&login.access), Some(json!({ "password": PASSWORD })))
        .await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;

    // The per-IP limit: RATE_LIMIT_VERIFY counts every such check, whoever's account.
    let app = TestApp::with(&[
        ON,
        ("RATE_LIMIT_VERIFY", "3/1h"),
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("RATE_LIMIT_REGISTER", "100/1h"),
    ])
    .await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let (_, login) = app.user().await;
        let body = json!({ "current_password": "Wrong-1!aA", "new_password": "An0ther!Passphrase" });
        statuses.push(app.post("/v1/auth/change-password", Some(&login.access), body).await.status());
        let body = Some(json!({ "password": "Wrong-1!aA" }));
        statuses.push(app.send(reqwest::Method::DELETE, "/v1/users/me", Some(&login.access), body).await.status());
    }
    assert_eq!(
        statuses,
        [StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS]
    );
    let (_, login) = app.user().await;
    let res = app.post("/v1/auth/mfa/recovery-codes", Some(&login.access), json!({})).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// Hole 4, the second factor: wrong codes given to remove a factor count toward the
/// lockout like wrong codes at sign-in, and so do wrong Supabase reauthentication nonces.
#[tokio::test]
async fn codes_given_again_behind_a_token_lock_the_account() {
    let smtp = SmtpServer::start().await;
    let settings = smtp.settings();
    let mut vars = pairs(&settings);
    vars.extend([
        ON,
        ("RATE_LIMIT_LOGIN", "1000/1m"),
        ("RATE_LIMIT_VERIFY", "1000/1h"),
        ("RATE_LIMIT_OTP", "100/1h"),
        ("RATE_LIMIT_REGISTER", "100/1h"),
    ]);
    let app = TestApp::with(&vars).await;
    let (email, login) = app.user().await;
    let enrolled: Value = app.post("/v1/auth/mfa/totp", Some(&login.access), json!({})).await.json().await.unwrap();
    let mut totp = Authenticator::new(enrolled["secret"].as_str().unwrap());
    let factor = enrolled["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/auth/mfa/totp/{factor}/activate");
    let activated: Value =
        app.post(&path, Some(&login.access), json!({ "code": totp.next().await })).await.json().await.unwrap();
    let aal2 = activated["access_token"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let body = Some(json!({ "code": totp.wrong() }));
        let res = app.send(reqwest::Method::DELETE, &format!("/v1/auth/mfa/totp/{factor}"), Some(&aal2), body).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    let body = Some(json!({ "code": totp.next().await }));
    let res = app.send(reqwest::Method::DELETE, &format!("/v1/auth/mfa/totp/{factor}"), Some(&aal2), body).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let res = login_as(&app, &email, PASSWORD, None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;

    // The Supabase nonce: five wrong ones, then the right one is refused too.
    let (email, _) = app.user().await;
    let session: Value = app
        .client
        .post(app.url("/auth/v1/token?grant_type=password"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let res = app.client.get(app.url("/auth/v1/reauthenticate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let nonce = smtp.latest(&email, "Confirm it is you").await.code();
    for _ in 0..5 {
        let body = json!({ "password": "An0ther!Passphrase", "nonce": "ZZZZZZ" });
        let res = app.client.put(app.url("/auth/v1/user")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "a wrong nonce");
    }
    let body = json!({ "password": "An0ther!Passphrase", "nonce": nonce });
    let res = app.client.put(app.url("/auth/v1/user")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "locked: the right nonce is refused too");
}

/// Issue 34, item 4: the default limits stopped a developer's second run of an ordinary
/// script from localhost (sign-up 3 an hour, sign-in one a second). In development a
/// loopback client is not counted by the per-IP limits; a client elsewhere is, and
/// outside development (or with `RATE_LIMIT_EXEMPT_LOOPBACK=false`) so is loopback.
#[tokio::test]
async fn in_development_loopback_clients_are_not_held_by_the_per_ip_limits() {
    let dev = TestApp::with(&[ON, ("RATE_LIMIT_EXEMPT_LOOPBACK", ""), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    for i in 0..5 {
        let res = register_as(&dev, &format!("dev{i}@example.com"), None).await;
        assert_eq!(res.status(), StatusCode::CREATED, "sign-up {i} from loopback");
        assert!(!res.headers().contains_key("x-ratelimit-limit"));
    }
    for _ in 0..3 {
        assert_eq!(login_as(&dev, "dev0@example.com", PASSWORD, None).await.status(), StatusCode::OK);
    }
    // A client elsewhere, behind the trusted proxy, is counted as ever.
    for i in 0..3 {
        let res = register_as(&dev, &format!("far{i}@example.com"), Some("203.0.113.5")).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = register_as(&dev, "far3@example.com", Some("203.0.113.5")).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The lockout is per address, and still holds.
    for _ in 0..5 {
        login_as(&dev, "dev1@example.com", "Wrong-Passw0rd!", None).await;
    }
    let res = login_as(&dev, "dev1@example.com", PASSWORD, None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;

    // Outside development, loopback is a client like any other.
    let staging = TestApp::with(&[ON, ("RATE_LIMIT_EXEMPT_LOOPBACK", ""), ("ENVIRONMENT", "staging")]).await;
    for i in 0..3 {
        assert_eq!(register_as(&staging, &format!("st{i}@example.com"), None).await.status(), StatusCode::CREATED);
    }
    let res = register_as(&staging, "st3@example.com", None).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}
