//! One call to an HTTP hook, GoTrue's way: a signed POST of the JSON payload, 5 s for
//! the whole call, up to three attempts when the receiver cannot be reached or answers
//! 429/503 with `Retry-After`, answers over 200 KB refused, `{error: {http_code,
//! message}}` read as the receiver's refusal.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::signature::Secrets;

/// How long a hook call may take, every attempt included.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at most.
const ATTEMPTS: usize = 3;
/// The wait between attempts when the receiver names none.
const BACKOFF: Duration = Duration::from_millis(200);
/// The largest answer read.
pub const ANSWER_LIMIT: usize = 200 * 1024;

/// Why a hook call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookFailure {
    /// The receiver refused: `{error: {http_code, message}}` (http_code 0 when it gave
    /// none).
    Refused { http_code: u16, message: String },
    /// It could not be reached, timed out, or answered what a hook may not: GoTrue's
    /// status, error code and message for it.
    Failed { status: u16, code: &'static str, message: String },
}

impl HookFailure {
    fn failed(status: u16, code: &'static str, message: impl Into<String>) -> HookFailure {
        HookFailure::Failed { status, code, message: message.into() }
    }

    /// A line for logs: never the payload.
    pub fn describe(&self) -> String {
        match self {
            HookFailure::Refused { http_code, message } => format!("refused ({http_code}): {message}"),
            HookFailure::Failed { message, .. } => message.clone(),
        }
    }
}

/// Where a hook is, and how it is signed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub secrets: Secrets,
}

/// Posts `payload` to `endpoint`; the JSON answer (`Value::Null` for 204 or an empty
/// body). `id` is the `webhook-id`: the same on every attempt, so a receiver that saw
/// one attempt can tell the next is the same message.
pub async fn call(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    id: &str,
    payload: &Value,
) -> Result<Value, HookFailure> {
    let body = serde_json::to_vec(payload)
        .map_err(|e| HookFailure::failed(500, "unexpected_failure", format!("payload: {e}")))?;
    let started = Instant::now();
    let mut last = String::from("not attempted");
    for attempt in 0..ATTEMPTS {
        let left = HOOK_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let request = signed_post(http, &endpoint.url, &endpoint.secrets, id, body.clone(), left)
            .header("accept-encoding", "identity");
        let wait = match request.send().await {
            Err(e) if e.is_timeout() => {
                let message = format!("Failed to reach hook within maximum time of {} seconds", HOOK_TIMEOUT.as_secs());
                return Err(HookFailure::failed(422, "hook_timeout", message));
            }
            Err(e) => {
                last = format!("unreachable: {}", without_url(&e, "<hook>"));
                BACKOFF
            }
            Ok(response) => match response.status().as_u16() {
                204 => return Ok(Value::Null),
                200 | 202 => return read_answer(response).await,
                429 | 503 => {
                    let after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    match after.and_then(|v| v.trim().parse::<u64>().ok()) {
                        Some(secs) => {
                            last = format!("answered {} with Retry-After", response.status().as_u16());
                            Duration::from_secs(secs)
                        }
                        None => {
                            return Err(HookFailure::failed(
                                503,
                                "hook_unavailable",
                                "Service currently unavailable due to hook",
                            ))
                        }
                    }
                }
                status => return Err(failed_status(status, response).await),
            },
        };
        if attempt + 1 < ATTEMPTS {
            let left = HOOK_TIMEOUT.saturating_sub(started.elapsed());
            if wait >= left {
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
    tracing::warn!(attempts = ATTEMPTS, last = %last, "an auth hook could not be reached");
    Err(HookFailure::failed(422, "hook_timeout_after_retry", "Failed to reach hook after maximum retries"))
}

/// A reqwest error without the URL (which may hold a secret in its query).
/// A reqwest error as a log line, its URL (which may hold a secret in its query)
/// replaced by `stand_in`.
pub(crate) fn without_url(e: &reqwest::Error, stand_in: &str) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), stand_in);
    }
    text
}

/// A POST of `body` (JSON) to `url`, signed per Standard Webhooks under `id` with every
/// key of `secrets`, within `timeout`.
pub(crate) fn signed_post(
    http: &reqwest::Client,
    url: &str,
    secrets: &Secrets,
    id: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> reqwest::RequestBuilder {
    let timestamp = chrono::Utc::now().timestamp();
    http.post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", secrets.sign(id, timestamp, &body))
        .body(body)
}

/// A 4xx or 5xx answer other than 429 and 503: the receiver's refusal when it says one.
async fn failed_status(status: u16, response: reqwest::Response) -> HookFailure {
    match read_answer(response).await {
        Err(refused @ HookFailure::Refused { .. }) => refused,
        _ => HookFailure::failed(
            500,
            "unexpected_failure",
            format!("Unexpected status code returned from hook: {status}"),
        ),
    }
}

/// A 200's body: JSON, at most [`ANSWER_LIMIT`], not a refusal.
async fn read_answer(mut response: reqwest::Response) -> Result<Value, HookFailure> {
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media != "application/json" {
        let message = format!("Invalid JSON response. Received content-type: {content_type}");
        return Err(HookFailure::failed(400, "hook_payload_invalid_content_type", message));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > ANSWER_LIMIT {
                    let message = format!("Payload size exceeded size limit of {ANSWER_LIMIT} bytes");
                    return Err(HookFailure::failed(422, "hook_payload_over_size_limit", message));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                let message = format!("Error reading the hook's answer: {}", without_url(&e, "<hook>"));
                return Err(HookFailure::failed(500, "unexpected_failure", message));
            }
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| HookFailure::failed(500, "unexpected_failure", format!("Error unmarshaling JSON output: {e}")))?;
    match refusal(&value) {
        Some(refusal) => Err(refusal),
        None => Ok(value),
    }
}

/// `{error: {http_code, message}}` with a message: the receiver refusing.
fn refusal(value: &Value) -> Option<HookFailure> {
    let error = value.get("error")?;
    let message = error.get("message").and_then(Value::as_str).filter(|m| !m.is_empty())?;
    let http_code = error.get("http_code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
    Some(HookFailure::Refused { http_code, message: message.to_owned() })
}

/// The client hooks and webhooks are called with: no redirects, a user agent of ours.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(HOOK_TIMEOUT)
        .connect_timeout(HOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client of the hooks: {e}"))
}

/// A fresh message id.
pub fn message_id() -> String {
    message_id_of(Uuid::new_v4())
}

/// The `webhook-id` of a message kept in a row (an outbox's): the same on every attempt.
pub fn message_id_of(row: Uuid) -> String {
    format!("msg_{}", row.simple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_are_read_gotrue_s_way() {
        assert_eq!(
            refusal(&json!({"error": {"http_code": 403, "message": "no"}})),
            Some(HookFailure::Refused { http_code: 403, message: "no".to_owned() })
        );
        assert_eq!(refusal(&json!({"error": {"message": ""}})), None);
        assert_eq!(refusal(&json!({"claims": {}})), None);
    }
}
