use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    NewEmail,
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    Id,
    UserId,
    Kind,
    TokenHash,
    CodeHash,
    CodeExpiresAt,
    CodeAttempts,
    NewEmail,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    Kind,
    ToAddr,
    Subject,
    TextBody,
    HtmlBody,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    SentAt,
    FailedAt,
    LastError,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The address a pending email change will switch to, shown until confirmed.
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::NewEmail).string_len(320).null())
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OneTimeTokens::Table)
                .col(ColumnDef::new(OneTimeTokens::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(OneTimeTokens::UserId).uuid().not_null())
                .col(ColumnDef::new(OneTimeTokens::Kind).string_len(32).not_null())
                .col(ColumnDef::new(OneTimeTokens::TokenHash).string_len(64).not_null())
                .col(ColumnDef::new(OneTimeTokens::CodeHash).string_len(64).null())
                .col(ColumnDef::new(OneTimeTokens::CodeExpiresAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(OneTimeTokens::CodeAttempts).integer().not_null().default(0))
                .col(ColumnDef::new(OneTimeTokens::NewEmail).string_len(320).null())
                .col(ColumnDef::new(OneTimeTokens::ExpiresAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(OneTimeTokens::UsedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(OneTimeTokens::CreatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .name("one_time_tokens_user_id_fkey")
                        .from(OneTimeTokens::Table, OneTimeTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("one_time_tokens_token_hash_key")
                .table(OneTimeTokens::Table)
                .col(OneTimeTokens::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("one_time_tokens_user_kind_idx")
                .table(OneTimeTokens::Table)
                .col(OneTimeTokens::UserId)
                .col(OneTimeTokens::Kind)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MailOutbox::Table)
                .col(ColumnDef::new(MailOutbox::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(MailOutbox::Kind).string_len(32).not_null())
                .col(ColumnDef::new(MailOutbox::ToAddr).string_len(320).not_null())
                .col(ColumnDef::new(MailOutbox::Subject).string_len(512).not_null())
                .col(ColumnDef::new(MailOutbox::TextBody).text().not_null())
                .col(ColumnDef::new(MailOutbox::HtmlBody).text().not_null())
                .col(ColumnDef::new(MailOutbox::Attempts).integer().not_null().default(0))
                .col(ColumnDef::new(MailOutbox::NextAttemptAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(MailOutbox::LockedUntil).timestamp_with_time_zone().null())
                .col(ColumnDef::new(MailOutbox::SentAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(MailOutbox::FailedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(MailOutbox::LastError).string_len(1024).null())
                .col(ColumnDef::new(MailOutbox::CreatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mail_outbox_pending_idx")
                .table(MailOutbox::Table)
                .col(MailOutbox::SentAt)
                .col(MailOutbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MailOutbox::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(OneTimeTokens::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::NewEmail).to_owned()).await?;
        Ok(())
    }
}
