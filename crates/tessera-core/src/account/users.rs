//! Registration, user reads and updates, and profiles (SPEC §2.1 Users, §3.2, §3.3).

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tessera_domain::{bounded_text, Email, Error, FieldError, FullName, Phone, Role};
use tessera_store::entity::{mfa_factor, profile, user};
use tessera_store::query::profiles::{self, ProfileChanges};
use tessera_store::query::users::{self, NewUser, UserChanges};
use tessera_store::Db;
use uuid::Uuid;

use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, ClientInfo};
use crate::mail::transport::Template;
use crate::session::issued::SignIn;
use crate::session::sign_in::{Proof, Proven};

/// A user with what is shown beside it: the profile and the MFA factors.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: user::Model,
    /// `None` if it could not be read (the user is shown without it).
    pub profile: Option<profile::Model>,
    pub factors: Vec<mfa_factor::Model>,
    /// How the user signs in: the address and password, and each provider's identity.
    pub identities: Vec<crate::identity::view::IdentityView>,
}

/// What a sign-up asks for, as the client sent it.
pub struct Registration {
    pub email: String,
    pub password: SecretString,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    /// The profile's `user_metadata` (a JSON object; Supabase's sign-up `data`).
    pub user_metadata: Option<Value>,
    /// Where the confirmation link brings the browser back (the Supabase surface's PKCE flow).
    pub link_back: Option<crate::mail::link_back::LinkBack>,
}

/// The most bytes a metadata object may take as JSON.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

/// Checks a metadata object: a JSON object of at most [`METADATA_MAX_BYTES`].
pub(crate) fn check_metadata(field: &str, value: &Option<Value>, errors: &mut Vec<FieldError>) {
    match value {
        None => {}
        Some(Value::Object(_)) if value.as_ref().map_or(0, |v| v.to_string().len()) <= METADATA_MAX_BYTES => {}
        Some(Value::Object(_)) => {
            errors.push(FieldError::new(field, "too_long", format!("At most {METADATA_MAX_BYTES} bytes of JSON.")))
        }
        Some(_) => errors.push(FieldError::new(field, "not_an_object", "Must be a JSON object.")),
    }
}

/// `base` with `patch` merged in key by key: a `null` value deletes its key.
pub fn merge_metadata(base: &Value, patch: &Value) -> Value {
    let mut out = base.as_object().cloned().unwrap_or_default();
    if let Some(p) = patch.as_object() {
        for (k, v) in p {
            if v.is_null() {
                out.remove(k);
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The `user_metadata` and `app_metadata` a user shows on the Supabase surface (and in
/// its tokens): the stored objects, with `provider`, `providers` and `roles` (the user's
/// role) in `app_metadata` unless an admin stored a custom `roles`.
pub fn metadata_of(user: &user::Model, profile: Option<&profile::Model>) -> (Value, Value) {
    let user_metadata = profile.map_or_else(|| json!({}), |p| p.user_metadata.clone());
    let mut app = json!({ "provider": "email", "providers": ["email"], "roles": [user.role] });
    if let (Some(out), Some(custom)) = (app.as_object_mut(), profile.and_then(|p| p.app_metadata.as_object())) {
        for (k, v) in custom {
            if k != "provider" && k != "providers" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    (user_metadata, app)
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
pub type Patch<T> = Option<Option<T>>;

/// Changes to a user's own account.
#[derive(Default)]
pub struct UserPatch {
    pub full_name: Patch<String>,
    pub email: Option<String>,
    pub phone: Patch<String>,
}

/// Everything one `PUT /user` changes in the caller's own account (see
/// [`Core::change_own_account`]).
#[derive(Default)]
pub struct OwnChanges {
    /// Merged into `user_metadata` key by key (`null` deletes a key).
    pub user_metadata: Option<Value>,
    /// A new password: the caller's session is kept, every other revoked.
    pub password: Option<SecretString>,
    /// The reauthentication code sent with the new password, when there is one.
    pub nonce: Option<String>,
    /// The name, the address (pending until confirmed) and the phone.
    pub patch: UserPatch,
}

/// A [`UserPatch`] checked against the user it changes: the row to save (only the fields
/// that change are set), their names, and the address asked for, if it is new.
struct PlannedPatch {
    changes: UserChanges,
    changed: Vec<&'static str>,
    new_email: Option<Email>,
}

/// Checks a patch against `current` (every broken rule reported at once) without
/// writing anything.
fn plan_patch(current: &user::Model, patch: UserPatch) -> Result<PlannedPatch, Error> {
    let mut errors = Vec::new();
    let mut changes = UserChanges::default();
    let mut changed = Vec::new();
    set_name(&mut changes, patch.full_name, &mut changed, &mut errors);
    // A new email is not applied here: it stays pending until confirmed (SPEC §5.3).
    let mut new_email = None;
    if let Some(raw) = patch.email {
        match Email::parse(&raw) {
            Ok(email) if email.as_str() != current.email => new_email = Some(email),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    set_phone(&mut changes, current, patch.phone, &mut changed, &mut errors);
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(PlannedPatch { changes, changed, new_email })
}

/// Sets a patch's `full_name` in `changes`, noting the field and any broken rule.
pub(crate) fn set_name(
    changes: &mut UserChanges,
    name: Patch<String>,
    changed: &mut Vec<&'static str>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(name) = name {
        changes.full_name = Some(full_name("full_name", name, errors));
        changed.push("full_name");
    }
}

/// Sets a patch's phone on `row` when it differs from `current`'s (its verification
/// reset), noting the field and any broken rule.
pub(crate) fn set_phone(
    changes: &mut UserChanges,
    current: &user::Model,
    phone: Patch<String>,
    changed: &mut Vec<&'static str>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(phone) = phone {
        let phone = optional_phone(phone, errors).map(|p| p.as_str().to_owned());
        if phone != current.phone {
            changes.phone = Some(phone);
            changes.phone_verified_at = Some(None);
            changed.push("phone");
        }
    }
}

/// Changes to a profile.
#[derive(Default)]
pub struct ProfilePatch {
    pub name: Patch<String>,
    pub avatar_url: Patch<String>,
    pub location: Patch<String>,
    pub date_of_birth: Patch<String>,
    pub bio: Patch<String>,
    pub preferences: Patch<Value>,
}

/// A user and their profile.
pub struct UserProfile {
    pub user: user::Model,
    pub profile: profile::Model,
}

/// A date written exactly `YYYY-MM-DD` (ASCII digits), and a real one.
pub(crate) fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r.clone()].iter().all(u8::is_ascii_digit).then(|| s[r].parse().ok()).flatten()
    };
    NaiveDate::from_ymd_opt(i32::try_from(number(0..4)?).ok()?, number(5..7)?, number(8..10)?)
}

/// An optional phone number: blank means none; an invalid one is recorded in `errors`.
pub(crate) fn optional_phone(raw: Option<String>, errors: &mut Vec<FieldError>) -> Option<Phone> {
    let raw = raw.filter(|p| !p.trim().is_empty())?;
    Phone::parse(&raw).map_err(|e| errors.push(e)).ok()
}

/// An optional [`bounded_text`]; its broken rules are added to `errors`.
pub(crate) fn text_field(
    field: &str,
    value: Option<String>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    bounded_text(field, &value?, max).map_err(|mut broken| errors.append(&mut broken)).ok().flatten()
}

/// An optional [`FullName`] given under `field`; its broken rules are added to `errors`.
pub(crate) fn full_name(field: &str, value: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    FullName::parse(field, &value?)
        .map_err(|mut broken| errors.append(&mut broken))
        .ok()
        .flatten()
        .map(FullName::into_string)
}

/// What a new account starts with.
pub(crate) struct NewAccount {
    pub email: Email,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub phone: Option<Phone>,
    pub role: Role,
    pub is_active: bool,
    /// Whether the email counts as verified from the start.
    pub verified: bool,
    /// The profile's `user_metadata` and `app_metadata` (JSON objects).
    pub metadata: Metadata,
    /// Whether an admin invited the user (sets `invited_at`).
    pub invited: bool,
    /// An anonymous user (SPEC §5.11), whose `email` is a placeholder.
    pub anonymous: bool,
}

impl NewAccount {
    /// A user's account with no password of their own (signed in by a mailed link, a
    /// provider, or anonymous): the user role, active, no phone, not invited; the empty
    /// `password_hash` matches no password until one is set.
    pub(crate) fn passwordless(email: Email, verified: bool, user_metadata: Option<Value>) -> NewAccount {
        NewAccount {
            email,
            password_hash: String::new(),
            full_name: None,
            phone: None,
            role: Role::User,
            is_active: true,
            verified,
            metadata: Metadata { user: user_metadata, app: None },
            invited: false,
            anonymous: false,
        }
    }
}

/// What the Supabase surface keeps beside a profile: `user_metadata`, written by the user
/// or an admin, and `app_metadata`, written by an admin only. Both are JSON objects.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub user: Option<Value>,
    pub app: Option<Value>,
}

/// Inserts a user and their empty profile through `conn` (the caller's transaction).
/// A taken email is caught by the unique index and answers `EmailTaken`.
pub(crate) async fn insert_account(conn: &impl Db, a: NewAccount) -> Result<user::Model, Error> {
    let new = NewUser {
        email: a.email.as_str().to_owned(),
        password_hash: a.password_hash,
        full_name: a.full_name,
        phone: a.phone.map(|p| p.as_str().to_owned()),
        verified: a.verified,
        is_active: a.is_active,
        role: a.role.as_str().to_owned(),
        user_metadata: a.metadata.user.unwrap_or_else(|| json!({})),
        app_metadata: a.metadata.app.unwrap_or_else(|| json!({})),
        invited: a.invited,
        at: now(),
        anonymous: a.anonymous,
    };
    users::create(conn, new).await
}

impl Core {
    /// The before-user-created hook (SPEC §5.13) on an account about to be created: GoTrue's
    /// user object of it; the receiver's refusal stops the sign-up.
    pub(crate) async fn vet_new_account(&self, a: &NewAccount, client: &ClientInfo) -> Result<(), Error> {
        if !self.hook_enabled(crate::hooks::HookName::BeforeUserCreated) {
            return Ok(());
        }
        let placeholder = tessera_domain::Email::is_placeholder(a.email.as_str());
        let at = now();
        let user = json!({
            "aud": "authenticated",
            "role": "authenticated",
            "email": if placeholder { "" } else { a.email.as_str() },
            "phone": a.phone.as_ref().map(|p| p.digits()).unwrap_or_default(),
            "app_metadata": a.metadata.app.clone().unwrap_or_else(|| json!({})),
            "user_metadata": a.metadata.user.clone().unwrap_or_else(|| json!({})),
            "identities": [],
            "is_anonymous": a.anonymous,
            "created_at": at,
            "updated_at": at,
        });
        self.before_user_created_hook(user, client).await
    }

    /// Validates a sign-up (every broken rule reported at once), hashes the password and
    /// creates the user and the profile in one transaction. A taken email is caught by
    /// the unique index, never by a racy pre-check.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn register(&self, r: Registration, client: &ClientInfo) -> Result<user::Model, Error> {
        let mut errors = Vec::new();
        let email = Email::parse(&r.email).map_err(|e| errors.push(e)).ok();
        let full_name = full_name("full_name", r.full_name, &mut errors);
        let phone = optional_phone(r.phone, &mut errors);
        check_metadata("user_metadata", &r.user_metadata, &mut errors);
        if let Err(mut broken) =
            self.settings.password_policy.check("password", r.password.expose_secret(), email.as_ref())
        {
            errors.append(&mut broken);
        }
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        let hash = self.hasher.hash(&r.password).await?;
        let account = NewAccount {
            email,
            password_hash: hash,
            full_name,
            phone,
            role: Role::User,
            is_active: true,
            verified: self.settings.email_autoconfirm,
            metadata: Metadata { user: r.user_metadata, app: None },
            invited: false,
            anonymous: false,
        };
        self.vet_new_account(&account, client).await?;
        let tx = self.store.begin().await?;
        let created = insert_account(&tx, account).await?;
        record(&tx, client, AuditEvent::by_user("user.create", created.id)).await?;
        if !self.settings.email_autoconfirm {
            self.queue_verification(&tx, &created, Template::VerifyEmail, r.link_back.as_ref()).await?;
        }
        tx.commit().await?;
        self.mailer.wake.notify_one();
        Ok(created)
    }

    /// A sign-up on a surface that signs the new account in at once when it may
    /// (Kreeda's `/auth/register`, Supabase's `/signup`): the account, and its first
    /// session when [`Core::may_sign_in`] lets it sign in now. The one rule for every
    /// surface; the native `POST /v1/users` answers the account alone, and its sign-in
    /// follows the same rule.
    pub async fn sign_up(
        &self,
        r: Registration,
        client: &ClientInfo,
    ) -> Result<(user::Model, Option<crate::session::issued::Issued>), Error> {
        let user = self.register(r, client).await?;
        if !self.may_sign_in(&user) {
            return Ok((user, None));
        }
        match self.finish_sign_in(Proven::new(user.clone(), Proof::SignUp), client).await? {
            SignIn::Session(issued) => Ok((user, Some(*issued))),
            // A new account has no factor yet.
            SignIn::MfaRequired(_) => Ok((user, None)),
        }
    }

    /// Whether an account's address lets it sign in: confirmed, or confirmation not
    /// required (`REQUIRE_EMAIL_VERIFICATION=false`). `EMAIL_AUTOCONFIRM` confirms the
    /// address at sign-up, so such an account may sign in at once.
    pub fn may_sign_in(&self, user: &user::Model) -> bool {
        !self.settings.require_email_verification || user.email_verified_at.is_some()
    }

    /// A live (not deleted) user by id.
    pub async fn user(&self, id: Uuid) -> Result<user::Model, Error> {
        users::by_id(self.store.reader(), id).await?.filter(|u| u.deleted_at.is_none()).ok_or(Error::UserNotFound)
    }

    /// Applies the caller's changes to their own account (read afresh): a
    /// [`Core::change_own_account`] with a patch alone. A new email or phone needs an
    /// aal2 session when MFA is on: either is a way back into the account.
    pub async fn update_own_account(
        &self,
        who: &crate::caller::Principal,
        patch: UserPatch,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        self.change_own_account(who, OwnChanges { patch, ..OwnChanges::default() }, client).await
    }

    /// Refuses an address another account has (the unique index is the last word; this
    /// answers before anything is written).
    pub(crate) async fn check_address_free(&self, email: &Email) -> Result<(), Error> {
        match users::by_email(self.store.reader(), email.as_str()).await? {
            Some(_) => Err(Error::EmailTaken),
            None => Ok(()),
        }
    }

    /// Writes a checked patch in `conn`: the changed fields and their audit row, then the
    /// email change it asks for (pending until confirmed, its mails queued).
    async fn apply_patch_in(
        &self,
        conn: &impl Db,
        current: &user::Model,
        plan: PlannedPatch,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let PlannedPatch { mut changes, changed, new_email } = plan;
        let mut updated = current.clone();
        if !changed.is_empty() {
            changes.updated_at = Some(now());
            updated = users::update(conn, current, changes).await?;
            let ev = AuditEvent::by_user("user.update", current.id).detail(json!({ "fields": changed }));
            record(conn, client, ev).await?;
        }
        if let Some(email) = new_email {
            updated = self.start_email_change_in(conn, &updated, &email, true, client).await?.0;
        }
        Ok(updated)
    }

    /// Everything one request changes in the caller's own account (Supabase's and
    /// Kreeda's `PUT /user`): every rule checked first (metadata, the new password and
    /// the aal it needs, the name, address and phone, an address already taken), then the
    /// reauthentication code if one came with the password, then all of it written in one
    /// transaction. A request changes everything it asks for or nothing.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %who.user.id))]
    pub async fn change_own_account(
        &self,
        who: &crate::caller::Principal,
        changes: OwnChanges,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let current = self.user(who.user.id).await?;
        let mut errors = Vec::new();
        check_metadata("user_metadata", &changes.user_metadata, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        if let Some(password) = &changes.password {
            self.require_aal2_if_mfa(who)?;
            self.check_new_password("password", password, &current)?;
        }
        let plan = plan_patch(&current, changes.patch)?;
        if plan.new_email.is_some() || plan.changed.contains(&"phone") {
            // Either is a way back into the account.
            self.require_aal2_if_mfa(who)?;
        }
        if let Some(email) = &plan.new_email {
            self.check_address_free(email).await?;
        }
        if let (Some(_), Some(nonce)) = (&changes.password, &changes.nonce) {
            self.use_reauthentication(who, nonce, client).await?;
        }
        let hash = match &changes.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let tx = self.store.begin().await?;
        if changes.user_metadata.is_some() {
            self.merge_metadata_in(&tx, current.id, changes.user_metadata, None, None, client).await?;
        }
        if let Some(hash) = &hash {
            self.apply_new_password(&tx, &current, hash, Some(who.session_id), "password.change", client).await?;
        }
        self.apply_patch_in(&tx, &current, plan, client).await?;
        tx.commit().await?;
        self.mailer.wake.notify_one();
        self.user(current.id).await
    }

    /// A user's profile (created with the user).
    /// A user with their profile and factors, read at once.
    pub async fn account(&self, user: user::Model) -> Result<Account, Error> {
        let reader = self.store.reader();
        let (profile, factors, identities) = tokio::join!(
            profiles::by_user(reader, user.id),
            tessera_store::query::mfa::factors(reader, user.id),
            self.identities_of(&user),
        );
        let identities = identities?;
        Ok(Account { profile: profile.ok().flatten(), factors: factors?, identities, user })
    }

    pub async fn profile(&self, user: &user::Model) -> Result<profile::Model, Error> {
        profiles::by_user(self.store.reader(), user.id)
            .await?
            .ok_or_else(|| Error::Internal(format!("user {} has no profile", user.id)))
    }

    /// Merges changes into a user's `user_metadata` and (an admin's) `app_metadata`, key
    /// by key (`null` deletes a key), under the lock of the user's row so that concurrent
    /// changes of different keys all stay. `actor` is the admin, `None` for the user.
    pub async fn update_metadata(
        &self,
        user_id: Uuid,
        user_patch: Option<Value>,
        app_patch: Option<Value>,
        actor: Option<&crate::caller::Actor>,
        client: &ClientInfo,
    ) -> Result<profile::Model, Error> {
        let mut errors = Vec::new();
        check_metadata("user_metadata", &user_patch, &mut errors);
        check_metadata("app_metadata", &app_patch, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let tx = self.store.begin().await?;
        let saved = self.merge_metadata_in(&tx, user_id, user_patch, app_patch, actor, client).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// [`Core::update_metadata`] in `tx`, the patches already checked: the profile as
    /// saved (unchanged when neither patch is given).
    pub(crate) async fn merge_metadata_in(
        &self,
        tx: &impl Db,
        user_id: Uuid,
        user_patch: Option<Value>,
        app_patch: Option<Value>,
        actor: Option<&crate::caller::Actor>,
        client: &ClientInfo,
    ) -> Result<profile::Model, Error> {
        users::by_id_for_update(tx, user_id).await?.ok_or(Error::UserNotFound)?;
        let current = profiles::by_user(tx, user_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("user {user_id} has no profile")))?;
        let mut changes = ProfileChanges::default();
        let mut fields = Vec::new();
        if let Some(patch) = &user_patch {
            changes.user_metadata = Some(merge_metadata(&current.user_metadata, patch));
            fields.push("user_metadata");
        }
        if let Some(patch) = &app_patch {
            changes.app_metadata = Some(merge_metadata(&current.app_metadata, patch));
            fields.push("app_metadata");
        }
        if fields.is_empty() {
            return Ok(current);
        }
        let merged = [&changes.user_metadata, &changes.app_metadata];
        if merged.iter().any(|v| v.as_ref().is_some_and(|v| v.to_string().len() > METADATA_MAX_BYTES)) {
            return Err(Error::field(fields[0], "too_long", format!("At most {METADATA_MAX_BYTES} bytes of JSON.")));
        }
        changes.updated_at = Some(now());
        let saved = profiles::update(tx, &current, changes).await?;
        let ev = match actor {
            Some(a) => a.event("admin.user.update", Some(user_id), json!({ "fields": fields })),
            None => AuditEvent::by_user("user.update", user_id).detail(json!({ "fields": fields })),
        };
        record(tx, client, ev).await?;
        Ok(saved)
    }

    /// Validates and applies profile changes; the name is the user's `full_name`.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %current.id))]
    pub async fn update_profile(
        &self,
        current: &user::Model,
        patch: ProfilePatch,
        client: &ClientInfo,
    ) -> Result<UserProfile, Error> {
        let existing = self.profile(current).await?;
        let mut errors = Vec::new();
        let mut row = ProfileChanges::default();
        let mut user_row = UserChanges::default();
        if let Some(name) = patch.name {
            user_row.full_name = Some(full_name("name", name, &mut errors));
        }
        if let Some(url) = patch.avatar_url {
            let url = text_field("avatar_url", url, 2048, &mut errors);
            if let Some(u) = &url {
                let lower = u.to_ascii_lowercase();
                let host = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or_default();
                if host.is_empty() || host.starts_with('/') || u.contains(char::is_whitespace) {
                    errors.push(FieldError::new("avatar_url", "invalid_url", "Enter an http(s) URL."));
                }
            }
            row.avatar_url = Some(url);
        }
        if let Some(location) = patch.location {
            row.location = Some(text_field("location", location, 200, &mut errors));
        }
        if let Some(bio) = patch.bio {
            row.bio = Some(text_field("bio", bio, 5000, &mut errors));
        }
        if let Some(dob) = patch.date_of_birth {
            let parsed = match dob.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) {
                None => None,
                Some(d) => match iso_date(&d).ok_or(()) {
                    Ok(date) if date > now().date_naive() => {
                        errors.push(FieldError::new(
                            "date_of_birth",
                            "date_in_future",
                            "The date of birth cannot be in the future.",
                        ));
                        None
                    }
                    Ok(date) if date < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(date) => {
                        errors.push(FieldError::new(
                            "date_of_birth",
                            "date_too_early",
                            "The date of birth must be after 1900-01-01.",
                        ));
                        None
                    }
                    Ok(date) => Some(date),
                    Err(_) => {
                        errors.push(FieldError::new("date_of_birth", "invalid_date", "Use an ISO date, YYYY-MM-DD."));
                        None
                    }
                },
            };
            row.date_of_birth = Some(parsed);
        }
        if let Some(prefs) = patch.preferences {
            let prefs = prefs.unwrap_or_else(|| json!({}));
            if !prefs.is_object() {
                errors.push(FieldError::new("preferences", "not_an_object", "Preferences must be a JSON object."));
            } else if prefs.to_string().len() > 16 * 1024 {
                errors.push(FieldError::new("preferences", "too_large", "Preferences must be at most 16 KiB."));
            }
            row.preferences = Some(prefs);
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let now = now();
        row.updated_at = Some(now);
        let tx = self.store.begin().await?;
        let profile = profiles::update(&tx, &existing, row).await?;
        let user = if !user_row.is_empty() {
            user_row.updated_at = Some(now);
            users::update(&tx, current, user_row).await?
        } else {
            current.clone()
        };
        record(&tx, client, AuditEvent::by_user("user.update", current.id).detail(json!({ "fields": ["profile"] })))
            .await?;
        tx.commit().await?;
        Ok(UserProfile { user, profile })
    }
}
