//! Profiles.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter};
use tessera_domain::Error;
use uuid::Uuid;

use crate::entity::profile;
use crate::error::OrDb;

/// The profile of a user.
pub async fn by_user(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Option<profile::Model>, Error> {
    profile::Entity::find().filter(profile::Column::UserId.eq(user_id)).one(conn).await.or_db()
}

/// The profiles of several users (a page of them), in no particular order.
pub async fn of_users(conn: &impl ConnectionTrait, user_ids: &[Uuid]) -> Result<Vec<profile::Model>, Error> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    profile::Entity::find().filter(profile::Column::UserId.is_in(user_ids.iter().copied())).all(conn).await.or_db()
}

/// Inserts a profile.
pub async fn insert(conn: &impl ConnectionTrait, row: profile::Model) -> Result<(), Error> {
    profile::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// Writes the changed columns of a profile and answers the row as stored.
pub async fn save(conn: &impl ConnectionTrait, row: profile::ActiveModel) -> Result<profile::Model, Error> {
    row.update(conn).await.or_db()
}
