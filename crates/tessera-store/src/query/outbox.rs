//! The mail outbox: messages written in the transaction of the change that caused them,
//! claimed by senders with a lease.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::mail_outbox;
use crate::error::OrDb;

/// A message, or a request to resolve into one, to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The template's name, or a request's kind (`request.…`).
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// When it was queued, and is first due.
    pub at: DateTime<Utc>,
}

/// Queues a message through `conn` (the caller's transaction).
pub async fn queue(conn: &impl Db, mail: NewMail) -> Result<(), Error> {
    insert(
        conn,
        mail_outbox::Model {
            id: Uuid::now_v7(),
            kind: mail.kind,
            to_addr: mail.to,
            subject: mail.subject,
            text_body: mail.text_body,
            html_body: mail.html_body,
            attempts: 0,
            next_attempt_at: mail.at,
            locked_until: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
            created_at: mail.at,
            to_index: None,
        },
    )
    .await
}

/// Queues a message (recipient and bodies encrypted with PII encryption).
async fn insert(conn: &impl Db, row: mail_outbox::Model) -> Result<(), Error> {
    let row = conn.pii().seal_mail(row)?;
    mail_outbox::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

fn unleased(now: DateTime<Utc>) -> Condition {
    Condition::any().add(mail_outbox::Column::LockedUntil.is_null()).add(mail_outbox::Column::LockedUntil.lt(now))
}

/// The kind prefix of requests waiting in the outbox to be resolved into mail (a
/// password-reset request, say): they are queued whoever asked, so that answering the
/// request costs the same whether the address belongs to an account or not.
pub const REQUEST_PREFIX: &str = "request.";

/// Up to `limit` rows due now and not leased by a sender, oldest first: messages, or
/// (with `requests`) requests to resolve.
pub async fn due(
    conn: &impl Db,
    now: DateTime<Utc>,
    limit: u64,
    requests: bool,
) -> Result<Vec<mail_outbox::Model>, Error> {
    let kind = if requests {
        mail_outbox::Column::Kind.starts_with(REQUEST_PREFIX)
    } else {
        mail_outbox::Column::Kind.not_like(format!("{REQUEST_PREFIX}%"))
    };
    let rows = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::SentAt.is_null())
        .filter(mail_outbox::Column::FailedAt.is_null())
        .filter(mail_outbox::Column::NextAttemptAt.lte(now))
        .filter(unleased(now))
        .filter(kind)
        .order_by_asc(mail_outbox::Column::CreatedAt)
        .limit(limit)
        .all(conn)
        .await
        .or_db()?;
    rows.into_iter().map(|m| conn.pii().open_mail(m)).collect()
}

/// Marks a request resolved (in the transaction that acted on it), and forgets the
/// address it named and who asked.
pub async fn complete_request(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::SentAt, Expr::value(now))
        .col_expr(mail_outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(mail_outbox::Column::ToAddr, Expr::value(""))
        .col_expr(mail_outbox::Column::ToIndex, Expr::value(Option::<String>::None))
        .col_expr(mail_outbox::Column::TextBody, Expr::value(""))
        .col_expr(mail_outbox::Column::Attempts, Expr::col(mail_outbox::Column::Attempts).add(1))
        .filter(mail_outbox::Column::Id.eq(id))
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Leases a message until `until` unless another sender holds it or it was sent; tells
/// whether this caller got it.
pub async fn claim(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, Error> {
    let res = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::LockedUntil, Expr::value(until))
        .filter(mail_outbox::Column::Id.eq(id))
        .filter(mail_outbox::Column::SentAt.is_null())
        .filter(unleased(now))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Extends the lease of a message being sent until `until`.
pub async fn renew(conn: &impl ConnectionTrait, id: Uuid, until: DateTime<Utc>) -> Result<(), Error> {
    mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::LockedUntil, Expr::value(until))
        .filter(mail_outbox::Column::Id.eq(id))
        .filter(mail_outbox::Column::SentAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(())
}

/// Records a delivery: the attempt counted, the lease released, and the bodies (which
/// may hold a link or code) wiped.
pub async fn record_sent(conn: &impl Db, id: Uuid, attempts: i32, at: DateTime<Utc>) -> Result<(), Error> {
    record_attempt(
        conn,
        mail_outbox::ActiveModel {
            id: ActiveValue::Set(id),
            attempts: ActiveValue::Set(attempts),
            sent_at: ActiveValue::Set(Some(at)),
            locked_until: ActiveValue::Set(None),
            last_error: ActiveValue::Set(None),
            text_body: ActiveValue::Set(String::new()),
            html_body: ActiveValue::Set(String::new()),
            ..Default::default()
        },
    )
    .await
}

/// Records a failed delivery: the attempt counted, the lease released, the next try at
/// `next_attempt_at`, given up at `failed_at` when set, and the error kept.
pub async fn record_failure(
    conn: &impl Db,
    id: Uuid,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    failed_at: Option<DateTime<Utc>>,
    error: String,
) -> Result<(), Error> {
    record_attempt(
        conn,
        mail_outbox::ActiveModel {
            id: ActiveValue::Set(id),
            attempts: ActiveValue::Set(attempts),
            locked_until: ActiveValue::Set(None),
            next_attempt_at: ActiveValue::Set(next_attempt_at),
            failed_at: ActiveValue::Set(failed_at),
            last_error: ActiveValue::Set(Some(error)),
            ..Default::default()
        },
    )
    .await
}

/// Writes the set columns of `row` (an SMTP error, which may quote the address, is
/// encrypted with PII encryption).
async fn record_attempt(conn: &impl Db, mut row: mail_outbox::ActiveModel) -> Result<(), Error> {
    if let sea_orm::ActiveValue::Set(Some(error)) = &row.last_error {
        if conn.pii().is_on() {
            row.last_error = sea_orm::ActiveValue::Set(Some(conn.pii().seal(error)?));
        }
    }
    row.update(conn).await.or_db()?;
    Ok(())
}

/// Messages waiting to be sent (requests not counted).
pub async fn pending_count(conn: &impl ConnectionTrait) -> Result<u64, Error> {
    use sea_orm::PaginatorTrait;
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::SentAt.is_null())
        .filter(mail_outbox::Column::FailedAt.is_null())
        .filter(mail_outbox::Column::Kind.not_like(format!("{REQUEST_PREFIX}%")))
        .count(conn)
        .await
        .or_db()
}

/// Messages given up on after their last attempt (requests not counted).
pub async fn failed_count(conn: &impl ConnectionTrait) -> Result<u64, Error> {
    use sea_orm::PaginatorTrait;
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::FailedAt.is_not_null())
        .filter(mail_outbox::Column::Kind.not_like(format!("{REQUEST_PREFIX}%")))
        .count(conn)
        .await
        .or_db()
}
