//! The audit log.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::audit_log;
use crate::error::OrDb;

/// Appends one event.
pub async fn insert(conn: &impl ConnectionTrait, row: audit_log::Model) -> Result<(), Error> {
    audit_log::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// A user's events, newest first.
pub async fn for_user(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<audit_log::Model>, Error> {
    audit_log::Entity::find()
        .filter(audit_log::Column::UserId.eq(user_id))
        .order_by_desc(audit_log::Column::Id)
        .all(conn)
        .await
        .or_db()
}
