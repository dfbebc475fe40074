//! `/v1/auth/otp`: sign-up and sign-in by a code sent by SMS (SPEC §5.14).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tessera_core::domain::{Error, Phone};
use tessera_core::session::issued::SignIn;
use utoipa::ToSchema;

use crate::dto::{LoginAnswer, MessageOut, MfaRequiredOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Client};
use crate::state::AppState;

/// A phone number to send a sign-in code to.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneOtpIn {
    /// In E.164 form, e.g. `+14155550123`.
    pub phone: String,
}

/// A phone number and the code sent to it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneVerifyIn {
    pub phone: String,
    pub code: String,
}

fn phone(raw: &str) -> Result<Phone, ApiError> {
    Phone::parse(raw).map_err(|e| ApiError::from(Error::Validation(vec![e])))
}

/// Send a sign-in code by SMS; a number no account has signs up. Always 202, whatever
/// the number.
#[utoipa::path(post, path = "/v1/auth/otp", tag = "auth", request_body = PhoneOtpIn,
    responses(
        (status = 202, body = MessageOut),
        (status = 400, body = ErrorBody, description = "`phone_provider_disabled`: no SMS_PROVIDER is configured"),
        (status = 422, body = ErrorBody, description = "Not an E.164 number"),
        (status = 429, body = ErrorBody, description = "RATE_LIMIT_SMS"),
    ))]
pub async fn otp(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<PhoneOtpIn>,
) -> Result<Response, ApiError> {
    let phone = phone(&body.phone)?;
    s.core.send_phone_code(&phone, true, None, &client).await?;
    let msg = "If the number can receive SMS, a code is on its way.";
    Ok((StatusCode::ACCEPTED, Json(MessageOut { message: msg.to_owned() })).into_response())
}

/// Sign in with the code sent by SMS: the number is confirmed. Sets the refresh cookie.
#[utoipa::path(post, path = "/v1/auth/otp/verify", tag = "auth", request_body = PhoneVerifyIn,
    responses(
        (status = 200, body = LoginAnswer, description = "Signed in, or the second step for a user with MFA on"),
        (status = 400, body = ErrorBody, description = "Invalid, expired or used code"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn otp_verify(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<PhoneVerifyIn>,
) -> Result<Response, ApiError> {
    let phone = phone(&body.phone)?;
    match s.core.sign_in_with_phone_code(&phone, &body.code, &client).await? {
        SignIn::Session(issued) => Ok(super::auth::signed_in(&s, *issued)),
        SignIn::MfaRequired(c) => Ok(Json(MfaRequiredOut::from(c)).into_response()),
    }
}
