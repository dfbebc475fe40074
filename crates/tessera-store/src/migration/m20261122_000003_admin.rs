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

/// The condition of the inactive-users index; queries must spell it the same way (a
/// literal, not a bound parameter) for SQLite to use the index.
pub const INACTIVE: &str = "is_active = false";

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

        // The admin list's order (newest first, ties by id) and its role filter.
        m.create_index(
            Index::create()
                .name("users_created_at_id_idx")
                .table(Users::Table)
                .col(Users::CreatedAt)
                .col(Users::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_role_created_at_idx")
                .table(Users::Table)
                .col(Users::Role)
                .col(Users::CreatedAt)
                .to_owned(),
        )
        .await?;
        // Analytics count the small complements (deleted, inactive, unverified) from
        // these partial indexes and subtract from the total, rather than scanning every
        // user. Partial, because a plain index holding `deleted_at` (nearly all NULL,
        // yet thousands of distinct values) makes SQLite's planner believe `deleted_at
        // IS NULL` is selective and drive every list query through it.
        for (name, condition) in [
            ("users_deleted_at_idx", Expr::col(Users::DeletedAt).is_not_null()),
            ("users_unverified_idx", Expr::col(Users::EmailVerifiedAt).is_null()),
        ] {
            m.create_index(
                Index::create().name(name).table(Users::Table).col(Users::DeletedAt).and_where(condition).to_owned(),
            )
            .await?;
        }
        // The inactive users in the list's order, with `deleted_at` beside them: the
        // `is_active=false` page reads it newest first with no sort, and its count never
        // leaves the index.
        m.create_index(
            Index::create()
                .name("users_inactive_idx")
                .table(Users::Table)
                .col(Users::CreatedAt)
                .col(Users::Id)
                .col(Users::DeletedAt)
                .and_where(Expr::cust(INACTIVE))
                .to_owned(),
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
            ("users_unverified_idx", Users::Table.into_iden()),
            ("users_inactive_idx", Users::Table.into_iden()),
            ("users_deleted_at_idx", Users::Table.into_iden()),
            ("users_role_created_at_idx", Users::Table.into_iden()),
            ("users_created_at_id_idx", Users::Table.into_iden()),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned()).await?;
        }
        m.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await?;
        Ok(())
    }
}
