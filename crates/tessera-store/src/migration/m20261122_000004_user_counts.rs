//! The user totals of the admin dashboard and list, kept by the database itself.
//!
//! An exact `COUNT(*)` over a million users costs about 100 ms on PostgreSQL however it is
//! indexed, so `user_counts` holds the five totals and triggers on `users` keep them in
//! the same transaction as every insert, update and delete: reading them is a sum over a
//! few rows, and no code path can forget to update them.
//!
//! - SQLite writes one transaction at a time, so one row and row triggers suffice.
//! - PostgreSQL uses statement triggers with transition tables (one counter update per
//!   statement, so a bulk insert of 2,000 rows is one update), spread over
//!   [`SHARDS`] rows picked by transaction id: concurrent sign-ups rarely wait for one
//!   another, and a transaction always writes the same row, so two can never deadlock on
//!   the counters.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Counter rows on PostgreSQL.
pub const SHARDS: u32 = 16;

/// Per row of `users`: 1 when the row counts towards each total, in the column order of
/// `user_counts` (users, deleted, inactive, unverified, admins). `{r}` is the row alias.
const FLAGS: [&str; 5] = [
    "1",
    "CASE WHEN {r}.deleted_at IS NOT NULL THEN 1 ELSE 0 END",
    "CASE WHEN {r}.deleted_at IS NULL AND {r}.is_active = false THEN 1 ELSE 0 END",
    "CASE WHEN {r}.deleted_at IS NULL AND {r}.email_verified_at IS NULL THEN 1 ELSE 0 END",
    "CASE WHEN {r}.deleted_at IS NULL AND {r}.role = 'admin' THEN 1 ELSE 0 END",
];
const COLUMNS: [&str; 5] = ["users", "deleted", "inactive", "unverified", "admins"];

fn flag(i: usize, row: &str) -> String {
    FLAGS[i].replace("{r}", row)
}

/// `SUM(flag)` of every total over a table or transition table aliased `row`.
fn sums(row: &str) -> String {
    (0..5).map(|i| format!("COALESCE(SUM({}), 0)", flag(i, row))).collect::<Vec<_>>().join(", ")
}

fn sqlite_trigger(name: &str, event: &str, plus: Option<&str>, minus: Option<&str>) -> String {
    let set = (0..5)
        .map(|i| {
            let mut e = COLUMNS[i].to_owned();
            if let Some(r) = plus {
                e.push_str(&format!(" + ({})", flag(i, r)));
            }
            if let Some(r) = minus {
                e.push_str(&format!(" - ({})", flag(i, r)));
            }
            format!("{} = {e}", COLUMNS[i])
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("CREATE TRIGGER {name} AFTER {event} ON users BEGIN UPDATE user_counts SET {set} WHERE shard = 0; END")
}

fn postgres_function() -> String {
    let vars = COLUMNS.iter().map(|c| format!("d_{c}")).collect::<Vec<_>>();
    let olds = COLUMNS.iter().map(|c| format!("o_{c}")).collect::<Vec<_>>();
    let declare = vars.iter().chain(&olds).map(|v| format!("{v} bigint := 0;")).collect::<Vec<_>>().join(" ");
    let set = COLUMNS
        .iter()
        .zip(&vars)
        .zip(&olds)
        .map(|((c, v), o)| format!("{c} = {c} + {v} - {o}"))
        .collect::<Vec<_>>()
        .join(", ");
    let changed = vars.iter().zip(&olds).map(|(v, o)| format!("{v} <> {o}")).collect::<Vec<_>>().join(" OR ");
    format!(
        "CREATE FUNCTION user_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE {declare}
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    SELECT {new_sums} INTO {vars} FROM new_rows r;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    SELECT {old_sums} INTO {olds} FROM old_rows r;
  END IF;
  IF {changed} THEN
    UPDATE user_counts SET {set} WHERE shard = (txid_current() % {SHARDS})::int;
  END IF;
  RETURN NULL;
END $$",
        new_sums = sums("r"),
        old_sums = sums("r"),
        vars = vars.join(", "),
        olds = olds.join(", "),
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let postgres = db.get_database_backend() == DatabaseBackend::Postgres;
        if postgres {
            // Migrations run in one transaction on PostgreSQL: no user row may come or go
            // between the first count and the triggers that take over from it.
            db.execute_unprepared("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").await?;
        }
        let counter = |c: &str| format!("{c} BIGINT NOT NULL DEFAULT 0");
        db.execute_unprepared(&format!(
            "CREATE TABLE user_counts (shard INTEGER NOT NULL PRIMARY KEY, {})",
            COLUMNS.map(counter).join(", ")
        ))
        .await?;
        // Shard 0 starts with the totals of the rows already there; the others at zero.
        db.execute_unprepared(&format!(
            "INSERT INTO user_counts (shard, {}) SELECT 0, {} FROM users r",
            COLUMNS.join(", "),
            sums("r")
        ))
        .await?;
        if postgres {
            db.execute_unprepared(&format!(
                "INSERT INTO user_counts (shard) SELECT generate_series(1, {})",
                SHARDS - 1
            ))
            .await?;
            db.execute_unprepared(&postgres_function()).await?;
            for (event, tables) in [
                ("INSERT", "NEW TABLE AS new_rows"),
                ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                ("DELETE", "OLD TABLE AS old_rows"),
            ] {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER users_count_{} AFTER {event} ON users REFERENCING {tables} \
                     FOR EACH STATEMENT EXECUTE FUNCTION user_counts_apply()",
                    event.to_lowercase()
                ))
                .await?;
            }
        } else {
            let update = "UPDATE OF deleted_at, is_active, email_verified_at, role";
            for sql in [
                sqlite_trigger("users_count_insert", "INSERT", Some("NEW"), None),
                sqlite_trigger("users_count_update", update, Some("NEW"), Some("OLD")),
                sqlite_trigger("users_count_delete", "DELETE", None, Some("OLD")),
            ] {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for event in ["insert", "update", "delete"] {
            let sql = if db.get_database_backend() == DatabaseBackend::Postgres {
                format!("DROP TRIGGER users_count_{event} ON users")
            } else {
                format!("DROP TRIGGER users_count_{event}")
            };
            db.execute_unprepared(&sql).await?;
        }
        if db.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION user_counts_apply()").await?;
        }
        db.execute_unprepared("DROP TABLE user_counts").await?;
        Ok(())
    }
}
