//! The shapes of `/auth/v1` for the OpenAPI document. The handlers build these answers
//! as JSON (GoTrue's objects); these types only describe them.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// An error of this surface (API version 2024-01-01).
#[derive(Serialize, ToSchema)]
pub struct SbError {
    /// The error code, e.g. `weak_password`.
    pub code: String,
    /// The same code, for clients of older API versions.
    pub error_code: String,
    pub message: String,
    /// The same message.
    pub msg: String,
    /// For `weak_password`: `{reasons: ["length" | "characters" | "pwned"]}`.
    #[schema(value_type = Object, nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_password: Option<serde_json::Value>,
}

/// A factor as GoTrue shows it.
#[derive(Serialize, ToSchema)]
pub struct SbFactor {
    pub id: Uuid,
    pub friendly_name: String,
    /// `totp`.
    pub factor_type: String,
    /// `verified` or `unverified`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// GoTrue's user object.
#[derive(Serialize, ToSchema)]
pub struct SbUser {
    pub id: Uuid,
    /// `authenticated`.
    pub aud: String,
    /// `authenticated`.
    pub role: String,
    pub email: String,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// Always a string: `""` when none.
    pub phone: String,
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// `provider: "email"`, `providers: ["email"]`, `roles`, and an admin's custom keys.
    #[schema(value_type = Object)]
    pub app_metadata: serde_json::Value,
    #[schema(value_type = Object)]
    pub user_metadata: serde_json::Value,
    /// One `email` identity.
    #[schema(value_type = Vec<Object>)]
    pub identities: Vec<serde_json::Value>,
    /// When the user has any.
    #[schema(nullable = false)]
    pub factors: Option<Vec<SbFactor>>,
    /// While an email change is pending.
    #[schema(nullable = false)]
    pub new_email: Option<String>,
    /// For an invited user.
    #[schema(nullable = false)]
    pub invited_at: Option<DateTime<Utc>>,
    /// For a banned (deactivated) user.
    #[schema(nullable = false)]
    pub banned_until: Option<String>,
    pub is_anonymous: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// GoTrue's session.
#[derive(Serialize, ToSchema)]
pub struct SbSession {
    pub access_token: String,
    /// `bearer`.
    pub token_type: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub refresh_token: String,
    pub user: SbUser,
    /// After a password sign-in whose password breaks today's policy.
    #[schema(value_type = Object, nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_password: Option<serde_json::Value>,
}

/// The admin API's page of users.
#[derive(Serialize, ToSchema)]
pub struct SbUserPage {
    pub users: Vec<SbUser>,
    /// `authenticated`.
    pub aud: String,
}

/// A TOTP enrolment.
#[derive(Serialize, ToSchema)]
pub struct SbEnrolment {
    pub id: Uuid,
    /// `totp`.
    #[serde(rename = "type")]
    pub kind: String,
    pub friendly_name: String,
    pub totp: SbTotp,
}

/// The secret of a TOTP enrolment, shown once.
#[derive(Serialize, ToSchema)]
pub struct SbTotp {
    /// The SVG image (`<svg …>`), bare: the client makes it a data URI.
    pub qr_code: String,
    pub secret: String,
    pub uri: String,
}

/// A challenge.
#[derive(Serialize, ToSchema)]
pub struct SbChallenge {
    pub id: Uuid,
    /// `totp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A passkey ceremony's options.
#[derive(Serialize, ToSchema)]
pub struct SbPasskeyOptions {
    pub challenge_id: Uuid,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A passkey.
#[derive(Serialize, ToSchema)]
pub struct SbPasskey {
    pub id: Uuid,
    pub friendly_name: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// An object holding only an id.
#[derive(Serialize, ToSchema)]
pub struct SbId {
    pub id: Uuid,
}

/// A generated link: the user's fields and these.
#[derive(Serialize, ToSchema)]
pub struct SbLink {
    #[serde(flatten)]
    pub user: SbUser,
    pub action_link: String,
    pub email_otp: String,
    pub hashed_token: String,
    pub redirect_to: String,
    pub verification_type: String,
}

/// An empty object, `{}`.
#[derive(Serialize, ToSchema)]
pub struct SbEmpty {}

/// The first side of a secure email change is confirmed.
#[derive(Serialize, ToSchema)]
pub struct SbPending {
    pub msg: String,
    /// `200`.
    pub code: i64,
}

/// `GET /auth/v1/health`.
#[derive(Serialize, ToSchema)]
pub struct SbHealth {
    pub version: String,
    pub name: String,
    pub description: String,
}

/// `GET /auth/v1/settings`.
#[derive(Serialize, ToSchema)]
pub struct SbSettings {
    /// Which sign-in methods are on (`email` only).
    #[schema(value_type = Object)]
    pub external: serde_json::Value,
    pub disable_signup: bool,
    pub mailer_autoconfirm: bool,
    pub phone_autoconfirm: bool,
    pub sms_provider: String,
    pub saml_enabled: bool,
}
