//! The keys a development server generates for itself (`server_keys`), kept in the
//! database so that every node sharing it agrees on them. A key is written once: the
//! first node to insert it wins and the others read what it wrote.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, EntityTrait};
use tessera_domain::Error;

use crate::entity::server_key;
use crate::error::OrDb;

/// The key kept under `name`, if any.
pub async fn get(conn: &impl ConnectionTrait, name: &str) -> Result<Option<server_key::Model>, Error> {
    server_key::Entity::find_by_id(name.to_owned()).one(conn).await.or_db()
}

/// The key kept under `name`: the one already there, or `candidate`, written now. Of
/// nodes racing to create it, one inserts and every one answers that node's value.
pub async fn get_or_insert(
    conn: &impl ConnectionTrait,
    name: &str,
    candidate: &str,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    if let Some(kept) = get(conn, name).await? {
        return Ok(kept.value);
    }
    let insert = Query::insert()
        .into_table(server_key::Entity)
        .columns([server_key::Column::Name, server_key::Column::Value, server_key::Column::CreatedAt])
        .values([name.into(), candidate.into(), now.into()])
        .map_err(|e| Error::Internal(e.to_string()))?
        .on_conflict(OnConflict::column(server_key::Column::Name).do_nothing().to_owned())
        .to_owned();
    conn.execute_raw(conn.get_database_backend().build(&insert)).await.or_db()?;
    get(conn, name).await?.map(|k| k.value).ok_or_else(|| Error::Internal(format!("server key {name} vanished")))
}
