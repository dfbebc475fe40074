//! What the Supabase surface keeps beside a profile (SPEC §2.3): `user_metadata`, the JSON
//! object the user (or an admin) writes, shown on every surface; `app_metadata`, the
//! custom keys only an admin writes; and `invited_at`, when an admin invited the user.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Profiles {
    Table,
    UserMetadata,
    AppMetadata,
    InvitedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let cols = [
            ColumnDef::new(Profiles::UserMetadata).json_binary().not_null().default("{}").to_owned(),
            ColumnDef::new(Profiles::AppMetadata).json_binary().not_null().default("{}").to_owned(),
            ColumnDef::new(Profiles::InvitedAt).timestamp_with_time_zone().null().to_owned(),
        ];
        for col in cols {
            m.alter_table(Table::alter().table(Profiles::Table).add_column(col).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [Profiles::UserMetadata, Profiles::AppMetadata, Profiles::InvitedAt] {
            m.alter_table(Table::alter().table(Profiles::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
