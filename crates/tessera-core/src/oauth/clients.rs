//! The clients of the provider: registered by an administrator (`/v1/admin/oauth/clients`,
//! Supabase's `/auth/v1/admin/oauth/clients`, the console) or by anyone with
//! `OAUTH_DYNAMIC_REGISTRATION` (RFC 7591). A secret is shown once, when made, and kept
//! as its SHA-256.

use secrecy::SecretString;
use serde_json::json;
use tessera_domain::{Error, FieldError};
use tessera_store::entity::oauth_client;
use tessera_store::query::oauth as q;
use uuid::Uuid;

use super::{new_secret, Client, SCOPES};
use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::{now, Actor, ClientInfo};
use tessera_domain::Permission;

/// What a client is registered or changed with; `None` leaves a field as it is (or, on
/// registration, takes its default).
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub name: Option<String>,
    /// `public` or `confidential`; follows `token_endpoint_auth_method` when unset.
    pub client_type: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub scope: Option<String>,
}

/// A client just registered, or whose secret was just made: the secret is shown this once.
pub struct WithSecret {
    pub client: Client,
    pub secret: Option<SecretString>,
}

const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];
const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// Whether `uri` may be a redirect URI: absolute, no fragment; https, or http to
/// loopback (RFC 8252 §7.3), or a private-use scheme of a native app (`com.example.app:`);
/// never `javascript:`, `data:` or `file:`.
pub fn redirect_uri_ok(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else { return false };
    if url.fragment().is_some() || uri.len() > 2048 {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => false,
        // A private-use scheme: reverse-DNS, with a dot (RFC 8252 §7.1).
        scheme => scheme.contains('.'),
    }
}

fn field(name: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(name, code, message)
}

/// Builds the row of a client from `input` over `base` (a new client's defaults, or the
/// client as stored), or says what is wrong with the input.
fn apply(mut base: oauth_client::Model, input: &ClientInput, creating: bool) -> Result<oauth_client::Model, Error> {
    let mut problems = Vec::new();
    if let Some(name) = &input.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            problems.push(field("client_name", "invalid", "client_name must be 1 to 255 characters."));
        }
        base.client_name = name.to_owned();
    } else if creating {
        problems.push(field("client_name", "required", "client_name is required."));
    }
    if let Some(uris) = &input.redirect_uris {
        if uris.is_empty() {
            problems.push(field("redirect_uris", "required", "redirect_uris must list at least one URI."));
        } else if let Some(bad) = uris.iter().find(|u| !redirect_uri_ok(u)) {
            problems.push(field(
                "redirect_uris",
                "invalid",
                format!("redirect_uris: {bad:?} is not allowed (https, http to loopback, or an app's own scheme; no fragment)."),
            ));
        }
        base.redirect_uris = json!(uris).to_string();
    } else if creating {
        problems.push(field("redirect_uris", "required", "redirect_uris is required."));
    }
    if let Some(uris) = &input.post_logout_redirect_uris {
        if let Some(bad) = uris.iter().find(|u| !redirect_uri_ok(u)) {
            problems.push(field("post_logout_redirect_uris", "invalid", format!("{bad:?} is not allowed.")));
        }
        base.post_logout_redirect_uris = json!(uris).to_string();
    }
    for (name, value) in [("client_uri", &input.client_uri), ("logo_uri", &input.logo_uri)] {
        if let Some(v) = value {
            let ok = v.is_empty()
                || url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && v.len() <= 2048);
            if !ok {
                problems.push(field(name, "invalid", format!("{name} must be an http(s) URL.")));
            }
        }
    }
    if let Some(v) = &input.client_uri {
        base.client_uri = (!v.is_empty()).then(|| v.clone());
    }
    if let Some(v) = &input.logo_uri {
        base.logo_uri = (!v.is_empty()).then(|| v.clone());
    }
    if let Some(method) = &input.token_endpoint_auth_method {
        if !AUTH_METHODS.contains(&method.as_str()) {
            problems.push(field(
                "token_endpoint_auth_method",
                "invalid",
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post.",
            ));
        }
        base.token_endpoint_auth_method = method.clone();
        base.client_type = if method == "none" { "public" } else { "confidential" }.to_owned();
    }
    if let Some(kind) = &input.client_type {
        match kind.as_str() {
            "public" => {
                if input.token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none") {
                    problems.push(field("client_type", "invalid", "A public client authenticates with none."));
                }
                base.token_endpoint_auth_method = "none".to_owned();
            }
            "confidential" => {
                if input.token_endpoint_auth_method.as_deref() == Some("none") {
                    problems.push(field(
                        "client_type",
                        "invalid",
                        "A confidential client authenticates with a secret.",
                    ));
                }
                if base.token_endpoint_auth_method == "none" {
                    base.token_endpoint_auth_method = "client_secret_basic".to_owned();
                }
            }
            _ => problems.push(field("client_type", "invalid", "client_type must be public or confidential.")),
        }
        base.client_type = kind.clone();
    }
    if let Some(grants) = &input.grant_types {
        if grants.is_empty() || grants.iter().any(|g| !GRANT_TYPES.contains(&g.as_str())) {
            problems.push(field(
                "grant_types",
                "invalid",
                "grant_types may list authorization_code, refresh_token and client_credentials.",
            ));
        }
        base.grant_types = json!(grants).to_string();
    }
    if base.client_type == "public" && base.grant_types.contains("client_credentials") {
        problems.push(field("grant_types", "invalid", "A public client cannot use client_credentials."));
    }
    if let Some(types) = &input.response_types {
        if types.iter().any(|t| t != "code") {
            problems.push(field("response_types", "invalid", "Only the code response type is supported."));
        }
    }
    if let Some(scope) = &input.scope {
        let scopes = super::scope_list(scope);
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(s)) {
            problems.push(field("scope", "invalid", format!("Unknown scope {bad:?}; known: {}.", SCOPES.join(" "))));
        }
        base.scope = scopes.join(" ");
    }
    if !problems.is_empty() {
        return Err(Error::Validation(problems));
    }
    Ok(base)
}

impl Core {
    /// Registers a client: by an administrator (`registration_type` manual) or, with
    /// `actor` `None`, through dynamic registration.
    pub async fn register_oauth_client(
        &self,
        actor: Option<&Actor>,
        input: &ClientInput,
        client: &ClientInfo,
    ) -> Result<WithSecret, Error> {
        self.provider()?;
        if let Some(actor) = actor {
            actor.require(Permission::OAuthClientsWrite)?;
        }
        let now = now();
        let defaults = oauth_client::Model {
            id: Uuid::new_v4(),
            secret_hash: None,
            client_type: "confidential".to_owned(),
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            registration_type: if actor.is_some() { "manual" } else { "dynamic" }.to_owned(),
            client_name: String::new(),
            client_uri: None,
            logo_uri: None,
            redirect_uris: "[]".to_owned(),
            post_logout_redirect_uris: "[]".to_owned(),
            grant_types: json!(["authorization_code", "refresh_token"]).to_string(),
            scope: SCOPES.join(" "),
            created_at: now,
            updated_at: now,
        };
        let mut row = apply(defaults, input, true)?;
        let secret = (row.client_type == "confidential").then(new_secret).map(|(hash, secret)| {
            row.secret_hash = Some(hash);
            secret
        });
        let tx = self.store.begin().await?;
        q::insert_client(&tx, row.clone()).await?;
        let ev = client_event("oauth_client.created", actor, &row);
        record(&tx, client, ev).await?;
        tx.commit().await?;
        Ok(WithSecret { client: Client::from(&row), secret })
    }

    /// One client.
    pub async fn oauth_client(&self, actor: &Actor, id: Uuid) -> Result<Client, Error> {
        actor.require(Permission::OAuthClientsRead)?;
        let row = q::client(self.store.reader(), id).await?.ok_or(Error::OAuthClientNotFound)?;
        Ok(Client::from(&row))
    }

    /// A page of the clients (from 1) and how many there are.
    pub async fn oauth_clients(&self, actor: &Actor, page: u64, per_page: u64) -> Result<(Vec<Client>, u64), Error> {
        actor.require(Permission::OAuthClientsRead)?;
        let (rows, total) = q::clients(self.store.reader(), page.clamp(1, 1_000_000), per_page.clamp(1, 1000)).await?;
        Ok((rows.iter().map(Client::from).collect(), total))
    }

    /// Changes a client.
    pub async fn update_oauth_client(
        &self,
        actor: &Actor,
        id: Uuid,
        input: &ClientInput,
        client: &ClientInfo,
    ) -> Result<WithSecret, Error> {
        actor.require(Permission::OAuthClientsWrite)?;
        let tx = self.store.begin().await?;
        let stored = q::client(&tx, id).await?.ok_or(Error::OAuthClientNotFound)?;
        let was_public = stored.client_type == "public";
        let mut row = apply(stored, input, false)?;
        row.updated_at = now();
        // A public client made confidential needs a secret, shown now; the other way the
        // secret goes.
        let mut secret = None;
        if row.client_type == "confidential" && (was_public || row.secret_hash.is_none()) {
            let (hash, s) = new_secret();
            row.secret_hash = Some(hash);
            secret = Some(s);
        } else if row.client_type == "public" {
            row.secret_hash = None;
        }
        q::update_client(&tx, row.clone()).await?;
        record(&tx, client, client_event("oauth_client.updated", Some(actor), &row)).await?;
        tx.commit().await?;
        Ok(WithSecret { client: Client::from(&row), secret })
    }

    /// Deletes a client: its consents and pending requests go, its sessions are revoked.
    pub async fn delete_oauth_client(&self, actor: &Actor, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        actor.require(Permission::OAuthClientsWrite)?;
        let tx = self.store.begin().await?;
        let row = q::client(&tx, id).await?.ok_or(Error::OAuthClientNotFound)?;
        q::delete_client(&tx, id, now()).await?;
        record(&tx, client, client_event("oauth_client.deleted", Some(actor), &row)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes a confidential client a new secret (the old one stops working at once).
    pub async fn regenerate_oauth_client_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> Result<WithSecret, Error> {
        actor.require(Permission::OAuthClientsWrite)?;
        let tx = self.store.begin().await?;
        let mut row = q::client(&tx, id).await?.ok_or(Error::OAuthClientNotFound)?;
        if row.client_type != "confidential" {
            return Err(Error::BadRequest("A public client has no secret.".to_owned()));
        }
        let (hash, secret) = new_secret();
        row.secret_hash = Some(hash);
        row.updated_at = now();
        q::update_client(&tx, row.clone()).await?;
        record(&tx, client, client_event("oauth_client.secret_regenerated", Some(actor), &row)).await?;
        tx.commit().await?;
        Ok(WithSecret { client: Client::from(&row), secret: Some(secret) })
    }
}

fn client_event(event: &'static str, actor: Option<&Actor>, row: &oauth_client::Model) -> AuditEvent {
    AuditEvent {
        event,
        user_id: None,
        actor_id: actor.and_then(|a| a.user_id),
        detail: json!({
            "client_id": row.id,
            "client_name": row.client_name,
            "registration_type": row.registration_type,
            "api_key_id": actor.and_then(|a| a.api_key_id),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_uri_ok;

    #[test]
    fn redirect_uris_are_https_loopback_or_an_apps_own_scheme() {
        for ok in
            ["https://app.example.com/cb", "http://127.0.0.1:8080/cb", "http://localhost/cb", "com.example.app:/cb"]
        {
            assert!(redirect_uri_ok(ok), "{ok}");
        }
        for bad in ["http://example.com/cb", "javascript:alert(1)", "https://a.example/cb#x", "data:text/html,x", "cb"]
        {
            assert!(!redirect_uri_ok(bad), "{bad}");
        }
    }
}
