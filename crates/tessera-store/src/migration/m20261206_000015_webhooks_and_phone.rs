//! Event webhooks (SPEC §5.13): `webhook_outbox` holds one row per event and receiver,
//! written in the transaction of the audit row it tells of (the event's payload is read
//! from that row when it is delivered, so an erased user's events carry nothing of
//! theirs), claimed by senders with a lease and delivered in order per user. Phone
//! sign-in (SPEC §5.14) finds users by number: `users.phone_index`, the number's blind
//! index under PII encryption (as `email_index` is the address's).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum WebhookOutbox {
    Table,
    Id,
    AuditId,
    Event,
    UserId,
    Url,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    DeliveredAt,
    FailedAt,
    LastError,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Phone,
    PhoneIndex,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let ts = |c: WebhookOutbox| ColumnDef::new(c).timestamp_with_time_zone().null().to_owned();
        m.create_table(
            Table::create()
                .table(WebhookOutbox::Table)
                // The `webhook-id` of every attempt: receivers deduplicate by it.
                .col(ColumnDef::new(WebhookOutbox::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(WebhookOutbox::AuditId).uuid().not_null())
                // The webhook's event (user.created, …).
                .col(ColumnDef::new(WebhookOutbox::Event).string_len(64).not_null())
                .col(ColumnDef::new(WebhookOutbox::UserId).uuid().null())
                .col(ColumnDef::new(WebhookOutbox::Url).text().not_null())
                .col(ColumnDef::new(WebhookOutbox::Attempts).integer().not_null().default(0))
                .col(ColumnDef::new(WebhookOutbox::NextAttemptAt).timestamp_with_time_zone().not_null())
                .col(ts(WebhookOutbox::LockedUntil))
                .col(ts(WebhookOutbox::DeliveredAt))
                .col(ts(WebhookOutbox::FailedAt))
                .col(ColumnDef::new(WebhookOutbox::LastError).text().null())
                .col(ColumnDef::new(WebhookOutbox::CreatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        // The senders' scan: what is still to deliver, oldest first.
        m.create_index(
            Index::create()
                .name("webhook_outbox_pending_idx")
                .table(WebhookOutbox::Table)
                .col(WebhookOutbox::DeliveredAt)
                .col(WebhookOutbox::FailedAt)
                .col(WebhookOutbox::Id)
                .to_owned(),
        )
        .await?;
        // Whether a user's earlier event still waits.
        m.create_index(
            Index::create()
                .name("webhook_outbox_user_idx")
                .table(WebhookOutbox::Table)
                .col(WebhookOutbox::UserId)
                .col(WebhookOutbox::Id)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::PhoneIndex).string_len(64).null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("users_phone_index_idx").table(Users::Table).col(Users::PhoneIndex).to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("users_phone_idx").table(Users::Table).col(Users::Phone).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("users_phone_idx").table(Users::Table).to_owned()).await?;
        m.drop_index(Index::drop().name("users_phone_index_idx").table(Users::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::PhoneIndex).to_owned()).await?;
        m.drop_table(Table::drop().table(WebhookOutbox::Table).to_owned()).await?;
        Ok(())
    }
}

#[derive(DeriveMigrationName)]
pub struct Migration;
