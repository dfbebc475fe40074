use sea_orm::entity::prelude::*;

/// One sign-in. Its refresh token is derived from the session id and `refresh_counter`
/// (SPEC §4.2): nothing usable as a token is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTimeUtc,
    pub last_used_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub aal: String,
    /// How many times the refresh token has rotated: the current token carries this.
    pub refresh_counter: i64,
    /// When the counter last advanced, i.e. when the previous token stopped being current.
    pub refreshed_at: Option<DateTimeUtc>,
    /// How the sign-in that opened it was proven, when not by a password: `passkey`.
    pub amr: Option<String>,
    /// The OAuth client the session was opened for (SPEC §5.12), when tessera signed the
    /// user in to another application: its tokens are that client's only.
    pub oauth_client_id: Option<Uuid>,
    /// The scopes granted to that client, space-separated.
    pub oauth_scope: Option<String>,
    /// When the user signed in at the provider (the ID tokens' `auth_time`).
    pub oauth_auth_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
