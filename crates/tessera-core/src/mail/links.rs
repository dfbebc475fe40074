//! Passwordless sign-in by mail (a link or a code), invitations, the links an admin
//! generates without mail, and reauthentication codes: the services behind the Supabase
//! surface's `/otp`, `/verify`, `/invite`, `/admin/generate_link` and `/reauthenticate`
//! (SPEC §2.3), under the same rules, limits, audit and outbox as every other surface.

use chrono::Duration as ChronoDuration;
use secrecy::SecretString;
use serde_json::{json, Value};
use tessera_domain::{Email, Error, FieldError};
use tessera_store::entity::user;
use tessera_store::query::{one_time_tokens, users};

use crate::account::admin::NewUser;
use crate::account::users::{check_metadata, insert_account, Metadata, NewAccount};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, Actor, ClientInfo};
use crate::crypto::random_token;
use crate::limits::RateAction;
use crate::mail::link_back::LinkBack;
use crate::mail::transport::{OutgoingMail, Template};
use crate::mail::verification::{Confirmation, Holder, TokenKind, Verified, EMAIL_CHANGE};
use crate::session::issued::{is_usable, SignIn};
use crate::session::sign_in::{Proof, Proven};

/// What a link an admin generates is for (GoTrue's `generate_link` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Creates the account (with a password) and confirms its address.
    Signup,
    /// Creates an invited account; the link confirms it and signs in.
    Invite,
    /// Signs in without a password (creates the account if there is none).
    MagicLink,
    /// Signs in to choose a new password.
    Recovery,
    /// Confirms an email change from the current address.
    EmailChangeCurrent,
    /// Confirms an email change from the new address.
    EmailChangeNew,
}

impl LinkKind {
    /// The kind a GoTrue client names.
    pub fn parse(s: &str) -> Option<LinkKind> {
        Some(match s {
            "signup" => LinkKind::Signup,
            "invite" => LinkKind::Invite,
            "magiclink" => LinkKind::MagicLink,
            "recovery" => LinkKind::Recovery,
            "email_change_current" => LinkKind::EmailChangeCurrent,
            "email_change_new" => LinkKind::EmailChangeNew,
            _ => return None,
        })
    }

    /// The `type` of its verification link.
    pub fn verify_type(self) -> &'static str {
        match self {
            LinkKind::Signup => "signup",
            LinkKind::Invite => "invite",
            LinkKind::MagicLink => "magiclink",
            LinkKind::Recovery => "recovery",
            LinkKind::EmailChangeCurrent | LinkKind::EmailChangeNew => "email_change",
        }
    }
}

/// What an admin asks a link for.
pub struct LinkRequest {
    pub kind: LinkKind,
    pub email: String,
    /// The password of a `signup` link's account.
    pub password: Option<SecretString>,
    /// The new address of an email change.
    pub new_email: Option<String>,
    /// The `user_metadata` of an account the link creates.
    pub user_metadata: Option<Value>,
}

/// A generated link: the user as it now stands, the raw token (the link's `token`) and,
/// where the kind has one, the code.
pub struct GeneratedLink {
    pub user: user::Model,
    pub token: String,
    pub code: Option<String>,
}

/// A mailed proof as the client gives it back: the link's token (or its hash), or the
/// address and the code.
#[derive(Debug, Clone, Copy)]
pub enum MailProof<'a> {
    Token(&'a str),
    Code { email: &'a str, code: &'a str },
}

/// What a mailed proof is for (GoTrue's verification `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// `signup`: the sign-up's confirmation.
    Signup,
    /// `invite`.
    Invite,
    /// `recovery`.
    Recovery,
    /// `magiclink` or `email`: a passwordless sign-in (or a sign-up confirmation).
    SignIn,
    /// `email_change`: either side of an email change.
    EmailChange,
}

impl Verification {
    /// GoTrue's name of a verification type.
    pub fn parse(s: &str) -> Option<Verification> {
        Some(match s {
            "signup" => Verification::Signup,
            "invite" => Verification::Invite,
            "recovery" => Verification::Recovery,
            "magiclink" | "email" => Verification::SignIn,
            "email_change" => Verification::EmailChange,
            _ => return None,
        })
    }

    /// The kinds of token that prove it.
    pub fn kinds(self) -> &'static [TokenKind] {
        match self {
            Verification::Signup => &[TokenKind::VerifyEmail],
            Verification::Invite => &[TokenKind::Invite],
            Verification::Recovery => &[TokenKind::Recovery],
            Verification::SignIn => SIGN_IN_KINDS,
            Verification::EmailChange => EMAIL_CHANGE,
        }
    }
}

/// What using a mailed proof did.
#[derive(Debug)]
pub enum Verdict {
    /// A session, or the second step it still needs.
    SignedIn(SignIn),
    /// One side of an email change confirmed; the other still waits.
    Pending(Box<Verified>),
}

/// The kinds of token that sign in when used at `/verify`.
pub const SIGN_IN_KINDS: &[TokenKind] =
    &[TokenKind::MagicLink, TokenKind::Invite, TokenKind::VerifyEmail, TokenKind::Recovery];

impl Core {
    /// `redirect_to` if it starts with `SITE_URL` or one of `REDIRECT_URLS`, else `SITE_URL`
    /// (GoTrue replaces a redirect it does not allow, never refuses it).
    pub fn allowed_redirect(&self, asked: Option<&str>) -> String {
        let s = &self.settings;
        match asked.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) if under(a, &s.site_url) || s.redirect_urls.iter().any(|u| under(a, u)) => a.to_owned(),
            // The OpenID provider's own sign-in page, signing in with another provider.
            Some(a) if under(a, &format!("{}{}", s.public_url, crate::oauth::EXTERNAL_RETURN)) => a.to_owned(),
            _ => s.site_url.clone(),
        }
    }

    /// The Supabase verification link of a token: `PUBLIC_URL/auth/v1/verify?token=…&type=…&redirect_to=…`.
    pub fn supabase_link(&self, token: &str, kind: &str, redirect_to: &str) -> String {
        let q = |v: &str| url_encode(v);
        format!(
            "{}/auth/v1/verify?token={}&type={}&redirect_to={}",
            self.settings.public_url,
            q(token),
            q(kind),
            q(redirect_to)
        )
    }

    /// [`Core::supabase_link`], carrying the app's PKCE challenge when it sent one: the
    /// link then comes back to the app with `?code=` (exchanged with the verifier) instead
    /// of the session.
    pub fn supabase_link_pkce(&self, token: &str, kind: &str, redirect_to: &str, challenge: Option<&str>) -> String {
        let link = self.supabase_link(token, kind, redirect_to);
        match challenge {
            Some(c) => format!("{link}&code_challenge={}", url_encode(c)),
            None => link,
        }
    }

    /// Where the Supabase surface's link of a PKCE flow (`code_challenge` given) comes back
    /// to: the allowed `redirect_to`, with the challenge checked. `None` without one (the
    /// mail then links to tessera's own page, as before).
    pub fn link_back(
        &self,
        redirect_to: Option<&str>,
        code_challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<Option<LinkBack>, Error> {
        let Some(challenge) = crate::identity::state::checked_challenge(code_challenge, method)? else {
            return Ok(None);
        };
        Ok(Some(LinkBack { redirect_to: self.allowed_redirect(redirect_to), code_challenge: challenge }))
    }

    /// The link of a mailed token of `kind` (GoTrue's type): back through `/auth/v1/verify`
    /// with `back`, else `page?token=…` (tessera's own page).
    pub(crate) fn mail_link(&self, token: &str, kind: &str, back: Option<&LinkBack>, page: &str) -> String {
        match back {
            Some(b) => self.supabase_link_pkce(token, kind, &b.redirect_to, Some(&b.code_challenge)),
            None => crate::mail::verification::link(page, token),
        }
    }

    /// A mailed sign-in link that carries a PKCE challenge, used: the link's token spent,
    /// and a code for the app to exchange, with the verifier, for the session (at
    /// `POST /token?grant_type=pkce`, where the account's rules apply as at any sign-in).
    pub async fn mail_link_to_code(
        &self,
        verification: Verification,
        token: &str,
        challenge: &str,
        client: &ClientInfo,
    ) -> Result<String, Error> {
        let challenge =
            crate::identity::state::checked_challenge(Some(challenge), None)?.ok_or(Error::InvalidVerification)?;
        if verification == Verification::EmailChange {
            return Err(Error::BadRequest("an email change does not sign in".to_owned()));
        }
        let verified = self.verify_email_token(token, verification.kinds(), client).await?;
        let user = verified.user;
        record(self.store.writer(), client, AuditEvent::by_user("login.link_used", user.id)).await?;
        self.issue_code(self.store.writer(), user.id, &challenge, "email").await
    }

    /// A new account without a usable password (signed in by link, or choosing a password
    /// later): its hash is of 32 random bytes nobody knows.
    pub(crate) async fn passwordless_hash(&self) -> Result<String, Error> {
        self.hasher.hash(&SecretString::from(random_token(32))).await
    }

    /// Mails a sign-in link and code (`POST /otp`). An unknown address gets an account
    /// (with `user_metadata`) unless `create_user` is false, which answers
    /// `SignupNotAllowed`. An inactive account gets nothing, silently. At most
    /// `RATE_LIMIT_OTP` per address. With the app's `code_challenge` (as
    /// [`crate::identity::state::checked_challenge`] passed it), the link comes back with
    /// `?code=`.
    pub async fn send_sign_in_link(
        &self,
        email: &str,
        create_user: bool,
        user_metadata: Option<Value>,
        redirect_to: Option<&str>,
        code_challenge: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let mut errors = Vec::new();
        let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
        check_metadata("user_metadata", &user_metadata, &mut errors);
        let Some(email) = email.filter(|_| errors.is_empty()) else { return Err(Error::Validation(errors)) };
        if let Some(d) = self.rate_limit(RateAction::Otp, email.as_str()).await.filter(|d| !d.allowed) {
            return Err(Error::RateLimited { retry_after_secs: d.retry_after_secs });
        }
        let user = match users::by_email(self.store.reader(), email.as_str()).await? {
            Some(u) => u,
            None if !create_user => return Err(Error::SignupNotAllowed),
            None => {
                let hash = self.passwordless_hash().await?;
                let account =
                    NewAccount { password_hash: hash, ..NewAccount::passwordless(email.clone(), false, user_metadata) };
                self.vet_new_account(&account, client).await?;
                let tx = self.store.begin().await?;
                let created = match insert_account(&tx, account).await {
                    Ok(u) => u,
                    // Created by a concurrent request meanwhile: that one mails it.
                    Err(Error::EmailTaken) => return Ok(()),
                    Err(e) => return Err(e),
                };
                record(&tx, client, AuditEvent::by_user("user.create", created.id)).await?;
                tx.commit().await?;
                created
            }
        };
        if !is_usable(&user) {
            return Ok(());
        }
        let redirect = self.allowed_redirect(redirect_to);
        let now = now();
        let tx = self.store.begin().await?;
        self.retire_tokens(&tx, user.id, &[TokenKind::MagicLink], now).await?;
        let (token, code) = self
            .issue_token(&tx, user.id, TokenKind::MagicLink, ChronoDuration::hours(1), true, None, Holder::Anyone, now)
            .await?;
        let vars = vec![
            ("email", user.email.clone()),
            ("link", self.supabase_link_pkce(&token, "magiclink", &redirect, code_challenge)),
            ("code", code.unwrap_or_default()),
        ];
        self.queue_mail(&tx, OutgoingMail { template: Template::MagicLink, to: user.email.clone(), vars }).await?;
        record(&tx, client, AuditEvent::by_user("login.link_requested", user.id)).await?;
        tx.commit().await?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Signs in with a mailed token of one of `kinds` (a magic link, an invitation, a
    /// sign-up confirmation, a recovery link): single use; the address counts as
    /// confirmed; a user with MFA on still proves the second factor (except on the
    /// Supabase surface, whose aal1 session is stepped up there).
    pub async fn sign_in_with_token(
        &self,
        token: &str,
        kinds: &[TokenKind],
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        let verified = self.verify_email_token(token, kinds, client).await?;
        self.signed_in_by_mail(verified, client).await
    }

    /// [`Core::sign_in_with_token`] with `{email, code}`.
    pub async fn sign_in_with_code(
        &self,
        email: &str,
        code: &str,
        kinds: &[TokenKind],
        client: &ClientInfo,
    ) -> Result<SignIn, Error> {
        let verified = self.verify_code(email, code, kinds, client).await?;
        self.signed_in_by_mail(verified, client).await
    }

    /// Uses a mailed proof of `verification`'s kind: a session (or the second step it
    /// needs), or, for an email change still waiting for its other side, that side
    /// confirmed. What GoTrue's `/verify` and Kreeda's `/auth/verify` do, in one call.
    pub async fn use_mail_proof(
        &self,
        verification: Verification,
        proof: MailProof<'_>,
        client: &ClientInfo,
    ) -> Result<Verdict, Error> {
        let kinds = verification.kinds();
        if verification != Verification::EmailChange {
            let signed_in = match proof {
                MailProof::Token(token) => self.sign_in_with_token(token, kinds, client).await?,
                MailProof::Code { email, code } => self.sign_in_with_code(email, code, kinds, client).await?,
            };
            return Ok(Verdict::SignedIn(signed_in));
        }
        let verified = match proof {
            MailProof::Token(token) => self.verify_email_token(token, kinds, client).await?,
            MailProof::Code { email, code } => self.verify_code(email, code, kinds, client).await?,
        };
        if matches!(verified.confirmation, Confirmation::EmailChangePending { .. }) {
            return Ok(Verdict::Pending(Box::new(verified)));
        }
        Ok(Verdict::SignedIn(self.finish_sign_in(Proven::new(verified.user, Proof::Mail), client).await?))
    }

    /// Opens the session of a mailed sign-in (the confirmation has applied the rule of a
    /// first proof of the address: see [`Core::void_unproven_credentials`]).
    async fn signed_in_by_mail(&self, verified: Verified, client: &ClientInfo) -> Result<SignIn, Error> {
        let user = verified.user;
        record(self.store.writer(), client, AuditEvent::by_user("login.link_used", user.id)).await?;
        self.finish_sign_in(Proven::new(user, Proof::Mail), client).await
    }

    /// Invites a user (`POST /invite`): an account with no usable password, `invited_at`
    /// set and `user_metadata` stored, and a mail whose link (24 h) or code confirms the
    /// address and signs in. An address that already has a confirmed account is taken.
    pub async fn invite_user(
        &self,
        actor: &Actor,
        email: &str,
        user_metadata: Option<Value>,
        redirect_to: Option<&str>,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let (user, token, code) = self.invited_account(actor, email, user_metadata, client).await?;
        let redirect = self.allowed_redirect(redirect_to);
        let vars = vec![
            ("email", user.email.clone()),
            ("link", self.supabase_link(&token, "invite", &redirect)),
            ("code", code.unwrap_or_default()),
        ];
        self.queue_mail(self.store.writer(), OutgoingMail { template: Template::Invite, to: user.email.clone(), vars })
            .await?;
        self.mailer.wake.notify_one();
        Ok(user)
    }

    /// The account of an invitation (created, or an unconfirmed one invited again) and a
    /// fresh invitation token and code.
    async fn invited_account(
        &self,
        actor: &Actor,
        email: &str,
        user_metadata: Option<Value>,
        client: &ClientInfo,
    ) -> Result<(user::Model, String, Option<String>), Error> {
        let mut errors = Vec::new();
        let parsed = Email::parse(email).map_err(|e| errors.push(e)).ok();
        // An invitation's `data` becomes the account's user_metadata: an object, as
        // everywhere else (Schemathesis: an array was stored).
        check_metadata("user_metadata", &user_metadata, &mut errors);
        let Some(parsed) = parsed.filter(|_| errors.is_empty()) else { return Err(Error::Validation(errors)) };
        let user = match users::by_email(self.store.reader(), parsed.as_str()).await? {
            Some(u) if u.email_verified_at.is_some() || u.deleted_at.is_some() => return Err(Error::EmailTaken),
            Some(u) => u,
            None => {
                let new = unconfirmed(&parsed, None, user_metadata, true);
                self.insert_user(actor, new, "admin.user.invite", client).await?
            }
        };
        let now = now();
        let tx = self.store.begin().await?;
        self.retire_tokens(&tx, user.id, &[TokenKind::Invite], now).await?;
        let (token, code) = self
            .issue_token(&tx, user.id, TokenKind::Invite, ChronoDuration::hours(24), true, None, Holder::Anyone, now)
            .await?;
        tx.commit().await?;
        Ok((user, token, code))
    }

    /// A link an admin generates (`POST /admin/generate_link`), not mailed: the caller
    /// hands it over. `signup` creates the account with its password (the policy applies);
    /// `invite` an invited one; `magiclink` one without a password when none exists;
    /// `recovery` needs an existing account; `email_change_*` starts the change to
    /// `new_email` and answers the token of that side.
    pub async fn generate_link(
        &self,
        actor: &Actor,
        req: LinkRequest,
        client: &ClientInfo,
    ) -> Result<GeneratedLink, Error> {
        let mut errors = Vec::new();
        let email = Email::parse(&req.email).map_err(|e| errors.push(e)).ok();
        check_metadata("user_metadata", &req.user_metadata, &mut errors);
        let Some(email) = email.filter(|_| errors.is_empty()) else { return Err(Error::Validation(errors)) };
        let existing = users::by_email(self.store.reader(), email.as_str()).await?;
        let now = now();
        let hour = ChronoDuration::hours(1);
        let day = ChronoDuration::hours(24);
        match req.kind {
            LinkKind::Invite => {
                let (user, token, code) =
                    self.invited_account(actor, email.as_str(), req.user_metadata, client).await?;
                Ok(GeneratedLink { user, token, code })
            }
            LinkKind::Signup | LinkKind::MagicLink => {
                // A sign-up link for the account it creates answers the request that set
                // its password; any other proves the address alone.
                let mut holder = Holder::Anyone;
                let user = match existing {
                    Some(u) if req.kind == LinkKind::Signup && u.email_verified_at.is_some() => {
                        return Err(Error::EmailTaken)
                    }
                    Some(u) => u,
                    None => {
                        holder = if req.kind == LinkKind::Signup { Holder::Same } else { Holder::Anyone };
                        if req.kind == LinkKind::Signup && req.password.is_none() {
                            return Err(Error::field("password", "missing", "A sign-up link needs a password."));
                        }
                        // A magic link's account gets a password nobody knows.
                        let password = req.password.filter(|_| req.kind == LinkKind::Signup);
                        let new = unconfirmed(&email, password, req.user_metadata, false);
                        self.admin_create_user(actor, new, client).await?
                    }
                };
                let kind = if req.kind == LinkKind::Signup { TokenKind::VerifyEmail } else { TokenKind::MagicLink };
                let ttl = if kind == TokenKind::VerifyEmail { day } else { hour };
                let tx = self.store.begin().await?;
                self.retire_tokens(&tx, user.id, &[kind], now).await?;
                let (token, code) = self.issue_token(&tx, user.id, kind, ttl, true, None, holder, now).await?;
                record(
                    &tx,
                    client,
                    actor.event("admin.link_generated", Some(user.id), json!({ "kind": kind.as_str() })),
                )
                .await?;
                tx.commit().await?;
                Ok(GeneratedLink { user, token, code })
            }
            LinkKind::Recovery => {
                let user = existing.filter(is_usable).ok_or(Error::UserNotFound)?;
                let tx = self.store.begin().await?;
                self.retire_tokens(&tx, user.id, &[TokenKind::Recovery], now).await?;
                let (token, code) =
                    self.issue_token(&tx, user.id, TokenKind::Recovery, hour, true, None, Holder::Anyone, now).await?;
                record(&tx, client, actor.event("admin.link_generated", Some(user.id), json!({ "kind": "recovery" })))
                    .await?;
                tx.commit().await?;
                Ok(GeneratedLink { user, token, code })
            }
            LinkKind::EmailChangeCurrent | LinkKind::EmailChangeNew => {
                let user = existing.filter(is_usable).ok_or(Error::UserNotFound)?;
                let raw = req.new_email.unwrap_or_default();
                let new_email = Email::parse(&raw)
                    .map_err(|e| Error::Validation(vec![FieldError::new("new_email", &e.code, e.message.clone())]))?;
                if new_email.as_str() == user.email {
                    // The account has that address already: a taken address, as GoTrue
                    // answers one (422 `user_already_exists`), not a malformed one.
                    return Err(Error::EmailTaken);
                }
                let (user, tokens) = self.start_email_change(&user, &new_email, false, client).await?;
                // Without SECURE_EMAIL_CHANGE the current address confirms nothing: the
                // new address's token is the one that completes the change.
                let side = match req.kind {
                    LinkKind::EmailChangeCurrent => tokens.current.or(tokens.new),
                    _ => tokens.new,
                };
                let (token, code) = side.ok_or_else(|| Error::Internal("no email change token".into()))?;
                Ok(GeneratedLink { user, token, code })
            }
        }
    }

    /// Mails the links and codes of a pending email change again (Supabase's `POST
    /// /resend {type: "email_change"}`), for the account whose current or pending address
    /// is `email`. Answers the same whatever the address; at most `RATE_LIMIT_OTP` per
    /// address.
    pub async fn resend_email_change(&self, email: &str, client: &ClientInfo) -> Result<(), Error> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        if self.rate_limit(RateAction::Otp, email.as_str()).await.is_some_and(|d| !d.allowed) {
            return Ok(());
        }
        let reader = self.store.reader();
        let mut users_found = users::by_new_email(reader, email.as_str()).await?;
        if let Some(u) = users::by_email(reader, email.as_str()).await? {
            users_found.push(u);
        }
        for user in users_found.into_iter().filter(is_usable) {
            if let Some(pending) = user.new_email.as_deref().and_then(|e| Email::parse(e).ok()) {
                // A fresh pair of links and codes; the old ones die.
                let mut current = user.clone();
                current.new_email = None;
                self.start_email_change(&current, &pending, true, client).await?;
            }
        }
        Ok(())
    }

    /// Mails the caller a reauthentication code (`GET /reauthenticate`), which a password
    /// change may then present as `nonce`.
    pub async fn send_reauthentication(
        &self,
        who: &crate::caller::Principal,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        if Email::is_placeholder(&who.user.email) {
            return Err(Error::BadRequest(
                "Reauthentication requires the user to have an email or a phone number".to_owned(),
            ));
        }
        if let Some(d) = self.rate_limit(RateAction::Otp, &who.user.email).await.filter(|d| !d.allowed) {
            return Err(Error::RateLimited { retry_after_secs: d.retry_after_secs });
        }
        let now = now();
        let tx = self.store.begin().await?;
        self.retire_tokens(&tx, who.user.id, &[TokenKind::Reauthentication], now).await?;
        let ten = ChronoDuration::minutes(10);
        let kind = TokenKind::Reauthentication;
        let (_, code) = self.issue_token(&tx, who.user.id, kind, ten, true, None, Holder::Same, now).await?;
        let vars = vec![("email", who.user.email.clone()), ("code", code.unwrap_or_default())];
        let mail = OutgoingMail { template: Template::Reauthentication, to: who.user.email.clone(), vars };
        self.queue_mail(&tx, mail).await?;
        record(&tx, client, AuditEvent::by_user("user.reauthentication_requested", who.user.id)).await?;
        tx.commit().await?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Uses the caller's reauthentication code (`nonce`): single use, five attempts; a
    /// check of a secret like a password's (see [`Core::check_again`]).
    pub async fn use_reauthentication(
        &self,
        who: &crate::caller::Principal,
        nonce: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let now = now();
        let check = async {
            let kinds = [TokenKind::Reauthentication.as_str()];
            let Some(row) =
                one_time_tokens::newest_live_code(self.store.reader(), who.user.id, &kinds, None, now).await?
            else {
                return Ok(false);
            };
            match self.check_code(&row, nonce).await {
                Ok(()) => one_time_tokens::use_once(self.store.writer(), row.id, now, true).await,
                Err(Error::InvalidVerification) => Ok(false),
                Err(e) => Err(e),
            }
        };
        if !self.check_again(&who.user.email, client, check).await? {
            return Err(Error::InvalidVerification);
        }
        Ok(())
    }
}

/// A new active user account, its address not yet confirmed, with its `user_metadata`.
fn unconfirmed(email: &Email, password: Option<SecretString>, user_metadata: Option<Value>, invited: bool) -> NewUser {
    NewUser {
        email: email.as_str().to_owned(),
        password,
        full_name: None,
        phone: None,
        role: None,
        is_active: Some(true),
        is_verified: Some(false),
        metadata: Metadata { user: user_metadata, app: None },
        invited,
    }
}

/// Whether `url` is `base` or lies under it: the next character after `base` ends its
/// authority or path segment, so `https://app.example.com.evil.test` is not under
/// `https://app.example.com`. Control characters and spaces are never allowed.
fn under(url: &str, base: &str) -> bool {
    let base = base.trim();
    if base.is_empty() || url.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    match url.strip_prefix(base) {
        Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn url_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_must_lie_under_an_allowed_url() {
        let site = "https://app.example.com";
        assert!(under("https://app.example.com", site));
        assert!(under("https://app.example.com/welcome?x=1", site));
        assert!(under("https://app.example.com#done", site));
        assert!(!under("https://app.example.com.evil.test/", site));
        assert!(!under("https://app.example.comx", site));
        assert!(!under("https://evil.test/?https://app.example.com", site));
        assert!(!under("https://app.example.com/\nLocation: x", "https://app.example.com/"));
        assert!(under("https://app.example.com/cb/x", "https://app.example.com/cb/"));
        assert!(!under("https://app.example.com/a b", site));
        assert!(!under("https://app.example.com/a", ""));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_encode("AZaz09-._~"), "AZaz09-._~");
    }
}
