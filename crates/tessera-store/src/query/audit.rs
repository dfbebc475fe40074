//! The audit log.

use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::audit_log;
use crate::error::OrDb;
use crate::pii::Pii;

/// Appends one event (its personal detail fields encrypted with PII encryption) and
/// answers the row as stored, for whatever keeps a copy of it (the audit file), so that
/// no copy holds in clear what the database does not.
pub async fn insert(conn: &impl Db, row: audit_log::Model) -> Result<audit_log::Model, Error> {
    let row = sealed(conn.pii(), row)?;
    audit_log::Entity::insert(row.clone().into_active_model()).exec_without_returning(conn).await.or_db()?;
    if let Some(event) = conn.events().webhook_event(&row.event) {
        super::webhooks::queue(conn, &row, event).await?;
    }
    Ok(row)
}

/// An event as it is stored: its personal detail fields encrypted, its address indexed.
pub(crate) fn sealed(pii: &Pii, mut row: audit_log::Model) -> Result<audit_log::Model, Error> {
    row.email_index = pii.detail_index(&row.detail);
    pii.seal_detail(&mut row.detail)?;
    Ok(row)
}

/// Events as services see them: their detail decrypted.
pub(crate) fn opened(conn: &impl Db, mut rows: Vec<audit_log::Model>) -> Result<Vec<audit_log::Model>, Error> {
    for row in &mut rows {
        conn.pii().open_detail(&mut row.detail)?;
    }
    Ok(rows)
}

/// Up to `limit` events about a user, oldest first, after the event `after`: a reader
/// (the export) goes page by page, so its memory does not grow with the log.
pub async fn page_for_user(
    conn: &impl Db,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<audit_log::Model>, Error> {
    let mut q = audit_log::Entity::find().filter(audit_log::Column::UserId.eq(user_id));
    if let Some(after) = after {
        q = q.filter(audit_log::Column::Id.gt(after));
    }
    let rows = q.order_by_asc(audit_log::Column::Id).limit(limit).all(conn).await.or_db()?;
    opened(conn, rows)
}

/// One event, its detail decrypted.
pub async fn by_id(conn: &impl Db, id: Uuid) -> Result<Option<audit_log::Model>, Error> {
    let row = audit_log::Entity::find_by_id(id).one(conn).await.or_db()?;
    Ok(opened(conn, row.into_iter().collect())?.pop())
}
