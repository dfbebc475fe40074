//! Bulk loading of users brought from another system (`tessera import`, SPEC §5.15): the
//! users a batch may collide with, and the batch's rows in multi-row statements.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, Condition, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter};
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::{identity, mfa_factor, profile, user};
use crate::error::OrDb;

/// The rows of a batch of new users.
#[derive(Debug, Default)]
pub struct NewUsers {
    pub users: Vec<user::Model>,
    pub profiles: Vec<profile::Model>,
    pub identities: Vec<identity::Model>,
    pub factors: Vec<mfa_factor::Model>,
}

/// The users whose id is one of `ids` or whose address (in plaintext or by its blind
/// index) is one of `emails` (normalised), deleted ones included.
pub async fn matching(conn: &impl Db, ids: &[Uuid], emails: &[String]) -> Result<Vec<user::Model>, Error> {
    if ids.is_empty() && emails.is_empty() {
        return Ok(Vec::new());
    }
    let mut cond = Condition::any();
    if !ids.is_empty() {
        cond = cond.add(user::Column::Id.is_in(ids.iter().copied()));
    }
    if !emails.is_empty() {
        cond = cond.add(user::Column::Email.is_in(emails.iter().cloned()));
        let indexes: Vec<String> = emails.iter().flat_map(|e| conn.pii().indexes(e)).collect();
        if !indexes.is_empty() {
            cond = cond.add(user::Column::EmailIndex.is_in(indexes));
        }
    }
    let rows = user::Entity::find().filter(cond).all(conn).await.or_db()?;
    rows.into_iter().map(|u| conn.pii().open_user(u)).collect()
}

/// Which of the identities `(provider, provider_id)` exist, and whose they are.
pub async fn identity_owners(conn: &impl Db, keys: &[(String, String)]) -> Result<Vec<(String, String, Uuid)>, Error> {
    let mut found = Vec::new();
    // A few hundred pairs per statement keeps under every backend's parameter limit.
    for chunk in keys.chunks(400) {
        let cond = chunk.iter().fold(Condition::any(), |c, (provider, id)| {
            c.add(identity::Column::Provider.eq(provider.as_str()).and(identity::Column::ProviderId.eq(id.as_str())))
        });
        let rows = identity::Entity::find().filter(cond).all(conn).await.or_db()?;
        found.extend(rows.into_iter().map(|r| (r.provider, r.provider_id, r.user_id)));
    }
    Ok(found)
}

/// Inserts a batch: users and profiles in multi-row statements (encrypted with PII
/// encryption), then identities and factors, each skipped if it already exists (an
/// identity by provider and subject, a factor by id).
pub async fn insert(conn: &impl Db, rows: NewUsers) -> Result<(), Error> {
    let NewUsers { users, profiles, identities, factors } = rows;
    for chunk in users.chunks(1000) {
        let sealed = chunk.iter().cloned().map(|u| conn.pii().seal_user(u)).collect::<Result<Vec<_>, _>>()?;
        user::Entity::insert_many(sealed.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(conn)
            .await
            .or_db()?;
    }
    for chunk in profiles.chunks(1000) {
        profile::Entity::insert_many(chunk.iter().cloned().map(IntoActiveModel::into_active_model))
            .exec_without_returning(conn)
            .await
            .or_db()?;
    }
    add_identities(conn, identities).await?;
    add_factors(conn, factors).await
}

/// Links identities, skipping any that exists; marks their users as having identities.
pub async fn add_identities(conn: &impl Db, rows: Vec<identity::Model>) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let users: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    for chunk in rows.chunks(500) {
        let mut sealed = Vec::with_capacity(chunk.len());
        for row in chunk {
            let mut row = row.clone();
            row.email = row.email.as_deref().map(|e| conn.pii().seal(e)).transpose()?;
            row.data = conn.pii().seal(&row.data)?;
            sealed.push(row.into_active_model());
        }
        identity::Entity::insert_many(sealed)
            .on_conflict(
                OnConflict::columns([identity::Column::Provider, identity::Column::ProviderId]).do_nothing().to_owned(),
            )
            .exec_without_returning(conn)
            .await
            .or_db()?;
    }
    for chunk in users.chunks(1000) {
        user::Entity::update_many()
            .col_expr(user::Column::HasIdentities, sea_orm::sea_query::Expr::value(true))
            .filter(user::Column::Id.is_in(chunk.iter().copied()))
            .exec(conn)
            .await
            .or_db()?;
    }
    Ok(())
}

/// Stores verified factors, skipping any whose id exists; marks their users as having
/// MFA on.
pub async fn add_factors(conn: &impl Db, rows: Vec<mfa_factor::Model>) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let users: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    for chunk in rows.chunks(500) {
        mfa_factor::Entity::insert_many(chunk.iter().cloned().map(IntoActiveModel::into_active_model))
            .on_conflict(OnConflict::column(mfa_factor::Column::Id).do_nothing().to_owned())
            .exec_without_returning(conn)
            .await
            .or_db()?;
    }
    for chunk in users.chunks(1000) {
        user::Entity::update_many()
            .col_expr(user::Column::MfaEnabled, sea_orm::sea_query::Expr::value(true))
            .filter(user::Column::Id.is_in(chunk.iter().copied()))
            .exec(conn)
            .await
            .or_db()?;
    }
    Ok(())
}
