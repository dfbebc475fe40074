//! The auth hooks' settings (SPEC §5.13), GoTrue's names less `GOTRUE_`:
//! `HOOK_<NAME>_ENABLED`, `HOOK_<NAME>_URI` and `HOOK_<NAME>_SECRETS`.

use super::read::{flag, Reader};
use crate::hooks::dispatch::Endpoint;
use crate::hooks::signature::Secrets;

/// The hooks, by their GoTrue name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookName {
    CustomAccessToken,
    SendEmail,
    SendSms,
    MfaVerificationAttempt,
    PasswordVerificationAttempt,
    BeforeUserCreated,
}

impl HookName {
    pub const ALL: [HookName; 6] = [
        HookName::CustomAccessToken,
        HookName::SendEmail,
        HookName::SendSms,
        HookName::MfaVerificationAttempt,
        HookName::PasswordVerificationAttempt,
        HookName::BeforeUserCreated,
    ];

    /// The `<NAME>` of its settings.
    pub fn setting(self) -> &'static str {
        match self {
            HookName::CustomAccessToken => "CUSTOM_ACCESS_TOKEN",
            HookName::SendEmail => "SEND_EMAIL",
            HookName::SendSms => "SEND_SMS",
            HookName::MfaVerificationAttempt => "MFA_VERIFICATION_ATTEMPT",
            HookName::PasswordVerificationAttempt => "PASSWORD_VERIFICATION_ATTEMPT",
            HookName::BeforeUserCreated => "BEFORE_USER_CREATED",
        }
    }

    /// GoTrue's name of it, in the payload's `metadata.name`.
    pub fn gotrue_name(self) -> &'static str {
        match self {
            HookName::CustomAccessToken => "customize-access-token",
            HookName::SendEmail => "send-email",
            HookName::SendSms => "send-sms",
            HookName::MfaVerificationAttempt => "mfa-verification",
            HookName::PasswordVerificationAttempt => "password-verification",
            HookName::BeforeUserCreated => "before-user-created",
        }
    }
}

/// The enabled hooks.
#[derive(Debug, Clone, Default)]
pub struct HookSettings {
    enabled: Vec<(HookName, Endpoint)>,
}

impl HookSettings {
    /// Where `name` is called, when it is enabled.
    pub fn endpoint(&self, name: HookName) -> Option<&Endpoint> {
        self.enabled.iter().find(|(n, _)| *n == name).map(|(_, e)| e)
    }

    /// Hooks on loopback addresses, for tests: `(name, url, secrets)`.
    pub fn with(mut self, name: HookName, endpoint: Endpoint) -> HookSettings {
        self.enabled.retain(|(n, _)| *n != name);
        self.enabled.push((name, endpoint));
        self
    }
}

/// A receiver's URL: https, or http to a loopback address (a receiver beside the
/// server); the problem otherwise.
pub(crate) fn receiver_url(setting: &str, value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|_| format!("{setting}={value:?} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(value.to_owned()),
        "http" if loopback => Ok(value.to_owned()),
        _ => Err(format!("{setting} must be an https URL (or http to a loopback address)")),
    }
}

pub(crate) fn from_vars(r: &mut Reader<'_>) -> HookSettings {
    let mut out = HookSettings::default();
    for name in HookName::ALL {
        let var = |suffix: &str| format!("HOOK_{}{suffix}", name.setting());
        let get = |r: &Reader<'_>, suffix: &str| {
            r.vars.get(&var(suffix)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
        };
        let enabled = match get(r, "_ENABLED") {
            Some(v) => r.keep(flag(&var("_ENABLED"), &v)).unwrap_or(false),
            None => false,
        };
        if !enabled {
            continue;
        }
        let url = match get(r, "_URI") {
            Some(v) => receiver_url(&var("_URI"), &v).map_err(|p| r.problems.push(p)).ok(),
            None => {
                r.problems.push(format!("{} must be set when {}=true", var("_URI"), var("_ENABLED")));
                None
            }
        };
        let secrets = match get(r, "_SECRETS") {
            Some(v) => Secrets::parse(&var("_SECRETS"), &v).map_err(|p| r.problems.push(p)).ok(),
            None => {
                r.problems.push(format!("{} must be set when {}=true", var("_SECRETS"), var("_ENABLED")));
                None
            }
        };
        if let (Some(url), Some(secrets)) = (url, secrets) {
            out.enabled.push((name, Endpoint { url, secrets }));
        }
    }
    out
}

/// The rows of `tessera config docs` for the hooks.
pub(crate) const HOOK_DOCS: &[(&str, &str, &str)] = &[
    (
        "HOOK_<NAME>_ENABLED",
        "`false`",
        "call the auth hook <NAME> (SPEC §5.13, GoTrue's contracts): CUSTOM_ACCESS_TOKEN, SEND_EMAIL, SEND_SMS, \
         MFA_VERIFICATION_ATTEMPT, PASSWORD_VERIFICATION_ATTEMPT or BEFORE_USER_CREATED; see docs/hooks.md",
    ),
    ("HOOK_<NAME>_URI", "(none)", "where the hook is posted: an https URL, or http to a loopback address"),
    (
        "HOOK_<NAME>_SECRETS",
        "(none)",
        "the Standard Webhooks secret the calls are signed with, `v1,whsec_BASE64`; several joined by a vertical bar while \
         rotating (each signs every call)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_are_https_or_loopback() {
        assert!(receiver_url("X", "https://hooks.example.com/a").is_ok());
        assert!(receiver_url("X", "http://127.0.0.1:9000/a").is_ok());
        assert!(receiver_url("X", "http://localhost/a").is_ok());
        assert!(receiver_url("X", "http://[::1]:80/").is_ok());
        assert!(receiver_url("X", "http://hooks.example.com/a").is_err());
        assert!(receiver_url("X", "ftp://127.0.0.1/").is_err());
        assert!(receiver_url("X", "pg-functions://postgres/public/hook").is_err());
    }
}

/// The events a webhook can carry.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "session.created",
    "session.revoked",
    "password.changed",
    "email.verified",
    "phone.verified",
    "mfa.enabled",
    "mfa.disabled",
    "identity.linked",
    "identity.unlinked",
];

/// The event webhooks (`WEBHOOK_*`): where, signed how, which events.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    pub secrets: Secrets,
    pub events: Vec<&'static str>,
}

pub(crate) fn webhooks_from(
    r: &mut Reader<'_>,
    urls: &[String],
    secret: Option<&secrecy::SecretString>,
    events: &[String],
) -> Option<WebhookSettings> {
    use secrecy::ExposeSecret;
    if urls.is_empty() {
        return None;
    }
    let mut ok = Vec::new();
    for url in urls {
        match receiver_url("WEBHOOK_URLS", url) {
            Ok(u) => ok.push(u),
            Err(p) => r.problems.push(p),
        }
    }
    let secrets = match secret {
        Some(s) => Secrets::parse("WEBHOOK_SECRET", s.expose_secret()).map_err(|p| r.problems.push(p)).ok()?,
        None => {
            r.problems.push("WEBHOOK_SECRET must be set with WEBHOOK_URLS".to_owned());
            return None;
        }
    };
    let mut chosen = Vec::new();
    for e in events {
        match WEBHOOK_EVENTS.iter().find(|k| k.eq_ignore_ascii_case(e)) {
            Some(k) => chosen.push(*k),
            None => r
                .problems
                .push(format!("WEBHOOK_EVENTS names {e:?}, which is not one of {}", WEBHOOK_EVENTS.join(", "))),
        }
    }
    if chosen.is_empty() {
        chosen = WEBHOOK_EVENTS.to_vec();
    }
    Some(WebhookSettings { urls: ok, secrets, events: chosen })
}
