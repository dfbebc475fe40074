//! GoTrue's error shape, and the shaping of what the shared layers refuse.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::domain::{Error, FieldError};

use crate::error::ApiError;

/// An error in GoTrue's shape: `{code, message}` (API version 2024-01-01) with
/// `error_code` and `msg` as well, so clients of either version read it.
#[derive(Debug)]
pub struct GoTrueError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `weak_password.reasons`, for `weak_password`.
    pub reasons: Option<Vec<&'static str>>,
    pub retry_after: Option<u64>,
}

/// Marks an answer already in GoTrue's shape (see [`shaped`]).
#[derive(Clone, Copy)]
struct Shaped;

impl GoTrueError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GoTrueError { status, code, message: message.into(), reasons: None, retry_after: None }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    fn bad_jwt(detail: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_jwt",
            format!("invalid JWT: unable to parse or verify signature, {detail}"),
        )
    }
}

/// Why a password breaks the policy, as GoTrue names it.
pub fn weak_reasons(errors: &[FieldError]) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    for e in errors {
        let reason = match e.code.as_str() {
            "password_too_short" | "password_too_long" => "length",
            "password_too_common" | "password_contains_email" => "pwned",
            c if c.starts_with("password_") => "characters",
            _ => continue,
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    reasons
}

/// GoTrue's sentence for a password that breaks the policy.
fn weak_message(errors: &[&FieldError]) -> String {
    match errors.iter().find(|e| e.code == "password_too_short") {
        Some(e) => {
            let n: String = e.message.chars().filter(char::is_ascii_digit).collect();
            format!("Password should be at least {n} characters.")
        }
        None => errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "),
    }
}

impl From<Error> for GoTrueError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GoTrueError {
            GoTrueError::new(status, code, message)
        }
        match e {
            Error::Validation(list) => {
                if list.iter().any(|f| f.field == "email" || f.field == "new_email") {
                    return GoTrueError::validation("Unable to validate email address: invalid format");
                }
                let weak: Vec<&FieldError> = list.iter().filter(|f| f.code.starts_with("password_")).collect();
                if !weak.is_empty() {
                    let mut err = new(S::UNPROCESSABLE_ENTITY, "weak_password", weak_message(&weak));
                    err.reasons = Some(weak_reasons(&list));
                    return err;
                }
                let text: Vec<String> = list.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                GoTrueError::validation(text.join(" "))
            }
            Error::BadRequest(m) => GoTrueError::validation(m),
            Error::InvalidCredentials | Error::WrongPassword => {
                new(S::BAD_REQUEST, "invalid_credentials", "Invalid login credentials")
            }
            Error::NotAuthenticated => {
                new(S::UNAUTHORIZED, "no_authorization", "This endpoint requires a valid Bearer token")
            }
            Error::InvalidToken => GoTrueError::bad_jwt("token is malformed"),
            Error::TokenExpired => GoTrueError::bad_jwt("token has invalid claims: token is expired"),
            Error::TokenRevoked => {
                new(S::FORBIDDEN, "session_not_found", "Session from session_id claim in JWT does not exist")
            }
            Error::TokenReused => {
                new(S::BAD_REQUEST, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
            }
            Error::AccountInactive => new(S::BAD_REQUEST, "user_banned", "User is banned"),
            Error::EmailNotVerified => new(S::BAD_REQUEST, "email_not_confirmed", "Email not confirmed"),
            Error::PermissionDenied => new(S::FORBIDDEN, "not_admin", "User not allowed"),
            Error::InvalidVerification => new(S::FORBIDDEN, "otp_expired", "Token has expired or is invalid"),
            Error::UserNotFound => new(S::NOT_FOUND, "user_not_found", "User not found"),
            Error::SessionNotFound => new(S::NOT_FOUND, "session_not_found", "Session not found"),
            Error::EmailTaken => new(S::UNPROCESSABLE_ENTITY, "user_already_exists", "User already registered"),
            Error::LastAdmin => new(S::CONFLICT, "conflict", Error::LastAdmin.to_string()),
            Error::InvalidApiKey | Error::ApiKeyNotFound => new(S::UNAUTHORIZED, "bad_jwt", "Invalid API key"),
            Error::MfaRequired => new(
                S::UNPROCESSABLE_ENTITY,
                "insufficient_aal",
                "AAL2 required: verify a second factor of this account first",
            ),
            Error::InvalidMfaCode => {
                new(S::UNPROCESSABLE_ENTITY, "mfa_verification_failed", "Invalid TOTP code entered")
            }
            Error::InvalidMfaToken => new(
                S::UNPROCESSABLE_ENTITY,
                "mfa_challenge_expired",
                "MFA challenge has expired or was used, verify against another challenge or create a new challenge.",
            ),
            Error::FactorNotFound => new(S::NOT_FOUND, "mfa_factor_not_found", "Factor not found"),
            Error::FactorAlreadyActive => {
                new(S::UNPROCESSABLE_ENTITY, "mfa_verified_factor_exists", "This factor is verified already")
            }
            Error::MfaNotEnabled => {
                new(S::UNPROCESSABLE_ENTITY, "mfa_factor_not_found", Error::MfaNotEnabled.to_string())
            }
            Error::NotRestorable => new(S::UNPROCESSABLE_ENTITY, "conflict", Error::NotRestorable.to_string()),
            Error::SignupNotAllowed => new(S::UNPROCESSABLE_ENTITY, "otp_disabled", "Signups not allowed for otp"),
            Error::PasskeysDisabled => new(S::NOT_FOUND, "passkey_disabled", "Passkeys are disabled"),
            Error::ProviderDisabled => {
                new(S::BAD_REQUEST, "provider_disabled", "Unsupported provider: provider is not enabled")
            }
            Error::ProviderRefused(why) => new(S::BAD_REQUEST, "bad_oauth_callback", why),
            Error::ProviderUnavailable(_) => {
                new(S::SERVICE_UNAVAILABLE, "provider_unavailable", "Error reaching the external provider")
            }
            Error::BadOAuthState => new(S::BAD_REQUEST, "bad_oauth_state", "OAuth state parameter is invalid"),
            Error::IdentityTaken => {
                new(S::UNPROCESSABLE_ENTITY, "identity_already_exists", "Identity is already linked to another user")
            }
            Error::IdentityNotFound => new(S::UNPROCESSABLE_ENTITY, "identity_not_found", "Identity doesn't exist"),
            Error::LastIdentity => new(
                S::UNPROCESSABLE_ENTITY,
                "single_identity_not_deletable",
                "User must have at least 1 identity after unlinking",
            ),
            Error::ManualLinkingDisabled => new(S::NOT_FOUND, "manual_linking_disabled", "Manual linking is disabled"),
            Error::AnonymousDisabled => {
                new(S::UNPROCESSABLE_ENTITY, "anonymous_provider_disabled", "Anonymous sign-ins are disabled")
            }
            Error::OAuthServerDisabled => new(S::NOT_FOUND, "oauth_server_disabled", "OAuth server is disabled"),
            Error::OAuthClientNotFound => new(S::NOT_FOUND, "oauth_client_not_found", "OAuth client not found"),
            Error::OAuthAuthorizationNotFound => new(
                S::NOT_FOUND,
                "oauth_authorization_not_found",
                "Authorization request not found, expired or already processed",
            ),
            Error::FlowStateNotFound => {
                new(S::NOT_FOUND, "flow_state_not_found", "invalid flow state, no valid flow state found")
            }
            Error::BadCodeVerifier => {
                new(S::FORBIDDEN, "bad_code_verifier", "code challenge does not match previously saved code verifier")
            }
            Error::ChallengeNotFound => {
                new(S::BAD_REQUEST, "webauthn_challenge_not_found", "Challenge not found or already used")
            }
            Error::ChallengeExpired => new(S::BAD_REQUEST, "webauthn_challenge_expired", "Challenge has expired"),
            Error::PasskeyRefused | Error::PasskeyInvalid => {
                new(S::BAD_REQUEST, "webauthn_verification_failed", "Credential verification failed")
            }
            Error::PasskeyNotFound => new(S::NOT_FOUND, "validation_failed", "Passkey not found"),
            Error::PasskeyExists => {
                new(S::UNPROCESSABLE_ENTITY, "webauthn_credential_exists", "This credential is already registered")
            }
            Error::TooManyPasskeys => {
                new(S::UNPROCESSABLE_ENTITY, "too_many_passkeys", "Maximum number of passkeys reached")
            }

            Error::PhoneDisabled => new(S::BAD_REQUEST, "phone_provider_disabled", "Unsupported phone provider"),
            Error::PhoneTaken => new(
                S::UNPROCESSABLE_ENTITY,
                "phone_exists",
                "A user with this phone number has already been registered",
            ),
            // A hook that could not be run is a dependency down: 503, never a 500.
            Error::Hook { status, code, message } => {
                let status =
                    if status >= 500 { S::SERVICE_UNAVAILABLE } else { S::from_u16(status).unwrap_or(S::BAD_REQUEST) };
                new(status, code, message)
            }
            Error::RateLimited { retry_after_secs } | Error::AccountLocked { retry_after_secs } => GoTrueError {
                retry_after: Some(retry_after_secs),
                ..new(S::TOO_MANY_REQUESTS, "over_request_rate_limit", "Request rate limit reached")
            },
            Error::Overloaded { retry_after_secs } => GoTrueError {
                retry_after: Some(retry_after_secs),
                ..new(S::SERVICE_UNAVAILABLE, "unexpected_failure", "The server is busy; try again shortly.")
            },
            Error::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "dependency unavailable");
                GoTrueError {
                    retry_after: Some(5),
                    ..new(S::SERVICE_UNAVAILABLE, "unexpected_failure", "A required service is unavailable.")
                }
            }
            Error::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                new(S::INTERNAL_SERVER_ERROR, "unexpected_failure", "Internal server error.")
            }
        }
    }
}

impl From<ApiError> for GoTrueError {
    fn from(e: ApiError) -> Self {
        let code = match e.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_json",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::TOO_MANY_REQUESTS => "over_request_rate_limit",
            s if s.is_server_error() => "unexpected_failure",
            _ => e.code,
        };
        let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { e.status };
        let mut message = e.detail;
        if let Some(first) = e.errors.as_ref().and_then(|l| l.first()) {
            message = format!("Could not read the request body: {}: {}", first.field, first.message);
        }
        GoTrueError { status, code, message, reasons: None, retry_after: e.retry_after }
    }
}

impl IntoResponse for GoTrueError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.code,
            "error_code": self.code,
            "message": self.message,
            "msg": self.message,
        });
        if let Some(reasons) = self.reasons {
            body["weak_password"] = json!({ "reasons": reasons });
        }
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(Shaped);
        res
    }
}

/// An answer in GoTrue's shape: an error answer of what this surface shares with the
/// others (404, 405, 408, 413, a per-IP 429, an extractor's refusal) is answered anew
/// from the [`ApiError`] it carries, with its headers; its SPEC §6 body is dropped
/// unread. Any other answer is as it was.
pub(super) fn shaped(res: Response) -> Response {
    let failed = res.status().is_client_error() || res.status().is_server_error();
    if !failed || res.extensions().get::<Shaped>().is_some() {
        return res;
    }
    let (parts, _) = res.into_parts();
    let shared = GoTrueError::from(ApiError {
        status: parts.status,
        type_name: "",
        code: "request_failed",
        detail: parts.extensions.get::<ApiError>().map_or_else(|| "Request failed".to_owned(), |e| e.detail.clone()),
        errors: None,
        retry_after: parts.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok()),
    });
    let mut out = shared.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
