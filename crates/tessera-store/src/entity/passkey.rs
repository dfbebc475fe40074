use sea_orm::entity::prelude::*;

/// A passkey: a discoverable WebAuthn credential of a user's (SPEC §5.10). `credential`
/// holds its public key and registration facts as webauthn-rs keeps them (JSON); no
/// private key ever reaches the server.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub aaguid: Option<String>,
    pub backed_up: bool,
    pub sign_count: i64,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
