//! Versioned, append-only migrations. Never edit one after it has landed: add a new one.

use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261122_000002_mail;
mod m20261122_000003_admin;
mod m20261122_000004_user_counts;
mod m20261202_000005_session_counter;
mod m20261202_000006_token_confirmations;
mod m20261202_000007_mfa;
mod m20261202_000008_jobs;
mod m20261202_000009_pii;
mod m20261202_000010_metadata;
mod m20261206_000011_proofs_and_keys;
mod m20261206_000012_passkeys;
mod m20261206_000013_identities;
mod m20261206_000014_oauth_server;
mod m20261206_000015_webhooks_and_phone;

pub use m20261122_000003_admin::INACTIVE;

/// Every migration of tessera, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261122_000002_mail::Migration),
            Box::new(m20261122_000003_admin::Migration),
            Box::new(m20261122_000004_user_counts::Migration),
            Box::new(m20261202_000005_session_counter::Migration),
            Box::new(m20261202_000006_token_confirmations::Migration),
            Box::new(m20261202_000007_mfa::Migration),
            Box::new(m20261202_000008_jobs::Migration),
            Box::new(m20261202_000009_pii::Migration),
            Box::new(m20261202_000010_metadata::Migration),
            Box::new(m20261206_000011_proofs_and_keys::Migration),
            Box::new(m20261206_000012_passkeys::Migration),
            Box::new(m20261206_000013_identities::Migration),
            Box::new(m20261206_000014_oauth_server::Migration),
            Box::new(m20261206_000015_webhooks_and_phone::Migration),
        ]
    }
}
