use sea_orm::entity::prelude::*;

/// An authorization request on its way through sign-in and consent to a code, and the
/// code once out (SPEC §5.12): only its SHA-256 is kept, it is exchanged once, within 60
/// seconds, and the session it opened is remembered so that a replay revokes it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_authorizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub client_id: Uuid,
    pub user_id: Option<Uuid>,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Option<String>,
    pub max_age: Option<i64>,
    /// `pending`, `approved`, `denied` or `used`.
    pub status: String,
    pub code_hash: Option<String>,
    /// When the user authenticated, for the ID token's `auth_time`.
    pub auth_time: Option<DateTimeUtc>,
    pub aal: Option<String>,
    pub amr: Option<String>,
    pub session_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub code_expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
