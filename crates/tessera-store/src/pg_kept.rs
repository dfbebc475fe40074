//! The statements every authenticated request and every refresh run on PostgreSQL, on
//! pool connections kept checked out between them.
//!
//! sqlx pings a connection each time it goes back to its pool: a second round trip, and
//! a second wake-up of a PostgreSQL backend, for every one-statement request. Connections
//! kept here skip that: after a statement that completed, a connection waits here for
//! the next one instead of going back. It goes back through the pool's own path (ping,
//! close if broken) when its statement failed other than by the database's answer, when
//! this already keeps as many as it may, after [`KEEP_IDLE`] unused, and when the pool
//! is closed. A request dropped mid-statement drops its connection the pool's way too.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

use crate::entity::{refresh_token, session, user};
use crate::query::refresh_tokens::{Retire, Rotation};

/// A kept connection unused this long goes back to the pool.
pub const KEEP_IDLE: Duration = Duration::from_secs(5);

/// Pool connections kept for the hot statements on PostgreSQL.
pub struct PgKept {
    pool: PgPool,
    kept: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    max: usize,
}

impl PgKept {
    /// Keeps up to `max` connections of `db`'s pool when it is PostgreSQL (none for 0:
    /// every statement then takes one from the pool); `None` for SQLite. Starts a task
    /// on the current runtime that hands idle ones back, and all of them when the pool
    /// is closed.
    pub fn beside(db: &DatabaseConnection, max: usize) -> Option<Arc<PgKept>> {
        if db.get_database_backend() != DbBackend::Postgres {
            return None;
        }
        let pool = db.get_postgres_connection_pool().clone();
        let kept = Arc::new(PgKept { pool: pool.clone(), kept: Mutex::new(Vec::new()), max });
        tokio::spawn(hand_back_idle(pool, Arc::downgrade(&kept)));
        Some(kept)
    }

    /// The session with this id and its user, as [`crate::query::sessions::with_user`]
    /// reads them.
    pub async fn session_with_user(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, sqlx::Error> {
        let sql = crate::query::sessions::with_user_sql(DbBackend::Postgres);
        let row = self.fetch_optional(sqlx::query(sql).bind(id)).await?;
        row.map(|row| {
            let row = Columns(&row);
            Ok(crate::session_and_user!(row.get, 0))
        })
        .transpose()
    }

    /// A refresh token by its hash with its session and user, as
    /// [`crate::query::refresh_tokens::with_session`] reads them.
    pub async fn refresh_token_with_session(
        &self,
        hash: &str,
    ) -> Result<Option<(refresh_token::Model, session::Model, user::Model)>, sqlx::Error> {
        let sql = crate::query::refresh_tokens::with_session_sql(DbBackend::Postgres);
        let row = self.fetch_optional(sqlx::query(sql).bind(hash)).await?;
        row.map(|row| {
            let row = Columns(&row);
            let (session, user) = crate::session_and_user!(row.get, 5);
            Ok((crate::refresh_token_row!(row.get), session, user))
        })
        .transpose()
    }

    /// Rotates in one statement (data-modifying CTEs, atomic as any single statement
    /// is): one round trip instead of a transaction's six. The guard is the conditional
    /// update of [`crate::query::refresh_tokens::retire`]: a concurrent rotation of the
    /// same token waits for its row lock, sees `used_at` set, retires nothing and so
    /// writes nothing. `false` when the token to retire was no longer live.
    pub async fn rotate(&self, r: &Rotation) -> Result<bool, sqlx::Error> {
        let a = &r.audit;
        let query = match &r.retire {
            Retire::Presented(hash) => sqlx::query(crate::query::ROTATE_PRESENTED).bind(r.now).bind(hash.as_str()),
            Retire::Live => sqlx::query(crate::query::ROTATE_LIVE).bind(r.now).bind(r.session_id),
        };
        let query = query
            .bind(r.new_hash.as_str())
            .bind(r.session_id)
            .bind(r.expires_at)
            .bind(a.id)
            .bind(a.created_at)
            .bind(a.event.as_str())
            .bind(a.user_id)
            .bind(a.actor_id)
            .bind(a.ip.as_deref())
            .bind(a.user_agent.as_deref())
            .bind(a.request_id.as_deref())
            .bind(&a.detail);
        let row = self.fetch_optional(query).await?;
        let retired: i64 = row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0);
        Ok(retired >= 1)
    }

    /// Runs one statement on a kept connection (or one from the pool) and keeps the
    /// connection afterwards when the statement completed.
    async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        if self.pool.is_closed() {
            self.hand_back(Duration::ZERO);
            return Err(sqlx::Error::PoolClosed);
        }
        let kept = self.kept.lock().ok().and_then(|mut kept| kept.pop());
        let mut conn = match kept {
            Some((conn, _)) => conn,
            None => self.pool.acquire().await?,
        };
        let row = query.fetch_optional(&mut *conn).await;
        // The database's own answer (an error included) leaves the connection ready for
        // the next statement; anything else (I/O, protocol) goes to the pool's checks.
        if matches!(row, Ok(_) | Err(sqlx::Error::Database(_))) {
            self.keep(conn);
        }
        row
    }

    fn keep(&self, conn: PoolConnection<Postgres>) {
        if self.pool.is_closed() {
            return;
        }
        let mut spare = Some(conn);
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() < self.max {
                kept.extend(spare.take().map(|c| (c, Instant::now())));
            }
        }
        drop(spare); // back to the pool, outside the lock
    }

    /// Hands back the connections unused for `idle` (all of them for zero).
    fn hand_back(&self, idle: Duration) {
        let idle_ones = match self.kept.lock() {
            Ok(mut kept) => {
                let (old, fresh): (Vec<_>, Vec<_>) = kept.drain(..).partition(|(_, since)| since.elapsed() >= idle);
                *kept = fresh;
                old
            }
            Err(_) => Vec::new(),
        };
        drop(idle_ones);
    }
}

/// Every second, hands back the connections idle for [`KEEP_IDLE`]; all of them, and for
/// good, once the pool is closed. Ends when the [`PgKept`] is dropped.
async fn hand_back_idle(pool: PgPool, kept: Weak<PgKept>) {
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = &mut closed => {
                if let Some(kept) = kept.upgrade() {
                    kept.hand_back(Duration::ZERO);
                }
                return;
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => match kept.upgrade() {
                Some(kept) => kept.hand_back(KEEP_IDLE),
                None => return,
            },
        }
    }
}

/// A row read by position, as the models' columns.
struct Columns<'a>(&'a PgRow);

impl Columns<'_> {
    fn get<'r, T>(&'r self, index: usize) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        self.0.try_get(index)
    }
}
