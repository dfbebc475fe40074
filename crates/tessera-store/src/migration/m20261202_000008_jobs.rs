//! Periodic jobs shared by every node (the purge): a row per job says until when a node
//! holds it (`holder`, `running_until`: a lease) and when it is next due (`next_run_at`), so that
//! several nodes never run one job at once, nor more often than its interval. And the
//! index the purge needs to find the audit rows a purged user acted in.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Name,
    Holder,
    RunningUntil,
    NextRunAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    ActorId,
}

const ACTOR_INDEX: &str = "audit_log_actor_id_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(JobRuns::Table)
                .if_not_exists()
                .col(ColumnDef::new(JobRuns::Name).string_len(64).not_null().primary_key())
                .col(ColumnDef::new(JobRuns::Holder).string_len(64).null())
                .col(ColumnDef::new(JobRuns::RunningUntil).timestamp_with_time_zone().null())
                .col(ColumnDef::new(JobRuns::NextRunAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name(ACTOR_INDEX).table(AuditLog::Table).col(AuditLog::ActorId).if_not_exists().to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(ACTOR_INDEX).table(AuditLog::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(JobRuns::Table).to_owned()).await
    }
}
