//! Who is calling and when: the client of a request, the surface it came in on, the
//! authenticated principal and the administrative actor. Shared by every capability;
//! imports nothing of theirs.

use chrono::{DateTime, SubsecRound, Utc};
use tessera_domain::{Error, Permission, Permissions, Role};
use tessera_store::entity::user;
use uuid::Uuid;

use crate::session::tokens::AccessClaims;

/// Now, truncated to microseconds (what PostgreSQL stores), in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Who is calling, for sessions and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The key the client's per-IP limits count under (its address, or its IPv6 /64);
    /// `None` for the server's own work, which no per-IP limit applies to.
    pub limit_key: Option<String>,
    /// The surface the request came in on: it decides the claims of the access tokens
    /// handed out.
    pub surface: Surface,
}

/// An API surface whose access tokens carry claims of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Surface {
    /// `/v1` and Kreeda: SPEC §4.1's claims.
    #[default]
    Native,
    /// `/auth/v1`: GoTrue's claims as well (SPEC §2.3).
    Supabase,
}

/// An authenticated caller, from a checked access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: user::Model,
    pub session_id: Uuid,
    /// The session's assurance level: `aal2` once it proved a second factor.
    pub aal: String,
    pub claims: AccessClaims,
}

impl Principal {
    /// The caller's role.
    pub fn role(&self) -> Role {
        Role::parse(&self.user.role).unwrap_or(Role::User)
    }
}

/// Who acts on the administration surface: a signed-in user (permissions from the role)
/// or an API key (permissions from its scopes, never more).
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user acting, or the user who created the API key.
    pub user_id: Option<Uuid>,
    /// The API key acting, if any.
    pub api_key_id: Option<Uuid>,
    pub permissions: Permissions,
    /// Whether what needs a second factor (creating API keys) may be done: a user with
    /// MFA on acts from an aal2 session; keys and the console operator always may.
    pub mfa_satisfied: bool,
}

impl Actor {
    /// The operator at the console (`tessera admin create`) or start-up: every permission.
    pub fn system() -> Actor {
        Actor { user_id: None, api_key_id: None, permissions: Permissions::of_role(Role::Admin), mfa_satisfied: true }
    }

    /// `PermissionDenied` unless the actor holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), Error> {
        if self.permissions.contains(p) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// An actor may give a role, or manage a user holding it, only if it holds every
    /// permission of that role: a key scoped `users:write` cannot make or take over an
    /// admin.
    pub fn may_manage(&self, role: Role) -> Result<(), Error> {
        if self.permissions.covers(Permissions::of_role(role)) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }
}
