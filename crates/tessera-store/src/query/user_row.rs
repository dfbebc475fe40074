//! A user read as part of a joined row (a session's, a passkey's): the columns every
//! path selects and the one decoder of them, whatever the row type.

/// Builds a `user::Model` from the columns [`user_columns!`] names, reading column
/// `at + i` with `$row.$get(at + i)?`; the struct literal stops compiling if a column is
/// added to the model.
macro_rules! user_at {
    ($row:ident . $get:ident, $at:expr) => {
        $crate::entity::user::Model {
            id: $row.$get($at)?,
            email: $row.$get($at + 1)?,
            password_hash: $row.$get($at + 2)?,
            full_name: $row.$get($at + 3)?,
            phone: $row.$get($at + 4)?,
            email_verified_at: $row.$get($at + 5)?,
            phone_verified_at: $row.$get($at + 6)?,
            is_active: $row.$get($at + 7)?,
            role: $row.$get($at + 8)?,
            token_version: $row.$get($at + 9)?,
            last_login_at: $row.$get($at + 10)?,
            created_at: $row.$get($at + 11)?,
            updated_at: $row.$get($at + 12)?,
            deleted_at: $row.$get($at + 13)?,
            new_email: $row.$get($at + 14)?,
            mfa_enabled: $row.$get($at + 15)?,
            email_index: $row.$get($at + 16)?,
            new_email_index: $row.$get($at + 17)?,
            is_anonymous: $row.$get($at + 18)?,
            has_identities: $row.$get($at + 19)?,
            phone_index: $row.$get($at + 20)?,
        }
    };
}
pub(crate) use user_at;

/// The columns [`user_at!`] reads, from `users u`, as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.password_hash, u.full_name, u.phone, u.email_verified_at, u.phone_verified_at, \
         u.is_active, u.role, u.token_version, u.last_login_at, u.created_at, u.updated_at, u.deleted_at, \
         u.new_email, u.mfa_enabled, u.email_index, u.new_email_index, u.is_anonymous, u.has_identities, u.phone_index"
    };
}
pub(crate) use user_columns;
