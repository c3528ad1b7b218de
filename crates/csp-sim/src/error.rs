//! Every non-2xx answer of the simulator: `{code, message}` JSON, as the CSP-side API says.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcbhub_connectors::DeclineReason;
use dcbhub_connectors::http::wire::{ErrorBody, codes};
use dcbhub_domain::ParseError;

#[derive(Debug)]
pub struct SimError {
    status: StatusCode,
    body: ErrorBody,
}

impl SimError {
    fn new(status: StatusCode, code: &str, message: &str) -> Self {
        Self {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn invalid(field: &str, message: &str) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message);
        error.body.field = Some(field.to_owned());
        error
    }

    /// A checked constructor refused a field; `field` names it as the request does.
    pub fn parse(field: &str, error: ParseError) -> Self {
        Self::invalid(field, error.reason)
    }

    pub fn not_supported(field: &str) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            codes::PARAMETER_NOT_SUPPORTED,
            "This field is not part of the request.",
        );
        error.body.field = Some(field.to_owned());
        error
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::AUTHORIZATION_FAILURE,
            "Missing or unknown API key",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "The body must be application/json",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            "The body is too large",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "No such path")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            "Method not allowed on this path",
        )
    }

    pub fn transaction_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::TRANSACTION_NOT_FOUND,
            "Transaction not found",
        )
    }

    pub fn unavailable(retry_after_secs: u32) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::CSP_UNAVAILABLE,
            "The CSP cannot take this request now; nothing was charged",
        );
        error.body.retry_after_seconds = Some(retry_after_secs);
        error
    }

    /// A refusal of the account or of the charge, with the status and the exact message of
    /// API.md §2 and §5.
    pub fn declined(reason: DeclineReason) -> Self {
        let (status, message) = match reason {
            DeclineReason::Declined => (StatusCode::PAYMENT_REQUIRED, "Transaction declined"),
            DeclineReason::InsufficientFunds => {
                (StatusCode::PAYMENT_REQUIRED, "Insufficient funds")
            }
            DeclineReason::AccountNotFound => (StatusCode::NOT_FOUND, "Account not found"),
            DeclineReason::SuspendedNonPayment => (
                StatusCode::BAD_REQUEST,
                "Account is suspended because of non-payment, or other billing issue",
            ),
            DeclineReason::Suspended => (StatusCode::BAD_REQUEST, "Account is suspended"),
            DeclineReason::Barred => (
                StatusCode::BAD_REQUEST,
                "Carrier billing is barred for this account",
            ),
        };
        Self::new(status, reason.code(), message)
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let retry_after = self.body.retry_after_seconds;
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
