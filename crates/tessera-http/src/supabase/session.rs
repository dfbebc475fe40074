//! GoTrue's session.

use serde_json::{json, Map, Value};
use tessera_core::session::issued::Issued;
use tessera_core::Core;

use super::error::GoTrueError;
use super::user::{load_user, user_json};

/// GoTrue's session: the tokens and the user, at the top level.
pub async fn session_json(core: &Core, issued: &Issued) -> Result<Value, GoTrueError> {
    let mut out = Map::new();
    out.insert("access_token".to_owned(), json!(issued.access_token));
    out.insert("token_type".to_owned(), json!("bearer"));
    out.insert("expires_in".to_owned(), json!(issued.expires_in));
    out.insert("expires_at".to_owned(), json!(issued.expires_at));
    out.insert("refresh_token".to_owned(), json!(issued.refresh_token));
    let user = match &issued.profile {
        // The profile the token's claims were read from, a moment ago; the factors only
        // when one is verified (what the client's assurance level reads: a factor still
        // being enrolled shows in `GET /user`, not in a refresh's answer).
        Some(profile) => {
            let factors = if issued.user.mfa_enabled { core.factors(issued.user.id).await? } else { Vec::new() };
            let identities = core.identities_of(&issued.user).await?;
            user_json(&issued.user, Some(profile), &factors, &identities)
        }
        None => load_user(core, &issued.user).await?,
    };
    out.insert("user".to_owned(), user);
    Ok(Value::Object(out))
}
