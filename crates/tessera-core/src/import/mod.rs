//! `tessera import` (SPEC §5.15): users of another system brought over with their ids
//! (UUIDs), creation times, confirmed addresses, roles, metadata, identities, TOTP
//! factors and password hashes, which are verified as they are and become Argon2id at the
//! next sign-in.
//!
//! A source ([`Source`]) yields [`Record`]s; each batch is checked against tessera's rules
//! and against the users already here (by id, then address), and written in one
//! transaction together with the position reached, so that a stopped run resumes after
//! the last batch written. Rows that cannot come are refused with a [`Reason`]; the
//! report lists them.

mod auth0;
mod files;
mod firebase;
mod keycloak;
pub mod record;
mod supabase;
mod tabular;

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_domain::{Email, Error, Phone, Role};
use tessera_store::entity::{identity, mfa_factor, profile, user};
use tessera_store::foreign::SupabaseSnapshot;
use tessera_store::query::{import as rows, mfa, pii, profiles, users};
use uuid::Uuid;

use self::files::Rows;
use self::record::{Item, Reason, Record, Refused};
use crate::app::Core;
use crate::audit::{self, AuditEvent};
use crate::caller::{now, ClientInfo};
use crate::hasher::known_format;

/// The system users come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Supabase,
    Auth0,
    Firebase,
    Keycloak,
    Csv,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Supabase => "supabase",
            Source::Auth0 => "auth0",
            Source::Firebase => "firebase",
            Source::Keycloak => "keycloak",
            Source::Csv => "csv",
        }
    }
}

/// What to do with a user who is already here (same id, or else same address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Leave them as they are.
    Skip,
    /// Bring their data up to the source's.
    Update,
}

/// What to import, and how.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub source: Source,
    /// The export (not needed with `database_url`).
    pub file: Option<PathBuf>,
    /// Supabase: read the project's database instead of a file.
    pub database_url: Option<String>,
    /// Supabase: `auth.identities` and `auth.mfa_factors` exports.
    pub identities: Option<PathBuf>,
    pub factors: Option<PathBuf>,
    /// Auth0: the password-hash export.
    pub hashes: Option<PathBuf>,
    /// Firebase: the project's hash parameters.
    pub hash_config: Option<PathBuf>,
    pub on_conflict: OnConflict,
    /// Check and report; write nothing.
    pub dry_run: bool,
    /// Users per transaction.
    pub batch: usize,
}

/// How far a run is.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub done: u64,
    pub total: Option<u64>,
}

/// A row that was not imported as it stands.
#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    /// The row's position in the source, from 1.
    pub row: u64,
    /// The user's id in the source.
    pub id: Option<String>,
    pub email: Option<String>,
    /// `refused`, `skipped`, or `imported` / `updated` with warnings.
    pub outcome: &'static str,
    pub reason: Option<Reason>,
    pub detail: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub source: &'static str,
    pub dry_run: bool,
    pub on_conflict: &'static str,
    /// Rows read this run (after the resumed position).
    pub read: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub refused: u64,
    /// The row a stopped earlier run had reached; rows up to it were not written again.
    pub resumed_after: Option<u64>,
    pub seconds: f64,
    /// Every refused and skipped row, and imported rows with warnings.
    pub rows: Vec<RowReport>,
}

impl ImportReport {
    fn empty(plan: &ImportPlan) -> ImportReport {
        ImportReport {
            source: plan.source.name(),
            dry_run: plan.dry_run,
            on_conflict: if plan.on_conflict == OnConflict::Update { "update" } else { "skip" },
            read: 0,
            imported: 0,
            updated: 0,
            unchanged: 0,
            skipped: 0,
            refused: 0,
            resumed_after: None,
            seconds: 0.0,
            rows: Vec::new(),
        }
    }
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would import" } else { "imported" };
        write!(
            f,
            "{}: read {}, {verb} {}, updated {}, unchanged {}, skipped {}, refused {}",
            self.source, self.read, self.imported, self.updated, self.unchanged, self.skipped, self.refused
        )
    }
}

/// Makes a record of a row's fields.
type Read = Box<dyn FnMut(u64, serde_json::Map<String, Value>) -> Item + Send>;

/// A stream of records.
enum Stream {
    Rows { rows: Rows, read: Read },
    Database { snapshot: SupabaseSnapshot, after: Option<Uuid>, row: u64, done: bool },
}

impl Stream {
    async fn next_batch(&mut self, n: usize) -> Result<Vec<Item>, Error> {
        match self {
            Stream::Rows { rows, read } => {
                Ok(rows.by_ref().take(n).map(|row| row.and_then(|(at, fields)| read(at, fields))).collect())
            }
            Stream::Database { snapshot, after, row, done } => {
                if *done {
                    return Ok(Vec::new());
                }
                let limit = i64::try_from(n).unwrap_or(1000);
                let found = snapshot.users_after(*after, limit).await.map_err(Error::Unavailable)?;
                *done = found.len() < n;
                let ids: Vec<Uuid> =
                    found.iter().filter_map(|u| u.get("id").and_then(Value::as_str)?.parse().ok()).collect();
                *after = ids.last().copied().or(*after);
                let mut extras = supabase::Extras::default();
                for i in snapshot.identities_of(&ids).await.map_err(Error::Unavailable)? {
                    if let Value::Object(m) = i {
                        extras.add_identity(&m);
                    }
                }
                for f in snapshot.factors_of(&ids).await.map_err(Error::Unavailable)? {
                    if let Value::Object(m) = f {
                        extras.add_factor(&m);
                    }
                }
                Ok(found
                    .into_iter()
                    .map(|u| {
                        *row += 1;
                        match u {
                            Value::Object(m) => {
                                let mut r = supabase::user(*row, &m);
                                extras.attach(&mut r);
                                Ok(r)
                            }
                            _ => Err(record::malformed(*row, "not an object")),
                        }
                    })
                    .collect())
            }
        }
    }
}

fn input(e: String) -> Error {
    Error::field("file", "invalid_import", e)
}

/// The rows of every file of the plan, in `(source, bytes…)` form, hashed: the name of
/// the run's position in `job_runs`, so that a run resumes only over the same input.
fn job_name(plan: &ImportPlan) -> Result<String, Error> {
    let mut h = Sha256::new();
    h.update(plan.source.name().as_bytes());
    h.update(if plan.on_conflict == OnConflict::Update { b"u" } else { b"s" });
    for path in [&plan.file, &plan.identities, &plan.factors, &plan.hashes, &plan.hash_config].into_iter().flatten() {
        let mut file = std::fs::File::open(path).map_err(|e| input(format!("cannot open {}: {e}", path.display())))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(|e| input(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    if let Some(url) = &plan.database_url {
        // The address of the database, not its password.
        let place = url::Url::parse(url)
            .map(|u| format!("{}:{:?}{}", u.host_str().unwrap_or_default(), u.port(), u.path()))
            .unwrap_or_default();
        h.update(place.as_bytes());
    }
    Ok(format!("import:{}", &hex::encode(h.finalize())[..40]))
}

/// Opens the plan's source: its records and, when known, how many there are.
async fn open(plan: &ImportPlan) -> Result<(Stream, Option<u64>), Error> {
    let file = || plan.file.clone().ok_or_else(|| input("name the export file".to_owned()));
    let rows_of = |rows: Vec<files::Row>| -> (Rows, Option<u64>) {
        let n = rows.len() as u64;
        (Box::new(rows.into_iter()), Some(n))
    };
    let (rows, total, read): (Rows, Option<u64>, Read) = match plan.source {
        Source::Supabase => {
            if let Some(url) = &plan.database_url {
                if plan.file.is_some() {
                    return Err(input("give either an export file or --database-url, not both".to_owned()));
                }
                let mut snapshot = SupabaseSnapshot::open(url).await.map_err(input)?;
                let total = snapshot.count().await.map_err(input)?;
                return Ok((Stream::Database { snapshot, after: None, row: 0, done: false }, Some(total)));
            }
            let mut extras = supabase::Extras::default();
            for (path, identities) in [(&plan.identities, true), (&plan.factors, false)] {
                let Some(path) = path else { continue };
                for row in files::table(path).map_err(input)?.0 {
                    let (_, m) = row.map_err(|r| input(format!("{}: row {}: {}", path.display(), r.row, r.detail)))?;
                    if identities {
                        extras.add_identity(&m);
                    } else {
                        extras.add_factor(&m);
                    }
                }
            }
            let (rows, total) = files::table(&file()?).map_err(input)?;
            (
                rows,
                Some(total),
                Box::new(move |row, m| {
                    let mut r = supabase::user(row, &m);
                    extras.attach(&mut r);
                    Ok(r)
                }),
            )
        }
        Source::Auth0 => {
            let mut hashes = auth0::Hashes::default();
            if let Some(path) = &plan.hashes {
                for row in files::ndjson(path).map_err(input)? {
                    let (_, m) = row.map_err(|r| input(format!("{}: line {}: {}", path.display(), r.row, r.detail)))?;
                    hashes.add(&m);
                }
            }
            let path = file()?;
            let (rows, total) = if files::first_byte(&path).map_err(input)? == Some(b'[') {
                rows_of(files::json_array(&path, None).map_err(input)?)
            } else {
                (files::ndjson(&path).map_err(input)?, None)
            };
            (rows, total, Box::new(move |row, m| Ok(auth0::user(row, &m, &hashes))))
        }
        Source::Firebase => {
            let config = match &plan.hash_config {
                Some(path) => Some(
                    firebase::HashConfig::parse(
                        &std::fs::read_to_string(path)
                            .map_err(|e| input(format!("cannot read {}: {e}", path.display())))?,
                    )
                    .map_err(|e| input(format!("{}: {e}", path.display())))?,
                ),
                None => None,
            };
            let (rows, total) = rows_of(files::json_array(&file()?, Some("users")).map_err(input)?);
            (rows, total, Box::new(move |row, m| firebase::user(row, &m, config.as_ref())))
        }
        Source::Keycloak => {
            let (rows, total) = rows_of(files::json_array(&file()?, Some("users")).map_err(input)?);
            (rows, total, Box::new(|row, m| keycloak::user(row, &m)))
        }
        Source::Csv => {
            let path = file()?;
            let total = files::csv_count(&path).map_err(input)?;
            (files::csv(&path).map_err(input)?, Some(total), Box::new(|row, m| Ok(tabular::user(row, &m))))
        }
    };
    Ok((Stream::Rows { rows, read }, total))
}

/// The shortest TOTP secret a factor may have, in bytes.
const MIN_TOTP_SECRET: usize = 16;

/// A row that passed tessera's rules.
struct Checked {
    record: Record,
    id: Option<Uuid>,
    email: String,
    /// The role the source names (`None`: it names none tessera has).
    role: Option<Role>,
    phone: Option<String>,
}

/// The addresses and ids seen so far in this run (as 128-bit digests: a million rows
/// take 16 MB, not the rows' text).
#[derive(Default)]
struct Seen(HashSet<u128>);

impl Seen {
    /// Whether `key` was seen before; records it.
    fn again(&mut self, kind: &str, key: &str) -> bool {
        let digest = Sha256::new().chain_update(kind).chain_update([0]).chain_update(key).finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        !self.0.insert(u128::from_le_bytes(first))
    }
}

/// Applies tessera's rules to a record.
fn check(mut r: Record, seen: &mut Seen) -> Result<Checked, Refused> {
    if r.deleted {
        return Err(r.refused(Reason::DeletedInSource, "deleted in the source"));
    }
    if let Some(reason) = r.skip {
        let why = match reason {
            Reason::Anonymous => "an anonymous user: nothing to sign in with again",
            Reason::ServiceAccount => "a service account, not a person",
            _ => "not a user to bring",
        };
        return Err(r.refused(reason, why));
    }
    let email = match r.email.as_deref() {
        Some(raw) => match Email::parse(raw) {
            Ok(e) if !Email::is_placeholder(e.as_str()) => e.as_str().to_owned(),
            _ => return Err(r.refused(Reason::InvalidEmail, "not an email address")),
        },
        // No address: a user who signs in through a provider keeps a placeholder.
        // (Derived from the source's id, so that a second run finds the same user.)
        None if !r.identities.is_empty() => {
            let unique = match &r.source_id {
                Some(id) => format!("imported-{}", &hex::encode(Sha256::digest(id.as_bytes()))[..24]),
                None => Uuid::now_v7().simple().to_string(),
            };
            Email::placeholder(&unique).as_str().to_owned()
        }
        None if r.phone.is_some() => {
            return Err(r.refused(Reason::InvalidEmail, "no address: phone sign-in is not in tessera yet"));
        }
        None => return Err(r.refused(Reason::InvalidEmail, "no address and no other way to sign in")),
    };
    if r.password_hash.as_deref().is_some_and(|h| !known_format(h)) {
        return Err(r.refused(
            Reason::UnknownHashFormat,
            "the password hash is not bcrypt, Argon2, PBKDF2 or Firebase scrypt (the user can reset the password)",
        ));
    }
    // A role tessera does not have makes a user, and is kept in `app_metadata.imported_role`.
    let role = match r.role.clone() {
        None => None,
        Some(name) => Role::parse(&name.to_ascii_lowercase()).or_else(|| {
            r.warnings.push(format!("the role {name} is not tessera's (user, admin): imported as user"));
            r.app_metadata.insert("imported_role".to_owned(), Value::String(name));
            None
        }),
    };
    // RFC 4226 asks for 128-bit secrets, and the TOTP checker refuses shorter ones.
    let short = r.factors.iter().filter(|f| f.secret.len() < MIN_TOTP_SECRET).count();
    if short > 0 {
        r.factors.retain(|f| f.secret.len() >= MIN_TOTP_SECRET);
        r.warnings.push(format!("{short} TOTP factor(s) with a secret under 128 bits are left out (enrol again)"));
    }
    let phone = match r.phone.take() {
        Some(raw) => match Phone::parse(&raw) {
            Ok(p) => Some(p.as_str().to_owned()),
            Err(_) => {
                r.warnings.push("the phone number is not E.164; it is left out".to_owned());
                r.phone_verified_at = None;
                None
            }
        },
        None => None,
    };
    let id = r.uuid();
    if id.is_some_and(|id| seen.again("id", &id.to_string())) || seen.again("email", &email) {
        return Err(r.refused(Reason::Duplicate, "an earlier row has the same id or address"));
    }
    Ok(Checked { record: r, id, email, role, phone })
}

impl Core {
    /// Imports the users of `plan`'s source; `progress` is called after each batch.
    pub async fn import(
        &self,
        plan: &ImportPlan,
        mut progress: impl FnMut(ImportProgress),
    ) -> Result<ImportReport, Error> {
        let started = std::time::Instant::now();
        let job = job_name(plan)?;
        let (mut stream, total) = open(plan).await?;
        let resume = if plan.dry_run { None } else { pii::load_cursor(self.store.reader(), &job).await? };
        let resume_row: u64 = resume.as_deref().and_then(|c| c.split(':').next()?.parse().ok()).unwrap_or(0);
        if let (Stream::Database { after, row, .. }, Some(cursor)) = (&mut stream, resume.as_deref()) {
            *after = cursor.split_once(':').and_then(|(_, id)| id.parse().ok());
            *row = resume_row;
        }
        let mut report = ImportReport::empty(plan);
        report.resumed_after = (resume_row > 0).then_some(resume_row);
        let mut seen = Seen::default();
        let batch = plan.batch.clamp(1, 5000);
        let mut done = resume_row;
        loop {
            let items = stream.next_batch(batch).await?;
            if items.is_empty() {
                break;
            }
            let mut checked = Vec::with_capacity(items.len());
            let mut last_row = done;
            for item in items {
                let row = match &item {
                    Ok(r) => r.row,
                    Err(r) => r.row,
                };
                last_row = last_row.max(row);
                let outcome = item.and_then(|r| check(r, &mut seen));
                // Rows an earlier run wrote are checked again only to know their
                // addresses and ids (for duplicates), and not counted.
                if row <= resume_row {
                    continue;
                }
                report.read += 1;
                match outcome {
                    Ok(c) => checked.push(c),
                    Err(refused) => note_refused(&mut report, refused),
                }
            }
            let cursor = match &stream {
                Stream::Database { after: Some(id), .. } => format!("{last_row}:{id}"),
                _ => last_row.to_string(),
            };
            if !checked.is_empty() {
                self.write_batch(plan, &job, &cursor, checked, &mut report).await?;
            } else if !plan.dry_run && last_row > resume_row {
                pii::save_cursor(self.store.writer(), &job, Some(&cursor)).await?;
            }
            done = last_row;
            progress(ImportProgress { done, total });
        }
        if let Stream::Database { snapshot, .. } = stream {
            snapshot.close().await;
        }
        if !plan.dry_run {
            pii::save_cursor(self.store.writer(), &job, None).await?;
            if report.imported + report.updated > 0 {
                let detail = serde_json::json!({
                    "source": report.source,
                    "imported": report.imported,
                    "updated": report.updated,
                    "skipped": report.skipped,
                    "refused": report.refused,
                });
                let event = AuditEvent { event: "users.import", user_id: None, actor_id: None, detail };
                audit::record(self.store.writer(), &ClientInfo::default(), event).await?;
            }
        }
        report.rows.sort_by_key(|r| r.row);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Writes one batch in one transaction, with the position reached. A batch that an
    /// address taken meanwhile (a sign-up on a serving node) refuses is matched again
    /// and retried.
    async fn write_batch(
        &self,
        plan: &ImportPlan,
        job: &str,
        cursor: &str,
        checked: Vec<Checked>,
        report: &mut ImportReport,
    ) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A failed attempt's counts and rows are dropped with it.
            let mut tally = ImportReport::empty(plan);
            let written = self.try_batch(plan, job, cursor, &checked, &mut tally).await;
            match written {
                Ok(()) => {
                    report.rows.append(&mut tally.rows);
                    report.imported += tally.imported;
                    report.updated += tally.updated;
                    report.unchanged += tally.unchanged;
                    report.skipped += tally.skipped;
                    report.refused += tally.refused;
                    return Ok(());
                }
                Err(Error::EmailTaken | Error::IdentityTaken) if attempt < 4 => continue,
                Err(e @ (Error::EmailTaken | Error::IdentityTaken)) => {
                    let rows = (checked.first().map(|c| c.record.row), checked.last().map(|c| c.record.row));
                    return Err(Error::Internal(format!(
                        "rows {}–{}: {e} on every attempt (a conflict this import cannot resolve); the rows \
                         before are written, and a new run resumes there",
                        rows.0.unwrap_or_default(),
                        rows.1.unwrap_or_default()
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_batch(
        &self,
        plan: &ImportPlan,
        job: &str,
        cursor: &str,
        checked: &[Checked],
        report: &mut ImportReport,
    ) -> Result<(), Error> {
        let ids: Vec<Uuid> = checked.iter().filter_map(|c| c.id).collect();
        let emails: Vec<String> = checked.iter().map(|c| c.email.clone()).collect();
        let existing = rows::matching(self.store.reader(), &ids, &emails).await?;
        let by_id: HashMap<Uuid, &user::Model> = existing.iter().map(|u| (u.id, u)).collect();
        let by_email: HashMap<&str, &user::Model> = existing.iter().map(|u| (u.email.as_str(), u)).collect();
        let keys: Vec<(String, String)> = checked
            .iter()
            .flat_map(|c| c.record.identities.iter().map(|i| (i.provider.clone(), i.provider_id.clone())))
            .collect();
        let owners: HashMap<(String, String), Uuid> =
            rows::identity_owners(self.store.reader(), &keys).await?.into_iter().map(|(p, s, u)| ((p, s), u)).collect();
        let at = now();
        let mut new = rows::NewUsers::default();
        let mut updates = Vec::new();
        for c in checked {
            let here = c.id.and_then(|id| by_id.get(&id)).or_else(|| by_email.get(c.email.as_str())).copied();
            let r = &c.record;
            let mut warnings = r.warnings.clone();
            match here {
                None => {
                    let user_id = c.id.unwrap_or_else(Uuid::now_v7);
                    let identities = imported_identities(c, user_id, &owners, &mut warnings, at);
                    let factors = self.imported_factors(c, user_id, at)?;
                    let created = r.created_at.unwrap_or(at);
                    new.users.push(user::Model {
                        id: user_id,
                        email: c.email.clone(),
                        password_hash: r.password_hash.clone().unwrap_or_default(),
                        full_name: r.full_name.clone(),
                        phone: c.phone.clone(),
                        email_verified_at: r.email_verified_at,
                        phone_verified_at: c.phone.as_ref().and(r.phone_verified_at),
                        is_active: r.is_active,
                        role: c.role.unwrap_or(Role::User).as_str().to_owned(),
                        token_version: 0,
                        last_login_at: r.last_sign_in_at,
                        created_at: created,
                        updated_at: r.updated_at.unwrap_or(created).max(created),
                        deleted_at: None,
                        new_email: None,
                        mfa_enabled: false,
                        email_index: None,
                        new_email_index: None,
                        is_anonymous: false,
                        has_identities: false,
                        phone_index: None,
                    });
                    new.profiles.push(profile::Model {
                        id: Uuid::now_v7(),
                        user_id,
                        avatar_url: r.avatar_url.clone(),
                        location: None,
                        date_of_birth: None,
                        bio: None,
                        preferences: serde_json::json!({}),
                        created_at: created,
                        updated_at: created,
                        user_metadata: Value::Object(r.user_metadata.clone()),
                        app_metadata: Value::Object(r.app_metadata.clone()),
                        invited_at: None,
                    });
                    new.identities.extend(identities);
                    new.factors.extend(factors);
                    report.imported += 1;
                    note_warnings(report, r, "imported", warnings);
                }
                Some(existing) if plan.on_conflict == OnConflict::Skip => {
                    let why =
                        if c.id == Some(existing.id) { "a user with this id is here" } else { "the address is here" };
                    note_refused(report, r.refused(Reason::Exists, why));
                }
                Some(existing) => {
                    if existing.email != c.email && by_email.get(c.email.as_str()).is_some_and(|o| o.id != existing.id)
                    {
                        note_refused(report, r.refused(Reason::AddressTaken, "the address belongs to another user"));
                        continue;
                    }
                    let identities = imported_identities(c, existing.id, &owners, &mut warnings, at);
                    let factors = self.imported_factors(c, existing.id, at)?;
                    updates.push((existing.clone(), c, identities, factors, warnings));
                }
            }
        }
        if plan.dry_run {
            // What the update would change, read outside any transaction.
            for (existing, c, _, _, _) in &updates {
                let profile = profiles::by_user(self.store.reader(), existing.id).await?;
                let (user, profile) = update_of(existing, profile.as_ref(), c, at);
                if user.is_some() || profile.is_some() {
                    report.updated += 1;
                } else {
                    report.unchanged += 1;
                }
            }
            return Ok(());
        }
        let tx = self.store.begin().await?;
        rows::insert(&tx, new).await?;
        for (existing, c, identities, factors, warnings) in updates {
            let changed = update_user(&tx, existing.id, c, at).await?;
            rows::add_identities(&tx, identities).await?;
            rows::add_factors(&tx, factors).await?;
            if changed {
                report.updated += 1;
            } else {
                report.unchanged += 1;
            }
            note_warnings(report, &c.record, "updated", warnings);
        }
        pii::save_cursor(&tx, job, Some(cursor)).await?;
        tx.commit().await
    }

    /// The record's TOTP factors, their secrets encrypted under `MFA_ENCRYPTION_KEY`.
    fn imported_factors(
        &self,
        c: &Checked,
        user_id: Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<mfa_factor::Model>, Error> {
        c.record
            .factors
            .iter()
            .map(|f| {
                Ok(mfa_factor::Model {
                    id: f.id.unwrap_or_else(Uuid::now_v7),
                    user_id,
                    name: f.name.clone().unwrap_or_else(|| "Authenticator".to_owned()),
                    secret: self.mfa_keys.encrypt(&f.secret)?,
                    status: mfa::VERIFIED.to_owned(),
                    last_used_step: None,
                    created_at: f.created_at.unwrap_or(at),
                    last_used_at: None,
                    factor_type: "totp".to_owned(),
                })
            })
            .collect()
    }
}

/// The record's identities that can be linked to `user_id` (one another user has is
/// left out, with a warning).
fn imported_identities(
    c: &Checked,
    user_id: Uuid,
    owners: &HashMap<(String, String), Uuid>,
    warnings: &mut Vec<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<identity::Model> {
    let mut out = Vec::new();
    for i in &c.record.identities {
        match owners.get(&(i.provider.clone(), i.provider_id.clone())) {
            Some(owner) if *owner != user_id => {
                warnings.push(format!("the {} identity belongs to another user here; it is left out", i.provider));
            }
            Some(_) => {}
            None => out.push(identity::Model {
                id: i.id.unwrap_or_else(Uuid::now_v7),
                user_id,
                provider: i.provider.clone(),
                provider_id: i.provider_id.clone(),
                email: i.email.as_deref().map(str::to_lowercase),
                data: i.data.to_string(),
                last_sign_in_at: i.last_sign_in_at,
                created_at: i.created_at.unwrap_or(at),
                updated_at: i.created_at.unwrap_or(at),
            }),
        }
    }
    out
}

/// What bringing `existing` up to the source's data changes: the user's columns and the
/// profile's metadata (`None`: nothing). The password hash is replaced only while the
/// user's own is not Argon2id (they have not signed in here since, nor set a password
/// here); a confirmed address stays confirmed, unless the address itself changes; the role
/// changes only when the source names one of tessera's.
fn update_of(
    existing: &user::Model,
    profile: Option<&profile::Model>,
    c: &Checked,
    at: chrono::DateTime<chrono::Utc>,
) -> (Option<users::UserChanges>, Option<profiles::ProfileChanges>) {
    let r = &c.record;
    let mut changes = users::UserChanges::default();
    if existing.email != c.email {
        changes.email = Some(c.email.clone());
        changes.email_verified_at = Some(r.email_verified_at);
    } else if existing.email_verified_at.is_none() && r.email_verified_at.is_some() {
        changes.email_verified_at = Some(r.email_verified_at);
    }
    if let Some(hash) = &r.password_hash {
        if *hash != existing.password_hash && !existing.password_hash.starts_with("$argon2id$") {
            changes.password_hash = Some(hash.clone());
        }
    }
    if r.full_name.is_some() && existing.full_name != r.full_name {
        changes.full_name = Some(r.full_name.clone());
    }
    if c.phone.is_some() && existing.phone != c.phone {
        changes.phone = Some(c.phone.clone());
        changes.phone_verified_at = Some(r.phone_verified_at);
    }
    if let Some(role) = c.role.filter(|role| existing.role != role.as_str()) {
        changes.role = Some(role.as_str().to_owned());
    }
    if existing.is_active != r.is_active {
        changes.is_active = Some(r.is_active);
    }
    let user = (!changes.is_empty()).then_some(users::UserChanges { updated_at: Some(at), ..changes });
    let user_metadata = Value::Object(r.user_metadata.clone());
    let app_metadata = Value::Object(r.app_metadata.clone());
    let profile = profile.filter(|p| p.user_metadata != user_metadata || p.app_metadata != app_metadata).map(|_| {
        profiles::ProfileChanges {
            user_metadata: Some(user_metadata),
            app_metadata: Some(app_metadata),
            updated_at: Some(at),
            ..profiles::ProfileChanges::default()
        }
    });
    (user, profile)
}

/// Brings user `id` up to the source's data, read again under the transaction's lock (a
/// sign-in that re-hashed the password meanwhile is seen); whether anything changed.
async fn update_user(
    tx: &tessera_store::Tx,
    id: Uuid,
    c: &Checked,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, Error> {
    let Some(existing) = users::by_id_for_update(tx, id).await? else { return Ok(false) };
    let profile = profiles::by_user(tx, id).await?;
    let (user, profile_changes) = update_of(&existing, profile.as_ref(), c, at);
    let changed = user.is_some() || profile_changes.is_some();
    if let Some(changes) = user {
        users::update(tx, &existing, changes).await?;
    }
    if let (Some(profile), Some(changes)) = (profile, profile_changes) {
        profiles::update(tx, &profile, changes).await?;
    }
    Ok(changed)
}

fn note_refused(report: &mut ImportReport, r: Refused) {
    let skipped =
        matches!(r.reason, Reason::Exists | Reason::DeletedInSource | Reason::Anonymous | Reason::ServiceAccount);
    if skipped {
        report.skipped += 1;
    } else {
        report.refused += 1;
    }
    report.rows.push(RowReport {
        row: r.row,
        id: r.source_id,
        email: r.email,
        outcome: if skipped { "skipped" } else { "refused" },
        reason: Some(r.reason),
        detail: r.detail,
    });
}

fn note_warnings(report: &mut ImportReport, r: &Record, outcome: &'static str, warnings: Vec<String>) {
    if warnings.is_empty() {
        return;
    }
    report.rows.push(RowReport {
        row: r.row,
        id: r.source_id.clone(),
        email: r.email.clone(),
        outcome,
        reason: None,
        detail: warnings.join("; "),
    });
}
