//! The webhook outbox (SPEC §5.13): one row per event and receiver, queued with the audit
//! row it tells of, claimed by senders with a lease, delivered in order per user.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::{audit_log, webhook_outbox};
use crate::error::OrDb;

/// Queues `event` (what the audit row `row` becomes) for every receiver, through `conn`:
/// the transaction of the audit row.
pub(crate) async fn queue(conn: &impl Db, row: &audit_log::Model, event: &str) -> Result<(), Error> {
    let rows: Vec<webhook_outbox::ActiveModel> = conn
        .events()
        .urls()
        .iter()
        .map(|url| {
            sea_orm::IntoActiveModel::into_active_model(webhook_outbox::Model {
                id: Uuid::now_v7(),
                audit_id: row.id,
                event: event.to_owned(),
                user_id: row.user_id,
                url: url.clone(),
                attempts: 0,
                next_attempt_at: row.created_at,
                locked_until: None,
                delivered_at: None,
                failed_at: None,
                last_error: None,
                created_at: row.created_at,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    webhook_outbox::Entity::insert_many(rows).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// Rows no sender holds a lease on now.
fn unleased(now: DateTime<Utc>) -> Condition {
    Condition::any().add(webhook_outbox::Column::LockedUntil.is_null()).add(webhook_outbox::Column::LockedUntil.lt(now))
}

fn waiting() -> Condition {
    Condition::all().add(webhook_outbox::Column::DeliveredAt.is_null()).add(webhook_outbox::Column::FailedAt.is_null())
}

/// Up to `limit` rows not yet delivered nor given up on, oldest first, due or not: the
/// sender delivers a user's events in this order, and none after one that waits.
pub async fn waiting_rows(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<webhook_outbox::Model>, Error> {
    webhook_outbox::Entity::find()
        .filter(waiting())
        .order_by_asc(webhook_outbox::Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .or_db()
}

/// Up to `limit` rows due now and not leased, oldest first (the sender's scan when more
/// rows wait than it reads at once).
pub async fn due_rows(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<webhook_outbox::Model>, Error> {
    webhook_outbox::Entity::find()
        .filter(waiting())
        .filter(webhook_outbox::Column::NextAttemptAt.lte(now))
        .filter(unleased(now))
        .order_by_asc(webhook_outbox::Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .or_db()
}

/// Whether an earlier event of `row`'s user to `row`'s receiver still waits (its turn
/// comes first).
pub async fn has_earlier(conn: &impl ConnectionTrait, row: &webhook_outbox::Model) -> Result<bool, Error> {
    let user = match row.user_id {
        Some(u) => webhook_outbox::Column::UserId.eq(u),
        None => webhook_outbox::Column::UserId.is_null(),
    };
    let earlier = webhook_outbox::Entity::find()
        .filter(waiting())
        .filter(user)
        .filter(webhook_outbox::Column::Url.eq(row.url.clone()))
        .filter(webhook_outbox::Column::Id.lt(row.id))
        .limit(1)
        .all(conn)
        .await
        .or_db()?;
    Ok(!earlier.is_empty())
}

/// Leases a row until `until` unless another sender holds it or it is done; tells
/// whether this caller got it.
pub async fn claim(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, Error> {
    let res = webhook_outbox::Entity::update_many()
        .col_expr(webhook_outbox::Column::LockedUntil, Expr::value(until))
        .filter(webhook_outbox::Column::Id.eq(id))
        .filter(waiting())
        .filter(unleased(now))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Records a delivery.
pub async fn record_delivered(
    conn: &impl ConnectionTrait,
    id: Uuid,
    attempts: i32,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    webhook_outbox::Entity::update_many()
        .col_expr(webhook_outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(webhook_outbox::Column::DeliveredAt, Expr::value(at))
        .col_expr(webhook_outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(webhook_outbox::Column::LastError, Expr::value(Option::<String>::None))
        .filter(webhook_outbox::Column::Id.eq(id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Records a failed attempt: the next at `next`, or given up at `failed_at`.
pub async fn record_failure(
    conn: &impl ConnectionTrait,
    id: Uuid,
    attempts: i32,
    next: DateTime<Utc>,
    failed_at: Option<DateTime<Utc>>,
    error: String,
) -> Result<(), Error> {
    webhook_outbox::Entity::update_many()
        .col_expr(webhook_outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(webhook_outbox::Column::NextAttemptAt, Expr::value(next))
        .col_expr(webhook_outbox::Column::FailedAt, Expr::value(failed_at))
        .col_expr(webhook_outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(webhook_outbox::Column::LastError, Expr::value(Some(error)))
        .filter(webhook_outbox::Column::Id.eq(id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Events waiting to be delivered.
pub async fn waiting_count(conn: &impl ConnectionTrait) -> Result<u64, Error> {
    use sea_orm::PaginatorTrait;
    webhook_outbox::Entity::find().filter(waiting()).count(conn).await.or_db()
}

/// Events given up on after their last attempt.
pub async fn failed_count(conn: &impl ConnectionTrait) -> Result<u64, Error> {
    use sea_orm::PaginatorTrait;
    webhook_outbox::Entity::find().filter(webhook_outbox::Column::FailedAt.is_not_null()).count(conn).await.or_db()
}
