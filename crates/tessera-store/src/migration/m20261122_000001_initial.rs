use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    FullName,
    Phone,
    EmailVerifiedAt,
    PhoneVerifiedAt,
    IsActive,
    Role,
    TokenVersion,
    LastLoginAt,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Profiles {
    Table,
    Id,
    UserId,
    AvatarUrl,
    Location,
    DateOfBirth,
    Bio,
    Preferences,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    Ip,
    UserAgent,
    Aal,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    CreatedAt,
    UsedAt,
    Revoked,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    CreatedAt,
    Event,
    UserId,
    ActorId,
    Ip,
    UserAgent,
    RequestId,
    Detail,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Users::Email).string_len(320).not_null())
                .col(ColumnDef::new(Users::PasswordHash).string_len(1024).not_null())
                .col(ColumnDef::new(Users::FullName).string_len(200).null())
                .col(ColumnDef::new(Users::Phone).string_len(32).null())
                .col(ts_null(Users::EmailVerifiedAt))
                .col(ts_null(Users::PhoneVerifiedAt))
                .col(ColumnDef::new(Users::IsActive).boolean().not_null().default(true))
                .col(ColumnDef::new(Users::Role).string_len(32).not_null().default("user"))
                .col(ColumnDef::new(Users::TokenVersion).integer().not_null().default(0))
                .col(ts_null(Users::LastLoginAt))
                .col(ts(Users::CreatedAt))
                .col(ts(Users::UpdatedAt))
                .col(ts_null(Users::DeletedAt))
                .to_owned(),
        )
        .await?;
        // Emails are stored normalised, so a plain unique index is case-insensitive.
        m.create_index(
            Index::create().name("users_email_key").table(Users::Table).col(Users::Email).unique().to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("users_created_at_idx").table(Users::Table).col(Users::CreatedAt).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Profiles::Table)
                .col(ColumnDef::new(Profiles::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Profiles::UserId).uuid().not_null())
                .col(ColumnDef::new(Profiles::AvatarUrl).string_len(2048).null())
                .col(ColumnDef::new(Profiles::Location).string_len(200).null())
                .col(ColumnDef::new(Profiles::DateOfBirth).date().null())
                .col(ColumnDef::new(Profiles::Bio).text().null())
                .col(ColumnDef::new(Profiles::Preferences).json_binary().not_null())
                .col(ts(Profiles::CreatedAt))
                .col(ts(Profiles::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("profiles_user_id_fkey")
                        .from(Profiles::Table, Profiles::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("profiles_user_id_key")
                .table(Profiles::Table)
                .col(Profiles::UserId)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                .col(ts(Sessions::CreatedAt))
                .col(ts(Sessions::LastUsedAt))
                .col(ts(Sessions::ExpiresAt))
                .col(ts_null(Sessions::RevokedAt))
                .col(ColumnDef::new(Sessions::Ip).string_len(64).null())
                .col(ColumnDef::new(Sessions::UserAgent).string_len(512).null())
                .col(ColumnDef::new(Sessions::Aal).string_len(8).not_null().default("aal1"))
                .foreign_key(
                    ForeignKey::create()
                        .name("sessions_user_id_fkey")
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sessions_user_id_idx")
                .table(Sessions::Table)
                .col(Sessions::UserId)
                .col(Sessions::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("sessions_expires_at_idx").table(Sessions::Table).col(Sessions::ExpiresAt).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(ColumnDef::new(RefreshTokens::TokenHash).string_len(64).not_null().primary_key())
                .col(ColumnDef::new(RefreshTokens::SessionId).uuid().not_null())
                .col(ts(RefreshTokens::CreatedAt))
                .col(ts_null(RefreshTokens::UsedAt))
                .col(ColumnDef::new(RefreshTokens::Revoked).boolean().not_null().default(false))
                .foreign_key(
                    ForeignKey::create()
                        .name("refresh_tokens_session_id_fkey")
                        .from(RefreshTokens::Table, RefreshTokens::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refresh_tokens_session_id_idx")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::SessionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(ColumnDef::new(AuditLog::Id).uuid().not_null().primary_key())
                .col(ts(AuditLog::CreatedAt))
                .col(ColumnDef::new(AuditLog::Event).string_len(64).not_null())
                .col(ColumnDef::new(AuditLog::UserId).uuid().null())
                .col(ColumnDef::new(AuditLog::ActorId).uuid().null())
                .col(ColumnDef::new(AuditLog::Ip).string_len(64).null())
                .col(ColumnDef::new(AuditLog::UserAgent).string_len(512).null())
                .col(ColumnDef::new(AuditLog::RequestId).string_len(128).null())
                .col(ColumnDef::new(AuditLog::Detail).json_binary().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_log_user_id_idx")
                .table(AuditLog::Table)
                .col(AuditLog::UserId)
                .col(AuditLog::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_log_event_idx")
                .table(AuditLog::Table)
                .col(AuditLog::Event)
                .col(AuditLog::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("audit_log_created_at_idx").table(AuditLog::Table).col(AuditLog::CreatedAt).to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(Sessions::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(Profiles::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(Users::Table).to_owned()).await?;
        Ok(())
    }
}
