//! The Supabase surface's WebAuthn factor (`factor_type: "webauthn"` at
//! `/auth/v1/factors`): enrolled unverified, then challenged to `create` a credential
//! (which verifies it, MFA on) and later to `request` an assertion of it; either
//! verification makes the caller's session aal2, as a TOTP code does. Its credential is
//! kept encrypted in the factor's `secret`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tessera_domain::Error;
use tessera_store::entity::mfa_factor;
use tessera_store::query::{mfa, users};
use uuid::Uuid;
use webauthn_rs_core::proto::{
    AuthenticationState, Credential, PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState,
};

use super::relying_party::{account_name, user_handle, FACTOR};
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
        // Its credential comes with its first verification.
        self.enroll_factor(who, name, mfa::WEBAUTHN, String::new(), client).await
    }

    /// A challenge of one of the caller's WebAuthn factors.
    pub async fn challenge_webauthn_factor(&self, who: &Principal, factor_id: Uuid) -> Result<FactorChallenge, Error> {
        let rp = self.relying_party()?;
        let factor = self.webauthn_factor(who.user.id, factor_id).await?;
        let (kind, state, options) = if factor.status == mfa::VERIFIED {
            let (options, state) = rp.authentication(vec![self.factor_credential(&factor)?])?;
            ("request", FactorState::Request { factor_id, state }, options)
        } else {
            let user = &who.user;
            let (options, state) = rp.registration(&user_handle(user.id), &account_name(user), None, false)?;
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
                // An assertion is a secret checked like a code: refused while the address is
                // locked, and a wrong one counts toward the lockout (§5.5).
                self.lockout_reserve(&who.user.email).await?;
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
        let detail = json!({ "factor_id": factor.id, "factor_type": mfa::WEBAUTHN });
        self.finish_step_up(tx, who, activate, detail, now, client).await
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
