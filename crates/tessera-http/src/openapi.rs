//! The OpenAPI 3.1 document of every surface, generated from the handlers.

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::layers::SharedLayers;
use crate::middleware::Csp;
use crate::state::AppState;
use crate::supabase::{
    admin as sb_admin, auth as sb_auth, external as sb_external, factors as sb_factors, passkeys as sb_passkeys,
};
use crate::surface::Surface;
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
        v1::phone::otp, v1::phone::otp_verify,
        v1::mfa::verify, v1::mfa::list, v1::mfa::enroll, v1::mfa::activate, v1::mfa::remove, v1::mfa::recovery_codes,
        v1::passkeys::registration_options, v1::passkeys::registration_verify, v1::passkeys::list, v1::passkeys::rename,
        v1::passkeys::remove, v1::passkeys::authentication_options, v1::passkeys::authentication_verify,
        v1::passkeys::mfa_options, v1::passkeys::admin_list, v1::passkeys::admin_remove,
        v1::users::register, v1::users::get_user, v1::users::update_me, v1::users::profile, v1::users::update_profile,
        v1::users::delete_me, v1::users::export, v1::users::oauth_grants, v1::users::revoke_oauth_grant, v1::oauth::start, v1::oauth::token, v1::oauth::list, v1::oauth::unlink,
        v1::oauth::link,
        kreeda::register, kreeda::sign_in, kreeda::user, kreeda::update_user, kreeda::delete_user, kreeda::token, kreeda::recover,
        kreeda::verify, kreeda::mfa_verify, kreeda::sign_out, kreeda::profile, kreeda::update_profile,
        ops::health, ops::health_detailed, ops::jwks, ops::supabase_jwks,
        admin::users::list, admin::users::create, admin::users::get, admin::users::update, admin::users::remove,
        admin::users::logout, admin::users::restore, admin::users::reset_mfa, admin::users::bulk, admin::reports::analytics, admin::reports::audit,
        admin::api_keys::create, admin::api_keys::list, admin::api_keys::revoke,
        admin::oauth_clients::create, admin::oauth_clients::list, admin::oauth_clients::get,
        admin::oauth_clients::update, admin::oauth_clients::remove, admin::oauth_clients::regenerate_secret,
        sb_auth::health, sb_auth::settings, sb_auth::signup, sb_auth::token, sb_auth::get_user, sb_auth::update_user,
        sb_auth::logout, sb_auth::otp, sb_auth::recover, sb_auth::verify, sb_auth::verify_link, sb_auth::resend,
        sb_auth::reauthenticate, sb_factors::enroll, sb_factors::challenge, sb_factors::verify, sb_factors::unenroll,
        sb_admin::list_users, sb_admin::create_user, sb_admin::get_user, sb_admin::update_user, sb_admin::delete_user,
        sb_admin::list_factors, sb_admin::delete_factor, sb_admin::generate_link, sb_admin::invite,
        sb_passkeys::registration_options, sb_passkeys::registration_verify, sb_passkeys::authentication_options,
        sb_passkeys::authentication_verify, sb_passkeys::list, sb_passkeys::update, sb_passkeys::delete,
        sb_passkeys::admin_list, sb_passkeys::admin_delete, sb_external::authorize, sb_external::callback, sb_external::callback_form,
        sb_external::link, sb_external::unlink,
    ),
    components(schemas(crate::error::ErrorBody, crate::dto::PublicUserOut, crate::supabase::doc::SbPending)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Native API: sign-in, tokens, sessions"),
        (name = "users", description = "Native API: sign-up, users, profiles"),
        (name = "mfa", description = "Native API: TOTP factors, recovery codes, the second step of a sign-in"),
        (name = "passkeys", description = "Native API: passkeys (WebAuthn): registration, management, sign-in"),
        (name = "kreeda", description = "The Kreeda API (seed 000): exact paths and shapes"),
        (name = "operations", description = "Health"),
        (name = "admin", description = "Administration: users, bulk changes, analytics, audit log, API keys, OAuth clients (admin role or API key scopes)"),
        (name = "supabase", description = "The Supabase Auth (GoTrue) API: its paths, shapes and errors (`{code, message}`, API version 2024-01-01); the admin routes take a `service_role` key as the bearer"),
    )
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

// ---------------------------------------------------------------------------------
// The document as served: every status each operation can answer, and request
// schemas that carry the rules the API enforces (issue 20). Written against the
// JSON, after utoipa, because some rules come from the settings (the password
// policy) or the date (a birth date is not in the future).

use chrono::{Datelike, NaiveDate};
use serde_json::{json, Map, Value};
use tessera_domain::{PasswordPolicy, Permission, CONTROL_CLASS, WHITESPACE_CLASS};

/// Control characters but tab, line feed and carriage return (allowed inside free text).
const CONTROL_BUT_TNR: &str = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f";
/// What the phone parser drops as separators.
const PHONE_SEPARATORS: &str = r"[ \-.()]";

/// Optional free text as `bounded_text` accepts it: trimmed, blank for none, at most
/// `max` characters, no control characters but tab and line breaks.
fn text(max: usize) -> Value {
    let w = WHITESPACE_CLASS;
    json!({ "pattern": format!("^[{w}]*[^{CONTROL_BUT_TNR}]{{0,{max}}}[{w}]*$"),
            "description": format!("At most {max} characters once trimmed; no control characters but tab and line breaks. Blank clears it.") })
}

/// A phone number in E.164 form (separators `space - . ( )` dropped), or blank for none.
fn phone() -> Value {
    let (w, s) = (WHITESPACE_CLASS, PHONE_SEPARATORS);
    json!({ "pattern": format!("^(?:[{w}]*|[{w}]*{s}*\\+{s}*[1-9](?:{s}*[0-9]){{7,14}}{s}*[{w}]*)$"),
            "description": "E.164, e.g. `+14155550123` (spaces, dashes, dots and parentheses are dropped); blank for none." })
}

/// A phone number in E.164 form, required (the native phone sign-in's).
fn phone_required() -> Value {
    let (w, s) = (WHITESPACE_CLASS, PHONE_SEPARATORS);
    json!({ "type": "string", "pattern": format!("^[{w}]*{s}*\\+{s}*[1-9](?:{s}*[0-9]){{7,14}}{s}*[{w}]*$"),
            "description": "E.164, e.g. `+14155550123` (spaces, dashes, dots and parentheses are dropped)." })
}

/// A phone number as the Supabase surface reads it, GoTrue's way: the `+` optional, a
/// non-zero digit and 1 to 14 more (separators dropped).
fn gotrue_phone() -> Value {
    let (w, s) = (WHITESPACE_CLASS, PHONE_SEPARATORS);
    json!({ "type": "string", "pattern": format!("^[{w}]*{s}*\\+?{s}*[1-9](?:{s}*[0-9]){{1,14}}{s}*[{w}]*$"),
            "description": "E.164 with the `+` optional, e.g. `14155550123`." })
}

/// An email address; never one of the reserved domain the placeholders of users without
/// an address use (`…@no-address.invalid`, any case), which the server refuses.
fn email() -> Value {
    let w = WHITESPACE_CLASS;
    json!({ "format": "email", "maxLength": 254,
            "not": { "type": "string", "pattern": format!("@[nN][oO]-[aA][dD][dD][rR][eE][sS][sS]\\.[iI][nN][vV][aA][lL][iI][dD][{w}]*$") } })
}

fn new_password(policy: &PasswordPolicy) -> Value {
    json!({ "pattern": policy.pattern(), "minLength": policy.min_length, "maxLength": policy.max_length,
            "description": "The password policy: the pattern spells out its length and character rules; it must also not be a common password nor contain the email's local part." })
}

/// `YYYY-MM-DD` from 1900-01-01 to `today`, real dates only, or blank for none.
fn birth_date(today: NaiveDate) -> Value {
    let is_leap = |y: i32| NaiveDate::from_ymd_opt(y, 2, 29).is_some();
    // The days of a month, as a regular expression.
    let days = |month: u32, leap: bool| match month {
        2 if leap => "(?:0[1-9]|1[0-9]|2[0-9])",
        2 => "(?:0[1-9]|1[0-9]|2[0-8])",
        4 | 6 | 9 | 11 => "(?:0[1-9]|[12][0-9]|30)",
        _ => "(?:0[1-9]|[12][0-9]|3[01])",
    };
    let y = today.year();
    // Whole years 1900 to last year, by decade; 29 February in their leap years.
    let decades: Vec<String> = (190..=(y - 1) / 10)
        .map(|d| match (y - 1).min(d * 10 + 9) % 10 {
            9 => format!("{d}[0-9]"),
            last => format!("{d}[0-{last}]"),
        })
        .collect();
    let leap_years: Vec<String> = (1900..y).filter(|y| is_leap(*y)).map(|y| y.to_string()).collect();
    let any_month = (1..=12).map(|m| format!("{m:02}-{}", days(m, false))).collect::<Vec<_>>().join("|");
    // This year: the months before this one, then this month up to today.
    let mut this_year: Vec<String> = (1..today.month()).map(|m| format!("{m:02}-{}", days(m, is_leap(y)))).collect();
    let up_to_today = (1..=today.day()).map(|d| format!("{d:02}")).collect::<Vec<_>>().join("|");
    this_year.push(format!("{:02}-(?:{up_to_today})", today.month()));
    let date = format!(
        "(?:(?:{})-(?:{any_month})|(?:{})-02-29|{y}-(?:{}))",
        decades.join("|"),
        leap_years.join("|"),
        this_year.join("|")
    );
    let w = WHITESPACE_CLASS;
    json!({ "pattern": format!("^[{w}]*(?:{date})?[{w}]*$"),
            "description": "ISO date, YYYY-MM-DD, from 1900-01-01 to today; blank clears it." })
}

fn avatar_url() -> Value {
    let (w, c) = (WHITESPACE_CLASS, CONTROL_CLASS);
    json!({ "pattern": format!("^[{w}]*(?:(?=[^{w}{c}]{{1,2048}}[{w}]*$)[hH][tT][tT][pP][sS]?://[^/{w}{c}][^{w}{c}]*)?[{w}]*$"),
            "description": "An http(s) URL of at most 2048 characters, without whitespace; blank clears it." })
}

/// The request rules, by component schema and property.
fn property_rules(policy: &PasswordPolicy, today: NaiveDate) -> Vec<(&'static str, &'static str, Value)> {
    let (w, c) = (WHITESPACE_CLASS, CONTROL_CLASS);
    let role = || json!({ "enum": ["user", "admin", null] });
    let scopes: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    vec![
        ("RegisterIn", "email", email()),
        ("RegisterIn", "password", new_password(policy)),
        ("RegisterIn", "full_name", text(200)),
        ("RegisterIn", "phone", phone()),
        ("PhoneOtpIn", "phone", phone_required()),
        ("PhoneVerifyIn", "phone", phone_required()),
        ("UserPatchIn", "email", email()),
        ("UserPatchIn", "full_name", text(200)),
        ("UserPatchIn", "phone", phone()),
        ("ChangePasswordIn", "new_password", new_password(policy)),
        ("ResetConfirmIn", "new_password", new_password(policy)),
        ("ProfilePatchIn", "name", text(200)),
        ("ProfilePatchIn", "location", text(200)),
        ("ProfilePatchIn", "bio", text(5000)),
        ("ProfilePatchIn", "avatar_url", avatar_url()),
        ("ProfilePatchIn", "date_of_birth", birth_date(today)),
        ("TotpEnrollIn", "name", json!({ "pattern": format!("^[{w}]*[^{c}]{{0,100}}[{w}]*$") })),
        ("CodeIn", "code", json!({ "pattern": format!("^(?:[{w}]*[0-9]){{6}}[{w}]*$") })),
        (
            "CreateApiKeyIn",
            "name",
            json!({ "pattern": format!("^[{w}]*[^{w}{c}](?:[^{c}]{{0,98}}[^{w}{c}])?[{w}]*$") }),
        ),
        ("CreateApiKeyIn", "scopes", json!({ "minItems": 1, "items": { "type": "string", "enum": scopes } })),
        ("RenameIn", "name", json!({ "pattern": format!("^[{w}]*[^{w}{c}](?:[^{c}]{{0,118}}[^{w}{c}])?[{w}]*$") })),
        (
            "RegistrationIn",
            "name",
            json!({ "pattern": format!("^[{w}]*(?:[^{w}{c}](?:[^{c}]{{0,118}}[^{w}{c}])?)?[{w}]*$") }),
        ),
        (
            "CreateApiKeyIn",
            "expires_at",
            json!({ "type": null, "format": null, "anyOf": [{ "type": "string", "format": "date-time" }, { "type": "null" }],
                    "description": "Optional expiry (RFC 3339), in the future: one already past is 422 `in_past`." }),
        ),
        ("CreateUserIn", "email", email()),
        ("CreateUserIn", "password", new_password(policy)),
        ("CreateUserIn", "full_name", text(200)),
        ("CreateUserIn", "phone", phone()),
        ("CreateUserIn", "role", role()),
        ("UpdateUserIn", "email", email()),
        ("UpdateUserIn", "password", new_password(policy)),
        ("UpdateUserIn", "full_name", text(200)),
        ("UpdateUserIn", "phone", phone()),
        ("UpdateUserIn", "role", role()),
        ("KreedaRegisterIn", "email", email()),
        ("KreedaRegisterIn", "password", new_password(policy)),
        ("KreedaRegisterIn", "name", text(200)),
        ("KreedaRegisterIn", "phone_number", phone()),
        ("KreedaUserUpdateIn", "email", email()),
        ("KreedaUserUpdateIn", "password", new_password(policy)),
        ("KreedaUserUpdateIn", "phone", phone()),
        ("KreedaVerifyIn", "type", json!({ "enum": ["signup", "recovery", "email_change"] })),
    ]
}

/// Exactly one of `fields` as a string, the others absent or null.
fn exactly_one(fields: &[&str], common_required: &[&str], common: Value) -> Value {
    let branches: Vec<Value> = fields
        .iter()
        .map(|f| {
            let mut props = common.as_object().cloned().unwrap_or_default();
            for other in fields {
                props.insert(
                    (*other).to_owned(),
                    if other == f { json!({ "type": "string" }) } else { json!({ "type": "null" }) },
                );
            }
            let mut required: Vec<&str> = common_required.to_vec();
            required.push(f);
            json!({ "type": "object", "required": required, "properties": props })
        })
        .collect();
    json!({ "oneOf": branches })
}

/// A string that is not blank (the Supabase surface trims what it reads and takes a
/// blank value for none).
fn given() -> Value {
    json!({ "type": "string", "pattern": "\\S" })
}

/// An app's PKCE challenge (S256: base64url, 43 to 128 characters), or none.
fn challenge() -> Value {
    let w = WHITESPACE_CLASS;
    json!({ "anyOf": [blank(), { "type": "string", "pattern": format!("^[{w}]*[A-Za-z0-9._~-]{{43,128}}[{w}]*$") }] })
}

/// The method of a PKCE challenge: `s256` (any case), or none.
fn challenge_method() -> Value {
    let w = WHITESPACE_CLASS;
    json!({ "anyOf": [blank(), { "type": "string", "pattern": format!("^[{w}]*[sS]256[{w}]*$") }] })
}

/// What the Supabase surface reads as "none": absent, `null` or blank.
fn blank() -> Value {
    json!({ "type": ["string", "null"], "pattern": format!("^[{}]*$", WHITESPACE_CLASS) })
}

/// The request bodies of the Supabase surface (GoTrue's protocol), as the server reads
/// them: leniently (a blank value is none, a field another one makes moot is ignored),
/// and with every rule it enforces.
fn supabase_schema_rules(policy: &PasswordPolicy) -> Vec<(&'static str, Value)> {
    let (w, c) = (WHITESPACE_CLASS, CONTROL_CLASS);
    let any = || json!({ "type": ["string", "null"] });
    let object = || json!({ "type": ["object", "null"] });
    let typed = |rule: Value, ty: Value| {
        let mut r = rule;
        merge(&mut r, &json!({ "type": ty }));
        r
    };
    let email = || typed(email(), json!("string"));
    let password = || typed(new_password(policy), json!("string"));
    // Blank for none, or the thing itself.
    let or_blank = |rule: Value| json!({ "anyOf": [blank(), rule] });
    let phone = || typed(phone(), json!(["string", "null"]));
    let object_of = |required: &[&str], properties: Value| json!({ "type": "object", "required": required, "properties": properties });
    let ban = json!({ "type": ["string", "null"], "pattern": format!("^[{w}]*(?:none|[0-9.]*[hms.]*)[{w}]*$"),
                      "description": "`none` lifts a ban; a duration (`24h`, `30m`) deactivates the account until it is lifted." });
    let verify_types =
        json!({ "type": "string", "enum": ["signup", "invite", "magiclink", "email", "recovery", "email_change"] });
    let admin_user = |required: &[&str], email_rule: Value| {
        object_of(
            required,
            json!({ "email": email_rule, "phone": phone(), "password": or_blank(password()),
                                    "email_confirm": { "type": ["boolean", "null"] }, "user_metadata": object(),
                                    "app_metadata": object(), "ban_duration": ban.clone() }),
        )
    };
    let link = |types: &[&str], required: &[&str], password_rule: Value, new_email: Value| {
        let mut req = vec!["type", "email"];
        req.extend_from_slice(required);
        object_of(
            &req,
            json!({ "type": { "type": "string", "enum": types }, "email": email(), "password": password_rule,
                                "new_email": new_email, "data": object(), "redirect_to": any() }),
        )
    };
    vec![
        (
            "SbSignupIn",
            json!({ "description": "`email` and `password`, or (with an SMS provider) `phone` and `password`.",
                    "anyOf": [
                object_of(
                    &["email", "password"],
                    json!({ "email": email(), "password": password(), "data": object(), "phone": any(),
                            "code_challenge": challenge(), "code_challenge_method": challenge_method() }),
                ),
                object_of(
                    &["phone", "password"],
                    json!({ "phone": gotrue_phone(), "password": password(), "data": object(), "email": blank(),
                            "code_challenge": challenge(), "code_challenge_method": challenge_method() }),
                ),
            ] }),
        ),
        (
            "SbTokenIn",
            json!({ "description": "`grant_type=password`: `email` and `password`; `grant_type=refresh_token`: `refresh_token`; `grant_type=pkce`: `auth_code` and `code_verifier`; `grant_type=id_token`: `provider`, `id_token` and `nonce`.",
                    "type": "object", "properties": { "email": any(), "password": any(), "refresh_token": any(), "phone": any(),
                    "auth_code": any(), "code_verifier": any(), "provider": any(), "id_token": any(), "nonce": any() } }),
        ),
        (
            "SbUpdateUserIn",
            object_of(
                &[],
                json!({ "email": or_blank(email()), "phone": phone(), "password": { "anyOf": [{ "type": ["string", "null"], "maxLength": 0 }, password()] },
                                   "data": object(), "nonce": any() }),
            ),
        ),
        (
            "SbOtpIn",
            json!({ "description": "`email` (a link and a code by mail), or `phone` (a code by SMS, with an SMS provider).",
                    "anyOf": [
                object_of(
                    &["email"],
                    json!({ "email": email(), "phone": any(), "create_user": { "type": ["boolean", "null"] }, "data": object(),
                            "code_challenge": challenge(), "code_challenge_method": challenge_method() }),
                ),
                object_of(
                    &["phone"],
                    json!({ "phone": gotrue_phone(), "email": blank(), "channel": { "enum": ["sms", null] },
                            "create_user": { "type": ["boolean", "null"] }, "data": object(),
                            "code_challenge": challenge(), "code_challenge_method": challenge_method() }),
                ),
            ] }),
        ),
        (
            "SbEmailIn",
            object_of(
                &["email"],
                json!({ "email": email(), "code_challenge": challenge(), "code_challenge_method": challenge_method() }),
            ),
        ),
        (
            "SbVerifyIn",
            json!({ "description": "`type` with the link's `token_hash` (or its `token`), or with the `email` and the mailed code as `token`.",
                    "anyOf": [
                        object_of(&["type", "token_hash"], json!({ "type": verify_types, "token_hash": given(), "token": any(), "email": any(), "phone": blank() })),
                        object_of(&["type", "token"], json!({ "type": verify_types, "token": given(), "token_hash": any(), "email": any(), "phone": blank() })),
                        object_of(&["type", "phone", "token"], json!({ "type": { "type": "string", "enum": ["sms", "phone_change"] },
                            "phone": gotrue_phone(), "token": given(), "token_hash": any(), "email": blank() })),
                    ] }),
        ),
        (
            "SbResendIn",
            json!({ "anyOf": [
                object_of(
                    &["type", "email"],
                    json!({ "type": { "type": "string", "enum": ["signup", "email_change"] }, "email": email(), "phone": any() }),
                ),
                object_of(
                    &["type", "phone"],
                    json!({ "type": { "type": "string", "enum": ["sms", "phone_change"] }, "phone": gotrue_phone(), "email": blank() }),
                ),
            ] }),
        ),
        (
            "SbEnrollIn",
            json!({ "anyOf": [
                object_of(
                    &[],
                    json!({ "factor_type": { "type": ["string", "null"], "enum": ["totp", "webauthn", null] },
                                       "friendly_name": { "type": ["string", "null"], "pattern": format!("^[{w}]*[^{c}]{{0,100}}[{w}]*$") } }),
                ),
                object_of(
                    &["factor_type", "phone"],
                    json!({ "factor_type": { "type": "string", "enum": ["phone"] }, "phone": gotrue_phone(),
                                       "friendly_name": { "type": ["string", "null"], "pattern": format!("^[{w}]*[^{c}]{{0,100}}[{w}]*$") } }),
                ),
            ] }),
        ),
        (
            "SbPasskeyUpdateIn",
            object_of(
                &["friendly_name"],
                json!({ "friendly_name": { "type": "string",
                    "pattern": format!("^[{w}]*[^{w}{c}](?:[^{c}]{{0,118}}[^{w}{c}])?[{w}]*$") } }),
            ),
        ),
        (
            "SbCeremonyIn",
            object_of(
                &["challenge_id", "credential"],
                json!({ "challenge_id": { "type": "string", "format": "uuid" }, "credential": { "type": "object" } }),
            ),
        ),
        (
            "SbFactorVerifyIn",
            json!({ "oneOf": [
            object_of(&["challenge_id", "code"], json!({ "challenge_id": given(), "code": given(), "webauthn": { "type": "null" } })),
            object_of(&["challenge_id", "webauthn"], json!({ "challenge_id": given(), "code": { "type": "null" },
                "webauthn": { "type": "object", "required": ["type", "credential_response"], "properties": {
                    "type": { "type": "string", "enum": ["create", "request"] },
                    "credential_response": { "type": "object" } } } })),
        ] }),
        ),
        ("SbAdminUserIn", admin_user(&["email"], email())),
        ("SbAdminUserChangeIn", admin_user(&[], or_blank(email()))),
        (
            "SbGenerateLinkIn",
            json!({ "description": "`signup` needs a `password`; `email_change_current` and `email_change_new` a `new_email`.", "oneOf": [
                link(&["signup"], &["password"], password(), any()),
                link(&["invite", "magiclink", "recovery"], &[], any(), any()),
                link(&["email_change_current", "email_change_new"], &["new_email"], any(), email()),
            ] }),
        ),
        ("SbInviteIn", object_of(&["email"], json!({ "email": email(), "data": object() }))),
    ]
}

/// Request bodies whose rules tie fields together.
fn schema_rules(policy: &PasswordPolicy) -> Vec<(&'static str, Value)> {
    let mut rules = supabase_schema_rules(policy);
    rules.extend([
        (
            "VerifyEmailIn",
            json!({ "description": "The link token, or the email address with the code from the mail.", "anyOf": [
                // With a token, `email` and `code` are ignored, but still read as text or null.
                { "type": "object", "required": ["token"], "properties": { "token": { "type": "string" },
                    "email": { "type": ["string", "null"] }, "code": { "type": ["string", "null"] } } },
                { "type": "object", "required": ["email", "code"], "properties": {
                    "token": { "type": "null" }, "email": { "type": "string" }, "code": { "type": "string" } } },
            ] }),
        ),
        ("MfaVerifyIn", {
            let mut rule =
                exactly_one(&["code", "recovery_code"], &["mfa_token"], json!({ "mfa_token": { "type": "string" } }));
            let assertion = json!({ "type": "object", "required": ["challenge_id", "credential"], "properties": {
                "challenge_id": { "type": "string", "format": "uuid" }, "credential": { "type": "object" } } });
            if let Some(branches) = rule["oneOf"].as_array_mut() {
                for b in branches.iter_mut() {
                    b["properties"]["webauthn"] = json!({ "type": "null" });
                }
                branches.push(json!({ "type": "object", "required": ["mfa_token", "webauthn"], "properties": {
                    "mfa_token": { "type": "string" }, "code": { "type": "null" }, "recovery_code": { "type": "null" },
                    "webauthn": assertion } }));
            }
            rule
        }),
        ("FactorRemovalIn", exactly_one(&["code", "recovery_code", "password"], &[], json!({}))),
        (
            "DeleteAccountIn",
            json!({ "description": "The password; with MFA on, also a code or a recovery code (not both).", "oneOf": [
                { "type": "object", "required": ["password"], "properties": {
                    "password": { "type": "string" }, "code": { "type": "null" }, "recovery_code": { "type": "null" } } },
                { "type": "object", "required": ["password", "code"], "properties": {
                    "password": { "type": "string" }, "code": { "type": "string" }, "recovery_code": { "type": "null" } } },
                { "type": "object", "required": ["password", "recovery_code"], "properties": {
                    "password": { "type": "string" }, "code": { "type": "null" }, "recovery_code": { "type": "string" } } },
            ] }),
        ),
        (
            "BulkIn",
            json!({ "description": "One action on 1 to 1000 users, all or nothing; an unknown id fails the whole request (404).", "oneOf": [
                { "type": "object", "required": ["action", "ids"], "properties": {
                    "action": { "type": "string", "enum": ["activate", "deactivate", "delete"] },
                    "ids": { "type": "array", "items": { "type": "string", "format": "uuid" }, "minItems": 1, "maxItems": 1000 },
                    "role": { "type": ["string", "null"], "description": "Ignored." } } },
                { "type": "object", "required": ["action", "ids", "role"], "properties": {
                    "action": { "type": "string", "enum": ["set_role"] },
                    "ids": { "type": "array", "items": { "type": "string", "format": "uuid" }, "minItems": 1, "maxItems": 1000 },
                    "role": { "type": "string", "enum": ["user", "admin"] } } },
            ] }),
        ),
    ]);
    rules
}

/// Query parameters' rules, by path, method and name.
fn parameter_rules() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let w = WHITESPACE_CLASS;
    vec![
        (
            "/v1/admin/users",
            "get",
            "q",
            json!({ "pattern": format!(r"^[{w}]*[\s\S]{{0,320}}[{w}]*$"), "maxLength": 4096 }),
        ),
        ("/v1/admin/users", "get", "role", json!({ "pattern": format!("^(?:[{w}]*|user|admin)$") })),
        ("/auth/v1/token", "post", "grant_type", json!({ "type": "string", "enum": ["password", "refresh_token"] })),
        (
            "/auth/v1/logout",
            "post",
            "scope",
            json!({ "type": ["string", "null"], "enum": ["global", "local", "others", null] }),
        ),
        // A positive whole number as Rust parses one (a `+` may lead), or blank.
        (
            "/auth/v1/admin/users",
            "get",
            "page",
            json!({ "pattern": format!("^[{w}]*(?:\\+?0*[1-9][0-9]{{0,18}})?[{w}]*$") }),
        ),
        (
            "/auth/v1/admin/users",
            "get",
            "per_page",
            json!({ "pattern": format!("^[{w}]*(?:\\+?0*[1-9][0-9]{{0,18}})?[{w}]*$") }),
        ),
        (
            "/v1/admin/audit",
            "get",
            "event",
            json!({ "pattern": format!(r"^[{w}]*(?:[^*]{{0,62}}\.\*|[^*]{{1,64}})?[{w}]*$") }),
        ),
        (
            "/v1/admin/audit",
            "get",
            "cursor",
            json!({ "format": null, "pattern": "^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$" }),
        ),
    ]
}

/// Merges `fragment`'s keys into `target` (an object); a `null` in the fragment removes
/// the key.
fn merge(target: &mut Value, fragment: &Value) {
    if let (Some(t), Some(f)) = (target.as_object_mut(), fragment.as_object()) {
        for (k, v) in f {
            if v.is_null() {
                t.remove(k);
            } else {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The error responses every operation may give, beyond those it documents itself.
fn document_responses(doc: &mut Value) {
    let error = |description: &str, schema: &str| {
        json!({ "description": description,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
    };
    let limited = [
        "/v1/auth/login",
        "/v1/auth/verify-email",
        "/v1/auth/verify-email/resend",
        "/v1/auth/password-reset",
        "/v1/auth/password-reset/confirm",
        "/v1/auth/mfa/totp/{id}",
        "/v1/auth/mfa/totp/{id}/activate",
        "/v1/auth/mfa/verify",
        "/v1/users",
        "/auth/register",
        "/auth/signin/password",
        "/auth/recover",
        "/auth/verify",
        "/auth/mfa/verify",
    ];
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            let has_body = op.get("requestBody").is_some();
            let has_query =
                op.get("parameters").and_then(Value::as_array).is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let has_path = path.contains('{');
            let secured = op.get("security").is_some();
            let admin = path.starts_with("/v1/admin");
            // The Supabase surface answers its errors in GoTrue's shape.
            let supabase = path.starts_with("/auth/v1/");
            let schema = if supabase { "SbError" } else { "ErrorBody" };
            if supabase {
                // GoTrue reads a missing body as `{}`.
                if let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut) {
                    body.insert("required".to_owned(), Value::Bool(false));
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            let mut add = |status: &str, description: &str| {
                responses.entry(status.to_owned()).or_insert_with(|| error(description, schema));
            };
            if path == "/health" || path == "/auth/v1/health" {
                continue;
            }
            if has_body {
                add("400", "The body is not JSON, is missing, or has the wrong content type");
                add("408", "The request was not complete within HTTP_BODY_TIMEOUT");
                add("413", "The body is larger than 64 KiB");
                add("422", "A field is missing, of the wrong type, or breaks a rule");
            }
            if has_query {
                add("422", "A query parameter is of the wrong type or out of range");
            }
            if has_path {
                add("404", "No such resource (or a malformed id)");
            }
            if secured {
                add("401", "No valid credentials");
            }
            if admin {
                add("403", "Lacks the permission, or `mfa_required` with ADMIN_MFA_REQUIRED");
            }
            if limited.contains(&path.as_str()) && matches!(method.as_str(), "post" | "delete") {
                add("429", "Rate limited or locked out (see `Retry-After`)");
            }
            add("500", "An internal error (logged with the request id; the body says nothing more)");
            add("503", "The database is unavailable or the server is overloaded (see `Retry-After`)");
        }
    }
}

/// OpenAPI 3.1 requires a response's description; utoipa 6 leaves an empty one out (3.2
/// made it optional), so the responses documented without one get their empty one back.
fn describe_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        for response in responses.values_mut().filter_map(Value::as_object_mut) {
            response.entry("description").or_insert_with(|| Value::String(String::new()));
        }
    }
}

/// The document as served at `/openapi.json` and printed by `tessera openapi`.
pub fn document_json(policy: &PasswordPolicy, today: NaiveDate) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (schema, property, rule) in property_rules(policy, today) {
            if let Some(p) = schemas.get_mut(schema).and_then(|s| s.pointer_mut(&format!("/properties/{property}"))) {
                merge(p, &rule);
            }
        }
        // The Supabase admin API's change of a user takes the fields of its creation,
        // none of them required: a component of its own (see `supabase_schema_rules`).
        schemas.insert("SbAdminUserChangeIn".to_owned(), json!({}));
        for (schema, replacement) in schema_rules(policy) {
            if let Some(s) = schemas.get_mut(schema) {
                let mut replaced = Map::new();
                if let Some(d) = s.get("description") {
                    replaced.insert("description".to_owned(), d.clone());
                }
                *s = Value::Object(replaced);
                merge(s, &replacement);
            }
        }
        // Someone else's user: these fields and no others (so that the two answers of
        // `GET /v1/users/{id}` are told apart).
        if let Some(public) = schemas.get_mut("PublicUserOut") {
            merge(public, &json!({ "additionalProperties": false }));
        }
    }
    if let Some(paths) = doc.get_mut("paths") {
        for (path, method, name, rule) in parameter_rules() {
            let params =
                paths.pointer_mut(&format!("/{}/{method}/parameters", path.replace('~', "~0").replace('/', "~1")));
            if let Some(p) =
                params.and_then(Value::as_array_mut).and_then(|ps| ps.iter_mut().find(|p| p["name"] == name))
            {
                if let Some(schema) = p.get_mut("schema") {
                    merge(schema, &rule);
                }
                // A grant is chosen by its type: the one query parameter a request needs.
                if name == "grant_type" {
                    p["required"] = Value::Bool(true);
                }
            }
        }
        if let Some(body) =
            paths.pointer_mut("/~1auth~1v1~1admin~1users~1{id}/put/requestBody/content/application~1json/schema")
        {
            *body = json!({ "$ref": "#/components/schemas/SbAdminUserChangeIn" });
        }
        if let Some(ok) = paths.pointer_mut("/~1v1~1users~1{id}/get/responses/200/content/application~1json/schema") {
            *ok = json!({ "oneOf": [
                { "$ref": "#/components/schemas/UserOut" },
                { "$ref": "#/components/schemas/PublicUserOut" },
            ] });
        }
        // A phone sign-up answers the user alone: its number waits for its code.
        if let Some(ok) = paths.pointer_mut("/~1auth~1v1~1signup/post/responses/200/content/application~1json/schema") {
            *ok = json!({ "oneOf": [
                { "$ref": "#/components/schemas/SbSession" },
                { "$ref": "#/components/schemas/SbUser" },
            ] });
        }
    }
    describe_responses(&mut doc);
    document_responses(&mut doc);
    require_needed_bodies(&mut doc);
    doc
}

/// GoTrue reads a missing body as `{}` (see [`document_responses`]), which is only a
/// valid request where the body needs nothing: a body with a required field, or one of
/// several forms, is required.
fn require_needed_bodies(doc: &mut Value) {
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or_default();
    let needs_something = |name: &str| {
        schemas.get(name).is_some_and(|s| {
            s.get("required").and_then(Value::as_array).is_some_and(|r| !r.is_empty())
                || s.get("oneOf").is_some()
                || s.get("anyOf").is_some()
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
        let Some(body) = op.get_mut("requestBody") else { continue };
        let name = body
            .pointer("/content/application~1json/schema/$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned);
        if name.is_some_and(|n| needs_something(&n)) {
            body["required"] = Value::Bool(true);
        }
    }
}

/// The document for today (a birth date's latest day is today).
pub fn document_today(policy: &PasswordPolicy) -> Value {
    document_json(policy, chrono::Utc::now().date_naive())
}

/// `GET /openapi.json` and the Swagger UI at `/docs`.
pub fn router(policy: PasswordPolicy, shared: &SharedLayers) -> Router<AppState> {
    let document = Router::new().route("/openapi.json", get(move || served(policy.clone())));
    let ui = Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")),
    );
    shared.around(document, Surface::Ops, Csp::Strict).merge(shared.around(ui, Surface::Ops, Csp::SwaggerUi))
}

/// `GET /openapi.json`.
pub async fn served(policy: PasswordPolicy) -> axum::Json<Value> {
    axum::Json(document_today(&policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_has_the_description_openapi_3_1_requires() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        // The server's default policy, as the settings make it.
        let policy = tessera_core::settings::Settings::from_vars(&Default::default()).unwrap().password_policy;
        let doc = document_json(&policy, today);
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
        let mut responses = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    assert!(response["description"].is_string(), "{method} {path} {status}: {response}");
                    responses += 1;
                }
            }
        }
        assert!(responses > 100, "{responses}");
    }
}
