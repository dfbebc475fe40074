//! A session and its user read as one row: the columns every path selects, and the one
//! decoder of them, whatever the row type.

/// Builds the `(session, user)` of a [`super::with_user`] row, reading column
/// `at + i` with `$row.$get(at + i)?`; shared by the pool's decoder and the fast paths,
/// and the struct literals stop compiling if a column is added to either model.
macro_rules! session_and_user {
    ($row:ident . $get:ident, $at:expr) => {
        (
            $crate::entity::session::Model {
                id: $row.$get($at)?,
                user_id: $row.$get($at + 1)?,
                created_at: $row.$get($at + 2)?,
                last_used_at: $row.$get($at + 3)?,
                expires_at: $row.$get($at + 4)?,
                revoked_at: $row.$get($at + 5)?,
                ip: $row.$get($at + 6)?,
                user_agent: $row.$get($at + 7)?,
                aal: $row.$get($at + 8)?,
                refresh_counter: $row.$get($at + 9)?,
                refreshed_at: $row.$get($at + 10)?,
                amr: $row.$get($at + 29)?,
            },
            $crate::entity::user::Model {
                id: $row.$get($at + 11)?,
                email: $row.$get($at + 12)?,
                password_hash: $row.$get($at + 13)?,
                full_name: $row.$get($at + 14)?,
                phone: $row.$get($at + 15)?,
                email_verified_at: $row.$get($at + 16)?,
                phone_verified_at: $row.$get($at + 17)?,
                is_active: $row.$get($at + 18)?,
                role: $row.$get($at + 19)?,
                token_version: $row.$get($at + 20)?,
                last_login_at: $row.$get($at + 21)?,
                created_at: $row.$get($at + 22)?,
                updated_at: $row.$get($at + 23)?,
                deleted_at: $row.$get($at + 24)?,
                new_email: $row.$get($at + 25)?,
                mfa_enabled: $row.$get($at + 26)?,
                email_index: $row.$get($at + 27)?,
                new_email_index: $row.$get($at + 28)?,
            },
        )
    };
}
pub(crate) use session_and_user;

/// The columns [`session_and_user!`] reads, from `sessions s` and `users u`.
pub(crate) const SESSION_AND_USER: &str =
    "s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.ip, \
     s.user_agent, s.aal, s.refresh_counter, s.refreshed_at, u.id, u.email, u.password_hash, u.full_name, u.phone, \
     u.email_verified_at, u.phone_verified_at, u.is_active, u.role, u.token_version, u.last_login_at, u.created_at, \
     u.updated_at, u.deleted_at, u.new_email, u.mfa_enabled, u.email_index, u.new_email_index, s.amr";
