//! Auth hooks and event webhooks (SPEC §5.13). A hook is the app's own HTTP endpoint that
//! tessera calls, GoTrue's way (its payloads, answers and error format), at one point of
//! a flow: to add claims to access tokens, to send an email or SMS itself, to judge a
//! password or MFA attempt, to refuse a sign-up. Event webhooks tell the app what
//! happened, from the durable log, after the fact ([`webhooks`]).

pub mod dispatch;
pub mod events;
pub mod send;
pub mod signature;
pub mod webhooks;

use serde_json::{json, Value};
use tessera_domain::Error;
use uuid::Uuid;

use crate::app::Core;
use crate::caller::ClientInfo;
pub use crate::settings::hooks::HookName;
use dispatch::HookFailure;

/// The claims of an access token a custom access token hook may not change: the
/// server's, which every check of the token relies on.
pub const OWNED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "sid",
    "session_id",
    "aal",
    "amr",
    "user_id",
    "ver",
    "type",
    "role",
    "email",
    "phone",
    "is_anonymous",
    "client_id",
    "scope",
    "auth_time",
];

/// GoTrue's default messages when a verification-attempt hook rejects without one.
const MFA_REJECTED: &str = "Further MFA verification attempts will be rejected.";
const PASSWORD_REJECTED: &str = "Further password verification attempts will be rejected.";

/// What a password verification attempt hook decided.
pub(crate) struct PasswordVerdict {
    pub message: String,
    pub logout: bool,
}

impl Core {
    /// Whether the hook `name` is enabled.
    pub fn hook_enabled(&self, name: HookName) -> bool {
        self.settings.hooks.endpoint(name).is_some()
    }

    /// Calls the hook `name` with `payload` (GoTrue's `metadata` added): its answer, or
    /// the error the request fails with. Outside transactions, since a hook may take
    /// seconds, save one: a sign-up through another provider calls the
    /// before-user-created hook inside the transaction that decides, under its locks,
    /// whether the identity makes a new account (as GoTrue does).
    pub(crate) async fn call_hook(&self, name: HookName, payload: Value, client: &ClientInfo) -> Result<Value, Error> {
        self.call_hook_as(name, &dispatch::message_id(), payload, client).await
    }

    /// [`Core::call_hook`] under the `webhook-id` `id` (an outbox row's, the same on
    /// every retry).
    pub(crate) async fn call_hook_as(
        &self,
        name: HookName,
        id: &str,
        mut payload: Value,
        client: &ClientInfo,
    ) -> Result<Value, Error> {
        let Some(endpoint) = self.settings.hooks.endpoint(name) else { return Ok(Value::Null) };
        payload["metadata"] = json!({
            "uuid": Uuid::new_v4(),
            "time": chrono::Utc::now(),
            "name": name.gotrue_name(),
            "ip_address": client.ip.clone().unwrap_or_default(),
        });
        let started = std::time::Instant::now();
        let result = dispatch::call(&self.hook_http, endpoint, id, &payload).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(HookFailure::Refused { .. }) => "refused",
            Err(HookFailure::Failed { .. }) => "failed",
        };
        metrics::counter!("tessera_hook_calls_total", "hook" => name.gotrue_name(), "outcome" => outcome).increment(1);
        metrics::histogram!("tessera_hook_duration_seconds", "hook" => name.gotrue_name())
            .record(started.elapsed().as_secs_f64());
        result.map_err(|failure| {
            tracing::warn!(hook = name.gotrue_name(), failure = %failure.describe(), "auth hook did not answer yes");
            hook_error(failure)
        })
    }

    /// The custom access token hook: the claims it answers, with the server's own
    /// ([`OWNED_CLAIMS`]) put back as they were. Failing fails the token: an app that
    /// relies on its claims never gets a token without them.
    pub(crate) async fn customize_claims(
        &self,
        claims: &impl serde::Serialize,
        user_id: Uuid,
        method: &str,
        client: &ClientInfo,
    ) -> Result<Value, Error> {
        let claims = serde_json::to_value(claims).map_err(|e| Error::Internal(format!("claims: {e}")))?;
        let payload = json!({ "user_id": user_id, "claims": claims, "authentication_method": method });
        let answer = self.call_hook(HookName::CustomAccessToken, payload, client).await?;
        let Some(Value::Object(mut out)) = answer.get("claims").cloned() else {
            return Err(Error::Hook {
                status: 500,
                code: "unexpected_failure",
                message: "output claims field is missing".to_owned(),
            });
        };
        if let Value::Object(original) = claims {
            for key in OWNED_CLAIMS {
                match original.get(*key) {
                    Some(v) => {
                        out.insert((*key).to_owned(), v.clone());
                    }
                    None => {
                        out.remove(*key);
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// The password verification attempt hook, after a password was checked: its
    /// rejection (with whether to sign the user out everywhere), if it rejects.
    pub(crate) async fn password_attempt_hook(
        &self,
        user_id: Uuid,
        valid: bool,
        client: &ClientInfo,
    ) -> Result<Option<PasswordVerdict>, Error> {
        if !self.hook_enabled(HookName::PasswordVerificationAttempt) {
            return Ok(None);
        }
        let payload = json!({ "user_id": user_id, "valid": valid });
        let answer = self.call_hook(HookName::PasswordVerificationAttempt, payload, client).await?;
        Ok(rejected(&answer).then(|| PasswordVerdict {
            message: message_or(&answer, PASSWORD_REJECTED),
            logout: answer.get("should_logout_user").and_then(Value::as_bool).unwrap_or(false),
        }))
    }

    /// The MFA verification attempt hook, after a code was checked: `Err` (403
    /// `mfa_verification_rejected`) when it rejects.
    pub(crate) async fn mfa_attempt_hook(
        &self,
        user_id: Uuid,
        factor_id: Uuid,
        factor_type: &str,
        valid: bool,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        if !self.hook_enabled(HookName::MfaVerificationAttempt) {
            return Ok(());
        }
        let payload = json!({ "user_id": user_id, "factor_id": factor_id, "factor_type": factor_type, "valid": valid });
        let answer = self.call_hook(HookName::MfaVerificationAttempt, payload, client).await?;
        if rejected(&answer) {
            return Err(Error::Hook {
                status: 403,
                code: "mfa_verification_rejected",
                message: message_or(&answer, MFA_REJECTED),
            });
        }
        Ok(())
    }

    /// The before-user-created hook: `Err` with the receiver's refusal when it refuses
    /// the user about to be created (`user`: GoTrue's user object of it).
    pub(crate) async fn before_user_created_hook(&self, user: Value, client: &ClientInfo) -> Result<(), Error> {
        if !self.hook_enabled(HookName::BeforeUserCreated) {
            return Ok(());
        }
        self.call_hook(HookName::BeforeUserCreated, json!({ "user": user }), client).await.map(|_| ())
    }
}

/// `{decision: "reject"}`.
fn rejected(answer: &Value) -> bool {
    answer.get("decision").and_then(Value::as_str) == Some("reject")
}

fn message_or(answer: &Value, default: &str) -> String {
    answer.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or(default).to_owned()
}

/// The error a request fails with when its hook did not answer yes.
pub(crate) fn hook_error(failure: HookFailure) -> Error {
    match failure {
        HookFailure::Refused { http_code, message } => {
            let status = if (400..=599).contains(&http_code) { http_code } else { 400 };
            Error::Hook { status, code: "hook_refused", message }
        }
        HookFailure::Failed { status, code, message } => Error::Hook { status, code, message },
    }
}
