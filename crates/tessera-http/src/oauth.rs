//! The browser's part of signing in with a provider (SPEC §5.11), shared by both
//! surfaces: the redirect to the provider with the cookie that binds its `state` to the
//! browser, and the redirect back to the app with the session (fragment), the code
//! (`?code=`) or GoTrue's error parameters.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::domain::Error;
use tessera_core::identity::{Landed, Landing, ToProvider};
use tessera_core::mail::links::url_encode;
use tessera_core::session::issued::SignIn;
use tessera_core::Core;

/// The cookie binding a sign-in's `state` to the browser that started it.
pub const STATE_COOKIE: &str = "tessera-oauth";
/// The only path it is sent to.
const COOKIE_PATH: &str = "/auth/v1/callback";

/// The cookie's `Set-Cookie`: HttpOnly, ten minutes, sent to the callback only. With
/// `SECURE_COOKIES` it is `SameSite=None; Secure`, so that it comes along when a provider
/// posts its answer (`form_post`); without, `Lax` (a top-level redirect back carries it).
fn state_cookie(value: &str, max_age: i64, secure: bool) -> String {
    let site = if secure { "SameSite=None; Secure" } else { "SameSite=Lax" };
    format!("{STATE_COOKIE}={value}; Max-Age={max_age}; Path={COOKIE_PATH}; HttpOnly; {site}")
}

fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The browser's secret, from the request's cookies.
pub fn browser_secret(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == STATE_COOKIE && !value.is_empty()).then(|| value.trim_matches('"').to_owned())
    })
}

/// A 302 to `location`.
fn found(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The redirect to the provider, setting the cookie.
pub fn to_provider(to: &ToProvider, secure: bool) -> Response {
    let mut res = found(&to.url);
    set_cookie(&mut res, &state_cookie(&to.browser_secret, tessera_core::identity::state::STATE_TTL_SECS, secure));
    res
}

/// `{url}` (a client that follows the redirect itself), setting the cookie.
pub fn to_provider_json(to: &ToProvider, secure: bool) -> Response {
    let mut res = axum::Json(serde_json::json!({ "url": to.url })).into_response();
    set_cookie(&mut res, &state_cookie(&to.browser_secret, tessera_core::identity::state::STATE_TTL_SECS, secure));
    res
}

/// `url` with `pairs` added to its query (before any fragment).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}{}", encoded.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `url` with its fragment replaced by `pairs`.
fn with_fragment(url: &str, pairs: &[(&str, &str)]) -> String {
    let base = url.split_once('#').map_or(url, |(b, _)| b);
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
    format!("{base}#{}", encoded.join("&"))
}

/// GoTrue's `error` of a failed sign-in: what the app reads first.
fn oauth_error(e: &Error) -> &'static str {
    match e {
        Error::ProviderUnavailable(_) | Error::Internal(_) | Error::Unavailable(_) => "server_error",
        Error::ProviderRefused(why) if why.starts_with("access_denied") => "access_denied",
        Error::AccountInactive | Error::SignupNotAllowed | Error::EmailNotVerified => "access_denied",
        _ => "invalid_request",
    }
}

/// The redirect that ends a callback, clearing the cookie: the session in the fragment,
/// the code in the query, or the error in both (as GoTrue sends them).
pub fn landing(landing: Landing, secure: bool) -> Response {
    let Landing { redirect_to, outcome } = landing;
    let location = match outcome {
        Ok(Landed::Code(code)) => with_query(&redirect_to, &[("code", &code)]),
        Ok(Landed::Session(sign_in)) => match *sign_in {
            SignIn::Session(issued) => {
                let expires_in = issued.expires_in.to_string();
                let expires_at = issued.expires_at.to_string();
                with_fragment(
                    &redirect_to,
                    &[
                        ("access_token", &issued.access_token),
                        ("expires_at", &expires_at),
                        ("expires_in", &expires_in),
                        ("refresh_token", &issued.refresh_token),
                        ("token_type", "bearer"),
                    ],
                )
            }
            SignIn::MfaRequired(_) => error_location(&redirect_to, &Error::MfaRequired),
        },
        Err(e) => error_location(&redirect_to, &e),
    };
    let mut res = found(&location);
    set_cookie(&mut res, &state_cookie("", 0, secure));
    res
}

/// A provider that could not be reached when a sign-in starts: the user lands back at the
/// app's (allowed) redirect with the error, as from the callback; any other refusal is
/// the caller's to answer.
pub fn unreachable_provider(core: &Core, redirect_to: Option<&str>, e: Error) -> Result<Response, Error> {
    match e {
        Error::ProviderUnavailable(_) => {
            tracing::info!(error = %e.cause(), "a sign-in provider could not be reached");
            let landing = Landing { redirect_to: core.allowed_redirect(redirect_to), outcome: Err(e) };
            Ok(self::landing(landing, core.settings.secure_cookies))
        }
        other => Err(other),
    }
}

fn error_location(redirect_to: &str, e: &Error) -> String {
    let description = e.to_string();
    let pairs = [("error", oauth_error(e)), ("error_code", e.code()), ("error_description", description.as_str())];
    with_fragment(&with_query(redirect_to, &pairs), &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_before_the_fragment() {
        assert_eq!(with_query("https://a.test/cb?x=1#f", &[("code", "c d")]), "https://a.test/cb?x=1&code=c%20d#f");
        assert_eq!(with_fragment("https://a.test/cb#old", &[("a", "1")]), "https://a.test/cb#a=1");
    }
}
