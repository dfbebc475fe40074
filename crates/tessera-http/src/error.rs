//! One error shape for every response (SPEC §6), including axum's own rejections.

use axum::extract::rejection::{BytesRejection, FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_domain::{Error, ErrorKind, FieldError};
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request being served, for error bodies.
    pub static REQUEST_ID: String;
}

/// The current request's id, if any.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human sentence.
    pub detail: String,
    /// A stable CamelCase name, e.g. `EmailAlreadyExists`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// A stable snake_case code, e.g. `email_already_exists`.
    pub error_code: String,
    pub request_id: String,
    /// On 422 only: every broken rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorBody>>,
}

/// One broken rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl From<FieldError> for FieldErrorBody {
    fn from(e: FieldError) -> Self {
        Self { field: e.field, code: e.code, message: e.message }
    }
}

/// An error answer. Its response carries a copy of it in its extensions, so that a
/// surface with an error shape of its own (GoTrue's) answers what a shared extractor or
/// layer refused in that shape, from the error itself rather than from the body.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub type_name: &'static str,
    pub code: &'static str,
    pub detail: String,
    pub errors: Option<Vec<FieldError>>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error that exists only at the HTTP level.
    pub fn http(status: StatusCode, type_name: &'static str, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, type_name, code, detail: detail.into(), errors: None, retry_after: None }
    }

    /// 400 for a request the server cannot read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::http(StatusCode::BAD_REQUEST, "BadRequest", "bad_request", detail)
    }

    /// 404 for an unknown path.
    pub fn not_found() -> Self {
        Self::http(StatusCode::NOT_FOUND, "NotFound", "not_found", "Not found.")
    }

    /// 422 for one field.
    pub fn field(field: &str, code: &str, message: &str) -> Self {
        Error::field(field, code, message).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &e {
            Error::RateLimited { retry_after_secs }
            | Error::AccountLocked { retry_after_secs }
            | Error::Overloaded { retry_after_secs } => Some(*retry_after_secs),
            Error::Unavailable(_) => Some(5),
            _ => None,
        };
        // The cause of a 5xx goes to the log (inside the request's span, so with its
        // id); the body stays generic.
        match &e {
            Error::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            Error::Unavailable(cause) => tracing::warn!(cause = %cause, "dependency unavailable"),
            _ => {}
        }
        let detail = e.to_string();
        let (type_name, code) = (e.type_name(), e.code());
        let errors = match e {
            Error::Validation(list) => Some(list),
            _ => None,
        };
        Self { status, type_name, code, detail, errors, retry_after }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.detail.clone(),
            type_name: self.type_name.to_owned(),
            error_code: self.code.to_owned(),
            request_id: current_request_id(),
            errors: self.errors.clone().map(|v| v.into_iter().map(Into::into).collect()),
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res.extensions_mut().insert(self);
        res
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let field = field_of(&text);
                ApiError::from(Error::Validation(vec![FieldError::new(&field, "invalid", describe(&text))]))
            }
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("The body is not valid JSON."),
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::bad_request("Send the body as JSON with Content-Type: application/json.")
            }
            JsonRejection::BytesRejection(e) => body_rejection(e.status()),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        match r {
            FormRejection::FailedToDeserializeForm(e) => form_field_error(&e.body_text()),
            FormRejection::FailedToDeserializeFormBody(e) => form_field_error(&e.body_text()),
            FormRejection::BytesRejection(e) => body_rejection(e.status()),
            _ => ApiError::bad_request("The body is not a valid form."),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        ApiError::from(Error::Validation(vec![FieldError::new(&field_of(&text), "invalid", describe(&text))]))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        body_rejection(r.status())
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::not_found()
    }
}

fn form_field_error(text: &str) -> ApiError {
    ApiError::from(Error::Validation(vec![FieldError::new(&field_of(text), "invalid", describe(text))]))
}

fn body_rejection(status: StatusCode) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::http(status, "PayloadTooLarge", "payload_too_large", "The request body is too large.")
    } else {
        ApiError::bad_request("The request body could not be read.")
    }
}

/// The field serde names in its message (`missing field `x``, or `x: invalid type…`).
fn field_of(text: &str) -> String {
    if let Some(start) = text.find("field `") {
        let rest = &text[start + 7..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_owned();
        }
    }
    // "Failed to deserialize the JSON body into the target type: password: invalid type…"
    let tail = text.rsplit("target type: ").next().unwrap_or(text);
    match tail.split_once(':') {
        Some((path, _)) if !path.contains(' ') && !path.is_empty() => path.to_owned(),
        _ => "body".to_owned(),
    }
}

fn describe(text: &str) -> String {
    let tail = text.rsplit("target type: ").next().unwrap_or(text);
    let tail = tail.split(" at line ").next().unwrap_or(tail);
    let mut s = tail.trim().to_owned();
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    s.push('.');
    s
}
