//! Pieces shared by the OTT routes: naming the customer, the trace context, and the mapping
//! of core errors to the contract's errors (exhaustive, no catch-all arms).

use dcbhub_connectors::CallContext;
use dcbhub_core::accounts::AccountError;
use dcbhub_core::notifications::NotificationError;
use dcbhub_core::pins::PinError;
use dcbhub_core::transactions::TxError;
use dcbhub_domain::{Customer, Email, Msisdn};

use crate::error::ApiError;
use crate::middleware::TraceContext;

/// Exactly one of `msisdn` or `email`.
pub fn customer(msisdn: Option<&str>, email: Option<&str>) -> Result<Customer, ApiError> {
    match (msisdn, email) {
        (Some(m), None) => Ok(Customer::Msisdn(Msisdn::parse(m)?)),
        (None, Some(e)) => Ok(Customer::Email(Email::parse(e)?)),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "msisdn",
            "Give exactly one of msisdn or email, not both.",
        )),
        (None, None) => Err(ApiError::invalid(
            "msisdn",
            "Give exactly one of msisdn or email.",
        )),
    }
}

pub fn call_context(trace: &TraceContext) -> CallContext {
    CallContext {
        request_id: Some(trace.request_id.clone()),
        b3: trace
            .b3
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::NotFound => ApiError::AccountNotFound,
        AccountError::SuspendedNonPayment => ApiError::SuspendedNonPayment,
        AccountError::Suspended => ApiError::AccountSuspended,
        AccountError::Barred => ApiError::DcbBarred,
        AccountError::Unavailable { retry_after_secs } => {
            ApiError::CspUnavailable { retry_after_secs }
        }
    }
}

pub fn pin_error(e: PinError) -> ApiError {
    match e {
        PinError::Account(a) => account_error(a),
        PinError::NotFound => ApiError::PinNotFound,
        PinError::ResendTooSoon { retry_after_secs } => {
            ApiError::PinResendTooSoon { retry_after_secs }
        }
        PinError::SendLimit { retry_after_secs } => ApiError::PinSendLimit { retry_after_secs },
        PinError::AlreadyUsed => ApiError::PinAlreadyUsed,
        PinError::AttemptsExceeded => ApiError::PinAttemptsExceeded,
        PinError::Expired => ApiError::PinExpired,
        PinError::Invalid { attempts_remaining } => ApiError::InvalidPin { attempts_remaining },
        PinError::Store(e) => ApiError::internal("pin", e),
    }
}

pub fn tx_error(e: TxError) -> ApiError {
    match e {
        TxError::ConsentRequired => ApiError::ConsentRequired,
        TxError::InvalidConsent => ApiError::InvalidConsent,
        TxError::Account(a) => account_error(a),
        TxError::CurrencyNotSupported => ApiError::CurrencyNotSupported,
        TxError::AmountTooLarge => {
            ApiError::invalid("amount", "amount is larger than the configured maximum")
        }
        TxError::LimitExceeded => ApiError::SpendingLimitExceeded,
        TxError::RefundExceedsOriginal => ApiError::RefundExceedsOriginal,
        TxError::OriginalNotFound => ApiError::TransactionNotFound,
        TxError::RefundCustomerMismatch => ApiError::invalid(
            "msisdn",
            "The refund must name the customer of the original charge.",
        ),
        TxError::Conflict => ApiError::ExtTransactionIdConflict,
        TxError::CspUnavailable { retry_after_secs } => {
            ApiError::CspUnavailable { retry_after_secs }
        }
        TxError::Store(e) => ApiError::internal("transaction", e),
    }
}

pub fn notification_error(e: NotificationError) -> ApiError {
    match e {
        NotificationError::Account(a) => account_error(a),
        NotificationError::RateLimited { retry_after_secs } => {
            ApiError::TooManyRequests { retry_after_secs }
        }
        NotificationError::Store(e) => ApiError::internal("notification", e),
    }
}

/// The error a stored failure code answers with.
pub fn failure_error(code: Option<&str>) -> ApiError {
    match code.and_then(dcbhub_connectors::DeclineReason::from_code) {
        Some(dcbhub_connectors::DeclineReason::InsufficientFunds) => ApiError::InsufficientFunds,
        Some(dcbhub_connectors::DeclineReason::Declined) | None => ApiError::TransactionDeclined,
        Some(dcbhub_connectors::DeclineReason::AccountNotFound) => ApiError::AccountNotFound,
        Some(dcbhub_connectors::DeclineReason::SuspendedNonPayment) => {
            ApiError::SuspendedNonPayment
        }
        Some(dcbhub_connectors::DeclineReason::Suspended) => ApiError::AccountSuspended,
        Some(dcbhub_connectors::DeclineReason::Barred) => ApiError::DcbBarred,
    }
}
