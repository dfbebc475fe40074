//! The SMS port's settings (SPEC §5.14): which provider, its credentials, and the test
//! numbers.

use secrecy::SecretString;

use super::read::Reader;

/// Where SMS go.
#[derive(Debug, Clone)]
pub enum SmsProvider {
    Twilio {
        account_sid: String,
        auth_token: SecretString,
        from: String,
    },
    MessageBird {
        access_key: SecretString,
        originator: String,
    },
    Vonage {
        api_key: String,
        api_secret: SecretString,
        from: String,
    },
    /// The send-SMS hook (`HOOK_SEND_SMS_*`).
    Hook,
    /// Development: the message goes to the log.
    Log,
}

impl SmsProvider {
    pub fn name(&self) -> &'static str {
        match self {
            SmsProvider::Twilio { .. } => "twilio",
            SmsProvider::MessageBird { .. } => "messagebird",
            SmsProvider::Vonage { .. } => "vonage",
            SmsProvider::Hook => "hook",
            SmsProvider::Log => "log",
        }
    }
}

/// The SMS port: none when phone sign-in is off.
#[derive(Debug, Clone, Default)]
pub struct SmsSettings {
    pub provider: Option<SmsProvider>,
    /// The provider's API base, instead of its public one.
    pub base_url: Option<String>,
    /// Numbers (E.164 digits) that get no SMS and take a fixed code.
    pub test_otps: Vec<(String, String)>,
}

fn need<T>(r: &mut Reader<'_>, value: Option<T>, name: &str, provider: &str) -> Option<T> {
    if value.is_none() {
        r.problems.push(format!("{name} must be set with SMS_PROVIDER={provider}"));
    }
    value
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn from_parts(
    r: &mut Reader<'_>,
    provider: Option<&str>,
    twilio: (Option<String>, Option<SecretString>, Option<String>),
    messagebird: (Option<SecretString>, Option<String>),
    vonage: (Option<String>, Option<SecretString>, Option<String>),
    base_url: Option<String>,
    test_otp: &[String],
    hook_enabled: bool,
) -> SmsSettings {
    let provider = match provider.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("twilio") => {
            let sid = need(r, twilio.0, "SMS_TWILIO_ACCOUNT_SID", "twilio");
            let token = need(r, twilio.1, "SMS_TWILIO_AUTH_TOKEN", "twilio");
            let from = need(r, twilio.2, "SMS_TWILIO_MESSAGE_SERVICE_SID", "twilio");
            match (sid, token, from) {
                (Some(account_sid), Some(auth_token), Some(from)) => {
                    Some(SmsProvider::Twilio { account_sid, auth_token, from })
                }
                _ => None,
            }
        }
        Some("messagebird") => {
            let key = need(r, messagebird.0, "SMS_MESSAGEBIRD_ACCESS_KEY", "messagebird");
            let originator = need(r, messagebird.1, "SMS_MESSAGEBIRD_ORIGINATOR", "messagebird");
            match (key, originator) {
                (Some(access_key), Some(originator)) => Some(SmsProvider::MessageBird { access_key, originator }),
                _ => None,
            }
        }
        Some("vonage") => {
            let key = need(r, vonage.0, "SMS_VONAGE_API_KEY", "vonage");
            let secret = need(r, vonage.1, "SMS_VONAGE_API_SECRET", "vonage");
            let from = need(r, vonage.2, "SMS_VONAGE_FROM", "vonage");
            match (key, secret, from) {
                (Some(api_key), Some(api_secret), Some(from)) => {
                    Some(SmsProvider::Vonage { api_key, api_secret, from })
                }
                _ => None,
            }
        }
        Some("hook") => {
            if !hook_enabled {
                r.problems
                    .push("SMS_PROVIDER=hook needs HOOK_SEND_SMS_ENABLED=true (and its URI and secrets)".to_owned());
            }
            Some(SmsProvider::Hook)
        }
        Some("log") => Some(SmsProvider::Log),
        Some(other) => {
            r.problems.push(format!("SMS_PROVIDER={other:?} is not one of twilio, messagebird, vonage, hook, log"));
            None
        }
    };
    if let Some(url) = &base_url {
        if !matches!(url::Url::parse(url).map(|u| u.scheme().to_owned()).as_deref(), Ok("http" | "https")) {
            r.problems.push(format!("SMS_PROVIDER_URL={url:?} is not an http(s) URL"));
        }
    }
    let mut test_otps = Vec::new();
    for pair in test_otp {
        match pair.split_once('=').map(|(p, c)| (tessera_domain::Phone::parse_lenient(p.trim()), c.trim())) {
            Some((Ok(phone), code)) if !code.is_empty() && code.chars().all(|c| c.is_ascii_digit()) => {
                test_otps.push((phone.digits().to_owned(), code.to_owned()))
            }
            _ => r.problems.push(format!("SMS_TEST_OTP holds {pair:?}, not PHONE=DIGITS")),
        }
    }
    SmsSettings { provider, base_url: base_url.map(|u| u.trim_end_matches('/').to_owned()), test_otps }
}
