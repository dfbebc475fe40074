//! The audit log.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::audit_log;
use crate::error::OrDb;

/// Appends one event.
pub async fn insert(conn: &impl ConnectionTrait, row: audit_log::Model) -> Result<(), Error> {
    audit_log::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// Up to `limit` events about a user, oldest first, after the event `after`: a reader
/// (the export) goes page by page, so its memory does not grow with the log.
pub async fn page_for_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<audit_log::Model>, Error> {
    let mut q = audit_log::Entity::find().filter(audit_log::Column::UserId.eq(user_id));
    if let Some(after) = after {
        q = q.filter(audit_log::Column::Id.gt(after));
    }
    q.order_by_asc(audit_log::Column::Id).limit(limit).all(conn).await.or_db()
}
