//! PII encryption at rest (`PII_ENCRYPTION_KEY`, SPEC §5.8): the blind-index columns that
//! lookups and the unique email rule use once addresses are encrypted, the keys data was
//! encrypted under (so that a server started with a wrong or missing key refuses to
//! start), and a cursor per job, so that `tessera pii encrypt|rotate` resume where they
//! stopped.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Users {
    Table,
    EmailIndex,
    NewEmailIndex,
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    NewEmailIndex,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    ToIndex,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Cursor,
}

#[derive(DeriveIden)]
enum PiiKeys {
    Table,
    Kid,
    KeyCheck,
    CreatedAt,
}

const EMAIL_INDEX: &str = "users_email_index_key";
const NEW_EMAIL_INDEX: &str = "users_new_email_index_idx";
const TO_INDEX: &str = "mail_outbox_to_index_idx";

/// Adds one nullable text column (SQLite alters one column per statement).
async fn add_text(
    m: &SchemaManager<'_>,
    table: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
) -> Result<(), DbErr> {
    m.alter_table(Table::alter().table(table).add_column(ColumnDef::new(col).string_len(64).null()).to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            // An encrypted value is longer than its plaintext (a 254-character address
            // takes ~420): the columns that hold one become unbounded text. varchar to
            // text rewrites nothing on PostgreSQL; SQLite does not enforce lengths.
            m.get_connection()
                .execute_unprepared(
                    "ALTER TABLE users ALTER COLUMN email TYPE text, ALTER COLUMN phone TYPE text, \
                     ALTER COLUMN new_email TYPE text; \
                     ALTER TABLE one_time_tokens ALTER COLUMN new_email TYPE text; \
                     ALTER TABLE mail_outbox ALTER COLUMN to_addr TYPE text, ALTER COLUMN subject TYPE text, \
                     ALTER COLUMN last_error TYPE text",
                )
                .await?;
        }
        add_text(m, Users::Table, Users::EmailIndex).await?;
        add_text(m, Users::Table, Users::NewEmailIndex).await?;
        add_text(m, OneTimeTokens::Table, OneTimeTokens::NewEmailIndex).await?;
        add_text(m, MailOutbox::Table, MailOutbox::ToIndex).await?;
        m.alter_table(
            Table::alter().table(JobRuns::Table).add_column(ColumnDef::new(JobRuns::Cursor).text().null()).to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name(EMAIL_INDEX).table(Users::Table).col(Users::EmailIndex).unique().to_owned(),
        )
        .await?;
        m.create_index(Index::create().name(NEW_EMAIL_INDEX).table(Users::Table).col(Users::NewEmailIndex).to_owned())
            .await?;
        m.create_index(Index::create().name(TO_INDEX).table(MailOutbox::Table).col(MailOutbox::ToIndex).to_owned())
            .await?;
        m.create_table(
            Table::create()
                .table(PiiKeys::Table)
                .col(ColumnDef::new(PiiKeys::Kid).string_len(64).not_null().primary_key())
                .col(ColumnDef::new(PiiKeys::KeyCheck).string_len(64).not_null())
                .col(ColumnDef::new(PiiKeys::CreatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(PiiKeys::Table).to_owned()).await?;
        for (name, table) in [(TO_INDEX, "mail_outbox"), (NEW_EMAIL_INDEX, "users"), (EMAIL_INDEX, "users")] {
            m.drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned()).await?;
        }
        for (table, col) in [
            ("job_runs", "cursor"),
            ("mail_outbox", "to_index"),
            ("one_time_tokens", "new_email_index"),
            ("users", "new_email_index"),
            ("users", "email_index"),
        ] {
            m.alter_table(Table::alter().table(Alias::new(table)).drop_column(Alias::new(col)).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveMigrationName)]
pub struct Migration;
