//! Bulk loading for benchmarks.

use sea_orm::{ConnectionTrait, EntityTrait, IntoActiveModel};
use tessera_domain::Error;

use crate::db::Db;
use crate::entity::{profile, user};
use crate::error::OrDb;

/// Inserts users and their profiles in two multi-row statements (encrypted with PII
/// encryption).
pub async fn insert_users(conn: &impl Db, users: Vec<user::Model>, profiles: Vec<profile::Model>) -> Result<(), Error> {
    let users = users.into_iter().map(|u| conn.pii().seal_user(u)).collect::<Result<Vec<_>, _>>()?;
    let users = users.into_iter().map(IntoActiveModel::into_active_model);
    user::Entity::insert_many(users).exec_without_returning(conn).await.or_db()?;
    let profiles = profiles.into_iter().map(IntoActiveModel::into_active_model);
    profile::Entity::insert_many(profiles).exec_without_returning(conn).await.or_db()?;
    Ok(())
}

/// Refreshes the query planner's statistics after a bulk load (and, on PostgreSQL, the
/// visibility map, so that counts can be answered from indexes alone).
pub async fn refresh_statistics(conn: &impl ConnectionTrait) -> Result<(), Error> {
    let sql = match conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "VACUUM (ANALYZE) users, profiles",
        _ => "ANALYZE",
    };
    conn.execute_unprepared(sql).await.or_db()?;
    Ok(())
}
