//! The queries services run. Every function takes any connection or transaction, so a
//! service decides what one transaction covers.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, Statement,
};
use uuid::Uuid;

use crate::entity::{audit_log, profile, refresh_token, session, user};

pub mod admin;

/// Builds the `(session, user)` of a [`sessions::with_user`] row, reading column
/// `at + i` with `$row.$get(at + i)?`; shared by the pool's decoder and SQLite's direct
/// read, and the struct literals stop compiling if a column is added to either model.
#[macro_export]
#[doc(hidden)]
macro_rules! session_and_user {
    ($row:ident . $get:ident, $at:expr) => {
        (
            $crate::entity::session::Model {
                id: $row.$get($at)?,
                user_id: $row.$get($at + 1)?,
                created_at: $row.$get($at + 2)?,
                last_used_at: $row.$get($at + 3)?,
                expires_at: $row.$get($at + 4)?,
                revoked_at: $row.$get($at + 5)?,
                ip: $row.$get($at + 6)?,
                user_agent: $row.$get($at + 7)?,
                aal: $row.$get($at + 8)?,
            },
            $crate::entity::user::Model {
                id: $row.$get($at + 9)?,
                email: $row.$get($at + 10)?,
                password_hash: $row.$get($at + 11)?,
                full_name: $row.$get($at + 12)?,
                phone: $row.$get($at + 13)?,
                email_verified_at: $row.$get($at + 14)?,
                phone_verified_at: $row.$get($at + 15)?,
                is_active: $row.$get($at + 16)?,
                role: $row.$get($at + 17)?,
                token_version: $row.$get($at + 18)?,
                last_login_at: $row.$get($at + 19)?,
                created_at: $row.$get($at + 20)?,
                updated_at: $row.$get($at + 21)?,
                deleted_at: $row.$get($at + 22)?,
                new_email: $row.$get($at + 23)?,
            },
        )
    };
}

/// Builds the refresh token of a [`refresh_tokens::by_hash`] or
/// [`refresh_tokens::with_session`] row (its first five columns), as
/// [`session_and_user!`] does.
#[macro_export]
#[doc(hidden)]
macro_rules! refresh_token_row {
    ($row:ident . $get:ident) => {
        $crate::entity::refresh_token::Model {
            token_hash: $row.$get(0)?,
            session_id: $row.$get(1)?,
            created_at: $row.$get(2)?,
            used_at: $row.$get(3)?,
            revoked: $row.$get(4)?,
        }
    };
}

/// The columns [`session_and_user!`] reads, from `sessions s` and `users u`.
pub(crate) const SESSION_AND_USER: &str =
    "s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.ip, \
     s.user_agent, s.aal, u.id, u.email, u.password_hash, u.full_name, u.phone, u.email_verified_at, \
     u.phone_verified_at, u.is_active, u.role, u.token_version, u.last_login_at, u.created_at, u.updated_at, \
     u.deleted_at, u.new_email";

/// A constant query with one parameter, written `{p}` in `template`: `?` on SQLite,
/// `$1` on PostgreSQL. Built once per process (`cell`), so hot paths build nothing.
fn one_parameter_sql(
    cell: &'static std::sync::OnceLock<[String; 2]>,
    backend: DbBackend,
    template: fn(&str) -> String,
) -> &'static str {
    let [sqlite, postgres] = cell.get_or_init(|| [template("?"), template("$1")]);
    if backend == DbBackend::Postgres {
        postgres
    } else {
        sqlite
    }
}

/// Users.
pub mod users {
    use super::*;

    /// Inserts a user; a taken email fails with a unique violation on `users_email_key`.
    pub async fn insert(conn: &impl ConnectionTrait, row: user::ActiveModel) -> Result<user::Model, DbErr> {
        row.insert(conn).await
    }

    /// A user by id, deleted or not.
    pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find_by_id(id).one(conn).await
    }

    /// A user by normalised email, deleted or not.
    pub async fn by_email(conn: &impl ConnectionTrait, email: &str) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find().filter(user::Column::Email.eq(email)).one(conn).await
    }

    /// Increments `token_version`, so every access token issued before fails at once.
    pub async fn bump_token_version(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), DbErr> {
        user::Entity::update_many()
            .col_expr(user::Column::TokenVersion, Expr::col(user::Column::TokenVersion).add(1))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Replaces the password hash (a re-hash or a password change).
    pub async fn set_password_hash(
        conn: &impl ConnectionTrait,
        id: Uuid,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Records a successful sign-in.
    pub async fn touch_login(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), DbErr> {
        user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(conn)
            .await?;
        Ok(())
    }
}

/// Profiles.
pub mod profiles {
    use super::*;

    /// The profile of a user.
    pub async fn by_user(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Option<profile::Model>, DbErr> {
        profile::Entity::find().filter(profile::Column::UserId.eq(user_id)).one(conn).await
    }
}

/// Sessions (refresh-token families).
pub mod sessions {
    use super::*;

    /// The query of [`with_user`]; `$1` is the session id (`?` on SQLite). Its columns
    /// are read by position by [`session_and_user!`](crate::session_and_user).
    pub(crate) fn with_user_sql(backend: DbBackend) -> &'static str {
        static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        one_parameter_sql(&SQL, backend, |p| {
            format!("SELECT {SESSION_AND_USER} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = {p}")
        })
    }

    /// A session together with its user, in one query. Every authenticated request runs
    /// it, so the SQL is a constant (no query building, and the prepared statement is
    /// reused from each connection's cache) and columns are read by position.
    pub async fn with_user(
        conn: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<Option<(session::Model, user::Model)>, DbErr> {
        let backend = conn.get_database_backend();
        let sql = with_user_sql(backend);
        let Some(r) = conn.query_one(Statement::from_sql_and_values(backend, sql, [id.into()])).await? else {
            return Ok(None);
        };
        Ok(Some(crate::session_and_user!(r.try_get_by_index, 0)))
    }

    /// A session by id.
    pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<session::Model>, DbErr> {
        session::Entity::find_by_id(id).one(conn).await
    }

    /// The user's sessions that are neither revoked nor expired, oldest first.
    pub async fn active_for_user(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<session::Model>, DbErr> {
        session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .order_by_asc(session::Column::CreatedAt)
            .order_by_asc(session::Column::Id)
            .all(conn)
            .await
    }

    /// Revokes one session if it is still live; tells whether it was.
    pub async fn revoke(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<bool, DbErr> {
        let res = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
        refresh_tokens::revoke_session(conn, id).await?;
        Ok(res.rows_affected == 1)
    }

    /// Revokes every live session of a user; returns how many.
    pub async fn revoke_all_for_user(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let res = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
        Ok(res.rows_affected)
    }

    /// Marks a session used by a refresh and extends its lifetime.
    pub async fn touch(
        conn: &impl ConnectionTrait,
        id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
            .filter(session::Column::Id.eq(id))
            .exec(conn)
            .await?;
        Ok(())
    }
}

/// Refresh tokens, by SHA-256 hash.
pub mod refresh_tokens {
    use super::*;

    /// A token by hash.
    pub async fn by_hash(conn: &impl ConnectionTrait, hash: &str) -> Result<Option<refresh_token::Model>, DbErr> {
        refresh_token::Entity::find_by_id(hash.to_owned()).one(conn).await
    }

    /// The query of [`with_session`]; its columns are read by position, the token's by
    /// [`refresh_token_row!`](crate::refresh_token_row), then the session's and user's
    /// by [`session_and_user!`](crate::session_and_user) from column 5.
    pub(crate) fn with_session_sql(backend: DbBackend) -> &'static str {
        static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        one_parameter_sql(&SQL, backend, |p| {
            format!(
                "SELECT t.token_hash, t.session_id, t.created_at, t.used_at, t.revoked, {SESSION_AND_USER} \
                 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
                 WHERE t.token_hash = {p}"
            )
        })
    }

    /// A token by hash with its session and the session's user, in one query: what
    /// every refresh reads first.
    pub async fn with_session(
        conn: &impl ConnectionTrait,
        hash: &str,
    ) -> Result<Option<(refresh_token::Model, session::Model, user::Model)>, DbErr> {
        let backend = conn.get_database_backend();
        let statement = Statement::from_sql_and_values(backend, with_session_sql(backend), [hash.into()]);
        let Some(r) = conn.query_one(statement).await? else {
            return Ok(None);
        };
        let (session, user) = crate::session_and_user!(r.try_get_by_index, 5);
        Ok(Some((crate::refresh_token_row!(r.try_get_by_index), session, user)))
    }

    /// The session's live token: the one not yet used.
    pub async fn head(conn: &impl ConnectionTrait, session_id: Uuid) -> Result<Option<refresh_token::Model>, DbErr> {
        refresh_token::Entity::find()
            .filter(refresh_token::Column::SessionId.eq(session_id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::Revoked.eq(false))
            .one(conn)
            .await
    }

    /// Retires the token if, and only if, it is still live. This conditional update is
    /// the guard that keeps one chain per session: of two concurrent rotations of the
    /// same token, on one node or many, exactly one sees `true`.
    pub async fn retire(conn: &impl ConnectionTrait, hash: &str, now: DateTime<Utc>) -> Result<bool, DbErr> {
        Ok(retire_live_matching(conn, refresh_token::Column::TokenHash.eq(hash), now).await? == 1)
    }

    /// Retires a session's live token, whichever it is at this moment; `false` when it
    /// has none. A refresh inside the reuse interval rotates the chain's head this way.
    pub async fn retire_live(conn: &impl ConnectionTrait, session_id: Uuid, now: DateTime<Utc>) -> Result<bool, DbErr> {
        Ok(retire_live_matching(conn, refresh_token::Column::SessionId.eq(session_id), now).await? >= 1)
    }

    async fn retire_live_matching(
        conn: &impl ConnectionTrait,
        which: sea_orm::sea_query::SimpleExpr,
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let res = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
            .filter(which)
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::Revoked.eq(false))
            .exec(conn)
            .await?;
        Ok(res.rows_affected)
    }

    /// Which token a [`Rotation`] retires.
    #[derive(Debug, Clone)]
    pub enum Retire {
        /// The presented one, by its hash, if it is still live.
        Presented(String),
        /// The session's live token, whichever it is when the write runs (a refresh
        /// inside the reuse interval follows the chain this way).
        Live,
    }

    /// What one refresh-token rotation writes, in one transaction (SPEC §4.3).
    #[derive(Debug, Clone)]
    pub struct Rotation {
        pub retire: Retire,
        pub new_hash: String,
        pub session_id: Uuid,
        pub now: DateTime<Utc>,
        /// The session's new expiry.
        pub expires_at: DateTime<Utc>,
        pub audit: audit_log::Model,
    }

    /// Rotates through `conn`, a transaction: retires the token, inserts the new one,
    /// extends the session and appends the audit row. `false` when the token to retire
    /// was no longer live; nothing is written then.
    pub async fn rotate(conn: &impl ConnectionTrait, r: &Rotation) -> Result<bool, DbErr> {
        let retired = match &r.retire {
            Retire::Presented(hash) => retire(conn, hash, r.now).await?,
            Retire::Live => retire_live(conn, r.session_id, r.now).await?,
        };
        if !retired {
            return Ok(false);
        }
        insert(conn, &r.new_hash, r.session_id, r.now).await?;
        super::sessions::touch(conn, r.session_id, r.now, r.expires_at).await?;
        super::audit::insert(conn, r.audit.clone().into()).await?;
        Ok(true)
    }

    /// Inserts a new live token for a session.
    pub async fn insert(
        conn: &impl ConnectionTrait,
        hash: &str,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let row = refresh_token::ActiveModel {
            token_hash: sea_orm::Set(hash.to_owned()),
            session_id: sea_orm::Set(session_id),
            created_at: sea_orm::Set(now),
            used_at: sea_orm::Set(None),
            revoked: sea_orm::Set(false),
        };
        // Nothing to read back: one statement, no RETURNING or re-select.
        refresh_token::Entity::insert(row).exec_without_returning(conn).await?;
        Ok(())
    }

    /// Revokes every token of a session.
    pub async fn revoke_session(conn: &impl ConnectionTrait, session_id: Uuid) -> Result<(), DbErr> {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::Revoked, Expr::value(true))
            .filter(refresh_token::Column::SessionId.eq(session_id))
            .filter(refresh_token::Column::Revoked.eq(false))
            .exec(conn)
            .await?;
        Ok(())
    }
}

/// A rotation in one statement on PostgreSQL ([`crate::PgKept::rotate`]), for a presented
/// token and for the session's live one; `$2` picks the token to retire.
macro_rules! rotate_sql {
    ($which:literal) => {
        concat!(
            "WITH retired AS (UPDATE refresh_tokens SET used_at = $1 WHERE ",
            $which,
            " = $2 AND used_at IS NULL AND revoked = false RETURNING 1), ",
            "added AS (INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at, revoked) ",
            "SELECT $3, $4, $1, NULL::timestamptz, false WHERE EXISTS (SELECT 1 FROM retired)), ",
            "touched AS (UPDATE sessions SET last_used_at = $1, expires_at = $5 ",
            "WHERE id = $4 AND EXISTS (SELECT 1 FROM retired)), ",
            "audited AS (INSERT INTO audit_log (id, created_at, event, user_id, actor_id, ip, user_agent, ",
            "request_id, detail) SELECT $6, $7, $8, $9, $10, $11, $12, $13, $14 ",
            "WHERE EXISTS (SELECT 1 FROM retired)) ",
            "SELECT count(*) FROM retired"
        )
    };
}
pub(crate) const ROTATE_PRESENTED: &str = rotate_sql!("token_hash");
pub(crate) const ROTATE_LIVE: &str = rotate_sql!("session_id");

/// The audit log.
pub mod audit {
    use super::*;

    /// Appends one event.
    pub async fn insert(conn: &impl ConnectionTrait, row: audit_log::ActiveModel) -> Result<(), DbErr> {
        audit_log::Entity::insert(row).exec_without_returning(conn).await?;
        Ok(())
    }

    /// A user's events, newest first.
    pub async fn for_user(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<audit_log::Model>, DbErr> {
        audit_log::Entity::find()
            .filter(audit_log::Column::UserId.eq(user_id))
            .order_by_desc(audit_log::Column::Id)
            .all(conn)
            .await
    }
}
