//! Email verification, email change and password recovery (SPEC §5.3).
//!
//! Link tokens are 32 random bytes stored as SHA-256; codes are 6 characters of an
//! unambiguous alphabet stored as a keyed hash (HMAC with a server key), so the
//! database alone cannot brute-force them. Every use is a conditional update, so of
//! many concurrent uses of one token or code exactly one succeeds.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use hmac::Mac;
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tessera_domain::{Email, Error};
use tessera_store::entity::{mail_outbox, one_time_token, user};
use tessera_store::query::users::{self, UserChanges};
use tessera_store::query::{mfa, one_time_tokens, outbox, sessions};
use tessera_store::Db;
use uuid::Uuid;

use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo};
use crate::crypto::{mac, os_rng, random_token, sha256_hex};
use crate::limits::RateAction;
use crate::mail::outbox::MailRequest;
use crate::mail::transport::{OutgoingMail, Template};
use crate::session::issued::{is_usable, SignIn};
use crate::session::sign_in::{Proof, Proven};

/// The alphabet of codes: digits and upper-case letters without 0, O, 1 and I.
const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Wrong guesses after which a code is dead.
const CODE_MAX_ATTEMPTS: i32 = 5;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Confirms the address an account signed up with.
    VerifyEmail,
    /// Sent to the new address of an email change.
    EmailChange,
    /// Sent to the current address of a secure email change.
    EmailChangeCurrent,
    Recovery,
    /// Signs in without a password (a magic link or an email code).
    MagicLink,
    /// Accepts an admin's invitation: confirms the address and signs in.
    Invite,
    /// Confirms a signed-in user before a password change (Supabase's reauthentication).
    Reauthentication,
}

/// Every kind, for parsing.
const ALL_KINDS: [TokenKind; 7] = [
    TokenKind::VerifyEmail,
    TokenKind::EmailChange,
    TokenKind::EmailChangeCurrent,
    TokenKind::Recovery,
    TokenKind::MagicLink,
    TokenKind::Invite,
    TokenKind::Reauthentication,
];

impl TokenKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenKind::VerifyEmail => "verify_email",
            TokenKind::EmailChange => "email_change",
            TokenKind::EmailChangeCurrent => "email_change_current",
            TokenKind::Recovery => "recovery",
            TokenKind::MagicLink => "magic_link",
            TokenKind::Invite => "invite",
            TokenKind::Reauthentication => "reauthentication",
        }
    }

    fn parse(s: &str) -> Option<TokenKind> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// The other token of an email change's pair.
    fn other_side(self) -> Option<TokenKind> {
        match self {
            TokenKind::EmailChange => Some(TokenKind::EmailChangeCurrent),
            TokenKind::EmailChangeCurrent => Some(TokenKind::EmailChange),
            _ => None,
        }
    }
}

/// Who may have asked for a token, as far as the account's credentials go (SPEC §5.3:
/// a first proof of an address with a token anybody could ask for voids them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The token answers the request that set the account's credentials (the sign-up
    /// mail, an admin's sign-up link for the account it creates) or a request of its
    /// signed-in holder (an email change): whoever uses it is taken to be whoever set them.
    Same,
    /// Anybody may have asked for it (a resend, a sign-in link, a recovery, an
    /// invitation): using it proves the address and nothing more.
    Anyone,
}

/// The email confirmations a caller may present.
pub const EMAIL_CONFIRMATIONS: &[TokenKind] =
    &[TokenKind::VerifyEmail, TokenKind::EmailChange, TokenKind::EmailChangeCurrent];
/// The confirmations of an email change, either side.
pub const EMAIL_CHANGE: &[TokenKind] = &[TokenKind::EmailChange, TokenKind::EmailChangeCurrent];

/// Which address of an email change a confirmation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSide {
    NewAddress,
    CurrentAddress,
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The sign-up address is verified.
    EmailVerified,
    /// The address switched to the new one.
    EmailChanged,
    /// One side of a secure email change is confirmed; the other is still needed.
    EmailChangePending { waiting_for: ChangeSide },
}

/// The tokens and codes of an email change: to the new address, and to the current one
/// when both confirm.
#[derive(Debug, Clone, Default)]
pub struct EmailChangeTokens {
    pub new: Option<(String, Option<String>)>,
    pub current: Option<(String, Option<String>)>,
}

/// A confirmation and the user as it left them.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: user::Model,
    pub confirmation: Confirmation,
    /// The kind of the token used.
    pub kind: TokenKind,
    /// Whether this confirmed the account's address for the first time.
    pub first_confirmation: bool,
}

/// A 6-character code, uniform over the alphabet (32 divides 256).
fn new_code() -> String {
    let mut rng = os_rng();
    (0..6).map(|_| CODE_ALPHABET[(rng.random::<u8>() & 31) as usize] as char).collect()
}

/// Adds `token=…` to a link base that may already have a query.
pub(crate) fn link(base: &str, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}token={token}")
}

impl Core {
    pub(crate) fn code_hash(&self, token_id: Uuid, code: &str) -> String {
        let mut mac = mac(&self.code_key, token_id.as_bytes());
        mac.update(code.trim().to_ascii_uppercase().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A live (unused, unexpired) token by its raw value.
    async fn live_token(&self, token: &str) -> Result<one_time_token::Model, Error> {
        one_time_tokens::live_by_hash(self.store.reader(), &sha256_hex(token.trim()), now())
            .await?
            .ok_or(Error::InvalidVerification)
    }

    /// A live recovery token and its usable user.
    async fn live_recovery_token(&self, token: &str) -> Result<(one_time_token::Model, user::Model), Error> {
        let row = self.live_token(token).await?;
        if row.kind != TokenKind::Recovery.as_str() {
            return Err(Error::InvalidVerification);
        }
        let user = users::by_id(self.store.reader(), row.user_id)
            .await?
            .filter(is_usable)
            .ok_or(Error::InvalidVerification)?;
        Ok((row, user))
    }

    /// Marks a token used, if nobody did first: the guard that makes every token and
    /// code single-use under concurrency.
    async fn use_token(&self, conn: &impl Db, id: Uuid, at: DateTime<Utc>) -> Result<(), Error> {
        if one_time_tokens::use_once(conn, id, at, true).await? {
            Ok(())
        } else {
            Err(Error::InvalidVerification)
        }
    }

    /// Checks a new password for `user` against the policy (422 naming every rule).
    pub(crate) fn check_new_password(
        &self,
        field: &str,
        password: &SecretString,
        user: &user::Model,
    ) -> Result<(), Error> {
        let email = Email::parse(&user.email).ok();
        self.settings.password_policy.check(field, password.expose_secret(), email.as_ref()).map_err(Error::Validation)
    }

    /// Retires every unused token of `kind` for a user (a newer one replaces them).
    pub(crate) async fn retire_tokens(
        &self,
        conn: &impl Db,
        user_id: Uuid,
        kinds: &[TokenKind],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        one_time_tokens::retire(conn, user_id, &kinds, at).await
    }

    /// Creates a token (and, with `code`, a 10-minute code) at `now` for `holder` and
    /// returns the raw values.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn issue_token(
        &self,
        conn: &impl Db,
        user_id: Uuid,
        kind: TokenKind,
        ttl: ChronoDuration,
        with_code: bool,
        new_email: Option<&str>,
        holder: Holder,
        now: DateTime<Utc>,
    ) -> Result<(String, Option<String>), Error> {
        let id = Uuid::now_v7();
        let token = random_token(32);
        let code = with_code.then(new_code);
        let row = one_time_token::Model {
            id,
            user_id,
            kind: kind.as_str().to_owned(),
            token_hash: sha256_hex(&token),
            code_hash: code.as_deref().map(|c| self.code_hash(id, c)),
            code_expires_at: code.as_ref().map(|_| now + ChronoDuration::minutes(10)),
            code_attempts: 0,
            new_email: new_email.map(str::to_owned),
            new_email_index: None,
            expires_at: now + ttl,
            confirmed_at: None,
            used_at: None,
            created_at: now,
            proves_holder: holder == Holder::Same,
        };
        one_time_tokens::insert(conn, row).await?;
        Ok((token, code))
    }

    /// Queues the sign-up verification mail (link 24 h + code 10 min) in `conn`: the
    /// sign-up's own (`VerifyEmail`, for the holder of what the sign-up set) or a resend
    /// (anybody may ask for one).
    pub(crate) async fn queue_verification(
        &self,
        conn: &impl Db,
        user: &user::Model,
        template: Template,
        back: Option<&crate::mail::link_back::LinkBack>,
    ) -> Result<(), Error> {
        let now = now();
        let holder = if template == Template::VerifyEmail { Holder::Same } else { Holder::Anyone };
        self.retire_tokens(conn, user.id, &[TokenKind::VerifyEmail], now).await?;
        let day = ChronoDuration::hours(24);
        let (token, code) =
            self.issue_token(conn, user.id, TokenKind::VerifyEmail, day, true, None, holder, now).await?;
        let vars = vec![
            ("email", user.email.clone()),
            ("link", self.mail_link(&token, "signup", back, &self.settings.mail.verify_email_url)),
            ("code", code.unwrap_or_default()),
        ];
        self.queue_mail(conn, OutgoingMail { template, to: user.email.clone(), vars }).await
    }

    /// Confirms an email with a link token of one of `kinds`: the sign-up address, or one
    /// side of an email change.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn verify_email_token(
        &self,
        token: &str,
        kinds: &[TokenKind],
        client: &ClientInfo,
    ) -> Result<Verified, Error> {
        let row = self.live_token(token).await?;
        if !TokenKind::parse(&row.kind).is_some_and(|k| kinds.contains(&k)) {
            return Err(Error::InvalidVerification);
        }
        self.consume_verification(row, client).await
    }

    /// Confirms an email with `{email, code}`: the code of the sign-up address, of the
    /// current address of an email change, or of the new one. Each try spends one of the
    /// code's five attempts before the comparison, so five wrong guesses kill it however
    /// many arrive at once.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn verify_email_code(&self, email: &str, code: &str, client: &ClientInfo) -> Result<Verified, Error> {
        self.verify_code(email, code, EMAIL_CONFIRMATIONS, client).await
    }

    /// Uses `{email, code}` for a code of one of `kinds` (see [`Core::verify_email_code`]):
    /// the newest live code of those kinds sent to that address decides.
    pub async fn verify_code(
        &self,
        email: &str,
        code: &str,
        kinds: &[TokenKind],
        client: &ClientInfo,
    ) -> Result<Verified, Error> {
        let email = Email::parse(email).map_err(|_| Error::InvalidVerification)?;
        let now = now();
        let reader = self.store.reader();
        let mut candidates = Vec::new();
        let to_current: Vec<&str> =
            kinds.iter().filter(|k| **k != TokenKind::EmailChange).map(|k| k.as_str()).collect();
        if let Some(u) = users::by_email(reader, email.as_str()).await?.filter(|_| !to_current.is_empty()) {
            candidates.push((u.id, to_current.clone(), None));
        }
        if kinds.contains(&TokenKind::EmailChange) {
            for u in users::by_new_email(reader, email.as_str()).await? {
                candidates.push((u.id, vec![TokenKind::EmailChange.as_str()], Some(email.as_str())));
            }
        }
        let mut newest: Option<one_time_token::Model> = None;
        for (user_id, kinds, new_email) in candidates {
            if let Some(t) = one_time_tokens::newest_live_code(reader, user_id, &kinds, new_email, now).await? {
                if newest.as_ref().is_none_or(|n| t.created_at > n.created_at) {
                    newest = Some(t);
                }
            }
        }
        let row = newest.ok_or(Error::InvalidVerification)?;
        self.check_code(&row, code).await?;
        self.consume_verification(row, client).await
    }

    /// Checks a code against a token's: spends one of its five attempts first, then
    /// compares in constant time. `InvalidVerification` when none is left or it is wrong.
    pub(crate) async fn check_code(&self, row: &one_time_token::Model, code: &str) -> Result<(), Error> {
        if !one_time_tokens::spend_code_attempt(self.store.writer(), row.id, CODE_MAX_ATTEMPTS).await? {
            return Err(Error::InvalidVerification);
        }
        let expected = row.code_hash.as_deref().unwrap_or_default();
        let given = self.code_hash(row.id, code);
        if !crate::crypto::same_secret(expected, &given) {
            return Err(Error::InvalidVerification);
        }
        Ok(())
    }

    /// Uses a confirmation token, under the lock of its user's row (so that the two sides
    /// of an email change confirmed at once see each other). An email change switches the
    /// address once every token of its pair is confirmed, and never signs anyone in.
    async fn consume_verification(&self, row: one_time_token::Model, client: &ClientInfo) -> Result<Verified, Error> {
        let kind = TokenKind::parse(&row.kind).ok_or(Error::InvalidVerification)?;
        let passwordless = self.passwordless_hash_if_voiding(&row).await?;
        let now = now();
        let tx = self.store.begin().await?;
        let current = users::by_id_for_update(&tx, row.user_id).await?.ok_or(Error::InvalidVerification)?;
        if !is_usable(&current) {
            return Err(Error::InvalidVerification);
        }
        // Of concurrent uses, exactly one gets past this.
        self.use_token(&tx, row.id, now).await?;
        let mut changed = UserChanges { updated_at: Some(now), ..UserChanges::default() };
        let confirmation = match kind.other_side() {
            None => {
                if current.email_verified_at.is_none() {
                    changed.email_verified_at = Some(Some(now));
                }
                Confirmation::EmailVerified
            }
            Some(other) => {
                let new_email = row.new_email.clone().ok_or(Error::InvalidVerification)?;
                if current.new_email.as_deref() != Some(new_email.as_str()) {
                    // A newer change request replaced this one.
                    return Err(Error::InvalidVerification);
                }
                match one_time_tokens::sibling(&tx, &row, other.as_str()).await? {
                    Some(s) if s.confirmed_at.is_none() => Confirmation::EmailChangePending {
                        waiting_for: match other {
                            TokenKind::EmailChangeCurrent => ChangeSide::CurrentAddress,
                            _ => ChangeSide::NewAddress,
                        },
                    },
                    _ => {
                        changed.email = Some(new_email);
                        changed.new_email = Some(None);
                        changed.email_verified_at = Some(Some(now));
                        // An anonymous user's first confirmed address makes them permanent.
                        if current.is_anonymous {
                            changed.is_anonymous = Some(false);
                        }
                        Confirmation::EmailChanged
                    }
                }
            }
        };
        let mut updated = users::update(&tx, &current, changed).await?;
        let first_confirmation = kind.other_side().is_none() && current.email_verified_at.is_none();
        if first_confirmation && !row.proves_holder {
            updated = self.void_unproven_credentials(&tx, updated, passwordless, client).await?;
        }
        let event = match confirmation {
            Confirmation::EmailVerified => AuditEvent::by_user("email.verify", updated.id),
            Confirmation::EmailChanged => {
                // The old address's links and codes (sign-up verification included) are
                // no good for the new one.
                one_time_tokens::retire(&tx, updated.id, &[], now).await?;
                AuditEvent::by_user("user.email_change", updated.id)
            }
            Confirmation::EmailChangePending { waiting_for } => {
                let confirmed = if waiting_for == ChangeSide::NewAddress { "current" } else { "new" };
                AuditEvent::by_user("user.email_change_confirmed", updated.id).detail(json!({ "address": confirmed }))
            }
        };
        record(&tx, client, event).await?;
        tx.commit().await?;
        Ok(Verified { user: updated, confirmation, kind, first_confirmation })
    }

    /// The rule of a first proof of an address (SPEC §5.3), in `conn`, with the user's
    /// row locked: the credentials set on the account before anyone proved it owns the
    /// address die, unless the proof came with a token mailed in answer to the request
    /// that set them ([`Holder::Same`]). The password becomes one nobody knows, every
    /// session and access token is revoked, every other link and code retired, every
    /// second factor removed: whoever signed up with somebody else's address, or
    /// enrolled a factor on it, keeps nothing, and the owner, signed in by the proof or
    /// by a password reset, sets their own. `passwordless` is a hash made beforehand
    /// (Argon2 has no place under a row lock); `None` makes one now. Answers the user
    /// as it leaves them.
    pub(crate) async fn void_unproven_credentials(
        &self,
        conn: &impl Db,
        mut user: user::Model,
        passwordless: Option<String>,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let hash = match passwordless {
            Some(hash) => hash,
            None => self.passwordless_hash().await?,
        };
        let now = now();
        users::set_password_hash(conn, user.id, &hash, now).await?;
        users::revoke_credentials(conn, user.id, now).await?;
        sessions::revoke_all_for_user(conn, user.id, now).await?;
        mfa::delete_all(conn, user.id).await?;
        mfa::set_enabled(conn, user.id, false, now).await?;
        record(conn, client, AuditEvent::by_user("user.unconfirmed_credentials_voided", user.id)).await?;
        user.password_hash = hash;
        user.token_version += 1;
        user.mfa_enabled = false;
        Ok(user)
    }

    /// The password hash [`Core::void_unproven_credentials`] will need for a token whose
    /// use would void the account's credentials (it does not prove the holder and the
    /// address is unconfirmed), made before the transaction that uses it.
    async fn passwordless_hash_if_voiding(&self, row: &one_time_token::Model) -> Result<Option<String>, Error> {
        let proves_address_alone = !row.proves_holder
            && TokenKind::parse(&row.kind)
                .is_some_and(|k| k.other_side().is_none() && k != TokenKind::Reauthentication);
        if !proves_address_alone {
            return Ok(None);
        }
        match users::by_id(self.store.reader(), row.user_id).await? {
            Some(u) if u.email_verified_at.is_none() => Ok(Some(self.passwordless_hash().await?)),
            _ => Ok(None),
        }
    }

    /// Uses a recovery token in `conn` (its user's row locked): single use. A recovery
    /// link proves the address like any link does, so an unconfirmed one becomes
    /// confirmed, under the rule of a first proof. Answers the user as it leaves them.
    async fn consume_recovery(
        &self,
        conn: &impl Db,
        row: &one_time_token::Model,
        passwordless: Option<String>,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let now = now();
        let user =
            users::by_id_for_update(conn, row.user_id).await?.filter(is_usable).ok_or(Error::InvalidVerification)?;
        self.use_token(conn, row.id, now).await?;
        if user.email_verified_at.is_some() {
            return Ok(user);
        }
        let changed =
            UserChanges { email_verified_at: Some(Some(now)), updated_at: Some(now), ..UserChanges::default() };
        let mut user = users::update(conn, &user, changed).await?;
        record(conn, client, AuditEvent::by_user("email.verify", user.id).detail(json!({ "by": "recovery" }))).await?;
        if !row.proves_holder {
            user = self.void_unproven_credentials(conn, user, passwordless, client).await?;
        }
        Ok(user)
    }

    /// Sends a new verification mail if the address belongs to an unverified account.
    /// Answers the same, in the same time, whatever the address: the request is queued
    /// and resolved in the background. At most `RATE_LIMIT_OTP` per address.
    pub async fn resend_verification(&self, email: &str, client: &ClientInfo) -> Result<(), Error> {
        self.queue_address_request(MailRequest::VerificationResend, RateAction::Otp, email, None, client).await
    }

    /// Queues a request about an address (a resend, a password reset) unless the address
    /// is over its limit; the same work whether it belongs to an account or not.
    async fn queue_address_request(
        &self,
        request: MailRequest,
        limit: RateAction,
        email: &str,
        back: Option<crate::mail::link_back::LinkBack>,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        if self.rate_limit(limit, email.as_str()).await.is_some_and(|d| !d.allowed) {
            tracing::info!(request = ?request, "request over the per-address limit: not queued");
            return Ok(());
        }
        self.queue_request(self.store.writer(), request, email.as_str(), back.as_ref(), client).await?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// The background half of [`Core::resend_verification`].
    pub(crate) async fn resolve_verification_resend(&self, request: &mail_outbox::Model) -> Result<(), Error> {
        let now = now();
        let user = users::by_email(self.store.reader(), &request.to_addr).await?;
        let tx = self.store.begin().await?;
        if let Some(user) = user.filter(|u| u.email_verified_at.is_none() && is_usable(u)) {
            self.queue_verification(&tx, &user, Template::VerifyEmailResend, None).await?;
        }
        outbox::complete_request(&tx, request.id, now).await?;
        tx.commit().await
    }

    /// Starts an email change: the new address stays pending (shown as `new_email`)
    /// until confirmed by link or code; the old address gets a notice.
    pub async fn request_email_change(
        &self,
        current: &user::Model,
        new_email: &Email,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        Ok(self.start_email_change(current, new_email, true, client).await?.0)
    }

    /// [`Core::request_email_change`], mailing the links and codes (`deliver`) or not (an
    /// admin's generated link): the user as changed and the tokens and codes issued, to
    /// the new address and, with `SECURE_EMAIL_CHANGE`, to the current one.
    pub(crate) async fn start_email_change(
        &self,
        current: &user::Model,
        new_email: &Email,
        deliver: bool,
        client: &ClientInfo,
    ) -> Result<(user::Model, EmailChangeTokens), Error> {
        if new_email.as_str() == current.email {
            return Ok((current.clone(), EmailChangeTokens::default()));
        }
        self.check_address_free(new_email).await?;
        let tx = self.store.begin().await?;
        let started = self.start_email_change_in(&tx, current, new_email, deliver, client).await?;
        tx.commit().await?;
        self.mailer.wake.notify_one();
        Ok(started)
    }

    /// [`Core::start_email_change`] in `tx`, the address already known to be free and
    /// different from the current one.
    pub(crate) async fn start_email_change_in(
        &self,
        tx: &impl Db,
        current: &user::Model,
        new_email: &Email,
        deliver: bool,
        client: &ClientInfo,
    ) -> Result<(user::Model, EmailChangeTokens), Error> {
        let now = now();
        let changes = UserChanges {
            new_email: Some(Some(new_email.as_str().to_owned())),
            updated_at: Some(now),
            ..UserChanges::default()
        };
        let updated = users::update(tx, current, changes).await?;
        self.retire_tokens(tx, current.id, EMAIL_CHANGE, now).await?;
        let day = ChronoDuration::hours(24);
        let to_new = Some(new_email.as_str());
        let (token, code) =
            self.issue_token(tx, current.id, TokenKind::EmailChange, day, true, to_new, Holder::Same, now).await?;
        let mut issued = EmailChangeTokens { new: Some((token.clone(), code.clone())), current: None };
        let verify_url = &self.settings.mail.verify_email_url;
        let vars = |token: &str, code: Option<String>| {
            vec![
                ("email", current.email.clone()),
                ("new_email", new_email.as_str().to_owned()),
                ("link", link(verify_url, token)),
                ("code", code.unwrap_or_default()),
            ]
        };
        let mail = OutgoingMail {
            template: Template::EmailChange,
            to: new_email.as_str().to_owned(),
            vars: vars(&token, code),
        };
        if deliver {
            self.queue_mail(tx, mail).await?;
        }
        // The current address confirms too (SECURE_EMAIL_CHANGE), with a token of its own
        // issued at the same moment (that is how the pair is found); otherwise it is told.
        // A user with no address of their own (anonymous) has no current side to confirm.
        let has_address = !tessera_domain::Email::is_placeholder(&current.email);
        let mail = if self.settings.secure_email_change && has_address {
            let side = TokenKind::EmailChangeCurrent;
            let (token, code) = self.issue_token(tx, current.id, side, day, true, to_new, Holder::Same, now).await?;
            issued.current = Some((token.clone(), code.clone()));
            OutgoingMail { template: Template::EmailChangeCurrent, to: current.email.clone(), vars: vars(&token, code) }
        } else {
            let notice = vars("", None).into_iter().filter(|(k, _)| *k == "email" || *k == "new_email").collect();
            OutgoingMail { template: Template::EmailChangeNotice, to: current.email.clone(), vars: notice }
        };
        if deliver {
            self.queue_mail(tx, mail).await?;
        }
        record(
            tx,
            client,
            AuditEvent::by_user("user.update", current.id).detail(json!({ "fields": ["email_pending"] })),
        )
        .await?;
        Ok((updated, issued))
    }

    /// Sends a single-use recovery link (1 h) if the address belongs to an active
    /// account; a newer link retires the older ones. Reveals nothing either way, not even
    /// by its time: the request is queued whatever the address and resolved in the
    /// background. At most `RATE_LIMIT_RECOVER` requests per address.
    /// With `back`, its link brings the browser back to the app (the Supabase surface's
    /// PKCE flow).
    pub async fn request_password_reset(
        &self,
        email: &str,
        back: Option<crate::mail::link_back::LinkBack>,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.queue_address_request(MailRequest::PasswordReset, RateAction::Recover, email, back, client).await
    }

    /// The background half of [`Core::request_password_reset`].
    pub(crate) async fn resolve_password_reset(&self, request: &mail_outbox::Model) -> Result<(), Error> {
        let now = now();
        let user = users::by_email(self.store.reader(), &request.to_addr).await?;
        let tx = self.store.begin().await?;
        if let Some(user) = user.filter(is_usable) {
            self.retire_tokens(&tx, user.id, &[TokenKind::Recovery], now).await?;
            let hour = ChronoDuration::hours(1);
            let (token, _) =
                self.issue_token(&tx, user.id, TokenKind::Recovery, hour, false, None, Holder::Anyone, now).await?;
            let back = crate::mail::outbox::link_back(request);
            let page = &self.settings.mail.reset_password_url;
            let vars =
                vec![("email", user.email.clone()), ("link", self.mail_link(&token, "recovery", back.as_ref(), page))];
            let mail = OutgoingMail { template: Template::PasswordReset, to: user.email.clone(), vars };
            self.queue_mail(&tx, mail).await?;
            let client = crate::mail::outbox::requester(request);
            record(&tx, &client, AuditEvent::by_user("password.reset_requested", user.id)).await?;
        }
        outbox::complete_request(&tx, request.id, now).await?;
        tx.commit().await
    }

    /// Sets a new password with a recovery token: single use; bumps `token_version`,
    /// revokes every session, retires every other reset token and sends a notice.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &SecretString,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let (row, user) = self.live_recovery_token(token).await?;
        self.check_new_password("new_password", new_password, &user)?;
        let hash = self.hasher.hash(new_password).await?;
        let tx = self.store.begin().await?;
        // The new password replaces any other: no hash nobody knows is needed first.
        let user = self.consume_recovery(&tx, &row, Some(hash.clone()), client).await?;
        self.apply_new_password(&tx, &user, &hash, None, "password.reset", client).await?;
        tx.commit().await?;
        self.mailer.wake.notify_one();
        let mut user = user;
        user.password_hash = hash;
        user.token_version += 1;
        Ok(user)
    }

    /// Uses a recovery link to sign in (Kreeda's `POST /auth/verify {type: "recovery"}`):
    /// single use, like a reset confirmation; the client then sets a new password. A user
    /// with MFA on still proves the second factor.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn sign_in_with_recovery_token(&self, token: &str, client: &ClientInfo) -> Result<SignIn, Error> {
        let (row, _) = self.live_recovery_token(token).await?;
        let passwordless = self.passwordless_hash_if_voiding(&row).await?;
        let tx = self.store.begin().await?;
        let user = self.consume_recovery(&tx, &row, passwordless, client).await?;
        record(&tx, client, AuditEvent::by_user("password.recovery_sign_in", user.id)).await?;
        tx.commit().await?;
        self.finish_sign_in(Proven::new(user, Proof::Mail), client).await
    }

    /// Stores a new password hash in `conn`: bumps `token_version`, revokes the user's
    /// sessions (all, or all but `keep`), retires every outstanding one-time token, audits
    /// `event` and queues the "password changed" notice.
    pub(crate) async fn apply_new_password(
        &self,
        conn: &impl Db,
        user: &user::Model,
        hash: &str,
        keep: Option<Uuid>,
        event: &'static str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let now = now();
        users::set_password_hash(conn, user.id, hash, now).await?;
        match keep {
            None => {
                users::revoke_credentials(conn, user.id, now).await?;
                sessions::revoke_all_for_user(conn, user.id, now).await?;
            }
            Some(session_id) => {
                sessions::revoke_all_but(conn, user.id, session_id, now).await?;
            }
        }
        // Whoever held a link or code of this account (an email change started with a
        // stolen session, say) holds nothing once the password changes.
        users::cancel_pending(conn, user.id, now).await?;
        record(conn, client, AuditEvent::by_user(event, user.id)).await?;
        let vars = vec![("email", user.email.clone())];
        self.queue_mail(conn, OutgoingMail { template: Template::PasswordChanged, to: user.email.clone(), vars }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']));
        }
    }

    #[test]
    fn links_take_the_token_parameter() {
        assert_eq!(link("https://a.test/verify-email", "t"), "https://a.test/verify-email?token=t");
        assert_eq!(link("https://app.test/x?y=1", "t"), "https://app.test/x?y=1&token=t");
    }
}
