use sea_orm::entity::prelude::*;

/// A second factor of a user: `totp`, whose `secret` is the shared secret encrypted
/// (AES-256-GCM, with the id of the key it is under) and whose `last_used_step` is the
/// newest 30-second step a code was accepted for, so that no code is accepted twice; or
/// `webauthn`, whose `secret` is its WebAuthn credential once verified (encrypted JSON;
/// empty before).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub secret: String,
    /// `unverified` until a first code activates it, then `verified`.
    pub status: String,
    pub last_used_step: Option<i64>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    /// `totp` or `webauthn`.
    pub factor_type: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
