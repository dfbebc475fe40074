//! Passkeys (SPEC §5.10): the WebAuthn credentials users sign in with, and the
//! single-use challenges of their ceremonies (kept in the database, so that every node
//! sharing it honours a challenge another node handed out, and only once).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Name,
    Credential,
    Aaguid,
    BackedUp,
    SignCount,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum WebauthnChallenges {
    Table,
    Id,
    Kind,
    UserId,
    State,
    ExpiresAt,
    CreatedAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
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
        m.create_table(
            Table::create()
                .table(Passkeys::Table)
                .col(ColumnDef::new(Passkeys::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Passkeys::UserId).uuid().not_null())
                // base64url, as the browser names it (`rawId`): unique across all users.
                .col(ColumnDef::new(Passkeys::CredentialId).string_len(1400).not_null())
                .col(ColumnDef::new(Passkeys::Name).string_len(120).not_null())
                // The public key and its registration facts (webauthn-rs's Credential, JSON).
                .col(ColumnDef::new(Passkeys::Credential).text().not_null())
                .col(ColumnDef::new(Passkeys::Aaguid).string_len(36).null())
                .col(ColumnDef::new(Passkeys::BackedUp).boolean().not_null().default(false))
                .col(ColumnDef::new(Passkeys::SignCount).big_integer().not_null().default(0))
                .col(ts(Passkeys::CreatedAt))
                .col(ColumnDef::new(Passkeys::LastUsedAt).timestamp_with_time_zone().null())
                .foreign_key(&mut owner(Passkeys::Table, "passkeys_user_id_fkey", Passkeys::UserId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("passkeys_credential_id_key")
                .table(Passkeys::Table)
                .col(Passkeys::CredentialId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("passkeys_user_id_idx").table(Passkeys::Table).col(Passkeys::UserId).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebauthnChallenges::Table)
                .col(ColumnDef::new(WebauthnChallenges::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(WebauthnChallenges::Kind).string_len(16).not_null())
                .col(ColumnDef::new(WebauthnChallenges::UserId).uuid().null())
                .col(ColumnDef::new(WebauthnChallenges::State).text().not_null())
                .col(ts(WebauthnChallenges::ExpiresAt))
                .col(ts(WebauthnChallenges::CreatedAt))
                .foreign_key(&mut owner(
                    WebauthnChallenges::Table,
                    "webauthn_challenges_user_id_fkey",
                    WebauthnChallenges::UserId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webauthn_challenges_expires_at_idx")
                .table(WebauthnChallenges::Table)
                .col(WebauthnChallenges::ExpiresAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [WebauthnChallenges::Table.into_iden(), Passkeys::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
