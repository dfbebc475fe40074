//! tessera's integration tests: one binary, the real server on a loopback port, a fresh
//! database per test (SQLite file, or a new PostgreSQL database when
//! `TEST_DATABASE_URL=postgres://…`), driven over HTTP like any client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

mod github_standin;
mod harness;
mod kreeda;
mod provider;
mod receiver;

mod admin;
mod auth;
mod browser;
mod cli;
mod console;
mod hardening;
mod hooks;
mod import;
mod jwks;
mod limits;
mod mail;
mod mfa;
mod oidc_provider;
mod ops;
mod passkeys;
mod passkeys_browser;
mod passwords;
mod phone;
mod pii;
mod privacy;
mod proofs;
mod refresh;
mod smoke;
mod social;
mod social_browser;
mod store_contract;
mod supabase;
mod tokens;
mod upgrade;
mod users;
