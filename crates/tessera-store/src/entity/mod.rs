//! SeaORM entities: one module per table.

pub mod api_key;
pub mod audit_log;
pub mod flow_state;
pub mod identity;
pub mod mail_outbox;
pub mod mfa_factor;
pub mod mfa_token;
pub mod oauth_authorization;
pub mod oauth_client;
pub mod oauth_consent;
pub mod one_time_token;
pub mod passkey;
pub mod profile;
pub mod recovery_code;
pub mod server_key;
pub mod session;
pub mod user;
pub mod webauthn_challenge;
pub mod webhook_outbox;
