//! Mail and what is proven by it (SPEC §5.3): the templates and transports, the durable
//! outbox and its sender, the one-time links and codes of address verification, email
//! change and password recovery, and passwordless sign-in, invitations and
//! reauthentication by mail.

pub mod link_back;
pub mod links;
pub mod outbox;
pub mod transport;
pub mod verification;
