//! Multi-factor authentication (SPEC §5.6): TOTP factors (secrets encrypted), recovery
//! codes (hashed), the single-use tokens between a sign-in's two steps, and the user's
//! `mfa_enabled`, true exactly when a verified factor exists.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    MfaEnabled,
}

#[derive(DeriveIden)]
enum MfaFactors {
    Table,
    Id,
    UserId,
    Name,
    Secret,
    Status,
    LastUsedStep,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MfaTokens {
    Table,
    Id,
    TokenHash,
    UserId,
    TokenVersion,
    Attempts,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().to_owned()
}

fn owner(table: impl IntoIden + 'static, name: &str, col: impl IntoIden + 'static) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, col)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let col = ColumnDef::new(Users::MfaEnabled).boolean().not_null().default(false).to_owned();
        m.alter_table(Table::alter().table(Users::Table).add_column(col).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(MfaFactors::Table)
                .col(ColumnDef::new(MfaFactors::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(MfaFactors::UserId).uuid().not_null())
                .col(ColumnDef::new(MfaFactors::Name).string_len(100).not_null())
                .col(ColumnDef::new(MfaFactors::Secret).text().not_null())
                .col(ColumnDef::new(MfaFactors::Status).string_len(16).not_null())
                .col(ColumnDef::new(MfaFactors::LastUsedStep).big_integer().null())
                .col(ts(MfaFactors::CreatedAt))
                .col(ts_null(MfaFactors::LastUsedAt))
                .foreign_key(&mut owner(MfaFactors::Table, "mfa_factors_user_id_fkey", MfaFactors::UserId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("mfa_factors_user_id_idx").table(MfaFactors::Table).col(MfaFactors::UserId).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RecoveryCodes::Table)
                .col(ColumnDef::new(RecoveryCodes::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                .col(ColumnDef::new(RecoveryCodes::CodeHash).string_len(64).not_null())
                .col(ts_null(RecoveryCodes::UsedAt))
                .col(ts(RecoveryCodes::CreatedAt))
                .foreign_key(&mut owner(RecoveryCodes::Table, "recovery_codes_user_id_fkey", RecoveryCodes::UserId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("recovery_codes_user_id_code_hash_key")
                .table(RecoveryCodes::Table)
                .col(RecoveryCodes::UserId)
                .col(RecoveryCodes::CodeHash)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MfaTokens::Table)
                .col(ColumnDef::new(MfaTokens::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(MfaTokens::TokenHash).string_len(64).not_null())
                .col(ColumnDef::new(MfaTokens::UserId).uuid().not_null())
                .col(ColumnDef::new(MfaTokens::TokenVersion).integer().not_null())
                .col(ColumnDef::new(MfaTokens::Attempts).integer().not_null().default(0))
                .col(ts(MfaTokens::ExpiresAt))
                .col(ts_null(MfaTokens::UsedAt))
                .col(ts(MfaTokens::CreatedAt))
                .foreign_key(&mut owner(MfaTokens::Table, "mfa_tokens_user_id_fkey", MfaTokens::UserId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mfa_tokens_token_hash_key")
                .table(MfaTokens::Table)
                .col(MfaTokens::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("mfa_tokens_user_id_idx").table(MfaTokens::Table).col(MfaTokens::UserId).to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [MfaTokens::Table.into_iden(), RecoveryCodes::Table.into_iden(), MfaFactors::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::MfaEnabled).to_owned()).await
    }
}
