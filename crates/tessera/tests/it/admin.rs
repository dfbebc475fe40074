//! `/v1/admin`: permissions on every route (token, user, scoped API keys), the users
//! API, bulk all-or-nothing, the last-admin rule, analytics, the audit log with keyset
//! pagination and its file, API keys, the first-admin bootstrap across nodes, and the
//! `tessera admin` commands (SPEC §2.1 Admin, §5.2, §5.7, §5.9).

use std::collections::HashSet;
use std::process::Stdio;

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tessera_core::entity::{api_key, profile, session, user};
use tessera_store::sea_orm::sea_query::Expr;
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::io::AsyncWriteExt;

use crate::auth::{assert_access_ok, assert_access_refused, assert_problem, assert_user_object, refresh_with};
use crate::harness::*;

const ADMIN_EMAIL: &str = "root@example.com";
const FIRST_ADMIN: [(&str, &str); 2] = [("FIRST_ADMIN_EMAIL", ADMIN_EMAIL), ("FIRST_ADMIN_PASSWORD", PASSWORD)];

/// A server whose first admin was created from FIRST_ADMIN_*; returns its access token.
async fn admin_app(extra: &[(&str, &str)]) -> (TestApp, String) {
    let mut vars = FIRST_ADMIN.to_vec();
    vars.extend_from_slice(extra);
    let app = TestApp::with(&vars).await;
    let token = app.login(ADMIN_EMAIL, PASSWORD).await.access;
    (app, token)
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
}

async fn call(app: &TestApp, method: Method, path: &str, cred: Cred<'_>, body: Option<Value>) -> Response {
    let mut req = app.client.request(method, app.url(path));
    req = match cred {
        Cred::None => req,
        Cred::Bearer(t) => req.bearer_auth(t),
        Cred::ApiKey(k) => req.header("x-api-key", k),
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn ok_json(res: Response, status: StatusCode) -> Value {
    let (got, body) = json_of(res).await;
    assert_eq!(got, status, "body: {body}");
    body
}

/// Creates an API key with `scopes`; returns (key, id).
async fn api_key(app: &TestApp, admin: &str, scopes: &[&str]) -> (String, String) {
    let res = call(
        app,
        Method::POST,
        "/v1/admin/api-keys",
        Cred::Bearer(admin),
        Some(json!({ "name": "test", "scopes": scopes })),
    )
    .await;
    let body = ok_json(res, StatusCode::CREATED).await;
    (body["key"].as_str().unwrap().to_owned(), body["id"].as_str().unwrap().to_owned())
}

/// Creates a user through the admin API; returns it.
async fn create_user(app: &TestApp, admin: &str, body: Value) -> Value {
    ok_json(call(app, Method::POST, "/v1/admin/users", Cred::Bearer(admin), Some(body)).await, StatusCode::CREATED)
        .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn user_row(app: &TestApp, email: &str) -> Option<user::Model> {
    user::Entity::find().filter(user::Column::Email.eq(email)).one(app.db()).await.unwrap()
}

async fn count_rows(app: &TestApp, sql: &str) -> i64 {
    use tessera_store::sea_orm::{ConnectionTrait, Statement};
    let backend = app.db().get_database_backend();
    let row = app.db().query_one_raw(Statement::from_string(backend, sql.to_owned())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn every_admin_route_refuses_missing_user_and_underscoped_credentials() {
    let (app, admin) = admin_app(&[]).await;
    let (_, user) = app.user().await;
    let target =
        id_of(&create_user(&app, &admin, json!({ "email": "target@example.com", "password": PASSWORD })).await);
    let key_id = api_key(&app, &admin, &["users:read"]).await.1;
    let routes: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/v1/admin/users".into(), None, "users:read"),
        (
            Method::POST,
            "/v1/admin/users".into(),
            Some(json!({ "email": "n@example.com", "password": PASSWORD })),
            "users:write",
        ),
        (Method::GET, format!("/v1/admin/users/{target}"), None, "users:read"),
        (Method::PATCH, format!("/v1/admin/users/{target}"), Some(json!({ "full_name": "X" })), "users:write"),
        (Method::POST, format!("/v1/admin/users/{target}/logout"), None, "sessions:write"),
        (
            Method::POST,
            "/v1/admin/users/bulk".into(),
            Some(json!({ "action": "activate", "ids": [target] })),
            "users:write",
        ),
        (Method::GET, "/v1/admin/analytics".into(), None, "analytics:read"),
        (Method::GET, "/v1/admin/audit".into(), None, "audit:read"),
        (Method::GET, "/v1/admin/api-keys".into(), None, "api_keys:read"),
        (
            Method::POST,
            "/v1/admin/api-keys".into(),
            Some(json!({ "name": "k", "scopes": ["api_keys:write"] })),
            "api_keys:write",
        ),
        (Method::DELETE, format!("/v1/admin/api-keys/{key_id}"), None, "api_keys:write"),
        (Method::DELETE, format!("/v1/admin/users/{target}"), None, "users:write"),
    ];
    let all = [
        "users:read",
        "users:write",
        "sessions:write",
        "audit:read",
        "analytics:read",
        "api_keys:read",
        "api_keys:write",
    ];
    for (method, path, body, needed) in routes {
        let what = format!("{method} {path}");
        let res = call(&app, method.clone(), &path, Cred::None, body.clone()).await;
        assert_eq!(res.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("Bearer"), "{what}");
        assert_error(res, StatusCode::UNAUTHORIZED, "not_authenticated").await;
        let res = call(&app, method.clone(), &path, Cred::Bearer(&user.access), body.clone()).await;
        assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
        let res = call(&app, method.clone(), &path, Cred::ApiKey("tsk_not-a-real-key"), body.clone()).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
        // A key holding every scope but the one needed is refused, as header or bearer.
        let others: Vec<&str> = all.iter().copied().filter(|s| *s != needed).collect();
        let (under, _) = api_key(&app, &admin, &others).await;
        let res = call(&app, method.clone(), &path, Cred::ApiKey(&under), body.clone()).await;
        assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
        let res = call(&app, method.clone(), &path, Cred::Bearer(&under), body.clone()).await;
        assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
        // The key with exactly that scope gets through.
        let (exact, _) = api_key(&app, &admin, &[needed]).await;
        let status = call(&app, method.clone(), &path, Cred::ApiKey(&exact), body).await.status();
        assert!(status.is_success(), "{what} with a {needed} key: {status}");
    }
    // An API key is no access token: the native API refuses it.
    let (key, _) = api_key(&app, &admin, &all).await;
    assert_access_refused(&app, &key).await;
}

#[tokio::test]
async fn admins_create_read_update_and_delete_users() {
    let (app, admin) = admin_app(&[]).await;
    let created = create_user(
        &app,
        &admin,
        json!({ "email": " Bob@Example.com ", "password": PASSWORD, "full_name": "Bob", "phone": "+14155550123",
                "role": "admin", "is_active": true, "is_verified": true }),
    )
    .await;
    assert_user_object(&created);
    assert_eq!((created["email"].as_str(), created["role"].as_str()), (Some("bob@example.com"), Some("admin")));
    assert_eq!(created["is_verified"], true);
    assert!(user_row(&app, "bob@example.com").await.unwrap().password_hash.starts_with("$argon2id$"));
    let id = id_of(&created);

    let dup = call(
        &app,
        Method::POST,
        "/v1/admin/users",
        Cred::Bearer(&admin),
        Some(json!({ "email": "bob@example.com", "password": PASSWORD })),
    )
    .await;
    assert_error(dup, StatusCode::CONFLICT, "email_already_exists").await;
    let bad = call(
        &app,
        Method::POST,
        "/v1/admin/users",
        Cred::Bearer(&admin),
        Some(json!({ "email": "c@example.com", "password": "weak", "role": "root" })),
    )
    .await;
    let body = assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let fields: HashSet<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains("password") && fields.contains("role"), "{body}");

    let got = ok_json(
        call(&app, Method::GET, &format!("/v1/admin/users/{id}"), Cred::Bearer(&admin), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, created);
    let missing =
        call(&app, Method::GET, &format!("/v1/admin/users/{}", uuid::Uuid::now_v7()), Cred::Bearer(&admin), None).await;
    assert_error(missing, StatusCode::NOT_FOUND, "user_not_found").await;

    // Patch: every rule still applies.
    let path = format!("/v1/admin/users/{id}");
    let taken = call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(json!({ "email": ADMIN_EMAIL }))).await;
    assert_error(taken, StatusCode::CONFLICT, "email_already_exists").await;
    let weak = call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(json!({ "password": "short" }))).await;
    assert_error(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let role = call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(json!({ "role": "superuser" }))).await;
    assert_error(role, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let bob = app.login("bob@example.com", PASSWORD).await;
    let patched = ok_json(
        call(&app, Method::PATCH, &path, Cred::Bearer(&admin),
            Some(json!({ "full_name": null, "phone": null, "role": "user", "is_verified": false, "password": "N3w!Passphrase" }))).await,
        StatusCode::OK,
    )
    .await;
    assert_user_object(&patched);
    assert_eq!(
        (patched["full_name"].clone(), patched["phone"].clone(), patched["role"].clone()),
        (Value::Null, Value::Null, json!("user"))
    );
    assert_eq!(patched["is_verified"], false);
    // A new password signs the user out everywhere, and works.
    assert_access_refused(&app, &bob.access).await;
    assert_problem(refresh_with(&app, &bob.refresh).await, StatusCode::UNAUTHORIZED).await;
    let bob = app.login("bob@example.com", "N3w!Passphrase").await;
    assert_access_ok(&app, &bob.access).await;
    // Deactivation does too.
    ok_json(
        call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(json!({ "is_active": false }))).await,
        StatusCode::OK,
    )
    .await;
    assert_access_refused(&app, &bob.access).await;
    assert_error(
        app.post("/v1/auth/login", None, json!({ "email": "bob@example.com", "password": "N3w!Passphrase" })).await,
        StatusCode::FORBIDDEN,
        "account_inactive",
    )
    .await;

    // Hard delete: the row, profile and sessions are gone.
    let res = call(&app, Method::DELETE, &path, Cred::Bearer(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(user_row(&app, "bob@example.com").await.is_none());
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    let profiles = profile::Entity::find().filter(profile::Column::UserId.eq(uid)).count(app.db()).await.unwrap();
    let sessions = session::Entity::find().filter(session::Column::UserId.eq(uid)).count(app.db()).await.unwrap();
    assert_eq!((profiles, sessions), (0, 0));
    assert_error(
        call(&app, Method::DELETE, &path, Cred::Bearer(&admin), None).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    )
    .await;
    // Every change was audited, never with a secret.
    let audit = app.dump("audit_log").await;
    for event in ["admin.user.create", "admin.user.update", "admin.user.delete"] {
        assert!(audit.contains(event), "{event} missing");
    }
    assert!(!audit.contains(PASSWORD) && !audit.contains("N3w!Passphrase") && !audit.contains("$argon2"));
}

#[tokio::test]
async fn list_pages_newest_first_with_search_and_filters() {
    let (app, admin) = admin_app(&[]).await;
    for (email, name, active) in [
        ("alice@corp.example", "Alice Archer", true),
        ("albert@corp.example", "Albert Zed", false),
        ("carol@home.example", "Carol Alder", true),
        ("dave@home.example", "dave d", true),
    ] {
        create_user(
            &app,
            &admin,
            json!({ "email": email, "password": PASSWORD, "full_name": name, "is_active": active }),
        )
        .await;
    }
    let list = |q: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            ok_json(
                call(app, Method::GET, &format!("/v1/admin/users{q}"), Cred::Bearer(&admin), None).await,
                StatusCode::OK,
            )
            .await
        }
    };
    let emails = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect()
    };

    let all = list("").await;
    assert_eq!(all["total"], 5);
    assert_eq!(
        emails(&all),
        ["dave@home.example", "carol@home.example", "albert@corp.example", "alice@corp.example", ADMIN_EMAIL]
    );
    all["items"].as_array().unwrap().iter().for_each(assert_user_object);
    let page = list("?skip=1&limit=2").await;
    assert_eq!(
        (page["total"].clone(), emails(&page)),
        (json!(5), vec!["carol@home.example".to_owned(), "albert@corp.example".to_owned()])
    );
    // Email or name prefix, any case.
    assert_eq!(emails(&list("?q=AL").await), ["albert@corp.example", "alice@corp.example"]);
    assert_eq!(emails(&list("?q=Carol%20Al").await), ["carol@home.example"]);
    assert_eq!(list("?q=alder").await["total"], 0, "a prefix of the email or of the whole name, not a substring");
    assert_eq!(emails(&list("?q=Dave").await), ["dave@home.example"]);
    assert_eq!(list("?q=nobody").await["total"], 0);
    assert_eq!(emails(&list("?role=admin").await), [ADMIN_EMAIL]);
    let inactive = list("?is_active=false").await;
    assert_eq!((inactive["total"].clone(), emails(&inactive)), (json!(1), vec!["albert@corp.example".to_owned()]));
    assert_eq!(list("?q=al&is_active=true&role=user").await["total"], 1);
    // Soft-deleted users are not listed.
    app.sql("UPDATE users SET deleted_at = created_at WHERE email = 'dave@home.example'").await;
    assert_eq!(list("").await["total"], 4);

    for bad in ["?limit=101", "?limit=0", "?role=root", "?skip=-1", "?is_active=maybe"] {
        let res = call(&app, Method::GET, &format!("/v1/admin/users{bad}"), Cred::Bearer(&admin), None).await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
}

#[tokio::test]
async fn admin_logout_signs_a_user_out_everywhere() {
    let (app, admin) = admin_app(&[]).await;
    let (email, first) = app.user().await;
    let second = app.login(&email, PASSWORD).await;
    let id = user_row(&app, &email).await.unwrap().id;
    let res = call(&app, Method::POST, &format!("/v1/admin/users/{id}/logout"), Cred::Bearer(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for login in [&first, &second] {
        assert_access_refused(&app, &login.access).await;
        assert_problem(refresh_with(&app, &login.refresh).await, StatusCode::UNAUTHORIZED).await;
    }
    assert!(app.dump("audit_log").await.contains("admin.user.logout"));
    let res = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{}/logout", uuid::Uuid::now_v7()),
        Cred::Bearer(&admin),
        None,
    )
    .await;
    assert_error(res, StatusCode::NOT_FOUND, "user_not_found").await;
}

#[tokio::test]
async fn bulk_changes_are_all_or_nothing() {
    let (app, admin) = admin_app(&[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(id_of(
            &create_user(&app, &admin, json!({ "email": format!("b{i}@example.com"), "password": PASSWORD })).await,
        ));
    }
    let bulk = |body: Value| call(&app, Method::POST, "/v1/admin/users/bulk", Cred::Bearer(&admin), Some(body));
    let actives =
        || async { count_rows(&app, "SELECT COUNT(*) FROM users WHERE is_active = true AND email LIKE 'b%'").await };

    // One unknown id, or an unknown role, changes nothing.
    let mut with_unknown = ids.clone();
    with_unknown.push(uuid::Uuid::now_v7().to_string());
    assert_error(
        bulk(json!({ "action": "deactivate", "ids": with_unknown })).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    )
    .await;
    assert_eq!(actives().await, 3);
    assert_error(
        bulk(json!({ "action": "set_role", "ids": ids, "role": "owner" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_error(
        bulk(json!({ "action": "set_role", "ids": ids })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_error(
        bulk(json!({ "action": "explode", "ids": ids })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_error(
        bulk(json!({ "action": "delete", "ids": [] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await, 1);

    let b0 = app.login("b0@example.com", PASSWORD).await;
    let res = ok_json(bulk(json!({ "action": "deactivate", "ids": ids })).await, StatusCode::OK).await;
    assert_eq!(res["affected"], 3);
    assert_eq!(actives().await, 0);
    assert_access_refused(&app, &b0.access).await;
    assert_eq!(
        ok_json(bulk(json!({ "action": "activate", "ids": [ids[0], ids[0]] })).await, StatusCode::OK).await["affected"],
        1
    );
    assert_eq!(
        ok_json(bulk(json!({ "action": "set_role", "ids": ids, "role": "admin" })).await, StatusCode::OK).await
            ["affected"],
        3
    );
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await, 4);
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM audit_log WHERE event = 'admin.user.bulk'").await, 7);

    // Deleting every active admin at once is refused whole.
    let root = user_row(&app, ADMIN_EMAIL).await.unwrap().id.to_string();
    let everyone = vec![root.clone(), ids[0].clone()];
    assert_error(bulk(json!({ "action": "delete", "ids": everyone })).await, StatusCode::CONFLICT, "last_admin").await;
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM users").await, 4);
    assert_eq!(ok_json(bulk(json!({ "action": "delete", "ids": ids })).await, StatusCode::OK).await["affected"], 3);
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM profiles").await, 1);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_deactivated_or_deleted() {
    let (app, admin) = admin_app(&[]).await;
    let root = user_row(&app, ADMIN_EMAIL).await.unwrap().id;
    let path = format!("/v1/admin/users/{root}");
    for change in [json!({ "role": "user" }), json!({ "is_active": false })] {
        let res = call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(change)).await;
        assert_error(res, StatusCode::CONFLICT, "last_admin").await;
    }
    assert_error(
        call(&app, Method::DELETE, &path, Cred::Bearer(&admin), None).await,
        StatusCode::CONFLICT,
        "last_admin",
    )
    .await;
    let row = user_row(&app, ADMIN_EMAIL).await.unwrap();
    assert!(row.is_active && row.role == "admin");
    assert_access_ok(&app, &admin).await;

    // An inactive admin does not count; a second active one does.
    create_user(
        &app,
        &admin,
        json!({ "email": "idle@example.com", "password": PASSWORD, "role": "admin", "is_active": false }),
    )
    .await;
    assert_error(
        call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(json!({ "role": "user" }))).await,
        StatusCode::CONFLICT,
        "last_admin",
    )
    .await;
    create_user(&app, &admin, json!({ "email": "second@example.com", "password": PASSWORD, "role": "admin" })).await;
    let demoted = ok_json(
        call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(json!({ "role": "user" }))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(demoted["role"], "user");
    // Its token now carries no admin permission.
    assert_error(
        call(&app, Method::GET, "/v1/admin/users", Cred::Bearer(&admin), None).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    )
    .await;
}

#[tokio::test]
async fn concurrent_demotions_of_two_admins_leave_one() {
    let (app, admin) = admin_app(&[]).await;
    let second = id_of(
        &create_user(&app, &admin, json!({ "email": "two@example.com", "password": PASSWORD, "role": "admin" })).await,
    );
    let root = user_row(&app, ADMIN_EMAIL).await.unwrap().id.to_string();
    // A full-scope key, so that neither request depends on its own caller staying admin.
    let all = [
        "users:read",
        "users:write",
        "sessions:write",
        "audit:read",
        "analytics:read",
        "api_keys:read",
        "api_keys:write",
        "oauth_clients:read",
        "oauth_clients:write",
    ];
    let (key, _) = api_key(&app, &admin, &all).await;
    let demote = |id: String| {
        let app = &app;
        let key = key.clone();
        async move {
            call(
                app,
                Method::PATCH,
                &format!("/v1/admin/users/{id}"),
                Cred::ApiKey(&key),
                Some(json!({ "role": "user" })),
            )
            .await
            .status()
        }
    };
    let (a, b) = tokio::join!(demote(root), demote(second));
    let mut statuses = [a, b];
    statuses.sort();
    // The loser is refused by the last-admin guard (409), or, when the demotion of the
    // key's own creator committed first, by the key itself, which can do no more than
    // its creator may now (403).
    assert_eq!(statuses[0], StatusCode::OK, "{statuses:?}");
    assert!([StatusCode::FORBIDDEN, StatusCode::CONFLICT].contains(&statuses[1]), "{statuses:?}");
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM users WHERE role = 'admin'").await, 1);
}

#[tokio::test]
async fn analytics_counts_users_sessions_and_logins() {
    let (app, admin) = admin_app(&[]).await;
    create_user(&app, &admin, json!({ "email": "v@example.com", "password": PASSWORD, "is_verified": true })).await;
    create_user(&app, &admin, json!({ "email": "off@example.com", "password": PASSWORD, "is_active": false })).await;
    create_user(&app, &admin, json!({ "email": "gone@example.com", "password": PASSWORD })).await;
    app.sql("UPDATE users SET deleted_at = created_at WHERE email = 'gone@example.com'").await;
    app.login("v@example.com", PASSWORD).await;
    for _ in 0..2 {
        let res =
            app.post("/v1/auth/login", None, json!({ "email": "v@example.com", "password": "Wrong!Pass1" })).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let a = ok_json(
        call(&app, Method::GET, "/v1/admin/analytics?days=7", Cred::Bearer(&admin), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(a["total_users"], 3, "{a}");
    assert_eq!(a["active_users"], 2, "{a}");
    assert_eq!(a["verified_users"], 2, "{a}");
    assert_eq!(a["admins"], 1, "{a}");
    assert_eq!(a["deleted_users"], 1, "{a}");
    assert_eq!(a["active_sessions"], 2, "{a}");
    assert_eq!(a["failed_logins_24h"], 2, "{a}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for (series, today_count) in [("signups_per_day", 4), ("logins_per_day", 2)] {
        let days = a[series].as_array().unwrap();
        assert_eq!(days.len(), 7, "{series}");
        assert_eq!(days[6], json!({ "date": today, "count": today_count }), "{series}");
        assert!(days[..6].iter().all(|d| d["count"] == 0), "{series}");
    }
    let default =
        ok_json(call(&app, Method::GET, "/v1/admin/analytics", Cred::Bearer(&admin), None).await, StatusCode::OK).await;
    assert_eq!(default["signups_per_day"].as_array().unwrap().len(), 30);
    for bad in ["0", "367", "x"] {
        let res = call(&app, Method::GET, &format!("/v1/admin/analytics?days={bad}"), Cred::Bearer(&admin), None).await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
}

/// The analytics totals next to exact `COUNT(*)`s of the same definitions.
async fn totals_match_the_rows(app: &TestApp, admin: &str) {
    let a =
        ok_json(call(app, Method::GET, "/v1/admin/analytics?days=1", Cred::Bearer(admin), None).await, StatusCode::OK)
            .await;
    let live = "FROM users WHERE deleted_at IS NULL";
    for (field, sql) in [
        ("total_users", format!("SELECT COUNT(*) {live}")),
        ("active_users", format!("SELECT COUNT(*) {live} AND is_active = true")),
        ("verified_users", format!("SELECT COUNT(*) {live} AND email_verified_at IS NOT NULL")),
        ("admins", format!("SELECT COUNT(*) {live} AND role = 'admin'")),
        ("deleted_users", "SELECT COUNT(*) FROM users WHERE deleted_at IS NOT NULL".to_owned()),
    ] {
        assert_eq!(a[field].as_i64().unwrap(), count_rows(app, &sql).await, "{field}: {a}");
    }
    let list =
        ok_json(call(app, Method::GET, "/v1/admin/users?limit=1", Cred::Bearer(admin), None).await, StatusCode::OK)
            .await;
    assert_eq!(list["total"], a["total_users"]);
    let active = ok_json(
        call(app, Method::GET, "/v1/admin/users?is_active=true&limit=1", Cred::Bearer(admin), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(active["total"], a["active_users"]);
}

#[tokio::test]
async fn user_totals_stay_exact_through_every_kind_of_change() {
    let (app, admin) = admin_app(&[]).await;
    totals_match_the_rows(&app, &admin).await;

    // Sign-ups at once: on PostgreSQL they land on counter rows picked per transaction,
    // and none may fail or be lost.
    let signups = (0..24).map(|i| {
        let app = &app;
        async move {
            app.post("/v1/users", None, json!({ "email": format!("c{i}@example.com"), "password": PASSWORD })).await
        }
    });
    for res in futures::future::join_all(signups).await {
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    totals_match_the_rows(&app, &admin).await;

    let id = id_of(&create_user(&app, &admin, json!({ "email": "p@example.com", "password": PASSWORD })).await);
    let path = format!("/v1/admin/users/{id}");
    let patch = |body: Value| call(&app, Method::PATCH, &path, Cred::Bearer(&admin), Some(body));
    for body in [
        json!({ "role": "admin" }),
        json!({ "is_active": false }),
        json!({ "is_verified": true }),
        json!({ "role": "user", "is_active": true }),
        json!({ "full_name": "Only A Name" }),
    ] {
        ok_json(patch(body.clone()).await, StatusCode::OK).await;
        totals_match_the_rows(&app, &admin).await;
    }

    let users = ok_json(
        call(&app, Method::GET, "/v1/admin/users?q=c1&limit=100", Cred::Bearer(&admin), None).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<String> = users["items"].as_array().unwrap().iter().map(id_of).collect();
    assert!(ids.len() > 5);
    let bulk = |body: Value| call(&app, Method::POST, "/v1/admin/users/bulk", Cred::Bearer(&admin), Some(body));
    for body in [
        json!({ "action": "deactivate", "ids": ids[..3] }),
        json!({ "action": "set_role", "ids": ids[1..4], "role": "admin" }),
        json!({ "action": "activate", "ids": ids }),
        json!({ "action": "delete", "ids": ids[4..] }),
    ] {
        ok_json(bulk(body).await, StatusCode::OK).await;
        totals_match_the_rows(&app, &admin).await;
    }

    // Soft delete, restore and hard delete straight in SQL: the triggers see those too.
    app.sql("UPDATE users SET deleted_at = created_at WHERE email IN ('c2@example.com', 'c3@example.com')").await;
    totals_match_the_rows(&app, &admin).await;
    app.sql("UPDATE users SET deleted_at = NULL WHERE email = 'c2@example.com'").await;
    totals_match_the_rows(&app, &admin).await;
    let res = call(&app, Method::DELETE, &format!("/v1/admin/users/{id}"), Cred::Bearer(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    totals_match_the_rows(&app, &admin).await;
}

#[tokio::test]
async fn audit_log_filters_and_pages_by_keyset() {
    let dir = tempfile::tempdir().unwrap();
    let audit_dir = dir.path().join("audit");
    let (app, admin) = admin_app(&[("AUDIT_LOG_DIR", audit_dir.to_str().unwrap())]).await;
    let (email, _) = app.user().await;
    let uid = user_row(&app, &email).await.unwrap().id;
    for _ in 0..3 {
        app.login(&email, PASSWORD).await;
    }
    app.post("/v1/auth/login", None, json!({ "email": email, "password": "Wrong!Pass1" })).await;
    let (key, _) = api_key(&app, &admin, &["audit:read"]).await;
    let get = |q: String| {
        let app = &app;
        let key = key.clone();
        async move {
            ok_json(
                call(app, Method::GET, &format!("/v1/admin/audit{q}"), Cred::ApiKey(&key), None).await,
                StatusCode::OK,
            )
            .await
        }
    };

    // Page through the user's events two at a time: newest first, no gaps, no repeats.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(format!("?user_id={uid}&limit=2&cursor={cursor}")).await;
        let items = page["items"].as_array().unwrap().clone();
        assert!(items.len() <= 2);
        seen.extend(
            items.iter().map(|e| (e["id"].as_str().unwrap().to_owned(), e["event"].as_str().unwrap().to_owned())),
        );
        assert!(items.iter().all(|e| e["user_id"] == json!(uid)));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let events: Vec<&str> = seen.iter().map(|(_, e)| e.as_str()).collect();
    // A failed sign-in for an existing account carries its user id.
    assert_eq!(
        events,
        ["login.failure", "login.success", "login.success", "login.success", "login.success", "user.create"]
    );
    let ids: Vec<&String> = seen.iter().map(|(id, _)| id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "newest first");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());

    let failures = get("?event=login.failure".into()).await;
    assert_eq!(failures["items"].as_array().unwrap().len(), 1);
    assert_eq!(failures["next_cursor"], Value::Null);
    let api = get("?event=api_key.*&limit=100".into()).await;
    assert!(api["items"].as_array().unwrap().iter().all(|e| e["event"].as_str().unwrap().starts_with("api_key.")));
    assert!(api["items"].as_array().unwrap().iter().any(|e| e["event"] == "api_key.use"));
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(get(format!("?from={future}")).await["items"].as_array().unwrap().len(), 0);
    assert!(!get(format!("?to={future}&limit=100")).await["items"].as_array().unwrap().is_empty());
    for bad in ["?cursor=nope", "?limit=101", "?event=a*b"] {
        let res = call(&app, Method::GET, &format!("/v1/admin/audit{bad}"), Cred::ApiKey(&key), None).await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }

    // The same events, as JSON lines in today's file, without secrets.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let text = std::fs::read_to_string(audit_dir.join(format!("audit-{today}.jsonl"))).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (id, event) in &seen {
        assert!(
            lines.iter().any(|l| l["id"] == json!(id) && l["event"] == json!(event)),
            "{event} {id} not in the file"
        );
    }
    assert!(lines.iter().any(|l| l["event"] == "admin.bootstrap"));
    assert!(!text.contains(PASSWORD) && !text.contains(&key) && !text.contains("Wrong!Pass1"));
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM audit_log").await as usize, lines.len());
}

/// Security: signing a user out everywhere changes them, so it follows the rule of every
/// other change: a key scoped `sessions:write` signs users out, never an admin (it did).
#[tokio::test]
async fn a_sessions_key_signs_users_out_but_not_an_admin() {
    let (app, admin) = admin_app(&[]).await;
    let (key, _) = api_key(&app, &admin, &["sessions:write"]).await;
    let root = user_row(&app, ADMIN_EMAIL).await.unwrap().id;
    let res = call(&app, Method::POST, &format!("/v1/admin/users/{root}/logout"), Cred::ApiKey(&key), None).await;
    assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
    ok_json(call(&app, Method::GET, "/v1/auth/me", Cred::Bearer(&admin), None).await, StatusCode::OK).await;
    let refused = "SELECT COUNT(*) FROM audit_log WHERE event = 'admin.user.logout'";
    assert_eq!(count_rows(&app, refused).await, 0);

    let user = create_user(&app, &admin, json!({ "email": "plain@example.com", "password": PASSWORD })).await;
    let token = crate::auth::login_as_agent(&app, "plain@example.com", PASSWORD, "test").await.access;
    let path = format!("/v1/admin/users/{}/logout", id_of(&user));
    let res = call(&app, Method::POST, &path, Cred::ApiKey(&key), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(&app, Method::GET, "/v1/auth/me", Cred::Bearer(&token), None).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_audited_and_revocable() {
    let (app, admin) = admin_app(&[]).await;
    let res = call(
        &app,
        Method::POST,
        "/v1/admin/api-keys",
        Cred::Bearer(&admin),
        Some(json!({ "name": "reporting", "scopes": ["users:read", "analytics:read"] })),
    )
    .await;
    let created = ok_json(res, StatusCode::CREATED).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tsk_") && key.len() == 4 + 43, "{key}");
    assert_eq!(created["scopes"], json!(["users:read", "analytics:read"]));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    // Stored only as a hash; never listed.
    assert!(!app.dump("api_keys").await.contains(&key[4..]));
    let list =
        ok_json(call(&app, Method::GET, "/v1/admin/api-keys", Cred::Bearer(&admin), None).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("key").is_none() && !list.to_string().contains(&key[4..]));
    assert_eq!(list["items"][0]["last_used_at"], Value::Null);

    // Accepted as a bearer token and as X-API-Key; each use audited and dated.
    ok_json(call(&app, Method::GET, "/v1/admin/users", Cred::Bearer(&key), None).await, StatusCode::OK).await;
    ok_json(call(&app, Method::GET, "/v1/admin/analytics", Cred::ApiKey(&key), None).await, StatusCode::OK).await;
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM audit_log WHERE event = 'api_key.use'").await, 2);
    let list =
        ok_json(call(&app, Method::GET, "/v1/admin/api-keys", Cred::Bearer(&admin), None).await, StatusCode::OK).await;
    assert!(list["items"][0]["last_used_at"].is_string());

    // A key can never do more than its scopes: no stronger key, no admin, no admin takeover.
    let (writer, _) = api_key(&app, &admin, &["users:write", "users:read", "api_keys:write"]).await;
    let res = call(
        &app,
        Method::POST,
        "/v1/admin/api-keys",
        Cred::ApiKey(&writer),
        Some(json!({ "name": "x", "scopes": ["audit:read"] })),
    )
    .await;
    assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
    let res = call(
        &app,
        Method::POST,
        "/v1/admin/api-keys",
        Cred::ApiKey(&writer),
        Some(json!({ "name": "x", "scopes": ["users:read"] })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = call(
        &app,
        Method::POST,
        "/v1/admin/users",
        Cred::ApiKey(&writer),
        Some(json!({ "email": "evil@example.com", "password": PASSWORD, "role": "admin" })),
    )
    .await;
    assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
    let root = user_row(&app, ADMIN_EMAIL).await.unwrap().id;
    let res = call(
        &app,
        Method::PATCH,
        &format!("/v1/admin/users/{root}"),
        Cred::ApiKey(&writer),
        Some(json!({ "password": "Tak3n!Over99" })),
    )
    .await;
    assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await;
    let made = ok_json(
        call(
            &app,
            Method::POST,
            "/v1/admin/users",
            Cred::ApiKey(&writer),
            Some(json!({ "email": "ok@example.com", "password": PASSWORD })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(made["role"], "user");

    for (body, field) in [
        (json!({ "name": "x", "scopes": ["root"] }), "scopes"),
        (json!({ "name": "x", "scopes": [] }), "scopes"),
        (json!({ "name": "", "scopes": ["users:read"] }), "name"),
        (json!({ "name": "x", "scopes": ["users:read"], "expires_at": "2000-01-01T00:00:00Z" }), "expires_at"),
    ] {
        let res = call(&app, Method::POST, "/v1/admin/api-keys", Cred::Bearer(&admin), Some(body)).await;
        let err = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(err["errors"][0]["field"], field);
    }

    // Expired and revoked keys stop at once.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let res = call(
        &app,
        Method::POST,
        "/v1/admin/api-keys",
        Cred::Bearer(&admin),
        Some(json!({ "name": "t", "scopes": ["users:read"], "expires_at": soon })),
    )
    .await;
    let expiring = ok_json(res, StatusCode::CREATED).await;
    let ekey = expiring["key"].as_str().unwrap();
    ok_json(call(&app, Method::GET, "/v1/admin/users", Cred::ApiKey(ekey), None).await, StatusCode::OK).await;
    let eid = uuid::Uuid::parse_str(expiring["id"].as_str().unwrap()).unwrap();
    api_key::Entity::update_many()
        .col_expr(api_key::Column::ExpiresAt, Expr::value(Some(chrono::Utc::now() - chrono::Duration::seconds(1))))
        .filter(api_key::Column::Id.eq(eid))
        .exec(app.db())
        .await
        .unwrap();
    assert_error(
        call(&app, Method::GET, "/v1/admin/users", Cred::ApiKey(ekey), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;

    let id = created["id"].as_str().unwrap();
    let res = call(&app, Method::DELETE, &format!("/v1/admin/api-keys/{id}"), Cred::Bearer(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_error(
        call(&app, Method::GET, "/v1/admin/users", Cred::ApiKey(&key), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;
    let res = call(&app, Method::DELETE, &format!("/v1/admin/api-keys/{id}"), Cred::Bearer(&admin), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "revoking twice is harmless");
    let res =
        call(&app, Method::DELETE, &format!("/v1/admin/api-keys/{}", uuid::Uuid::now_v7()), Cred::Bearer(&admin), None)
            .await;
    assert_error(res, StatusCode::NOT_FOUND, "api_key_not_found").await;
    let audit = app.dump("audit_log").await;
    assert!(audit.contains("api_key.create") && audit.contains("api_key.revoke"));
    assert!(!audit.contains(&key[4..]) && !audit.contains(&writer[4..]));
}

#[tokio::test]
async fn first_admin_is_created_once_across_restarts_and_simultaneous_nodes() {
    let app = TestApp::spawn().await;
    assert!(user_row(&app, ADMIN_EMAIL).await.is_none(), "no default admin ever exists");
    // Two nodes start at the same moment on one database, then one restarts.
    let (a, b) = tokio::join!(app.another_node(&FIRST_ADMIN), app.another_node(&FIRST_ADMIN));
    let c = app.another_node(&FIRST_ADMIN).await;
    let admins = user::Entity::find().filter(user::Column::Role.eq("admin")).count(app.db()).await.unwrap();
    assert_eq!(admins, 1);
    let root = user_row(&app, ADMIN_EMAIL).await.unwrap();
    assert!(root.is_active && root.email_verified_at.is_some());
    assert_eq!(count_rows(&app, "SELECT COUNT(*) FROM audit_log WHERE event = 'admin.bootstrap'").await, 1);
    for node in [&a, &b, &c] {
        node.login(ADMIN_EMAIL, PASSWORD).await;
    }
    // An existing admin means no new one, whatever the address.
    let d = app.another_node(&[("FIRST_ADMIN_EMAIL", "other@example.com"), ("FIRST_ADMIN_PASSWORD", PASSWORD)]).await;
    assert!(user_row(&d, "other@example.com").await.is_none());
    // A weak first-admin password is a configuration error.
    let weak = [("FIRST_ADMIN_EMAIL", "x@example.com"), ("FIRST_ADMIN_PASSWORD", "password")];
    let errs = tessera_core::settings::Settings::from_vars(&test_vars("sqlite://x.db", &weak)).err().unwrap();
    assert!(errs.iter().any(|e| e.contains("FIRST_ADMIN_PASSWORD")), "{errs:?}");
    let lone = [("FIRST_ADMIN_EMAIL", "x@example.com")];
    assert!(tessera_core::settings::Settings::from_vars(&test_vars("sqlite://x.db", &lone)).is_err());
}

async fn tessera_cli(args: &[&str], db_url: &str, stdin: &str) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .envs([
            ("DATABASE_URL", db_url),
            ("JWT_SECRET_KEY", JWT_SECRET),
            ("REFRESH_TOKEN_SECRET", REFRESH_SECRET),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("ARGON2_ITERATIONS", "1"),
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_create_command_reads_the_password_from_stdin() {
    let app = TestApp::spawn().await;
    let create = ["admin", "create", "--email", "ops@example.com", "--password-stdin"];
    let (code, out, err) = tessera_cli(&create, &app.db_url, &format!("{PASSWORD}\n")).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("created admin ops@example.com"), "{out}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    let token = app.login("ops@example.com", PASSWORD).await.access;
    ok_json(call(&app, Method::GET, "/v1/admin/users", Cred::Bearer(&token), None).await, StatusCode::OK).await;

    let (code, _, err) = tessera_cli(&create, &app.db_url, &format!("{PASSWORD}\n")).await;
    assert_ne!(code, 0, "a second create with the same email fails: {err}");
    let user = ["admin", "create", "--email", "plain@example.com", "--password-stdin", "--role", "user"];
    let (code, _, err) = tessera_cli(&user, &app.db_url, PASSWORD).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(user_row(&app, "plain@example.com").await.unwrap().role, "user");
    let weak = ["admin", "create", "--email", "weak@example.com", "--password-stdin"];
    let (code, _, err) = tessera_cli(&weak, &app.db_url, "password\n").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("password"), "{err}");
    let (code, _, _) = tessera_cli(&["admin", "create", "--email", "x@example.com"], &app.db_url, "").await;
    assert_ne!(code, 0, "the password never comes as an argument");
}

#[tokio::test]
async fn seed_users_command_fills_the_table_for_benchmarks() {
    let (app, admin) = admin_app(&[]).await;
    let (code, out, err) =
        tessera_cli(&["admin", "seed-users", "--count", "250", "--batch", "100", "--days", "10"], &app.db_url, "")
            .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("seeded 250 users"), "{out}");
    let a = ok_json(
        call(&app, Method::GET, "/v1/admin/analytics?days=10", Cred::Bearer(&admin), None).await,
        StatusCode::OK,
    )
    .await;
    let signups: u64 = a["signups_per_day"].as_array().unwrap().iter().map(|d| d["count"].as_u64().unwrap()).sum();
    assert_eq!(a["total_users"].as_u64().unwrap() + a["deleted_users"].as_u64().unwrap(), 251);
    assert!(signups >= 200, "spread over the last 10 days: {a}");
    assert!(a["deleted_users"].as_u64().unwrap() > 0 && a["active_users"].as_u64() < a["total_users"].as_u64());
    let found =
        ok_json(call(&app, Method::GET, "/v1/admin/users?q=seed12", Cred::Bearer(&admin), None).await, StatusCode::OK)
            .await;
    assert_eq!(found["total"], 11, "seed12 and seed120..129");
    app.login("seed1@seed.example", tessera_core::account::seed::SEED_PASSWORD).await;
}

/// A key never does more than its creator may do now (issue 15, hole 4): demote the
/// creator and the key loses the admin permissions (403); deactivate or delete the
/// creator and the key is dead (401 `invalid_api_key`). Each change is seen at once.
#[tokio::test]
async fn an_api_key_is_bounded_by_what_its_creator_may_do_now() {
    let (app, root) = admin_app(&[]).await;
    let mut keys = Vec::new();
    for (i, change) in ["demote", "deactivate", "delete"].into_iter().enumerate() {
        let email = format!("maker{i}@example.com");
        let maker = create_user(&app, &root, json!({ "email": email, "password": PASSWORD, "role": "admin" })).await;
        let token = app.login(&email, PASSWORD).await.access;
        let (key, _) = api_key(&app, &token, &["users:read"]).await;
        assert_eq!(call(&app, Method::GET, "/v1/admin/users", Cred::ApiKey(&key), None).await.status(), StatusCode::OK);
        keys.push((change, id_of(&maker), key));
    }
    for (change, maker, key) in keys {
        let path = format!("/v1/admin/users/{maker}");
        let res = match change {
            "demote" => call(&app, Method::PATCH, &path, Cred::Bearer(&root), Some(json!({ "role": "user" }))).await,
            "deactivate" => {
                call(&app, Method::PATCH, &path, Cred::Bearer(&root), Some(json!({ "is_active": false }))).await
            }
            _ => call(&app, Method::DELETE, &path, Cred::Bearer(&root), None).await,
        };
        assert!(res.status().is_success(), "{change}: {}", res.status());

        let res = call(&app, Method::GET, "/v1/admin/users", Cred::ApiKey(&key), None).await;
        match change {
            "demote" => assert_error(res, StatusCode::FORBIDDEN, "permission_denied").await,
            _ => assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await,
        };
    }
}

/// Every numeric query field has a documented range and answers 422 outside it, however
/// large: a `skip` past `i64::MAX` once panicked inside the SQL binder (issue 20, item 4).
#[tokio::test]
async fn numbers_out_of_range_are_422_never_a_panic() {
    let (app, admin) = admin_app(&[]).await;
    let huge =
        ["9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616", "1e3", "-1"];
    let mut paths = vec!["/v1/admin/users?skip=1000000001".to_owned()];
    for n in huge {
        paths.push(format!("/v1/admin/users?skip={n}"));
        paths.push(format!("/v1/admin/users?limit={n}"));
        paths.push(format!("/v1/admin/audit?limit={n}"));
        paths.push(format!("/v1/admin/analytics?days={n}"));
    }
    for path in paths {
        let res = call(&app, Method::GET, &path, Cred::Bearer(&admin), None).await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{path}: {body}");
    }
    // The largest allowed skip is an empty page, not an error.
    let page = ok_json(
        call(&app, Method::GET, "/v1/admin/users?skip=1000000000", Cred::Bearer(&admin), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"], json!([]));
}

/// The console (`/admin`) spoken to over plain HTTP, with a cookie jar: what a browser
/// does, without one (the browser tests are in console.rs).
pub(crate) struct ConsoleHttp<'a> {
    app: &'a TestApp,
    jar: std::collections::BTreeMap<String, String>,
}

impl<'a> ConsoleHttp<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        ConsoleHttp { app, jar: Default::default() }
    }

    fn keep(&mut self, res: &Response) {
        for v in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let (pair, _) = v.to_str().unwrap().split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let res = self.app.client.get(self.app.url(path)).header("cookie", self.cookie()).send().await.unwrap();
        self.keep(&res);
        (res.status(), res.text().await.unwrap())
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let res =
            self.app.client.post(self.app.url(path)).header("cookie", self.cookie()).form(form).send().await.unwrap();
        self.keep(&res);
        res
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Response {
        let (_, page) = self.get("/admin/sign-in").await;
        let csrf = csrf_of(&page);
        self.post("/admin/sign-in", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }
}

/// The first CSRF field of a page.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn console_cookies_headers_and_assets_are_locked_down() {
    let (app, _) = admin_app(&[]).await;
    let mut c = ConsoleHttp::new(&app);
    let res = app.client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin/sign-in");

    let res = app.client.get(app.url("/admin/sign-in")).send().await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains("style="), "no inline script or style: {page}");

    // The session cookies: HttpOnly, SameSite=Strict, Path=/admin, Secure (the default).
    let res = c.sign_in(ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> =
        res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Secure"] {
            assert!(cookie.contains(flag), "{flag} missing: {cookie}");
        }
    }

    // The assets: named by their hash, cached for good; any other name is 404.
    let (status, page) = c.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    for ext in ["css", "js"] {
        let at = page.find("/admin/assets/console.").unwrap();
        let path = page[at..].split('"').find(|p| p.ends_with(ext)).map(str::to_owned);
        let path = path.unwrap_or_else(|| {
            let start = page.find(&format!(".{ext}\"")).unwrap();
            let from = page[..start].rfind('"').unwrap() + 1;
            page[from..start + ext.len() + 1].to_owned()
        });
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
        let res = app.client.get(app.url(&format!("/admin/assets/console.000000000000.{ext}"))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn console_session_refreshes_an_expired_access_token_and_dies_with_its_session() {
    let (app, root) = admin_app(&[("SECURE_COOKIES", "false")]).await;
    let mut c = ConsoleHttp::new(&app);
    c.sign_in(ADMIN_EMAIL, PASSWORD).await;
    // The access cookie, expired: the same claims, signed with the server's key.
    let access = c.jar["tessera_console"].clone();
    let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let mut claims = jsonwebtoken::decode::<Value>(&access, &key, &validation).unwrap().claims;
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 60);
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let expired =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap())
            .unwrap();
    c.jar.insert("tessera_console".to_owned(), expired.clone());
    let (status, _) = c.get("/admin/users").await;
    assert_eq!(status, StatusCode::OK, "refreshed through the refresh cookie");
    assert_ne!(c.jar["tessera_console"], expired, "a new access cookie was set");

    // Signing out with an expired access token: the refresh in passing must not set the
    // session's cookies again after the sign-out cleared them.
    let mut out = ConsoleHttp::new(&app);
    out.sign_in(ADMIN_EMAIL, PASSWORD).await;
    let (_, page) = out.get("/admin/users").await;
    let csrf = csrf_of(&page);
    let session_access = out.jar["tessera_console"].clone();
    let mut stale = jsonwebtoken::decode::<Value>(&session_access, &key, &validation).unwrap().claims;
    stale["iat"] = json!(now - 3600);
    stale["exp"] = json!(now - 60);
    let stale =
        jsonwebtoken::encode(&header, &stale, &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap())
            .unwrap();
    out.jar.insert("tessera_console".to_owned(), stale);
    let res = out.post("/admin/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        !out.jar.contains_key("tessera_console") && !out.jar.contains_key("tessera_console_refresh"),
        "{:?}",
        out.jar
    );

    // Without the refresh cookie, the expired token is a sign-in.
    let mut lone = ConsoleHttp::new(&app);
    lone.jar.insert("tessera_console".to_owned(), expired);
    let (status, _) = lone.get("/admin/users").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The console session is a session: revoked through the API, the console is signed out.
    let res = call(&app, Method::POST, "/v1/auth/logout-all", Cred::Bearer(&root), None).await;
    assert!(res.status().is_success(), "{}", res.status());
    let (status, _) = c.get("/admin/users").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!c.jar.contains_key("tessera_console"), "the dead cookies are cleared");
}

#[tokio::test]
async fn console_user_pages_follow_the_keyset_cursor_through_every_user_once() {
    let (app, _) = admin_app(&[("SECURE_COOKIES", "false")]).await;
    for i in 0..120 {
        app.core
            .admin_create_user(
                &tessera_core::caller::Actor::system(),
                tessera_core::account::admin::NewUser {
                    email: format!("page{i}@example.com"),
                    password: None,
                    full_name: None,
                    phone: None,
                    role: None,
                    is_active: None,
                    is_verified: None,
                    metadata: Default::default(),
                    invited: false,
                },
                &Default::default(),
            )
            .await
            .unwrap();
    }
    // 31 users created in the same instant, across the boundary of pages 2 and 3: the
    // id breaks the tie.
    app.sql("UPDATE users SET created_at = '2026-01-01T00:00:00+00:00' WHERE email LIKE 'page1%'").await;
    let mut c = ConsoleHttp::new(&app);
    c.sign_in(ADMIN_EMAIL, PASSWORD).await;
    let mut seen = HashSet::new();
    let mut path = "/admin/users".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = c.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        pages += 1;
        for part in page.split("class=\"user-link\" href=\"/admin/users/").skip(1) {
            assert!(seen.insert(part[..36].to_owned()), "a user shown twice");
        }
        match page.find("id=\"next-page\" href=\"") {
            Some(at) => path = page[at + 21..].split('"').next().unwrap().replace("&amp;", "&"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 121, "every user once, the admin too");
    assert_eq!(pages, 3);
}

/// The console's cookies serve no other origin (found in review): with `CORS_ORIGINS`
/// naming the app's origin (a sibling subdomain is the same *site*, so SameSite=Strict
/// cookies go along), a script there could read a console page, its CSRF token with
/// it, and post the console's forms as the signed-in admin.
#[tokio::test]
async fn console_pages_answer_no_cross_origin_request_even_from_an_allowed_origin() {
    let app_origin = "http://app.example.test";
    let (app, root) = admin_app(&[("SECURE_COOKIES", "false"), ("CORS_ORIGINS", app_origin)]).await;
    let user = app.register("victim@example.com", PASSWORD).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let mut c = ConsoleHttp::new(&app);
    c.sign_in(ADMIN_EMAIL, PASSWORD).await;

    // The API still serves the app's origin, credentials included.
    let res = app.client.get(app.url("/v1/auth/me")).bearer_auth(&root).header("origin", app_origin).send().await;
    let res = res.unwrap();
    assert_eq!(res.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()), Some(app_origin));

    // A credentialed read of a console page from that origin gets no CORS grant.
    let res = app
        .client
        .get(app.url(&format!("/admin/users/{id}")))
        .header("cookie", c.cookie())
        .header("origin", app_origin)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none(), "{:?}", res.headers());
    let csrf = csrf_of(&res.text().await.unwrap());
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url(&format!("/admin/users/{id}/role")))
        .header("origin", app_origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "{:?}", preflight.headers());

    // Even with the right token, a form posted from another origin of the site changes
    // nothing; from the console's own pages it works.
    for site in ["same-site", "cross-site"] {
        let res = app
            .client
            .post(app.url(&format!("/admin/users/{id}/role")))
            .header("cookie", c.cookie())
            .header("origin", app_origin)
            .header("sec-fetch-site", site)
            .form(&[("csrf", csrf.as_str()), ("role", "admin")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{site}");
    }
    let res = call(&app, Method::GET, &format!("/v1/admin/users/{id}"), Cred::Bearer(&root), None).await;
    assert_eq!(ok_json(res, StatusCode::OK).await["role"], "user");
    let res = app
        .client
        .post(app.url(&format!("/admin/users/{id}/role")))
        .header("cookie", c.cookie())
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str()), ("role", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = call(&app, Method::GET, &format!("/v1/admin/users/{id}"), Cred::Bearer(&root), None).await;
    assert_eq!(ok_json(res, StatusCode::OK).await["role"], "admin");
}

/// A NUL in a search (which PostgreSQL cannot compare: a 500 there before) finds
/// nothing; other control characters are searched for like any character.
#[tokio::test]
async fn a_nul_in_a_search_finds_nothing_rather_than_failing() {
    let (app, root) = admin_app(&[("SECURE_COOKIES", "false")]).await;
    for path in ["/v1/admin/users?q=%00", "/v1/admin/users?q=root%00", "/v1/admin/users?q=a%01b"] {
        let page = ok_json(call(&app, Method::GET, path, Cred::Bearer(&root), None).await, StatusCode::OK).await;
        assert_eq!((page["total"].as_u64(), page["items"].as_array().map(Vec::len)), (Some(0), Some(0)), "{path}");
    }
    for path in ["/v1/admin/audit?event=login%00", "/v1/admin/audit?event=%00.*", "/v1/admin/audit?event=a%01"] {
        let page = ok_json(call(&app, Method::GET, path, Cred::Bearer(&root), None).await, StatusCode::OK).await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{path}: {page}");
    }
    let mut c = ConsoleHttp::new(&app);
    c.sign_in(ADMIN_EMAIL, PASSWORD).await;
    for path in ["/admin/users?q=%00", "/admin/audit?event=%00"] {
        let (status, page) = c.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
    }
}

#[tokio::test]
async fn console_sign_out_and_a_new_sign_in_revoke_the_session_they_replace() {
    let (app, _) = admin_app(&[("SECURE_COOKIES", "false")]).await;
    let mut c = ConsoleHttp::new(&app);
    c.sign_in(ADMIN_EMAIL, PASSWORD).await;
    let first = c.jar["tessera_console"].clone();
    assert_eq!(app.get("/v1/auth/me", Some(&first)).await.status(), StatusCode::OK);
    // Signing in again over a live console session (a sign-in page left open: the page
    // itself sends a signed-in browser to the dashboard) ends it.
    let form = c.jar["tessera_console_form"].clone();
    let res = c.post("/admin/sign-in", &[("csrf", &form), ("email", ADMIN_EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_ne!(c.jar["tessera_console"], first);
    assert_eq!(app.get("/v1/auth/me", Some(&first)).await.status(), StatusCode::UNAUTHORIZED);

    // Refused by ADMIN_MFA_REQUIRED, the session is alive: its 403 page signs it out.
    let strict = app.another_node(&[("SECURE_COOKIES", "false"), ("ADMIN_MFA_REQUIRED", "true")]).await;
    let mut c = ConsoleHttp::new(&strict);
    c.sign_in(ADMIN_EMAIL, PASSWORD).await;
    let access = c.jar["tessera_console"].clone();
    let (status, page) = c.get("/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = c.post("/admin/sign-out", &[("csrf", &csrf_of(&page))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(strict.get("/v1/auth/me", Some(&access)).await.status(), StatusCode::UNAUTHORIZED);
    assert!(!c.jar.contains_key("tessera_console") && !c.jar.contains_key("tessera_console_refresh"), "{:?}", c.jar);
}

/// The per-day series: a fresh node counts every day exactly; a node that already read a
/// window keeps its past days (five minutes, documented) while today stays live.
#[tokio::test]
async fn analytics_keep_past_days_per_node_and_count_today_live() {
    let (app, root) = admin_app(&[]).await;
    let plan = tessera_core::account::seed::SeedPlan { count: 70, prefix: "days".to_owned(), days: 6, batch: 50 };
    app.core.seed_users(&plan, |_| {}).await.unwrap();
    let series = |a: &Value, key: &str| -> Vec<(String, u64)> {
        a[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["date"].as_str().unwrap().to_owned(), d["count"].as_u64().unwrap()))
            .collect()
    };
    let analytics = |app: &TestApp, token: String| {
        let url = app.url("/v1/admin/analytics?days=7");
        let client = app.client.clone();
        async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    let before = series(&analytics(&app, root.clone()).await, "signups_per_day");
    assert_eq!(before.len(), 7);
    assert_eq!(before.iter().map(|(_, n)| n).sum::<u64>(), 71, "70 seeded and the admin: {before:?}");

    // A sign-up back-dated to yesterday, and one today.
    let yesterday = &before[5].0;
    app.register("late@example.com", PASSWORD).await;
    app.sql(&format!("UPDATE users SET created_at = '{yesterday}T12:00:00+00:00' WHERE email = 'late@example.com'"))
        .await;
    app.register("today@example.com", PASSWORD).await;
    let after = series(&analytics(&app, root.clone()).await, "signups_per_day");
    assert_eq!(after[..6], before[..6], "past days come from this node's cache");
    assert_eq!(after[6].1, before[6].1 + 1, "today is counted live");

    // Another node has read nothing yet: it counts yesterday's late sign-up.
    let other = app.another_node(&[]).await;
    let fresh = series(&analytics(&other, root.clone()).await, "signups_per_day");
    assert_eq!(fresh[5].1, before[5].1 + 1, "{fresh:?}");
    assert_eq!(fresh[6], after[6]);
}

/// Hole 6 of the third review: with `ADMIN_MFA_REQUIRED=true`, an aal1 admin token read
/// another user's full record (email, phone) at `GET /v1/users/{id}` while every admin
/// route answered 403. The full view needs what the admin routes need; without it an
/// admin sees what any user sees. From an aal2 session, the full record.
#[tokio::test]
async fn with_admin_mfa_required_an_aal1_admin_sees_only_the_public_view_of_a_user() {
    let (app, aal1) = admin_app(&[("ADMIN_MFA_REQUIRED", "true")]).await;
    let (email, other) = app.user().await;
    let (_, me) = json_of(app.get("/v1/auth/me", Some(&other.access)).await).await;
    let path = format!("/v1/users/{}", me["id"].as_str().unwrap());
    assert_error(app.get("/v1/admin/users", Some(&aal1)).await, StatusCode::FORBIDDEN, "mfa_required").await;
    let (status, seen) = json_of(app.get(&path, Some(&aal1)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen.get("email").is_none() && seen.get("phone").is_none(), "the public view only: {seen}");
    assert_eq!(seen.as_object().unwrap().len(), 3, "{{id, full_name, created_at}}: {seen}");

    // The admin proves a second factor: the full record, as on the admin routes.
    let (_, enrolled) = json_of(app.post("/v1/auth/mfa/totp", Some(&aal1), json!({})).await).await;
    let mut totp = Authenticator::new(enrolled["secret"].as_str().unwrap());
    let activate = format!("/v1/auth/mfa/totp/{}/activate", enrolled["id"].as_str().unwrap());
    let (status, activated) =
        json_of(app.post(&activate, Some(&aal1), json!({ "code": totp.next().await })).await).await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    let aal2 = activated["access_token"].as_str().unwrap();
    let (status, seen) = json_of(app.get(&path, Some(aal2)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["email"], email.as_str(), "{seen}");
    // Without ADMIN_MFA_REQUIRED an aal1 admin reads it in full, as before.
    let relaxed = app.another_node(&FIRST_ADMIN).await;
    let (_, seen) = json_of(relaxed.get(&path, Some(&aal1)).await).await;
    assert_eq!(seen["email"], email.as_str(), "{seen}");
}

/// Issue 34, item 8: over plain http on a host other than localhost the browser drops
/// the console's Secure cookies, and the sign-in answered "Form refused … Reload the
/// page", which reloading never fixes. The page says why and what to set.
#[tokio::test]
async fn a_sign_in_form_without_its_secure_cookie_says_what_to_change() {
    for (secure, hint) in [("true", true), ("false", false)] {
        let app = TestApp::with(&[FIRST_ADMIN[0], FIRST_ADMIN[1], ("SECURE_COOKIES", secure)]).await;
        let form = app.client.get(app.url("/admin/sign-in")).send().await.unwrap().text().await.unwrap();
        let csrf = form.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        // What a browser sends back over http when it kept no Secure cookie: the form, no cookie.
        let res = app
            .client
            .post(app.url("/admin/sign-in"))
            .header("sec-fetch-site", "same-origin")
            .form(&[("csrf", csrf.as_str()), ("email", ADMIN_EMAIL), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let page = res.text().await.unwrap();
        assert_eq!(page.contains("SECURE_COOKIES=false"), hint, "SECURE_COOKIES={secure}: {page}");
    }
}
