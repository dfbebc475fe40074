//! Hostile clients and failing parts (issue 20): slow and half-open connections,
//! idle keep-alive, slow bodies, the connection limit, and numbers out of range.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

fn host_port(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (EOF or reset), or `deadline`. Returns
/// what was read and whether the server closed it in time.
async fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response with a `Content-Length` from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before a response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// A fresh connection's `GET /health`, timed.
async fn timed_health(app: &TestApp) -> Duration {
    let client = crate::harness::http_client_builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let res = client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    started.elapsed()
}

/// 2,000 clients each send part of a request head and stop. `/health` keeps answering
/// in under 100 ms, and the server closes each of them within the head timeout plus 2 s
/// (issue 20, item 1). Before the fix they were kept for ever.
#[tokio::test]
async fn half_sent_heads_cannot_stop_health_and_are_closed_in_time() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    let app = TestApp::with(&[("HTTP_HEADER_TIMEOUT", "3")]).await;
    let addr = host_port(&app);
    let mut held = Vec::new();
    for _ in 0..2000 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
        held.push((Instant::now(), s));
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(timed_health(&app).await);
    }
    assert!(times.iter().all(|t| *t < Duration::from_millis(100)), "/health took {times:?}");

    let closed = join_all(held.into_iter().map(|(opened, mut s)| async move {
        let (_, closed) = read_until_closed(&mut s, opened + HEADER_TIMEOUT + Duration::from_secs(2)).await;
        (closed, opened.elapsed())
    }))
    .await;
    let open = closed.iter().filter(|(c, _)| !c).count();
    assert_eq!(open, 0, "{open} of 2000 half-sent heads were still open after the timeout + 2 s");
    let earliest = closed.iter().map(|(_, t)| *t).min().unwrap();
    assert!(earliest >= HEADER_TIMEOUT - Duration::from_millis(500), "closed before the timeout: {earliest:?}");
    assert!(timed_health(&app).await < Duration::from_millis(100));
}

/// An idle keep-alive connection outlives the head timeout (it is idle, not slow) and is
/// closed after `HTTP_IDLE_TIMEOUT`; a head begun after the idle wait has the head
/// timeout from its first byte.
#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout() {
    let app = TestApp::with(&[("HTTP_HEADER_TIMEOUT", "1"), ("HTTP_IDLE_TIMEOUT", "3")]).await;
    let addr = host_port(&app);
    let request = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(request).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.write_all(request).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"), "idle 2 s: kept (idle timeout 3 s)");
    let idle_from = Instant::now();
    let (_, closed) = read_until_closed(&mut s, idle_from + Duration::from_secs(3 + 2)).await;
    assert!(closed && idle_from.elapsed() >= Duration::from_millis(2500), "{:?}", idle_from.elapsed());

    // After an idle second, a head that stops half-way is closed 1 s after its first byte.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let begun = Instant::now();
    let (_, closed) = read_until_closed(&mut s, begun + Duration::from_secs(1 + 2)).await;
    assert!(closed, "a half-sent head after an idle wait is closed within the head timeout");
}

/// A body that does not arrive in time is answered 408 in the error shape and the
/// connection is closed; a body announced larger than the limit is 413 at once.
#[tokio::test]
async fn a_slow_body_is_408_and_an_oversized_one_413_at_once() {
    let app = TestApp::with(&[("HTTP_BODY_TIMEOUT", "1")]).await;
    let addr = host_port(&app);

    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let sent = Instant::now();
    let (got, closed) = read_until_closed(&mut s, sent + Duration::from_secs(1 + 2)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(closed, "closed after the 408");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error_code"], "request_timeout", "{body}");
    assert!(sent.elapsed() >= Duration::from_millis(900));

    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let text = read_response(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(900), "413 at once, not after the body timeout");
}

/// Beyond `HTTP_MAX_CONNECTIONS`, a new connection waits in the backlog until one closes.
#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let app = TestApp::with(&[("HTTP_MAX_CONNECTIONS", "20")]).await;
    let addr = host_port(&app);
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        read_response(&mut s).await;
        held.push(s);
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    extra.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(500), extra.read(&mut buf)).await;
    assert!(waited.is_err(), "the 21st connection is not served while 20 are open");
    drop(held.pop());
    let text = read_response(&mut extra).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// Tests that stop or restart the suite's own PostgreSQL server: `scripts/test` runs
/// them on their own, after everything else, with the commands to do it in
/// `TESSERA_TEST_POSTGRES_{STOP,START,RESTART}` (issue 20, items 2 and 3).
mod postgres_alone {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    /// Runs one of the exported control commands.
    fn pg_ctl(what: &str) {
        let var = format!("TESSERA_TEST_POSTGRES_{what}");
        let cmd = std::env::var(&var).unwrap_or_else(|_| panic!("{var} is not set: run this through scripts/test"));
        let out = std::process::Command::new("bash").args(["-c", &cmd]).output().unwrap();
        assert!(out.status.success(), "{var}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts the server again if a test stopped it and then failed.
    struct StartOnDrop(bool);

    impl Drop for StartOnDrop {
        fn drop(&mut self) {
            if self.0 {
                pg_ctl("START");
            }
        }
    }

    /// What one request answered and how long it took.
    type Answers = Arc<Mutex<Vec<(&'static str, StatusCode, Duration)>>>;

    async fn timed(answers: &Answers, what: &'static str, req: reqwest::RequestBuilder) -> Option<Value> {
        let started = Instant::now();
        let res = req.send().await.ok()?;
        let status = res.status();
        answers.lock().unwrap().push((what, status, started.elapsed()));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(res.headers().contains_key("retry-after"), "{what}: 503 without Retry-After");
        }
        res.json().await.ok()
    }

    /// `pg_ctl restart` under load, then a stop of 3 s: no request answers 500, `/health/detailed` shows the
    /// outage and the recovery, and tessera recovers without a restart of its own.
    #[tokio::test]
    #[ignore = "restarts the suite's PostgreSQL server: scripts/test runs it alone"]
    async fn a_postgresql_restart_under_load_answers_no_500_and_recovers() {
        expect_backend(Backend::Postgres);
        let app = Arc::new(
            TestApp::with(&[
                ("DB_POOL_TIMEOUT", "5"),
                ("FIRST_ADMIN_EMAIL", "root@example.com"),
                ("FIRST_ADMIN_PASSWORD", PASSWORD),
            ])
            .await,
        );
        let admin = app.login("root@example.com", PASSWORD).await.access;
        let answers: Answers = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..6 {
            let (app, answers, stop, admin) = (app.clone(), answers.clone(), stop.clone(), admin.clone());
            workers.push(tokio::spawn(async move {
                let (email, login) = app.user().await;
                let mut refresh = login.refresh;
                let mut access = login.access;
                while !stop.load(Ordering::Relaxed) {
                    let c = &app.client;
                    timed(&answers, "me", c.get(app.url("/v1/auth/me")).bearer_auth(&access)).await;
                    let body = json!({ "refresh_token": refresh });
                    if let Some(b) = timed(&answers, "refresh", c.post(app.url("/v1/auth/refresh")).json(&body)).await {
                        if let (Some(r), Some(a)) = (b["refresh_token"].as_str(), b["access_token"].as_str()) {
                            (refresh, access) = (r.to_owned(), a.to_owned());
                        }
                    }
                    let body = json!({ "email": email, "password": PASSWORD });
                    if let Some(b) = timed(&answers, "login", c.post(app.url("/v1/auth/login")).json(&body)).await {
                        if let (Some(r), Some(a)) = (b["refresh_token"].as_str(), b["access_token"].as_str()) {
                            (refresh, access) = (r.to_owned(), a.to_owned());
                        }
                    }
                    let body = json!({ "full_name": "Under Load" });
                    timed(&answers, "profile", c.patch(app.url("/v1/users/me")).bearer_auth(&access).json(&body)).await;
                    timed(&answers, "admin", c.get(app.url("/v1/admin/users?limit=5")).bearer_auth(&admin)).await;
                }
            }));
        }
        let health: Answers = Arc::default();
        let poller = {
            let (app, health, stop) = (app.clone(), health.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    timed(&health, "health", app.client.get(app.url("/health/detailed"))).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = answers.lock().unwrap().len();
        // A fast restart (statements in flight are cut off), then a stop long enough for
        // the health check to see.
        tokio::task::spawn_blocking(|| pg_ctl("RESTART")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::spawn_blocking(|| pg_ctl("STOP")).await.unwrap();
        let stopped = StartOnDrop(true);
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::spawn_blocking(|| pg_ctl("START")).await.unwrap();
        std::mem::forget(stopped);
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        poller.await.unwrap();

        let answers = answers.lock().unwrap().clone();
        let errors: Vec<_> = answers.iter().filter(|(_, s, _)| s.is_server_error()).collect();
        let fives: Vec<_> = errors.iter().filter(|(_, s, _)| *s == StatusCode::INTERNAL_SERVER_ERROR).collect();
        eprintln!(
            "restart under load: {} requests ({before} before the restart), {} answered 503, {} answered 500",
            answers.len(),
            errors.len() - fives.len(),
            fives.len()
        );
        assert!(fives.is_empty(), "500s during a PostgreSQL restart: {fives:?}");
        assert!(errors.iter().all(|(_, s, _)| *s == StatusCode::SERVICE_UNAVAILABLE), "{errors:?}");
        assert!(
            answers.iter().all(|(_, _, took)| *took <= Duration::from_secs(5 + 1)),
            "a request waited longer than DB_POOL_TIMEOUT + 1 s"
        );
        let others: Vec<_> = answers.iter().filter(|(_, s, _)| !s.is_success() && !s.is_server_error()).collect();
        assert!(others.is_empty(), "answers other than 2xx/503: {others:?}");

        let health: Vec<StatusCode> = health.lock().unwrap().iter().map(|(_, s, _)| *s).collect();
        assert!(health.contains(&StatusCode::SERVICE_UNAVAILABLE), "/health/detailed never showed the outage");
        assert_eq!(health.last(), Some(&StatusCode::OK), "/health/detailed shows the recovery");
        // Everything works again without restarting tessera.
        let (email, login) = app.user().await;
        assert_eq!(app.get("/v1/auth/me", Some(&login.access)).await.status(), StatusCode::OK);
        app.login(&email, PASSWORD).await;
    }

    /// With PostgreSQL stopped, no request waits for a connection longer than
    /// `DB_POOL_TIMEOUT` plus 1 s in all, retries and fast-path fallbacks included; each
    /// answers 503 with `Retry-After`, and service resumes once PostgreSQL is back.
    #[tokio::test]
    #[ignore = "stops the suite's PostgreSQL server: scripts/test runs it alone"]
    async fn with_postgresql_down_requests_wait_no_longer_than_the_pool_timeout() {
        expect_backend(Backend::Postgres);
        const POOL_TIMEOUT: Duration = Duration::from_secs(3);
        let app = TestApp::with(&[
            ("DB_POOL_TIMEOUT", "3"),
            ("FIRST_ADMIN_EMAIL", "root@example.com"),
            ("FIRST_ADMIN_PASSWORD", PASSWORD),
        ])
        .await;
        let admin = app.login("root@example.com", PASSWORD).await.access;
        let (email, login) = app.user().await;

        tokio::task::spawn_blocking(|| pg_ctl("STOP")).await.unwrap();
        let started = StartOnDrop(true);
        let answers: Answers = Arc::default();
        let c = &app.client;
        let register = json!({ "email": "late@example.com", "password": PASSWORD });
        let sign_in = json!({ "email": email, "password": PASSWORD });
        let refresh = json!({ "refresh_token": login.refresh });
        tokio::join!(
            timed(&answers, "me", c.get(app.url("/v1/auth/me")).bearer_auth(&login.access)),
            timed(&answers, "sessions", c.get(app.url("/v1/auth/sessions")).bearer_auth(&login.access)),
            timed(&answers, "login", c.post(app.url("/v1/auth/login")).json(&sign_in)),
            timed(&answers, "refresh", c.post(app.url("/v1/auth/refresh")).json(&refresh)),
            timed(&answers, "register", c.post(app.url("/v1/users")).json(&register)),
            timed(&answers, "admin", c.get(app.url("/v1/admin/users")).bearer_auth(&admin)),
            timed(&answers, "health", c.get(app.url("/health/detailed"))),
        );
        let answers = answers.lock().unwrap().clone();
        eprintln!("PostgreSQL down: {answers:?}");
        for (what, status, took) in &answers {
            assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
            assert!(*took <= POOL_TIMEOUT + Duration::from_secs(1), "{what} waited {took:?}");
        }

        tokio::task::spawn_blocking(|| pg_ctl("START")).await.unwrap();
        std::mem::forget(started);
        assert_eq!(app.get("/v1/auth/me", Some(&login.access)).await.status(), StatusCode::OK);
        app.login(&email, PASSWORD).await;
        assert_eq!(app.get("/health/detailed", None).await.status(), StatusCode::OK);
    }
}
