//! The audit log (SPEC §5.9): one row per security event, written with the change it
//! records. Details never hold secrets. With `AUDIT_LOG_DIR`, each event is also appended
//! as one JSON line to a file per UTC day.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tessera_domain::Error;
use tessera_store::Db;
use uuid::Uuid;

use crate::caller::ClientInfo;
use tessera_store::entity::audit_log;

/// One event to record.
pub struct AuditEvent {
    pub event: &'static str,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub detail: Value,
}

impl AuditEvent {
    /// An event about a user, done by that user.
    pub fn by_user(event: &'static str, user_id: Uuid) -> Self {
        Self { event, user_id: Some(user_id), actor_id: Some(user_id), detail: Value::Object(Default::default()) }
    }

    /// Adds a JSON detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Appends an event through `conn` (a transaction, when it records a change), and to
/// the day's audit file when the caller runs inside [`with_audit_file`]. The file gets
/// the row as stored: with `PII_ENCRYPTION_KEY`, its addresses sealed as in the database.
pub async fn record(conn: &impl Db, client: &ClientInfo, ev: AuditEvent) -> Result<(), Error> {
    let row = tessera_store::query::audit::insert(conn, audit_row(client, ev)).await?;
    // Written once the row is in: a change that fails to commit after this (rare: the
    // audit row is the last statement before commit) leaves a line without a row.
    append_to_file(&row);
    Ok(())
}

/// The row an event becomes, stamped now.
pub fn audit_row(client: &ClientInfo, ev: AuditEvent) -> audit_log::Model {
    audit_log::Model {
        id: Uuid::now_v7(),
        created_at: crate::caller::now(),
        event: ev.event.to_owned(),
        user_id: ev.user_id,
        actor_id: ev.actor_id,
        ip: client.ip.clone(),
        user_agent: client.user_agent.as_ref().map(|ua| truncate(ua, 512)),
        request_id: client.request_id.clone(),
        detail: ev.detail,
        email_index: None,
    }
}

/// Appends a row just written to the day's audit file, when the caller runs inside
/// [`with_audit_file`].
pub fn append_to_file(row: &audit_log::Model) {
    if let Some(file) = AUDIT_FILE.try_with(|f| f.clone()).ok().flatten() {
        let (day, text) = json_line(row);
        file.append(&day, &text);
    }
}

/// The JSON form of an event, as the audit API and the audit file show it.
pub fn event_json(row: &audit_log::Model) -> Value {
    json!({
        "id": row.id,
        "created_at": row.created_at,
        "event": row.event,
        "user_id": row.user_id,
        "actor_id": row.actor_id,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "detail": row.detail,
    })
}

fn json_line(row: &audit_log::Model) -> (String, String) {
    (row.created_at.format("%Y-%m-%d").to_string(), event_json(row).to_string())
}

tokio::task_local! {
    /// The audit file of the node serving the current request, if `AUDIT_LOG_DIR` is set.
    static AUDIT_FILE: Option<Arc<AuditFile>>;
}

/// Runs `fut` so that the events it records also go to `file`.
pub async fn with_audit_file<F: Future>(file: Option<Arc<AuditFile>>, fut: F) -> F::Output {
    AUDIT_FILE.scope(file, fut).await
}

/// Appends audit events as JSON lines to `audit-YYYY-MM-DD.jsonl` (UTC) in a directory,
/// opening the next day's file when the day changes.
pub struct AuditFile {
    dir: PathBuf,
    current: Mutex<Option<(String, std::fs::File)>>,
}

impl AuditFile {
    /// Creates the directory if needed and checks that it is writable.
    pub fn open(dir: PathBuf) -> Result<AuditFile, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("AUDIT_LOG_DIR {}: {e}", dir.display()))?;
        let file = AuditFile { dir, current: Mutex::new(None) };
        let today = crate::caller::now().format("%Y-%m-%d").to_string();
        file.open_day(&today).map_err(|e| format!("AUDIT_LOG_DIR {}: {e}", file.dir.display()))?;
        Ok(file)
    }

    /// Whether [`AuditFile::open`] could use `dir`, creating nothing: an existing
    /// directory, or a path whose nearest existing ancestor is one.
    pub fn check(dir: &std::path::Path) -> Result<(), String> {
        match dir.ancestors().find(|d| d.as_os_str().is_empty() || d.exists()) {
            Some(d) if d.as_os_str().is_empty() || d.is_dir() => Ok(()),
            _ => Err(format!("AUDIT_LOG_DIR {}: not a directory", dir.display())),
        }
    }

    /// The file of a day.
    pub fn path_for(&self, day: &str) -> PathBuf {
        self.dir.join(format!("audit-{day}.jsonl"))
    }

    fn open_day(&self, day: &str) -> std::io::Result<std::fs::File> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
        options.open(self.path_for(day))
    }

    fn append(&self, day: &str, line: &str) {
        let Ok(mut current) = self.current.lock() else {
            tracing::error!("audit file lock poisoned; event kept in the database only");
            return;
        };
        if current.as_ref().map(|(d, _)| d.as_str()) != Some(day) {
            match self.open_day(day) {
                Ok(f) => *current = Some((day.to_owned(), f)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the audit file; event kept in the database only");
                    return;
                }
            }
        }
        if let Some((_, f)) = current.as_mut() {
            // One write per line, so concurrent writers (other nodes) never interleave.
            if let Err(e) = f.write_all(format!("{line}\n").as_bytes()) {
                tracing::error!(error = %e, "cannot write the audit file; event kept in the database only");
            }
        }
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
