//! The Supabase surface's WebAuthn factor (`factor_type: "webauthn"` at
//! `/auth/v1/factors`): enrolled unverified, then challenged to `create` a credential
//! (which verifies it, MFA on) and later to `request` an assertion of it; either
//! verification makes the caller's session aal2, as a TOTP code does. Its credential is
//! kept encrypted in the factor's `secret`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tessera_domain::Error;
use tessera_store::entity::{mfa_factor, user};
use tessera_store::query::{mfa, sessions, users};
use uuid::Uuid;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, Credential, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
};

use super::{user_handle, FACTOR};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo, Principal};
use crate::session::issued::Issued;

/// A challenge of a WebAuthn factor: `create` (registration options) for an unverified
/// factor, `request` (authentication options) for a verified one.
#[derive(Debug, Clone)]
pub struct FactorChallenge {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub kind: &'static str,
    /// W3C JSON options.
    pub options: Value,
}

/// What a factor's challenge keeps for its verification.
#[derive(Serialize, Deserialize)]
enum FactorState {
    Create { factor_id: Uuid, state: RegistrationState },
    Request { factor_id: Uuid, state: AuthenticationState },
}

impl Core {
    /// Enrols an unverified WebAuthn factor (an empty name is allowed, as GoTrue allows it).
    pub async fn enroll_webauthn_factor(
        &self,
        who: &Principal,
        name: Option<String>,
        client: &ClientInfo,
    ) -> Result<mfa_factor::Model, Error> {
        self.relying_party()?;
        self.require_aal2_if_mfa(who)?;
        let name = name.map(|n| n.trim().to_owned()).unwrap_or_default();
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::field("name", "invalid_name", "At most 100 printable characters."));
        }
        let now = now();
        let factor = mfa_factor::Model {
            id: Uuid::now_v7(),
            user_id: who.user.id,
            name,
            secret: String::new(),
            status: mfa::UNVERIFIED.to_owned(),
            last_used_step: None,
            created_at: now,
            last_used_at: None,
            factor_type: mfa::WEBAUTHN.to_owned(),
        };
        let tx = self.store.begin().await?;
        mfa::insert_factor(&tx, factor.clone()).await?;
        let detail = json!({ "factor_id": factor.id, "factor_type": mfa::WEBAUTHN });
        record(&tx, client, AuditEvent::by_user("mfa.enroll", who.user.id).detail(detail)).await?;
        tx.commit().await?;
        Ok(factor)
    }

    /// A challenge of one of the caller's WebAuthn factors.
    pub async fn challenge_webauthn_factor(&self, who: &Principal, factor_id: Uuid) -> Result<FactorChallenge, Error> {
        let rp = self.relying_party()?;
        let factor = self.webauthn_factor(who.user.id, factor_id).await?;
        let internal = |e: webauthn_rs_core::error::WebauthnError| Error::Internal(format!("webauthn factor: {e}"));
        let (kind, state, options) = if factor.status == mfa::VERIFIED {
            let cred = self.factor_credential(&factor)?;
            let builder = rp
                .webauthn
                .new_challenge_authenticate_builder(vec![cred], Some(UserVerificationPolicy::Preferred))
                .map_err(internal)?;
            let (options, state) = rp.webauthn.generate_challenge_authenticate(builder).map_err(internal)?;
            let options = serde_json::to_value(options.public_key).map_err(|e| Error::Internal(e.to_string()))?;
            ("request", FactorState::Request { factor_id, state }, options)
        } else {
            let user = &who.user;
            let name = if user.email.is_empty() { user.id.to_string() } else { user.email.clone() };
            let builder = rp
                .webauthn
                .new_challenge_register_builder(&user_handle(user.id), &name, &name)
                .map_err(internal)?
                .attestation(AttestationConveyancePreference::None)
                .user_verification_policy(UserVerificationPolicy::Preferred)
                .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA, COSEAlgorithm::RS256]);
            let (options, state) = rp.webauthn.generate_challenge_register(builder).map_err(internal)?;
            let options = serde_json::to_value(options.public_key).map_err(|e| Error::Internal(e.to_string()))?;
            ("create", FactorState::Create { factor_id, state }, options)
        };
        let (id, expires_at) = self.store_challenge(FACTOR, Some(who.user.id), &state).await?;
        Ok(FactorChallenge { id, expires_at, kind, options })
    }

    /// Verifies a WebAuthn factor's challenge with the browser's answer (`create`: a new
    /// credential, which verifies the factor and turns MFA on; `request`: an assertion).
    /// The caller's session becomes aal2 and its tokens are handed out again.
    pub async fn verify_webauthn_factor(
        &self,
        who: &Principal,
        factor_id: Uuid,
        challenge_id: Uuid,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let rp = self.relying_party()?;
        let factor = self.webauthn_factor(who.user.id, factor_id).await?;
        let (_, state): (_, FactorState) = self.take_challenge(challenge_id, FACTOR, Some(who.user.id)).await?;
        let now = now();
        let (activate, secret) = match state {
            FactorState::Create { factor_id: f, state } if f == factor.id && factor.status != mfa::VERIFIED => {
                let reg: RegisterPublicKeyCredential =
                    serde_json::from_value(credential.clone()).map_err(|_| Error::PasskeyInvalid)?;
                let cred = rp.webauthn.register_credential(&reg, &state, None).map_err(|e| {
                    tracing::info!(reason = %e, "webauthn factor registration refused");
                    Error::PasskeyInvalid
                })?;
                (true, cred)
            }
            FactorState::Request { factor_id: f, state } if f == factor.id && factor.status == mfa::VERIFIED => {
                let rsp: PublicKeyCredential =
                    serde_json::from_value(credential.clone()).map_err(|_| Error::InvalidMfaCode)?;
                let mut cred = self.factor_credential(&factor)?;
                match rp.webauthn.authenticate_credential(&rsp, &state) {
                    Ok(result) => {
                        cred.counter = result.counter();
                        cred.backup_state = result.backup_state();
                        (false, cred)
                    }
                    Err(e) => {
                        tracing::info!(reason = %e, "webauthn factor assertion refused");
                        let ev =
                            AuditEvent::by_user("mfa.failure", who.user.id).detail(json!({ "factor_id": factor.id }));
                        record(self.store.writer(), client, ev).await?;
                        self.lockout_failure(&who.user.email, client).await?;
                        return Err(Error::InvalidMfaCode);
                    }
                }
            }
            _ => return Err(Error::ChallengeNotFound),
        };
        let json = serde_json::to_vec(&secret).map_err(|e| Error::Internal(e.to_string()))?;
        let sealed = self.mfa_keys.encrypt(&json)?;
        let tx = self.store.begin().await?;
        if activate {
            users::by_id_for_update(&tx, who.user.id).await?;
        }
        if !mfa::set_webauthn_credential(&tx, factor.id, &sealed, activate, now).await? {
            return Err(Error::ChallengeNotFound);
        }
        if activate {
            mfa::set_enabled(&tx, who.user.id, true, now).await?;
        }
        sessions::set_aal(&tx, who.session_id, "aal2").await?;
        let event = if activate { "mfa.activate" } else { "mfa.verify" };
        let detail = json!({ "factor_id": factor.id, "factor_type": mfa::WEBAUTHN });
        record(&tx, client, AuditEvent::by_user(event, who.user.id).detail(detail)).await?;
        let session = sessions::by_id(&tx, who.session_id).await?.ok_or(Error::TokenRevoked)?;
        tx.commit().await?;
        let user = user::Model { mfa_enabled: true, ..who.user.clone() };
        self.session_tokens(user, &session, "aal2", now, client.surface).await
    }

    async fn webauthn_factor(&self, user_id: Uuid, factor_id: Uuid) -> Result<mfa_factor::Model, Error> {
        mfa::factor(self.store.reader(), user_id, factor_id)
            .await?
            .filter(|f| f.factor_type == mfa::WEBAUTHN)
            .ok_or(Error::FactorNotFound)
    }

    fn factor_credential(&self, factor: &mfa_factor::Model) -> Result<Credential, Error> {
        let plain = self.mfa_keys.decrypt(&factor.secret)?;
        serde_json::from_slice(&plain).map_err(|e| Error::Internal(format!("stored webauthn factor: {e}")))
    }
}
