use sea_orm::entity::prelude::*;

/// An application that signs its users in here (SPEC §5.12). A confidential client's
/// secret is kept as its SHA-256 only; a public one has none.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub secret_hash: Option<String>,
    /// `public` or `confidential`.
    pub client_type: String,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// `manual` (an administrator) or `dynamic` (RFC 7591).
    pub registration_type: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    /// JSON array of the redirect URIs, matched exactly.
    pub redirect_uris: String,
    /// JSON array of the URIs RP-initiated logout may return to.
    pub post_logout_redirect_uris: String,
    /// JSON array of the grant types.
    pub grant_types: String,
    /// The scopes the client may ask for, space-separated.
    pub scope: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
