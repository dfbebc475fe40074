use serde::Serialize;

/// One broken rule on one input field, as listed in a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    /// A field error with a machine code and a human message.
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }
}

/// The class of an outcome; the HTTP layer maps each to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Validation,
    RateLimited,
    Unavailable,
    Internal,
}

/// Every outcome a service can answer other than success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("The request is invalid.")]
    Validation(Vec<FieldError>),
    #[error("Incorrect email or password.")]
    InvalidCredentials,
    #[error("Not authenticated.")]
    NotAuthenticated,
    #[error("The token is invalid.")]
    InvalidToken,
    #[error("The token has expired.")]
    TokenExpired,
    #[error("The session has been revoked.")]
    TokenRevoked,
    #[error("The refresh token was already used; the session has been revoked.")]
    TokenReused,
    #[error("The account is inactive.")]
    AccountInactive,
    #[error("The email address has not been verified.")]
    EmailNotVerified,
    #[error("You do not have permission to do this.")]
    PermissionDenied,
    #[error("The current password is incorrect.")]
    WrongPassword,
    #[error("The link or code is invalid, expired or already used.")]
    InvalidVerification,
    #[error("User not found.")]
    UserNotFound,
    #[error("Session not found.")]
    SessionNotFound,
    #[error("An account with this email already exists.")]
    EmailTaken,
    #[error("This would leave no active admin; promote another admin first.")]
    LastAdmin,
    #[error("The API key is invalid, revoked or expired.")]
    InvalidApiKey,
    #[error("API key not found.")]
    ApiKeyNotFound,
    #[error("This needs a session signed in with a second factor.")]
    MfaRequired,
    #[error("The code is wrong, or was already used.")]
    InvalidMfaCode,
    #[error("The sign-in token is invalid, expired or already used; sign in again.")]
    InvalidMfaToken,
    #[error("Factor not found.")]
    FactorNotFound,
    #[error("This factor is active already.")]
    FactorAlreadyActive,
    #[error("MFA is not on: activate a factor first.")]
    MfaNotEnabled,
    #[error("No account has this address, and this request does not create one.")]
    SignupNotAllowed,
    #[error("Passkeys are turned off on this server.")]
    PasskeysDisabled,
    #[error("The passkey challenge is unknown or was used already; ask for new options.")]
    ChallengeNotFound,
    #[error("The passkey challenge has expired; ask for new options.")]
    ChallengeExpired,
    #[error("The passkey could not be verified.")]
    PasskeyRefused,
    #[error("The new passkey could not be verified.")]
    PasskeyInvalid,
    #[error("Passkey not found.")]
    PasskeyNotFound,
    #[error("This passkey is registered already.")]
    PasskeyExists,
    #[error("This account has the most passkeys it may have; remove one first.")]
    TooManyPasskeys,

    #[error("Only an account deleted by its owner within the retention period can be restored.")]
    NotRestorable,
    #[error("Too many requests; try again later.")]
    RateLimited { retry_after_secs: u64 },
    #[error("Too many failed sign-in attempts; try again later.")]
    AccountLocked { retry_after_secs: u64 },
    #[error("The server is busy; try again shortly.")]
    Overloaded { retry_after_secs: u64 },
    #[error("A required service is unavailable.")]
    Unavailable(String),
    #[error("This sign-in provider is not enabled.")]
    ProviderDisabled,
    /// The provider refused, or answered what cannot be used (a bad code, a bad ID token).
    #[error("The sign-in provider's answer could not be used: {0}")]
    ProviderRefused(String),
    /// The provider did not answer in time, or answered a server error (cause logged).
    #[error("The sign-in provider could not be reached; try again later.")]
    ProviderUnavailable(String),
    #[error("The sign-in state is missing, invalid or expired; start the sign-in again.")]
    BadOAuthState,
    #[error("This identity is already linked to another user.")]
    IdentityTaken,
    #[error("The identity was not found.")]
    IdentityNotFound,
    #[error("The last way to sign in cannot be removed.")]
    LastIdentity,
    #[error("Manual linking is disabled.")]
    ManualLinkingDisabled,
    #[error("Anonymous sign-ins are disabled.")]
    AnonymousDisabled,
    #[error("The code is invalid, expired or already used.")]
    FlowStateNotFound,
    #[error("The code verifier does not match the code challenge.")]
    BadCodeVerifier,
    #[error("The OAuth 2.1 / OpenID Connect provider is not enabled: it needs a signing key (OAUTH_SIGNING_KEY).")]
    OAuthServerDisabled,
    #[error("The OAuth client was not found.")]
    OAuthClientNotFound,
    #[error("The authorization request was not found, has expired or was already decided.")]
    OAuthAuthorizationNotFound,
    #[error("Phone sign-in is not enabled (no SMS_PROVIDER is configured).")]
    PhoneDisabled,
    #[error("A user with this phone number has already been registered.")]
    PhoneTaken,
    /// An auth hook refused, or could not be run (SPEC §5.13): the status, code and
    /// message GoTrue answers for it (a refusal's are the receiver's own).
    #[error("{message}")]
    Hook { status: u16, code: &'static str, message: String },
    #[error("Internal server error.")]
    Internal(String),
}

impl Error {
    /// What a log line says of this outcome: the sentence, and for a failure of the
    /// server its cause, which no client sees.
    pub fn cause(&self) -> String {
        match self {
            Error::Internal(cause) | Error::Unavailable(cause) | Error::ProviderUnavailable(cause) => {
                format!("{self} {cause}")
            }
            other => other.to_string(),
        }
    }

    /// The class of this outcome.
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            BadRequest(_) | WrongPassword | InvalidVerification | ChallengeNotFound | ChallengeExpired
            | PasskeyInvalid | ProviderDisabled | ProviderRefused(_) | BadOAuthState | PhoneDisabled => {
                ErrorKind::BadRequest
            }
            Validation(_) => ErrorKind::Validation,
            InvalidCredentials | NotAuthenticated | InvalidToken | TokenExpired | TokenRevoked | TokenReused
            | InvalidApiKey | InvalidMfaCode | InvalidMfaToken | PasskeyRefused => ErrorKind::Unauthorized,
            AccountInactive | EmailNotVerified | PermissionDenied | MfaRequired | SignupNotAllowed
            | BadCodeVerifier => ErrorKind::Forbidden,
            UserNotFound
            | SessionNotFound
            | ApiKeyNotFound
            | FactorNotFound
            | PasskeyNotFound
            | PasskeysDisabled
            | IdentityNotFound
            | ManualLinkingDisabled
            | FlowStateNotFound
            | OAuthServerDisabled
            | OAuthClientNotFound
            | OAuthAuthorizationNotFound => ErrorKind::NotFound,
            EmailTaken | LastAdmin | FactorAlreadyActive | MfaNotEnabled | NotRestorable | PasskeyExists
            | IdentityTaken | PhoneTaken => ErrorKind::Conflict,
            TooManyPasskeys | LastIdentity | AnonymousDisabled => ErrorKind::Validation,
            RateLimited { .. } | AccountLocked { .. } => ErrorKind::RateLimited,
            Overloaded { .. } | Unavailable(_) | ProviderUnavailable(_) => ErrorKind::Unavailable,
            Hook { status, .. } => match status {
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                422 => ErrorKind::Validation,
                429 => ErrorKind::RateLimited,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::BadRequest,
            },
            Internal(_) => ErrorKind::Internal,
        }
    }

    /// The `type` of the error body: a stable CamelCase name.
    pub fn type_name(&self) -> &'static str {
        use Error::*;
        match self {
            BadRequest(_) => "BadRequest",
            Validation(_) => "ValidationError",
            InvalidCredentials => "InvalidCredentials",
            NotAuthenticated => "NotAuthenticated",
            InvalidToken => "InvalidToken",
            TokenExpired => "TokenExpired",
            TokenRevoked => "TokenRevoked",
            TokenReused => "TokenReused",
            AccountInactive => "AccountInactive",
            EmailNotVerified => "EmailNotVerified",
            PermissionDenied => "PermissionDenied",
            WrongPassword => "WrongPassword",
            InvalidVerification => "InvalidVerification",
            UserNotFound => "UserNotFound",
            SessionNotFound => "SessionNotFound",
            EmailTaken => "EmailAlreadyExists",
            LastAdmin => "LastAdmin",
            InvalidApiKey => "InvalidApiKey",
            ApiKeyNotFound => "ApiKeyNotFound",
            MfaRequired => "MfaRequired",
            InvalidMfaCode => "InvalidMfaCode",
            InvalidMfaToken => "InvalidMfaToken",
            FactorNotFound => "FactorNotFound",
            FactorAlreadyActive => "FactorAlreadyActive",
            MfaNotEnabled => "MfaNotEnabled",
            NotRestorable => "NotRestorable",
            SignupNotAllowed => "SignupNotAllowed",
            PasskeysDisabled => "PasskeysDisabled",
            ChallengeNotFound => "ChallengeNotFound",
            ChallengeExpired => "ChallengeExpired",
            PasskeyRefused => "PasskeyRefused",
            PasskeyInvalid => "PasskeyInvalid",
            PasskeyNotFound => "PasskeyNotFound",
            PasskeyExists => "PasskeyExists",
            TooManyPasskeys => "TooManyPasskeys",
            RateLimited { .. } => "RateLimitExceeded",
            AccountLocked { .. } => "AccountLocked",
            Overloaded { .. } => "ServiceOverloaded",
            Unavailable(_) => "ServiceUnavailable",
            ProviderDisabled => "ProviderDisabled",
            ProviderRefused(_) => "ProviderRefused",
            ProviderUnavailable(_) => "ProviderUnavailable",
            BadOAuthState => "BadOAuthState",
            IdentityTaken => "IdentityAlreadyExists",
            IdentityNotFound => "IdentityNotFound",
            LastIdentity => "LastIdentity",
            ManualLinkingDisabled => "ManualLinkingDisabled",
            AnonymousDisabled => "AnonymousSignInsDisabled",
            FlowStateNotFound => "FlowStateNotFound",
            BadCodeVerifier => "BadCodeVerifier",
            OAuthServerDisabled => "OAuthServerDisabled",
            OAuthClientNotFound => "OAuthClientNotFound",
            OAuthAuthorizationNotFound => "OAuthAuthorizationNotFound",
            PhoneDisabled => "PhoneProviderDisabled",
            PhoneTaken => "PhoneAlreadyExists",
            Hook { .. } => "HookError",
            Internal(_) => "InternalError",
        }
    }

    /// The `error_code` of the error body: a stable snake_case code.
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            BadRequest(_) => "bad_request",
            Validation(_) => "validation_error",
            InvalidCredentials => "invalid_credentials",
            NotAuthenticated => "not_authenticated",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            TokenRevoked => "token_revoked",
            TokenReused => "token_reused",
            AccountInactive => "account_inactive",
            EmailNotVerified => "email_not_verified",
            PermissionDenied => "permission_denied",
            WrongPassword => "wrong_password",
            InvalidVerification => "invalid_or_expired_token",
            UserNotFound => "user_not_found",
            SessionNotFound => "session_not_found",
            EmailTaken => "email_already_exists",
            LastAdmin => "last_admin",
            InvalidApiKey => "invalid_api_key",
            ApiKeyNotFound => "api_key_not_found",
            MfaRequired => "mfa_required",
            InvalidMfaCode => "invalid_mfa_code",
            InvalidMfaToken => "invalid_mfa_token",
            FactorNotFound => "factor_not_found",
            FactorAlreadyActive => "factor_already_active",
            MfaNotEnabled => "mfa_not_enabled",
            NotRestorable => "not_restorable",
            SignupNotAllowed => "signup_not_allowed",
            PasskeysDisabled => "passkey_disabled",
            ChallengeNotFound => "webauthn_challenge_not_found",
            ChallengeExpired => "webauthn_challenge_expired",
            PasskeyRefused | PasskeyInvalid => "webauthn_verification_failed",
            PasskeyNotFound => "passkey_not_found",
            PasskeyExists => "webauthn_credential_exists",
            TooManyPasskeys => "too_many_passkeys",
            RateLimited { .. } => "rate_limited",
            AccountLocked { .. } => "account_locked",
            Overloaded { .. } => "service_overloaded",
            Unavailable(_) => "service_unavailable",
            ProviderDisabled => "provider_disabled",
            ProviderRefused(_) => "bad_oauth_callback",
            ProviderUnavailable(_) => "provider_unavailable",
            BadOAuthState => "bad_oauth_state",
            IdentityTaken => "identity_already_exists",
            IdentityNotFound => "identity_not_found",
            LastIdentity => "single_identity_not_deletable",
            ManualLinkingDisabled => "manual_linking_disabled",
            AnonymousDisabled => "anonymous_provider_disabled",
            FlowStateNotFound => "flow_state_not_found",
            BadCodeVerifier => "bad_code_verifier",
            OAuthServerDisabled => "oauth_server_disabled",
            OAuthClientNotFound => "oauth_client_not_found",
            OAuthAuthorizationNotFound => "oauth_authorization_not_found",
            PhoneDisabled => "phone_provider_disabled",
            PhoneTaken => "phone_exists",
            Hook { code, .. } => code,
            Internal(_) => "internal_error",
        }
    }

    /// A 422 outcome for a single field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, code, message)])
    }
}
