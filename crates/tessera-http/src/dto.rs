//! Request and response bodies of the native API, with their OpenAPI schemas.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tessera_core::entity::{mfa_factor, profile, session, user};
use tessera_core::passkey::{Passkey, PasskeyOptions};
use utoipa::ToSchema;
use uuid::Uuid;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The native user object (SPEC §3.2): never a hash, never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    pub role: String,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_phone_verified: bool,
    pub mfa_enabled: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the owner deleted the account: only on accounts an admin can still restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The answer to an email confirmation: the user as it is now, and, after the first side
/// of a secure email change, which address must still confirm.
#[derive(Serialize, ToSchema)]
pub struct VerifiedOut {
    #[serde(flatten)]
    pub user: UserOut,
    /// `current_email` or `new_email`: the address whose link or code is still needed
    /// before the email changes. Absent once nothing more is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pending_confirmation: Option<String>,
    /// What is still needed, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

impl VerifiedOut {
    /// The user and what the confirmation left to do.
    pub fn new(v: &tessera_core::mail::verification::Verified) -> Self {
        let (pending_confirmation, detail) = pending(v.confirmation).unzip();
        Self { user: UserOut::from(&v.user), pending_confirmation, detail }
    }
}

/// The address still to confirm, and a sentence saying so.
pub fn pending(c: tessera_core::mail::verification::Confirmation) -> Option<(String, String)> {
    use tessera_core::mail::verification::{ChangeSide, Confirmation};
    match c {
        Confirmation::EmailChangePending { waiting_for: ChangeSide::CurrentAddress } => Some((
            "current_email".to_owned(),
            "Confirmed. The email changes once the link or code sent to the current address is confirmed too."
                .to_owned(),
        )),
        Confirmation::EmailChangePending { waiting_for: ChangeSide::NewAddress } => Some((
            "new_email".to_owned(),
            "Confirmed. The email changes once the link or code sent to the new address is confirmed too.".to_owned(),
        )),
        _ => None,
    }
}

impl From<&user::Model> for UserOut {
    fn from(u: &user::Model) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            phone: u.phone.clone(),
            role: u.role.clone(),
            is_active: u.is_active,
            is_verified: u.email_verified_at.is_some(),
            is_phone_verified: u.phone_verified_at.is_some(),
            mfa_enabled: u.mfa_enabled,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
            deleted_at: u.deleted_at,
        }
    }
}

/// What anyone signed in may see of another user.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicUserOut {
    pub id: Uuid,
    pub full_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A sign-up.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterIn {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// A JSON sign-in (the form `username`/`password` is accepted too).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginIn {
    #[serde(alias = "username")]
    pub email: String,
    pub password: String,
}

/// The OAuth2 password-flow form (other fields, such as `grant_type`, are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// The email address.
    pub username: String,
    pub password: String,
}

/// A successful sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    pub user: UserOut,
}

/// The first step of a sign-in for a user with MFA on: no tokens yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequiredOut {
    /// Always `true`.
    pub mfa_required: bool,
    /// Opaque, single use, valid 5 minutes: send it with a code to the second step.
    pub mfa_token: String,
    /// `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
}

impl From<tessera_core::session::issued::MfaChallenge> for MfaRequiredOut {
    fn from(c: tessera_core::session::issued::MfaChallenge) -> Self {
        Self { mfa_required: true, mfa_token: c.mfa_token, methods: c.methods.to_vec() }
    }
}

/// What a sign-in answers: the session, or the second step it needs.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum LoginAnswer {
    Session(LoginOut),
    MfaRequired(MfaRequiredOut),
}

/// The second step of a sign-in: the first step's token and a TOTP code or a recovery
/// code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaVerifyIn {
    pub mfa_token: String,
    /// Six digits from the authenticator.
    #[serde(default)]
    #[schema(pattern = "^[0-9 ]{6,}$")]
    pub code: Option<String>,
    /// One of the recovery codes (`ABCDE-FGHJK`, with or without the dash, any case).
    #[serde(default)]
    pub recovery_code: Option<String>,
    /// A passkey's answer to `POST /v1/auth/mfa/webauthn/options`.
    #[serde(default)]
    pub webauthn: Option<AssertionIn>,
}

/// A TOTP enrolment.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TotpEnrollIn {
    /// A name to tell factors apart (1–100 characters); `Authenticator` when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// A new factor: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollOut {
    pub id: Uuid,
    /// The shared secret, base32.
    pub secret: String,
    pub otpauth_uri: String,
    /// A QR code of `otpauth_uri`: a PNG, base64.
    pub qr_png: String,
}

/// A code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeIn {
    pub code: String,
}

/// An activated factor: the recovery codes (shown once) and an aal2 access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivationOut {
    pub recovery_codes: Vec<String>,
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// What proves the removal of a factor: one of a code, a recovery code, the password.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FactorRemovalIn {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// A factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorOut {
    pub id: Uuid,
    /// `totp`, or `webauthn` for a WebAuthn factor enrolled on the Supabase surface.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// `unverified` or `verified`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<mfa_factor::Model> for FactorOut {
    fn from(f: mfa_factor::Model) -> Self {
        Self {
            id: f.id,
            kind: f.factor_type.clone(),
            name: f.name,
            status: f.status,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
        }
    }
}

/// The caller's factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorsOut {
    pub factors: Vec<FactorOut>,
    pub recovery_codes_left: u64,
}

/// New recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesOut {
    pub recovery_codes: Vec<String>,
}

/// A refresh request; the `refresh_token` cookie is used when the body has none.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefreshIn {
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A successful refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Present when the refresh token came in the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordIn {
    pub current_password: String,
    pub new_password: String,
}

/// Changes to one's own account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatchIn {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub full_name: Option<Option<String>>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the token making this request.
    pub current: bool,
}

impl SessionOut {
    /// A session, flagged when it is the caller's.
    pub fn new(s: &session::Model, current: Uuid) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            current: s.id == current,
        }
    }
}

/// The profile object (SPEC §3.3).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub location: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub bio: Option<String>,
    #[schema(value_type = Object)]
    pub preferences: Value,
    pub roles: Vec<String>,
    /// The JSON object the Supabase surface calls `user_metadata` (its sign-up `data`,
    /// `PUT /auth/v1/user {data}`); read-only here. Not in Kreeda's profile (seed 000's
    /// exact shape), whose auth user object shows its keys instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, nullable = false)]
    pub user_metadata: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProfileOut {
    /// The profile of a user (native shape, with `user_metadata`; see
    /// [`ProfileOut::kreeda`]).
    pub fn new(u: &user::Model, p: &profile::Model) -> Self {
        Self {
            id: p.id,
            user_id: u.id,
            name: u.full_name.clone(),
            avatar_url: p.avatar_url.clone(),
            location: p.location.clone(),
            date_of_birth: p.date_of_birth,
            bio: p.bio.clone(),
            preferences: p.preferences.clone(),
            roles: vec![u.role.clone()],
            user_metadata: Some(p.user_metadata.clone()),
            created_at: p.created_at,
            updated_at: p.updated_at.max(u.updated_at),
        }
    }

    /// The profile in seed 000's exact shape (Kreeda's `/user/profile/`).
    pub fn kreeda(u: &user::Model, p: &profile::Model) -> Self {
        Self { user_metadata: None, ..Self::new(u, p) }
    }
}

/// Profile changes: an absent field is kept, `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfilePatchIn {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
    /// ISO date, YYYY-MM-DD, not in the future.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub date_of_birth: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub bio: Option<Option<String>>,
    /// A JSON object of at most 16 KiB.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<Option<Value>>,
}

impl From<ProfilePatchIn> for tessera_core::account::users::ProfilePatch {
    fn from(p: ProfilePatchIn) -> Self {
        Self {
            name: p.name,
            avatar_url: p.avatar_url,
            location: p.location,
            date_of_birth: p.date_of_birth,
            bio: p.bio,
            preferences: p.preferences,
        }
    }
}

/// Confirms an email: `{token}` from the link, or `{email, code}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyEmailIn {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The 6-character code from the mail.
    #[serde(default)]
    pub code: Option<String>,
}

/// An email address.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailIn {
    pub email: String,
}

/// Sets a new password with a recovery token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirmIn {
    pub token: String,
    pub new_password: String,
}

/// A human message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub message: String,
}

/// `app_metadata` of the auth user object.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppMetadata {
    pub provider: &'static str,
    pub providers: Vec<&'static str>,
    pub roles: Vec<String>,
}

/// The auth user object of the Kreeda and Supabase surfaces (SPEC §3.4).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthUserOut {
    pub id: Uuid,
    pub aud: String,
    pub role: String,
    pub email: String,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub app_metadata: AppMetadata,
    #[schema(value_type = Object)]
    pub user_metadata: Value,
    /// The address a pending email change will switch to, until confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AuthUserOut {
    /// The object for a user; `aud` is the access tokens' audience.
    pub fn new(u: &user::Model, aud: &str) -> Self {
        Self {
            id: u.id,
            aud: aud.to_owned(),
            role: "authenticated".to_owned(),
            email: u.email.clone(),
            email_confirmed_at: u.email_verified_at,
            phone: u.phone.clone(),
            phone_confirmed_at: u.phone_verified_at,
            confirmed_at: u.email_verified_at,
            last_sign_in_at: u.last_login_at,
            app_metadata: AppMetadata { provider: "email", providers: vec!["email"], roles: vec![u.role.clone()] },
            user_metadata: serde_json::json!({ "name": u.full_name }),
            new_email: u.new_email.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }

    /// With the keys of the stored `user_metadata` (what the Supabase surface writes)
    /// beside `name`, which stays the user's name.
    pub fn with_stored(mut self, stored: Option<&Value>) -> Self {
        if let (Some(out), Some(stored)) = (self.user_metadata.as_object_mut(), stored.and_then(Value::as_object)) {
            for (k, v) in stored {
                if k != "name" {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        self
    }
}

/// A session: what a sign-in or refresh hands out on the Kreeda surface.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Always `Bearer`.
    pub token_type: &'static str,
}

impl From<&tessera_core::session::issued::Issued> for SessionBody {
    fn from(i: &tessera_core::session::issued::Issued) -> Self {
        Self {
            access_token: i.access_token.clone(),
            refresh_token: i.refresh_token.clone(),
            expires_in: i.expires_in,
            expires_at: i.expires_at,
            token_type: "Bearer",
        }
    }
}

/// Deleting one's own account: the password, and with MFA on a code or a recovery code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccountIn {
    pub password: String,
    /// With MFA on: the code the authenticator shows (or send `recovery_code`).
    #[serde(default)]
    pub code: Option<String>,
    /// With MFA on: a recovery code instead of `code`.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// A session in an export: revoked and expired ones too.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportSessionOut {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `aal1` or `aal2`.
    pub aal: String,
}

impl From<&session::Model> for ExportSessionOut {
    fn from(s: &session::Model) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            aal: tessera_core::session::issued::shown_aal(&s.aal).to_owned(),
        }
    }
}

/// An audit event about the user, in an export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAuditOut {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub event: String,
    /// Who did it: `user` (the account's owner), `admin` (an administrator, not named)
    /// or `system` (a sign-in attempt with the user's email, a purge). The ip and user
    /// agent are shown only for what the user did.
    pub by: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl ExportAuditOut {
    /// An event about `owner`.
    pub fn new(e: tessera_core::entity::audit_log::Model, owner: Uuid) -> Self {
        let by = match e.actor_id {
            Some(a) if a == owner => "user",
            Some(_) => "admin",
            None => "system",
        };
        // The address and agent of whoever else acted (an admin, or anyone who typed the
        // user's email at a sign-in) are theirs, not the user's.
        let own = by == "user";
        Self {
            id: e.id,
            created_at: e.created_at,
            event: e.event,
            by,
            ip: e.ip.filter(|_| own),
            user_agent: e.user_agent.filter(|_| own),
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

/// A user's data export (SPEC §5.8): everything stored about them, nothing about anyone
/// else, no hash or secret. Sent as an attachment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportOut {
    pub exported_at: DateTime<Utc>,
    pub user: UserOut,
    pub profile: Option<ProfileOut>,
    pub sessions: Vec<ExportSessionOut>,
    pub mfa_factors: Vec<FactorOut>,
    /// The passkeys, without key material.
    pub passkeys: Vec<PasskeyOut>,
    /// The identities at other providers the user signs in with, and what each said of them.
    pub identities: Vec<IdentityOut>,
    /// Every audit event about the user, oldest first.
    pub audit_events: Vec<ExportAuditOut>,
}

/// One way the caller signs in.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOut {
    pub id: Uuid,
    /// `email` (the address and password), or the provider's name.
    pub provider: String,
    /// The subject at the provider.
    pub provider_id: String,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub identity_data: serde_json::Value,
    pub last_sign_in_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<tessera_core::identity::IdentityView> for IdentityOut {
    fn from(i: tessera_core::identity::IdentityView) -> Self {
        IdentityOut {
            id: i.id,
            provider: i.provider,
            provider_id: i.provider_id,
            email: i.email,
            identity_data: i.data,
            last_sign_in_at: i.last_sign_in_at,
            created_at: i.created_at,
        }
    }
}

/// A ceremony's options and the challenge its answer names.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOptionsOut {
    pub challenge_id: Uuid,
    /// When the challenge dies (five minutes).
    pub expires_at: DateTime<Utc>,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
    #[schema(value_type = Object)]
    pub options: Value,
}

impl From<PasskeyOptions> for PasskeyOptionsOut {
    fn from(o: PasskeyOptions) -> Self {
        PasskeyOptionsOut { challenge_id: o.challenge_id, expires_at: o.expires_at, options: o.options }
    }
}

/// A passkey: no key material.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOut {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Backed up or synced beyond one device.
    pub backed_up: bool,
    /// The authenticator's model, when it names one.
    pub aaguid: Option<Uuid>,
}

impl From<Passkey> for PasskeyOut {
    fn from(p: Passkey) -> Self {
        PasskeyOut {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
            aaguid: p.aaguid,
        }
    }
}

/// A user's passkeys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeysOut {
    pub passkeys: Vec<PasskeyOut>,
}

/// The browser's answer to registration options.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistrationIn {
    pub challenge_id: Uuid,
    /// `RegistrationResponseJSON` (`credential.toJSON()`).
    #[schema(value_type = Object)]
    pub credential: Value,
    /// A name to tell it by (default `Passkey`); at most 120 characters.
    #[serde(default)]
    pub name: Option<String>,
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameIn {
    /// 1 to 120 printable characters.
    pub name: String,
}

/// Whose passkeys a sign-in may use: none named is a usernameless sign-in.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AuthenticationOptionsIn {
    /// Lists that account's passkeys in `allowCredentials` (an unknown address gets an
    /// answer of the same shape).
    #[serde(default)]
    pub email: Option<String>,
}

/// The browser's answer to authentication options.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssertionIn {
    pub challenge_id: Uuid,
    /// `AuthenticationResponseJSON` (`credential.toJSON()`).
    #[schema(value_type = Object)]
    pub credential: Value,
}

/// The second step's token, for passkey options.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaTokenIn {
    pub mfa_token: String,
}
