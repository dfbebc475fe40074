use sea_orm::entity::prelude::*;

/// A user's profile, created with the user. The display name lives on the user row
/// (`users.full_name`) so that it has one source.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub user_id: Uuid,
    pub avatar_url: Option<String>,
    pub location: Option<String>,
    pub date_of_birth: Option<Date>,
    pub bio: Option<String>,
    pub preferences: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// A JSON object the user (or an admin) writes: Supabase's `user_metadata`.
    pub user_metadata: Json,
    /// A JSON object of custom keys only an admin writes: Supabase's `app_metadata`.
    pub app_metadata: Json,
    /// When an admin invited the user (Supabase's `invited_at`).
    pub invited_at: Option<DateTimeUtc>,
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
