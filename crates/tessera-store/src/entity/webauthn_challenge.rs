use sea_orm::entity::prelude::*;

/// A WebAuthn ceremony's challenge and state, handed out by the options call and taken
/// (deleted) by the verify call: used once, on whichever node.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webauthn_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `registration`, `authentication` (a sign-in) or `mfa` (a second step).
    pub kind: String,
    /// The user a registration or a second step is for; none for a usernameless sign-in.
    pub user_id: Option<Uuid>,
    pub state: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
