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
                amr: $row.$get($at + 32)?,
                oauth_client_id: $row.$get($at + 33)?,
                oauth_scope: $row.$get($at + 34)?,
                oauth_auth_time: $row.$get($at + 35)?,
            },
            $crate::query::user_row::user_at!($row.$get, $at + 11),
        )
    };
}
pub(crate) use session_and_user;

/// The columns [`session_and_user!`] reads, from `sessions s` and `users u`.
pub(crate) const SESSION_AND_USER: &str = concat!(
    "s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.ip, s.user_agent, s.aal, \
     s.refresh_counter, s.refreshed_at, ",
    crate::query::user_row::user_columns!(),
    ", s.amr, s.oauth_client_id, s.oauth_scope, s.oauth_auth_time"
);
