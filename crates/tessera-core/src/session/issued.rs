//! What opening a session hands out, shared by every way in: the tokens issued, the
//! second step a sign-in may still need, and the account rule every session checks.

use tessera_domain::FieldError;
use tessera_store::entity::{profile, user};
use uuid::Uuid;

/// The assurance level of a session the Supabase surface opened with the password alone
/// for a user with MFA on: `aal1` in its tokens, accepted by the Supabase surface only
/// until a verified challenge makes it `aal2` (SPEC §5.6 holds everywhere else).
pub const AAL1_STEP_UP: &str = "aal1-up";

/// The `aal` a session shows: [`AAL1_STEP_UP`] is `aal1`.
pub fn shown_aal(aal: &str) -> &str {
    if aal == AAL1_STEP_UP {
        "aal1"
    } else {
        aal
    }
}

/// What a successful sign-in or refresh hands out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub user: user::Model,
    pub session_id: Uuid,
    pub access_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
    pub refresh_token: String,
    /// Seconds the refresh token (the session) lives.
    pub refresh_expires_in: i64,
    /// On the Supabase surface, the profile its claims were read from (so the answer's
    /// user object needs no second read).
    pub profile: Option<profile::Model>,
    /// For a password sign-in on the Supabase surface, how the password breaks today's
    /// policy, if it does (the answer warns with `weak_password`).
    pub weak_password: Option<Vec<FieldError>>,
}

/// What a password sign-in answers: a session, or the second step it still needs.
#[derive(Debug, Clone)]
pub enum SignIn {
    Session(Box<Issued>),
    MfaRequired(MfaChallenge),
}

/// The second step a sign-in needs.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    /// Opaque, single use, valid 5 minutes.
    pub mfa_token: String,
    pub methods: Vec<&'static str>,
    /// The user who signed in with the password (for surfaces that show nothing of it).
    pub user_id: Uuid,
}

/// Whether an account may hold a session.
pub fn is_usable(u: &user::Model) -> bool {
    u.is_active && u.deleted_at.is_none()
}
