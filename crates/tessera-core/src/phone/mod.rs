//! Phone sign-in (SPEC §5.14): a one-time code by SMS signs a user up or in, confirms a
//! new number, and the number becomes a confirmed way to sign in. Codes are
//! `SMS_OTP_LENGTH` digits, live `SMS_OTP_EXP` seconds, take five tries, are kept only
//! as keyed hashes, and go out through the outbox ([`sms`]). `SMS_TEST_OTP` numbers get
//! no SMS and take their fixed code. Sends count against `RATE_LIMIT_SMS` per number and
//! per client IP; checks of a code against `RATE_LIMIT_VERIFY` (the routes' limit).

pub mod factor;
pub mod sms;

use chrono::Duration as ChronoDuration;
use rand::RngExt;
use serde_json::{json, Value};
use tessera_domain::{Error, Phone};
use tessera_store::entity::{one_time_token, user};
use tessera_store::query::one_time_tokens;
use tessera_store::query::users::{self, UserChanges};

use crate::account::users::{insert_account, Metadata, NewAccount};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo, Principal};
use crate::crypto::os_rng;
use crate::limits::RateAction;
use crate::session::issued::{is_usable, SignIn};
use crate::session::sign_in::{Proof, Proven};
use sms::SmsKind;

/// The one-time token kind of a sign-in code.
const PHONE_OTP: &str = "phone_otp";
/// The one-time token kind of a code confirming a new number (the number in
/// `new_email`, the token's pending value).
const PHONE_CHANGE: &str = "phone_change";
/// The one-time token kind of a phone factor's challenge code (its id is the challenge's).
pub(crate) const MFA_PHONE: &str = "mfa_phone";

/// What a code was sent for, as a caller asks to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneCode {
    /// A sign-up or sign-in code (GoTrue's `sms`).
    SignIn,
    /// A code confirming a new number (GoTrue's `phone_change`).
    Change,
}

/// What became of a request for a sign-in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSent {
    /// Sent (or, for a `SMS_TEST_OTP` number, not needed).
    Sent,
    /// No account has the number and the request asked not to create one.
    NoAccount,
}

pub(crate) fn digits(n: usize) -> String {
    let mut rng = os_rng();
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

impl Core {
    /// Whether phone sign-in is on (an SMS provider is configured).
    pub fn phone_enabled(&self) -> bool {
        self.settings.sms.provider.is_some()
    }

    pub(crate) fn require_phone(&self) -> Result<(), Error> {
        if self.phone_enabled() {
            Ok(())
        } else {
            Err(Error::PhoneDisabled)
        }
    }

    /// The fixed code of a `SMS_TEST_OTP` number.
    pub(crate) fn test_code(&self, phone: &Phone) -> Option<String> {
        self.settings.sms.test_otps.iter().find(|(p, _)| p == phone.digits()).map(|(_, c)| c.clone())
    }

    /// Counts an SMS against `RATE_LIMIT_SMS`, per number and per client IP.
    pub(crate) async fn sms_limits(&self, phone: &Phone, client: &ClientInfo) -> Result<(), Error> {
        self.enforce_rate_limit(RateAction::SmsNumber, phone.as_str()).await?;
        // The client's key (an IPv6 client's /64), as every per-IP limit counts it.
        self.enforce_client_limit(RateAction::SmsClient, client).await
    }

    /// Issues a code of `kind` for `user` (retiring the earlier ones of that kind) and
    /// queues its SMS (none for a `SMS_TEST_OTP` number), through `conn`: the caller's
    /// transaction. The code's id and expiry.
    pub(crate) async fn issue_phone_code(
        &self,
        conn: &impl tessera_store::Db,
        user: &user::Model,
        phone: &Phone,
        kind: SmsKind,
        proves_holder: bool,
    ) -> Result<(uuid::Uuid, chrono::DateTime<chrono::Utc>), Error> {
        let at = now();
        let token_kind = match kind {
            SmsKind::Otp => PHONE_OTP,
            SmsKind::PhoneChange => PHONE_CHANGE,
            SmsKind::Mfa => MFA_PHONE,
        };
        one_time_tokens::retire(conn, user.id, &[token_kind], at).await?;
        let test = self.test_code(phone);
        let code = test.clone().unwrap_or_else(|| digits(self.settings.sms_otp_length));
        let ttl = ChronoDuration::from_std(self.settings.sms_otp_exp).unwrap_or(ChronoDuration::seconds(60));
        let id = uuid::Uuid::now_v7();
        let row = one_time_token::Model {
            id,
            user_id: user.id,
            kind: token_kind.to_owned(),
            token_hash: crate::crypto::sha256_hex(&crate::crypto::random_token(32)),
            code_hash: Some(self.code_hash(id, &code)),
            code_expires_at: Some(at + ttl),
            code_attempts: 0,
            new_email: (kind == SmsKind::PhoneChange).then(|| phone.as_str().to_owned()),
            new_email_index: None,
            expires_at: at + ttl,
            confirmed_at: None,
            used_at: None,
            created_at: at,
            proves_holder,
        };
        one_time_tokens::insert(conn, row).await?;
        if test.is_none() {
            self.queue_sms(conn, user, phone, &code, kind).await?;
        }
        Ok((id, at + ttl))
    }

    /// Sends a sign-in code to `phone`, signing the number up first when no account has it
    /// and `create_user` allows (GoTrue's `/otp` with a phone; `POST /v1/auth/otp`).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn send_phone_code(
        &self,
        phone: &Phone,
        create_user: bool,
        user_metadata: Option<Value>,
        client: &ClientInfo,
    ) -> Result<CodeSent, Error> {
        self.require_phone()?;
        let mut errors = Vec::new();
        crate::account::users::check_metadata("data", &user_metadata, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let found = self.phone_sign_in_account(phone).await?;
        // The SMS limit before anything is written: a refused send creates no account.
        self.sms_limits(phone, client).await?;
        let user = match found {
            Some(u) => u,
            None if !create_user => return Ok(CodeSent::NoAccount),
            None => {
                self.enforce_client_limit(RateAction::Register, client).await?;
                let placeholder = tessera_domain::Email::placeholder(&uuid::Uuid::now_v7().to_string());
                let account = NewAccount {
                    phone: Some(phone.clone()),
                    metadata: Metadata {
                        user: user_metadata,
                        app: Some(json!({ "provider": "phone", "providers": ["phone"] })),
                    },
                    password_hash: self.passwordless_hash().await?,
                    ..NewAccount::passwordless(placeholder, false, None)
                };
                self.vet_new_account(&account, client).await?;
                let tx = self.store.begin().await?;
                let created = insert_account(&tx, account).await?;
                let detail = json!({ "method": "phone" });
                record(&tx, client, AuditEvent::by_user("user.register", created.id).detail(detail)).await?;
                tx.commit().await?;
                created
            }
        };
        if !is_usable(&user) {
            // No SMS for a banned or deleted account; the answer says nothing of it.
            return Ok(CodeSent::Sent);
        }
        let tx = self.store.begin().await?;
        // Whoever asks gets the code: it proves the number, not who set it.
        self.issue_phone_code(&tx, &user, phone, SmsKind::Otp, false).await?;
        tx.commit().await?;
        Ok(CodeSent::Sent)
    }

    /// Checks a sign-in code sent to `phone`: the number is confirmed and a session
    /// opens (or the second step, for a user with MFA on).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn sign_in_with_phone_code(
        &self,
        phone: &Phone,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        // No provider needed: without one no code was ever sent, and the answer is the
        // same as for a wrong code.
        let reader = self.store.reader();
        let at = now();
        let mut newest: Option<(one_time_token::Model, user::Model)> = None;
        for u in users::by_phone(reader, phone.as_str()).await? {
            if let Some(t) = one_time_tokens::newest_live_code(reader, u.id, &[PHONE_OTP], None, at).await? {
                if newest.as_ref().is_none_or(|(n, _)| t.created_at > n.created_at) {
                    newest = Some((t, u));
                }
            }
        }
        let (row, found) = newest.ok_or(Error::InvalidVerification)?;
        self.check_code(&row, code).await?;
        // A first proof of the number by a code anybody could ask for: whatever was set
        // on the account before (a password, factors, sessions) was set by someone who
        // never proved the number, and goes (SPEC §5.3's rule, for numbers).
        let voiding = (!row.proves_holder && found.phone_verified_at.is_none()).then_some(());
        let passwordless = match voiding {
            Some(()) => Some(self.passwordless_hash().await?),
            None => None,
        };
        let tx = self.store.begin().await?;
        let current = users::by_id_for_update(&tx, row.user_id).await?.ok_or(Error::InvalidVerification)?;
        if !is_usable(&current) || current.phone.as_deref() != Some(phone.as_str()) {
            return Err(Error::InvalidVerification);
        }
        if !one_time_tokens::use_once(&tx, row.id, at, true).await? {
            return Err(Error::InvalidVerification);
        }
        let user = if current.phone_verified_at.is_none() {
            let current = match passwordless {
                Some(hash) => self.void_unproven_credentials(&tx, current, Some(hash), client).await?,
                None => current,
            };
            let changes = UserChanges { phone_verified_at: Some(Some(at)), updated_at: Some(at), ..Default::default() };
            let user = users::update(&tx, &current, changes).await?;
            record(
                &tx,
                client,
                AuditEvent::by_user("phone.verify", user.id).detail(json!({ "phone": phone.as_str() })),
            )
            .await?;
            user
        } else {
            current
        };
        self.finish_sign_in_in(tx, Proven::new(user, Proof::Phone), client).await
    }

    /// Starts a change of the caller's number to `phone`: a code goes to the new number,
    /// which replaces the old one once [`Core::confirm_phone_change`] checks it.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn request_phone_change(&self, who: &Principal, phone: &Phone, client: &ClientInfo) -> Result<(), Error> {
        self.check_phone_change(who, phone).await?;
        self.sms_limits(phone, client).await?;
        let tx = self.store.begin().await?;
        self.issue_phone_code(&tx, &who.user, phone, SmsKind::PhoneChange, true).await?;
        record(
            &tx,
            client,
            AuditEvent::by_user("user.phone_change", who.user.id).detail(json!({ "phone": phone.as_str() })),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the caller may move their number to `phone` (checked by
    /// [`Core::request_phone_change`], and by a caller that writes other changes first):
    /// phone sign-in is on; a number is a way back into the account, so with MFA on only
    /// an aal2 session may; and no other account has confirmed it.
    pub async fn check_phone_change(&self, who: &Principal, phone: &Phone) -> Result<(), Error> {
        self.require_phone()?;
        self.require_aal2_if_mfa(who)?;
        self.phone_free(phone, who.user.id).await
    }

    /// Confirms a number change with the code sent to the new number: the user, with the
    /// new number confirmed.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn confirm_phone_change(
        &self,
        phone: &Phone,
        code: &str,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let at = now();
        let row = one_time_tokens::newest_live_code_for_new(self.store.reader(), &[PHONE_CHANGE], phone.as_str(), at)
            .await?
            .ok_or(Error::InvalidVerification)?;
        self.check_code(&row, code).await?;
        let tx = self.store.begin().await?;
        self.phone_free(phone, row.user_id).await?;
        let current = users::by_id_for_update(&tx, row.user_id).await?.ok_or(Error::InvalidVerification)?;
        if !is_usable(&current) || !one_time_tokens::use_once(&tx, row.id, at, true).await? {
            return Err(Error::InvalidVerification);
        }
        let changes = UserChanges {
            phone: Some(Some(phone.as_str().to_owned())),
            phone_verified_at: Some(Some(at)),
            updated_at: Some(at),
            ..Default::default()
        };
        let user = users::update(&tx, &current, changes).await?;
        record(&tx, client, AuditEvent::by_user("phone.verify", user.id).detail(json!({ "phone": phone.as_str() })))
            .await?;
        record(&tx, client, AuditEvent::by_user("user.update", user.id).detail(json!({ "changed": ["phone"] })))
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The session GoTrue hands out once a number change is confirmed by its code.
    pub async fn sign_in_after_phone_change(&self, user: user::Model, client: &ClientInfo) -> Result<SignIn, Error> {
        self.finish_sign_in(Proven::new(user, Proof::Phone), client).await
    }

    /// Signs up with a phone number and a password (GoTrue's `/signup {phone, password}`):
    /// the account, its number waiting for the code sent to it; the code signs it in.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn sign_up_with_phone(
        &self,
        phone: &Phone,
        password: &secrecy::SecretString,
        user_metadata: Option<Value>,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        use secrecy::ExposeSecret;
        self.require_phone()?;
        let mut errors = Vec::new();
        crate::account::users::check_metadata("data", &user_metadata, &mut errors);
        if let Err(mut broken) = self.settings.password_policy.check("password", password.expose_secret(), None) {
            errors.append(&mut broken);
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        self.phone_free(phone, uuid::Uuid::nil()).await?;
        let hash = self.hasher.hash(password).await?;
        let placeholder = tessera_domain::Email::placeholder(&uuid::Uuid::now_v7().to_string());
        let account = NewAccount {
            phone: Some(phone.clone()),
            password_hash: hash,
            metadata: Metadata {
                user: user_metadata,
                app: Some(json!({ "provider": "phone", "providers": ["phone"] })),
            },
            ..NewAccount::passwordless(placeholder, false, None)
        };
        self.vet_new_account(&account, client).await?;
        self.sms_limits(phone, client).await?;
        let tx = self.store.begin().await?;
        let created = insert_account(&tx, account).await?;
        record(&tx, client, AuditEvent::by_user("user.register", created.id).detail(json!({ "method": "phone" })))
            .await?;
        // The sign-up's own code: the one who chose the password confirms the number.
        self.issue_phone_code(&tx, &created, phone, SmsKind::Otp, true).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Sends the code of a pending number change to the new number again.
    pub async fn resend_phone_change(&self, phone: &Phone, client: &ClientInfo) -> Result<(), Error> {
        self.require_phone()?;
        // The change asked for within the last day, its code expired or not.
        let since = now() - ChronoDuration::days(1);
        let pending =
            one_time_tokens::newest_live_code_for_new(self.store.reader(), &[PHONE_CHANGE], phone.as_str(), since)
                .await?;
        let Some(row) = pending.filter(|r| r.used_at.is_none()) else { return Ok(()) };
        let Some(user) = users::by_id(self.store.reader(), row.user_id).await?.filter(is_usable) else { return Ok(()) };
        self.sms_limits(phone, client).await?;
        let tx = self.store.begin().await?;
        self.issue_phone_code(&tx, &user, phone, SmsKind::PhoneChange, true).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account a sign-in code for `phone` is for: the one whose number is confirmed,
    /// else one that signed up with the number and has not confirmed it yet (a phone
    /// account: no address of its own). An account that merely lists the number, never
    /// proven (set in a profile, by an admin), is nobody's way in.
    async fn phone_sign_in_account(&self, phone: &Phone) -> Result<Option<user::Model>, Error> {
        let candidates = users::by_phone(self.store.reader(), phone.as_str()).await?;
        let confirmed = candidates.iter().find(|u| u.phone_verified_at.is_some()).cloned();
        Ok(confirmed.or_else(|| {
            candidates.into_iter().find(|u| tessera_domain::Email::is_placeholder(&u.email) && !u.is_anonymous)
        }))
    }

    /// `PhoneTaken` when an account other than `mine` has confirmed `phone`.
    async fn phone_free(&self, phone: &Phone, mine: uuid::Uuid) -> Result<(), Error> {
        let taken = users::by_phone(self.store.reader(), phone.as_str()).await?;
        if taken.iter().any(|u| u.id != mine && u.phone_verified_at.is_some()) {
            return Err(Error::PhoneTaken);
        }
        Ok(())
    }

    /// The account a phone and password sign in to (GoTrue's password grant with a
    /// phone): its confirmed number, else the oldest account with it.
    pub(crate) async fn account_of_phone(&self, phone: &Phone) -> Result<Option<user::Model>, Error> {
        Ok(users::by_phone(self.store.reader(), phone.as_str()).await?.into_iter().next())
    }
}
