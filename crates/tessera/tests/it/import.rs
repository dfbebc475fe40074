//! `tessera import` (SPEC §5.15): each source's real export format, from the fixtures
//! `scripts/import-fixtures.py` made with independent hash implementations
//! (tests/fixtures/import/README.md lists every row and what must become of it). The
//! import runs beside a serving node; the users then sign in with their old passwords on
//! every surface, and their hashes become Argon2id.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_store::entity::user;
use tessera_store::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::harness::{backend, json_of, tessera_command, test_vars, Authenticator, TestApp};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/import");

fn fixture(path: &str) -> String {
    format!("{FIXTURES}/{path}")
}

/// Runs `tessera import ARGS --report FILE` beside `app`: the exit code, output and
/// report.
async fn import(app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, Value) {
    let report = app.dir.path().join(format!("report-{}.json", uuid::Uuid::now_v7().simple()));
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let report_arg = report.to_string_lossy().into_owned();
    all.extend(["--report", &report_arg]);
    let (code, out, err) = tessera_command(&app.db_url, &all, extra).await;
    let body = std::fs::read_to_string(&report).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(Value::Null);
    (code, format!("{out}{err}"), body)
}

/// The report's refused and skipped rows as `row → reason`.
fn outcomes(report: &Value, outcome: &str) -> BTreeMap<u64, String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == outcome)
        .map(|r| (r["row"].as_u64().unwrap(), r["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn password(name: &str, source: &str) -> String {
    let mut first = name.chars();
    let cap: String = first.next().unwrap().to_uppercase().chain(first).collect();
    format!("{cap}-{source}-Pw1!")
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    user::Entity::find().filter(user::Column::Email.eq(email)).one(app.db()).await.unwrap().unwrap().password_hash
}

/// Every row an import may write, as text.
async fn imported_rows(app: &TestApp) -> String {
    let mut all = String::new();
    for table in ["users", "profiles", "identities", "mfa_factors"] {
        let mut rows: Vec<Value> = serde_json::from_str(&app.dump(table).await).unwrap();
        // mfa_factors' secrets are sealed with a fresh nonce on each write: compare ids.
        for row in &mut rows {
            if let Some(o) = row.as_object_mut() {
                o.remove("secret");
            }
        }
        rows.sort_by_key(|r| r["id"].to_string());
        all.push_str(&serde_json::to_string(&rows).unwrap());
    }
    all
}

/// What a source's fixture must give.
struct Expected {
    source: &'static str,
    args: Vec<String>,
    refused: &'static [(u64, &'static str)],
    skipped: &'static [(u64, &'static str)],
    /// Alice's TOTP secret (base32), when the source keeps factors.
    totp: Option<&'static str>,
    /// Whether bob has a Google identity.
    google: bool,
}

/// Imports a fixture beside a serving node, checks the report, signs every good user in
/// with the old password on every surface (each first on a different one), checks the
/// re-hash, the identity and the factor; then imports again and checks nothing changed.
async fn round_trip(e: Expected) {
    let app = TestApp::spawn().await;
    let mut args = vec!["--from", e.source];
    args.extend(e.args.iter().map(String::as_str));
    let (code, out, report) = import(&app, &args, &[]).await;
    assert_eq!(code, 0, "{out}");
    let want_refused: BTreeMap<u64, String> = e.refused.iter().map(|(r, why)| (*r, (*why).to_owned())).collect();
    let want_skipped: BTreeMap<u64, String> = e.skipped.iter().map(|(r, why)| (*r, (*why).to_owned())).collect();
    assert_eq!(outcomes(&report, "refused"), want_refused, "{report}");
    assert_eq!(outcomes(&report, "skipped"), want_skipped, "{report}");
    let audit = app.dump("audit_log").await;
    assert!(audit.contains("users.import"), "the run is in the audit log: {audit}");
    let good = ["alice", "bob", "carol", "dave"];
    let extra_imported = if e.source == "supabase" { 1 } else { 0 }; // the banned user
    assert_eq!(report["imported"], good.len() + extra_imported, "{report}");
    assert!(!out.contains("$2") && !out.contains("$argon2") && !out.contains("pbkdf2"), "no hash is printed: {out}");

    let email = |name: &str| format!("{name}@{}.example", e.source);
    // Each user's first sign-in is on another surface, with the imported hash.
    for name in good {
        assert!(
            !stored_hash(&app, &email(name)).await.starts_with("$argon2id$v=19$m=1024"),
            "{name}: not yet re-hashed"
        );
    }
    let pw = |name: &str| password(name, e.source);
    let v1 = |name: &'static str| {
        let (email, pw, app) = (email(name), pw(name), &app);
        async move { json_of(app.post("/v1/auth/login", None, json!({ "email": email, "password": pw })).await).await }
    };
    let kreeda = |name: &'static str| {
        let (email, pw, app) = (email(name), pw(name), &app);
        async move {
            json_of(app.post("/auth/signin/password", None, json!({ "email": email, "password": pw })).await).await
        }
    };
    let supabase = |name: &'static str| {
        let (email, pw, app) = (email(name), pw(name), &app);
        async move {
            json_of(
                app.post("/auth/v1/token?grant_type=password", None, json!({ "email": email, "password": pw })).await,
            )
            .await
        }
    };
    let (status, body) = v1("alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    match e.totp {
        Some(secret) => {
            assert_eq!(body["mfa_required"], true, "alice's factor came along: {body}");
            let code = Authenticator::new(secret).next().await;
            let res =
                app.post("/v1/auth/mfa/verify", None, json!({ "mfa_token": body["mfa_token"], "code": code })).await;
            let (status, body) = json_of(res).await;
            assert_eq!(status, StatusCode::OK, "the imported TOTP secret gives codes tessera accepts: {body}");
        }
        None => assert!(body["access_token"].is_string(), "{body}"),
    }
    let (status, body) = kreeda("bob").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = supabase("dave").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = v1("carol").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Then every surface for everyone but alice (whose second step is checked above).
    for name in ["bob", "carol", "dave"] {
        for (surface, (status, body)) in
            [("v1", v1(name).await), ("kreeda", kreeda(name).await), ("supabase", supabase(name).await)]
        {
            assert_eq!(status, StatusCode::OK, "{name} on {surface}: {body}");
        }
    }
    for name in good {
        assert!(
            stored_hash(&app, &email(name)).await.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{name} re-hashed"
        );
        let res = app.post("/v1/auth/login", None, json!({ "email": email(name), "password": "Wrong-Pass123!" })).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Refused rows made no account.
    for refused in ["not-an-address", &format!("oldhash@{}.example", e.source)] {
        let n = user::Entity::find().filter(user::Column::Email.eq(refused)).count(app.db()).await.unwrap();
        assert_eq!(n, 0, "{refused}");
    }
    let res = app
        .post("/v1/auth/login", None, json!({ "email": email("alice"), "password": password("alice2", e.source) }))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the duplicate's password is not alice's");

    let (_, login) =
        json_of(app.post("/v1/auth/login", None, json!({ "email": email("bob"), "password": pw("bob") })).await).await;
    let (_, identities) = json_of(app.get("/v1/users/me/identities", login["access_token"].as_str()).await).await;
    let google: Vec<&Value> = identities.as_array().unwrap().iter().filter(|i| i["provider"] == "google").collect();
    if e.google {
        assert_eq!(google.len(), 1, "{identities}");
        assert_eq!(google[0]["provider_id"], format!("google-bob-{}", e.source), "{identities}");
    } else {
        assert!(google.is_empty(), "{identities}");
    }

    // Again: nothing changes.
    let before = imported_rows(&app).await;
    let (code, out, again) = import(&app, &args, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(outcomes(&again, "refused"), want_refused, "{again}");
    assert_eq!(imported_rows(&app).await, before, "a second run changes nothing");
    let (code, out, update) = import(&app, &[&args[..], &["--on-conflict", "update"]].concat(), &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!((update["imported"].as_u64(), update["updated"].as_u64()), (Some(0), Some(0)), "{update}");
    assert_eq!(imported_rows(&app).await, before, "an update with the same data changes nothing");
    assert!(stored_hash(&app, &email("bob")).await.starts_with("$argon2id$"), "an update keeps a password set here");
    app.stop().await;
}

#[tokio::test]
async fn supabase_export_users_sign_in_with_their_passwords_factors_and_identities() {
    round_trip(Expected {
        source: "supabase",
        args: vec![
            fixture("supabase/users.csv"),
            "--identities".into(),
            fixture("supabase/identities.csv"),
            "--factors".into(),
            fixture("supabase/mfa_factors.csv"),
        ],
        refused: &[(5, "invalid_email"), (6, "unknown_hash_format"), (7, "duplicate")],
        skipped: &[(8, "deleted_in_source")],
        totp: Some("X2UFJL2NV3CEWWYOO34VSSINBYGLQ22W"),
        google: true,
    })
    .await;
}

#[tokio::test]
async fn supabase_json_export_keeps_ids_metadata_and_bans() {
    let app = TestApp::spawn().await;
    let args = ["--from", "supabase", &fixture("supabase/users.json")];
    let (code, out, report) = import(&app, &args, &[("EMAIL_AUTOCONFIRM", "false")]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["imported"], 5, "{report}");
    let alice = user::Entity::find_by_id(uuid::Uuid::parse_str("e8497678-5604-4c7b-a9a4-a576dee63161").unwrap())
        .one(app.db())
        .await
        .unwrap()
        .expect("alice keeps her id");
    assert_eq!(alice.email, "alice@supabase.example");
    assert!(alice.email_verified_at.is_some());
    let carol = user::Entity::find()
        .filter(user::Column::Email.eq("carol@supabase.example"))
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(carol.email_verified_at.is_none(), "carol's address stays unconfirmed");
    let dave = user::Entity::find()
        .filter(user::Column::Email.eq("dave@supabase.example"))
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dave.phone.as_deref(), Some("+4915112345678"));
    // The Supabase surface shows the metadata as the source had it.
    let (status, login) = json_of(
        app.post(
            "/auth/v1/token?grant_type=password",
            None,
            json!({ "email": "dave@supabase.example", "password": "Dave-supabase-Pw1!" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let source: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("supabase/users.json")).unwrap()).unwrap();
    let dave_source = source.iter().find(|u| u["email"] == "dave@supabase.example").unwrap();
    for (k, v) in dave_source["raw_user_meta_data"].as_object().unwrap() {
        assert_eq!(&login["user"]["user_metadata"][k], v, "user_metadata.{k}: {login}");
    }
    assert_eq!(
        login["user"]["created_at"].as_str().map(|s| &s[..19]),
        dave_source["created_at"].as_str().map(|s| &s[..19])
    );
    let res = app
        .post("/v1/auth/login", None, json!({ "email": "banned@supabase.example", "password": "Banned-supabase-Pw1!" }))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a banned user comes over inactive");
    app.stop().await;
}

#[tokio::test]
async fn auth0_export_with_its_hash_export() {
    round_trip(Expected {
        source: "auth0",
        args: vec![fixture("auth0/users.ndjson"), "--hashes".into(), fixture("auth0/hashes.ndjson")],
        refused: &[(5, "invalid_email"), (6, "unknown_hash_format"), (7, "duplicate")],
        skipped: &[],
        totp: None,
        google: true,
    })
    .await;
}

#[tokio::test]
async fn firebase_export_with_the_projects_scrypt_parameters() {
    round_trip(Expected {
        source: "firebase",
        args: vec![fixture("firebase/users.json"), "--hash-config".into(), fixture("firebase/hash_config.txt")],
        refused: &[(4, "invalid_email"), (6, "unknown_hash_format"), (7, "duplicate")],
        skipped: &[],
        totp: None,
        google: true,
    })
    .await;
}

#[tokio::test]
async fn keycloak_realm_export_with_pbkdf2_argon2_and_otp() {
    round_trip(Expected {
        source: "keycloak",
        args: vec![fixture("keycloak/realm-export.json")],
        refused: &[(5, "invalid_email"), (6, "unknown_hash_format"), (7, "duplicate")],
        skipped: &[],
        totp: Some("LFLVIQSQNFKW232ZJY4GMUTKPJBFA4KH"),
        google: true,
    })
    .await;
}

#[tokio::test]
async fn tessera_csv_with_bcrypt_and_argon2_hashes() {
    round_trip(Expected {
        source: "csv",
        args: vec![fixture("csv/users.csv")],
        refused: &[(5, "invalid_email"), (6, "unknown_hash_format"), (7, "duplicate")],
        skipped: &[],
        totp: None,
        google: false,
    })
    .await;
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let before = imported_rows(&app).await;
    let (code, out, report) =
        import(&app, &["--from", "keycloak", &fixture("keycloak/realm-export.json"), "--dry-run"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would import 4"), "{out}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(outcomes(&report, "refused").len(), 3, "{report}");
    assert_eq!(imported_rows(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn an_update_brings_changed_rows_and_a_firebase_user_without_parameters_is_refused() {
    let app = TestApp::spawn().await;
    let csv = app.dir.path().join("users.csv");
    let original = std::fs::read_to_string(fixture("csv/users.csv")).unwrap();
    std::fs::write(&csv, &original).unwrap();
    let path = csv.to_string_lossy().into_owned();
    let (code, out, _) = import(&app, &["--from", "csv", &path], &[]).await;
    assert_eq!(code, 0, "{out}");
    // Dave's new name, and no role named: an update keeps the admin he is.
    let changed: String = original
        .lines()
        .map(|l| {
            if l.starts_with("dave@") {
                l.replace("Dave Lister", "David Lister").replace(",admin,", ",,")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(changed.trim(), original.trim());
    std::fs::write(&csv, changed).unwrap();
    let (code, out, dry) = import(&app, &["--from", "csv", &path, "--on-conflict", "update", "--dry-run"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!((dry["updated"].as_u64(), dry["unchanged"].as_u64()), (Some(1), Some(3)), "a dry run tells: {dry}");
    let (code, out, report) = import(&app, &["--from", "csv", &path, "--on-conflict", "update"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!((report["updated"].as_u64(), report["unchanged"].as_u64()), (Some(1), Some(3)), "{report}");
    let dave =
        user::Entity::find().filter(user::Column::Email.eq("dave@csv.example")).one(app.db()).await.unwrap().unwrap();
    assert_eq!(dave.full_name.as_deref(), Some("David Lister"));
    assert_eq!(dave.role, "admin");

    // Firebase users with passwords need the project's parameters.
    let (code, out, report) = import(&app, &["--from", "firebase", &fixture("firebase/users.json")], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["imported"], 0, "{report}");
    assert!(
        outcomes(&report, "refused").values().all(|r| r == "unknown_hash_format" || r == "invalid_email"),
        "{report}"
    );
    // A missing file is a clear error, not a panic.
    let (code, out, _) = import(&app, &["--from", "csv", "/nonexistent/users.csv"], &[]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot open /nonexistent/users.csv"), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn imported_addresses_are_encrypted_under_the_pii_key() {
    const KEY: &str = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let app = TestApp::with(&[("PII_ENCRYPTION_KEY", KEY)]).await;
    let (code, out, report) = import(
        &app,
        &["--from", "auth0", &fixture("auth0/users.ndjson"), "--hashes", &fixture("auth0/hashes.ndjson")],
        &[("PII_ENCRYPTION_KEY", KEY)],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["imported"], 4, "{report}");
    let stored = crate::harness::dump_personal_tables(&app).await;
    assert!(
        !stored.contains("alice@auth0.example") && !stored.contains("google-bob-auth0\",\"email\":\"bob@"),
        "addresses are sealed"
    );
    app.login("alice@auth0.example", "Alice-auth0-Pw1!").await;
    // Again, keyed by the blind index: nothing new.
    let (_, _, again) = import(
        &app,
        &["--from", "auth0", &fixture("auth0/users.ndjson"), "--hashes", &fixture("auth0/hashes.ndjson")],
        &[("PII_ENCRYPTION_KEY", KEY)],
    )
    .await;
    assert_eq!((again["imported"].as_u64(), again["skipped"].as_u64()), (Some(0), Some(4)), "{again}");
    app.stop().await;
}

const MANY: u64 = 20_000;

/// `MANY` copies of the fixture's alice (her hash, new ids and addresses `r{i}@…`) in the
/// source's own format, written beside `app`: the import's arguments.
fn many_of_alice(app: &TestApp, source: &str) -> Vec<String> {
    let dir = app.dir.path();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let line_of = |path: &str, needle: &str| {
        let text = std::fs::read_to_string(fixture(path)).unwrap();
        let header = text.lines().next().unwrap().to_owned();
        (header, text.lines().find(|l| l.contains(needle)).unwrap().to_owned())
    };
    let email = |i: u64| format!("r{i}@{source}.example");
    let uuid = |i: u64| format!("00000000-0000-4000-8000-{i:012x}");
    match source {
        "csv" => {
            let hash = bcrypt::hash("Alice-csv-Pw1!", 4).unwrap();
            let mut csv = String::from("email,password_hash,email_verified,full_name,phone,created_at,role,metadata\n");
            for i in 0..MANY {
                csv.push_str(&format!("{},{hash},true,Resumed {i},,2024-01-01T00:00:00Z,user,{{}}\n", email(i)));
            }
            vec![write("many.csv", csv)]
        }
        "supabase" => {
            let (header, alice) = line_of("supabase/users.csv", "alice@supabase.example");
            let mut csv = header + "\n";
            for i in 0..MANY {
                let row = alice.replace("e8497678-5604-4c7b-a9a4-a576dee63161", &uuid(i));
                csv.push_str(&row.replace("alice@supabase.example", &email(i)));
                csv.push('\n');
            }
            vec![write("many.csv", csv)]
        }
        "auth0" => {
            let (_, alice) = line_of("auth0/users.ndjson", "alice@auth0.example");
            let (_, hash) = line_of("auth0/hashes.ndjson", "alice@auth0.example");
            let (mut users, mut hashes) = (String::new(), String::new());
            for i in 0..MANY {
                let oid = format!("{i:024x}");
                for (out, line) in [(&mut users, &alice), (&mut hashes, &hash)] {
                    let line = line.replace("65f0c0ffee1a2b3c4d5e0a11", &oid).replace("alice@auth0.example", &email(i));
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            vec![write("many.ndjson", users), "--hashes".into(), write("hashes.ndjson", hashes)]
        }
        "firebase" | "keycloak" => {
            let file = if source == "firebase" { "firebase/users.json" } else { "keycloak/realm-export.json" };
            let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(fixture(file)).unwrap()).unwrap();
            let alice =
                doc["users"].as_array().unwrap().iter().find(|u| u["email"] == format!("alice@{source}.example"));
            let alice = alice.unwrap().clone();
            let users: Vec<Value> = (0..MANY)
                .map(|i| {
                    let mut u = alice.clone();
                    u["email"] = json!(email(i));
                    if source == "firebase" {
                        u["localId"] = json!(format!("resume{i}"));
                    } else {
                        u["id"] = json!(uuid(i));
                        u["username"] = json!(email(i));
                        let creds = u["credentials"].as_array().unwrap().iter().filter(|c| c["type"] == "password");
                        u["credentials"] = Value::Array(creds.cloned().collect());
                    }
                    u
                })
                .collect();
            doc["users"] = Value::Array(users);
            let mut args = vec![write("many.json", serde_json::to_string(&doc).unwrap())];
            if source == "firebase" {
                args.extend(["--hash-config".into(), fixture("firebase/hash_config.txt")]);
            }
            args
        }
        _ => unreachable!(),
    }
}

/// A run killed (`kill -9`) midway, then run again: it resumes after the last batch it
/// wrote, imports only what was left, and every user signs in.
/// Starts `tessera import ARGS` beside `app` and kills it (`kill -9`) once 1,000 users
/// are in: how many users there are then.
async fn import_killed_midway(app: &TestApp, args: &[String], extra: &[(&str, &str)]) -> u64 {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("import")
        .args(args)
        .env_clear()
        .envs(test_vars(&app.db_url, extra))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..10_000 {
        if users_in(app).await >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    users_in(app).await
}

async fn users_in(app: &TestApp) -> u64 {
    user::Entity::find().count(app.db()).await.unwrap()
}

async fn kill_and_resume(source: &str) {
    let app = TestApp::spawn().await;
    let files = many_of_alice(&app, source);
    let mut args = vec!["--from".to_owned(), source.to_owned()];
    args.extend(files);
    args.extend(["--batch".to_owned(), "500".to_owned()]);
    let written = import_killed_midway(&app, &args, &[]).await;
    assert!(written > 0 && written < MANY, "{source}: killed midway: {written} of {MANY}");
    assert_eq!(written % 500, 0, "{source}: a batch commits whole or not at all");

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, report) = import(&app, &args, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("(resumed after row {written})")), "{source}: {out}");
    assert_eq!(report["imported"], MANY - written, "{source}: only what was left: {report}");
    assert_eq!(report["resumed_after"], written);
    assert_eq!(users_in(&app).await, MANY);
    let password = password("alice", source);
    app.login(&format!("r17@{source}.example"), &password).await;
    app.login(&format!("r{}@{source}.example", MANY - 1), &password).await;
    // A finished run leaves no position: the next run reads everything (and skips it).
    let (_, _, again) = import(&app, &args, &[]).await;
    assert_eq!((again["resumed_after"].clone(), again["skipped"].as_u64()), (Value::Null, Some(MANY)), "{source}");
    app.stop().await;
}

#[tokio::test]
async fn a_killed_csv_import_resumes_after_the_last_batch_it_wrote() {
    kill_and_resume("csv").await;
}

#[tokio::test]
async fn a_killed_supabase_import_resumes() {
    kill_and_resume("supabase").await;
}

#[tokio::test]
async fn a_killed_auth0_import_resumes() {
    kill_and_resume("auth0").await;
}

#[tokio::test]
async fn a_killed_firebase_import_resumes() {
    kill_and_resume("firebase").await;
}

#[tokio::test]
async fn a_killed_keycloak_import_resumes() {
    kill_and_resume("keycloak").await;
}

/// A Supabase project's database: the fixture's `auth` schema (GoTrue's tables and
/// types) loaded into a PostgreSQL database of its own on the suite's server; its URL
/// and a connection to drop it with. `None` on the SQLite run (no server).
async fn supabase_database() -> Option<(url::Url, tessera_store::sea_orm::DatabaseConnection, String)> {
    use tessera_store::sea_orm::{ConnectionTrait, Database};
    let server = crate::harness::backend_url().filter(|_| backend() == tessera_store::Backend::Postgres)?;
    let name = format!("supabase_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(&server).await.unwrap();
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let source = Database::connect(url.as_str()).await.unwrap();
    source.execute_unprepared(&std::fs::read_to_string(fixture("supabase/auth_schema.sql")).unwrap()).await.unwrap();
    // Read in id order, the fixture's upper-case twin of alice would come first; GoTrue
    // lower-cases addresses, so a real project has no such twin.
    source.execute_unprepared("DELETE FROM auth.users WHERE email = 'ALICE@supabase.example'").await.unwrap();
    source.close().await.unwrap();
    Some((url, admin, name))
}

/// Straight from a Supabase project's database.
#[tokio::test]
async fn supabase_straight_from_its_database() {
    use tessera_store::sea_orm::ConnectionTrait;
    // Needs a PostgreSQL server: the suite's PostgreSQL run has one (scripts/test).
    let Some((url, admin, name)) = supabase_database().await else { return };

    let app = TestApp::spawn().await;
    let (code, out, report) = import(&app, &["--from", "supabase", "--database-url", url.as_str()], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["imported"], 5, "{report}");
    let mut refused: Vec<String> = outcomes(&report, "refused").into_values().collect();
    refused.sort();
    assert_eq!(refused, ["invalid_email", "unknown_hash_format"], "{report}");
    assert_eq!(outcomes(&report, "skipped").into_values().collect::<Vec<_>>(), ["deleted_in_source"]);
    assert!(!out.contains(url.password().unwrap_or("\u{0}")), "the URL's password is never printed");
    let (status, body) = json_of(
        app.post(
            "/v1/auth/login",
            None,
            json!({ "email": "alice@supabase.example", "password": "Alice-supabase-Pw1!" }),
        )
        .await,
    )
    .await;
    assert_eq!((status, &body["mfa_required"]), (StatusCode::OK, &json!(true)), "{body}");
    let code = Authenticator::new("X2UFJL2NV3CEWWYOO34VSSINBYGLQ22W").next().await;
    let res = app.post("/v1/auth/mfa/verify", None, json!({ "mfa_token": body["mfa_token"], "code": code })).await;
    assert_eq!(res.status(), StatusCode::OK);
    app.login("bob@supabase.example", "Bob-supabase-Pw1!").await;
    let again = import(&app, &["--from", "supabase", "--database-url", url.as_str()], &[]).await.2;
    assert_eq!(again["imported"], 0, "{again}");
    app.stop().await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
}

/// A `--database-url` run killed midway resumes after the last user it wrote, by id, in
/// a new snapshot (the fixture's schema with 20,000 more users, alice's copies).
#[tokio::test]
async fn a_killed_supabase_database_import_resumes_by_id() {
    use tessera_store::sea_orm::{ConnectionTrait, Database, Statement};
    // Needs a PostgreSQL server: the suite's PostgreSQL run has one (scripts/test).
    let Some((url, admin, name)) = supabase_database().await else { return };
    let source = Database::connect(url.as_str()).await.unwrap();
    let columns = source
        .query_one_raw(Statement::from_string(
            source.get_database_backend(),
            "SELECT string_agg(column_name, ', ') FROM information_schema.columns WHERE table_schema = 'auth' \
             AND table_name = 'users' AND is_generated = 'NEVER' AND column_name NOT IN ('id', 'email')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    source
        .execute_unprepared(&format!(
            "INSERT INTO auth.users (id, email, {columns}) SELECT gen_random_uuid(), 'r' || g || '@supabase.example', \
             {columns} FROM auth.users, generate_series(0, {}) g WHERE email = 'alice@supabase.example'",
            MANY - 1
        ))
        .await
        .unwrap();
    source.close().await.unwrap();

    let app = TestApp::spawn().await;
    let args: Vec<String> = ["--from", "supabase", "--batch", "500"].map(str::to_owned).to_vec();
    let written = import_killed_midway(&app, &args, &[("IMPORT_DATABASE_URL", url.as_str())]).await;
    // The source's users: alice's copies, and alice, bob, carol, dave and the banned user
    // (three more rows are refused or skipped).
    let total = MANY + 5;
    assert!(written > 0 && written < total, "killed midway: {written} of {total}");

    let (code, out, report) =
        import(&app, &["--from", "supabase", "--batch", "500"], &[("IMPORT_DATABASE_URL", url.as_str())]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(resumed after row "), "{out}");
    assert_eq!(report["imported"].as_u64().unwrap() + written, total, "nothing lost: {report}");
    assert!(!outcomes(&report, "skipped").values().any(|r| r == "exists"), "nothing read twice: {report}");
    assert_eq!(users_in(&app).await, total);
    app.login("r17@supabase.example", "Alice-supabase-Pw1!").await;
    app.stop().await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
}
