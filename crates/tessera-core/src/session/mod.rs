//! Sessions (SPEC §4, §5.1, §5.2): access tokens and their keys, refresh tokens and their
//! rotation, the password sign-in, sign-out and revocation, and what every way in hands
//! out when it opens a session.

pub mod auth;
pub mod issued;
pub(crate) mod jwt_crypto;
pub mod sign_in;
pub mod tokens;
