//! The queries of the administration surface: the user list and search, bulk changes,
//! the last-admin guard, analytics aggregates, API keys and audit-log pages. Every count
//! reads an index; none loads rows to count them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, ExprTrait, FromQueryResult, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Select, Statement,
};
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::{api_key, audit_log, session, user};
use crate::error::OrDb;
use crate::migration::INACTIVE;
use crate::pii::Pii;

/// `is_active = true|false` as literal SQL, so that the inactive-users partial index
/// applies (a bound parameter would hide the value from SQLite's planner).
fn is_active(active: bool) -> SimpleExpr {
    if active {
        Expr::cust("is_active = true")
    } else {
        Expr::cust(INACTIVE)
    }
}

/// `SELECT COUNT(*)` of a query, without loading its rows.
async fn count<E: EntityTrait>(conn: &impl ConnectionTrait, select: Select<E>) -> Result<u64, Error> {
    let n: Option<i64> =
        select.select_only().column_as(Expr::cust("COUNT(*)"), "n").into_tuple().one(conn).await.or_db()?;
    Ok(Ord::max(n.unwrap_or(0), 0) as u64)
}

/// The UTC calendar day (`YYYY-MM-DD`) of a timestamp column. The one place the two
/// backends need different SQL: SQLite stores RFC 3339 text, PostgreSQL `timestamptz`.
fn day_of(backend: DatabaseBackend, column: &str) -> SimpleExpr {
    match backend {
        DatabaseBackend::Postgres => Expr::cust(format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')")),
        _ => Expr::cust(format!("substr({column}, 1, 10)")),
    }
}

/// The filters of the admin user list.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// A lower-case prefix of the email address or of the full name.
    pub prefix: Option<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

impl UserFilter {
    fn is_empty(&self) -> bool {
        self.prefix.is_none() && self.role.is_none() && self.is_active.is_none()
    }

    fn condition(&self, pii: &Pii) -> Condition {
        let mut cond = Condition::all().add(user::Column::DeletedAt.is_null());
        if let Some(p) = &self.prefix {
            // A range on the index is a prefix match: bytewise on SQLite, and on
            // PostgreSQL in the database's collation (exact with C/POSIX collation).
            // Encrypted addresses have no order: with PII encryption an address matches
            // only whole, through its blind index (and rows still in plaintext by prefix).
            let hi = format!("{p}\u{10FFFF}");
            let name = || Expr::expr(Func::lower(Expr::col(user::Column::FullName)));
            let mut email =
                Condition::all().add(user::Column::Email.gte(p.as_str())).add(user::Column::Email.lt(hi.as_str()));
            let indexes = pii.indexes(p);
            if !indexes.is_empty() {
                email = email.add(user::Column::Email.not_like(format!("{}%", crate::pii::PREFIX)));
            }
            let mut any = Condition::any()
                .add(email)
                .add(Condition::all().add(name().gte(p.as_str())).add(name().lt(hi.as_str())));
            if !indexes.is_empty() {
                any = any.add(user::Column::EmailIndex.is_in(indexes));
            }
            cond = cond.add(any);
        }
        if let Some(role) = &self.role {
            cond = cond.add(user::Column::Role.eq(role.as_str()));
        }
        if let Some(active) = self.is_active {
            cond = cond.add(is_active(active));
        }
        cond
    }
}

/// Users for administration.
pub mod users {
    use super::*;

    /// One page of live (not soft-deleted) users, newest first: after `skip` others, or
    /// (keyset) after the user with the given `created_at` and id.
    pub async fn page(
        conn: &impl Db,
        filter: &UserFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<user::Model>, Error> {
        let mut cond = filter.condition(conn.pii());
        if let Some((at, id)) = after {
            // A row-value comparison: both backends seek the (created_at, id) index to the
            // cursor, where `created_at < at OR (created_at = at AND id < id)` scanned it
            // from the newest row (44 ms at 300,000 rows deep on SQLite, 0.1 ms this way).
            let key = Expr::tuple([Expr::col(user::Column::CreatedAt), Expr::col(user::Column::Id)]);
            cond = cond.add(key.lt(Expr::tuple([Expr::value(at), Expr::value(id)])));
        }
        let rows = user::Entity::find()
            .filter(cond)
            .order_by_desc(user::Column::CreatedAt)
            .order_by_desc(user::Column::Id)
            .offset(skip)
            .limit(limit)
            .all(conn)
            .await
            .or_db()?;
        rows.into_iter().map(|u| conn.pii().open_user(u)).collect()
    }

    /// How many live users match. Unfiltered or "active" only, it comes from the
    /// trigger-kept totals; otherwise it is a count on an index.
    pub async fn total(conn: &impl Db, filter: &UserFilter) -> Result<u64, Error> {
        let only_active = filter.is_active == Some(true) && filter.prefix.is_none() && filter.role.is_none();
        if filter.is_empty() || only_active {
            let t = analytics::user_totals(conn).await?;
            return Ok(t.live().saturating_sub(if only_active { t.inactive } else { 0 }));
        }
        count(conn, user::Entity::find().filter(filter.condition(conn.pii()))).await
    }

    /// Sets `updated_at` of the users and tells how many exist. A bulk change runs it
    /// first: it is a write, so SQLite takes its write lock before anything is read.
    /// On PostgreSQL the rows are locked first in id order, so that two bulk changes
    /// over overlapping users never deadlock.
    pub async fn touch(conn: &impl ConnectionTrait, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64, Error> {
        if conn.get_database_backend() == DatabaseBackend::Postgres {
            let _: Vec<Uuid> = user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .filter(user::Column::Id.is_in(ids.iter().copied()))
                .order_by_asc(user::Column::Id)
                .lock_exclusive()
                .into_tuple()
                .all(conn)
                .await
                .or_db()?;
        }
        let res = user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .exec(conn)
            .await
            .or_db()?;
        Ok(res.rows_affected)
    }

    /// The id and role of each of `ids` that exists (deleted or not).
    pub async fn roles_of(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>, Error> {
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Role)
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .into_tuple()
            .all(conn)
            .await
            .or_db()
    }

    /// Serialises changes that could remove the last admin. On PostgreSQL it locks the
    /// active admins' rows (in id order, so two such transactions never deadlock); SQLite
    /// has one writer at a time already, and the caller's first statement is a write.
    pub async fn lock_admins(conn: &impl ConnectionTrait) -> Result<(), Error> {
        if conn.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let _: Vec<Uuid> = active_admins()
            .select_only()
            .column(user::Column::Id)
            .order_by_asc(user::Column::Id)
            .lock_exclusive()
            .into_tuple()
            .all(conn)
            .await
            .or_db()?;
        Ok(())
    }

    fn active_admins() -> Select<user::Entity> {
        user::Entity::find()
            .filter(user::Column::Role.eq("admin"))
            .filter(user::Column::IsActive.eq(true))
            .filter(user::Column::DeletedAt.is_null())
    }

    /// How many admins can sign in.
    pub async fn active_admin_count(conn: &impl ConnectionTrait) -> Result<u64, Error> {
        count(conn, active_admins()).await
    }

    /// Activates or deactivates users; deactivation also voids their access tokens,
    /// retires their one-time tokens and forgets a pending email change.
    pub async fn set_active(
        conn: &impl ConnectionTrait,
        ids: &[Uuid],
        active: bool,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let mut update = user::Entity::update_many()
            .col_expr(user::Column::IsActive, Expr::value(active))
            .col_expr(user::Column::UpdatedAt, Expr::value(now));
        if !active {
            update = update
                .col_expr(user::Column::TokenVersion, Expr::col(user::Column::TokenVersion).add(1))
                .col_expr(user::Column::NewEmail, Expr::value(Option::<String>::None))
                .col_expr(user::Column::NewEmailIndex, Expr::value(Option::<String>::None));
        }
        let n = update.filter(user::Column::Id.is_in(ids.iter().copied())).exec(conn).await.or_db()?.rows_affected;
        if !active {
            crate::query::one_time_tokens::retire_for_users(conn, ids, now).await?;
        }
        Ok(n)
    }

    /// Gives users a role.
    pub async fn set_role(
        conn: &impl ConnectionTrait,
        ids: &[Uuid],
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let res = user::Entity::update_many()
            .col_expr(user::Column::Role, Expr::value(role))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .exec(conn)
            .await
            .or_db()?;
        Ok(res.rows_affected)
    }

    /// Hard-deletes users; their profile and sessions go by cascade, and nothing else
    /// keeps their address, phone, ip or user agent (see [`crate::query::privacy::forget`]).
    pub async fn delete(conn: &impl crate::db::Db, ids: &[Uuid]) -> Result<u64, Error> {
        let removed = user::Entity::delete_many()
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .exec_with_returning(conn)
            .await
            .or_db()?;
        let n = removed.len() as u64;
        crate::query::privacy::forget(conn, removed).await?;
        Ok(n)
    }

    /// Revokes every live session of the users.
    pub async fn revoke_sessions(conn: &impl ConnectionTrait, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64, Error> {
        let res = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::UserId.is_in(ids.iter().copied()))
            .filter(session::Column::RevokedAt.is_null())
            .exec(conn)
            .await
            .or_db()?;
        Ok(res.rows_affected)
    }
}

/// The aggregates of the analytics dashboard.
pub mod analytics {
    use super::*;

    /// The user totals, kept by triggers in `user_counts` (migration 4): a sum over a
    /// few rows, exact, and the same whatever the number of users.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct UserTotals {
        /// Every user row, soft-deleted or not.
        pub users: u64,
        /// Soft-deleted users.
        pub deleted: u64,
        /// Live users who are deactivated.
        pub inactive: u64,
        /// Live users whose email is not verified.
        pub unverified: u64,
        /// Live users with the admin role.
        pub admins: u64,
    }

    impl UserTotals {
        /// Users not soft-deleted.
        pub fn live(&self) -> u64 {
            self.users.saturating_sub(self.deleted)
        }
    }

    /// Reads the user totals.
    pub async fn user_totals(conn: &impl ConnectionTrait) -> Result<UserTotals, Error> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(users), 0) AS BIGINT), CAST(COALESCE(SUM(deleted), 0) AS BIGINT), \
            CAST(COALESCE(SUM(inactive), 0) AS BIGINT), CAST(COALESCE(SUM(unverified), 0) AS BIGINT), \
            CAST(COALESCE(SUM(admins), 0) AS BIGINT) FROM user_counts";
        let backend = conn.get_database_backend();
        let Some(r) = conn.query_one_raw(Statement::from_string(backend, SQL)).await.or_db()? else {
            return Ok(UserTotals::default());
        };
        let n = |i: usize| -> Result<u64, Error> { Ok(Ord::max(r.try_get_by_index::<i64>(i).or_db()?, 0) as u64) };
        Ok(UserTotals { users: n(0)?, deleted: n(1)?, inactive: n(2)?, unverified: n(3)?, admins: n(4)? })
    }

    /// Sessions neither revoked nor expired.
    pub async fn active_sessions(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, Error> {
        let q = session::Entity::find()
            .filter(session::Column::ExpiresAt.gt(now))
            .filter(session::Column::RevokedAt.is_null());
        count(conn, q).await
    }

    /// Audit events of one kind since a moment.
    pub async fn events_since(conn: &impl ConnectionTrait, event: &str, since: DateTime<Utc>) -> Result<u64, Error> {
        let q = audit_log::Entity::find()
            .filter(audit_log::Column::Event.eq(event))
            .filter(audit_log::Column::CreatedAt.gte(since));
        count(conn, q).await
    }

    #[derive(FromQueryResult)]
    struct DayCount {
        day: String,
        n: i64,
    }

    async fn per_day<E: EntityTrait>(
        conn: &impl ConnectionTrait,
        select: Select<E>,
        column: &str,
    ) -> Result<Vec<(String, u64)>, Error> {
        let day = day_of(conn.get_database_backend(), column);
        let rows = select
            .select_only()
            .column_as(day.clone(), "day")
            .column_as(Expr::cust("COUNT(*)"), "n")
            .group_by(day)
            .into_model::<DayCount>()
            .all(conn)
            .await
            .or_db()?;
        Ok(rows.into_iter().map(|r| (r.day, Ord::max(r.n, 0) as u64)).collect())
    }

    /// Sign-ups per UTC day in `[since, until)` (every account created, deleted since
    /// or not).
    async fn signups_per_day(
        conn: &impl ConnectionTrait,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, u64)>, Error> {
        let mut q = user::Entity::find().filter(user::Column::CreatedAt.gte(since));
        if let Some(until) = until {
            q = q.filter(user::Column::CreatedAt.lt(until));
        }
        per_day(conn, q, "created_at").await
    }

    /// Audit events of one kind per UTC day in `[since, until)`.
    async fn events_per_day(
        conn: &impl ConnectionTrait,
        event: &str,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, u64)>, Error> {
        let mut q = audit_log::Entity::find()
            .filter(audit_log::Column::Event.eq(event))
            .filter(audit_log::Column::CreatedAt.gte(since));
        if let Some(until) = until {
            q = q.filter(audit_log::Column::CreatedAt.lt(until));
        }
        per_day(conn, q, "created_at").await
    }

    /// A series of counts per UTC day.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum DailySeries {
        /// Accounts created.
        Signups,
        /// Audit events of one kind (`login.success`, `login.failure`).
        Events(&'static str),
    }

    /// How long the counts of the days before today are kept. They change only when an
    /// account is hard-deleted (its sign-up leaves the count): at most this late.
    const PAST_DAYS_TTL: std::time::Duration = std::time::Duration::from_secs(300);

    type Window = (DailySeries, DateTime<Utc>, DateTime<Utc>);
    /// When a window's past days were read, and their counts.
    type PastDays = (std::time::Instant, Vec<(String, u64)>);

    /// The counts of whole past days, per series and window, kept by each store: a year
    /// of a million sign-ups is ~0.2–0.3 s to group, and those days are done.
    #[derive(Default)]
    pub struct DayCache {
        windows: std::sync::Mutex<std::collections::HashMap<Window, PastDays>>,
    }

    impl DayCache {
        /// The counts per day from `since` through today (`today` is its UTC midnight):
        /// the days before today from the cache (filled on a miss), today counted live.
        pub async fn series(
            &self,
            conn: &impl ConnectionTrait,
            series: DailySeries,
            since: DateTime<Utc>,
            today: DateTime<Utc>,
        ) -> Result<Vec<(String, u64)>, Error> {
            let key = (series, since, today);
            // A panic elsewhere while holding the lock leaves a usable map: take it.
            let windows = || self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let cached = windows().get(&key).filter(|(at, _)| at.elapsed() < PAST_DAYS_TTL).map(|(_, v)| v.clone());
            let count = |from: DateTime<Utc>, until: Option<DateTime<Utc>>| async move {
                match series {
                    DailySeries::Signups => signups_per_day(conn, from, until).await,
                    DailySeries::Events(event) => events_per_day(conn, event, from, until).await,
                }
            };
            let past = match cached {
                Some(past) => past,
                None if since >= today => Vec::new(),
                None => {
                    let past = count(since, Some(today)).await?;
                    let mut w = windows();
                    // Windows of other days are done with; a handful remain.
                    w.retain(|(_, _, t), (at, _)| *t == today && at.elapsed() < PAST_DAYS_TTL);
                    w.insert(key, (std::time::Instant::now(), past.clone()));
                    past
                }
            };
            let mut all = past;
            all.extend(count(Ord::max(today, since), None).await?);
            Ok(all)
        }
    }
}

/// The filters of an audit-log page.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    /// An exact event name, or a prefix ending in `.` (from `admin.*`).
    pub event: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only events older than this one (keyset pagination on the UUIDv7 id).
    pub before: Option<Uuid>,
}

/// The audit log, newest first.
pub async fn audit_page(conn: &impl Db, f: &AuditFilter, limit: u64) -> Result<Vec<audit_log::Model>, Error> {
    let mut q = audit_log::Entity::find();
    if let Some(id) = f.user_id {
        q = q.filter(audit_log::Column::UserId.eq(id));
    }
    match f.event.as_deref() {
        Some(prefix) if prefix.ends_with('.') => {
            // A range on the (event, …) index: every name that starts with the prefix.
            q = q
                .filter(audit_log::Column::Event.gte(prefix))
                .filter(audit_log::Column::Event.lt(format!("{prefix}\u{10FFFF}")));
        }
        Some(event) => q = q.filter(audit_log::Column::Event.eq(event)),
        None => {}
    }
    if let Some(from) = f.from {
        q = q.filter(audit_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = f.to {
        q = q.filter(audit_log::Column::CreatedAt.lt(to));
    }
    if let Some(before) = f.before {
        q = q.filter(audit_log::Column::Id.lt(before));
    }
    let rows = q.order_by_desc(audit_log::Column::Id).limit(limit).all(conn).await.or_db()?;
    super::audit::opened(conn, rows)
}

/// API keys.
pub mod api_keys {
    use super::*;

    /// Inserts a key.
    pub async fn insert(conn: &impl ConnectionTrait, row: api_key::Model) -> Result<(), Error> {
        api_key::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
        Ok(())
    }

    /// Every key, newest first.
    pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<api_key::Model>, Error> {
        api_key::Entity::find()
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::Id)
            .all(conn)
            .await
            .or_db()
    }

    /// A key by the SHA-256 of its secret.
    pub async fn by_hash(conn: &impl ConnectionTrait, hash: &str) -> Result<Option<api_key::Model>, Error> {
        api_key::Entity::find().filter(api_key::Column::KeyHash.eq(hash)).one(conn).await.or_db()
    }

    /// A key by id.
    pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<api_key::Model>, Error> {
        api_key::Entity::find_by_id(id).one(conn).await.or_db()
    }

    /// Revokes a key if it is live; tells whether it was.
    pub async fn revoke(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
        let res = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(conn)
            .await
            .or_db()?;
        Ok(res.rows_affected == 1)
    }

    /// Records a use.
    pub async fn touch(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(id))
            .exec(conn)
            .await
            .or_db()?;
        Ok(())
    }
}
