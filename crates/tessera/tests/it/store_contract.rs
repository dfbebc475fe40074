//! The store's contract: every path the hot operations can take (the pool on both
//! backends; on a SQLite file the direct reads, the session cache and the batched
//! rotation writer; on PostgreSQL the kept connections) answers exactly what the pool
//! answers and keeps the rotation guard. One set of scenarios, run on each path.

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use futures::future::join_all;
use serde_json::json;
use tessera_core::entity::{audit_log, passkey, session, user, webauthn_challenge};
use tessera_store::query::passkeys::{self, PasskeyUse};
use tessera_store::query::sessions::{self, NewSession, Rotation, SignInWrites, Spent, Written};
use tessera_store::query::users::{self, NewUser};
use tessera_store::sea_orm::prelude::DateTimeUtc;
use tessera_store::sea_orm::sea_query::Expr;
use tessera_store::sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, Statement,
};
use tessera_store::{Store, StoreConfig};
use uuid::Uuid;

use crate::harness::*;

/// A store on a fresh, migrated database, taking its backend's fast paths or not.
async fn store(fast_paths: bool, session_cache: Duration) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(dir.path()).await;
    let config = StoreConfig {
        pool_size: 4,
        max_overflow: 4,
        session_cache_ttl: session_cache,
        fast_paths,
        migrate: true,
        // Personal data encrypted: every path must decrypt alike.
        pii: Some(std::sync::Arc::new(tessera_store::pii::Pii::parse(MFA_KEY).unwrap())),
        ..StoreConfig::tool(&url)
    };
    (dir, Store::open(&config).await.unwrap())
}

/// Every scenario, in turn.
async fn contract(store: &Store) {
    reads_match_the_pool(store).await;
    the_rotation_guard_holds(store).await;
    concurrent_rotations_of_one_token_let_one_through(store).await;
    a_failed_rotation_leaves_no_trace(store).await;
    rotations_racing_revocations_all_answer(store).await;
    a_session_opens_only_on_the_token_version_read(store).await;
    sign_ins_write_all_or_stop_where_told(store).await;
    concurrent_sign_ins_with_one_challenge_open_one_session(store).await;
    a_closed_store_answers_errors(store).await;
}

#[tokio::test]
async fn pooled() {
    let (_dir, store) = store(false, Duration::ZERO).await;
    contract(&store).await;
}

/// A transaction that reads before it writes (a read "for update", a metadata merge)
/// while another node on the same database commits a write: both commit. On a SQLite
/// file a deferred transaction failed here: its snapshot was stale by its first write,
/// and SQLite refused that write outright (`SQLITE_BUSY_SNAPSHOT`, a 503). CI's fuzzer
/// met it on `PUT /auth/v1/admin/users/{id}` while its hooks, another process, put the
/// admin back in the file.
#[tokio::test]
async fn a_transaction_that_reads_first_writes_beside_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(dir.path()).await;
    let config = |migrate| StoreConfig { migrate, ..StoreConfig::tool(&url) };
    let this = Store::open(&config(true)).await.unwrap();
    let other = Store::open(&config(false)).await.unwrap();
    let (user, sid) = user_with_session(&this).await;

    let tx = this.begin().await.unwrap();
    assert!(users::by_id(&tx, user.id).await.unwrap().is_some());
    // The other node's write, given time to commit first if it can.
    let elsewhere = tessera_store::query::audit::insert(other.writer(), audit(user.id, "token.refresh", sid));
    tokio::pin!(elsewhere);
    let early = tokio::time::timeout(Duration::from_millis(300), &mut elsewhere).await;
    let written = tessera_store::query::audit::insert(&tx, audit(user.id, "profile.update", sid)).await;
    assert!(written.is_ok(), "the write after the read: {written:?}");
    tx.commit().await.unwrap();
    let theirs = match early {
        Ok(done) => done,
        Err(_) => elsewhere.await,
    };
    assert!(theirs.is_ok(), "the other node's write: {theirs:?}");
}

mod sqlite_only {
    use super::*;

    /// Session reads in place on the file, rotations through the batch writer.
    #[tokio::test]
    #[ignore = "SQLite only: scripts/test runs it on SQLite"]
    async fn direct_and_batched() {
        expect_backend(Backend::Sqlite);
        let (_dir, store) = store(true, Duration::ZERO).await;
        contract(&store).await;
    }

    /// The same, with session checks answered from the cache when they can be.
    #[tokio::test]
    #[ignore = "SQLite only: scripts/test runs it on SQLite"]
    async fn direct_batched_and_cached() {
        expect_backend(Backend::Sqlite);
        let (_dir, store) = store(true, Duration::from_secs(60)).await;
        contract(&store).await;
    }
}

mod postgres_only {
    use super::*;

    /// Session reads and rotations on connections kept between statements.
    #[tokio::test]
    #[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
    async fn kept() {
        expect_backend(Backend::Postgres);
        let (_dir, store) = store(true, Duration::ZERO).await;
        contract(&store).await;
    }
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn now() -> DateTimeUtc {
    tessera_core::now()
}

/// A user with one live session, written through the store's own operations.
async fn user_with_session(store: &Store) -> (user::Model, Uuid) {
    let now = now();
    let new = NewUser {
        email: format!("contract-{}@example.com", Uuid::now_v7().simple()),
        password_hash: "not a hash".to_owned(),
        full_name: None,
        phone: None,
        verified: false,
        is_active: true,
        role: "user".to_owned(),
        user_metadata: json!({}),
        app_metadata: json!({}),
        invited: false,
        at: now,
        anonymous: false,
    };
    let tx = store.begin().await.unwrap();
    let user = users::create(&tx, new).await.unwrap();
    let sid = open(&tx, &user).await.expect("a session opens");
    tx.commit().await.unwrap();
    (user, sid)
}

/// Opens a session for `user` as read (its `token_version`); the session id, if opened.
async fn open(conn: &impl ConnectionTrait, user: &user::Model) -> Option<Uuid> {
    let now = now();
    let new = NewSession {
        id: Uuid::now_v7(),
        user_id: user.id,
        token_version: user.token_version,
        now,
        expires_at: now + ChronoDuration::days(7),
        ip: Some("127.0.0.1".to_owned()),
        user_agent: None,
        aal: "aal1".to_owned(),
        amr: None,
        new_password_hash: None,
        oauth_client_id: None,
        oauth_scope: None,
        oauth_auth_time: None,
    };
    sessions::open(conn, &new).await.unwrap().then_some(new.id)
}

fn audit(user_id: Uuid, event: &str, session_id: Uuid) -> audit_log::Model {
    audit_log::Model {
        id: Uuid::now_v7(),
        created_at: now(),
        event: event.to_owned(),
        user_id: Some(user_id),
        actor_id: Some(user_id),
        ip: Some("127.0.0.1".to_owned()),
        user_agent: None,
        request_id: None,
        detail: json!({ "session_id": session_id }),
        email_index: None,
    }
}

/// A rotation of `session_id` from `counter`; its audit row names no user: the store
/// sets the session's.
fn rotation(session_id: Uuid, counter: i64) -> Rotation {
    let now = now();
    let mut audit = audit(Uuid::nil(), "token.refresh", session_id);
    (audit.user_id, audit.actor_id) = (None, None);
    Rotation { session_id, counter, now, expires_at: now + ChronoDuration::days(7), audit }
}

/// The session and its user as the pool reads them: the reference.
async fn reference(store: &Store, sid: Uuid) -> Option<(session::Model, user::Model)> {
    sessions::with_user(store.reader(), sid).await.unwrap()
}

async fn refreshes_audited(store: &Store, user_id: Uuid) -> u64 {
    audit_log::Entity::find()
        .filter(audit_log::Column::UserId.eq(user_id))
        .filter(audit_log::Column::Event.eq("token.refresh"))
        .count(store.reader())
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------

/// The session check and the refresh read answer what the pool answers, for every
/// column, set or null, whatever form the pool wrote it in.
async fn reads_match_the_pool(store: &Store) {
    let (user, sid) = user_with_session(store).await;
    let same = |what: &str, got, want| assert_eq!(got, want, "{what}: differs from the pool");
    let want = reference(store, sid).await;
    assert!(want.is_some());
    same("fresh session", store.session_with_user(sid).await.unwrap(), want.clone());
    same("fresh session, refresh read", store.session_for_refresh(sid).await.unwrap(), want);

    // A rotation sets the counter and its time.
    assert!(store.rotate(rotation(sid, 0)).await.unwrap().is_some());
    let want = reference(store, sid).await;
    assert_eq!(want.as_ref().map(|(s, _)| s.refresh_counter), Some(1));
    same("after a rotation", store.session_with_user(sid).await.unwrap(), want.clone());
    same("after a rotation, refresh read", store.session_for_refresh(sid).await.unwrap(), want);

    // Every nullable column set, through sqlx's own encoding.
    let at: DateTimeUtc = "2026-03-04T05:06:07.891234Z".parse().unwrap();
    user::Entity::update_many()
        .col_expr(user::Column::FullName, Expr::value("Ada Ünïcode 😀"))
        .col_expr(user::Column::Phone, Expr::value("+15550001111"))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(at))
        .col_expr(user::Column::PhoneVerifiedAt, Expr::value(at))
        .col_expr(user::Column::LastLoginAt, Expr::value(at))
        .col_expr(user::Column::DeletedAt, Expr::value(at))
        .col_expr(user::Column::NewEmail, Expr::value("next@example.com"))
        .col_expr(user::Column::IsActive, Expr::value(false))
        .col_expr(user::Column::TokenVersion, Expr::value(7))
        .filter(user::Column::Id.eq(user.id))
        .exec(store.reader())
        .await
        .unwrap();
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .col_expr(session::Column::UserAgent, Expr::value("agent/1.0"))
        .filter(session::Column::Id.eq(sid))
        .exec(store.reader())
        .await
        .unwrap();
    let want = reference(store, sid).await;
    assert_eq!(want.as_ref().map(|(s, u)| (s.revoked_at, u.token_version, u.is_active)), Some((Some(at), 7, false)));
    same("every column set", store.session_with_user(sid).await.unwrap(), want.clone());
    same("every column set, refresh read", store.session_for_refresh(sid).await.unwrap(), want);

    // A timestamp in the database's own text form (as SQLite's `datetime('now')`
    // writes it; PostgreSQL reads it as UTC).
    store.reader().execute_unprepared("UPDATE users SET last_login_at = '2026-01-02 03:04:05.678'").await.unwrap();
    let want = reference(store, sid).await;
    same("naive timestamp", store.session_with_user(sid).await.unwrap(), want);

    same("unknown session", store.session_with_user(Uuid::now_v7()).await.unwrap(), None);

    // A token from before the upgrade finds its session by hash.
    let hash = "ab".repeat(32);
    let backend = store.reader().get_database_backend();
    let sql = "UPDATE sessions SET legacy_token_hash = $1 WHERE id = $2";
    let set = Statement::from_sql_and_values(backend, sql, [hash.clone().into(), sid.into()]);
    assert_eq!(store.reader().execute_raw(set).await.unwrap().rows_affected(), 1);
    same("legacy token", store.session_by_legacy_token(&hash).await.unwrap(), reference(store, sid).await);
    same("unknown legacy token", store.session_by_legacy_token(&"cd".repeat(32)).await.unwrap(), None);

    if store.backend() == Backend::Sqlite {
        // A value no path can parse is an error, never a guess (or a panic).
        store.reader().execute_unprepared("UPDATE users SET last_login_at = 'yesterday'").await.unwrap();
        assert!(store.session_with_user(sid).await.is_err());
        store.reader().execute_unprepared("UPDATE users SET last_login_at = NULL").await.unwrap();
    }
}

/// A rotation advances the counter only from the value presented, only on a live
/// session, and writes its audit row only when it rotates.
async fn the_rotation_guard_holds(store: &Store) {
    let (user, sid) = user_with_session(store).await;
    let r = rotation(sid, 0);
    let (at, expires) = (r.now, r.expires_at);
    let rotated = store.rotate(r).await.unwrap();
    let (s, _) = reference(store, sid).await.unwrap();
    assert_eq!((s.refresh_counter, s.refreshed_at, s.last_used_at, s.expires_at), (1, Some(at), at, expires));
    assert_eq!(rotated, reference(store, sid).await, "the rotation answers the session as it left it");
    let audited = audit_log::Entity::find()
        .filter(audit_log::Column::Event.eq("token.refresh"))
        .filter(audit_log::Column::UserId.eq(user.id))
        .one(store.reader())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((audited.actor_id, audited.detail), (Some(user.id), json!({ "session_id": sid })));
    assert_eq!(store.session_with_user(sid).await.unwrap().map(|(s, _)| s.refresh_counter), Some(1));

    assert!(store.rotate(rotation(sid, 0)).await.unwrap().is_none(), "a retired counter does not rotate");
    assert!(store.rotate(rotation(sid, 2)).await.unwrap().is_none(), "a counter never reached does not rotate");
    assert_eq!(reference(store, sid).await.unwrap().0.refresh_counter, 1);
    assert_eq!(refreshes_audited(store, user.id).await, 1, "no audit row for a rotation that did not happen");
    assert!(store.rotate(rotation(sid, 1)).await.unwrap().is_some());

    assert!(store.revoke_session(sid, audit(user.id, "logout", sid)).await.unwrap());
    assert!(!store.revoke_session(sid, audit(user.id, "logout", sid)).await.unwrap(), "revoked once");
    assert!(store.rotate(rotation(sid, 2)).await.unwrap().is_none(), "a revoked session does not rotate");
    assert!(store.session_with_user(sid).await.unwrap().unwrap().0.revoked_at.is_some());

    let (user, sid) = user_with_session(store).await;
    session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(now() - ChronoDuration::seconds(1)))
        .filter(session::Column::Id.eq(sid))
        .exec(store.writer())
        .await
        .unwrap();
    assert!(store.rotate(rotation(sid, 0)).await.unwrap().is_none(), "an expired session does not rotate");
    assert_eq!(refreshes_audited(store, user.id).await, 0);

    // A user who may no longer hold a session (deactivated here without the revocation
    // that goes with it through the API) gets no rotation either.
    let (user, sid) = user_with_session(store).await;
    user::Entity::update_many()
        .col_expr(user::Column::IsActive, Expr::value(false))
        .filter(user::Column::Id.eq(user.id))
        .exec(store.writer())
        .await
        .unwrap();
    assert!(store.rotate(rotation(sid, 0)).await.unwrap().is_none(), "an inactive user's session does not rotate");
    assert_eq!(reference(store, sid).await.unwrap().0.refresh_counter, 0);
}

/// A passkey of `user` at counter 5 and a fresh challenge: their ids.
async fn passkey_and_challenge(store: &Store, user: &user::Model) -> (Uuid, Uuid) {
    let now = now();
    let key = passkey::Model {
        id: Uuid::now_v7(),
        user_id: user.id,
        credential_id: Uuid::now_v7().simple().to_string(),
        name: "key".to_owned(),
        credential: "{}".to_owned(),
        aaguid: None,
        backed_up: false,
        sign_count: 5,
        created_at: now,
        last_used_at: None,
    };
    assert!(passkeys::insert(store.writer(), key.clone()).await.unwrap());
    (key.id, challenge(store).await)
}

async fn challenge(store: &Store) -> Uuid {
    let now = now();
    let row = webauthn_challenge::Model {
        id: Uuid::now_v7(),
        kind: "authentication".to_owned(),
        user_id: None,
        state: "{}".to_owned(),
        expires_at: now + ChronoDuration::minutes(5),
        created_at: now,
    };
    passkeys::insert_challenge(store.writer(), row.clone()).await.unwrap();
    row.id
}

/// A sign-in's writes: spend `challenge` and move `passkey` to `counter`, then open a
/// session for `user` as read, capped at `max` sessions.
fn sign_in(user: &user::Model, challenge: Uuid, passkey: Uuid, counter: i64, max: u32) -> SignInWrites {
    let now = now();
    let id = Uuid::now_v7();
    let passkey = PasskeyUse { id: passkey, counter, credential: format!("{{\"used\":{counter}}}"), backed_up: true };
    SignInWrites {
        spent: Spent { challenge: Some(challenge), passkey: Some(passkey) },
        session: NewSession {
            id,
            user_id: user.id,
            token_version: user.token_version,
            now,
            expires_at: now + ChronoDuration::days(7),
            ip: Some("127.0.0.1".to_owned()),
            user_agent: Some("contract".to_owned()),
            aal: "aal2".to_owned(),
            amr: Some("passkey".to_owned()),
            new_password_hash: None,
            oauth_client_id: None,
            oauth_scope: None,
            oauth_auth_time: None,
        },
        max_sessions: max,
        audit: audit(user.id, "login.success", id),
    }
}

async fn challenge_left(store: &Store, id: Uuid) -> bool {
    webauthn_challenge::Entity::find_by_id(id).one(store.reader()).await.unwrap().is_some()
}

async fn sign_count(store: &Store, id: Uuid) -> i64 {
    passkey::Entity::find_by_id(id).one(store.reader()).await.unwrap().unwrap().sign_count
}

/// A sign-in writes everything (the challenge taken, the counter moved, the user's
/// `last_login_at`, the session as the pool reads it, the cap, the audit row), or stops
/// where one write says no, keeping exactly what [`Written`] says it keeps. The session
/// check sees the sign-in on the user at once, even through the session cache.
async fn sign_ins_write_all_or_stop_where_told(store: &Store) {
    let (user, older) = user_with_session(store).await;
    let kept = open(store.writer(), &user).await.expect("a second session opens");
    let (key, first) = passkey_and_challenge(store, &user).await;
    // The sign-in's reads answer what the pool's entities read.
    let stored = passkey::Entity::find_by_id(key).one(store.reader()).await.unwrap().unwrap();
    let (read, owner) = store.passkey_with_user(&stored.credential_id).await.unwrap().expect("the passkey is there");
    assert_eq!(read, stored);
    assert_eq!(owner, users::by_id(store.reader(), user.id).await.unwrap().unwrap(), "its user, decrypted");
    assert!(store.passkey_with_user("no such credential").await.unwrap().is_none());
    let pending = webauthn_challenge::Entity::find_by_id(first).one(store.reader()).await.unwrap();
    assert_eq!(store.webauthn_challenge(first, "authentication").await.unwrap(), pending);
    assert!(store.webauthn_challenge(first, "registration").await.unwrap().is_none(), "of its kind only");
    // Read (and, where there is a cache, kept) before the sign-in.
    assert!(store.session_with_user(older).await.unwrap().is_some());
    assert!(store.session_with_user(kept).await.unwrap().is_some());

    let writes = sign_in(&user, first, key, 6, 2);
    let sid = writes.session.id;
    let Written::Opened(row) = store.sign_in(writes.clone()).await.unwrap() else {
        panic!("the sign-in opened nothing")
    };
    assert_eq!(row.id, writes.audit.id);
    let (session, signed_in) = reference(store, sid).await.expect("the session is there");
    assert_eq!((session.aal.as_str(), session.amr.as_deref(), session.refresh_counter), ("aal2", Some("passkey"), 0));
    assert_eq!(session.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(signed_in.last_login_at.map(|t| t.timestamp_micros()), Some(writes.session.now.timestamp_micros()));
    assert!(!challenge_left(store, first).await);
    assert_eq!(sign_count(store, key).await, 6);
    let credential = passkey::Entity::find_by_id(key).one(store.reader()).await.unwrap().unwrap();
    assert_eq!((credential.credential.as_str(), credential.backed_up), ("{\"used\":6}", true));
    assert!(credential.last_used_at.is_some());
    let logged = audit_log::Entity::find_by_id(row.id).one(store.reader()).await.unwrap();
    assert_eq!(logged.map(|r| r.event), Some("login.success".to_owned()));
    // The cap of two revoked the oldest session; the check sees that, and the sign-in
    // on the user of the session it kept.
    let (older_now, _) = store.session_with_user(older).await.unwrap().unwrap();
    assert!(older_now.revoked_at.is_some(), "the cap revoked the oldest session");
    let (kept_now, user_now) = store.session_with_user(kept).await.unwrap().unwrap();
    assert!(kept_now.revoked_at.is_none(), "the cap kept the other");
    assert_eq!(user_now.last_login_at, signed_in.last_login_at, "the check sees the sign-in on the user");

    // With no cap (on PostgreSQL one statement, not a transaction), the same writes.
    let uncapped = sign_in(&user, challenge(store).await, key, 7, 0);
    let Written::Opened(row) = store.sign_in(uncapped.clone()).await.unwrap() else { panic!("nothing opened") };
    let (session, signed_in) = reference(store, uncapped.session.id).await.expect("the uncapped session is there");
    assert_eq!((session.aal.as_str(), session.amr.as_deref(), session.revoked_at), ("aal2", Some("passkey"), None));
    assert_eq!((session.ip.as_deref(), session.user_agent.as_deref()), (Some("127.0.0.1"), Some("contract")));
    assert_eq!(session.expires_at.timestamp_micros(), uncapped.session.expires_at.timestamp_micros());
    assert_eq!(signed_in.last_login_at.map(|t| t.timestamp_micros()), Some(uncapped.session.now.timestamp_micros()));
    assert!(!challenge_left(store, uncapped.spent.challenge.unwrap()).await);
    assert_eq!(sign_count(store, key).await, 7);
    let logged = audit_log::Entity::find_by_id(row.id).one(store.reader()).await.unwrap().expect("audited");
    assert_eq!((logged.event.as_str(), logged.user_id), ("login.success", Some(user.id)));
    assert!(reference(store, kept).await.unwrap().0.revoked_at.is_none(), "no cap, nothing revoked");

    // The same challenge again: nothing written.
    let again = sign_in(&user, first, key, 7, 0);
    assert!(matches!(store.sign_in(again.clone()).await.unwrap(), Written::ChallengeGone));
    assert!(reference(store, again.session.id).await.is_none());
    assert_eq!(sign_count(store, key).await, 7, "the counter stayed");

    // A counter that did not move: the challenge is spent, nothing else.
    let stale = sign_in(&user, challenge(store).await, key, 6, 0);
    assert!(matches!(store.sign_in(stale.clone()).await.unwrap(), Written::PasskeyStale));
    assert!(!challenge_left(store, stale.spent.challenge.unwrap()).await, "the challenge is spent");
    assert!(reference(store, stale.session.id).await.is_none());

    // The account changed since it was read: what was spent stays, no session.
    user::Entity::update_many()
        .col_expr(user::Column::TokenVersion, Expr::col(user::Column::TokenVersion).add(1))
        .filter(user::Column::Id.eq(user.id))
        .exec(store.writer())
        .await
        .unwrap();
    let revoked = sign_in(&user, challenge(store).await, key, 8, 0);
    assert!(matches!(store.sign_in(revoked.clone()).await.unwrap(), Written::Revoked));
    assert!(!challenge_left(store, revoked.spent.challenge.unwrap()).await);
    assert_eq!(sign_count(store, key).await, 8);
    assert!(reference(store, revoked.session.id).await.is_none());
    assert!(audit_log::Entity::find_by_id(revoked.audit.id).one(store.reader()).await.unwrap().is_none());
}

/// Of many sign-ins spending one challenge at once, exactly one opens a session (on a
/// SQLite file they share batches); each of the others answers `ChallengeGone`.
async fn concurrent_sign_ins_with_one_challenge_open_one_session(store: &Store) {
    let (user, _) = user_with_session(store).await;
    let (key, one) = passkey_and_challenge(store, &user).await;
    let writes: Vec<_> = (0..16).map(|i| sign_in(&user, one, key, 10 + i, 0)).collect();
    let outcomes = join_all(writes.iter().cloned().map(|w| store.sign_in(w))).await;
    let opened = outcomes.iter().filter(|o| matches!(o, Ok(Written::Opened(_)))).count();
    assert_eq!(opened, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Written::Opened(_) | Written::ChallengeGone))), "{outcomes:?}");
    let mut sessions = 0;
    for w in &writes {
        sessions += usize::from(reference(store, w.session.id).await.is_some());
    }
    assert_eq!(sessions, 1);
}

/// Of many rotations of one counter at once, exactly one rotates.
async fn concurrent_rotations_of_one_token_let_one_through(store: &Store) {
    let (user, sid) = user_with_session(store).await;
    let outcomes = join_all((0..16).map(|_| store.rotate(rotation(sid, 0)))).await;
    let rotated = outcomes.iter().filter(|o| matches!(o, Ok(Some(_)))).count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.is_ok()), "{outcomes:?}");
    assert_eq!(reference(store, sid).await.unwrap().0.refresh_counter, 1);
    assert_eq!(refreshes_audited(store, user.id).await, 1);
}

/// A rotation that fails (here its audit row's id is taken) changes nothing, and the
/// rotations written beside it (in the same batch, where there are batches) stand.
async fn a_failed_rotation_leaves_no_trace(store: &Store) {
    let (user, sid) = user_with_session(store).await;
    let others: Vec<_> = join_all((0..4).map(|_| user_with_session(store))).await;
    let taken = audit(user.id, "login.success", sid);
    tessera_store::query::audit::insert(store.writer(), taken.clone()).await.unwrap();
    let mut failing = rotation(sid, 0);
    failing.audit.id = taken.id;

    let fine = others.iter().map(|(_, s)| store.rotate(rotation(*s, 0)));
    let (failed, fine) = tokio::join!(store.rotate(failing), join_all(fine));

    assert!(failed.is_err(), "{failed:?}");
    assert!(fine.iter().all(|o| matches!(o, Ok(Some(_)))), "{fine:?}");
    assert_eq!(reference(store, sid).await.unwrap().0.refresh_counter, 0, "the failed rotation wrote nothing");
    for (_, s) in &others {
        assert_eq!(reference(store, *s).await.unwrap().0.refresh_counter, 1);
    }
    assert!(store.rotate(rotation(sid, 0)).await.unwrap().is_some(), "and the session rotates afterwards");
}

/// Sessions rotating while their user signs out everywhere over and over (the user row,
/// then every session): every operation answers, none fails (no deadlock on
/// PostgreSQL), and the sessions end revoked.
async fn rotations_racing_revocations_all_answer(store: &Store) {
    let (user, first) = user_with_session(store).await;
    let mut sids = vec![first];
    for _ in 0..5 {
        let tx = store.begin().await.unwrap();
        sids.push(open(&tx, &user).await.unwrap());
        tx.commit().await.unwrap();
    }
    let rotations = sids.iter().map(|sid| async move {
        let mut counter = 0;
        for _ in 0..20 {
            if store.rotate(rotation(*sid, counter)).await.expect("a rotation answers").is_some() {
                counter += 1;
            }
        }
    });
    let revocations = async {
        for _ in 0..5 {
            let tx = store.begin().await.unwrap();
            users::revoke_credentials(&tx, user.id, now()).await.expect("the user row locks");
            sessions::revoke_all_for_user(&tx, user.id, now()).await.expect("the sessions lock");
            tx.commit().await.expect("the revocation commits");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::join!(join_all(rotations), revocations);
    for sid in sids {
        assert!(reference(store, sid).await.unwrap().0.revoked_at.is_some());
    }
}

/// A session opens only while the user's `token_version` is the one the sign-in read,
/// and the user is usable.
async fn a_session_opens_only_on_the_token_version_read(store: &Store) {
    let (user, _) = user_with_session(store).await;
    let tx = store.begin().await.unwrap();
    users::revoke_credentials(&tx, user.id, now()).await.unwrap();
    tx.commit().await.unwrap();
    let sessions_of = || session::Entity::find().filter(session::Column::UserId.eq(user.id)).count(store.reader());
    let before = sessions_of().await.unwrap();

    assert_eq!(open(store.writer(), &user).await, None, "a sign-in overtaken by a revocation opens nothing");
    assert_eq!(sessions_of().await.unwrap(), before);
    let current = users::by_id(store.reader(), user.id).await.unwrap().unwrap();
    assert!(open(store.writer(), &current).await.is_some(), "on the current version it opens");

    user::Entity::update_many()
        .col_expr(user::Column::IsActive, Expr::value(false))
        .filter(user::Column::Id.eq(user.id))
        .exec(store.reader())
        .await
        .unwrap();
    assert_eq!(open(store.writer(), &current).await, None, "an inactive user gets no session");
}

/// Once closed, every path answers an error, promptly.
async fn a_closed_store_answers_errors(store: &Store) {
    let (_, sid) = user_with_session(store).await;
    assert!(store.session_with_user(sid).await.unwrap().is_some());
    tokio::time::timeout(Duration::from_secs(10), store.close()).await.expect("closing hung on a kept connection");
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        assert!(store.session_with_user(sid).await.is_err());
        assert!(store.session_for_refresh(sid).await.is_err());
        assert!(store.rotate(rotation(sid, 0)).await.is_err());
    });
    answered.await.expect("a closed store answers at once");
}
