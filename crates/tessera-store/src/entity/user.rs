use sea_orm::entity::prelude::*;

/// A user account. `email` is stored normalised (trimmed, lower-case) under a unique index.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    pub email_verified_at: Option<DateTimeUtc>,
    pub phone_verified_at: Option<DateTimeUtc>,
    pub is_active: bool,
    pub role: String,
    pub token_version: i32,
    pub last_login_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// The address a pending email change will switch to.
    pub new_email: Option<String>,
    /// Whether the user has a verified second factor.
    pub mfa_enabled: bool,
    /// With `PII_ENCRYPTION_KEY`, the blind index of `email` (a keyed HMAC of the
    /// normalised address) that lookups and the unique rule use; set by the store.
    pub email_index: Option<String>,
    /// The blind index of `new_email`; set by the store.
    pub new_email_index: Option<String>,
    /// An anonymous user (SPEC §5.11): signed up with no address; `email` holds a
    /// placeholder in the reserved `.invalid` domain until the user adds one.
    pub is_anonymous: bool,
    /// Whether the user has an identity at another provider (kept by the store as
    /// identities are linked and unlinked).
    pub has_identities: bool,
    /// With `PII_ENCRYPTION_KEY`, the blind index of `phone`; set by the store.
    pub phone_index: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
    #[sea_orm(has_one = "super::profile::Entity")]
    Profile,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::profile::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Profile.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
