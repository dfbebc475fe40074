//! tessera's services: everything the HTTP surfaces do is a call into [`Core`].
//! A service owns its transaction; handlers never run SQL or decide policy.
//!
//! One folder or file per capability, each owning its rules and its part of `Core`:
//! `session/` (tokens, the sign-in pipeline, refresh, revocation), `account/` (users,
//! profiles, administration, privacy), `mfa/`, `passkey/` (WebAuthn ceremonies), `identity/` (sign-in providers, linked identities,
//! anonymous users, PKCE codes), `mail/` (outbox, transports, links and
//! codes), `limits`, `audit`, `api_keys`. Beneath them: `caller` (who is calling), `app`
//! (the `Core` itself and its start), `settings`, `secrets` (where keys come from),
//! `crypto`, and the ports `kv` and `hasher`. Nothing imports a capability above it.

pub mod account;
pub mod api_keys;
pub mod app;
pub mod audit;
pub mod caller;
pub mod crypto;
pub mod hasher;
pub mod hooks;
pub mod identity;
pub mod import;
pub mod kv;
pub mod limits;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod passkey;
pub mod phone;
pub mod secrets;
pub mod session;
pub mod settings;

pub use app::{start_problems, store_config, Core, Vitals};
pub use caller::{now, ClientInfo, Surface};
pub use tessera_domain as domain;
pub use tessera_store::entity;
