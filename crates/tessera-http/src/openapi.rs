//! The OpenAPI 3.1 document of every surface, generated from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{kreeda, ops, v1};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// tessera's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "tessera", description = "Self-hosted authentication and user management."),
    paths(
        v1::auth::login, v1::auth::refresh, v1::auth::logout, v1::auth::logout_all, v1::auth::me,
        v1::auth::change_password, v1::auth::sessions, v1::auth::revoke_session,
        v1::auth::verify_email, v1::auth::resend_verification, v1::auth::password_reset, v1::auth::password_reset_confirm,
        v1::users::register, v1::users::get_user, v1::users::update_me, v1::users::profile, v1::users::update_profile,
        kreeda::register, kreeda::sign_in, kreeda::user, kreeda::update_user, kreeda::token, kreeda::recover,
        kreeda::verify, kreeda::sign_out, kreeda::profile, kreeda::update_profile,
        ops::health, ops::health_detailed,
    ),
    components(schemas(crate::error::ErrorBody, crate::dto::PublicUserOut)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Native API: sign-in, tokens, sessions"),
        (name = "users", description = "Native API: sign-up, users, profiles"),
        (name = "kreeda", description = "The Kreeda API (seed 000): exact paths and shapes"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
