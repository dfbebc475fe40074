//! External identities (SPEC §5.11): the accounts at other providers (Google, GitHub, any
//! OpenID Connect provider) a user signs in with, one row per `(provider, provider_id)`;
//! the one-time codes of the PKCE flows (`flow_states`: a code handed to the app's
//! redirect, exchanged once, with the verifier, for a session); and anonymous users
//! (`users.is_anonymous`), who have no address of their own until they add one.
//! `users.has_identities` says whether a user has any identity, so that the user objects
//! every sign-in and refresh answers read the identities only of users who have some.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    IsAnonymous,
    HasIdentities,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    Id,
    UserId,
    Provider,
    ProviderId,
    Email,
    Data,
    LastSignInAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FlowStates {
    Table,
    Id,
    CodeHash,
    UserId,
    CodeChallenge,
    Provider,
    CreatedAt,
    ExpiresAt,
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
        let anonymous = ColumnDef::new(Users::IsAnonymous).boolean().not_null().default(false).to_owned();
        m.alter_table(Table::alter().table(Users::Table).add_column(anonymous).to_owned()).await?;
        let linked = ColumnDef::new(Users::HasIdentities).boolean().not_null().default(false).to_owned();
        m.alter_table(Table::alter().table(Users::Table).add_column(linked).to_owned()).await?;
        // The purge finds stale anonymous users by age.
        m.create_index(
            Index::create()
                .name("users_anonymous_created_at_idx")
                .table(Users::Table)
                .col(Users::IsAnonymous)
                .col(Users::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Identities::Table)
                .col(ColumnDef::new(Identities::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Identities::UserId).uuid().not_null())
                .col(ColumnDef::new(Identities::Provider).string_len(64).not_null())
                // The provider's subject (`sub`, GitHub's numeric id).
                .col(ColumnDef::new(Identities::ProviderId).string_len(255).not_null())
                .col(ColumnDef::new(Identities::Email).text().null())
                // The provider's claims about the user (name, picture, email_verified, ...), JSON.
                .col(ColumnDef::new(Identities::Data).text().not_null())
                .col(ColumnDef::new(Identities::LastSignInAt).timestamp_with_time_zone().null())
                .col(ts(Identities::CreatedAt))
                .col(ts(Identities::UpdatedAt))
                .foreign_key(&mut owner(Identities::Table, "identities_user_id_fkey", Identities::UserId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("identities_provider_provider_id_key")
                .table(Identities::Table)
                .col(Identities::Provider)
                .col(Identities::ProviderId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("identities_user_id_idx").table(Identities::Table).col(Identities::UserId).to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(FlowStates::Table)
                .col(ColumnDef::new(FlowStates::Id).uuid().not_null().primary_key())
                // SHA-256 (hex) of the code handed to the app: the code itself is never stored.
                .col(ColumnDef::new(FlowStates::CodeHash).string_len(64).not_null())
                .col(ColumnDef::new(FlowStates::UserId).uuid().not_null())
                // The app's S256 challenge (base64url of SHA-256 of its verifier).
                .col(ColumnDef::new(FlowStates::CodeChallenge).string_len(128).not_null())
                .col(ColumnDef::new(FlowStates::Provider).string_len(64).not_null())
                .col(ts(FlowStates::CreatedAt))
                .col(ts(FlowStates::ExpiresAt))
                .foreign_key(&mut owner(FlowStates::Table, "flow_states_user_id_fkey", FlowStates::UserId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flow_states_code_hash_key")
                .table(FlowStates::Table)
                .col(FlowStates::CodeHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flow_states_expires_at_idx")
                .table(FlowStates::Table)
                .col(FlowStates::ExpiresAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [FlowStates::Table.into_iden(), Identities::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        m.drop_index(Index::drop().name("users_anonymous_created_at_idx").table(Users::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::HasIdentities).to_owned()).await?;
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::IsAnonymous).to_owned()).await
    }
}
