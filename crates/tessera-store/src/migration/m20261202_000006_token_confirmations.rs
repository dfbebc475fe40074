//! When a one-time token was used to confirm something (as opposed to retired unused):
//! a secure email change switches the address only once both of its tokens, the one
//! sent to the new address and the one sent to the current address, are confirmed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    ConfirmedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let col = ColumnDef::new(OneTimeTokens::ConfirmedAt).timestamp_with_time_zone().null().to_owned();
        m.alter_table(Table::alter().table(OneTimeTokens::Table).add_column(col).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(OneTimeTokens::Table).drop_column(OneTimeTokens::ConfirmedAt).to_owned())
            .await
    }
}
