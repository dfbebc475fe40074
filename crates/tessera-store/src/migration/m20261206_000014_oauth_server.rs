//! tessera as an OAuth 2.1 and OpenID Connect provider (SPEC §5.12): the applications
//! registered to sign their users in here (`oauth_clients`, secrets kept as hashes only),
//! the authorization requests on their way through sign-in and consent to a code
//! (`oauth_authorizations`, the code kept as its SHA-256), the consents users gave
//! (`oauth_consents`, one per user and client), and which client a session was opened
//! for (`sessions.oauth_client_id`, with the scopes granted in `oauth_scope`: a provider session is a tessera session).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    OauthClientId,
    OauthScope,
    OauthAuthTime,
}

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Id,
    SecretHash,
    ClientType,
    TokenEndpointAuthMethod,
    RegistrationType,
    ClientName,
    ClientUri,
    LogoUri,
    RedirectUris,
    PostLogoutRedirectUris,
    GrantTypes,
    Scope,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OauthAuthorizations {
    Table,
    Id,
    ClientId,
    UserId,
    RedirectUri,
    Scope,
    State,
    Nonce,
    CodeChallenge,
    Prompt,
    MaxAge,
    Status,
    CodeHash,
    AuthTime,
    Aal,
    Amr,
    SessionId,
    CreatedAt,
    ExpiresAt,
    CodeExpiresAt,
}

#[derive(DeriveIden)]
enum OauthConsents {
    Table,
    UserId,
    ClientId,
    Scope,
    GrantedAt,
    UpdatedAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}

fn cascade(
    table: impl IntoIden + 'static,
    name: &str,
    col: impl IntoIden + 'static,
    to: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(table, col).to(to, to_col).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OauthClients::Table)
                // The `client_id` applications are configured with.
                .col(ColumnDef::new(OauthClients::Id).uuid().not_null().primary_key())
                // SHA-256 (hex) of a confidential client's secret; none for a public client.
                .col(ColumnDef::new(OauthClients::SecretHash).string_len(64).null())
                .col(ColumnDef::new(OauthClients::ClientType).string_len(16).not_null())
                .col(ColumnDef::new(OauthClients::TokenEndpointAuthMethod).string_len(32).not_null())
                .col(ColumnDef::new(OauthClients::RegistrationType).string_len(16).not_null())
                .col(ColumnDef::new(OauthClients::ClientName).string_len(255).not_null())
                .col(ColumnDef::new(OauthClients::ClientUri).text().null())
                .col(ColumnDef::new(OauthClients::LogoUri).text().null())
                // JSON arrays of strings.
                .col(ColumnDef::new(OauthClients::RedirectUris).text().not_null())
                .col(ColumnDef::new(OauthClients::PostLogoutRedirectUris).text().not_null())
                .col(ColumnDef::new(OauthClients::GrantTypes).text().not_null())
                // The scopes the client may ask for, space-separated.
                .col(ColumnDef::new(OauthClients::Scope).text().not_null())
                .col(ts(OauthClients::CreatedAt))
                .col(ts(OauthClients::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OauthAuthorizations::Table)
                // The `authorization_id` of the sign-in and consent pages and of Supabase's API.
                .col(ColumnDef::new(OauthAuthorizations::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(OauthAuthorizations::ClientId).uuid().not_null())
                // The user, once signed in and decided.
                .col(ColumnDef::new(OauthAuthorizations::UserId).uuid().null())
                .col(ColumnDef::new(OauthAuthorizations::RedirectUri).text().not_null())
                .col(ColumnDef::new(OauthAuthorizations::Scope).text().not_null())
                .col(ColumnDef::new(OauthAuthorizations::State).text().null())
                .col(ColumnDef::new(OauthAuthorizations::Nonce).text().null())
                .col(ColumnDef::new(OauthAuthorizations::CodeChallenge).string_len(128).not_null())
                .col(ColumnDef::new(OauthAuthorizations::Prompt).string_len(32).null())
                .col(ColumnDef::new(OauthAuthorizations::MaxAge).big_integer().null())
                // pending, approved (a code is out), denied, used (the code was exchanged).
                .col(ColumnDef::new(OauthAuthorizations::Status).string_len(16).not_null())
                // SHA-256 (hex) of the code handed to the client: the code itself is never stored.
                .col(ColumnDef::new(OauthAuthorizations::CodeHash).string_len(64).null())
                .col(ColumnDef::new(OauthAuthorizations::AuthTime).timestamp_with_time_zone().null())
                .col(ColumnDef::new(OauthAuthorizations::Aal).string_len(16).null())
                .col(ColumnDef::new(OauthAuthorizations::Amr).string_len(32).null())
                // The session the code opened: a replayed code revokes it.
                .col(ColumnDef::new(OauthAuthorizations::SessionId).uuid().null())
                .col(ts(OauthAuthorizations::CreatedAt))
                .col(ts(OauthAuthorizations::ExpiresAt))
                .col(ColumnDef::new(OauthAuthorizations::CodeExpiresAt).timestamp_with_time_zone().null())
                .foreign_key(&mut cascade(
                    OauthAuthorizations::Table,
                    "oauth_authorizations_client_id_fkey",
                    OauthAuthorizations::ClientId,
                    OauthClients::Table,
                    OauthClients::Id,
                ))
                .foreign_key(&mut cascade(
                    OauthAuthorizations::Table,
                    "oauth_authorizations_user_id_fkey",
                    OauthAuthorizations::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("oauth_authorizations_code_hash_key")
                .table(OauthAuthorizations::Table)
                .col(OauthAuthorizations::CodeHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("oauth_authorizations_expires_at_idx")
                .table(OauthAuthorizations::Table)
                .col(OauthAuthorizations::ExpiresAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OauthConsents::Table)
                .col(ColumnDef::new(OauthConsents::UserId).uuid().not_null())
                .col(ColumnDef::new(OauthConsents::ClientId).uuid().not_null())
                // The scopes consented to, space-separated.
                .col(ColumnDef::new(OauthConsents::Scope).text().not_null())
                .col(ts(OauthConsents::GrantedAt))
                .col(ts(OauthConsents::UpdatedAt))
                .primary_key(Index::create().col(OauthConsents::UserId).col(OauthConsents::ClientId))
                .foreign_key(&mut cascade(
                    OauthConsents::Table,
                    "oauth_consents_user_id_fkey",
                    OauthConsents::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .foreign_key(&mut cascade(
                    OauthConsents::Table,
                    "oauth_consents_client_id_fkey",
                    OauthConsents::ClientId,
                    OauthClients::Table,
                    OauthClients::Id,
                ))
                .to_owned(),
        )
        .await?;
        let client = ColumnDef::new(Sessions::OauthClientId).uuid().null().to_owned();
        m.alter_table(Table::alter().table(Sessions::Table).add_column(client).to_owned()).await?;
        // The scopes granted to the client, space-separated.
        let scope = ColumnDef::new(Sessions::OauthScope).text().null().to_owned();
        m.alter_table(Table::alter().table(Sessions::Table).add_column(scope).to_owned()).await?;
        // When the user signed in at the provider: every ID token of the session says so.
        let auth_time = ColumnDef::new(Sessions::OauthAuthTime).timestamp_with_time_zone().null().to_owned();
        m.alter_table(Table::alter().table(Sessions::Table).add_column(auth_time).to_owned()).await?;
        m.create_index(
            Index::create()
                .name("sessions_oauth_client_id_idx")
                .table(Sessions::Table)
                .col(Sessions::OauthClientId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("sessions_oauth_client_id_idx").table(Sessions::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Sessions::Table).drop_column(Sessions::OauthAuthTime).to_owned()).await?;
        m.alter_table(Table::alter().table(Sessions::Table).drop_column(Sessions::OauthScope).to_owned()).await?;
        m.alter_table(Table::alter().table(Sessions::Table).drop_column(Sessions::OauthClientId).to_owned()).await?;
        m.drop_table(Table::drop().table(OauthConsents::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(OauthAuthorizations::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(OauthClients::Table).to_owned()).await?;
        Ok(())
    }
}

#[derive(DeriveMigrationName)]
pub struct Migration;
