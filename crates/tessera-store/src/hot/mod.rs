//! The fast paths of the hot statements, private to the store (see the crate docs).

pub(crate) mod batch_writer;
pub(crate) mod pg_kept;
pub(crate) mod session_cache;
pub(crate) mod sqlite_direct;
