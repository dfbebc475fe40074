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

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

use crate::entity::{session, user};
use crate::query::sessions::{Rotation, ROTATE};

/// Why a statement on a kept connection failed.
#[derive(Debug)]
pub(crate) enum KeptError {
    /// No connection could be had from the pool (it timed out, is closed, or the
    /// database refused a new connection): asking the pool again would wait again.
    Acquire(sqlx::Error),
    /// The statement failed on its connection (see [`crate::error::connection_died`]).
    Statement(sqlx::Error),
}

impl KeptError {
    /// The domain error: a connection that could not be had is `Unavailable` whatever the
    /// cause.
    pub(crate) fn into_error(self) -> tessera_domain::Error {
        match self {
            KeptError::Acquire(e) => match crate::error::sqlx_error(&e) {
                tessera_domain::Error::Internal(cause) => tessera_domain::Error::Unavailable(cause),
                other => other,
            },
            KeptError::Statement(e) => crate::error::sqlx_error(&e),
        }
    }
}

/// A kept connection unused this long goes back to the pool.
pub(crate) const KEEP_IDLE: Duration = Duration::from_secs(5);

/// Pool connections kept for the hot statements on PostgreSQL.
pub(crate) struct PgKept {
    pool: PgPool,
    kept: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    max: usize,
}

impl PgKept {
    /// Keeps up to `max` connections of `db`'s pool when it is PostgreSQL (none for 0:
    /// every statement then takes one from the pool); `None` for SQLite. Starts a task
    /// on the current runtime that hands idle ones back, and all of them when the pool
    /// is closed.
    pub(crate) fn beside(db: &DatabaseConnection, max: usize) -> Option<Arc<PgKept>> {
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
    pub(crate) async fn session_with_user(&self, id: Uuid) -> Result<Option<(session::Model, user::Model)>, KeptError> {
        let sql = crate::query::sessions::with_user_sql(DbBackend::Postgres);
        let row = self.fetch_optional(sqlx::query(sql).bind(id)).await?;
        row.map(|row| {
            let row = Columns(&row);
            Ok(crate::session_and_user!(row.get, 0))
        })
        .transpose()
        .map_err(KeptError::Statement)
    }

    /// Rotates in one statement, one round trip: [`ROTATE`], the audit row and the read of
    /// the rotated session with its user, as data-modifying CTEs (atomic as any single
    /// statement is). A concurrent rotation of the same token waits for the session row's
    /// lock, then finds the counter moved and changes nothing, so its audit row is not
    /// written either. `None` when it did not rotate.
    pub(crate) async fn rotate(&self, r: &Rotation) -> Result<Option<(session::Model, user::Model)>, KeptError> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "WITH s AS ({ROTATE} RETURNING *), audited AS (INSERT INTO audit_log (id, created_at, event, \
                 user_id, actor_id, ip, user_agent, request_id, detail) SELECT $5, $6, $7, s.user_id, s.user_id, \
                 $8, $9, $10, $11 FROM s) SELECT {} FROM s JOIN users u ON u.id = s.user_id",
                crate::query::SESSION_AND_USER
            )
        });
        let a = &r.audit;
        // Built once from constants: a `&'static str`, the only SQL sqlx takes unasserted.
        let query = sqlx::query(sql.as_str())
            .bind(r.now)
            .bind(r.expires_at)
            .bind(r.session_id)
            .bind(r.counter)
            .bind(a.id)
            .bind(a.created_at)
            .bind(a.event.as_str())
            .bind(a.ip.as_deref())
            .bind(a.user_agent.as_deref())
            .bind(a.request_id.as_deref())
            .bind(&a.detail);
        let row = self.fetch_optional(query).await?;
        row.map(|row| {
            let row = Columns(&row);
            Ok(crate::session_and_user!(row.get, 0))
        })
        .transpose()
        .map_err(KeptError::Statement)
    }

    /// Runs one statement on a kept connection (or one from the pool) and keeps the
    /// connection afterwards when the statement completed.
    async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<PgRow>, KeptError> {
        if self.pool.is_closed() {
            self.hand_back(Duration::ZERO);
            return Err(KeptError::Acquire(sqlx::Error::PoolClosed));
        }
        let kept = self.kept.lock().ok().and_then(|mut kept| kept.pop());
        let mut conn = match kept {
            Some((conn, _)) => conn,
            None => self.pool.acquire().await.map_err(KeptError::Acquire)?,
        };
        let row = query.fetch_optional(&mut *conn).await;
        match &row {
            Err(e) if crate::error::connection_died(e) => {
                // The database restarted or the network dropped it: this connection is
                // closed, and the kept ones, most likely dead with it, go back to the pool,
                // which checks each before handing it out again.
                crate::error::note_dead_connection();
                conn.close_on_drop();
                drop(conn);
                self.hand_back(Duration::ZERO);
            }
            // The database's own answer (an error included) leaves the connection ready
            // for the next statement.
            Ok(_) | Err(sqlx::Error::Database(_)) => self.keep(conn),
            // Anything else (a decoding error...) goes back through the pool's checks.
            Err(_) => drop(conn),
        }
        row.map_err(KeptError::Statement)
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
