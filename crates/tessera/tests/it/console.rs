//! The admin console at /admin in a real headless Chromium with JavaScript off, driven
//! through chromedriver (see browser.rs): signing in with and without a second factor and
//! the refusals (403 pages, forged POSTs without the CSRF token), the dashboard's numbers
//! and daily charts, the users list (search, filters, pages, bulk changes behind a
//! confirmation), one user's page and each of its actions, the audit log, API keys, and
//! the screenshots of docs/screenshots/.

use std::collections::HashSet;
use std::path::PathBuf;

use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::harness::*;

const ADMIN_EMAIL: &str = "root@example.com";
const CHARTS: [&str; 3] = ["chart-signups", "chart-signins", "chart-failures"];
const NAV: [(&str, &str); 5] = [
    ("nav-dashboard", "/admin"),
    ("nav-users", "/admin/users"),
    ("nav-audit", "/admin/audit"),
    ("nav-keys", "/admin/api-keys"),
    ("nav-clients", "/admin/oauth-clients"),
];

/// A server for the console: its first admin from FIRST_ADMIN_*, cookies without Secure
/// (the browser speaks plain HTTP to 127.0.0.1), and `extra`.
async fn console_app(extra: &[(&str, &str)]) -> TestApp {
    let mut vars =
        vec![("FIRST_ADMIN_EMAIL", ADMIN_EMAIL), ("FIRST_ADMIN_PASSWORD", PASSWORD), ("SECURE_COOKIES", "false")];
    vars.extend_from_slice(extra);
    TestApp::with(&vars).await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

/// The path of a URL of `app`, without query or fragment.
fn path_of(app: &TestApp, url: &str) -> String {
    let rest = url.strip_prefix(&app.base).unwrap_or_else(|| panic!("{url} is not on {}", app.base));
    rest.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// The path of the page the browser shows.
async fn path(browser: &Browser, app: &TestApp) -> String {
    path_of(app, &browser.url().await)
}

/// The lower-case words of a text.
fn words(text: &str) -> HashSet<String> {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// The text of the first `<h1>` of an HTML page.
fn h1_of(html: &str) -> String {
    let start = html.find("<h1").unwrap_or_else(|| panic!("no <h1> in {html}"));
    let end = html[start..].find("</h1>").map_or(html.len(), |e| start + e);
    html[start..end].to_owned()
}

/// `application/x-www-form-urlencoded`.
fn form_encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

// --- the API, to arrange and to check what the console did ---------------------------

async fn api_user(app: &TestApp, admin: &str, id: &str) -> Value {
    let (status, body) = json_of(app.get(&format!("/v1/admin/users/{id}"), Some(admin)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn patch_user(app: &TestApp, admin: &str, id: &str, body: Value) {
    let res = app.send(Method::PATCH, &format!("/v1/admin/users/{id}"), Some(admin), Some(body)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn me_status(app: &TestApp, access: &str) -> StatusCode {
    app.get("/v1/auth/me", Some(access)).await.status()
}

async fn login_status(app: &TestApp, email: &str) -> StatusCode {
    app.post("/v1/auth/login", None, json!({ "email": email, "password": PASSWORD })).await.status()
}

async fn with_api_key(app: &TestApp, path: &str, key: &str) -> StatusCode {
    app.client.get(app.url(path)).header("x-api-key", key).send().await.unwrap().status()
}

/// Every audit event matching `query` (e.g. `user_id=…`), newest first, through every page.
async fn api_events(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (mut all, mut cursor) = (Vec::new(), String::new());
    loop {
        let path = format!("/v1/admin/audit?{query}&limit=100&cursor={cursor}");
        let (status, page) = json_of(app.get(&path, Some(admin)).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return all,
        }
    }
}

/// Enrols and activates a TOTP factor for `email` through the API: the authenticator and
/// the recovery codes.
async fn enrol_totp(app: &TestApp, email: &str) -> (Authenticator, Vec<String>) {
    let login = app.login(email, PASSWORD).await;
    let (status, e) = json_of(app.post("/v1/auth/mfa/totp", Some(&login.access), json!({})).await).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let mut auth = Authenticator::new(e["secret"].as_str().unwrap());
    let path = format!("/v1/auth/mfa/totp/{}/activate", id_of(&e));
    let (status, a) = json_of(app.post(&path, Some(&login.access), json!({ "code": auth.next().await })).await).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let codes = a["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (auth, codes)
}

/// A POST form sent outside the browser with the browser's cookies.
async fn post_form(app: &TestApp, path: &str, cookies: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header(COOKIE, cookies)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_with_cookies(app: &TestApp, path: &str, cookies: &str) -> StatusCode {
    app.client.get(app.url(path)).header(COOKIE, cookies).send().await.unwrap().status()
}

// --- the console's pages ---------------------------------------------------------------

/// Fills and sends the sign-in form.
async fn sign_in(browser: &Browser, app: &TestApp, email: &str, password: &str) {
    browser.open(&app.url("/admin/sign-in")).await;
    assert_eq!(browser.count("form#sign-in input[name=csrf]").await, 1, "the sign-in form carries its CSRF token");
    browser.fill("form#sign-in input#email", email).await;
    browser.fill("form#sign-in input#password", password).await;
    browser.submit("button#sign-in-submit").await;
}

/// Signs the first admin (no MFA) in: the browser lands on the dashboard.
async fn sign_in_admin(browser: &Browser, app: &TestApp) {
    sign_in(browser, app, ADMIN_EMAIL, PASSWORD).await;
    assert_dashboard(browser, app).await;
}

async fn sign_out(browser: &Browser) {
    browser.submit("form#sign-out button").await;
}

/// What every signed-in page has: the sign-out form, the nav, and a CSRF token in each
/// POST form.
async fn assert_signed_in_page(browser: &Browser, app: &TestApp) {
    assert_eq!(browser.count("form#sign-out button").await, 1, "sign-out on {}", browser.url().await);
    for (id, target) in NAV {
        assert_eq!(browser.property(&format!("a#{id}"), "href").await, app.url(target), "a#{id}");
    }
    for form in browser.find_all("form").await {
        if browser.property_of(&form, "method").await != "post" {
            continue;
        }
        let csrf = browser.find_all_in(&form, "input[name=csrf]").await;
        assert_eq!(csrf.len(), 1, "a POST form without its CSRF token on {}", browser.url().await);
        assert_eq!(browser.property_of(&csrf[0], "type").await, "hidden");
        assert!(!browser.property_of(&csrf[0], "value").await.as_str().unwrap().is_empty());
    }
}

async fn assert_dashboard(browser: &Browser, app: &TestApp) {
    assert_eq!(path(browser, app).await, "/admin", "the dashboard: {}", browser.source().await);
    for chart in CHARTS {
        assert_eq!(browser.count(&format!("svg#{chart}")).await, 1, "svg#{chart}");
    }
    assert_signed_in_page(browser, app).await;
}

/// A 403 page, and nothing of the console behind it.
async fn assert_forbidden(browser: &Browser) {
    let h1 = browser.text("h1").await;
    assert!(h1.contains("403"), "a 403 page, not {h1:?}: {}", browser.source().await);
    let leaked = browser.count("svg#chart-signups").await + browser.count("table#users").await;
    assert_eq!(leaked, 0, "a 403 page shows no console: {}", browser.source().await);
}

/// The second step of a sign-in: the code form, and no console yet.
async fn assert_mfa_page(browser: &Browser, app: &TestApp) {
    assert_eq!(browser.count("input#code").await, 1, "the code page: {}", browser.source().await);
    assert_eq!(browser.count("button#mfa-submit").await, 1);
    let form = browser.find_xpath("//input[@id='code']/ancestor::form").await;
    assert_eq!(browser.find_all_in(&form, "input[name=csrf]").await.len(), 1, "the code form's CSRF token");
    let action = browser.property_of(&form, "action").await;
    let here = path(browser, app).await;
    assert!(
        here == "/admin/sign-in/mfa" || action == json!(app.url("/admin/sign-in/mfa")),
        "the code page is /admin/sign-in/mfa: shown at {here}, posting to {action}"
    );
    assert_eq!(browser.count("form#sign-out").await + browser.count("svg#chart-signups").await, 0, "not signed in yet");
}

/// A number of the dashboard.
async fn number(browser: &Browser, css: &str) -> u64 {
    let text = browser.text(css).await;
    text.trim().parse().unwrap_or_else(|_| panic!("{css} shows {text:?}, not a number"))
}

/// The bars of a chart, oldest first: each `<title>`'s date and count.
async fn bars(browser: &Browser, chart: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let titles = browser.find_all(&format!("svg#{chart} rect.bar > title")).await;
    assert_eq!(titles.len(), browser.count(&format!("svg#{chart} rect.bar")).await, "{chart}: a title for each bar");
    for title in titles {
        let text = browser.property_of(&title, "textContent").await;
        let text = text.as_str().unwrap().trim();
        let (date, count) = text.split_once(": ").unwrap_or_else(|| panic!("{chart}: a bar titled {text:?}"));
        let count = count.trim().parse().unwrap_or_else(|_| panic!("{chart}: a bar titled {text:?}"));
        out.push((date.to_owned(), count));
    }
    out
}

/// `[(date, count)]` of an analytics answer's list.
fn days_of(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap().to_owned(), d["count"].as_u64().unwrap()))
        .collect()
}

/// The rows of `table#users`: (id, email), each with its checkbox.
async fn user_rows(browser: &Browser, app: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let prefix = app.url("/admin/users/");
    for row in browser.find_all("table#users tr.user").await {
        let link = browser.find_in(&row, "a.user-link").await;
        let href = browser.property_of(&link, "href").await;
        let id = href.as_str().unwrap().strip_prefix(&prefix).unwrap_or_else(|| panic!("a.user-link to {href}"));
        let boxes = browser.find_all_in(&row, &format!("input[type=checkbox][name=ids][value=\"{id}\"]")).await;
        assert_eq!(boxes.len(), 1, "the row of {id} has its checkbox");
        out.push((id.to_owned(), browser.text_of(&link).await.trim().to_owned()));
    }
    out
}

/// The user ids of `table#users` across every page, following `a#next-page`: the ids
/// and the number of pages.
async fn all_user_pages(browser: &Browser, app: &TestApp) -> (Vec<String>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 1);
    loop {
        let rows = user_rows(browser, app).await;
        assert!(rows.len() <= 50, "50 users a page, not {}", rows.len());
        ids.extend(rows.into_iter().map(|(id, _)| id));
        if browser.count("a#next-page").await == 0 {
            return (ids, pages);
        }
        browser.submit("a#next-page").await;
        pages += 1;
    }
}

/// The search form: `q`, `role` and `active`, sent.
async fn search(browser: &Browser, app: &TestApp, q: &str, role: &str, active: &str) -> Vec<(String, String)> {
    browser.open(&app.url("/admin/users")).await;
    assert_eq!(browser.property("form#search", "method").await, "get");
    browser.fill("form#search input#q", q).await;
    browser.choose("form#search select#role", role).await;
    browser.choose("form#search select#active", active).await;
    browser.submit("button#search-submit").await;
    assert_eq!(path(browser, app).await, "/admin/users");
    user_rows(browser, app).await
}

/// Presses a button of a user's page (or of the confirmation page it led to): the browser
/// comes back to the user's page, which shows a flash message.
async fn act(browser: &Browser, app: &TestApp, id: &str, css: &str) -> String {
    browser.submit(css).await;
    assert_eq!(path(browser, app).await, format!("/admin/users/{id}"), "after {css}: {}", browser.source().await);
    let flash = browser.text(".flash").await;
    assert!(!flash.trim().is_empty(), "after {css}: an empty .flash");
    flash
}

async fn state(browser: &Browser) -> HashSet<String> {
    words(&browser.text("#state").await)
}

async fn assert_active(browser: &Browser, active: bool) {
    let s = state(browser).await;
    assert_eq!((s.contains("active"), s.contains("inactive")), (active, !active), "#state: {s:?}");
}

/// One row of `table#audit`.
#[derive(Debug)]
struct AuditRow {
    event: String,
    actor: String,
    actor_href: Option<String>,
    subject_href: Option<String>,
}

async fn audit_rows(browser: &Browser) -> Vec<AuditRow> {
    let mut out = Vec::new();
    for row in browser.find_all("table#audit tr.event").await {
        let event = browser.text_of(&browser.find_in(&row, "td.event-name").await).await.trim().to_owned();
        let actor_cell = browser.find_in(&row, "td.actor").await;
        let actor = browser.text_of(&actor_cell).await;
        let mut actor_href = None;
        if let Some(a) = browser.find_all_in(&actor_cell, "a").await.first() {
            actor_href = browser.property_of(a, "href").await.as_str().map(str::to_owned);
        }
        let mut subject_href = None;
        if let Some(a) = browser.find_all_in(&row, "td.subject a.user-link").await.first() {
            subject_href = browser.property_of(a, "href").await.as_str().map(str::to_owned);
        }
        out.push(AuditRow { event, actor, actor_href, subject_href });
    }
    out
}

/// The rows of the audit log across every page, following `a#next-page`; and the number
/// of pages.
async fn all_audit_pages(browser: &Browser) -> (Vec<AuditRow>, usize) {
    let (mut rows, mut pages) = (Vec::new(), 1);
    loop {
        rows.extend(audit_rows(browser).await);
        if browser.count("a#next-page").await == 0 {
            return (rows, pages);
        }
        browser.submit("a#next-page").await;
        pages += 1;
    }
}

/// The audit-log filter form, sent.
async fn filter_audit(browser: &Browser, app: &TestApp, user_id: &str, event: &str) {
    browser.open(&app.url("/admin/audit")).await;
    browser.fill("form#audit-filter input#user_id", user_id).await;
    browser.fill("form#audit-filter input#event", event).await;
    browser.submit("button#audit-submit").await;
    assert_eq!(path(browser, app).await, "/admin/audit");
}

/// docs/screenshots/NAME: a PNG of what the browser shows.
async fn save_screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

// --- the tests ---------------------------------------------------------------------------

#[tokio::test]
async fn the_console_dashboard_counts_and_charts_what_happened_and_refuses_plain_users() {
    let app = console_app(&[]).await;
    // Sign-ups over the last four weeks, so that the charts (and the screenshot) have a
    // history: some of them deactivated or soft-deleted, as `seed-users` makes them.
    let plan = tessera_core::account::seed::SeedPlan { count: 600, prefix: "hist".to_owned(), days: 28, batch: 200 };
    app.core.seed_users(&plan, |_| {}).await.unwrap();
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id_of(&app.register(&format!("dash-{i}@example.com"), PASSWORD).await));
    }
    patch_user(&app, &admin, &ids[1], json!({ "is_verified": true })).await;
    patch_user(&app, &admin, &ids[2], json!({ "is_active": false })).await;
    app.sql("UPDATE users SET deleted_at = created_at WHERE email = 'dash-3@example.com'").await;
    for _ in 0..2 {
        let res = app.post("/v1/auth/login", None, json!({ "email": "dash-0@example.com", "password": "Wrong!Pass1" }));
        assert_eq!(res.await.status(), StatusCode::UNAUTHORIZED);
    }
    app.login("dash-0@example.com", PASSWORD).await;

    let browser = Browser::start().await;
    browser.set_window_size(1280, 1500).await;
    sign_in_admin(&browser, &app).await;

    // The numbers are the analytics API's (read right after the page: nothing happened between).
    let numbers = [
        ("#total-users", "total_users"),
        ("#active-users", "active_users"),
        ("#verified-users", "verified_users"),
        ("#admins", "admins"),
        ("#deleted-users", "deleted_users"),
        ("#active-sessions", "active_sessions"),
        ("#failed-24h", "failed_logins_24h"),
    ];
    let mut shown = Vec::new();
    for (css, _) in numbers {
        shown.push(number(&browser, css).await);
    }
    // The outbox's numbers change as mail goes out: numbers they must be.
    number(&browser, "#outbox-pending").await;
    number(&browser, "#outbox-failed").await;
    let signups = bars(&browser, "chart-signups").await;
    let signins = bars(&browser, "chart-signins").await;
    let failures = bars(&browser, "chart-failures").await;
    let (status, api) = json_of(app.get("/v1/admin/analytics?days=30", Some(&admin)).await).await;
    assert_eq!(status, StatusCode::OK, "{api}");
    for ((css, field), got) in numbers.iter().zip(&shown) {
        assert_eq!(Some(*got), api[field].as_u64(), "{css} against the API's {field}: {api}");
    }
    assert_eq!((shown[3], shown[6]), (1, 2), "one admin, two failures");
    assert!(shown[4] >= 1, "dash-3 and some seeded users are soft-deleted");
    assert!(signups.iter().filter(|(_, n)| *n > 0).count() > 20, "four weeks of sign-ups: {signups:?}");

    // The charts of the default window: 30 days, oldest first, ending today.
    assert_eq!(signups, days_of(&api["signups_per_day"]), "chart-signups against the API");
    assert_eq!(signins, days_of(&api["logins_per_day"]), "chart-signins against the API");
    assert_eq!(failures.len(), 30);
    let dates: Vec<&String> = failures.iter().map(|(d, _)| d).collect();
    assert_eq!(dates, signups.iter().map(|(d, _)| d).collect::<Vec<_>>(), "the charts share their days");
    for pair in signups.windows(2) {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(day(&pair[1].0) - day(&pair[0].0), chrono::Duration::days(1), "consecutive days: {signups:?}");
    }
    let today = &signups.last().unwrap();
    assert!(today.1 >= 4, "today's sign-ups count the users created: {today:?}");
    assert_eq!(failures.iter().map(|(_, c)| c).sum::<u64>(), 2, "{failures:?}");
    assert_eq!(failures.last().unwrap().1, 2, "today's bar holds the two failures: {failures:?}");
    assert!(signins.last().unwrap().1 >= 2, "the admin's and dash-0's sign-ins: {signins:?}");
    save_screenshot(&browser, "console-dashboard.png").await;

    // Each window: that many bars in each chart; the links lead to them.
    let windows: HashSet<String> = {
        let mut hrefs = HashSet::new();
        for a in browser.find_all("a.window").await {
            hrefs.insert(browser.property_of(&a, "href").await.as_str().unwrap().to_owned());
        }
        hrefs
    };
    let want: HashSet<String> = [7, 30, 90, 365].iter().map(|n| app.url(&format!("/admin?days={n}"))).collect();
    assert_eq!(windows, want, "a.window links");
    for days in [7, 90, 365] {
        browser.open(&app.url(&format!("/admin?days={days}"))).await;
        for chart in CHARTS {
            assert_eq!(browser.count(&format!("svg#{chart} rect.bar")).await, days, "{chart}, {days} days");
        }
    }
    browser.open(&app.url("/admin?days=7")).await;
    let (_, api7) = json_of(app.get("/v1/admin/analytics?days=7", Some(&admin)).await).await;
    assert_eq!(bars(&browser, "chart-signups").await, days_of(&api7["signups_per_day"]));
    assert_eq!(bars(&browser, "chart-signins").await, days_of(&api7["logins_per_day"]));
    for a in browser.find_all("a.window").await {
        if browser.property_of(&a, "href").await == json!(app.url("/admin?days=30")) {
            browser.submit_el(&a).await;
            break;
        }
    }
    for chart in CHARTS {
        assert_eq!(browser.count(&format!("svg#{chart} rect.bar")).await, 30, "{chart} after a.window to 30 days");
    }

    // A user's page, for the docs.
    browser.open(&app.url(&format!("/admin/users/{}", ids[1]))).await;
    assert!(browser.text("h1").await.contains("dash-1@example.com"));
    save_screenshot(&browser, "console-user.png").await;

    // A plain user signs in and gets 403 pages (and 403 statuses).
    sign_out(&browser).await;
    browser.open(&app.url("/admin")).await;
    assert_eq!(browser.count("svg#chart-signups").await, 0, "signed out");
    sign_in(&browser, &app, "dash-0@example.com", PASSWORD).await;
    assert_eq!(path(&browser, &app).await, "/admin");
    assert_forbidden(&browser).await;
    let cookies = browser.cookie_header().await;
    assert!(!cookies.is_empty(), "the plain user holds a console session");
    for page in ["/admin", "/admin/users", &format!("/admin/users/{}", ids[0])] {
        assert_eq!(get_with_cookies(&app, page, &cookies).await, StatusCode::FORBIDDEN, "{page}");
        browser.open(&app.url(page)).await;
        assert_forbidden(&browser).await;
    }
}

#[tokio::test]
async fn the_console_asks_for_the_second_factor_and_admin_mfa_required_enforces_it() {
    let app = console_app(&[("ADMIN_MFA_REQUIRED", "true")]).await;
    let browser = Browser::start().await;

    // Without a factor, an admin is refused.
    sign_in(&browser, &app, ADMIN_EMAIL, PASSWORD).await;
    assert_forbidden(&browser).await;
    browser.open(&app.url("/admin")).await;
    assert_eq!(browser.count("svg#chart-signups").await, 0, "no dashboard without a second factor");
    browser.delete_cookies().await;

    // With one: the password, then the code page; a wrong code stays there with an error.
    let (mut auth, recovery) = enrol_totp(&app, ADMIN_EMAIL).await;
    sign_in(&browser, &app, ADMIN_EMAIL, PASSWORD).await;
    assert_mfa_page(&browser, &app).await;
    let before = browser.text("body").await;
    browser.fill("input#code", &auth.wrong()).await;
    browser.submit("button#mfa-submit").await;
    assert_mfa_page(&browser, &app).await;
    let after = browser.text("body").await;
    let said = words(&after);
    assert!(
        after != before && ["invalid", "wrong", "incorrect", "error"].iter().any(|w| said.contains(*w)),
        "a wrong code shows an error: {after:?}"
    );
    browser.fill("input#code", &auth.next().await).await;
    browser.submit("button#mfa-submit").await;
    assert_dashboard(&browser, &app).await;

    // The console's cookies.
    let cookies = browser.cookies().await;
    assert!(!cookies.is_empty());
    for c in &cookies {
        assert_eq!(
            (c["path"].as_str(), c["httpOnly"].as_bool(), c["sameSite"].as_str()),
            (Some("/admin"), Some(true), Some("Strict")),
            "cookie {c}"
        );
    }

    // Signing out ends the session on the server, not only in the browser.
    let header = browser.cookie_header().await;
    assert_eq!(get_with_cookies(&app, "/admin", &header).await, StatusCode::OK, "the cookies work outside the browser");
    sign_out(&browser).await;
    assert_ne!(get_with_cookies(&app, "/admin", &header).await, StatusCode::OK, "the old cookie after sign-out");
    browser.open(&app.url("/admin")).await;
    assert_eq!(browser.count("svg#chart-signups").await + browser.count("form#sign-out").await, 0, "signed out");

    // A recovery code does instead of the TOTP code, once.
    sign_in(&browser, &app, ADMIN_EMAIL, PASSWORD).await;
    assert_mfa_page(&browser, &app).await;
    browser.fill("input#code", &recovery[0]).await;
    browser.submit("button#mfa-submit").await;
    assert_dashboard(&browser, &app).await;
    sign_out(&browser).await;
    sign_in(&browser, &app, ADMIN_EMAIL, PASSWORD).await;
    browser.fill("input#code", &recovery[0]).await;
    browser.submit("button#mfa-submit").await;
    assert_mfa_page(&browser, &app).await;
}

#[tokio::test]
async fn an_admin_finds_a_user_and_manages_them_in_the_console_and_the_audit_log_shows_it() {
    let app = console_app(&[]).await;
    let root = app.login(ADMIN_EMAIL, PASSWORD).await;
    let admin = root.access.clone();
    let admin_id = root.body["user"]["id"].as_str().unwrap().to_owned();
    let email = "zed-alpha@example.com";
    let id = id_of(&app.register(email, PASSWORD).await);
    app.register("zed-beta@example.com", PASSWORD).await;
    app.register("other@example.com", PASSWORD).await;
    let noisy = id_of(&app.register("noisy@example.com", PASSWORD).await);
    for _ in 0..6 {
        futures::future::join_all((0..10).map(|_| app.login("noisy@example.com", PASSWORD))).await;
    }
    let browser = Browser::start().await;
    sign_in_admin(&browser, &app).await;

    // Search by an email prefix, open the user.
    browser.submit("a#nav-users").await;
    assert_eq!(path(&browser, &app).await, "/admin/users");
    assert_signed_in_page(&browser, &app).await;
    assert_eq!(search(&browser, &app, "zed-", "", "").await.len(), 2);
    assert_eq!(search(&browser, &app, "zed-al", "", "").await, [(id.clone(), email.to_owned())]);
    browser.submit("tr.user a.user-link").await;
    let page = app.url(&format!("/admin/users/{id}"));
    assert_eq!(path(&browser, &app).await, format!("/admin/users/{id}"));
    assert!(browser.text("h1").await.contains(email));
    assert!(browser.text("dl#profile").await.contains(email), "the profile shows the email");
    assert_signed_in_page(&browser, &app).await;
    assert_active(&browser, true).await;
    assert!(!state(&browser).await.contains("deleted"));
    assert_eq!(browser.count("button#activate").await, 0);

    // Deactivate: the user's tokens die; activate again.
    let token = app.login(email, PASSWORD).await.access;
    assert_eq!(me_status(&app, &token).await, StatusCode::OK);
    act(&browser, &app, &id, "button#deactivate").await;
    assert_active(&browser, false).await;
    assert_eq!(browser.count("button#deactivate").await, 0);
    assert_eq!(me_status(&app, &token).await, StatusCode::UNAUTHORIZED, "a deactivated user's token");
    assert_eq!(api_user(&app, &admin, &id).await["is_active"], false);
    assert_eq!(login_status(&app, email).await, StatusCode::FORBIDDEN);
    act(&browser, &app, &id, "button#activate").await;
    assert_active(&browser, true).await;
    assert_eq!(api_user(&app, &admin, &id).await["is_active"], true);
    assert_eq!(login_status(&app, email).await, StatusCode::OK);

    // A forged POST (the browser's cookies, without the page's CSRF token) is refused;
    // with the token, the same POST works.
    let cookies = browser.cookie_header().await;
    let csrf_input = browser.find_xpath("//button[@id='deactivate']/ancestor::form//input[@name='csrf']").await;
    let csrf = browser.property_of(&csrf_input, "value").await.as_str().unwrap().to_owned();
    let action = format!("/admin/users/{id}/deactivate");
    let form = browser.find_xpath("//button[@id='deactivate']/ancestor::form").await;
    assert_eq!(browser.property_of(&form, "action").await, json!(app.url(&action)), "the deactivate form's action");
    for (body, what) in [(String::new(), "no csrf field"), (form_encode(&[("csrf", "forged-token")]), "a wrong csrf")] {
        let res = post_form(&app, &action, &cookies, body).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        let html = res.text().await.unwrap();
        assert!(h1_of(&html).contains("403"), "{what}: {html}");
        assert_eq!(api_user(&app, &admin, &id).await["is_active"], true, "{what} changed nothing");
    }
    let res = post_form(&app, &action, &cookies, form_encode(&[("csrf", &csrf)])).await;
    assert!(res.status().is_redirection() || res.status().is_success(), "with the page's token: {}", res.status());
    assert_eq!(api_user(&app, &admin, &id).await["is_active"], false, "the POST with the right token works");
    browser.open(&page).await;
    assert_active(&browser, false).await;
    act(&browser, &app, &id, "button#activate").await;
    assert_active(&browser, true).await;

    // Verify the email; change the role and back.
    assert_eq!(api_user(&app, &admin, &id).await["is_verified"], false);
    act(&browser, &app, &id, "button#verify").await;
    assert_eq!(browser.count("button#verify").await, 0, "verified: no button");
    assert_eq!(api_user(&app, &admin, &id).await["is_verified"], true);
    for role in ["admin", "user"] {
        browser.choose("select#role-select", role).await;
        act(&browser, &app, &id, "button#role-submit").await;
        assert_eq!(api_user(&app, &admin, &id).await["role"], role);
    }

    // Delete (soft, behind a confirmation) and restore.
    browser.submit("a#delete").await;
    assert_eq!(browser.count("button#confirm-delete").await, 1, "a confirmation page: {}", browser.source().await);
    assert_signed_in_page(&browser, &app).await;
    assert_eq!(login_status(&app, email).await, StatusCode::OK, "nothing is deleted before the confirmation");
    act(&browser, &app, &id, "button#confirm-delete").await;
    assert!(state(&browser).await.contains("deleted"), "#state: {:?}", state(&browser).await);
    assert!(login_status(&app, email).await.is_client_error(), "a deleted user cannot sign in");
    act(&browser, &app, &id, "button#restore").await;
    assert!(!state(&browser).await.contains("deleted"), "#state: {:?}", state(&browser).await);
    assert_eq!(browser.count("button#restore").await, 0);
    let history = browser.text("table#user-audit").await;
    assert!(browser.count("table#user-audit tr.event").await > 0);
    assert!(history.contains("admin.user.restore"), "the user's events in table#user-audit: {history}");
    let before = app.login(email, PASSWORD).await.access;
    assert_eq!(me_status(&app, &before).await, StatusCode::OK, "restored: the user signs in");

    // Sessions: sign out everywhere, then revoke one of two.
    act(&browser, &app, &id, "button#revoke-all").await;
    assert_eq!(me_status(&app, &before).await, StatusCode::UNAUTHORIZED, "revoke-all");
    assert_eq!(browser.count("tr.session").await, 0);
    let (a, b) = (app.login(email, PASSWORD).await.access, app.login(email, PASSWORD).await.access);
    browser.open(&page).await;
    assert_eq!(browser.count("tr.session").await, 2);
    let first = browser.find("tr.session button.revoke-session").await;
    browser.submit_el(&first).await;
    assert_eq!(path(&browser, &app).await, format!("/admin/users/{id}"));
    assert!(!browser.text(".flash").await.trim().is_empty());
    assert_eq!(browser.count("tr.session").await, 1);
    let mut statuses = vec![me_status(&app, &a).await, me_status(&app, &b).await];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED], "one session revoked, the other alive");

    // MFA reset, on a user with a factor.
    let mfa_id = id_of(&app.register("mfa-user@example.com", PASSWORD).await);
    enrol_totp(&app, "mfa-user@example.com").await;
    browser.open(&app.url(&format!("/admin/users/{mfa_id}"))).await;
    assert!(words(&browser.text("#mfa").await).contains("on"), "#mfa: {}", browser.text("#mfa").await);
    act(&browser, &app, &mfa_id, "button#mfa-reset").await;
    assert!(words(&browser.text("#mfa").await).contains("off"), "#mfa: {}", browser.text("#mfa").await);
    assert_eq!(browser.count("button#mfa-reset").await, 0);
    let login = app.login("mfa-user@example.com", PASSWORD).await;
    assert!(login.body.get("mfa_required").is_none(), "one step again: {}", login.body);

    // The audit log: the user's events as the API lists them, the admin's linked as actor,
    // the user linked as subject.
    let events = api_events(&app, &admin, &format!("user_id={id}")).await;
    let by_admin: Vec<&Value> = events.iter().filter(|e| e["actor_id"] == json!(admin_id)).collect();
    let names: HashSet<&str> = by_admin.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(by_admin.len() >= 11, "each of the 11 actions was audited: {names:?}");
    assert!(names.contains("admin.user.update") && names.contains("admin.user.restore"), "{names:?}");
    browser.submit("a#nav-audit").await;
    assert_signed_in_page(&browser, &app).await;
    filter_audit(&browser, &app, &id, "").await;
    let (rows, _) = all_audit_pages(&browser).await;
    let shown: Vec<&str> = rows.iter().map(|r| r.event.as_str()).collect();
    let listed: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(shown, listed, "table#audit for user_id={id} against GET /v1/admin/audit");
    for (row, event) in rows.iter().zip(&events) {
        assert_eq!(row.subject_href, Some(page.clone()), "td.subject of {row:?}");
        if event["actor_id"] == json!(admin_id) {
            assert!(row.actor.contains(ADMIN_EMAIL), "td.actor of {row:?}");
            assert_eq!(row.actor_href, Some(app.url(&format!("/admin/users/{admin_id}"))), "td.actor of {row:?}");
        }
    }

    // By event name, across users.
    filter_audit(&browser, &app, "", "admin.user.update").await;
    let (rows, _) = all_audit_pages(&browser).await;
    let updates = api_events(&app, &admin, "event=admin.user.update").await;
    assert_eq!(rows.len(), updates.len());
    assert!(!rows.is_empty() && rows.iter().all(|r| r.event == "admin.user.update"), "{rows:?}");

    // Pages: the noisy user's 61 events, by keyset.
    filter_audit(&browser, &app, &noisy, "").await;
    let (mut shown, mut pages) = (Vec::new(), 1);
    loop {
        for cell in browser.find_all("table#audit tr.event td.event-name").await {
            shown.push(browser.text_of(&cell).await.trim().to_owned());
        }
        if browser.count("a#next-page").await == 0 {
            break;
        }
        browser.submit("a#next-page").await;
        pages += 1;
    }
    let listed: Vec<String> = api_events(&app, &admin, &format!("user_id={noisy}"))
        .await
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, listed, "table#audit for user_id={noisy}, page after page");
    assert!(listed.len() >= 61 && pages >= 2, "{} events on {pages} pages", listed.len());

    // From and to.
    let kind = browser.property("input#from", "type").await;
    let at = |hours: i64| {
        let t = chrono::Utc::now() + chrono::Duration::hours(hours);
        if kind == "datetime-local" {
            t.format("%Y-%m-%dT%H:%M").to_string()
        } else {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
    };
    for (query, some) in
        [(format!("from={}", at(2)), false), (format!("to={}", at(-2)), false), (format!("from={}", at(-2)), true)]
    {
        browser.open(&app.url(&format!("/admin/audit?user_id={id}&{query}"))).await;
        assert_eq!(browser.count("table#audit tr.event").await > 0, some, "{query}");
    }
}

#[tokio::test]
async fn the_console_lists_users_by_pages_changes_them_in_bulk_and_manages_api_keys() {
    let app = console_app(&[]).await;
    let root = app.login(ADMIN_EMAIL, PASSWORD).await;
    let (admin, admin_id) = (root.access.clone(), root.body["user"]["id"].as_str().unwrap().to_owned());
    let mut everyone = vec![admin_id.clone()];
    for i in 0..52 {
        everyone.push(id_of(&app.register(&format!("page-{i:02}@example.com"), PASSWORD).await));
    }
    let mut bulk = Vec::new();
    for i in 0..3 {
        bulk.push(id_of(&app.register(&format!("bulk-{i}@example.com"), PASSWORD).await));
    }
    everyone.extend(bulk.iter().cloned());
    let browser = Browser::start().await;
    sign_in_admin(&browser, &app).await;

    // 56 users: 50, then 6, each once.
    browser.submit("a#nav-users").await;
    assert_signed_in_page(&browser, &app).await;
    assert_eq!(browser.count("form#bulk table#users").await, 1, "the table sits in form#bulk");
    let (ids, pages) = all_user_pages(&browser, &app).await;
    assert_eq!((ids.len(), pages), (56, 2));
    assert_eq!(ids.iter().collect::<HashSet<_>>(), everyone.iter().collect::<HashSet<_>>());
    assert_eq!(search(&browser, &app, "", "admin", "").await, [(admin_id.clone(), ADMIN_EMAIL.to_owned())]);
    assert_eq!(search(&browser, &app, "bulk-", "user", "true").await.len(), 3);

    // Bulk: two users deactivated, after a confirmation.
    search(&browser, &app, "bulk-", "", "").await;
    for id in &bulk[..2] {
        browser.click(&format!("form#bulk input[name=ids][value=\"{id}\"]")).await;
    }
    browser.choose("select#bulk-action", "deactivate").await;
    browser.submit("button#bulk-submit").await;
    assert_eq!(browser.count("button#bulk-confirm").await, 1, "a confirmation page: {}", browser.source().await);
    assert_signed_in_page(&browser, &app).await;
    let html = browser.source().await;
    assert!(html.contains("bulk-0@example.com") && html.contains("bulk-1@example.com"), "{html}");
    assert!(!html.contains("bulk-2@example.com"), "only the selected users: {html}");
    for id in &bulk {
        assert_eq!(api_user(&app, &admin, id).await["is_active"], true, "nothing changes before the confirmation");
    }
    browser.submit("button#bulk-confirm").await;
    assert!(!browser.text(".flash").await.trim().is_empty());
    let states: Vec<Value> = futures::future::join_all(bulk.iter().map(|id| api_user(&app, &admin, id)))
        .await
        .iter()
        .map(|u| u["is_active"].clone())
        .collect();
    assert_eq!(states, [json!(false), json!(false), json!(true)]);
    let inactive: HashSet<String> =
        search(&browser, &app, "bulk-", "", "false").await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(inactive, bulk[..2].iter().cloned().collect());

    // Bulk: a role.
    search(&browser, &app, "bulk-2", "", "").await;
    browser.click(&format!("form#bulk input[name=ids][value=\"{}\"]", bulk[2])).await;
    browser.choose("select#bulk-action", "set_role_admin").await;
    browser.submit("button#bulk-submit").await;
    assert_eq!(api_user(&app, &admin, &bulk[2]).await["role"], "user");
    browser.submit("button#bulk-confirm").await;
    assert!(!browser.text(".flash").await.trim().is_empty());
    assert_eq!(api_user(&app, &admin, &bulk[2]).await["role"], "admin");

    // API keys: created with their scopes, shown once, revoked.
    browser.submit("a#nav-keys").await;
    assert_eq!(path(&browser, &app).await, "/admin/api-keys");
    assert_signed_in_page(&browser, &app).await;
    let mut keys = Vec::new();
    for (name, scope) in [("reporting", "users:read"), ("auditor", "audit:read")] {
        browser.open(&app.url("/admin/api-keys")).await;
        browser.fill("form#create-key input#key-name", name).await;
        browser.click(&format!("form#create-key input[name=scopes][value=\"{scope}\"]")).await;
        browser.submit("button#create-key-submit").await;
        let key = browser.text("code#new-key").await.trim().to_owned();
        assert!(key.starts_with("tsk_"), "code#new-key: {key:?}");
        keys.push(key);
    }
    assert_eq!(with_api_key(&app, "/v1/admin/users", &keys[0]).await, StatusCode::OK);
    assert_eq!(with_api_key(&app, "/v1/admin/users", &keys[1]).await, StatusCode::FORBIDDEN, "audit:read only");
    assert_eq!(with_api_key(&app, "/v1/admin/audit", &keys[1]).await, StatusCode::OK);
    browser.open(&app.url("/admin/api-keys")).await;
    assert_eq!(browser.count("code#new-key").await, 0, "shown once");
    let html = browser.source().await;
    assert!(!html.contains(&keys[0]) && !html.contains(&keys[1]), "shown once");
    let mut revoke = None;
    let mut names = Vec::new();
    for row in browser.find_all("table#api-keys tr.key").await {
        let name = browser.text_of(&browser.find_in(&row, "td.key-name").await).await.trim().to_owned();
        if name == "reporting" {
            revoke = Some(browser.find_in(&row, "button.revoke-key").await);
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["auditor", "reporting"]);
    browser.submit_el(&revoke.unwrap()).await;
    assert_eq!(with_api_key(&app, "/v1/admin/users", &keys[0]).await, StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(with_api_key(&app, "/v1/admin/audit", &keys[1]).await, StatusCode::OK, "the other key still works");

    // OAuth clients: registered with their redirect URIs, the secret shown once, deleted.
    browser.submit("a#nav-clients").await;
    assert_eq!(path(&browser, &app).await, "/admin/oauth-clients");
    assert_signed_in_page(&browser, &app).await;
    browser.fill("form#register-client input#client-name", "Wiki").await;
    browser.fill("form#register-client textarea#redirect-uris", "https://wiki.example/callback").await;
    browser.submit("button#register-client-submit").await;
    let secret = browser.text("code#new-secret").await.trim().to_owned();
    assert!(secret.len() >= 40, "code#new-secret: {secret:?}");
    let (_, listed) = json_of(app.get("/v1/admin/oauth/clients", Some(&admin)).await).await;
    assert_eq!(listed["items"][0]["client_name"], "Wiki", "{listed}");
    assert_eq!(listed["items"][0]["redirect_uris"], json!(["https://wiki.example/callback"]));
    browser.open(&app.url("/admin/oauth-clients")).await;
    assert!(!browser.source().await.contains(&secret), "shown once");
    browser.submit("table#oauth-clients tr.client button.danger").await;
    let (_, listed) = json_of(app.get("/v1/admin/oauth/clients", Some(&admin)).await).await;
    assert_eq!(listed["total"], 0, "{listed}");
}

#[tokio::test]
async fn a_users_page_lists_the_identities_they_sign_in_with() {
    let provider = crate::provider::OidcProvider::start().await;
    provider.set_user("ivan", json!({"email": "ivan@example.com", "email_verified": true})).await;
    let app = console_app(&[
        ("EXTERNAL_MOCK_ENABLED", "true"),
        ("EXTERNAL_MOCK_CLIENT_ID", "console-test"),
        ("EXTERNAL_MOCK_ISSUER", provider.issuer.as_str()),
    ])
    .await;
    let id_token = provider.id_token("console-test", "ivan", None).await;
    let (status, session) = json_of(
        app.post("/auth/v1/token?grant_type=id_token", None, json!({"provider": "mock", "id_token": id_token})).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let id = session["user"]["id"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;
    sign_in_admin(&browser, &app).await;
    browser.open(&app.url(&format!("/admin/users/{id}"))).await;
    assert_eq!(browser.count("table#identities tbody tr.identity").await, 1, "{}", browser.source().await);
    let html = browser.source().await;
    assert!(html.contains(">mock<") && html.contains(">ivan<"), "{html}");
}
