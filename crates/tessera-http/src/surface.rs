//! Which surface a request is on, as its router says: each surface's router carries
//! its [`Surface`] in the request's extensions (SPEC §2), so that what the surfaces
//! share (extractors, layers) never reads it from the path.

use axum::http::request::Parts;

/// A surface of the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// The native API, `/v1` (the administration API `/v1/admin` included).
    V1,
    /// The Kreeda API.
    Kreeda,
    /// The Supabase Auth (GoTrue) API, `/auth/v1`.
    Supabase,
    /// The admin console, `/admin`.
    Console,
    /// Health, keys, metrics and the API's documents.
    Ops,
    /// The pages of the links sent by mail (`/verify-email`, `/reset-password`).
    Pages,
}

impl Surface {
    /// The surface of a request, from its router (a request no surface's router
    /// claimed is the native API's).
    pub fn of(parts: &Parts) -> Surface {
        parts.extensions.get::<Surface>().copied().unwrap_or(Surface::V1)
    }

    /// The surface whose claims and rules the services apply.
    pub fn client_surface(self) -> tessera_core::Surface {
        match self {
            Surface::Supabase => tessera_core::Surface::Supabase,
            _ => tessera_core::Surface::Native,
        }
    }

    /// Whether cross-origin requests of the allowed origins are answered (CORS): not by
    /// the console, whose cookies must never serve another origin's scripts.
    pub fn allows_other_origins(self) -> bool {
        self != Surface::Console
    }
}
