//! The WebAuthn relying party (who passkeys are registered with, where they may be
//! used), as the settings describe it, and the names every ceremony shares.

use std::time::Duration;

use serde_json::{json, Value};
use tessera_domain::Error;
use tessera_store::entity::user;
use url::Url;
use uuid::Uuid;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, Credential, RegistrationState,
    UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

use crate::settings::Settings;

/// How long a ceremony's challenge lives.
pub const CHALLENGE_TTL_SECS: i64 = 300;
/// The most passkeys one account may hold.
pub const MAX_PER_USER: u64 = 25;

/// What a stored challenge is for.
pub(crate) const REGISTRATION: &str = "registration";
pub(crate) const AUTHENTICATION: &str = "authentication";
pub(crate) const SECOND_STEP: &str = "mfa";
/// A challenge of the Supabase surface's WebAuthn factor.
pub(crate) const FACTOR: &str = "factor";

/// The signature algorithms offered, in order of preference: ES256, EdDSA, RS256.
const ALGORITHMS: [COSEAlgorithm; 3] = [COSEAlgorithm::ES256, COSEAlgorithm::EDDSA, COSEAlgorithm::RS256];

/// The WebAuthn user handle of a user: the 16 bytes of its id.
pub(crate) fn user_handle(user_id: Uuid) -> Vec<u8> {
    user_id.as_bytes().to_vec()
}

/// The name an authenticator shows for a user's credential: the address, or the id of
/// an account without one.
pub(crate) fn account_name(user: &user::Model) -> String {
    if user.email.is_empty() {
        user.id.to_string()
    } else {
        user.email.clone()
    }
}

/// A credential descriptor of `allowCredentials` (W3C JSON), by base64url id.
pub(crate) fn descriptor(id: &str) -> Value {
    json!({ "type": "public-key", "id": id })
}

fn internal(e: WebauthnError) -> Error {
    Error::Internal(format!("passkey options: {e}"))
}

fn options_json(options: impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(options).map_err(|e| Error::Internal(format!("passkey options: {e}")))
}

/// The relying party: who passkeys are registered with, and where they may be used.
pub struct RelyingParty {
    pub(crate) webauthn: WebauthnCore,
}

impl RelyingParty {
    /// The relying party the settings describe; `None` with `PASSKEYS_ENABLED=false`.
    /// A broken RP ID or origin is a start problem, one line each.
    pub fn from_settings(s: &Settings) -> Result<Option<RelyingParty>, String> {
        if !s.passkeys_enabled {
            return Ok(None);
        }
        let rp_id = s.webauthn_rp_id.trim().to_ascii_lowercase();
        if rp_id.is_empty() || rp_id.contains('/') || rp_id.contains(':') {
            return Err(format!("WEBAUTHN_RP_ID={rp_id:?} is not a domain (e.g. example.com)"));
        }
        let mut origins = Vec::new();
        for raw in &s.webauthn_rp_origins {
            let origin = Url::parse(raw).map_err(|_| format!("WEBAUTHN_RP_ORIGINS: {raw:?} is not an origin"))?;
            if matches!(origin.scheme(), "http" | "https") {
                let host = origin.host_str().unwrap_or_default();
                if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                    return Err(format!(
                        "WEBAUTHN_RP_ORIGINS: {raw} is not on WEBAUTHN_RP_ID {rp_id} (nor a subdomain of it)"
                    ));
                }
            }
            origins.push(origin);
        }
        if origins.is_empty() {
            return Err("WEBAUTHN_RP_ORIGINS names no origin".to_owned());
        }
        let webauthn = WebauthnCore::new_unsafe_experts_only(
            &s.webauthn_rp_name,
            &rp_id,
            origins,
            Duration::from_secs(CHALLENGE_TTL_SECS as u64),
            None,
            None,
        );
        Ok(Some(RelyingParty { webauthn }))
    }

    /// The options of a registration under tessera's policies (attestation `none`, user
    /// verification preferred, ES256, EdDSA and RS256), excluding `exclude`; a passkey is
    /// `discoverable` (`residentKey: "required"`), a Supabase WebAuthn factor need not be.
    pub(crate) fn registration(
        &self,
        handle: &[u8],
        name: &str,
        exclude: Option<Vec<Vec<u8>>>,
        discoverable: bool,
    ) -> Result<(Value, RegistrationState), Error> {
        let builder = self
            .webauthn
            .new_challenge_register_builder(handle, name, name)
            .map_err(internal)?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .exclude_credentials(exclude)
            .credential_algorithms(ALGORITHMS.to_vec())
            .require_resident_key(discoverable);
        let (options, state) = self.webauthn.generate_challenge_register(builder).map_err(internal)?;
        Ok((options_json(options.public_key)?, state))
    }

    /// The options of an assertion (user verification preferred) of one of `credentials`;
    /// none: of whatever the browser holds for this site (usernameless).
    pub(crate) fn authentication(&self, credentials: Vec<Credential>) -> Result<(Value, AuthenticationState), Error> {
        let builder = self
            .webauthn
            .new_challenge_authenticate_builder(credentials, Some(UserVerificationPolicy::Preferred))
            .map_err(internal)?;
        let (options, state) = self.webauthn.generate_challenge_authenticate(builder).map_err(internal)?;
        Ok((options_json(options.public_key)?, state))
    }
}
