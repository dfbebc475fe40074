//! The phone as a second factor (SPEC §5.14; GoTrue's `factor_type: "phone"`): a factor
//! holds its number (encrypted with the MFA key, as TOTP secrets are); each challenge
//! sends a code by SMS, kept as a keyed hash beside the challenge; verifying the code
//! verifies the factor (MFA on) or steps the session up to aal2, as a TOTP code does.

use serde_json::json;
use tessera_domain::{Error, Phone};
use tessera_store::entity::{mfa_factor, mfa_token};
use tessera_store::query::{mfa, one_time_tokens};
use uuid::Uuid;

use super::sms::SmsKind;
use crate::app::Core;
use crate::caller::{now, ClientInfo, Principal};
use crate::session::issued::Issued;

pub use tessera_store::query::mfa::PHONE;

impl Core {
    /// Enrols the caller's `phone` as a factor, unverified until a first code verifies it.
    pub async fn enroll_phone_factor(
        &self,
        who: &Principal,
        phone: &Phone,
        name: Option<String>,
        client: &ClientInfo,
    ) -> Result<mfa_factor::Model, Error> {
        self.require_phone()?;
        self.require_aal2_if_mfa(who)?;
        // One factor per number, as GoTrue has it: a verified one must go first (422
        // `mfa_verified_factor_exists`); an unverified one is enrolled again, as it is.
        let taken = mfa::factors(self.store.reader(), who.user.id).await?;
        for f in taken.into_iter().filter(|f| f.factor_type == PHONE) {
            if self.factor_phone(&f)? == phone.as_str() {
                return if f.status == mfa::VERIFIED { Err(Error::FactorAlreadyActive) } else { Ok(f) };
            }
        }
        let secret = self.mfa_keys.encrypt(phone.as_str().as_bytes())?;
        let name = name.map(|n| n.trim().to_owned()).unwrap_or_default();
        self.enroll_factor(who, name, PHONE, secret, client).await
    }

    /// The number of a phone factor.
    pub fn factor_phone(&self, factor: &mfa_factor::Model) -> Result<String, Error> {
        String::from_utf8(self.mfa_keys.decrypt(&factor.secret)?)
            .map_err(|_| Error::Internal("a phone factor's number".into()))
    }

    /// A challenge of a phone factor: a code by SMS to its number, good for
    /// `SMS_OTP_EXP`; the challenge's id and expiry.
    pub(crate) async fn challenge_phone_factor(
        &self,
        who: &Principal,
        factor: &mfa_factor::Model,
        client: &ClientInfo,
    ) -> Result<(Uuid, chrono::DateTime<chrono::Utc>), Error> {
        self.require_phone()?;
        let phone = Phone::parse_lenient(&self.factor_phone(factor)?).map_err(|e| Error::Validation(vec![e]))?;
        self.sms_limits(&phone, client).await?;
        let tx = self.store.begin().await?;
        // The challenge shares its id with its code's row.
        let (id, expires_at) = self.issue_phone_code(&tx, &who.user, &phone, SmsKind::Mfa, true).await?;
        let challenge = mfa_token::Model {
            id,
            token_hash: super::super::mfa::challenge_hash(id, factor.id),
            user_id: who.user.id,
            token_version: who.user.token_version,
            attempts: 0,
            expires_at,
            used_at: None,
            created_at: now(),
        };
        mfa::insert_token(&tx, challenge).await?;
        tx.commit().await?;
        Ok((id, expires_at))
    }

    /// Whether `code` is the one sent for the phone challenge `challenge_id` (spending
    /// one of its tries).
    pub(crate) async fn phone_challenge_code_matches(
        &self,
        user_id: Uuid,
        challenge_id: Uuid,
        code: &str,
    ) -> Result<bool, Error> {
        let at = now();
        let row =
            one_time_tokens::newest_live_code(self.store.reader(), user_id, &[super::MFA_PHONE], None, at).await?;
        let Some(row) = row.filter(|r| r.id == challenge_id) else { return Ok(false) };
        Ok(self.check_code(&row, code).await.is_ok())
    }

    /// Verifies a phone factor's challenge with its code (the TOTP path's rules: the
    /// verification-attempt hook, the lockout, one use).
    pub(crate) async fn verify_phone_challenge(
        &self,
        who: &Principal,
        factor: mfa_factor::Model,
        challenge: mfa_token::Model,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let now = now();
        let activate = factor.status != mfa::VERIFIED;
        self.lockout_reserve(&who.user.email).await?;
        let valid = self.phone_challenge_code_matches(who.user.id, challenge.id, code).await?;
        if let Err(e) = self.mfa_attempt_hook(who.user.id, factor.id, PHONE, valid, client).await {
            self.lockout_release(&who.user.email).await;
            return Err(e);
        }
        let tx = self.store.begin().await?;
        if !valid {
            return Err(self.refuse_factor_code(tx, who, factor.id, client).await?);
        }
        if !mfa::use_token(&tx, challenge.id, now).await? {
            return Err(Error::InvalidMfaToken);
        }
        if activate {
            self.drop_other_unverified(&tx, who, factor.id).await?;
        }
        if !mfa::use_code_factor(&tx, factor.id, activate, now).await? {
            return Err(Error::FactorAlreadyActive);
        }
        self.finish_step_up(tx, who, activate, json!({ "factor_id": factor.id, "factor_type": PHONE }), now, client)
            .await
    }
}
