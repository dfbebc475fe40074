//! Administration (issue 5): API keys, and the indexes the admin list, search and
//! analytics read instead of scanning `users` and `audit_log`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Role,
    IsActive,
    EmailVerifiedAt,
    CreatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Event,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    Prefix,
    Scopes,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().to_owned()
}

/// Case-insensitive name prefix search. Written as SQL because the schema builder has no
/// expression indexes; the statement is the same on SQLite and PostgreSQL.
const NAME_INDEX: &str = "CREATE INDEX users_full_name_lower_idx ON users (lower(full_name))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(ApiKeys::Name).string_len(100).not_null())
                .col(ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null())
                .col(ColumnDef::new(ApiKeys::Prefix).string_len(16).not_null())
                .col(ColumnDef::new(ApiKeys::Scopes).json_binary().not_null())
                .col(ColumnDef::new(ApiKeys::CreatedBy).uuid().null())
                .col(ts(ApiKeys::CreatedAt))
                .col(ts_null(ApiKeys::ExpiresAt))
                .col(ts_null(ApiKeys::LastUsedAt))
                .col(ts_null(ApiKeys::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("api_keys_created_by_fkey")
                        .from(ApiKeys::Table, ApiKeys::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("api_keys_key_hash_key")
                .table(ApiKeys::Table)
                .col(ApiKeys::KeyHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("api_keys_created_by_idx").table(ApiKeys::Table).col(ApiKeys::CreatedBy).to_owned(),
        )
        .await?;

        // Filters of the admin list, ordered like it (newest first).
        m.create_index(
            Index::create()
                .name("users_role_created_at_idx")
                .table(Users::Table)
                .col(Users::Role)
                .col(Users::CreatedAt)
                .to_owned(),
        )
        .await?;
        // Analytics count the small complements (inactive, unverified, deleted) from
        // these covering indexes and subtract, rather than scanning every user.
        m.create_index(
            Index::create()
                .name("users_is_active_idx")
                .table(Users::Table)
                .col(Users::IsActive)
                .col(Users::DeletedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_email_verified_at_idx")
                .table(Users::Table)
                .col(Users::EmailVerifiedAt)
                .col(Users::DeletedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("users_deleted_at_idx").table(Users::Table).col(Users::DeletedAt).to_owned(),
        )
        .await?;
        m.get_connection().execute_unprepared(NAME_INDEX).await?;

        // Logins per day and failed logins per 24 h.
        m.create_index(
            Index::create()
                .name("audit_log_event_created_at_idx")
                .table(AuditLog::Table)
                .col(AuditLog::Event)
                .col(AuditLog::CreatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("audit_log_event_created_at_idx", AuditLog::Table.into_iden()),
            ("users_full_name_lower_idx", Users::Table.into_iden()),
            ("users_deleted_at_idx", Users::Table.into_iden()),
            ("users_email_verified_at_idx", Users::Table.into_iden()),
            ("users_is_active_idx", Users::Table.into_iden()),
            ("users_role_created_at_idx", Users::Table.into_iden()),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned()).await?;
        }
        m.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await?;
        Ok(())
    }
}
