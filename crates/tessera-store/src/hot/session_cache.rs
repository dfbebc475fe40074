//! Sessions and their users as the session check last read them, kept in memory on a
//! SQLite file.
//!
//! Every authenticated request reads its session and user. On SQLite that read was most
//! of such a request's own cost: the read transaction's locks (two `fcntl`s and the
//! WAL-index mutex every reading thread of the process shares), four B-tree descents and
//! the decoding of two dozen columns. This cache answers it from memory, and stays exact
//! for every write this process makes:
//!
//! - each pool connection that can write reports the `sessions` and `users` rows it
//!   changes (SQLite's update hook, by rowid); the entries read from those rows are
//!   dropped when the commit begins (the commit hook) and again once SQLite has made it
//!   (the WAL hook, which runs after the commit), and nothing is kept in between: a read
//!   between the two would still see the old row;
//! - the batch writer drops the sessions it rotated or revoked, and the entries of the
//!   users it signed in, after its commit;
//! - a read keeps its rows only if nothing was dropped since it began
//!   ([`SessionCache::epoch`]): a read that raced a commit may hold the old row, and the
//!   commit's drop may have come before the read's keep.
//!
//! Other tessera servers on the same file (and `tessera migrate` or `admin` runs) write
//! without telling this one. Each of them announces itself in a lock file beside the
//! database ([`Neighbours`]): while another is there the cache answers nothing, and
//! when one has come since the cache last looked it drops everything it holds. A write
//! by a program that does not announce itself (the `sqlite3` shell) is not seen; an
//! entry is read again after `ttl`, which bounds how long such a write goes unnoticed.
//! The same bound covers what SQLite changes without calling the update hook, none of
//! which tessera does: `VACUUM` (it may renumber these tables' rowids), rows deleted by
//! `REPLACE` conflicts, and `DELETE` without `WHERE` on a table no foreign key names.
//! Deleting the lock file while servers run, or reaching the database through a hard
//! link or a second mount, hides them from each other the same way.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::fs::File;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::ffi;
use sqlx::sqlite::LockedSqliteHandle;
use uuid::Uuid;

use crate::entity::{session, user};

/// At most this many sessions are kept (about 1 KiB each); a full cache first lets go of
/// expired entries, then stops keeping new ones until some expire.
const MAX_ENTRIES: usize = 4096;

/// The rowids of the two rows one entry was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowIds {
    pub session: i64,
    pub user: i64,
}

/// See the module documentation.
pub(crate) struct SessionCache {
    ttl: Duration,
    /// Counts the drops: a read keeps its rows only if this has not moved since it began.
    /// Changed only with `inner` locked.
    epoch: AtomicU64,
    /// Set when a watched connection cannot report its commits (not in WAL mode): nothing
    /// is kept from then on.
    off: AtomicBool,
    inner: Mutex<Inner>,
    neighbours: Arc<Neighbours>,
    /// Commits of watched connections that are under way: begun (SQLite's commit hook) but
    /// not yet seen done (the WAL hook). Nothing is kept meanwhile.
    committing: AtomicU64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Uuid, Entry>,
    by_session_row: HashMap<i64, Uuid>,
    by_user_row: HashMap<i64, Vec<Uuid>>,
    /// The neighbours' arrival count when last looked at.
    arrivals: u64,
    /// Whether another server or command was on the file when last looked.
    crowded: bool,
}

struct Entry {
    session: session::Model,
    user: user::Model,
    rows: RowIds,
    read: Instant,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl SessionCache {
    /// A cache for the SQLite file this process announced itself on (`neighbours`), whose
    /// entries are read again after `ttl`.
    pub(crate) fn new(neighbours: Arc<Neighbours>, ttl: Duration) -> Option<SessionCache> {
        // Whoever was on the file before us is there already: that is no arrival to see.
        let inner = Inner { arrivals: neighbours.arrivals().ok()?, crowded: !neighbours.alone(), ..Inner::default() };
        Some(SessionCache {
            ttl,
            epoch: AtomicU64::new(0),
            off: AtomicBool::new(false),
            inner: Mutex::new(inner),
            neighbours,
            committing: AtomicU64::new(0),
        })
    }

    /// The session with this id and its user, if kept and younger than the TTL, and no
    /// other server or command is on the file.
    pub(crate) fn get(&self, id: Uuid) -> Option<(session::Model, user::Model)> {
        let arrivals = self.neighbours.arrivals().ok()?;
        let mut inner = self.inner.lock().ok()?;
        if arrivals != inner.arrivals || inner.crowded {
            // Someone came since the last look, or was there: they may have written
            // anything, so nothing held is trusted; and while they stay, nothing is kept.
            inner.clear();
            self.epoch.fetch_add(1, Ordering::AcqRel);
            inner.arrivals = arrivals;
            inner.crowded = !self.neighbours.alone();
            if inner.crowded {
                return None;
            }
        }
        let entry = inner.entries.get(&id)?;
        if entry.read.elapsed() < self.ttl {
            return Some((entry.session.clone(), entry.user.clone()));
        }
        inner.remove(id);
        None
    }

    /// Where the drops stand; read it before the read whose rows [`Self::keep`] is given.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps rows read by a read that began at `epoch`, unless something was dropped
    /// since (the read may have raced that commit).
    pub(crate) fn keep(&self, epoch: u64, rows: RowIds, session: &session::Model, user: &user::Model) {
        if self.off.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if self.epoch.load(Ordering::Acquire) != epoch || inner.crowded || self.committing.load(Ordering::Acquire) > 0 {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            let stale: Vec<Uuid> =
                inner.entries.iter().filter(|(_, e)| e.read.elapsed() >= ttl).map(|(id, _)| *id).collect();
            for id in stale {
                inner.remove(id);
            }
            if inner.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        inner.remove(session.id);
        inner.by_session_row.insert(rows.session, session.id);
        inner.by_user_row.entry(rows.user).or_default().push(session.id);
        let entry = Entry { session: session.clone(), user: user.clone(), rows, read: Instant::now() };
        inner.entries.insert(session.id, entry);
    }

    /// Drops the entries read from these rows (committed changes).
    fn forget_rows(&self, changed: &Changed) {
        let Ok(mut inner) = self.inner.lock() else { return self.turn_off() };
        for row in &changed.sessions {
            if let Some(id) = inner.by_session_row.get(row).copied() {
                inner.remove(id);
            }
        }
        for row in &changed.users {
            for id in inner.by_user_row.get(row).cloned().unwrap_or_default() {
                inner.remove(id);
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops these sessions (written by a connection that reports them itself).
    pub(crate) fn forget_sessions(&self, ids: impl IntoIterator<Item = Uuid>) {
        let Ok(mut inner) = self.inner.lock() else { return self.turn_off() };
        for id in ids {
            inner.remove(id);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops the entries read from these `users` rows (written by a connection that
    /// reports them itself).
    pub(crate) fn forget_user_rows(&self, rows: impl IntoIterator<Item = i64>) {
        let Ok(mut inner) = self.inner.lock() else { return self.turn_off() };
        for row in rows {
            for id in inner.by_user_row.get(&row).cloned().unwrap_or_default() {
                inner.remove(id);
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Keeps nothing from now on and lets go of what it holds.
    fn turn_off(&self) {
        self.off.store(true, Ordering::Relaxed);
        if let Ok(mut inner) = self.inner.lock() {
            inner.clear();
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Inner {
    fn clear(&mut self) {
        self.entries.clear();
        self.by_session_row.clear();
        self.by_user_row.clear();
    }

    fn remove(&mut self, id: Uuid) {
        let Some(entry) = self.entries.remove(&id) else { return };
        self.by_session_row.remove(&entry.rows.session);
        if let Some(ids) = self.by_user_row.get_mut(&entry.rows.user) {
            ids.retain(|s| *s != id);
            if ids.is_empty() {
                self.by_user_row.remove(&entry.rows.user);
            }
        }
    }
}

/// Rows of `sessions` and `users` a transaction changed, by rowid.
#[derive(Default)]
struct Changed {
    sessions: Vec<i64>,
    users: Vec<i64>,
}

impl Changed {
    fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.users.is_empty()
    }
}

/// What one watched connection reports to the cache.
struct Watch {
    cache: Arc<SessionCache>,
    /// Changed by the transaction under way (hooks of one connection never run at once).
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    changed: Changed,
    /// Whether this connection's commit of `changed` has begun and counts in
    /// [`SessionCache::committing`].
    committing: bool,
}

impl Watch {
    fn changed(&self, table: &str, rowid: i64) {
        let Ok(mut pending) = self.pending.lock() else { return self.cache.turn_off() };
        match table {
            "sessions" => pending.changed.sessions.push(rowid),
            "users" => pending.changed.users.push(rowid),
            _ => {}
        }
    }

    /// SQLite's commit hook: the commit is about to happen. The rows are dropped now as
    /// well as after it, and nothing is kept until the WAL hook has seen it done: a commit
    /// SQLite finishes in `sqlite3_reset` (a statement not stepped to its end, such as an
    /// `UPDATE … RETURNING` read for one row) does not reach the WAL hook until this
    /// connection's next statement does.
    fn committing(&self) {
        let Ok(mut pending) = self.pending.lock() else { return self.cache.turn_off() };
        if pending.changed.is_empty() {
            return;
        }
        if !pending.committing {
            pending.committing = true;
            self.cache.committing.fetch_add(1, Ordering::AcqRel);
        }
        self.cache.forget_rows(&pending.changed);
    }

    /// The WAL hook: a commit of this connection is done.
    fn committed(&self) {
        let Ok(mut pending) = self.pending.lock() else { return self.cache.turn_off() };
        let done = std::mem::take(&mut *pending);
        if !done.changed.is_empty() {
            self.cache.forget_rows(&done.changed);
        }
        if done.committing {
            self.cache.committing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The rollback hook. Rows still pending from a commit begun before (one finished in
    /// `sqlite3_reset`) are dropped again before the hold on keeping is released, as the
    /// WAL hook would have: a read that raced that commit may hold them.
    fn rolled_back(&self) {
        let Ok(mut pending) = self.pending.lock() else { return self.cache.turn_off() };
        let done = std::mem::take(&mut *pending);
        if done.committing {
            self.cache.forget_rows(&done.changed);
            self.cache.committing.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Owns the WAL hook's registration: dropped (by sqlx, on the connection's own thread,
/// before it closes the handle) it unregisters the hook, then lets go of the state the
/// hook points at.
struct WalHook {
    db: NonNull<ffi::sqlite3>,
    watch: Arc<Watch>,
}

// SAFETY: the handle is only touched in `drop`, which sqlx runs on the thread that owns
// the connection, while the connection is still open.
unsafe impl Send for WalHook {}

impl WalHook {
    fn changed(&self, table: &str, rowid: i64) {
        self.watch.changed(table, rowid);
    }
}

impl Drop for WalHook {
    fn drop(&mut self) {
        // SAFETY: the connection is open (see the type's documentation); a null hook
        // unregisters ours.
        unsafe {
            ffi::sqlite3_wal_hook(self.db.as_ptr(), None, std::ptr::null_mut());
        }
        // A commit begun and never seen done (finished in `sqlite3_reset`) is done now:
        // the connection is closing.
        self.watch.committed();
    }
}

/// Runs after every commit of a watched connection: drops what the transaction changed,
/// then checkpoints as SQLite's own hook (which this one replaces) would.
extern "C" fn after_commit(arg: *mut c_void, db: *mut ffi::sqlite3, name: *const c_char, frames: c_int) -> c_int {
    // SAFETY: `arg` is the `Watch` registered with this hook; the `WalHook` holding it
    // unregisters the hook before letting it go.
    let watch = unsafe { &*(arg as *const Watch) };
    watch.committed();
    if frames >= crate::backend::WAL_AUTOCHECKPOINT_PAGES as c_int {
        // SAFETY: SQLite allows a WAL hook to checkpoint the database it was called for.
        unsafe {
            ffi::sqlite3_wal_checkpoint(db, name);
        }
    }
    ffi::SQLITE_OK
}

/// Makes a pool connection report the `sessions` and `users` rows it commits to `cache`.
/// The connection must be in WAL mode (only then do commits reach the WAL hook); the
/// hook replaces SQLite's automatic checkpoint, which it then runs itself.
pub(crate) fn watch(conn: &mut LockedSqliteHandle<'_>, cache: Arc<SessionCache>) {
    let watch = Arc::new(Watch { cache, pending: Mutex::new(Pending::default()) });
    let db = conn.as_raw_handle();
    // SAFETY: `db` is this open connection; the state `arg` points at lives in `hook`,
    // which unregisters the WAL hook before dropping it.
    unsafe {
        ffi::sqlite3_wal_hook(db.as_ptr(), Some(after_commit), Arc::as_ptr(&watch) as *mut c_void);
    }
    let hook = WalHook { db, watch: watch.clone() };
    conn.set_update_hook(move |change| hook.changed(change.table, change.rowid));
    let before = watch.clone();
    conn.set_commit_hook(move || {
        before.committing();
        true
    });
    conn.set_rollback_hook(move || watch.rolled_back());
}

/// Turns the cache off for good: a connection whose commits it cannot see (not in WAL
/// mode) writes to the database.
pub(crate) fn unwatchable(cache: &SessionCache) {
    tracing::warn!("a SQLite connection is not in WAL mode: the session cache is off");
    cache.turn_off();
}

/// Everyone using one SQLite file who may write to it: every tessera server's session
/// cache and every `tessera migrate` run holds one. The lock file beside the database
/// (`<file>-tessera`) holds a count of arrivals in its first 8 bytes, raised by each
/// comer, and each holds a shared lock on its byte 0 for as long as it is there. Locks
/// are Linux open-file-description locks: two holders in one process see each other too.
pub(crate) struct Neighbours {
    file: File,
}

impl Neighbours {
    /// Announces a holder on the SQLite file `db`. The lock file is named after the
    /// file's canonical path (a symbolic link to the database finds the same one). Fails
    /// with `ErrorKind::Unsupported` off Linux, where no one announces (or caches).
    pub(crate) fn join(db: &Path) -> std::io::Result<Neighbours> {
        let Some((_, set, set_wait)) = OFD else {
            return Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no open-file-description locks"));
        };
        let canonical = std::fs::canonicalize(db).or_else(|_| {
            let parent = db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let name = db.file_name().ok_or_else(|| std::io::Error::other("the database path names no file"))?;
            std::fs::canonicalize(parent).map(|p| p.join(name))
        })?;
        let mut name = canonical.into_os_string();
        name.push("-tessera");
        let file = File::options().read(true).write(true).create(true).truncate(false).open(name)?;
        let me = Neighbours { file };
        // Present first, counted second: whoever sees the new count sees the holder too.
        me.lock(set, libc::F_RDLCK, 0)?;
        // Raise the count under a lock of its own, so that two comers never both write
        // the same number.
        me.lock(set_wait, libc::F_WRLCK, 8)?;
        let raised = me.arrivals().map(|n| n.wrapping_add(1)).and_then(|n| me.write_arrivals(n));
        me.lock(set, libc::F_UNLCK, 8)?;
        raised?;
        Ok(me)
    }

    /// [`Self::join`] on the SQLite file the database URL names, for a server or command
    /// about to use it: `None` for any other database and where no one announces (off
    /// Linux), and any other failure as the message to stop on (a holder that cannot
    /// announce itself would write unseen by the others' caches).
    pub(crate) fn announce(database_url: &str) -> Result<Option<Neighbours>, String> {
        let Some(db) = crate::backend::sqlite_path(database_url.trim()) else { return Ok(None) };
        match Neighbours::join(&db) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(None),
            Err(e) => Err(format!("cannot open the lock file beside the SQLite database {}: {e}", db.display())),
        }
    }

    /// How many have ever arrived on this file.
    fn arrivals(&self) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let mut bytes = [0u8; 8];
        let n = self.file.read_at(&mut bytes, 0)?;
        Ok(if n == 8 { u64::from_le_bytes(bytes) } else { 0 })
    }

    fn write_arrivals(&self, n: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&n.to_le_bytes(), 0)
    }

    /// Whether no one else holds the file now.
    fn alone(&self) -> bool {
        let Some((get, _, _)) = OFD else { return false };
        let mut probe = flock(libc::F_WRLCK, 0);
        // SAFETY: F_OFD_GETLK only fills in the `flock` it is given.
        let rc = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&self.file), get, &mut probe) };
        rc == 0 && probe.l_type == libc::F_UNLCK as libc::c_short
    }

    /// Takes or lets go of a lock on the one byte at `at` (a wait a signal interrupts is
    /// taken up again).
    fn lock(&self, cmd: c_int, kind: c_int, at: i64) -> std::io::Result<()> {
        loop {
            let mut lock = flock(kind, at);
            // SAFETY: fcntl with an OFD lock command reads the `flock` it is given.
            let rc = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&self.file), cmd, &mut lock) };
            if rc == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// The open-file-description lock commands (get, set, set and wait): Linux only; elsewhere
/// no one can announce themselves, so nothing is cached.
#[cfg(target_os = "linux")]
const OFD: Option<(c_int, c_int, c_int)> = Some((libc::F_OFD_GETLK, libc::F_OFD_SETLK, libc::F_OFD_SETLKW));
#[cfg(not(target_os = "linux"))]
const OFD: Option<(c_int, c_int, c_int)> = None;

fn flock(kind: c_int, at: i64) -> libc::flock {
    // SAFETY: `flock` is plain data; all zeroes is a valid value (and OFD locks require
    // `l_pid` to be 0).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = at;
    lock.l_len = 1;
    lock
}
