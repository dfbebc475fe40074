//! What the third review asked of the schema:
//! - `one_time_tokens.proves_holder`: whether a token was mailed in answer to the request
//!   that set the account's credentials (the sign-up mail) or to its signed-in holder, so
//!   that a first proof of an address with any other token voids those credentials.
//!   Tokens mailed before this migration keep today's rule: sign-in links and invitations
//!   never proved the holder, the others did.
//! - `audit_log.email_index`: the blind index of the address an event names, so that a
//!   purge finds a person's events by their address even when it is sealed.
//! - `server_keys`: the keys a development server generates (JWT secret, refresh-token
//!   key, MFA key), kept in the database so that every node sharing it agrees on them;
//!   the first node to insert one wins.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    ProvesHolder,
    Kind,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    EmailIndex,
}

#[derive(DeriveIden)]
enum ServerKeys {
    Table,
    Name,
    Value,
    CreatedAt,
}

const EMAIL_INDEX: &str = "audit_log_email_index_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let holder = ColumnDef::new(OneTimeTokens::ProvesHolder).boolean().not_null().default(true).to_owned();
        m.alter_table(Table::alter().table(OneTimeTokens::Table).add_column(holder).to_owned()).await?;
        m.exec_stmt(
            Query::update()
                .table(OneTimeTokens::Table)
                .value(OneTimeTokens::ProvesHolder, false)
                .and_where(Expr::col(OneTimeTokens::Kind).is_in(["magic_link", "invite", "recovery"]))
                .to_owned(),
        )
        .await?;
        let index = ColumnDef::new(AuditLog::EmailIndex).string_len(64).null().to_owned();
        m.alter_table(Table::alter().table(AuditLog::Table).add_column(index).to_owned()).await?;
        m.create_index(
            Index::create()
                .name(EMAIL_INDEX)
                .table(AuditLog::Table)
                .col(AuditLog::EmailIndex)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ServerKeys::Table)
                .if_not_exists()
                .col(ColumnDef::new(ServerKeys::Name).string_len(64).not_null().primary_key())
                .col(ColumnDef::new(ServerKeys::Value).text().not_null())
                .col(ColumnDef::new(ServerKeys::CreatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ServerKeys::Table).to_owned()).await?;
        m.drop_index(Index::drop().name(EMAIL_INDEX).table(AuditLog::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(AuditLog::Table).drop_column(AuditLog::EmailIndex).to_owned()).await?;
        m.alter_table(Table::alter().table(OneTimeTokens::Table).drop_column(OneTimeTokens::ProvesHolder).to_owned())
            .await
    }
}
