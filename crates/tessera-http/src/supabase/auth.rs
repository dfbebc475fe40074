//! `/auth/v1`: sign-up, tokens, the user, sign-out, mail links and codes, settings.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_core::account::users::{OwnChanges, Registration, UserPatch};
use tessera_core::domain::{Email, Error};
use tessera_core::identity::state::checked_challenge;
use tessera_core::mail::links::{url_encode, MailProof, Verdict, Verification};
use tessera_core::phone::CodeSent;
use tessera_core::session::issued::SignIn;

use super::error::{weak_reasons, GoTrueError};
use super::extract::{SbAuth, SbJson, SbQuery};
use super::session::session_json;
use super::user::load_user;
use crate::extract::Client;
use crate::state::AppState;

type Answer = Result<Response, GoTrueError>;

fn ok(v: Value) -> Answer {
    Ok(Json(v).into_response())
}

/// A string field that may be absent, `null` or blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /auth/v1/health`.
#[utoipa::path(get, path = "/auth/v1/health", tag = "supabase", responses((status = 200, body = super::doc::SbHealth)))]
pub async fn health() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "tessera: a GoTrue-compatible API for managing users and tokens",
    }))
}

/// `GET /auth/v1/settings`: what this server offers, as GoTrue lists it.
#[utoipa::path(get, path = "/auth/v1/settings", tag = "supabase", responses((status = 200, body = super::doc::SbSettings)))]
pub async fn settings(State(s): State<AppState>) -> Json<Value> {
    let mut external = json!({
        "email": true, "phone": s.core.phone_enabled(), "anonymous_users": s.core.settings.anonymous_users_enabled, "apple": false,
        "azure": false, "bitbucket": false, "discord": false, "facebook": false, "figma": false, "fly": false,
        "github": false, "gitlab": false, "google": false, "keycloak": false, "kakao": false,
        "linkedin_oidc": false, "notion": false, "slack_oidc": false, "spotify": false,
        "twitch": false, "twitter": false, "workos": false, "zoom": false,
    });
    if let Some(map) = external.as_object_mut() {
        for name in s.core.providers.enabled_names() {
            map.insert(name, json!(true));
        }
    }
    Json(json!({
        "external": external,
        "disable_signup": false,
        "mailer_autoconfirm": s.core.settings.email_autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": s.core.settings.sms.provider.as_ref().map(|p| p.name()).unwrap_or_default(),
        "saml_enabled": false,
    }))
}

/// A sign-up.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbSignupIn {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// The PKCE flow: the confirmation link comes back with `?code=`.
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `POST /auth/v1/signup`: the account, and its session when it may sign in at once
/// (autoconfirm, or `REQUIRE_EMAIL_VERIFICATION=false`).
#[utoipa::path(post, path = "/auth/v1/signup", tag = "supabase", params(RedirectQuery), request_body = SbSignupIn,
    responses(
        (status = 200, body = super::doc::SbSession, description = "The session, or the user alone (`SbUser`) when it must confirm its address first"),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`: no or an invalid email; `phone_provider_disabled`"),
        (status = 422, body = super::doc::SbError, description = "`weak_password`, `user_already_exists`"),
        (status = 429, body = super::doc::SbError),
    ))]
pub async fn signup(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(q): SbQuery<RedirectQuery>,
    SbJson(body): SbJson<SbSignupIn>,
) -> Answer {
    let Some(email) = given(&body.email) else {
        if let Some(raw) = given(&body.phone) {
            let phone = sb_phone(raw)?;
            let password = body
                .password
                .filter(|p| !p.is_empty())
                .ok_or_else(|| GoTrueError::validation("Signup requires a valid password"))?;
            let data = body.data.filter(|d| !d.is_null());
            let user = s.core.sign_up_with_phone(&phone, &SecretString::from(password), data, &client).await?;
            return ok(load_user(&s.core, &user).await?);
        }
        if given(&body.password).is_some() {
            return Err(GoTrueError::validation("To signup, please provide your email"));
        }
        // No address and no password: an anonymous sign-up (ANONYMOUS_USERS_ENABLED).
        let data = body.data.filter(|d| !d.is_null());
        return session_of(&s, s.core.sign_up_anonymously(data, &client).await?).await;
    };
    let password = body.password.unwrap_or_default();
    if password.is_empty() {
        return Err(GoTrueError::validation("Signup requires a valid password"));
    }
    let (challenge, method) = (given(&body.code_challenge), given(&body.code_challenge_method));
    let link_back = s.core.link_back(q.redirect_to.as_deref(), challenge, method)?;
    let reg = Registration {
        link_back,
        email: email.to_owned(),
        password: SecretString::from(password),
        full_name: None,
        phone: None,
        user_metadata: body.data.filter(|d| !d.is_null()),
    };
    match s.core.sign_up(reg, &client).await? {
        (_, Some(issued)) => ok(session_json(&s.core, &issued).await?),
        (user, None) => ok(load_user(&s.core, &user).await?),
    }
}

/// `POST /auth/v1/token?grant_type=…`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    grant_type: Option<String>,
}

impl GrantQuery {
    /// Whether this is `grant_type=refresh_token`, the one grant without a sign-in limit.
    pub fn is_refresh(&self) -> bool {
        self.grant_type.as_deref() == Some("refresh_token")
    }
}

/// The body of a token request: a password grant's or a refresh's fields.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbTokenIn {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    /// `grant_type=pkce`: the code from the redirect, and the verifier of its challenge.
    auth_code: Option<String>,
    code_verifier: Option<String>,
    /// `grant_type=id_token`: the provider, its ID token, and the nonce it was minted for.
    provider: Option<String>,
    id_token: Option<String>,
    nonce: Option<String>,
}

/// `POST /auth/v1/token`: `grant_type=password` signs in (with `weak_password` when the
/// password breaks today's policy), `grant_type=refresh_token` rotates (SPEC §4.3).
#[utoipa::path(post, path = "/auth/v1/token", tag = "supabase", params(GrantQuery), request_body = SbTokenIn,
    responses(
        (status = 200, body = super::doc::SbSession),
        (status = 400, body = super::doc::SbError, description = "`invalid_credentials`, `refresh_token_not_found`, `refresh_token_already_used`, `session_expired`, `unsupported_grant_type`, `validation_failed`"),
        (status = 404, body = super::doc::SbError, description = "`flow_state_not_found` (PKCE is not supported)"),
        (status = 429, body = super::doc::SbError),
    ))]
pub async fn token(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(q): SbQuery<GrantQuery>,
    SbJson(body): SbJson<SbTokenIn>,
) -> Answer {
    match q.grant_type.as_deref().unwrap_or_default() {
        "password" => {
            let password = SecretString::from(body.password.unwrap_or_default());
            let signed_in = match (given(&body.email), given(&body.phone)) {
                (Some(email), _) => s.core.login(email, &password, &client).await?,
                (None, Some(phone)) => s.core.login_with_phone(&sb_phone(phone)?, &password, &client).await?,
                (None, None) => return Err(GoTrueError::validation("missing email or phone")),
            };
            let issued = match signed_in {
                SignIn::Session(issued) => issued,
                // Not on this surface: an MFA user gets an aal1 session to step up.
                SignIn::MfaRequired(_) => return Err(Error::MfaRequired.into()),
            };
            let mut out = session_json(&s.core, &issued).await?;
            if let Some(broken) = &issued.weak_password {
                out["weak_password"] =
                    json!({ "reasons": weak_reasons(broken), "message": "The password breaks the password policy." });
            }
            ok(out)
        }
        "refresh_token" => {
            let Some(raw) = given(&body.refresh_token) else {
                return Err(GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                ));
            };
            let issued = s.core.refresh(raw, &client).await.map_err(refresh_error)?;
            ok(session_json(&s.core, &issued).await?)
        }
        "pkce" => {
            let (Some(code), Some(verifier)) = (given(&body.auth_code), given(&body.code_verifier)) else {
                return Err(GoTrueError::validation(
                    "invalid request: both auth code and code verifier should be non-empty",
                ));
            };
            session_of(&s, s.core.exchange_code(code, verifier, &client).await?).await
        }
        "id_token" => {
            let (Some(provider), Some(id_token)) = (given(&body.provider), given(&body.id_token)) else {
                return Err(GoTrueError::validation("provider and id_token are required"));
            };
            let signed_in = s.core.sign_in_with_id_token(provider, id_token, given(&body.nonce), &client).await?;
            session_of(&s, signed_in).await
        }
        other => Err(GoTrueError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("unsupported_grant_type: {other:?}"),
        )),
    }
}

/// A sign-in's session as this surface answers it (an MFA user's is an aal1 session to
/// step up, never a second step).
async fn session_of(s: &AppState, signed_in: SignIn) -> Answer {
    match signed_in {
        SignIn::Session(issued) => ok(session_json(&s.core, &issued).await?),
        SignIn::MfaRequired(_) => Err(Error::MfaRequired.into()),
    }
}

/// A refresh's failures as GoTrue answers them: always 4xx, so the client does not retry.
fn refresh_error(e: Error) -> GoTrueError {
    let not_found = |m: &str| GoTrueError::new(StatusCode::BAD_REQUEST, "refresh_token_not_found", m);
    match e {
        Error::InvalidToken => not_found("Invalid Refresh Token: Refresh Token Not Found"),
        Error::TokenRevoked | Error::TokenExpired => GoTrueError::new(
            StatusCode::BAD_REQUEST,
            "session_expired",
            "Invalid Refresh Token: Session Expired (Revoked)",
        ),
        other => other.into(),
    }
}

/// `GET /auth/v1/user`.
#[utoipa::path(get, path = "/auth/v1/user", tag = "supabase", security(("bearer" = [])),
    responses((status = 200, body = super::doc::SbUser), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError, description = "`bad_jwt`, `session_not_found`")))]
pub async fn get_user(State(s): State<AppState>, SbAuth(who): SbAuth) -> Answer {
    ok(load_user(&s.core, &who.user).await?)
}

/// Changes to the caller's account.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbUpdateUserIn {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    nonce: Option<String>,
}

/// `PUT /auth/v1/user`: `data` merged into `user_metadata` key by key (`null` deletes),
/// a new password (the session is kept, every other revoked; `nonce` is a
/// reauthentication code when given), a new email (pending until confirmed), a phone.
#[utoipa::path(put, path = "/auth/v1/user", tag = "supabase", security(("bearer" = [])), request_body = SbUpdateUserIn,
    responses(
        (status = 200, body = super::doc::SbUser),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`"),
        (status = 401, body = super::doc::SbError),
        (status = 403, body = super::doc::SbError, description = "`bad_jwt`, `session_not_found`, `otp_expired` (a wrong `nonce`)"),
        (status = 422, body = super::doc::SbError, description = "`weak_password`, `user_already_exists`, `insufficient_aal`"),
    ))]
pub async fn update_user(
    State(s): State<AppState>,
    Client(client): Client,
    SbAuth(who): SbAuth,
    SbJson(body): SbJson<SbUpdateUserIn>,
) -> Answer {
    // With an SMS provider, a new number is confirmed by a code sent to it first (after
    // the rest of the change is applied: a refused change sends nothing).
    let new_phone = given(&body.phone).filter(|_| s.core.phone_enabled());
    let new_phone = new_phone.map(sb_phone).transpose()?.filter(|p| who.user.phone.as_deref() != Some(p.as_str()));
    if let Some(phone) = &new_phone {
        // Checked before anything is written.
        s.core.check_phone_change(&who, phone).await?;
    }
    let changes = OwnChanges {
        user_metadata: body.data.filter(|d| !d.is_null()),
        password: body.password.filter(|p| !p.is_empty()).map(SecretString::from),
        nonce: given(&body.nonce).map(str::to_owned),
        patch: UserPatch {
            full_name: None,
            email: given(&body.email).map(str::to_owned),
            phone: given(&body.phone).filter(|_| !s.core.phone_enabled()).map(|p| Some(p.to_owned())),
        },
    };
    let user = s.core.change_own_account(&who, changes, &client).await?;
    // The request writes a code and its audit row, not the user.
    if let Some(phone) = &new_phone {
        s.core.request_phone_change(&who, phone, &client).await?;
    }
    ok(load_user(&s.core, &user).await?)
}

/// `POST /auth/v1/logout?scope=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    scope: Option<String>,
}

/// `POST /auth/v1/logout?scope=global|local|others` → 204. `global` (the default)
/// revokes every session and access token of the user, `local` this session, `others`
/// every other.
#[utoipa::path(post, path = "/auth/v1/logout", tag = "supabase", security(("bearer" = [])), params(ScopeQuery),
    responses((status = 204, description = "Signed out"), (status = 400, body = super::doc::SbError), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError)))]
pub async fn logout(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(q): SbQuery<ScopeQuery>,
    SbAuth(who): SbAuth,
) -> Answer {
    match q.scope.as_deref().unwrap_or("global") {
        "global" => {
            s.core.logout_everywhere(who.user.id, "logout.all", Some(who.user.id), &client).await?;
        }
        "local" => s.core.logout(&who, &client).await?,
        "others" => {
            s.core.logout_others(&who, &client).await?;
        }
        _ => return Err(GoTrueError::validation("Parameter scope must be one of global, local, others")),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A phone number as GoTrue reads it: the `+` optional; GoTrue's message otherwise.
fn sb_phone(raw: &str) -> Result<tessera_core::domain::Phone, GoTrueError> {
    tessera_core::domain::Phone::parse_lenient(raw)
        .map_err(|_| GoTrueError::validation("Invalid phone number format (E.164 required)"))
}

/// A redirect the client asks for, in the query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedirectQuery {
    pub redirect_to: Option<String>,
}

/// A passwordless sign-in request.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbOtpIn {
    email: Option<String>,
    phone: Option<String>,
    create_user: Option<bool>,
    /// With a phone: `sms` (the only channel).
    channel: Option<String>,
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// The PKCE flow: the link comes back with `?code=`, exchanged with the verifier.
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `POST /auth/v1/otp`: mails a sign-in link and code; an unknown address gets an
/// account unless `create_user` is false (422 `otp_disabled`). Answers `{}`.
#[utoipa::path(post, path = "/auth/v1/otp", tag = "supabase", params(RedirectQuery), request_body = SbOtpIn,
    responses(
        (status = 200, body = super::doc::SbEmpty),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`, `sms_send_failed`"),
        (status = 422, body = super::doc::SbError, description = "`otp_disabled`: unknown address and `create_user: false`"),
        (status = 429, body = super::doc::SbError),
    ))]
pub async fn otp(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(q): SbQuery<RedirectQuery>,
    SbJson(body): SbJson<SbOtpIn>,
) -> Answer {
    let data = body.data.filter(|d| !d.is_null());
    let create = body.create_user.unwrap_or(true);
    let Some(email) = given(&body.email) else {
        if let Some(raw) = given(&body.phone) {
            if given(&body.channel).is_some_and(|c| c != "sms") {
                return Err(GoTrueError::validation("Unsupported channel: only sms is available"));
            }
            let phone = sb_phone(raw)?;
            return match s.core.send_phone_code(&phone, create, data, &client).await? {
                CodeSent::Sent => ok(json!({})),
                CodeSent::NoAccount => Err(Error::SignupNotAllowed.into()),
            };
        }
        return Err(GoTrueError::validation("You must provide either an email or phone number."));
    };
    let challenge = checked_challenge(given(&body.code_challenge), given(&body.code_challenge_method))?;
    s.core.send_sign_in_link(email, create, data, q.redirect_to.as_deref(), challenge.as_deref(), &client).await?;
    ok(json!({}))
}

/// An address (and, for the PKCE flow, the app's challenge).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbEmailIn {
    email: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `POST /auth/v1/recover`: a recovery mail if the address has an account. Answers `{}`
/// whatever the address.
#[utoipa::path(post, path = "/auth/v1/recover", tag = "supabase", params(RedirectQuery), request_body = SbEmailIn,
    responses((status = 200, body = super::doc::SbEmpty), (status = 400, body = super::doc::SbError), (status = 429, body = super::doc::SbError)))]
pub async fn recover(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(q): SbQuery<RedirectQuery>,
    SbJson(body): SbJson<SbEmailIn>,
) -> Answer {
    let email = given(&body.email).ok_or_else(|| GoTrueError::validation("Password recovery requires an email"))?;
    Email::parse(email).map_err(|e| Error::Validation(vec![e]))?;
    let back =
        s.core.link_back(q.redirect_to.as_deref(), given(&body.code_challenge), given(&body.code_challenge_method))?;
    s.core.request_password_reset(email, back, &client).await?;
    ok(json!({}))
}

/// A verification.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbVerifyIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
    token_hash: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// Uses a link token (`token_hash`, or the link's `token`) or `{email, code}` of `kind`.
async fn verify_any(
    s: &AppState,
    client: &tessera_core::ClientInfo,
    kind: &str,
    token_hash: Option<&str>,
    email: Option<&str>,
    code: Option<&str>,
) -> Result<Verdict, GoTrueError> {
    let Some(verification) = Verification::parse(kind) else {
        if matches!(kind, "sms" | "phone_change") {
            return Err(Error::InvalidVerification.into());
        }
        return Err(GoTrueError::validation("Verify requires a verification type"));
    };
    let proof = match (token_hash, email, code) {
        (Some(t), _, _) => MailProof::Token(t),
        (None, Some(email), Some(code)) => MailProof::Code { email, code },
        _ => return Err(GoTrueError::validation("Verify requires a token or a token hash")),
    };
    match s.core.use_mail_proof(verification, proof, client).await? {
        Verdict::SignedIn(SignIn::MfaRequired(_)) => Err(Error::MfaRequired.into()),
        verdict => Ok(verdict),
    }
}

const PENDING_MESSAGE: &str = "Confirmation link accepted. Please proceed to confirm link sent to the other email";

/// `POST /auth/v1/verify`: `{type, token_hash}` or `{type, email, token}` for
/// `signup`, `invite`, `magiclink`, `email`, `recovery` and `email_change`; answers the
/// session (or, after the first side of a secure email change, `{msg, code: 200}`).
#[utoipa::path(post, path = "/auth/v1/verify", tag = "supabase", request_body = SbVerifyIn,
    responses(
        (status = 200, body = super::doc::SbSession, description = "The session, or `SbPending` after the first side of a secure email change"),
        (status = 400, body = super::doc::SbError, description = "`validation_failed`"),
        (status = 403, body = super::doc::SbError, description = "`otp_expired`"),
        (status = 422, body = super::doc::SbError, description = "`insufficient_aal`"),
        (status = 429, body = super::doc::SbError),
    ))]
pub async fn verify(State(s): State<AppState>, Client(client): Client, SbJson(body): SbJson<SbVerifyIn>) -> Answer {
    let kind = given(&body.kind).unwrap_or_default().to_owned();
    if let (Some(raw), None) = (given(&body.phone), given(&body.email)) {
        let phone = sb_phone(raw)?;
        let code = given(&body.token).ok_or(Error::InvalidVerification)?;
        let signed_in = match kind.as_str() {
            "sms" => s.core.sign_in_with_phone_code(&phone, code, &client).await?,
            "phone_change" => {
                let user = s.core.confirm_phone_change(&phone, code, &client).await?;
                s.core.sign_in_after_phone_change(user, &client).await?
            }
            _ => return Err(GoTrueError::validation("Verify requires a verification type: sms or phone_change")),
        };
        return session_of(&s, signed_in).await;
    }
    // A link's `token` verifies like its hash when no address comes with it.
    let token_hash = given(&body.token_hash).or_else(|| given(&body.token).filter(|_| given(&body.email).is_none()));
    let verdict = verify_any(&s, &client, &kind, token_hash, given(&body.email), given(&body.token)).await?;
    match verdict {
        Verdict::SignedIn(SignIn::Session(issued)) => ok(session_json(&s.core, &issued).await?),
        Verdict::SignedIn(SignIn::MfaRequired(_)) => Err(Error::MfaRequired.into()),
        Verdict::Pending(_) => ok(json!({ "msg": PENDING_MESSAGE, "code": 200 })),
    }
}

/// A mailed link.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyLinkQuery {
    token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    redirect_to: Option<String>,
    /// Set on the link of a PKCE flow: the answer is `?code=`, not the session.
    code_challenge: Option<String>,
}

/// `GET /auth/v1/verify?token=…&type=…&redirect_to=…`: the link of a mail. Redirects
/// (303) to the allowed `redirect_to` (else `SITE_URL`) with the session in the URL
/// fragment, or the error there, as GoTrue does.
#[utoipa::path(get, path = "/auth/v1/verify", tag = "supabase", params(VerifyLinkQuery),
    responses((status = 303, description = "To the allowed `redirect_to` (else SITE_URL) with the session, or the error, in the fragment"), (status = 429, body = super::doc::SbError)))]
pub async fn verify_link(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(q): SbQuery<VerifyLinkQuery>,
) -> Response {
    let target = s.core.allowed_redirect(q.redirect_to.as_deref());
    let kind = given(&q.kind).unwrap_or_default().to_owned();
    if let (Some(challenge), Some(token), Some(verification)) =
        (given(&q.code_challenge), given(&q.token), Verification::parse(&kind))
    {
        let landing = tessera_core::identity::Landing {
            redirect_to: target,
            outcome: s
                .core
                .mail_link_to_code(verification, token, challenge, &client)
                .await
                .map(tessera_core::identity::Landed::Code),
        };
        let mut res = crate::oauth::landing(landing, s.core.settings.secure_cookies);
        *res.status_mut() = StatusCode::SEE_OTHER;
        return res;
    }
    let fragment = match given(&q.token) {
        None => error_fragment("validation_failed", "Verify requires a token"),
        Some(token) => match verify_any(&s, &client, &kind, Some(token), None, None).await {
            Ok(Verdict::SignedIn(SignIn::Session(i))) => format!(
                "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}",
                url_encode(&i.access_token),
                i.expires_at,
                i.expires_in,
                url_encode(&i.refresh_token),
                url_encode(&kind),
            ),
            Ok(Verdict::SignedIn(SignIn::MfaRequired(_))) => {
                let e = GoTrueError::from(Error::MfaRequired);
                error_fragment(e.code, &e.message)
            }
            Ok(Verdict::Pending(_)) => format!("message={}", url_encode(PENDING_MESSAGE)),
            Err(e) => error_fragment(e.code, &e.message),
        },
    };
    let location = format!("{}#{fragment}", target.split('#').next().unwrap_or_default());
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    res
}

fn error_fragment(code: &str, message: &str) -> String {
    format!("error=access_denied&error_code={}&error_description={}", url_encode(code), url_encode(message))
}

/// A resend.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SbResendIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// `POST /auth/v1/resend`: the sign-up confirmation (`signup`) or a pending email
/// change's links (`email_change`) again. Answers `{}` whatever the address.
#[utoipa::path(post, path = "/auth/v1/resend", tag = "supabase", params(RedirectQuery), request_body = SbResendIn,
    responses((status = 200, body = super::doc::SbEmpty), (status = 400, body = super::doc::SbError), (status = 429, body = super::doc::SbError)))]
pub async fn resend(
    State(s): State<AppState>,
    Client(client): Client,
    SbQuery(_redirect): SbQuery<RedirectQuery>,
    SbJson(body): SbJson<SbResendIn>,
) -> Answer {
    let Some(email) = given(&body.email) else {
        if let Some(raw) = given(&body.phone) {
            let phone = sb_phone(raw)?;
            match given(&body.kind).unwrap_or_default() {
                "sms" => {
                    s.core.send_phone_code(&phone, false, None, &client).await?;
                }
                "phone_change" => s.core.resend_phone_change(&phone, &client).await?,
                _ => return Err(GoTrueError::validation("Missing one of these types: sms, phone_change")),
            }
            return ok(json!({}));
        }
        return Err(GoTrueError::validation("You must provide either an email or phone number."));
    };
    Email::parse(email).map_err(|e| Error::Validation(vec![e]))?;
    match given(&body.kind).unwrap_or_default() {
        "signup" => s.core.resend_verification(email, &client).await?,
        "email_change" => s.core.resend_email_change(email, &client).await?,
        _ => return Err(GoTrueError::validation("Missing one of these types: signup, email_change")),
    }
    ok(json!({}))
}

/// `GET /auth/v1/reauthenticate`: mails the caller a code that a password change may
/// present as `nonce`. Answers `{}`.
#[utoipa::path(get, path = "/auth/v1/reauthenticate", tag = "supabase", security(("bearer" = [])),
    responses((status = 200, body = super::doc::SbEmpty), (status = 401, body = super::doc::SbError), (status = 403, body = super::doc::SbError), (status = 429, body = super::doc::SbError)))]
pub async fn reauthenticate(State(s): State<AppState>, Client(client): Client, SbAuth(who): SbAuth) -> Answer {
    s.core.send_reauthentication(&who, &client).await?;
    ok(json!({}))
}
