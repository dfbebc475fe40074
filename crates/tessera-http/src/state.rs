//! What every handler shares.

use std::sync::Arc;

use tessera_core::Core;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
}

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
