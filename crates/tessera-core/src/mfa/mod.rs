//! Multi-factor authentication (SPEC §5.6): TOTP factors (RFC 6238: SHA-1, 30 s, 6
//! digits, ±1 step) whose secrets are stored encrypted, recovery codes stored hashed, and
//! the two-step sign-in between them.
//!
//! A code is accepted at most once per factor, on any number of nodes: a factor records
//! the newest step a code was accepted for, advanced by a conditional update that only
//! moves forward. Every token and code check spends its attempt before the comparison.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Duration as ChronoDuration;
use hmac::Mac;
use rand::{Rng, RngExt};
use secrecy::SecretString;
use serde_json::json;
use tessera_domain::Error;
use tessera_store::entity::{mfa_factor, mfa_token, user};
use tessera_store::query::{mfa, passkeys, sessions, users};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

pub mod keys;

use crate::account::admin::stored_role;
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo, Principal};
use crate::crypto::{mac, os_rng, random_token, same_secret, sha256_hex};
use crate::session::issued::{is_usable, Issued, MfaChallenge, SignIn};
use crate::session::sign_in::{count_refusal, Proof, Proven};

/// Seconds a TOTP code stands for.
const STEP_SECS: i64 = 30;
/// Wrong codes after which a sign-in's second step is dead.
const MAX_ATTEMPTS: i32 = 5;
/// How long the second step of a sign-in may wait.
const MFA_TOKEN_TTL_SECS: i64 = 300;
/// Recovery codes handed out at once.
const RECOVERY_CODES: usize = 10;
/// The alphabet of recovery codes: the one of email codes (no 0, O, 1, I).
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// The ways a second step can be proven, as sign-in answers name them.
pub const METHODS: [&str; 2] = ["totp", "recovery_code"];

/// The RFC 6238 code generator of a secret.
struct CodeGenerator(Totp);

impl CodeGenerator {
    /// The code of the step `time` (Unix seconds) falls in.
    fn generate(&self, time: u64) -> String {
        self.0.generate(time).to_string()
    }

    /// The secret, base32 without padding (as authenticators take it).
    fn secret_base32(&self) -> String {
        self.0.secret().to_base32()
    }
}

/// The code generator of a secret: SHA-1, 6 digits, 30 s steps (RFC 6238's defaults,
/// what authenticators assume).
fn totp(secret: Vec<u8>) -> Result<CodeGenerator, Error> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS as u64)
        .with_secret(secret)
        .build()
        .map(CodeGenerator)
        .map_err(|e| Error::Internal(format!("totp: {e}")))
}

/// The step of `code` within one step of `at` (Unix seconds), compared in constant time;
/// `None` when it matches none of them.
fn matching_step(totp: &CodeGenerator, code: &str, at: i64) -> Option<i64> {
    let now = at.div_euclid(STEP_SECS);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let expected = totp.generate((step * STEP_SECS).max(0) as u64);
        if same_secret(&expected, code) {
            found = Some(step);
        }
    }
    found
}

/// A code as typed: six digits, spaces allowed. `None` for anything else.
fn parse_code(raw: &str) -> Option<String> {
    let code: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// A recovery code as typed, in the canonical form: ten characters of the alphabet,
/// upper-case, separators and spaces dropped. `None` for anything else.
fn parse_recovery_code(raw: &str) -> Option<String> {
    let code: String =
        raw.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == 10 && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// A new recovery code, grouped for reading: `ABCDE-FGHJK`.
fn new_recovery_code() -> String {
    let mut rng = os_rng();
    let chars: String = (0..10).map(|_| ALPHABET[(rng.random::<u8>() & 31) as usize] as char).collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…` (Google Authenticator's key URI).
fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// A QR code of `text` as a PNG (black on white, 4 pixels a module, a 4-module quiet
/// zone), drawn here: nothing is fetched.
fn qr_png(text: &str) -> Result<Vec<u8>, Error> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|e| Error::Internal(format!("qr: {e:?}")))?;
    const SCALE: i32 = 4;
    const QUIET: i32 = 4;
    let side = (qr.size() + 2 * QUIET) * SCALE;
    let mut pixels = Vec::with_capacity((side * side) as usize);
    for y in 0..side {
        for x in 0..side {
            let dark = qr.get_module(x / SCALE - QUIET, y / SCALE - QUIET);
            pixels.push(if dark { 0u8 } else { 255u8 });
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| Error::Internal(format!("png: {e}")))?;
        writer.write_image_data(&pixels).map_err(|e| Error::Internal(format!("png: {e}")))?;
    }
    Ok(out)
}

/// A factor as listed.
#[derive(Debug, Clone)]
pub struct FactorView {
    pub factor: mfa_factor::Model,
}

/// The answer to an enrolment: shown once.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub id: Uuid,
    /// The factor's name, as stored.
    pub name: String,
    /// The shared secret, base32, for typing into an authenticator.
    pub secret: String,
    pub otpauth_uri: String,
    /// A QR code of the URI: a PNG, base64.
    pub qr_png: String,
}

/// The answer to an activation.
#[derive(Debug, Clone)]
pub struct Activation {
    /// Shown once.
    pub recovery_codes: Vec<String>,
    /// A fresh access token of the same session, now aal2.
    pub access_token: String,
    pub expires_in: i64,
}

/// What proves a second factor.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Code(String),
    RecoveryCode(String),
    /// A passkey's answer to the options of [`Core::mfa_passkey_options`].
    Passkey {
        challenge_id: Uuid,
        credential: serde_json::Value,
    },
}

impl Core {
    fn recovery_hash(&self, user_id: Uuid, code: &str) -> String {
        let mut mac = mac(&self.code_key, b"tessera recovery code v1");
        mac.update(user_id.as_bytes());
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Starts the second step of a sign-in in `tx` (the pipeline's, for a user with a
    /// verified factor who proved one factor): a single-use token valid five minutes,
    /// and the password's new hash, if one was due.
    pub(crate) async fn start_second_step(
        &self,
        tx: &tessera_store::Tx,
        user: &user::Model,
        new_hash: Option<&str>,
    ) -> Result<MfaChallenge, Error> {
        let now = now();
        let token = random_token(32);
        if let Some(hash) = new_hash {
            users::set_password_hash(tx, user.id, hash, now).await?;
        }
        let row = mfa_token::Model {
            id: Uuid::now_v7(),
            token_hash: sha256_hex(&token),
            user_id: user.id,
            token_version: user.token_version,
            attempts: 0,
            expires_at: now + ChronoDuration::seconds(MFA_TOKEN_TTL_SECS),
            used_at: None,
            created_at: now,
        };
        mfa::insert_token(tx, row).await?;
        let mut methods = METHODS.to_vec();
        if self.webauthn.is_some() && passkeys::count(tx, user.id).await? > 0 {
            methods.push("webauthn");
        }
        Ok(MfaChallenge { mfa_token: token, methods, user_id: user.id })
    }

    /// The live (unexpired, unused) token of a sign-in's second step.
    pub(crate) async fn live_mfa_token(&self, mfa_token: &str) -> Result<mfa_token::Model, Error> {
        mfa::live_token(self.store.reader(), &sha256_hex(mfa_token.trim()), now()).await?.ok_or(Error::InvalidMfaToken)
    }

    /// The second step of a sign-in: a TOTP code, a recovery code or a passkey for the
    /// sign-in's token. Opens an aal2 session. The token works once, dies after five wrong codes
    /// and after five minutes; wrong codes count toward the email's lockout (§5.5). Every
    /// write of the step (the attempt, the code, the token, the session, the audit) is one
    /// transaction.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn verify_mfa(&self, mfa_token: &str, proof: SecondFactor, client: &ClientInfo) -> Result<Issued, Error> {
        let now = now();
        let token = self.live_mfa_token(mfa_token).await?;
        let user =
            users::by_id(self.store.reader(), token.user_id).await?.filter(is_usable).ok_or(Error::InvalidMfaToken)?;
        self.lockout_reserve(&user.email).await?;
        let candidates = self.second_factor_candidates(&user, &proof, now, client).await?;
        // The MFA verification attempt hook judges a TOTP code (the factor it matched, or
        // the user's first TOTP factor when it matched none).
        if let Candidates::Steps(steps) = &candidates {
            let factor = match steps.first() {
                Some((id, _)) => *id,
                None => mfa::factors(self.store.reader(), user.id)
                    .await?
                    .into_iter()
                    .find(|f| f.factor_type == mfa::TOTP && f.status == mfa::VERIFIED)
                    .map_or(Uuid::nil(), |f| f.id),
            };
            if let Err(e) = self.mfa_attempt_hook(user.id, factor, mfa::TOTP, !steps.is_empty(), client).await {
                self.lockout_release(&user.email).await;
                return Err(e);
            }
        }
        let tx = self.store.begin().await?;
        if !mfa::spend_token_attempt(&tx, token.id, MAX_ATTEMPTS).await? {
            drop(tx);
            self.lockout_release(&user.email).await;
            return Err(Error::InvalidMfaToken);
        }
        let Some(event) = self.use_second_factor(&tx, user.id, &candidates, now).await? else {
            let ev = AuditEvent::by_user("mfa.failure", user.id).detail(json!({ "method": method_of(&proof) }));
            record(&tx, client, ev).await?;
            tx.commit().await?;
            self.lockout_failure(&user.email, client).await?;
            count_refusal(&Error::InvalidMfaCode);
            return Err(Error::InvalidMfaCode);
        };
        if !mfa::use_token(&tx, token.id, now).await? {
            return Err(Error::InvalidMfaToken);
        }
        record(&tx, client, AuditEvent::by_user(event, user.id).detail(json!({ "method": method_of(&proof) }))).await?;
        // The session opens only on the token_version the password step read.
        let user = user::Model { token_version: token.token_version, ..user };
        let email = user.email.clone();
        let signed_in = self.finish_sign_in_in(tx, Proven::new(user, Proof::SecondFactor), client).await;
        self.lockout_success(&email).await;
        match signed_in? {
            SignIn::Session(issued) => Ok(*issued),
            SignIn::MfaRequired(_) => Err(Error::Internal("a second factor asked for another".to_owned())),
        }
    }

    /// What a second factor could match, read before the transaction that uses it: the
    /// factors and steps a code matches (none for a malformed one), or a recovery code's
    /// hash.
    async fn second_factor_candidates(
        &self,
        user: &user::Model,
        proof: &SecondFactor,
        now: chrono::DateTime<chrono::Utc>,
        client: &ClientInfo,
    ) -> Result<Candidates, Error> {
        match proof {
            SecondFactor::Passkey { challenge_id, credential } => Ok(Candidates::Passkey(
                self.check_second_step_passkey(user.id, *challenge_id, credential, client).await?.map(Box::new),
            )),
            SecondFactor::Code(raw) => {
                let Some(code) = parse_code(raw) else { return Ok(Candidates::Steps(Vec::new())) };
                let mut steps = Vec::new();
                for factor in mfa::factors(self.store.reader(), user.id).await? {
                    if factor.status != mfa::VERIFIED || factor.factor_type != mfa::TOTP {
                        continue;
                    }
                    let secret = self.mfa_keys.decrypt(&factor.secret)?;
                    if let Some(step) = matching_step(&totp(secret)?, &code, now.timestamp()) {
                        steps.push((factor.id, step));
                    }
                }
                Ok(Candidates::Steps(steps))
            }
            SecondFactor::RecoveryCode(raw) => {
                Ok(Candidates::Recovery(parse_recovery_code(raw).map(|code| self.recovery_hash(user.id, &code))))
            }
        }
    }

    /// Uses up the first candidate that is still good, through `conn`: the audit event it
    /// stands for, or `None` when none is (a wrong code, a replay, a used recovery code).
    async fn use_second_factor(
        &self,
        conn: &impl tessera_store::Db,
        user_id: Uuid,
        candidates: &Candidates,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<&'static str>, Error> {
        match candidates {
            Candidates::Steps(steps) => {
                for (factor, step) in steps {
                    if mfa::use_step(conn, *factor, *step, false, now).await? {
                        return Ok(Some("mfa.verify"));
                    }
                }
                Ok(None)
            }
            Candidates::Recovery(Some(hash)) => {
                Ok(mfa::use_recovery_code(conn, user_id, hash, now).await?.then_some("mfa.recovery_code_used"))
            }
            Candidates::Recovery(None) | Candidates::Passkey(None) => Ok(None),
            Candidates::Passkey(Some(a)) => {
                Ok(passkeys::record_use(conn, &a.passkey_use(), now).await?.then_some("mfa.verify"))
            }
        }
    }

    /// Checks a second factor of `user`, using it up (outside a sign-in: removing a
    /// factor): the audit event it stands for, or `None` when it is wrong.
    pub(crate) async fn check_second_factor(
        &self,
        user: &user::Model,
        proof: &SecondFactor,
        now: chrono::DateTime<chrono::Utc>,
        client: &ClientInfo,
    ) -> Result<Option<&'static str>, Error> {
        let candidates = self.second_factor_candidates(user, proof, now, client).await?;
        self.use_second_factor(self.store.writer(), user.id, &candidates, now).await
    }

    /// A user's factors, verified or not.
    pub async fn factors(&self, user_id: Uuid) -> Result<Vec<mfa_factor::Model>, Error> {
        mfa::factors(self.store.reader(), user_id).await
    }

    /// The factors of a live user, verified or not: `UserNotFound` for no such user.
    pub async fn factors_of_user(&self, user_id: Uuid) -> Result<Vec<mfa_factor::Model>, Error> {
        let user = self.user(user_id).await?;
        self.factors(user.id).await
    }

    /// The caller's factors and how many recovery codes are left.
    pub async fn list_factors(&self, user_id: Uuid) -> Result<(Vec<mfa_factor::Model>, u64), Error> {
        let reader = self.store.reader();
        let (factors, left) =
            tokio::try_join!(mfa::factors(reader, user_id), mfa::recovery_codes_left(reader, user_id))?;
        Ok((factors, left))
    }

    /// Stores a new, unverified factor of the caller's of `factor_type` (its name at most
    /// 100 printable characters), with the event `mfa.enroll`.
    pub(crate) async fn enroll_factor(
        &self,
        who: &Principal,
        name: String,
        factor_type: &str,
        secret: String,
        client: &ClientInfo,
    ) -> Result<mfa_factor::Model, Error> {
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::field("name", "invalid_name", "At most 100 printable characters."));
        }
        let factor = mfa_factor::Model {
            id: Uuid::now_v7(),
            user_id: who.user.id,
            name,
            secret,
            status: mfa::UNVERIFIED.to_owned(),
            last_used_step: None,
            created_at: now(),
            last_used_at: None,
            factor_type: factor_type.to_owned(),
        };
        let tx = self.store.begin().await?;
        mfa::insert_factor(&tx, factor.clone()).await?;
        let detail = json!({ "factor_id": factor.id, "name": factor.name, "factor_type": factor_type });
        record(&tx, client, AuditEvent::by_user("mfa.enroll", who.user.id).detail(detail)).await?;
        tx.commit().await?;
        Ok(factor)
    }

    /// The end of a Supabase step-up, in `tx` once the factor's own writes are done: MFA
    /// on when the factor was just verified (`activate`), the caller's session aal2, the
    /// event, the commit; then the address's failures forgotten and the session's tokens
    /// handed out again, now aal2.
    pub(crate) async fn finish_step_up(
        &self,
        tx: tessera_store::Tx,
        who: &Principal,
        activate: bool,
        detail: serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        if activate {
            mfa::set_enabled(&tx, who.user.id, true, now).await?;
        }
        sessions::set_aal(&tx, who.session_id, "aal2").await?;
        let event = if activate { "mfa.activate" } else { "mfa.verify" };
        record(&tx, client, AuditEvent::by_user(event, who.user.id).detail(detail)).await?;
        let session = sessions::by_id(&tx, who.session_id).await?.ok_or(Error::TokenRevoked)?;
        tx.commit().await?;
        self.lockout_success(&who.user.email).await;
        let user = user::Model { mfa_enabled: true, ..who.user.clone() };
        self.session_tokens(user, &session, "aal2", now, client).await
    }

    /// Enrols a TOTP factor, unverified until a first code activates it. With MFA on
    /// already, only an aal2 session may add one.
    pub async fn enroll_totp(
        &self,
        who: &Principal,
        name: Option<String>,
        client: &ClientInfo,
    ) -> Result<Enrolment, Error> {
        self.require_aal2_if_mfa(who)?;
        let name =
            name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).unwrap_or_else(|| "Authenticator".to_owned());
        let mut secret = [0u8; 20];
        os_rng().fill_bytes(&mut secret);
        let generator = totp(secret.to_vec())?;
        let secret_b32 = generator.secret_base32();
        let uri = otpauth_uri(&self.settings.mail.product_name, &who.user.email, &secret_b32);
        let factor = self.enroll_factor(who, name, mfa::TOTP, self.mfa_keys.encrypt(&secret)?, client).await?;
        let qr_png = STANDARD.encode(qr_png(&uri)?);
        Ok(Enrolment { id: factor.id, name: factor.name, secret: secret_b32, qr_png, otpauth_uri: uri })
    }

    /// Activates an enrolled factor with its first code: MFA is on, ten new recovery
    /// codes are handed out (the old ones die), and the caller's session becomes aal2.
    pub async fn activate_totp(
        &self,
        who: &Principal,
        factor_id: Uuid,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Activation, Error> {
        let code = parse_code(code).ok_or_else(|| Error::field("code", "invalid_code", "Six digits."))?;
        let factor = mfa::factor(self.store.reader(), who.user.id, factor_id)
            .await?
            .filter(|f| f.factor_type == mfa::TOTP)
            .ok_or(Error::FactorNotFound)?;
        if factor.status == mfa::VERIFIED {
            return Err(Error::FactorAlreadyActive);
        }
        let now = now();
        let Some(step) = matching_step(&totp(self.mfa_keys.decrypt(&factor.secret)?)?, &code, now.timestamp()) else {
            return Err(Error::InvalidMfaCode);
        };
        let (codes, hashes) = self.new_recovery_codes(who.user.id);
        let tx = self.store.begin().await?;
        mfa::set_enabled(&tx, who.user.id, true, now).await?;
        if !mfa::use_step(&tx, factor.id, step, true, now).await? {
            // Activated by a concurrent request meanwhile.
            return Err(Error::FactorAlreadyActive);
        }
        mfa::replace_recovery_codes(&tx, who.user.id, &hashes, now).await?;
        sessions::set_aal(&tx, who.session_id, "aal2").await?;
        let ev = AuditEvent::by_user("mfa.activate", who.user.id).detail(json!({ "factor_id": factor.id }));
        record(&tx, client, ev).await?;
        tx.commit().await?;
        let user = user::Model { mfa_enabled: true, ..who.user.clone() };
        let (access_token, expires_in, _, _) =
            self.access_token(&user, who.session_id, "aal2", None, now, client).await?;
        Ok(Activation { recovery_codes: codes, access_token, expires_in })
    }

    /// Removes a factor, proven by a code, a recovery code or the password. With MFA on,
    /// only from an aal2 session. The last verified factor removed turns MFA off and
    /// deletes the recovery codes.
    pub async fn remove_factor(
        &self,
        who: &Principal,
        factor_id: Uuid,
        proof: RemovalProof,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.require_aal2_if_mfa(who)?;
        let factor = mfa::factor(self.store.reader(), who.user.id, factor_id).await?.ok_or(Error::FactorNotFound)?;
        let now = now();
        let proven = match proof {
            RemovalProof::Password(p) => {
                let check = async { Ok(self.hasher.verify(&p, Some(&who.user.password_hash)).await?.matches) };
                self.check_again(&who.user.email, client, check).await?
            }
            RemovalProof::Factor(f) => {
                let check = async { Ok(self.check_second_factor(&who.user, &f, now, client).await?.is_some()) };
                self.check_again(&who.user.email, client, check).await?
            }
            RemovalProof::Session => true,
        };
        if !proven {
            let ev = AuditEvent::by_user("mfa.failure", who.user.id).detail(json!({ "factor_id": factor.id }));
            record(self.store.writer(), client, ev).await?;
            return Err(Error::InvalidMfaCode);
        }
        let tx = self.store.begin().await?;
        delete_factor_in(&tx, who.user.id, factor.id, now).await?;
        let ev = AuditEvent::by_user("mfa.remove", who.user.id).detail(json!({ "factor_id": factor.id }));
        record(&tx, client, ev).await?;
        tx.commit().await
    }

    /// A fresh set of recovery codes, as shown once, and their keyed hashes, as stored.
    fn new_recovery_codes(&self, user_id: Uuid) -> (Vec<String>, Vec<String>) {
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes =
            codes.iter().map(|c| self.recovery_hash(user_id, &parse_recovery_code(c).unwrap_or_default())).collect();
        (codes, hashes)
    }

    /// Ten new recovery codes (the old ones die); aal2 only.
    pub async fn regenerate_recovery_codes(&self, who: &Principal, client: &ClientInfo) -> Result<Vec<String>, Error> {
        if !who.user.mfa_enabled {
            return Err(Error::MfaNotEnabled);
        }
        self.require_aal2_if_mfa(who)?;
        let (codes, hashes) = self.new_recovery_codes(who.user.id);
        let tx = self.store.begin().await?;
        mfa::replace_recovery_codes(&tx, who.user.id, &hashes, now()).await?;
        record(&tx, client, AuditEvent::by_user("mfa.recovery_codes", who.user.id)).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// An admin's reset for a user who lost every device: every factor and recovery code
    /// removed, MFA off, and every session and token of the user void.
    pub async fn admin_reset_mfa(
        &self,
        actor: &crate::caller::Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let target = self.admin_user(id).await?;
        actor.may_manage(stored_role(&target))?;
        let now = now();
        let tx = self.store.begin().await?;
        users::revoke_credentials(&tx, id, now).await?;
        mfa::delete_all(&tx, id).await?;
        mfa::set_enabled(&tx, id, false, now).await?;
        sessions::revoke_all_for_user(&tx, id, now).await?;
        record(&tx, client, actor.event("admin.user.mfa_reset", Some(id), json!({}))).await?;
        tx.commit().await
    }

    /// Opens a challenge of one of the caller's factors (Supabase's `POST
    /// /factors/{id}/challenge`): valid five minutes, five codes at most.
    pub async fn challenge_factor(
        &self,
        who: &Principal,
        factor_id: Uuid,
        client: &ClientInfo,
    ) -> Result<Challenge, Error> {
        let factor = mfa::factor(self.store.reader(), who.user.id, factor_id).await?.ok_or(Error::FactorNotFound)?;
        if factor.factor_type == mfa::PHONE {
            let (id, expires_at) = self.challenge_phone_factor(who, &factor, client).await?;
            return Ok(Challenge { id, expires_at, factor_type: mfa::PHONE, webauthn: None });
        }
        if factor.factor_type == mfa::WEBAUTHN {
            let c = self.challenge_webauthn_factor(who, factor_id).await?;
            let webauthn = Some((c.kind, c.options));
            return Ok(Challenge { id: c.id, expires_at: c.expires_at, factor_type: mfa::WEBAUTHN, webauthn });
        }
        let now = now();
        let row = mfa_token::Model {
            id: Uuid::now_v7(),
            token_hash: String::new(),
            user_id: who.user.id,
            token_version: who.user.token_version,
            attempts: 0,
            expires_at: now + ChronoDuration::seconds(MFA_TOKEN_TTL_SECS),
            used_at: None,
            created_at: now,
        };
        let row = mfa_token::Model { token_hash: challenge_hash(row.id, factor_id), ..row };
        let challenge = Challenge { id: row.id, expires_at: row.expires_at, factor_type: mfa::TOTP, webauthn: None };
        mfa::insert_token(self.store.writer(), row).await?;
        Ok(challenge)
    }

    /// Verifies a challenge with a TOTP code (Supabase's `POST /factors/{id}/verify`): an
    /// unverified factor becomes verified (MFA on; the user's other unverified factors
    /// go), a verified one proves the second factor. Either way the caller's session
    /// becomes aal2 and its tokens are handed out again. The challenge works once; wrong
    /// codes count toward the lockout of SPEC §5.5.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn verify_challenge(
        &self,
        who: &Principal,
        factor_id: Uuid,
        challenge_id: Uuid,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Issued, Error> {
        let now = now();
        let reader = self.store.reader();
        let challenge = mfa::live_token(reader, &challenge_hash(challenge_id, factor_id), now)
            .await?
            .filter(|c| c.user_id == who.user.id && c.id == challenge_id)
            .ok_or(Error::InvalidMfaToken)?;
        let factor = mfa::factor(reader, who.user.id, factor_id).await?.ok_or(Error::FactorNotFound)?;
        if factor.factor_type == mfa::PHONE {
            return self.verify_phone_challenge(who, factor, challenge, code, client).await;
        }
        if factor.factor_type != mfa::TOTP {
            return Err(Error::BadRequest("This factor is verified with WebAuthn, not a code.".to_owned()));
        }
        let activate = factor.status != mfa::VERIFIED;
        self.lockout_reserve(&who.user.email).await?;
        let step = match parse_code(code) {
            Some(code) => matching_step(&totp(self.mfa_keys.decrypt(&factor.secret)?)?, &code, now.timestamp()),
            None => None,
        };
        // The MFA verification attempt hook judges the attempt before anything is spent.
        if let Err(e) = self.mfa_attempt_hook(who.user.id, factor.id, &factor.factor_type, step.is_some(), client).await
        {
            self.lockout_release(&who.user.email).await;
            return Err(e);
        }
        let tx = self.store.begin().await?;
        if !mfa::spend_token_attempt(&tx, challenge.id, MAX_ATTEMPTS).await? {
            drop(tx);
            self.lockout_release(&who.user.email).await;
            return Err(Error::InvalidMfaToken);
        }
        let used = match step {
            Some(step) => mfa::use_step(&tx, factor.id, step, activate, now).await?,
            None => false,
        };
        if !used {
            return Err(self.refuse_factor_code(tx, who, factor.id, client).await?);
        }
        if !mfa::use_token(&tx, challenge.id, now).await? {
            return Err(Error::InvalidMfaToken);
        }
        if activate {
            self.drop_other_unverified(&tx, who, factor.id).await?;
        }
        self.finish_step_up(tx, who, activate, json!({ "factor_id": factor.id }), now, client).await
    }

    /// A wrong code for a factor's challenge, in `tx`: the failure audited and committed,
    /// counted toward the lockout; the error to answer.
    pub(crate) async fn refuse_factor_code(
        &self,
        tx: tessera_store::Tx,
        who: &Principal,
        factor_id: Uuid,
        client: &ClientInfo,
    ) -> Result<Error, Error> {
        let ev = AuditEvent::by_user("mfa.failure", who.user.id).detail(json!({ "factor_id": factor_id }));
        record(&tx, client, ev).await?;
        tx.commit().await?;
        self.lockout_failure(&who.user.email, client).await?;
        Ok(Error::InvalidMfaCode)
    }

    /// A factor is being verified, in `tx` (the user's row locked): the user's other
    /// unverified factors go.
    pub(crate) async fn drop_other_unverified(
        &self,
        tx: &tessera_store::Tx,
        who: &Principal,
        factor_id: Uuid,
    ) -> Result<(), Error> {
        users::by_id_for_update(tx, who.user.id).await?;
        for other in mfa::factors(tx, who.user.id).await? {
            if other.id != factor_id && other.status != mfa::VERIFIED {
                mfa::delete_factor(tx, who.user.id, other.id).await?;
            }
        }
        Ok(())
    }

    /// An admin removes one factor of a user (Supabase's `DELETE
    /// /admin/users/{id}/factors/{fid}`): the last verified one turns MFA off and deletes
    /// the recovery codes. Answers the factor as it was.
    pub async fn admin_remove_factor(
        &self,
        actor: &crate::caller::Actor,
        user_id: Uuid,
        factor_id: Uuid,
        client: &ClientInfo,
    ) -> Result<mfa_factor::Model, Error> {
        let target = self.admin_user(user_id).await?;
        actor.may_manage(stored_role(&target))?;
        let factor = mfa::factor(self.store.reader(), user_id, factor_id).await?.ok_or(Error::FactorNotFound)?;
        let now = now();
        let tx = self.store.begin().await?;
        delete_factor_in(&tx, user_id, factor.id, now).await?;
        let ev = actor.event("admin.user.mfa_factor_removed", Some(user_id), json!({ "factor_id": factor.id }));
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(factor)
    }

    /// 403 `mfa_required` when the caller has MFA on and its session is not aal2: what
    /// changing the email or password, removing a factor, regenerating recovery codes and
    /// creating API keys need (SPEC §5.6).
    pub fn require_aal2_if_mfa(&self, who: &Principal) -> Result<(), Error> {
        if who.user.mfa_enabled && who.aal != "aal2" {
            return Err(Error::MfaRequired);
        }
        Ok(())
    }
}

/// What a second factor could match (see [`Core::verify_mfa`]).
enum Candidates {
    /// The factors a code matches, with the step it matches in each.
    Steps(Vec<(Uuid, i64)>),
    /// The hash of a well-formed recovery code.
    Recovery(Option<String>),
    /// A passkey assertion that checked out (none when it did not).
    Passkey(Option<Box<crate::passkey::Asserted>>),
}

/// What proves the removal of a factor.
#[derive(Debug, Clone)]
pub enum RemovalProof {
    Password(SecretString),
    Factor(SecondFactor),
    /// The session itself (Supabase's unenrol): aal2 when MFA is on, which
    /// [`Core::remove_factor`] checks in any case.
    Session,
}

/// Deletes a factor of a user in `tx`, under the lock of the user's row; the last verified
/// one gone turns MFA off and deletes the recovery codes. Other factors stay, enrolments
/// not yet verified included.
async fn delete_factor_in(
    tx: &tessera_store::Tx,
    user_id: Uuid,
    factor_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    users::by_id_for_update(tx, user_id).await?;
    if !mfa::delete_factor(tx, user_id, factor_id).await? {
        return Err(Error::FactorNotFound);
    }
    if mfa::verified_count(tx, user_id).await? == 0 {
        mfa::delete_recovery_codes(tx, user_id).await?;
        mfa::set_enabled(tx, user_id, false, now).await?;
    }
    Ok(())
}

/// A challenge of the Supabase surface's MFA: a factor to verify within five minutes.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: Uuid,
    /// `totp`, `phone` or `webauthn`.
    pub factor_type: &'static str,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// A WebAuthn factor's ceremony: `create` or `request`, and its W3C JSON options.
    pub webauthn: Option<(&'static str, serde_json::Value)>,
}

/// The stored hash of a challenge: bound to its factor, and never a value
/// [`sha256_hex`] yields, so no sign-in token ever matches it.
pub(crate) fn challenge_hash(challenge_id: Uuid, factor_id: Uuid) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{challenge_id}:{factor_id}").as_bytes());
    // 45 characters (the column holds 64), and the ':' is never in a hex digest.
    format!("c:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

/// A QR code of `text` as an SVG document.
pub fn qr_svg(text: &str) -> Result<String, Error> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|e| Error::Internal(format!("qr: {e:?}")))?;
    const QUIET: i32 = 4;
    let side = qr.size() + 2 * QUIET;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + QUIET, y + QUIET));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/><path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

fn method_of(proof: &SecondFactor) -> &'static str {
    match proof {
        SecondFactor::Code(_) => "totp",
        SecondFactor::RecoveryCode(_) => "recovery_code",
        SecondFactor::Passkey { .. } => "webauthn",
    }
}

/// The code an authenticator shows for `secret` (base32) at `at` (Unix seconds): for
/// tests and benchmarks, which play the authenticator.
pub fn code_for(secret_b32: &str, at: i64) -> Option<String> {
    let bytes = Secret::try_from_base32(secret_b32).ok()?.as_bytes().to_vec();
    Some(totp(bytes).ok()?.generate(at.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_within_one_step_and_no_further() {
        let t = totp(vec![7u8; 20]).unwrap();
        let at = 1_700_000_015;
        let step = at / STEP_SECS;
        for (offset, expected) in [(-1, Some(step - 1)), (0, Some(step)), (1, Some(step + 1))] {
            let code = t.generate(((step + offset) * STEP_SECS) as u64);
            assert_eq!(matching_step(&t, &code, at), expected);
        }
        for offset in [-2, 2] {
            let code = t.generate(((step + offset) * STEP_SECS) as u64);
            assert_eq!(matching_step(&t, &code, at), None, "a clock off by {offset} steps");
        }
        assert_eq!(parse_code(" 123 456 "), Some("123456".to_owned()));
        assert_eq!(parse_code("12345a"), None);
    }

    #[test]
    fn recovery_codes_are_read_with_or_without_separators_in_any_case() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        let canonical = parse_recovery_code(&code).unwrap();
        assert_eq!(parse_recovery_code(&code.to_lowercase()), Some(canonical.clone()));
        assert_eq!(parse_recovery_code(&code.replace('-', " ")), Some(canonical));
        assert_eq!(parse_recovery_code("ABCDE-FGHI1"), None, "1 and I are not in the alphabet");
    }

    #[test]
    fn the_qr_code_is_a_png() {
        let png = qr_png("otpauth://totp/tessera:a@example.com?secret=ABC").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            otpauth_uri("My App", "a+b@example.com", "ABC").starts_with("otpauth://totp/My%20App:a%2Bb@example.com?")
        );
    }
}
