//! One user as a source gives it, before tessera's rules are applied, and what the
//! sources share in reading one: timestamps, booleans, provider names, JSON cells.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// A user read from a source (no `Debug`: it holds a password hash).
#[derive(Clone, Default)]
pub struct Record {
    /// The record's position in the source, from 1.
    pub row: u64,
    /// The user's id in the source (a UUID is kept as tessera's id).
    pub source_id: Option<String>,
    pub email: Option<String>,
    /// The stored hash in one of the forms the hasher verifies (`None`: no password).
    pub password_hash: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub phone_verified_at: Option<DateTime<Utc>>,
    pub full_name: Option<String>,
    pub avatar_url: Option<String>,
    /// `admin` or `user` (`None`: `user`).
    pub role: Option<String>,
    pub is_active: bool,
    /// Deleted in the source: skipped.
    pub deleted: bool,
    /// Why the source's row is not a user to bring (an anonymous user, a service
    /// account): skipped with this reason.
    pub skip: Option<Reason>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub user_metadata: Map<String, Value>,
    pub app_metadata: Map<String, Value>,
    pub identities: Vec<ImportedIdentity>,
    pub factors: Vec<ImportedTotp>,
    /// What of the row was left behind (a factor with parameters tessera does not use).
    pub warnings: Vec<String>,
}

impl Record {
    /// A record at `row` that is active until the source says otherwise.
    pub fn at(row: u64) -> Record {
        Record { row, is_active: true, ..Record::default() }
    }

    /// The source's id as tessera's, when it is a UUID.
    pub fn uuid(&self) -> Option<Uuid> {
        self.source_id.as_deref().and_then(|s| Uuid::parse_str(s).ok())
    }

    /// This record refused for `reason`.
    pub fn refused(&self, reason: Reason, detail: impl Into<String>) -> Refused {
        Refused {
            row: self.row,
            source_id: self.source_id.clone(),
            email: self.email.clone(),
            reason,
            detail: detail.into(),
        }
    }
}

/// An account at another provider the user signs in with.
#[derive(Debug, Clone)]
pub struct ImportedIdentity {
    pub id: Option<Uuid>,
    /// tessera's provider name (`google`, `github`, …).
    pub provider: String,
    pub provider_id: String,
    pub email: Option<String>,
    pub data: Value,
    pub created_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// A TOTP factor (SHA-1, 6 digits, 30 s, as tessera's); no `Debug`: it holds the secret.
#[derive(Clone)]
pub struct ImportedTotp {
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub secret: Vec<u8>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Why a row was refused or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The address is not one (or there is none, and nothing else to sign in with).
    InvalidEmail,
    /// The password hash is in a form tessera cannot verify.
    UnknownHashFormat,
    /// An earlier row of the source has the same id or address.
    Duplicate,
    /// The row cannot be read (a broken CSV line, a non-object, a bad value).
    Malformed,
    /// `--on-conflict update`: the row's id is one user's and its address another's.
    AddressTaken,
    /// The user is already in tessera (`--on-conflict skip`).
    Exists,
    /// The user was deleted in the source.
    DeletedInSource,
    /// An anonymous user in the source: nothing to sign in with again.
    Anonymous,
    /// A service account of the source (Keycloak's), not a person.
    ServiceAccount,
}

impl Reason {
    /// The reason's name in reports (`invalid_email`, …).
    pub fn code(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// A row that is not imported, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    pub row: u64,
    pub source_id: Option<String>,
    pub email: Option<String>,
    pub reason: Reason,
    pub detail: String,
}

/// What a source yields per row.
pub type Item = Result<Record, Refused>;

/// A row that cannot be read at all.
pub fn malformed(row: u64, detail: impl Into<String>) -> Refused {
    Refused { row, source_id: None, email: None, reason: Reason::Malformed, detail: detail.into() }
}

const NULL: Value = Value::Null;

/// A row's field (null when absent).
pub fn field<'a>(m: &'a Map<String, Value>, key: &str) -> &'a Value {
    m.get(key).unwrap_or(&NULL)
}

/// A timestamp as sources write them: RFC 3339, PostgreSQL's text form
/// (`2024-03-01 10:00:00.123456+00`), or milliseconds since the epoch.
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => n.as_i64().and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            if s.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse::<i64>().ok().and_then(|ms| Utc.timestamp_millis_opt(ms).single());
            }
            DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc()))
        }
        _ => None,
    }
}

/// A boolean as sources write it (`true`, `t`, `1`, `yes`; JSON booleans).
pub fn boolean(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "t" | "1" | "yes" | "y"),
        _ => false,
    }
}

/// A string field; empty strings and nulls are `None`.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON object field, also when a CSV cell holds it as text; anything else is empty.
pub fn object(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// tessera's name for a provider as another system names it.
pub fn provider_name(raw: &str) -> String {
    match raw.trim().to_ascii_lowercase().as_str() {
        "google.com" | "google-oauth2" | "google" => "google".to_owned(),
        "github.com" | "github" => "github".to_owned(),
        "gitlab.com" | "gitlab" => "gitlab".to_owned(),
        "microsoft.com" | "windowslive" | "waad" | "azure" | "microsoft" => "azure".to_owned(),
        "apple.com" | "apple" => "apple".to_owned(),
        "facebook.com" | "facebook" => "facebook".to_owned(),
        "twitter.com" | "twitter" => "twitter".to_owned(),
        other => other.to_owned(),
    }
}

/// A phone number as sources store it, in E.164 (Supabase keeps it without the `+`).
pub fn phone(raw: Option<String>) -> Option<String> {
    let raw = raw?;
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(if raw.starts_with('+') { raw.to_owned() } else { format!("+{raw}") })
}
