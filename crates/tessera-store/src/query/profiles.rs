//! Profiles.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::Value;
use tessera_domain::Error;
use uuid::Uuid;

use super::set_if;
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

/// The columns of a profile a change sets; `None` leaves a column as it is (for a
/// nullable column, `Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub avatar_url: Option<Option<String>>,
    pub location: Option<Option<String>>,
    pub date_of_birth: Option<Option<NaiveDate>>,
    pub bio: Option<Option<String>>,
    pub preferences: Option<Value>,
    pub user_metadata: Option<Value>,
    pub app_metadata: Option<Value>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Applies `changes` to the profile `current` and answers the row as stored.
pub async fn update(
    conn: &impl ConnectionTrait,
    current: &profile::Model,
    changes: ProfileChanges,
) -> Result<profile::Model, Error> {
    let ProfileChanges {
        avatar_url,
        location,
        date_of_birth,
        bio,
        preferences,
        user_metadata,
        app_metadata,
        updated_at,
    } = changes;
    let mut row = current.clone().into_active_model();
    set_if(&mut row.avatar_url, avatar_url);
    set_if(&mut row.location, location);
    set_if(&mut row.date_of_birth, date_of_birth);
    set_if(&mut row.bio, bio);
    set_if(&mut row.preferences, preferences);
    set_if(&mut row.user_metadata, user_metadata);
    set_if(&mut row.app_metadata, app_metadata);
    set_if(&mut row.updated_at, updated_at);
    row.update(conn).await.or_db()
}

/// Inserts a profile.
pub(crate) async fn insert(conn: &impl ConnectionTrait, row: profile::Model) -> Result<(), Error> {
    profile::Entity::insert(row.into_active_model()).exec_without_returning(conn).await.or_db()?;
    Ok(())
}
