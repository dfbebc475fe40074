use sea_orm::entity::prelude::*;

/// A single-use link token (stored as its SHA-256) with an optional short code (stored
/// as a keyed hash): email verification, email change, password recovery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "one_time_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub code_hash: Option<String>,
    pub code_expires_at: Option<DateTimeUtc>,
    pub code_attempts: i32,
    pub new_email: Option<String>,
    /// With `PII_ENCRYPTION_KEY`, the blind index of `new_email`; set by the store.
    pub new_email_index: Option<String>,
    pub expires_at: DateTimeUtc,
    /// Set with `used_at` when the token confirmed what it was for (not when it was
    /// retired unused).
    pub confirmed_at: Option<DateTimeUtc>,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Whether the token was mailed in answer to the request that set the account's
    /// credentials (the sign-up mail) or to its signed-in holder: whoever uses it is
    /// taken to be whoever set them. A token anybody could ask for (a resend, a sign-in
    /// link, a recovery, an invitation) proves the address and nothing more.
    pub proves_holder: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
