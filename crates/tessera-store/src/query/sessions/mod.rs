//! Sessions: one per sign-in, each carrying its refresh token's rotation counter.
//!
//! The statements live here, `ROTATE` the one rotation every path runs; `paths` runs
//! the store's session operations on each backend's fast path or the pool, and `row`
//! is the one shape of a session read with its user.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    Statement,
};
use tessera_domain::Error;
use uuid::Uuid;

use self::row::{session_and_user, SESSION_AND_USER};
use super::one_parameter_sql;
use super::passkeys::PasskeyUse;
use crate::db::Db;
use crate::entity::{audit_log, session, user};
use crate::error::OrDb;

pub(crate) mod paths;
pub(crate) mod row;

/// The query of [`with_user`]; its parameter is the session id. Its columns are read by
/// position by [`session_and_user!`](row::session_and_user).
pub(crate) fn with_user_sql(backend: DbBackend) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    one_parameter_sql(&SQL, backend, |p| {
        format!("SELECT {SESSION_AND_USER} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = {p}")
    })
}

/// The query of [`by_legacy_token`]; its parameter is the SHA-256 of a refresh token
/// issued before tokens were derived from the session's counter.
pub(crate) fn by_legacy_token_sql(backend: DbBackend) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    one_parameter_sql(&SQL, backend, |p| {
        format!(
            "SELECT {SESSION_AND_USER} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.legacy_token_hash = {p}"
        )
    })
}

/// A session together with its user, in one query. Every authenticated request and
/// every refresh runs it, so the SQL is a constant (no query building, and the prepared
/// statement is reused from each connection's cache) and columns are read by position.
pub async fn with_user(conn: &impl crate::db::Db, id: Uuid) -> Result<Option<(session::Model, user::Model)>, Error> {
    opened(conn.pii(), with_user_as_stored(conn, id).await?)
}

/// A session read as stored, its user's personal fields decrypted.
pub(crate) fn opened(
    pii: &crate::pii::Pii,
    found: Option<(session::Model, user::Model)>,
) -> Result<Option<(session::Model, user::Model)>, Error> {
    found.map(|(s, u)| Ok((s, pii.open_user(u)?))).transpose()
}

/// [`with_user`] as stored (personal fields not decrypted): what the store's own paths
/// read before they decrypt.
pub(crate) async fn with_user_as_stored(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<(session::Model, user::Model)>, Error> {
    super::one_row(conn, with_user_sql, id.into(), |r| Ok(session_and_user!(r.try_get_by_index, 0))).await
}

/// The session a refresh token issued before the upgrade belongs to (by the token's
/// SHA-256); that token stands for counter 0 of the session.
pub(crate) async fn by_legacy_token(
    conn: &impl ConnectionTrait,
    hash: &str,
) -> Result<Option<(session::Model, user::Model)>, Error> {
    super::one_row(conn, by_legacy_token_sql, hash.into(), |r| Ok(session_and_user!(r.try_get_by_index, 0))).await
}

/// A session by id.
pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<session::Model>, Error> {
    session::Entity::find_by_id(id).one(conn).await.or_db()
}

/// The user's sessions that are neither revoked nor expired, oldest first.
pub async fn active_for_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<session::Model>, Error> {
    session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_asc(session::Column::CreatedAt)
        .order_by_asc(session::Column::Id)
        .all(conn)
        .await
        .or_db()
}

/// A session to open for a user who has just proven who they are.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The user's `token_version` as the sign-in read it.
    pub token_version: i32,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub aal: String,
    /// How the sign-in was proven, when not by a password (`passkey`).
    pub amr: Option<String>,
    /// A re-hash of the password to store with the sign-in (old parameters).
    pub new_password_hash: Option<String>,
    /// The OAuth client the session is opened for (SPEC §5.12); such a session is opened
    /// by [`open`] in a transaction, never by a fast path.
    pub oauth_client_id: Option<Uuid>,
    /// The scopes granted to that client.
    pub oauth_scope: Option<String>,
    /// When the user signed in at the provider.
    pub oauth_auth_time: Option<DateTime<Utc>>,
}

/// Records the sign-in on the user and inserts the session, only if the user is still
/// usable and its `token_version` is still the one the sign-in read: a password change,
/// logout-all or deactivation that committed while the sign-in was under way (hashing,
/// say) leaves it no session (SPEC §4.4). `false` then, and nothing written. The user
/// row is written first (the lock order of [`crate::query`]).
pub async fn open(conn: &impl ConnectionTrait, s: &NewSession) -> Result<bool, Error> {
    let mut touch = user::Entity::update_many().col_expr(user::Column::LastLoginAt, Expr::value(s.now));
    if let Some(hash) = &s.new_password_hash {
        touch = touch
            .col_expr(user::Column::PasswordHash, Expr::value(hash.as_str()))
            .col_expr(user::Column::UpdatedAt, Expr::value(s.now));
    }
    let touched = touch
        .filter(user::Column::Id.eq(s.user_id))
        .filter(user::Column::TokenVersion.eq(s.token_version))
        .filter(user::Column::IsActive.eq(true))
        .filter(user::Column::DeletedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    if touched.rows_affected != 1 {
        return Ok(false);
    }
    session::Model {
        id: s.id,
        user_id: s.user_id,
        created_at: s.now,
        last_used_at: s.now,
        expires_at: s.expires_at,
        revoked_at: None,
        ip: s.ip.clone(),
        user_agent: s.user_agent.clone(),
        aal: s.aal.clone(),
        refresh_counter: 0,
        refreshed_at: None,
        amr: s.amr.clone(),
        oauth_client_id: s.oauth_client_id,
        oauth_scope: s.oauth_scope.clone(),
        oauth_auth_time: s.oauth_auth_time,
    }
    .into_active_model()
    .insert(conn)
    .await
    .or_db()?;
    Ok(true)
}

/// What a verifier spent proving a sign-in, written with the session it opens.
#[derive(Debug, Clone, Default)]
pub struct Spent {
    /// A ceremony's challenge, taken: when it is already gone, the sign-in stops there.
    pub challenge: Option<Uuid>,
    /// A passkey's use: when its counter does not move forwards, the sign-in stops there.
    pub passkey: Option<PasskeyUse>,
}

/// Every write of a sign-in that opens a session: what the verifier spent, the session
/// ([`open`]), the cap on the user's sessions ([`cap`], 0: none) and the audit event.
#[derive(Debug, Clone)]
pub struct SignInWrites {
    pub spent: Spent,
    pub session: NewSession,
    pub max_sessions: u32,
    pub audit: audit_log::Model,
}

/// How far a sign-in's writes got. Each but `ChallengeGone` is to be committed: a
/// challenge is spent, and a passkey's counter moved, even when no session opens.
#[derive(Debug, Clone)]
pub enum Written {
    /// The session is open; the audit row as stored.
    Opened(Box<audit_log::Model>),
    /// Nothing written: the challenge had already been taken.
    ChallengeGone,
    /// The challenge taken, nothing else: the passkey's counter did not move forwards.
    PasskeyStale,
    /// What was spent, and no session: the account changed since it was read ([`open`]).
    Revoked,
}

/// Writes what a verifier spent: `None` when all of it was, else where it stopped.
pub async fn spend(conn: &impl ConnectionTrait, spent: &Spent, now: DateTime<Utc>) -> Result<Option<Written>, Error> {
    if let Some(id) = spent.challenge {
        if !super::passkeys::delete_challenge(conn, id).await? {
            return Ok(Some(Written::ChallengeGone));
        }
    }
    if let Some(p) = &spent.passkey {
        if !super::passkeys::record_use(conn, p, now).await? {
            return Ok(Some(Written::PasskeyStale));
        }
    }
    Ok(None)
}

/// A sign-in's writes in the caller's transaction, in order, stopping where one says
/// no. [`Store::sign_in`](crate::Store::sign_in) runs them in a transaction of their own
/// (on a SQLite file, in the batch writer's next batch).
pub async fn write_sign_in(conn: &impl Db, w: SignInWrites) -> Result<Written, Error> {
    if let Some(stopped) = spend(conn, &w.spent, w.session.now).await? {
        return Ok(stopped);
    }
    if !open(conn, &w.session).await? {
        return Ok(Written::Revoked);
    }
    cap(conn, w.session.user_id, w.session.id, w.max_sessions, w.session.now).await?;
    Ok(Written::Opened(Box::new(super::audit::insert(conn, w.audit).await?)))
}

/// Revokes the user's oldest live sessions beyond `max` (0: no cap), never `kept` (the
/// one just opened); the ids revoked.
pub async fn cap(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    kept: Uuid,
    max: u32,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, Error> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let live = active_for_user(conn, user_id, now).await?;
    let mut revoked = Vec::new();
    for old in live.iter().filter(|s| s.id != kept).take(live.len().saturating_sub(max as usize)) {
        if revoke(conn, old.id, now).await? {
            revoked.push(old.id);
        }
    }
    Ok(revoked)
}

/// Sets the assurance level of a live session (`aal2` once a second factor is proven).
pub async fn set_aal(conn: &impl ConnectionTrait, id: Uuid, aal: &str) -> Result<(), Error> {
    session::Entity::update_many()
        .col_expr(session::Column::Aal, Expr::value(aal))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Revokes one session if it is still live; tells whether it was.
pub async fn revoke(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Revokes every live session of a user (whose row the caller's transaction has written
/// first); returns how many.
pub async fn revoke_all_for_user(conn: &impl ConnectionTrait, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, Error> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected)
}

/// Revokes every live (unrevoked, unexpired) session of a user but `keep`; how many it
/// revoked. Reaches them through the user (whose row the caller's transaction holds, see
/// the lock order above).
pub async fn revoke_all_but(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::Id.ne(keep))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected)
}

/// The rotation of a session's refresh token (SPEC §4.3), the one statement every path
/// runs (the pool here, the SQLite rotation writer, PostgreSQL's kept connections): it
/// advances the counter from the value the refresh presented, and only from that value,
/// of a session neither revoked nor expired whose user may still hold one. Of any number
/// of concurrent rotations of one token, on one node or many, exactly one changes a row.
/// Parameters: `$1` now, `$2` the new expiry, `$3` the session id, `$4` the counter
/// presented.
pub(crate) const ROTATE: &str = "UPDATE sessions SET refresh_counter = refresh_counter + 1, refreshed_at = $1, \
     last_used_at = $1, expires_at = $2 WHERE id = $3 AND refresh_counter = $4 AND revoked_at IS NULL \
     AND expires_at > $1 AND EXISTS (SELECT 1 FROM users u WHERE u.id = sessions.user_id AND u.is_active \
     AND u.deleted_at IS NULL)";

/// Whether a session and its user as read meet the conditions [`ROTATE`] checks: a path
/// that has just read them skips the write when they do not.
pub(crate) fn rotatable(session: &session::Model, user: &user::Model, r: &Rotation) -> bool {
    session.refresh_counter == r.counter
        && session.revoked_at.is_none()
        && session.expires_at > r.now
        && user.is_active
        && user.deleted_at.is_none()
}

/// What one refresh rotation writes: the session row and its audit event.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub session_id: Uuid,
    /// The counter the presented token carries: the session's current one, if the
    /// rotation is to happen.
    pub counter: i64,
    pub now: DateTime<Utc>,
    /// The session's new expiry.
    pub expires_at: DateTime<Utc>,
    /// The audit row; its user and actor become the session's user.
    pub audit: audit_log::Model,
}

impl Rotation {
    /// The session as the rotation leaves it.
    pub(crate) fn apply(&self, mut session: session::Model) -> session::Model {
        session.refresh_counter += 1;
        session.refreshed_at = Some(self.now);
        session.last_used_at = self.now;
        session.expires_at = self.expires_at;
        session
    }

    /// The audit row, by the session's user.
    pub(crate) fn audit_by(&self, user_id: Uuid) -> audit_log::Model {
        audit_log::Model { user_id: Some(user_id), actor_id: Some(user_id), ..self.audit.clone() }
    }
}

/// [`ROTATE`], its audit row, and the rotated session with its user, through `conn`, a
/// transaction. `None` when it did not rotate (the counter had moved on, the session is
/// revoked or expired, the user may no longer hold it): nothing is written then.
pub async fn rotate(conn: &impl crate::db::Db, r: &Rotation) -> Result<Option<(session::Model, user::Model)>, Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("{ROTATE} RETURNING user_id"));
    let backend = conn.get_database_backend();
    let values = [r.now.into(), r.expires_at.into(), r.session_id.into(), r.counter.into()];
    let Some(row) = conn.query_one_raw(Statement::from_sql_and_values(backend, sql, values)).await.or_db()? else {
        return Ok(None);
    };
    let user_id: Uuid = row.try_get_by_index(0).or_db()?;
    super::audit::insert(conn, r.audit_by(user_id)).await?;
    with_user_as_stored(conn, r.session_id).await
}
