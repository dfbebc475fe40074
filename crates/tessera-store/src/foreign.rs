//! Reading another system's database, for `tessera import --from supabase --database-url`
//! (SPEC §5.15): a Supabase project's `auth` schema, read-only, in one snapshot (a
//! repeatable-read, read-only transaction), in batches by id. Rows come back as the JSON
//! objects PostgreSQL makes of them (`row_to_json`), the shape of a JSON export.

use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

/// A snapshot of a Supabase project's users.
pub struct SupabaseSnapshot {
    conn: PgConnection,
    factors: bool,
}

impl SupabaseSnapshot {
    /// Connects to `url` and opens the snapshot.
    pub async fn open(url: &str) -> Result<SupabaseSnapshot, String> {
        let (backend, url) = crate::backend::normalise_url(url)
            .map_err(|_| "--database-url is not a PostgreSQL URL (postgres://user:password@host/db)".to_owned())?;
        if backend != crate::Backend::Postgres {
            return Err("--database-url must be a PostgreSQL URL".to_owned());
        }
        let mut conn = PgConnection::connect(&url).await.map_err(|e| format!("cannot connect: {e}"))?;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| format!("cannot open a snapshot: {e}"))?;
        let tables: (Option<String>, Option<String>) =
            sqlx::query_as("SELECT to_regclass('auth.users')::text, to_regclass('auth.mfa_factors')::text")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| format!("cannot read the auth schema: {e}"))?;
        if tables.0.is_none() {
            return Err("the database has no auth.users table (is it a Supabase project's database?)".to_owned());
        }
        Ok(SupabaseSnapshot { conn, factors: tables.1.is_some() })
    }

    /// How many users there are.
    pub async fn count(&mut self) -> Result<u64, String> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM auth.users").fetch_one(&mut self.conn).await.map_err(read)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` users with ids above `after`, in id order.
    pub async fn users_after(&mut self, after: Option<Uuid>, limit: i64) -> Result<Vec<Value>, String> {
        let rows = sqlx::query(
            "SELECT row_to_json(u)::text FROM auth.users u WHERE $1::uuid IS NULL OR u.id > $1 ORDER BY u.id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut self.conn)
        .await
        .map_err(read)?;
        rows.iter().map(json).collect()
    }

    /// The identities of `users`.
    pub async fn identities_of(&mut self, users: &[Uuid]) -> Result<Vec<Value>, String> {
        let rows = sqlx::query("SELECT row_to_json(i)::text FROM auth.identities i WHERE i.user_id = ANY($1)")
            .bind(users)
            .fetch_all(&mut self.conn)
            .await
            .map_err(read)?;
        rows.iter().map(json).collect()
    }

    /// The second factors of `users` (none when the schema predates MFA).
    pub async fn factors_of(&mut self, users: &[Uuid]) -> Result<Vec<Value>, String> {
        if !self.factors {
            return Ok(Vec::new());
        }
        let rows = sqlx::query("SELECT row_to_json(f)::text FROM auth.mfa_factors f WHERE f.user_id = ANY($1)")
            .bind(users)
            .fetch_all(&mut self.conn)
            .await
            .map_err(read)?;
        rows.iter().map(json).collect()
    }

    /// Ends the snapshot.
    pub async fn close(mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

fn read(e: sqlx::Error) -> String {
    format!("cannot read the auth schema: {e}")
}

fn json(row: &sqlx::postgres::PgRow) -> Result<Value, String> {
    let text: String = row.try_get(0).map_err(read)?;
    serde_json::from_str(&text).map_err(|e| format!("a row is not JSON: {e}"))
}
