//! The connections a [`Store`](crate::Store) gives out: [`Reader`], [`Writer`] and a
//! [`Tx`], each carrying the store's PII cipher ([`Db`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::prelude::async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tessera_domain::Error;

use crate::error::{db_connection_died, note_dead_connection, OrDb};
use crate::events::EventTap;
use crate::pii::Pii;

/// The connection for reads outside a transaction ([`Store::reader`](crate::Store::reader)). A read whose
/// connection died (the database restarted, the network dropped it) runs once more, on
/// another connection, within what is left of the pool timeout: a read is safe to repeat.
pub struct Reader {
    pub(crate) db: DatabaseConnection,
    pub(crate) budget: Duration,
    pub(crate) pii: Arc<Pii>,
}

/// A connection of a [`Store`](crate::Store) ([`Reader`], [`Writer`], a [`Tx`]): what the
/// operations that read or write personal data take, so that they can encrypt and
/// decrypt it with the store's [`Pii`] cipher.
pub trait Db: ConnectionTrait {
    /// The store's PII cipher.
    fn pii(&self) -> &Pii;

    /// The audit events that also become webhook events.
    fn events(&self) -> &EventTap {
        &crate::events::NO_EVENTS
    }
}

impl Db for Reader {
    fn pii(&self) -> &Pii {
        &self.pii
    }
}

impl Db for Tx {
    fn pii(&self) -> &Pii {
        &self.1
    }

    fn events(&self) -> &EventTap {
        &self.2
    }
}

impl Db for Writer {
    fn pii(&self) -> &Pii {
        &self.pii
    }

    fn events(&self) -> &EventTap {
        &self.events
    }
}

/// The connection of single writes outside a transaction ([`Store::writer`](crate::Store::writer)).
pub struct Writer {
    pub(crate) db: DatabaseConnection,
    /// How long a transaction may wait to begin, retries included (the pool timeout).
    pub(crate) budget: Duration,
    pub(crate) pii: Arc<Pii>,
    pub(crate) events: Arc<EventTap>,
}

impl Writer {
    /// Begins a transaction. A `BEGIN` whose connection died is sent once more on another
    /// connection (nothing has happened yet), within the pool timeout.
    ///
    /// On SQLite the transaction is `IMMEDIATE`: it takes the file's write lock at once,
    /// waiting in the busy handler while another connection (a rotation on the direct
    /// writer, another node or command on the file) holds it. A deferred transaction that
    /// read first took a snapshot, and its first write failed outright with
    /// `SQLITE_BUSY_SNAPSHOT` (a 503) whenever another connection had committed since;
    /// the busy handler cannot wait that out. It also makes a read "for update" what it
    /// says on SQLite: no other connection writes until the transaction ends.
    /// (PostgreSQL ignores the mode.)
    pub(crate) async fn begin(&self) -> Result<Tx, Error> {
        let started = Instant::now();
        let tx = |t| Tx(t, self.pii.clone(), self.events.clone());
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        match self.db.begin_with_options(options).await {
            Err(e) if db_connection_died(&e) => {
                note_dead_connection();
                let left = self.budget.saturating_sub(started.elapsed());
                tokio::time::timeout(left, self.db.begin_with_options(options)).await.unwrap_or(Err(e)).or_db().map(tx)
            }
            begun => begun.or_db().map(tx),
        }
    }
}

impl Reader {
    async fn again<T, F, Fut>(&self, run: F) -> Result<T, DbErr>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        let started = Instant::now();
        match run().await {
            Err(e) if db_connection_died(&e) => {
                note_dead_connection();
                tracing::info!(error = %e, "a read's connection died; reading again on another connection");
                let left = self.budget.saturating_sub(started.elapsed());
                tokio::time::timeout(left, run()).await.unwrap_or(Err(e))
            }
            other => other,
        }
    }
}

#[async_trait]
impl ConnectionTrait for Reader {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.again(|| self.db.execute_raw(stmt.clone())).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.again(|| self.db.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.again(|| self.db.query_one_raw(stmt.clone())).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.again(|| self.db.query_all_raw(stmt.clone())).await
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

/// A transaction from [`Store::begin`](crate::Store::begin): pass `&tx` to any [`crate::query`] operation, then
/// [`Tx::commit`]. Dropped without a commit, it rolls back.
pub struct Tx(DatabaseTransaction, Arc<Pii>, Arc<EventTap>);

impl Tx {
    /// Commits.
    pub async fn commit(self) -> Result<(), Error> {
        self.0.commit().await.or_db()
    }
}

/// `ConnectionTrait` for a wrapper, by its connection `$field`.
macro_rules! delegate_connection {
    ($ty:ty, $field:tt) => {
        #[async_trait]
        impl ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                self.$field.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.$field.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.$field.execute_unprepared(sql).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.$field.query_one_raw(stmt).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.$field.query_all_raw(stmt).await
            }

            fn support_returning(&self) -> bool {
                self.$field.support_returning()
            }
        }
    };
}

delegate_connection!(Tx, 0);
delegate_connection!(Writer, db);
