//! The one error type of the OTT API. Each variant is one row of the contract (API.md): its
//! status, its `code` and a safe message. Internal causes are logged where they are turned
//! into `SystemError`, never returned.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    InvalidRequest {
        field: Option<String>,
        message: String,
    },
    ParameterNotSupported {
        field: String,
    },
    PayloadTooLarge,
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed,
    AuthorizationFailure,
    PermissionDenied,
    TooManyRequests {
        retry_after_secs: u32,
    },
    SystemError,
    CspUnavailable {
        retry_after_secs: u32,
    },
    AccountNotFound,
    SuspendedNonPayment,
    AccountSuspended,
    DcbBarred,
    NotReady,
    PinNotFound,
    PinResendTooSoon {
        retry_after_secs: u32,
    },
    PinSendLimit {
        retry_after_secs: u32,
    },
    InvalidPin {
        attempts_remaining: u32,
    },
    PinExpired,
    PinAttemptsExceeded,
    PinAlreadyUsed,
    TransactionNotFound,
    TransactionDeclined,
    InsufficientFunds,
    SpendingLimitExceeded,
    CurrencyNotSupported,
    ConsentRequired,
    InvalidConsent,
    RefundExceedsOriginal,
    ExtTransactionIdConflict,
    NotificationNotFound,
    PartnerNotFound,
    PartnerExists,
    KeyNotFound,
    StatementNotFound,
    /// A FINAL settlement statement cannot be recomputed or changed.
    StatementFinal {
        message: String,
    },
    /// A draft statement that cannot be finalised yet; the message says why.
    StatementNotReady {
        message: String,
    },
    /// A settlement model, tax rate or period that clashes with another or a settled period.
    SettlementConflict {
        message: String,
    },
}

/// The body of every non-2xx answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A stable kebab-case token, e.g. `account-not-found`.
    pub code: &'static str,
    /// Human-readable text; never contains personal data or internal detail.
    pub message: String,
    /// The request field at fault, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// Logs an internal fault and answers `500 system-error`.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{context}");
        Self::SystemError
    }

    pub fn status(&self) -> StatusCode {
        self.describe().status
    }

    pub fn code(&self) -> &'static str {
        self.describe().code
    }

    /// Every variant's row of the contract, in one exhaustive match.
    fn describe(&self) -> Row {
        use StatusCode as S;
        let row = |status, code, message: &'static str| Row {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            attempts_remaining: None,
        };
        match self {
            Self::InvalidRequest { field, message } => Row {
                field: field.clone(),
                message: message.clone().into(),
                ..row(S::BAD_REQUEST, "invalid-request", "")
            },
            Self::ParameterNotSupported { field } => Row {
                field: Some(field.clone()),
                ..row(S::BAD_REQUEST, "parameter-not-supported", "Not supported.")
            },
            Self::PayloadTooLarge => row(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is larger than 16 KiB.",
            ),
            Self::UnsupportedMediaType => row(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Content-Type must be application/json.",
            ),
            Self::NotFound => row(S::NOT_FOUND, "not-found", "Not found."),
            Self::MethodNotAllowed => row(
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed.",
            ),
            Self::AuthorizationFailure => {
                row(S::UNAUTHORIZED, "authorization-failure", "Not authorized.")
            }
            Self::PermissionDenied => row(S::FORBIDDEN, "permission-denied", "Permission denied."),
            Self::TooManyRequests { retry_after_secs } => Row {
                retry_after: Some(*retry_after_secs),
                ..row(
                    S::TOO_MANY_REQUESTS,
                    "too-many-requests",
                    "Too many requests.",
                )
            },
            Self::SystemError => row(S::INTERNAL_SERVER_ERROR, "system-error", "System error."),
            Self::CspUnavailable { retry_after_secs } => Row {
                retry_after: Some(*retry_after_secs),
                ..row(
                    S::SERVICE_UNAVAILABLE,
                    "csp-unavailable",
                    "The customer's operator cannot be reached; try again later.",
                )
            },
            Self::AccountNotFound => row(S::NOT_FOUND, "account-not-found", "Account not found"),
            Self::SuspendedNonPayment => row(
                S::BAD_REQUEST,
                "suspended-non-payment",
                "Account is suspended because of non-payment, or other billing issue",
            ),
            Self::AccountSuspended => {
                row(S::BAD_REQUEST, "account-suspended", "Account is suspended")
            }
            Self::DcbBarred => row(
                S::BAD_REQUEST,
                "dcb-barred",
                "Carrier billing is barred for this account",
            ),
            Self::NotReady => Row {
                retry_after: Some(1),
                ..row(S::SERVICE_UNAVAILABLE, "not-ready", "Not ready.")
            },
            Self::PinNotFound => row(S::NOT_FOUND, "pin-not-found", "PIN not found."),
            Self::PinResendTooSoon { retry_after_secs } => Row {
                retry_after: Some(*retry_after_secs),
                ..row(
                    S::TOO_MANY_REQUESTS,
                    "pin-resend-too-soon",
                    "A PIN was sent moments ago; wait before resending.",
                )
            },
            Self::PinSendLimit { retry_after_secs } => Row {
                retry_after: Some(*retry_after_secs),
                ..row(
                    S::TOO_MANY_REQUESTS,
                    "pin-send-limit",
                    "Too many PINs were sent; try again later.",
                )
            },
            Self::InvalidPin { attempts_remaining } => Row {
                attempts_remaining: Some(*attempts_remaining),
                ..row(S::BAD_REQUEST, "invalid-pin", "The PIN is not correct.")
            },
            Self::PinExpired => row(S::BAD_REQUEST, "pin-expired", "The PIN has expired."),
            Self::PinAttemptsExceeded => row(
                S::BAD_REQUEST,
                "pin-attempts-exceeded",
                "Too many wrong attempts; request a new PIN.",
            ),
            Self::PinAlreadyUsed => row(
                S::BAD_REQUEST,
                "pin-already-used",
                "The PIN was already validated.",
            ),
            Self::TransactionNotFound => row(
                S::NOT_FOUND,
                "transaction-not-found",
                "Transaction not found.",
            ),
            Self::TransactionDeclined => row(
                S::PAYMENT_REQUIRED,
                "transaction-declined",
                "The operator declined the charge.",
            ),
            Self::InsufficientFunds => row(
                S::PAYMENT_REQUIRED,
                "insufficient-funds",
                "The prepaid balance is too low for this charge.",
            ),
            Self::SpendingLimitExceeded => row(
                S::PAYMENT_REQUIRED,
                "spending-limit-exceeded",
                "The charge would exceed the customer's spending limit.",
            ),
            Self::CurrencyNotSupported => Row {
                field: Some("currency".into()),
                ..row(
                    S::BAD_REQUEST,
                    "currency-not-supported",
                    "The currency is not the account's billing currency.",
                )
            },
            Self::ConsentRequired => Row {
                field: Some("pinId".into()),
                ..row(
                    S::BAD_REQUEST,
                    "consent-required",
                    "A validated PIN (pinId) is required.",
                )
            },
            Self::InvalidConsent => Row {
                field: Some("pinId".into()),
                ..row(
                    S::BAD_REQUEST,
                    "invalid-consent",
                    "The PIN consent cannot be used for this transaction.",
                )
            },
            Self::RefundExceedsOriginal => row(
                S::BAD_REQUEST,
                "refund-exceeds-original",
                "The refund is larger than what is left of the original charge.",
            ),
            Self::ExtTransactionIdConflict => Row {
                field: Some("extTransactionID".into()),
                ..row(
                    S::CONFLICT,
                    "ext-transaction-id-conflict",
                    "This extTransactionID was used for a different request.",
                )
            },
            Self::NotificationNotFound => row(
                S::NOT_FOUND,
                "notification-not-found",
                "Notification not found.",
            ),
            Self::PartnerNotFound => row(S::NOT_FOUND, "partner-not-found", "No such partner."),
            Self::PartnerExists => row(
                S::CONFLICT,
                "partner-exists",
                "A partner with this code exists.",
            ),
            Self::KeyNotFound => row(S::NOT_FOUND, "key-not-found", "No such active key."),
            Self::StatementNotFound => row(
                S::NOT_FOUND,
                "statement-not-found",
                "No such settlement statement.",
            ),
            Self::StatementFinal { message } => Row {
                message: message.clone().into(),
                ..row(S::CONFLICT, "statement-final", "")
            },
            Self::StatementNotReady { message } => Row {
                message: message.clone().into(),
                ..row(S::CONFLICT, "statement-not-ready", "")
            },
            Self::SettlementConflict { message } => Row {
                message: message.clone().into(),
                ..row(S::CONFLICT, "settlement-conflict", "")
            },
        }
    }

    pub fn body(&self) -> ErrorBody {
        let row = self.describe();
        ErrorBody {
            code: row.code,
            message: row.message.into_owned(),
            field: row.field,
            attempts_remaining: row.attempts_remaining,
            retry_after_seconds: row.retry_after,
        }
    }
}

struct Row {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    field: Option<String>,
    retry_after: Option<u32>,
    attempts_remaining: Option<u32>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let retry_after = body.retry_after_seconds;
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<dcbhub_domain::ParseError> for ApiError {
    fn from(e: dcbhub_domain::ParseError) -> Self {
        Self::InvalidRequest {
            field: Some(e.field.to_owned()),
            message: format!("{} {}", e.field, e.reason),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
