//! The OpenAPI 3.1 document of every surface, generated from the handlers.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{admin, kreeda, ops, v1};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        // Admin routes also take an API key here, or as `Authorization: Bearer tsk_…`.
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
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
        v1::mfa::verify, v1::mfa::list, v1::mfa::enroll, v1::mfa::activate, v1::mfa::remove, v1::mfa::recovery_codes,
        v1::users::register, v1::users::get_user, v1::users::update_me, v1::users::profile, v1::users::update_profile,
        kreeda::register, kreeda::sign_in, kreeda::user, kreeda::update_user, kreeda::token, kreeda::recover,
        kreeda::verify, kreeda::mfa_verify, kreeda::sign_out, kreeda::profile, kreeda::update_profile,
        ops::health, ops::health_detailed,
        admin::users::list, admin::users::create, admin::users::get, admin::users::update, admin::users::remove,
        admin::users::logout, admin::users::reset_mfa, admin::users::bulk, admin::reports::analytics, admin::reports::audit,
        admin::api_keys::create, admin::api_keys::list, admin::api_keys::revoke,
    ),
    components(schemas(crate::error::ErrorBody, crate::dto::PublicUserOut)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Native API: sign-in, tokens, sessions"),
        (name = "users", description = "Native API: sign-up, users, profiles"),
        (name = "mfa", description = "Native API: TOTP factors, recovery codes, the second step of a sign-in"),
        (name = "kreeda", description = "The Kreeda API (seed 000): exact paths and shapes"),
        (name = "operations", description = "Health"),
        (name = "admin", description = "Administration: users, bulk changes, analytics, audit log, API keys (admin role or API key scopes)"),
    )
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
