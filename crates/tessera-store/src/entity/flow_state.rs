use sea_orm::entity::prelude::*;

/// The code of a PKCE flow (SPEC §5.11), handed to the app's redirect and exchanged once,
/// with the verifier of `code_challenge`, for a session of `user_id`. Only the code's
/// SHA-256 is kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub code_hash: String,
    pub user_id: Uuid,
    pub code_challenge: String,
    pub provider: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
