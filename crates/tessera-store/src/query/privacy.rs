//! Privacy (SPEC §5.8): what a user's export reads, soft deletion and its undoing, and
//! the purge: hard deletion after the retention period, and the housekeeping of rows
//! nobody needs any more, in batches, under a lease shared by every node.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Condition, Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, Statement};
use serde_json::json;
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::entity::{
    audit_log, flow_state, mail_outbox, mfa_token, oauth_authorization, one_time_token, session, user,
    webauthn_challenge,
};
use crate::error::OrDb;
use crate::pii::Pii;

/// Every session of a user, revoked and expired ones included (until the purge removes
/// them), oldest first.
pub async fn sessions_of(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<session::Model>, Error> {
    session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .order_by_asc(session::Column::CreatedAt)
        .order_by_asc(session::Column::Id)
        .all(conn)
        .await
        .or_db()
}

/// Marks a live user deleted; false when it was already (a concurrent deletion).
pub async fn mark_deleted(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
    let res = user::Entity::update_many()
        .col_expr(user::Column::DeletedAt, Expr::value(now))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::DeletedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Undoes a soft deletion made after `deleted_after`; false when the user is not
/// deleted, or was deleted before (its retention is over).
pub async fn restore(
    conn: &impl ConnectionTrait,
    id: Uuid,
    deleted_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let res = user::Entity::update_many()
        .col_expr(user::Column::DeletedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::DeletedAt.gt(deleted_after))
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected == 1)
}

/// Cancels the mail waiting to be sent to these addresses (and the requests naming
/// them): marked failed, bodies wiped. Returns how many.
pub async fn cancel_mail_to(conn: &impl Db, addrs: &[&str], now: DateTime<Utc>) -> Result<u64, Error> {
    let res = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::FailedAt, Expr::value(now))
        .col_expr(mail_outbox::Column::LastError, Expr::value("cancelled: the account was deleted"))
        .col_expr(mail_outbox::Column::TextBody, Expr::value(""))
        .col_expr(mail_outbox::Column::HtmlBody, Expr::value(""))
        .filter(mail_to(conn.pii(), addrs.iter().copied()))
        .filter(mail_outbox::Column::SentAt.is_null())
        .filter(mail_outbox::Column::FailedAt.is_null())
        .exec(conn)
        .await
        .or_db()?;
    Ok(res.rows_affected)
}

/// Mail to any of `addrs`, in plaintext or encrypted (by its blind index).
fn mail_to<'a>(pii: &Pii, addrs: impl Iterator<Item = &'a str>) -> Condition {
    let mut plain = Vec::new();
    let mut indexes = Vec::new();
    for a in addrs {
        indexes.extend(pii.indexes(a));
        plain.push(a.to_owned());
    }
    Condition::any().add(mail_outbox::Column::ToAddr.is_in(plain)).add(mail_outbox::Column::ToIndex.is_in(indexes))
}

/// Up to `limit` users soft-deleted before `cutoff`.
pub async fn deleted_before(
    conn: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, Error> {
    user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::DeletedAt.lt(cutoff))
        .order_by_asc(user::Column::DeletedAt)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
        .or_db()
}

/// Hard-deletes those of `ids` still deleted before `cutoff` (a restore that won the
/// race keeps its user: the delete re-checks, and on PostgreSQL holds the rows until
/// the transaction ends), through `conn`, one transaction per batch. Their profile,
/// sessions, factors and tokens go by cascade, the mail to their addresses is deleted,
/// and their audit rows stay but lose the ip, the user agent and the detail (rows where
/// they acted on someone else lose the ip and user agent). Returns the ids removed.
pub async fn purge_users(conn: &impl Db, ids: &[Uuid], cutoff: DateTime<Utc>) -> Result<Vec<Uuid>, Error> {
    let removed = user::Entity::delete_many()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .filter(user::Column::DeletedAt.lt(cutoff))
        .exec_with_returning(conn)
        .await
        .or_db()?;
    let gone: Vec<Uuid> = removed.iter().map(|u| u.id).collect();
    forget(conn, removed).await?;
    Ok(gone)
}

/// What stays of users just hard-deleted (`removed`, as they were stored): their audit
/// rows, and the rows that name their address without their id (a lockout, a failed
/// sign-in before the account existed), lose the ip, the user agent, the detail and the
/// address's blind index; rows where they acted on someone else lose the ip and user
/// agent; the mail to their addresses is deleted. No row keeps their address, phone, ip
/// or user agent.
pub async fn forget(conn: &impl Db, removed: Vec<user::Model>) -> Result<(), Error> {
    if removed.is_empty() {
        return Ok(());
    }
    let gone: Vec<Uuid> = removed.iter().map(|u| u.id).collect();
    let mut addresses = Vec::new();
    for u in removed {
        let u = conn.pii().open_user(u)?;
        addresses.extend(std::iter::once(u.email).chain(u.new_email));
    }
    let indexes: Vec<String> = addresses.iter().flat_map(|a| conn.pii().indexes(a)).collect();
    // Unsealed details name the address in clear (SQLite 3.38+ and PostgreSQL read `->>`
    // alike); sealed ones are found by its blind index.
    let named_in_clear = Expr::cust("detail ->> 'email'").is_in(addresses.iter().map(|a| a.to_lowercase()));
    let about_them = Condition::any()
        .add(audit_log::Column::UserId.is_in(gone.iter().copied()))
        .add(audit_log::Column::EmailIndex.is_in(indexes))
        .add(named_in_clear);
    audit_log::Entity::update_many()
        .col_expr(audit_log::Column::Ip, Expr::value(Option::<String>::None))
        .col_expr(audit_log::Column::UserAgent, Expr::value(Option::<String>::None))
        .col_expr(audit_log::Column::Detail, Expr::value(json!({})))
        .col_expr(audit_log::Column::EmailIndex, Expr::value(Option::<String>::None))
        .filter(about_them)
        .exec(conn)
        .await
        .or_db()?;
    audit_log::Entity::update_many()
        .col_expr(audit_log::Column::Ip, Expr::value(Option::<String>::None))
        .col_expr(audit_log::Column::UserAgent, Expr::value(Option::<String>::None))
        .filter(audit_log::Column::ActorId.is_in(gone.iter().copied()))
        .exec(conn)
        .await
        .or_db()?;
    let to = mail_to(conn.pii(), addresses.iter().map(String::as_str));
    mail_outbox::Entity::delete_many().filter(to).exec(conn).await.or_db()?;
    Ok(())
}

/// What one housekeeping batch may remove at most.
pub const BATCH: u64 = 1000;

/// What housekeeping removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub one_time_tokens: u64,
    pub mfa_tokens: u64,
    pub challenges: u64,
    /// Codes of PKCE flows never exchanged.
    pub codes: u64,
    pub mail: u64,
    /// Webhook events delivered over a day ago.
    pub webhooks: u64,
}

/// Removes one batch (at most [`BATCH`] rows of each kind) of what nobody needs any
/// more: sessions expired, or revoked more than a day ago; one-time tokens expired, or
/// used more than a day ago (a secure email change keeps its confirmed half until its
/// pair expires); MFA tokens expired or used; passkey challenges, PKCE codes and OAuth authorization requests
/// expired; mail sent more
/// than a day ago.
pub async fn sweep_batch(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Swept, Error> {
    let day_ago = now - Duration::days(1);
    let sessions = Condition::any().add(session::Column::ExpiresAt.lt(now)).add(session::Column::RevokedAt.lt(day_ago));
    let one_time_tokens =
        Condition::any().add(one_time_token::Column::ExpiresAt.lt(now)).add(one_time_token::Column::UsedAt.lt(day_ago));
    let mfa_tokens =
        Condition::any().add(mfa_token::Column::ExpiresAt.lt(now)).add(mfa_token::Column::UsedAt.is_not_null());
    let challenges = Condition::all().add(webauthn_challenge::Column::ExpiresAt.lt(now));
    let flows = Condition::all().add(flow_state::Column::ExpiresAt.lt(now));
    let requests = Condition::all().add(oauth_authorization::Column::ExpiresAt.lt(now));
    let mail = Condition::all().add(mail_outbox::Column::SentAt.lt(day_ago));
    let webhooks = Condition::all().add(crate::entity::webhook_outbox::Column::DeliveredAt.lt(day_ago));
    Ok(Swept {
        sessions: delete_batch(conn, session::Entity, session::Column::Id, sessions).await?,
        one_time_tokens: delete_batch(conn, one_time_token::Entity, one_time_token::Column::Id, one_time_tokens)
            .await?,
        mfa_tokens: delete_batch(conn, mfa_token::Entity, mfa_token::Column::Id, mfa_tokens).await?,
        challenges: delete_batch(conn, webauthn_challenge::Entity, webauthn_challenge::Column::Id, challenges).await?,
        codes: delete_batch(conn, flow_state::Entity, flow_state::Column::Id, flows).await?
            + delete_batch(conn, oauth_authorization::Entity, oauth_authorization::Column::Id, requests).await?,
        mail: delete_batch(conn, mail_outbox::Entity, mail_outbox::Column::Id, mail).await?,
        webhooks: delete_batch(
            conn,
            crate::entity::webhook_outbox::Entity,
            crate::entity::webhook_outbox::Column::Id,
            webhooks,
        )
        .await?,
    })
}

/// Deletes at most [`BATCH`] rows of `entity` meeting `which` (their ids chosen by a
/// subquery, so no statement holds locks on more rows); returns how many.
async fn delete_batch<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    entity: E,
    id: E::Column,
    which: Condition,
) -> Result<u64, Error> {
    let ids = Query::select().column(id).from(entity).cond_where(which).limit(BATCH).to_owned();
    let res = E::delete_many().filter(id.in_subquery(ids)).exec(conn).await.or_db()?;
    Ok(res.rows_affected)
}

/// Takes the lease of job `name` for `holder` until `until`, unless another holder has
/// it; with `due_only`, only when the job is due (its `next_run_at` has passed). Whether
/// this caller got it.
pub async fn claim_job(
    conn: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    due_only: bool,
) -> Result<bool, Error> {
    let due = if due_only { " AND job_runs.next_run_at <= $2" } else { "" };
    let sql = format!(
        "INSERT INTO job_runs (name, holder, running_until, next_run_at) VALUES ($1, $4, $3, $2) \
         ON CONFLICT (name) DO UPDATE SET holder = $4, running_until = $3 \
         WHERE (job_runs.running_until IS NULL OR job_runs.running_until < $2){due}"
    );
    let values = [name.into(), now.into(), until.into(), holder.into()];
    let res =
        conn.execute_raw(Statement::from_sql_and_values(conn.get_database_backend(), sql, values)).await.or_db()?;
    Ok(res.rows_affected() == 1)
}

/// Extends `holder`'s lease of job `name` until `until`; false when it is no longer
/// theirs (it expired and another node took it).
pub async fn renew_job(
    conn: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    until: DateTime<Utc>,
) -> Result<bool, Error> {
    let sql = "UPDATE job_runs SET running_until = $2 WHERE name = $1 AND holder = $3";
    let values = [name.into(), until.into(), holder.into()];
    let res =
        conn.execute_raw(Statement::from_sql_and_values(conn.get_database_backend(), sql, values)).await.or_db()?;
    Ok(res.rows_affected() == 1)
}

/// Lets go of `holder`'s lease of job `name` and says when the job is next due (nothing,
/// if the lease is no longer theirs).
pub async fn finish_job(
    conn: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    next_run_at: DateTime<Utc>,
) -> Result<(), Error> {
    let sql =
        "UPDATE job_runs SET holder = NULL, running_until = NULL, next_run_at = $2 WHERE name = $1 AND holder = $3";
    let values = [name.into(), next_run_at.into(), holder.into()];
    conn.execute_raw(Statement::from_sql_and_values(conn.get_database_backend(), sql, values)).await.or_db()?;
    Ok(())
}
