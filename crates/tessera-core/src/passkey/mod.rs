//! Passkeys (SPEC §5.10): discoverable WebAuthn credentials, a sign-in of their own (no
//! password, no email typed) and a second factor after a password. webauthn-rs-core
//! runs the ceremonies (CBOR, COSE, signatures, origins, counters); this module chooses
//! the policies (discoverable credentials required, user verification preferred,
//! attestation `none`, ES256, EdDSA and RS256), keeps each ceremony's challenge in the
//! database for five minutes and one use, and hands a verified sign-in to the one
//! pipeline ([`Proof::Passkey`]).

mod factor;
pub mod relying_party;

pub use factor::FactorChallenge;
use relying_party::{account_name, descriptor, user_handle, AUTHENTICATION, REGISTRATION, SECOND_STEP};
pub use relying_party::{RelyingParty, CHALLENGE_TTL_SECS, MAX_PER_USER};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{json, Value};
use tessera_domain::{Email, Error};
use tessera_store::entity::{passkey, user, webauthn_challenge};
use tessera_store::query::passkeys::PasskeyUse;
use tessera_store::query::sessions::Spent;
use tessera_store::query::{passkeys, users};
use uuid::Uuid;
use webauthn_rs_core::proto::{AuthenticationResult, Credential, PublicKeyCredential, RegisterPublicKeyCredential};

use crate::account::admin::stored_role;
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, Actor, ClientInfo, Principal};
use crate::crypto::mac;
use crate::session::issued::{is_usable, SignIn};
use crate::session::sign_in::{count_refusal, Proof, Proven};

/// The longest name of a passkey.
pub const MAX_NAME: usize = 120;

/// A passkey as its owner and admins see it: no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether the credential is backed up or synced beyond one device.
    pub backed_up: bool,
    /// The authenticator's model, when it said (all zeros for most synced passkeys).
    pub aaguid: Option<Uuid>,
}

impl From<passkey::Model> for Passkey {
    fn from(m: passkey::Model) -> Self {
        Passkey {
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            backed_up: m.backed_up,
            aaguid: m.aaguid.and_then(|a| Uuid::parse_str(&a).ok()),
        }
    }
}

/// A ceremony's options (W3C JSON: `PublicKeyCredentialCreationOptionsJSON` or
/// `PublicKeyCredentialRequestOptionsJSON`) and the challenge that verifies its answer.
#[derive(Debug, Clone)]
pub struct PasskeyOptions {
    pub challenge_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub options: Value,
}

/// A passkey assertion checked against its challenge, not yet recorded: the counter and
/// the credential as they become once the sign-in commits.
pub(crate) struct Asserted {
    pub user: user::Model,
    pub passkey: passkey::Model,
    pub result: AuthenticationResult,
    pub credential: String,
}

impl Asserted {
    /// The use of the passkey this assertion makes: its counter moved to the assertion's.
    pub(crate) fn passkey_use(&self) -> PasskeyUse {
        PasskeyUse {
            id: self.passkey.id,
            counter: i64::from(self.result.counter()),
            credential: self.credential.clone(),
            backed_up: self.result.backup_state(),
        }
    }
}

fn credential_id(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// A passkey's name as given: trimmed, printable, at most [`MAX_NAME`] characters.
fn valid_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::field("name", "invalid_name", format!("1 to {MAX_NAME} printable characters.")));
    }
    Ok(name.to_owned())
}

/// The AAGUID the authenticator put in its attestation object, if any (zeros: none).
fn aaguid_of(reg: &RegisterPublicKeyCredential) -> Option<Uuid> {
    use serde_cbor_2::Value as Cbor;
    use webauthn_rs_core::internals::AuthenticatorData;
    use webauthn_rs_core::proto::Registration;
    let Ok(Cbor::Map(object)) = serde_cbor_2::from_slice::<Cbor>(&reg.response.attestation_object) else {
        return None;
    };
    let Some(Cbor::Bytes(auth_data)) = object.get(&Cbor::Text("authData".to_owned())) else { return None };
    let data = AuthenticatorData::<Registration>::try_from(auth_data.as_slice()).ok()?;
    let aaguid = Uuid::from_bytes(data.acd?.aaguid);
    (!aaguid.is_nil()).then_some(aaguid)
}

fn expired(challenge: &webauthn_challenge::Model) -> bool {
    challenge.expires_at <= now()
}

/// The ceremony state a challenge keeps.
fn state_of<S: serde::de::DeserializeOwned>(challenge: &webauthn_challenge::Model) -> Result<S, Error> {
    serde_json::from_str(&challenge.state).map_err(|e| Error::Internal(format!("passkey state: {e}")))
}

/// Audits a refused assertion: `passkey.clone_suspected` when its counter went
/// backwards, else `login.failure`.
async fn assertion_refused(
    conn: &impl tessera_store::Db,
    user: &user::Model,
    passkey: &passkey::Model,
    clone: bool,
    reason: &str,
    client: &ClientInfo,
) -> Result<(), Error> {
    tracing::info!(reason, "passkey assertion refused");
    let ev = if clone {
        AuditEvent::by_user("passkey.clone_suspected", user.id).detail(json!({ "passkey_id": passkey.id }))
    } else {
        AuditEvent::by_user("login.failure", user.id)
            .detail(json!({ "reason": "passkey_refused", "method": "passkey", "passkey_id": passkey.id }))
    };
    record(conn, client, ev).await
}

impl Core {
    pub(crate) fn relying_party(&self) -> Result<&RelyingParty, Error> {
        self.webauthn.as_ref().ok_or(Error::PasskeysDisabled)
    }

    pub(crate) async fn store_challenge(
        &self,
        kind: &str,
        user_id: Option<Uuid>,
        state: &impl serde::Serialize,
    ) -> Result<(Uuid, DateTime<Utc>), Error> {
        let now = now();
        let row = webauthn_challenge::Model {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            user_id,
            state: serde_json::to_string(state).map_err(|e| Error::Internal(format!("passkey state: {e}")))?,
            expires_at: now + ChronoDuration::seconds(CHALLENGE_TTL_SECS),
            created_at: now,
        };
        let (id, expires_at) = (row.id, row.expires_at);
        passkeys::insert_challenge(self.store.writer(), row).await?;
        Ok((id, expires_at))
    }

    /// Takes a challenge (once, on any node) and reads its state.
    pub(crate) async fn take_challenge<S: serde::de::DeserializeOwned>(
        &self,
        id: Uuid,
        kind: &str,
        user_id: Option<Uuid>,
    ) -> Result<(webauthn_challenge::Model, S), Error> {
        let challenge =
            passkeys::take_challenge(self.store.writer(), id, kind, user_id).await?.ok_or(Error::ChallengeNotFound)?;
        if expired(&challenge) {
            return Err(Error::ChallengeExpired);
        }
        let state = state_of(&challenge)?;
        Ok((challenge, state))
    }

    /// The options to register a passkey for the caller (aal2 when MFA is on): every
    /// passkey it has is excluded, so an authenticator registers once.
    pub async fn passkey_registration_options(&self, who: &Principal) -> Result<PasskeyOptions, Error> {
        let rp = self.relying_party()?;
        self.require_aal2_if_mfa(who)?;
        let existing = passkeys::of_user(self.store.reader(), who.user.id).await?;
        if existing.len() as u64 >= MAX_PER_USER {
            return Err(Error::TooManyPasskeys);
        }
        let exclude: Vec<Vec<u8>> =
            existing.iter().filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok()).collect();
        let user = &who.user;
        let (options, state) = rp.registration(&user_handle(user.id), &account_name(user), Some(exclude), true)?;
        let (challenge_id, expires_at) = self.store_challenge(REGISTRATION, Some(user.id), &state).await?;
        Ok(PasskeyOptions { challenge_id, expires_at, options })
    }

    /// Verifies the browser's answer to [`Core::passkey_registration_options`] and keeps
    /// the passkey (event `passkey.register`).
    pub async fn register_passkey(
        &self,
        who: &Principal,
        challenge_id: Uuid,
        credential: &Value,
        name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Passkey, Error> {
        let rp = self.relying_party()?;
        self.require_aal2_if_mfa(who)?;
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => valid_name(n)?,
            None => "Passkey".to_owned(),
        };
        let (_, state) = self.take_challenge(challenge_id, REGISTRATION, Some(who.user.id)).await?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| Error::PasskeyInvalid)?;
        let cred = rp.webauthn.register_credential(&reg, &state, None).map_err(|e| {
            tracing::info!(reason = %e, "passkey registration refused");
            Error::PasskeyInvalid
        })?;
        let now = now();
        let row = passkey::Model {
            id: Uuid::now_v7(),
            user_id: who.user.id,
            credential_id: credential_id(&cred.cred_id),
            name,
            credential: serde_json::to_string(&cred).map_err(|e| Error::Internal(e.to_string()))?,
            aaguid: aaguid_of(&reg).map(|a| a.to_string()),
            backed_up: cred.backup_state,
            sign_count: i64::from(cred.counter),
            created_at: now,
            last_used_at: None,
        };
        let tx = self.store.begin().await?;
        if passkeys::count(&tx, who.user.id).await? >= MAX_PER_USER {
            return Err(Error::TooManyPasskeys);
        }
        if !passkeys::insert(&tx, row.clone()).await? {
            return Err(Error::PasskeyExists);
        }
        let detail =
            json!({ "passkey_id": row.id, "name": row.name, "aaguid": row.aaguid, "backed_up": row.backed_up });
        record(&tx, client, AuditEvent::by_user("passkey.register", who.user.id).detail(detail)).await?;
        tx.commit().await?;
        Ok(Passkey::from(row))
    }

    /// A user's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<Passkey>, Error> {
        Ok(passkeys::of_user(self.store.reader(), user_id).await?.into_iter().map(Passkey::from).collect())
    }

    /// Renames one of the caller's passkeys (event `passkey.rename`).
    pub async fn rename_passkey(
        &self,
        who: &Principal,
        id: Uuid,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Passkey, Error> {
        self.relying_party()?;
        let name = valid_name(name)?;
        let tx = self.store.begin().await?;
        if !passkeys::rename(&tx, who.user.id, id, &name).await? {
            return Err(Error::PasskeyNotFound);
        }
        let row = passkeys::of_user_by_id(&tx, who.user.id, id).await?.ok_or(Error::PasskeyNotFound)?;
        let ev = AuditEvent::by_user("passkey.rename", who.user.id).detail(json!({ "passkey_id": id, "name": name }));
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(Passkey::from(row))
    }

    /// Removes one of the caller's passkeys (aal2 when MFA is on; event `passkey.remove`).
    pub async fn remove_passkey(&self, who: &Principal, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        self.relying_party()?;
        self.require_aal2_if_mfa(who)?;
        let tx = self.store.begin().await?;
        if !passkeys::delete(&tx, who.user.id, id).await? {
            return Err(Error::PasskeyNotFound);
        }
        record(&tx, client, AuditEvent::by_user("passkey.remove", who.user.id).detail(json!({ "passkey_id": id })))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An admin removes a user's passkey (event `admin.user.passkey_removed`).
    pub async fn admin_remove_passkey(
        &self,
        actor: &Actor,
        user_id: Uuid,
        passkey_id: Uuid,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let target = self.admin_user(user_id).await?;
        actor.may_manage(stored_role(&target))?;
        let tx = self.store.begin().await?;
        if !passkeys::delete(&tx, user_id, passkey_id).await? {
            return Err(Error::PasskeyNotFound);
        }
        let ev = actor.event("admin.user.passkey_removed", Some(user_id), json!({ "passkey_id": passkey_id }));
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The options of a passkey sign-in. Without an email: usernameless (no
    /// `allowCredentials`: the browser offers the accounts it holds). With one: that
    /// account's passkeys, and for an address with none (or no account) stand-ins made
    /// from the address, the same each time, so the answer says nothing of who exists.
    pub async fn passkey_authentication_options(&self, email: Option<&str>) -> Result<PasskeyOptions, Error> {
        let rp = self.relying_party()?;
        let allow = match email.map(str::trim).filter(|e| !e.is_empty()) {
            None => Vec::new(),
            Some(raw) => self.allowed_credentials_for(raw).await?,
        };
        self.assertion_options(rp, AUTHENTICATION, None, allow).await
    }

    /// The options of an assertion (a sign-in or a second step) and its stored challenge:
    /// `allow` as `allowCredentials`, none at all when empty (usernameless).
    async fn assertion_options(
        &self,
        rp: &RelyingParty,
        kind: &str,
        user_id: Option<Uuid>,
        allow: Vec<Value>,
    ) -> Result<PasskeyOptions, Error> {
        let (mut options, state) = rp.authentication(Vec::new())?;
        let (challenge_id, expires_at) = self.store_challenge(kind, user_id, &state).await?;
        if allow.is_empty() {
            if let Some(o) = options.as_object_mut() {
                o.remove("allowCredentials");
            }
        } else {
            options["allowCredentials"] = Value::Array(allow);
        }
        Ok(PasskeyOptions { challenge_id, expires_at, options })
    }

    async fn allowed_credentials_for(&self, raw: &str) -> Result<Vec<Value>, Error> {
        let email = Email::parse(raw).ok();
        let user = match &email {
            Some(e) => users::by_email(self.store.reader(), e.as_str()).await?,
            None => None,
        };
        let own = match user.filter(is_usable) {
            Some(u) => passkeys::of_user(self.store.reader(), u.id).await?,
            None => Vec::new(),
        };
        if !own.is_empty() {
            return Ok(own.iter().map(|p| descriptor(&p.credential_id)).collect());
        }
        // A stand-in the size of a real credential id, keyed so nobody can tell it apart.
        let mut m = mac(&self.code_key, b"tessera passkey stand-in v1");
        hmac::Mac::update(&mut m, raw.trim().to_lowercase().as_bytes());
        let id = URL_SAFE_NO_PAD.encode(hmac::Mac::finalize(m).into_bytes());
        Ok(vec![descriptor(&id)])
    }

    /// Checks an assertion against a challenge taken by the caller: the passkey it names,
    /// its owner (the user handle must be that user's), the signature, the origin, the
    /// counter. `Err(PasskeyRefused)` for anything that does not hold.
    pub(crate) async fn check_assertion(
        &self,
        state: webauthn_rs_core::proto::AuthenticationState,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<Asserted, Error> {
        let rp = self.relying_party()?;
        let rsp: PublicKeyCredential = serde_json::from_value(credential.clone()).map_err(|_| Error::PasskeyRefused)?;
        let Some((passkey, user)) = self.store.passkey_with_user(&credential_id(&rsp.raw_id)).await? else {
            return Err(Error::PasskeyRefused);
        };
        if let Some(handle) = &rsp.response.user_handle {
            if handle.as_slice() != user_handle(passkey.user_id).as_slice() {
                return Err(Error::PasskeyRefused);
            }
        }
        if user.deleted_at.is_some() {
            return Err(Error::PasskeyRefused);
        }
        let mut cred: Credential =
            serde_json::from_str(&passkey.credential).map_err(|e| Error::Internal(format!("stored passkey: {e}")))?;
        let mut state = state;
        state.set_allowed_credentials(vec![cred.clone()]);
        let result = match rp.webauthn.authenticate_credential(&rsp, &state) {
            Ok(r) => r,
            Err(e) => {
                let clone = matches!(e, webauthn_rs_core::error::WebauthnError::CredentialPossibleCompromise);
                assertion_refused(self.store.writer(), &user, &passkey, clone, &e.to_string(), client).await?;
                return Err(Error::PasskeyRefused);
            }
        };
        cred.counter = result.counter();
        cred.backup_state = result.backup_state();
        cred.backup_eligible = result.backup_eligible();
        let credential = serde_json::to_string(&cred).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Asserted { user, passkey, result, credential })
    }

    /// What a checked assertion spends: its challenge, and the passkey's counter moved to
    /// the assertion's (refused when another sign-in already moved it to or past this
    /// one: the same assertion twice, or a clone).
    fn spent(challenge_id: Uuid, a: &Asserted) -> Spent {
        Spent { challenge: Some(challenge_id), passkey: Some(a.passkey_use()) }
    }

    /// Signs in with a passkey: the usernameless ceremony's answer to
    /// [`Core::passkey_authentication_options`]. aal2 when the authenticator verified the
    /// user; the lockout of the account's address applies as to a password.
    pub async fn sign_in_with_passkey(
        &self,
        challenge_id: Uuid,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        self.relying_party()?;
        // Read here and taken with the session the sign-in opens (one write); a refused
        // answer takes it at once.
        let challenge =
            self.store.webauthn_challenge(challenge_id, AUTHENTICATION).await?.ok_or(Error::ChallengeNotFound)?;
        if expired(&challenge) {
            passkeys::delete_challenge(self.store.writer(), challenge_id).await?;
            return Err(Error::ChallengeExpired);
        }
        let state = state_of(&challenge)?;
        let asserted = match self.check_assertion(state, credential, client).await {
            Ok(a) => a,
            Err(e) => {
                passkeys::delete_challenge(self.store.writer(), challenge_id).await?;
                count_refusal(&e);
                return Err(e);
            }
        };
        let email = asserted.user.email.clone();
        self.lockout_reserve(&email).await?;
        // The challenge and the counter are written with the session, in one write.
        let proof = Proof::Passkey { user_verified: asserted.result.user_verified() };
        let spent = Self::spent(challenge_id, &asserted);
        let signed_in =
            self.finish_sign_in(Proven { spent, ..Proven::new(asserted.user.clone(), proof) }, client).await;
        match &signed_in {
            Err(Error::ChallengeNotFound) => self.lockout_release(&email).await,
            Err(Error::PasskeyRefused) => {
                // The challenge is spent all the same.
                let why = "the counter did not move forwards";
                assertion_refused(self.store.writer(), &asserted.user, &asserted.passkey, true, why, client).await?;
                self.lockout_failure(&email, client).await?;
            }
            _ => self.lockout_success(&email).await,
        }
        signed_in
    }

    /// The options of a second step with a passkey, for the `mfa_token` of a password
    /// sign-in: the user's passkeys as `allowCredentials`.
    pub async fn mfa_passkey_options(&self, mfa_token: &str) -> Result<PasskeyOptions, Error> {
        let rp = self.relying_party()?;
        let token = self.live_mfa_token(mfa_token).await?;
        let own = passkeys::of_user(self.store.reader(), token.user_id).await?;
        if own.is_empty() {
            return Err(Error::PasskeyNotFound);
        }
        let allow = own.iter().map(|p| descriptor(&p.credential_id)).collect();
        self.assertion_options(rp, SECOND_STEP, Some(token.user_id), allow).await
    }

    /// A second step's passkey assertion, checked: it must be one of `user_id`'s passkeys.
    pub(crate) async fn check_second_step_passkey(
        &self,
        user_id: Uuid,
        challenge_id: Uuid,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<Option<Asserted>, Error> {
        let (_, state) = self.take_challenge(challenge_id, SECOND_STEP, Some(user_id)).await?;
        match self.check_assertion(state, credential, client).await {
            Ok(a) if a.user.id == user_id => Ok(Some(a)),
            Ok(_) | Err(Error::PasskeyRefused) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Real authenticators' answers, captured by webauthn-rs's authors (its own test
    //! vectors), put through this module's relying party and policies: what tessera
    //! accepts from a phone and a security key, not only from its own test authenticator.

    use std::collections::HashMap;

    use webauthn_rs_core::proto::{
        AttestationFormat, AttestationMetadata, AuthenticationState, COSEAlgorithm, COSEEC2Key, COSEKey, COSEKeyType,
        ECDSACurve, ParsedAttestation, ParsedAttestationData, RegisteredExtensions, RegistrationState,
        UserVerificationPolicy,
    };

    use super::*;
    use crate::settings::Settings;

    fn relying_party(rp_id: &str, origin: &str) -> RelyingParty {
        let vars: HashMap<String, String> = [("WEBAUTHN_RP_ID", rp_id), ("WEBAUTHN_RP_ORIGINS", origin)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let settings = Settings::from_vars(&vars).unwrap();
        RelyingParty::from_settings(&settings).unwrap().unwrap()
    }

    /// A state this module makes, with the vector's challenge in place of its own.
    fn with_challenge<T: serde::Serialize + serde::de::DeserializeOwned>(state: &T, challenge: &str) -> T {
        let mut v = serde_json::to_value(state).unwrap();
        v["challenge"] = json!(challenge);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_pixel_phone_registers_a_passkey_with_attestation_none() {
        let rp = relying_party("webauthn.firstyear.id.au", "https://webauthn.firstyear.id.au");
        let (_, state) = rp.registration(&[1; 16], "a@example.com", Some(Vec::new()), true).unwrap();
        let state: RegistrationState = with_challenge(&state, "55Wztjbgks9UkS5jYthawNFik0HSiYuCSB5pzNbT6k0");
        let reg: RegisterPublicKeyCredential = serde_json::from_value(json!({
            "id": "AfzEi3UOVveYjwUwIFO3QuN9V0fomECvAYrD_8S5FAsUJqtGbwpgB9bEfphVOURzFQoEszkuULIj5fMvnTkt6cs",
            "rawId": "AfzEi3UOVveYjwUwIFO3QuN9V0fomECvAYrD_8S5FAsUJqtGbwpgB9bEfphVOURzFQoEszkuULIj5fMvnTkt6cs",
            "response": {
                "attestationObject": "o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjFarm78N-aFvkduzO7sTL6-dF8eCxIJsbscOzuWNl-9SpFAAAAAAAAAAAAAAAAAAAAAAAAAAAAQQH8xIt1Dlb3mI8FMCBTt0LjfVdH6JhArwGKw__EuRQLFCarRm8KYAfWxH6YVTlEcxUKBLM5LlCyI-XzL505LenLpQECAyYgASFYII2OFisY2sjerzLYjLYvHsQh8V7cnpRcSL4A77wKqcRTIlggm7s0CUKEmkBBFp7Nng-9_pZ5Dm9y39uy6QJmDLgmgho",
                "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiNTVXenRqYmdrczlVa1M1all0aGF3TkZpazBIU2lZdUNTQjVwek5iVDZrMCIsIm9yaWdpbiI6Imh0dHBzOlwvXC93ZWJhdXRobi5maXJzdHllYXIuaWQuYXUiLCJhbmRyb2lkUGFja2FnZU5hbWUiOiJjb20uYW5kcm9pZC5jaHJvbWUifQ"
            },
            "type": "public-key"
        }))
        .unwrap();
        let cred = rp.webauthn.register_credential(&reg, &state, None).unwrap();
        assert_eq!(credential_id(&cred.cred_id), reg.id);
        assert_eq!(cred.cred.type_, COSEAlgorithm::ES256);
        assert_eq!(aaguid_of(&reg), None, "a zero AAGUID names no model");

        // The same answer from another site, or to another challenge, is refused.
        let elsewhere = relying_party("example.com", "https://example.com");
        assert!(elsewhere.webauthn.register_credential(&reg, &state, None).is_err());
        let other: RegistrationState = with_challenge(&state, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert!(rp.webauthn.register_credential(&reg, &other, None).is_err());
    }

    fn yubikey_5() -> Credential {
        Credential {
            cred_id: vec![
                106, 223, 133, 124, 161, 172, 56, 141, 181, 18, 27, 66, 187, 181, 113, 251, 187, 123, 20, 169, 41, 80,
                236, 138, 92, 137, 4, 4, 16, 255, 188, 47, 158, 202, 111, 192, 117, 110, 152, 245, 95, 22, 200, 172,
                71, 154, 40, 181, 212, 64, 80, 17, 238, 238, 21, 13, 27, 145, 140, 27, 208, 101, 166, 81,
            ],
            cred: COSEKey {
                type_: COSEAlgorithm::ES256,
                key: COSEKeyType::EC_EC2(COSEEC2Key {
                    curve: ECDSACurve::SECP256R1,
                    x: vec![
                        46, 121, 76, 233, 118, 208, 250, 74, 227, 182, 8, 145, 45, 46, 5, 9, 199, 186, 84, 83, 7, 237,
                        130, 73, 16, 90, 17, 54, 33, 255, 54, 56,
                    ],
                    y: vec![
                        117, 105, 1, 23, 253, 223, 67, 135, 253, 219, 253, 223, 17, 247, 91, 197, 205, 225, 143, 59,
                        47, 138, 70, 120, 74, 155, 177, 177, 166, 233, 48, 71,
                    ],
                }),
            },
            counter: 1,
            transports: None,
            user_verified: false,
            backup_eligible: false,
            backup_state: false,
            registration_policy: UserVerificationPolicy::Preferred,
            extensions: RegisteredExtensions::none(),
            attestation: ParsedAttestation { data: ParsedAttestationData::None, metadata: AttestationMetadata::None },
            attestation_format: AttestationFormat::None,
        }
    }

    fn yubikey_assertion() -> PublicKeyCredential {
        serde_json::from_value(json!({
            "id": "at-FfKGsOI21EhtCu7Vx-7t7FKkpUOyKXIkEBBD_vC-eym_AdW6Y9V8WyKxHmii11EBQEe7uFQ0bkYwb0GWmUQ",
            "rawId": "at-FfKGsOI21EhtCu7Vx-7t7FKkpUOyKXIkEBBD_vC-eym_AdW6Y9V8WyKxHmii11EBQEe7uFQ0bkYwb0GWmUQ",
            "response": {
                "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MBAAAAFA",
                "clientDataJSON": "eyJjaGFsbGVuZ2UiOiJXZ1h6X2tUdjNXVVUxa3c4aG0tT0dvR1M0WkNIWF8zYkVxSEgyUHZWcDhNIiwiY2xpZW50RXh0ZW5zaW9ucyI6e30sImhhc2hBbGdvcml0aG0iOiJTSEEtMjU2Iiwib3JpZ2luIjoiaHR0cDovL2xvY2FsaG9zdDo4MDgwIiwidHlwZSI6IndlYmF1dGhuLmdldCJ9",
                "signature": "MEYCIQDmLVOqv85cdRup4Fr8Pf9zC4AWO-XKBJqa8xPwYFCCMAIhAOiExLoyes0xipmUmq0BVlqJaCKLn_MFKG9GIDsCGq_-",
                "userHandle": null
            },
            "type": "public-key"
        }))
        .unwrap()
    }

    fn sign_in_state(rp: &RelyingParty, cred: Credential) -> AuthenticationState {
        let (_, state) = rp.authentication(Vec::new()).unwrap();
        let mut state: AuthenticationState = with_challenge(&state, "WgXz_kTv3WUU1kw8hm-OGoGS4ZCHX_3bEqHH2PvVp8M");
        state.set_allowed_credentials(vec![cred]);
        state
    }

    #[test]
    fn a_yubikey_5_assertion_signs_in_as_a_first_factor_and_its_counter_moves() {
        let rp = relying_party("localhost", "http://localhost:8080");
        let result =
            rp.webauthn.authenticate_credential(&yubikey_assertion(), &sign_in_state(&rp, yubikey_5())).unwrap();
        assert!(!result.user_verified(), "a touch, no PIN: a first factor only (aal1)");
        assert_eq!(result.counter(), 20);
    }

    #[test]
    fn a_yubikey_5_assertion_is_refused_behind_its_counter_on_another_origin_or_with_another_key() {
        let rp = relying_party("localhost", "http://localhost:8080");
        let seen = Credential { counter: 20, ..yubikey_5() };
        let err = rp.webauthn.authenticate_credential(&yubikey_assertion(), &sign_in_state(&rp, seen)).unwrap_err();
        assert!(matches!(err, webauthn_rs_core::error::WebauthnError::CredentialPossibleCompromise), "{err:?}");

        let elsewhere = relying_party("localhost", "http://localhost:9090");
        assert!(elsewhere
            .webauthn
            .authenticate_credential(&yubikey_assertion(), &sign_in_state(&elsewhere, yubikey_5()))
            .is_err());

        let mut other_key = yubikey_5();
        if let COSEKeyType::EC_EC2(k) = &mut other_key.cred.key {
            k.x[0] ^= 1;
        }
        assert!(rp.webauthn.authenticate_credential(&yubikey_assertion(), &sign_in_state(&rp, other_key)).is_err());
    }

    #[test]
    fn the_relying_party_comes_from_public_url_and_refuses_foreign_origins() {
        let vars: HashMap<String, String> =
            [("PUBLIC_URL".to_owned(), "https://id.example.com/".to_owned())].into_iter().collect();
        let s = Settings::from_vars(&vars).unwrap();
        assert_eq!(s.webauthn_rp_id, "id.example.com");
        assert_eq!(s.webauthn_rp_origins, ["https://id.example.com"]);
        assert!(RelyingParty::from_settings(&s).unwrap().is_some());
        let vars: HashMap<String, String> = [
            ("WEBAUTHN_RP_ID", "example.com"),
            ("WEBAUTHN_RP_ORIGINS", "https://app.example.com,https://notexample.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let err = RelyingParty::from_settings(&Settings::from_vars(&vars).unwrap()).err().unwrap();
        assert!(err.contains("notexample.com"), "{err}");
    }
}
