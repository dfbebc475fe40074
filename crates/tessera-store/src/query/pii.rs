//! PII encryption of what is already stored (`tessera pii encrypt|rotate`, SPEC §5.8):
//! each table holding an address or a phone number is read in id order, a batch at a
//! time, and the rows that need it are rewritten under the first key of the ring in one
//! statement per batch. Each rewrite is guarded by the values it read, so a row a
//! serving node changed meanwhile is left to that node (it writes under the first key
//! itself) and counted as skipped. The position is kept in `job_runs`, in the
//! transaction of the batch, so a run that was stopped resumes where it was.
//! And the keys data was written under (`pii_keys`), which a store checks when it opens.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde_json::Value as Json;
use tessera_domain::Error;
use uuid::Uuid;

use crate::db::Db;
use crate::error::OrDb;
use crate::pii::Pii;

/// A table whose rows may hold personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiTable {
    Users,
    OneTimeTokens,
    MailOutbox,
    AuditLog,
    /// The address and claims a provider gave of a user.
    Identities,
}

impl PiiTable {
    /// Every such table, in the order a run goes through them.
    pub const ALL: [PiiTable; 5] =
        [PiiTable::Users, PiiTable::OneTimeTokens, PiiTable::MailOutbox, PiiTable::AuditLog, PiiTable::Identities];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            PiiTable::Users => "users",
            PiiTable::OneTimeTokens => "one_time_tokens",
            PiiTable::MailOutbox => "mail_outbox",
            PiiTable::AuditLog => "audit_log",
            PiiTable::Identities => "identities",
        }
    }

    /// The table named `name`.
    pub fn named(name: &str) -> Option<PiiTable> {
        PiiTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The columns read (the id first), the columns rewritten (with the guard's columns
    /// first, compared with what was read), and the rows worth reading.
    fn shape(self) -> (&'static [&'static str], &'static [&'static str], &'static str) {
        match self {
            // A number sealed before it had a blind index (`phone_index`) gets one too.
            PiiTable::Users => (
                &["email", "phone", "new_email", "phone_index"],
                &["email", "phone", "new_email", "email_index", "new_email_index", "phone_index"],
                "",
            ),
            PiiTable::OneTimeTokens => (&["new_email"], &["new_email", "new_email_index"], "new_email IS NOT NULL"),
            PiiTable::MailOutbox => (
                &["to_addr", "subject", "text_body", "html_body", "last_error"],
                &["to_addr", "subject", "text_body", "html_body", "last_error", "to_index"],
                "",
            ),
            // An event sealed before its address had a blind index gets one too.
            PiiTable::AuditLog => (&["detail", "email_index"], &["detail", "email_index"], ""),
            PiiTable::Identities => (&["email", "data"], &["email", "data"], ""),
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batch {
    /// Rows read.
    pub scanned: u64,
    /// Rows rewritten.
    pub rewritten: u64,
    /// Rows that needed it but changed while this batch ran (left as the change left them).
    pub skipped: u64,
    /// The last id read; `None` when the table has no rows after the cursor.
    pub last: Option<Uuid>,
}

/// `?` on SQLite, `$n` on PostgreSQL.
fn placeholder(backend: DbBackend, n: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${n}")
    } else {
        "?".to_owned()
    }
}

/// How many rows `table` has after `after` (the length of a progress bar).
pub async fn count(conn: &impl ConnectionTrait, table: PiiTable, after: Option<Uuid>) -> Result<u64, Error> {
    let backend = conn.get_database_backend();
    let (filter, values): (String, Vec<Value>) = match after {
        Some(id) => (format!(" WHERE id > {}", placeholder(backend, 1)), vec![id.into()]),
        None => (String::new(), Vec::new()),
    };
    let sql = format!("SELECT COUNT(*) FROM {}{filter}", table.name());
    let row = conn.query_one_raw(Statement::from_sql_and_values(backend, sql, values)).await.or_db()?;
    let n: i64 = row.map(|r| r.try_get_by_index(0)).transpose().or_db()?.unwrap_or(0);
    Ok(n.max(0) as u64)
}

/// Reads up to `limit` rows of `table` after `after` (in id order) and rewrites those
/// that hold plaintext, or (with `rotate`) a value under another key than the first, under
/// the first key of `conn`'s ring. A value under a key the ring lacks is an error naming
/// the row.
pub async fn seal_batch(
    conn: &impl Db,
    table: PiiTable,
    after: Option<Uuid>,
    rotate: bool,
    limit: u64,
) -> Result<Batch, Error> {
    let pii = conn.pii();
    if !pii.is_on() {
        return Err(Error::Internal("PII_ENCRYPTION_KEY is not set".to_owned()));
    }
    let backend = conn.get_database_backend();
    let (read, write, only) = table.shape();
    // The audit detail is compared and rewritten as text (PostgreSQL's jsonb has no
    // equality with a parameter of another type).
    let columns: Vec<String> =
        read.iter().map(|c| if *c == "detail" { format!("CAST({c} AS TEXT)") } else { (*c).to_owned() }).collect();
    let mut filters: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(after) = after {
        filters.push(format!("id > {}", placeholder(backend, 1)));
        values.push(after.into());
    }
    if !only.is_empty() {
        filters.push(only.to_owned());
    }
    let filter = if filters.is_empty() { String::new() } else { format!("WHERE {}", filters.join(" AND ")) };
    let sql = format!("SELECT id, {} FROM {} {filter} ORDER BY id LIMIT {limit}", columns.join(", "), table.name());
    let rows = conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await.or_db()?;

    let mut batch = Batch { scanned: rows.len() as u64, ..Batch::default() };
    let mut tuples: Vec<Vec<Value>> = Vec::new();
    for row in rows {
        let id: Uuid = row.try_get_by_index(0).or_db()?;
        batch.last = Some(id);
        let mut old: Vec<Option<String>> = Vec::with_capacity(read.len());
        for i in 0..read.len() {
            old.push(row.try_get_by_index(i + 1).or_db()?);
        }
        let in_row = |e: Error| Error::Internal(format!("{} row {id}: {e}", table.name()));
        let Some(new) = resealed(pii, table, &old, rotate).map_err(in_row)? else { continue };
        let mut tuple: Vec<Value> = vec![id.into()];
        tuple.extend(old.into_iter().map(Value::from));
        tuple.extend(new.into_iter().map(Value::from));
        tuples.push(tuple);
    }
    if tuples.is_empty() {
        return Ok(batch);
    }
    let wanted = tuples.len() as u64;
    let width = 1 + read.len() + write.len();
    let mut n = 0;
    let mut rows_sql = Vec::with_capacity(tuples.len());
    for _ in 0..tuples.len() {
        let slots: Vec<String> = (0..width)
            .map(|_| {
                n += 1;
                placeholder(backend, n)
            })
            .collect();
        rows_sql.push(format!("({})", slots.join(", ")));
    }
    let t = table.name();
    let set: Vec<String> = write
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = format!("v.column{}", 2 + read.len() + i);
            match (*c == "detail", backend) {
                (true, DbBackend::Postgres) => format!("{c} = CAST({v} AS jsonb)"),
                _ => format!("{c} = {v}"),
            }
        })
        .collect();
    let guard: Vec<String> = read
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = format!("v.column{}", 2 + i);
            if *c == "detail" {
                format!("CAST({t}.{c} AS TEXT) = {v}")
            } else {
                format!("{t}.{c} IS NOT DISTINCT FROM {v}")
            }
        })
        .collect();
    let sql = format!(
        "UPDATE {t} SET {} FROM (VALUES {}) AS v WHERE {t}.id = v.column1 AND {}",
        set.join(", "),
        rows_sql.join(", "),
        guard.join(" AND ")
    );
    let values: Vec<Value> = tuples.into_iter().flatten().collect();
    let done = match conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.or_db() {
        Ok(res) => res.rows_affected(),
        Err(Error::EmailTaken) => {
            return Err(Error::Internal(format!(
                "two accounts among the {wanted} users after {} hold the same email address (one was written by a node \
                 without PII_ENCRYPTION_KEY or with an older ring while the key was being switched on or rotated): \
                 find them with `tessera admin`'s search or the admin API, delete or rename one, and run again",
                after.map(|a| a.to_string()).unwrap_or_else(|| "the first".to_owned())
            )))
        }
        Err(e) => return Err(e),
    };
    batch.rewritten = done;
    batch.skipped = wanted.saturating_sub(done);
    Ok(batch)
}

/// The new values of a row's written columns, or `None` when it needs nothing.
fn resealed(
    pii: &Pii,
    table: PiiTable,
    old: &[Option<String>],
    rotate: bool,
) -> Result<Option<Vec<Option<String>>>, Error> {
    let needs = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty() && pii.needs_sealing(s, rotate));
    let reseal = |v: &Option<String>| -> Result<Option<String>, Error> {
        match v.as_deref() {
            Some(s) if !s.is_empty() => Ok(Some(pii.seal(&pii.open(s.to_owned())?)?)),
            other => Ok(other.map(str::to_owned)),
        }
    };
    let index = |v: &Option<String>| -> Result<Option<String>, Error> {
        match v.as_deref() {
            Some(s) if !s.is_empty() => Ok(pii.index(&pii.open(s.to_owned())?)),
            _ => Ok(None),
        }
    };
    match table {
        PiiTable::AuditLog => {
            let [Some(text), email_index] = old else { return Ok(None) };
            let Ok(mut detail) = serde_json::from_str::<Json>(text) else { return Ok(None) };
            let unindexed = email_index.is_none() && detail.get("email").is_some_and(Json::is_string);
            if !pii.detail_needs_sealing(&detail, rotate) && !unindexed {
                return Ok(None);
            }
            pii.open_detail(&mut detail)?;
            let email_index = pii.detail_index(&detail);
            pii.seal_detail(&mut detail)?;
            Ok(Some(vec![Some(detail.to_string()), email_index]))
        }
        PiiTable::Users => {
            let [email, phone, new_email, phone_index] = old else { return Ok(None) };
            let unindexed = pii.is_on() && phone.as_deref().is_some_and(|p| !p.is_empty()) && phone_index.is_none();
            if ![email, phone, new_email].into_iter().any(needs) && !unindexed {
                return Ok(None);
            }
            Ok(Some(vec![
                reseal(email)?,
                reseal(phone)?,
                reseal(new_email)?,
                index(email)?,
                index(new_email)?,
                index(phone)?,
            ]))
        }
        _ if !old.iter().any(needs) => Ok(None),
        PiiTable::OneTimeTokens => {
            let [new_email] = old else { return Ok(None) };
            Ok(Some(vec![reseal(new_email)?, index(new_email)?]))
        }
        PiiTable::MailOutbox => {
            let [to, subject, text, html, error] = old else { return Ok(None) };
            Ok(Some(vec![reseal(to)?, reseal(subject)?, reseal(text)?, reseal(html)?, reseal(error)?, index(to)?]))
        }
        PiiTable::Identities => {
            let [email, data] = old else { return Ok(None) };
            Ok(Some(vec![reseal(email)?, reseal(data)?]))
        }
    }
}

/// The saved position of job `job` (`None`: from the start).
pub async fn load_cursor(conn: &impl ConnectionTrait, job: &str) -> Result<Option<String>, Error> {
    let backend = conn.get_database_backend();
    let sql = format!("SELECT cursor FROM job_runs WHERE name = {}", placeholder(backend, 1));
    let row = conn.query_one_raw(Statement::from_sql_and_values(backend, sql, [job.into()])).await.or_db()?;
    Ok(row.map(|r| r.try_get_by_index::<Option<String>>(0)).transpose().or_db()?.flatten())
}

/// Saves (or, with `None`, clears) the position of job `job`.
pub async fn save_cursor(conn: &impl ConnectionTrait, job: &str, cursor: Option<&str>) -> Result<(), Error> {
    let backend = conn.get_database_backend();
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "INSERT INTO job_runs (name, next_run_at, cursor) VALUES ({}, {}, {}) \
         ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
        p(1),
        p(2),
        p(3)
    );
    let values = [job.into(), Utc::now().into(), cursor.map(str::to_owned).into()];
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.or_db()?;
    Ok(())
}

/// Forgets every key but `kid` (after a rotation rewrote everything under it), so that a
/// server without the old keys may start.
pub async fn forget_keys_except(conn: &impl ConnectionTrait, kid: &str) -> Result<u64, Error> {
    let backend = conn.get_database_backend();
    let sql = format!("DELETE FROM pii_keys WHERE kid <> {}", placeholder(backend, 1));
    let res = conn.execute_raw(Statement::from_sql_and_values(backend, sql, [kid.into()])).await.or_db()?;
    Ok(res.rows_affected())
}

/// Checks, when a store opens, that `pii` can read what the database holds: every key
/// id data was encrypted under must be in the ring, with the same key. With a ring, the
/// encrypting key is recorded first. Any mismatch is a start-up error that says what to
/// set.
pub(crate) async fn check_keys(conn: &impl ConnectionTrait, pii: &Pii) -> Result<(), String> {
    let backend = conn.get_database_backend();
    let read = || async {
        let rows = conn.query_all_raw(Statement::from_string(backend, "SELECT kid, key_check FROM pii_keys")).await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?)))
            .collect::<Result<Vec<(String, String)>, sea_orm::DbErr>>()
    };
    let known = match read().await {
        Ok(rows) => rows,
        // A database the migrations have not reached holds nothing encrypted.
        Err(_) if !pii.is_on() => return Ok(()),
        Err(e) => return Err(format!("cannot read the PII keys (are the migrations applied? `tessera migrate`): {e}")),
    };
    check_known(pii, &known)?;
    let (Some(kid), Some(check)) = (pii.primary_kid(), pii.primary_kid().and_then(|k| pii.key_check(k))) else {
        return Ok(());
    };
    if known.iter().any(|(k, _)| k == kid) {
        return Ok(());
    }
    // Recorded only once everything else matched; a node that recorded another key under
    // the same id at the same moment wins, and this one then refuses below.
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "INSERT INTO pii_keys (kid, key_check, created_at) VALUES ({}, {}, {}) ON CONFLICT (kid) DO NOTHING",
        p(1),
        p(2),
        p(3)
    );
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, [kid.into(), check.into(), Utc::now().into()]))
        .await
        .map_err(|e| format!("cannot record the PII key: {e}"))?;
    check_known(pii, &read().await.map_err(|e| format!("cannot read the PII keys: {e}"))?)
}

/// [`check_keys`] without recording the encrypting key (`tessera config check`).
pub(crate) async fn check_keys_read_only(conn: &impl ConnectionTrait, pii: &Pii) -> Result<(), String> {
    let backend = conn.get_database_backend();
    let rows = match conn.query_all_raw(Statement::from_string(backend, "SELECT kid, key_check FROM pii_keys")).await {
        Ok(rows) => rows,
        // Not migrated yet: nothing is encrypted.
        Err(_) => return Ok(()),
    };
    let known = rows
        .into_iter()
        .map(|r| Ok((r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?)))
        .collect::<Result<Vec<(String, String)>, sea_orm::DbErr>>()
        .map_err(|e| format!("cannot read the PII keys: {e}"))?;
    check_known(pii, &known)
}

/// Whether `pii` holds, unchanged, every key of `known` (`pii_keys`' rows).
fn check_known(pii: &Pii, known: &[(String, String)]) -> Result<(), String> {
    for (kid, check) in known {
        match pii.key_check(kid) {
            None if !pii.is_on() => {
                return Err(format!(
                "this database holds personal data encrypted under PII key {kid:?}: set PII_ENCRYPTION_KEY to a key \
                     ring that holds it"
            ))
            }
            None => {
                return Err(format!(
                    "this database holds personal data encrypted under PII key {kid:?}, which PII_ENCRYPTION_KEY lacks \
                     (it holds {:?}); add that key to the ring",
                    pii.kids()
                ))
            }
            Some(mine) if mine != *check => {
                return Err(format!(
                    "PII_ENCRYPTION_KEY's key {kid:?} is not the key this database's personal data was encrypted \
                     under; set the key that was used"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}
