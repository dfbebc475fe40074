//! Which database a URL names, and what every connection to a SQLite file shares.

/// The kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Normalises the URL forms the seeds use (`postgresql+asyncpg://`, `postgresql://`)
/// and tells which backend it names.
pub fn normalise_url(url: &str) -> Result<(Backend, String), String> {
    let url = url.trim();
    for prefix in ["postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            return Ok((Backend::Postgres, format!("postgres://{rest}")));
        }
    }
    if url.starts_with("sqlite:") {
        return Ok((Backend::Sqlite, url.to_owned()));
    }
    Err("DATABASE_URL must start with sqlite:// or postgres://".to_owned())
}

/// The file a `sqlite://` URL points at, if it names a file.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        None
    } else {
        Some(std::path::PathBuf::from(path))
    }
}

/// How many pages the SQLite WAL holds before the commit that crosses the mark copies them
/// into the database file (SQLite's default is 1,000). A checkpoint costs two `fsync`s
/// and one write of every page changed since the last, however often that page changed:
/// under a steady stream of rotations, 4,000 pages (16 MiB of WAL) made each one cheaper
/// for the writer than 1,000 did.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 4000;
