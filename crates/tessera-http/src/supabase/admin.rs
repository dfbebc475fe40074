//! `/auth/v1/admin` and `/auth/v1/invite`: GoTrue's admin API for a `service_role` (or
//! `supabase_admin`) key, over the admin services of `/v1/admin`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_core::account::admin::{AdminUserPatch, NewUser};
use tessera_core::account::users::Metadata;
use tessera_core::domain::Error;
use tessera_core::mail::links::{LinkKind, LinkRequest};
use uuid::Uuid;

use super::error::GoTrueError;
use super::extract::{SbJson, SbQuery, ServiceRole};
use super::user::{factor_json, load_user, user_json};
use crate::extract::Client;
use crate::state::AppState;

type Answer = Result<Response, GoTrueError>;

/// The most users a page holds.
const PER_PAGE_MAX: u64 = 100;

/// A user id in the path: anything else is an unknown user.
fn user_id(raw: &str) -> Result<Uuid, GoTrueError> {
    Uuid::parse_str(raw).map_err(|_| Error::UserNotFound.into())
}

fn user_answer(v: Value) -> Answer {
    Ok(Json(v).into_response())
}

/// `?page=&per_page=`, either empty (the SDK sends both, empty when not given).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub(super) page: Option<String>,
    pub(super) per_page: Option<String>,
}

pub(super) fn page_param(raw: &Option<String>, default: u64) -> Result<u64, GoTrueError> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| GoTrueError::validation("Bad Pagination Parameters")),
    }
}

/// `GET /auth/v1/admin/users?page=&per_page=`: `{users, aud}`, newest first, with
/// `X-Total-Count` and GoTrue's `Link` header (`next` and `last`).
#[utoipa::path(get, path = "/auth/v1/admin/users", tag = "supabase", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = super::doc::SbUserPage, description = "Newest first; `X-Total-Count` and `Link` (`rel=\"next\"`, `rel=\"last\"`) headers"),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`: Bad Pagination Parameters"),
        (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError, description = "`not_admin`, `bad_jwt`"),
    ))]
pub async fn list_users(State(s): State<AppState>, _: ServiceRole, SbQuery(q): SbQuery<PageQuery>) -> Answer {
    let page = page_param(&q.page, 1)?;
    let per_page = page_param(&q.per_page, 50)?.min(PER_PAGE_MAX);
    let (accounts, total) = s.core.admin_accounts_page(page, per_page).await?;
    let out: Vec<Value> =
        accounts.iter().map(|a| user_json(&a.user, a.profile.as_ref(), &a.factors, &a.identities)).collect();
    let mut res =
        Json(json!({ "users": out, "aud": tessera_core::session::tokens::SUPABASE_AUDIENCE })).into_response();
    res.headers_mut().insert("x-total-count", HeaderValue::from(total));
    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!("</auth/v1/admin/users?page={}&per_page={per_page}>; rel=\"next\"", page + 1));
    }
    links.push(format!("</auth/v1/admin/users?page={last}&per_page={per_page}>; rel=\"last\""));
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        res.headers_mut().insert(header::LINK, v);
    }
    Ok(res)
}

/// A user as an admin creates or changes it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbAdminUserIn {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    email_confirm: Option<bool>,
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Value>,
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Value>,
    ban_duration: Option<String>,
}

/// `ban_duration`: `none` lifts a ban; any other duration deactivates the account (a ban
/// here lasts until lifted).
fn banned(ban: &Option<String>) -> Result<Option<bool>, GoTrueError> {
    match ban.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        None => Ok(None),
        Some("none") => Ok(Some(false)),
        Some(d) if d.trim_end_matches(['h', 'm', 's', '.']).chars().all(|c| c.is_ascii_digit() || c == '.') => {
            Ok(Some(true))
        }
        Some(_) => Err(GoTrueError::validation("invalid format for ban duration")),
    }
}

/// `POST /auth/v1/admin/users`: the user (GoTrue's object). A missing password makes one
/// nobody knows; `email_confirm` confirms the address.
#[utoipa::path(post, path = "/auth/v1/admin/users", tag = "supabase", security(("bearer" = [])), request_body = SbAdminUserIn,
    responses((status = 200, body = super::doc::SbUser), (status = 400, body = super::doc::SbError), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError),
        (status = 422, body = super::doc::SbError, description = "`weak_password`, `user_already_exists`")))]
pub async fn create_user(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    SbJson(body): SbJson<SbAdminUserIn>,
) -> Answer {
    let email = body.email.clone().unwrap_or_default();
    if email.trim().is_empty() {
        return Err(GoTrueError::validation("Unable to validate email address: invalid format"));
    }
    let ban = banned(&body.ban_duration)?;
    let metadata =
        Metadata { user: body.user_metadata.filter(|v| !v.is_null()), app: body.app_metadata.filter(|v| !v.is_null()) };
    let new = NewUser {
        email,
        password: body.password.filter(|p| !p.is_empty()).map(SecretString::from),
        full_name: None,
        phone: body.phone.filter(|p| !p.trim().is_empty()),
        role: None,
        is_active: ban.map(|b| !b),
        is_verified: Some(body.email_confirm.unwrap_or(false)),
        metadata,
        invited: false,
    };
    let user = s.core.admin_create_user(&actor, new, &client).await?;
    user_answer(load_user(&s.core, &user).await?)
}

/// `GET /auth/v1/admin/users/{id}`.
#[utoipa::path(get, path = "/auth/v1/admin/users/{id}", tag = "supabase", security(("bearer" = [])), params(("id" = String, Path, description = "The user")),
    responses((status = 200, body = super::doc::SbUser), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError)))]
pub async fn get_user(State(s): State<AppState>, _: ServiceRole, Path(id): Path<String>) -> Answer {
    let user = s.core.user(user_id(&id)?).await?;
    user_answer(load_user(&s.core, &user).await?)
}

/// `PUT /auth/v1/admin/users/{id}`: email, password, `email_confirm`, phone,
/// `ban_duration`, and `user_metadata` / `app_metadata` merged key by key.
#[utoipa::path(put, path = "/auth/v1/admin/users/{id}", tag = "supabase", security(("bearer" = [])), params(("id" = String, Path, description = "The user")), request_body = SbAdminUserIn,
    responses((status = 200, body = super::doc::SbUser), (status = 400, body = super::doc::SbError), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError),
        (status = 409, body = super::doc::SbError, description = "`conflict`: the last admin"),
        (status = 422, body = super::doc::SbError, description = "`weak_password`, `user_already_exists`")))]
pub async fn update_user(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    Path(id): Path<String>,
    SbJson(body): SbJson<SbAdminUserIn>,
) -> Answer {
    let id = user_id(&id)?;
    let ban = banned(&body.ban_duration)?;
    let patch = AdminUserPatch {
        email: body.email.filter(|e| !e.trim().is_empty()),
        password: body.password.filter(|p| !p.is_empty()).map(SecretString::from),
        full_name: None,
        phone: body.phone.map(|p| Some(p).filter(|p| !p.trim().is_empty())),
        role: None,
        is_active: ban.map(|b| !b),
        is_verified: body.email_confirm,
        metadata: Metadata {
            user: body.user_metadata.filter(|v| !v.is_null()),
            app: body.app_metadata.filter(|v| !v.is_null()),
        },
        deleted_is_gone: true,
    };
    let user = s.core.admin_update_user(&actor, id, patch, &client).await?;
    user_answer(load_user(&s.core, &user).await?)
}

/// `DELETE /auth/v1/admin/users/{id}`: deletes the user (its sessions, factors and
/// tokens with it); answers `{}`. A `should_soft_delete` body is read and ignored.
#[utoipa::path(delete, path = "/auth/v1/admin/users/{id}", tag = "supabase", security(("bearer" = [])), params(("id" = String, Path, description = "The user")),
    responses((status = 200, body = super::doc::SbEmpty), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError),
        (status = 409, body = super::doc::SbError, description = "`conflict`: the last admin (GoTrue's conflict status)")))]
pub async fn delete_user(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    Path(id): Path<String>,
) -> Answer {
    s.core.admin_delete_user(&actor, user_id(&id)?, &client).await?;
    Ok(Json(json!({})).into_response())
}

/// `GET /auth/v1/admin/users/{id}/factors`: every factor, verified or not, as an array.
#[utoipa::path(get, path = "/auth/v1/admin/users/{id}/factors", tag = "supabase", security(("bearer" = [])), params(("id" = String, Path, description = "The user")),
    responses((status = 200, body = Vec<super::doc::SbFactor>), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError)))]
pub async fn list_factors(State(s): State<AppState>, _: ServiceRole, Path(id): Path<String>) -> Answer {
    let factors = s.core.factors_of_user(user_id(&id)?).await?;
    Ok(Json(Value::Array(factors.iter().map(factor_json).collect())).into_response())
}

/// `DELETE /auth/v1/admin/users/{id}/factors/{factor_id}`: the factor removed.
#[utoipa::path(delete, path = "/auth/v1/admin/users/{id}/factors/{factor_id}", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user"), ("factor_id" = String, Path, description = "The factor")),
    responses((status = 200, body = super::doc::SbFactor), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 404, body = super::doc::SbError)))]
pub async fn delete_factor(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    Path((id, factor)): Path<(String, String)>,
) -> Answer {
    let user = user_id(&id)?;
    let factor = Uuid::parse_str(&factor).map_err(|_| GoTrueError::from(Error::FactorNotFound))?;
    let removed = s.core.admin_remove_factor(&actor, user, factor, &client).await?;
    Ok(Json(factor_json(&removed)).into_response())
}

/// A link request.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbGenerateLinkIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    password: Option<String>,
    new_email: Option<String>,
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    redirect_to: Option<String>,
}

/// `POST /auth/v1/admin/generate_link`: the user's fields with `action_link`,
/// `email_otp`, `hashed_token`, `redirect_to` and `verification_type`. Nothing is mailed.
#[utoipa::path(post, path = "/auth/v1/admin/generate_link", tag = "supabase", security(("bearer" = [])), params(super::auth::RedirectQuery), request_body = SbGenerateLinkIn,
    responses((status = 200, body = super::doc::SbLink), (status = 400, body = super::doc::SbError), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError),
        (status = 404, body = super::doc::SbError, description = "`user_not_found` (recovery, email change)"),
        (status = 422, body = super::doc::SbError, description = "`weak_password`, `user_already_exists`")))]
pub async fn generate_link(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    SbQuery(q): SbQuery<super::auth::RedirectQuery>,
    SbJson(body): SbJson<SbGenerateLinkIn>,
) -> Answer {
    let raw_kind = body.kind.clone().unwrap_or_default();
    let kind = LinkKind::parse(raw_kind.trim()).ok_or_else(|| {
        GoTrueError::validation(
            "Invalid link type: signup, invite, magiclink, recovery, email_change_current or email_change_new",
        )
    })?;
    let req = LinkRequest {
        kind,
        email: body.email.unwrap_or_default(),
        password: body.password.filter(|p| !p.is_empty()).map(SecretString::from),
        new_email: body.new_email,
        user_metadata: body.data.filter(|v| !v.is_null()),
    };
    let link = s.core.generate_link(&actor, req, &client).await?;
    let redirect = s.core.allowed_redirect(body.redirect_to.as_deref().or(q.redirect_to.as_deref()));
    let verification_type = if kind == LinkKind::EmailChangeCurrent || kind == LinkKind::EmailChangeNew {
        raw_kind.trim().to_owned()
    } else {
        kind.verify_type().to_owned()
    };
    let mut out = load_user(&s.core, &link.user).await?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("action_link".to_owned(), json!(s.core.supabase_link(&link.token, &verification_type, &redirect)));
        obj.insert("email_otp".to_owned(), json!(link.code.unwrap_or_default()));
        obj.insert("hashed_token".to_owned(), json!(link.token));
        obj.insert("redirect_to".to_owned(), json!(redirect));
        obj.insert("verification_type".to_owned(), json!(verification_type));
    }
    user_answer(out)
}

/// An invitation.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbInviteIn {
    email: Option<String>,
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// `POST /auth/v1/invite`: an invited user (`invited_at` set) and the invitation mail.
#[utoipa::path(post, path = "/auth/v1/invite", tag = "supabase", security(("bearer" = [])), params(super::auth::RedirectQuery), request_body = SbInviteIn,
    responses((status = 200, body = super::doc::SbUser), (status = 400, body = super::doc::SbError), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError),
        (status = 422, body = super::doc::SbError, description = "`user_already_exists`")))]
pub async fn invite(
    State(s): State<AppState>,
    Client(client): Client,
    ServiceRole(actor): ServiceRole,
    SbQuery(q): SbQuery<super::auth::RedirectQuery>,
    SbJson(body): SbJson<SbInviteIn>,
) -> Answer {
    let email = body.email.unwrap_or_default();
    let data = body.data.filter(|v| !v.is_null());
    let user = s.core.invite_user(&actor, &email, data, q.redirect_to.as_deref(), &client).await?;
    user_answer(load_user(&s.core, &user).await?)
}
