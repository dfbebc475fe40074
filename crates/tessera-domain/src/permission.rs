use std::fmt;

use serde::{Deserialize, Serialize};

use crate::role::Role;

/// One thing an admin route may require (SPEC §5.7). Roles grant sets of them; API keys
/// carry a subset as their scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// List and read users.
    #[serde(rename = "users:read")]
    UsersRead,
    /// Create, update, delete users and run bulk operations on them.
    #[serde(rename = "users:write")]
    UsersWrite,
    /// Sign users out everywhere.
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    /// Read the audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Read the analytics.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    /// List API keys.
    #[serde(rename = "api_keys:read")]
    ApiKeysRead,
    /// Create and revoke API keys.
    #[serde(rename = "api_keys:write")]
    ApiKeysWrite,
    /// List and read the OAuth clients of the provider (SPEC §5.12).
    #[serde(rename = "oauth_clients:read")]
    OAuthClientsRead,
    /// Register, change and delete OAuth clients, and regenerate their secrets.
    #[serde(rename = "oauth_clients:write")]
    OAuthClientsWrite,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 9] = [
        Permission::UsersRead,
        Permission::UsersWrite,
        Permission::SessionsWrite,
        Permission::AuditRead,
        Permission::AnalyticsRead,
        Permission::ApiKeysRead,
        Permission::ApiKeysWrite,
        Permission::OAuthClientsRead,
        Permission::OAuthClientsWrite,
    ];

    /// The name used in scopes and documentation, e.g. `users:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
            Permission::SessionsWrite => "sessions:write",
            Permission::AuditRead => "audit:read",
            Permission::AnalyticsRead => "analytics:read",
            Permission::ApiKeysRead => "api_keys:read",
            Permission::ApiKeysWrite => "api_keys:write",
            Permission::OAuthClientsRead => "oauth_clients:read",
            Permission::OAuthClientsWrite => "oauth_clients:write",
        }
    }

    /// Parses a name; unknown names are `None`.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions: what a caller (a user by role, or an API key by scopes) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u32);

impl Permissions {
    /// No permission at all.
    pub const NONE: Permissions = Permissions(0);

    /// What a role grants: `admin` holds every permission, `user` none.
    pub fn of_role(role: Role) -> Permissions {
        match role {
            Role::Admin => Permission::ALL.into_iter().collect(),
            Role::User => Permissions::NONE,
        }
    }

    /// Whether the set holds `p`.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether the set holds every permission of `other`.
    pub fn covers(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permissions both sets hold.
    pub fn intersect(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// The permissions, in the order of [`Permission::ALL`].
    pub fn list(self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.contains(*p)).collect()
    }

    /// Parses scope names; returns the unknown ones as the error.
    pub fn parse_scopes<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Permissions, Vec<String>> {
        let mut set = Permissions::NONE;
        let mut unknown = Vec::new();
        for name in names {
            match Permission::parse(name.trim()) {
                Some(p) => set.0 |= p.bit(),
                None => unknown.push(name.to_owned()),
            }
        }
        if unknown.is_empty() {
            Ok(set)
        } else {
            Err(unknown)
        }
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |acc, p| acc | p.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_everything_user_nothing() {
        let admin = Permissions::of_role(Role::Admin);
        assert!(Permission::ALL.iter().all(|p| admin.contains(*p)));
        assert_eq!(Permissions::of_role(Role::User), Permissions::NONE);
        assert!(admin.covers(Permissions::of_role(Role::User)));
        assert!(!Permissions::NONE.covers(admin));
    }

    #[test]
    fn names_round_trip_and_unknown_scopes_are_reported() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        let set = Permissions::parse_scopes(["users:read", "audit:read"]).unwrap();
        assert_eq!(set.list(), vec![Permission::UsersRead, Permission::AuditRead]);
        assert_eq!(Permissions::parse_scopes(["users:read", "root"]).unwrap_err(), vec!["root".to_owned()]);
    }
}
