//! Accounts (SPEC §2.1, §3, §5.7, §5.8): registration, the user's own changes and
//! profile, administration of every user, privacy (export, deletion, the purge), the
//! encryption of stored personal data, and benchmark seeding.

pub mod admin;
pub mod pii;
pub mod privacy;
pub mod seed;
pub mod users;
