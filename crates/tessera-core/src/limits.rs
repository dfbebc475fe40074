//! Rate limits (SPEC §5.4) and account lockout (SPEC §5.5), on the Kv port.

use serde_json::json;
use tessera_domain::{Email, Error};

use crate::app::Core;
use crate::audit::{record, AuditEvent};
use crate::caller::ClientInfo;
use crate::kv::RateDecision;
use hmac::Mac;

/// An action with a rate limit of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAction {
    /// Sign-ins, per client IP.
    Login,
    /// Sign-ups, per client IP.
    Register,
    /// Password-recovery requests, per email address.
    Recover,
    /// Verification and one-time-code sends, per address.
    Otp,
    /// Checks of a secret link token or code, and the requests that send one, per
    /// client IP.
    Verify,
    /// Anonymous sign-ups, per client IP.
    Anonymous,
    /// Requests to the OAuth provider's endpoints, per client IP.
    OAuth,
    /// SMS codes sent, per phone number.
    SmsNumber,
    /// SMS codes sent, per client IP.
    SmsClient,
}

impl RateAction {
    fn name(self) -> &'static str {
        match self {
            RateAction::Login => "login",
            RateAction::Register => "register",
            RateAction::Recover => "recover",
            RateAction::Otp => "otp",
            RateAction::Verify => "verify",
            RateAction::Anonymous => "anonymous",
            RateAction::OAuth => "oauth",
            RateAction::SmsNumber => "sms_number",
            RateAction::SmsClient => "sms_client",
        }
    }
}

/// Whether a client address is on this machine (127.0.0.0/8, `::1`, or such an IPv4
/// address mapped into IPv6): what `RATE_LIMIT_EXEMPT_LOOPBACK` exempts from the per-IP
/// limits.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The key under which an email's counters are kept: a keyed MAC of the normalised
/// address (128 bits, hex), so memory and Redis hold no address, and a guessed address
/// cannot be checked against them without the server's secret.
fn email_key(key: &[u8], raw: &str) -> String {
    let normalised = Email::parse(raw).map(|e| e.as_str().to_owned()).unwrap_or_else(|_| raw.trim().to_lowercase());
    hex::encode(&crate::crypto::mac(key, normalised.as_bytes()).finalize().into_bytes()[..16])
}

impl Core {
    /// Counts one request of `action` by `subject` (an IP, or an address for
    /// `Recover`/`Otp`). `None` when rate limiting is off.
    pub async fn rate_limit(&self, action: RateAction, subject: &str) -> Option<RateDecision> {
        if !self.settings.rate_limit_enabled {
            return None;
        }
        let limits = &self.settings.rate_limits;
        let windows = match action {
            RateAction::Login => &limits.login,
            RateAction::Register => &limits.register,
            RateAction::Recover => &limits.recover,
            RateAction::Otp => &limits.otp,
            RateAction::Verify => &limits.verify,
            RateAction::Anonymous => &limits.anonymous,
            RateAction::OAuth => &limits.oauth,
            RateAction::SmsNumber | RateAction::SmsClient => &limits.sms,
        };
        let subject = match action {
            RateAction::Recover | RateAction::Otp | RateAction::SmsNumber => email_key(&self.limit_key, subject),
            RateAction::Login
            | RateAction::Register
            | RateAction::Verify
            | RateAction::Anonymous
            | RateAction::OAuth
            | RateAction::SmsClient => subject.to_owned(),
        };
        let decision = self.kv.rate_hit(&format!("{}:{subject}", action.name()), windows).await;
        if !decision.allowed {
            metrics::counter!("tessera_rate_limited_total", "limit" => action.name()).increment(1);
        }
        Some(decision)
    }

    /// Like [`Core::rate_limit`], but an over-limit answer is an error.
    pub async fn enforce_rate_limit(&self, action: RateAction, subject: &str) -> Result<Option<RateDecision>, Error> {
        match self.rate_limit(action, subject).await {
            Some(d) if !d.allowed => Err(Error::RateLimited { retry_after_secs: d.retry_after_secs }),
            other => Ok(other),
        }
    }

    /// Reserves one sign-in attempt for `email` before any hash is computed: a locked
    /// email (or one with as many attempts under way as the threshold) answers 429.
    pub(crate) async fn lockout_reserve(&self, email: &str) -> Result<(), Error> {
        if !self.settings.rate_limit_enabled {
            return Ok(());
        }
        match self.kv.lock_reserve(&email_key(&self.limit_key, email), &self.settings.lockout).await {
            Some(secs) => Err(Error::AccountLocked { retry_after_secs: secs }),
            None => Ok(()),
        }
    }

    /// Gives back a reservation for an attempt refused before any work.
    pub(crate) async fn lockout_release(&self, email: &str) {
        if self.settings.rate_limit_enabled {
            self.kv.lock_release(&email_key(&self.limit_key, email)).await;
        }
    }

    /// Records a failed sign-in; audits the lockout when this failure causes one.
    pub(crate) async fn lockout_failure(&self, email: &str, client: &ClientInfo) -> Result<(), Error> {
        if !self.settings.rate_limit_enabled {
            return Ok(());
        }
        if let Some(secs) = self.kv.lock_fail(&email_key(&self.limit_key, email), &self.settings.lockout).await {
            let email = Email::parse(email).map(|e| e.as_str().to_owned()).unwrap_or_default();
            tracing::warn!(duration_secs = secs, "sign-in locked after repeated failures");
            metrics::counter!("tessera_lockouts_total").increment(1);
            let ev = AuditEvent {
                event: "lockout",
                user_id: None,
                actor_id: None,
                detail: json!({ "email": email, "duration_secs": secs }),
            };
            record(self.store.writer(), client, ev).await?;
        }
        Ok(())
    }

    /// Counts one request of `action` by the client's IP, unless it has none (the
    /// server's own work) or is on loopback with `RATE_LIMIT_EXEMPT_LOOPBACK`; over the
    /// limit is an error.
    pub async fn enforce_client_limit(&self, action: RateAction, client: &ClientInfo) -> Result<(), Error> {
        let loopback = client.ip.as_deref().and_then(|ip| ip.parse().ok()).is_some_and(is_loopback);
        match &client.limit_key {
            Some(key) if !(loopback && self.settings.rate_limit_exempt_loopback) => {
                self.enforce_rate_limit(action, key).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Checks a secret that a signed-in caller gives again: the password before a
    /// deletion or a password change, a code before a factor goes, a reauthentication
    /// nonce. Like every check of a secret it counts toward `RATE_LIMIT_VERIFY` for the
    /// client's IP, and like a sign-in it is refused while the account's address is
    /// locked, and a wrong one counts toward that lockout (SPEC §5.4, §5.5): a stolen
    /// access token is no oracle for the password or the codes. `check` answers whether
    /// the secret was right.
    pub(crate) async fn check_again(
        &self,
        email: &str,
        client: &ClientInfo,
        check: impl std::future::Future<Output = Result<bool, Error>>,
    ) -> Result<bool, Error> {
        self.enforce_client_limit(RateAction::Verify, client).await?;
        self.lockout_reserve(email).await?;
        match check.await {
            Ok(true) => {
                self.lockout_success(email).await;
                Ok(true)
            }
            Ok(false) => {
                self.lockout_failure(email, client).await?;
                Ok(false)
            }
            Err(e) => {
                self.lockout_release(email).await;
                Err(e)
            }
        }
    }

    /// Forgets an email's failures after a successful sign-in.
    pub(crate) async fn lockout_success(&self, email: &str) {
        if self.settings.rate_limit_enabled {
            self.kv.lock_clear(&email_key(&self.limit_key, email)).await;
        }
    }
}
