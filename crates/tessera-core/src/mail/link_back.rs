//! Where a mailed link brings the browser back (the Supabase surface's PKCE flows).

/// Where a mailed link of the Supabase surface brings the browser back: its link goes
/// through `/auth/v1/verify`, which redirects to `redirect_to` with the session, or, with
/// the app's PKCE challenge, with `?code=` for the app to exchange with its verifier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkBack {
    pub redirect_to: String,
    /// The app's S256 challenge: the link comes back with `?code=`.
    pub code_challenge: String,
}
