//! Refresh tokens become re-derivable (SPEC §4.2): the session row holds a rotation
//! counter, and the `refresh_tokens` table goes. A token issued before this migration
//! still refreshes once: the hash of each live session's current token moves to
//! `sessions.legacy_token_hash`, where it stands for counter 0 of that session.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    RefreshCounter,
    RefreshedAt,
    LegacyTokenHash,
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

const LEGACY_INDEX: &str = "sessions_legacy_token_hash_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        let add = [
            ColumnDef::new(Sessions::RefreshCounter).big_integer().not_null().default(0).to_owned(),
            ColumnDef::new(Sessions::RefreshedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Sessions::LegacyTokenHash).string_len(64).null().to_owned(),
        ];
        for mut col in add {
            m.alter_table(Table::alter().table(Sessions::Table).add_column(&mut col).to_owned()).await?;
        }
        m.get_connection()
            .execute_unprepared(
                "UPDATE sessions SET legacy_token_hash = (SELECT t.token_hash FROM refresh_tokens t \
                 WHERE t.session_id = sessions.id AND t.used_at IS NULL AND t.revoked = false LIMIT 1) \
                 WHERE revoked_at IS NULL",
            )
            .await?;
        m.create_index(
            Index::create()
                .name(LEGACY_INDEX)
                .table(Sessions::Table)
                .col(Sessions::LegacyTokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await?;
        Ok(())
    }

    /// Back to a token table, empty: every session then has no token and its holder
    /// signs in again.
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(ColumnDef::new(RefreshTokens::TokenHash).string_len(64).not_null().primary_key())
                .col(ColumnDef::new(RefreshTokens::SessionId).uuid().not_null())
                .col(ColumnDef::new(RefreshTokens::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(RefreshTokens::UsedAt).timestamp_with_time_zone().null())
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
        m.drop_index(Index::drop().name(LEGACY_INDEX).table(Sessions::Table).to_owned()).await?;
        for col in [Sessions::LegacyTokenHash, Sessions::RefreshedAt, Sessions::RefreshCounter] {
            m.alter_table(Table::alter().table(Sessions::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
