//! Registration, user reads and updates, and profiles (SPEC §2.1 Users, §3.2, §3.3).

use chrono::NaiveDate;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tessera_domain::{Email, Error, FieldError, Phone, Role};
use tessera_store::entity::{profile, user};
use tessera_store::query::{profiles, users};
use tessera_store::Db;
use uuid::Uuid;

use crate::audit::{record, AuditEvent};
use crate::mail::Template;
use crate::{now, ClientInfo, Core};

/// What a sign-up asks for, as the client sent it.
pub struct Registration {
    pub email: String,
    pub password: SecretString,
    pub full_name: Option<String>,
    pub phone: Option<String>,
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

pub(crate) fn bounded_text(
    field: &str,
    value: Option<String>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.push(FieldError::new(field, "too_long", format!("At most {max} characters.")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        errors.push(FieldError::new(field, "invalid_characters", "Control characters are not allowed."));
    }
    Some(value)
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
}

/// Inserts a user and their empty profile through `conn` (the caller's transaction).
/// A taken email is caught by the unique index and answers `EmailTaken`.
pub(crate) async fn insert_account(conn: &impl Db, a: NewAccount) -> Result<user::Model, Error> {
    let now = now();
    let row = user::Model {
        id: Uuid::now_v7(),
        email: a.email.as_str().to_owned(),
        password_hash: a.password_hash,
        full_name: a.full_name,
        phone: a.phone.map(|p| p.as_str().to_owned()),
        email_verified_at: a.verified.then_some(now),
        phone_verified_at: None,
        is_active: a.is_active,
        role: a.role.as_str().to_owned(),
        token_version: 0,
        last_login_at: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        new_email: None,
        mfa_enabled: false,
        email_index: None,
        new_email_index: None,
    };
    let created = users::insert(conn, row).await?;
    let profile = profile::Model {
        id: Uuid::now_v7(),
        user_id: created.id,
        avatar_url: None,
        location: None,
        date_of_birth: None,
        bio: None,
        preferences: json!({}),
        created_at: now,
        updated_at: now,
    };
    profiles::insert(conn, profile).await?;
    Ok(created)
}

impl Core {
    /// Validates a sign-up (every broken rule reported at once), hashes the password and
    /// creates the user and the profile in one transaction. A taken email is caught by
    /// the unique index, never by a racy pre-check.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn register(&self, r: Registration, client: &ClientInfo) -> Result<user::Model, Error> {
        let mut errors = Vec::new();
        let email = Email::parse(&r.email).map_err(|e| errors.push(e)).ok();
        let full_name = bounded_text("full_name", r.full_name, 200, &mut errors);
        let phone = optional_phone(r.phone, &mut errors);
        if let Err(mut broken) =
            self.settings.password_policy.check("password", r.password.expose_secret(), email.as_ref())
        {
            errors.append(&mut broken);
        }
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        let hash = self.hasher.hash(&r.password).await?;
        let tx = self.store.begin().await?;
        let account = NewAccount {
            email,
            password_hash: hash,
            full_name,
            phone,
            role: Role::User,
            is_active: true,
            verified: self.settings.email_autoconfirm,
        };
        let created = insert_account(&tx, account).await?;
        record(&tx, client, AuditEvent::by_user("user.create", created.id)).await?;
        if !self.settings.email_autoconfirm {
            self.queue_verification(&tx, &created, Template::VerifyEmail).await?;
        }
        tx.commit().await?;
        self.mailer.wake.notify_one();
        Ok(created)
    }

    /// A live (not deleted) user by id.
    pub async fn user(&self, id: Uuid) -> Result<user::Model, Error> {
        users::by_id(self.store.reader(), id).await?.filter(|u| u.deleted_at.is_none()).ok_or(Error::UserNotFound)
    }

    /// Applies the caller's changes to their own account (read afresh). A new email
    /// needs an aal2 session when MFA is on.
    pub async fn update_own_account(
        &self,
        who: &crate::auth::Principal,
        patch: UserPatch,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let current = self.user(who.user.id).await?;
        let new_email = patch.email.as_deref().and_then(|raw| Email::parse(raw).ok());
        if new_email.is_some_and(|e| e.as_str() != current.email) {
            self.require_aal2_if_mfa(who)?;
        }
        self.update_user(&current, patch, client).await
    }

    /// Applies a user's changes to their own account.
    #[tracing::instrument(skip_all, err(level = "info"), fields(user_id = %current.id))]
    pub async fn update_user(
        &self,
        current: &user::Model,
        patch: UserPatch,
        client: &ClientInfo,
    ) -> Result<user::Model, Error> {
        let mut errors = Vec::new();
        let mut row = current.clone().into_active_model();
        let mut changed = Vec::new();
        if let Some(name) = patch.full_name {
            row.full_name = Set(bounded_text("full_name", name, 200, &mut errors));
            changed.push("full_name");
        }
        // A new email is not applied here: it stays pending until confirmed (SPEC §5.3).
        let mut new_email = None;
        if let Some(raw) = patch.email {
            match Email::parse(&raw) {
                Ok(email) if email.as_str() != current.email => new_email = Some(email),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        if let Some(phone) = patch.phone {
            let phone = optional_phone(phone, &mut errors).map(|p| p.as_str().to_owned());
            if phone != current.phone {
                row.phone = Set(phone);
                row.phone_verified_at = Set(None);
                changed.push("phone");
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let mut updated = current.clone();
        if !changed.is_empty() {
            row.updated_at = Set(now());
            let tx = self.store.begin().await?;
            updated = users::save(&tx, row).await?;
            let ev = AuditEvent::by_user("user.update", current.id).detail(json!({ "fields": changed }));
            record(&tx, client, ev).await?;
            tx.commit().await?;
        }
        if let Some(email) = new_email {
            updated = self.request_email_change(&updated, &email, client).await?;
        }
        Ok(updated)
    }

    /// A user's profile (created with the user).
    pub async fn profile(&self, user: &user::Model) -> Result<profile::Model, Error> {
        profiles::by_user(self.store.reader(), user.id)
            .await?
            .ok_or_else(|| Error::Internal(format!("user {} has no profile", user.id)))
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
        let mut row = existing.clone().into_active_model();
        let mut user_row = current.clone().into_active_model();
        if let Some(name) = patch.name {
            user_row.full_name = Set(bounded_text("name", name, 200, &mut errors));
        }
        if let Some(url) = patch.avatar_url {
            let url = bounded_text("avatar_url", url, 2048, &mut errors);
            if let Some(u) = &url {
                let lower = u.to_ascii_lowercase();
                let host = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or_default();
                if host.is_empty() || host.starts_with('/') || u.contains(char::is_whitespace) {
                    errors.push(FieldError::new("avatar_url", "invalid_url", "Enter an http(s) URL."));
                }
            }
            row.avatar_url = Set(url);
        }
        if let Some(location) = patch.location {
            row.location = Set(bounded_text("location", location, 200, &mut errors));
        }
        if let Some(bio) = patch.bio {
            row.bio = Set(bounded_text("bio", bio, 5000, &mut errors));
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
            row.date_of_birth = Set(parsed);
        }
        if let Some(prefs) = patch.preferences {
            let prefs = prefs.unwrap_or_else(|| json!({}));
            if !prefs.is_object() {
                errors.push(FieldError::new("preferences", "not_an_object", "Preferences must be a JSON object."));
            } else if prefs.to_string().len() > 16 * 1024 {
                errors.push(FieldError::new("preferences", "too_large", "Preferences must be at most 16 KiB."));
            }
            row.preferences = Set(prefs);
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let now = now();
        row.updated_at = Set(now);
        let tx = self.store.begin().await?;
        let profile = profiles::save(&tx, row).await?;
        let user = if user_row.is_changed() {
            user_row.updated_at = Set(now);
            users::save(&tx, user_row).await?
        } else {
            current.clone()
        };
        record(&tx, client, AuditEvent::by_user("user.update", current.id).detail(json!({ "fields": ["profile"] })))
            .await?;
        tx.commit().await?;
        Ok(UserProfile { user, profile })
    }
}
