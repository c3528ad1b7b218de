//! The one interface every CSP connector implements, and the typed outcomes it returns.
//! Connectors are stateless translators: the core persists everything.

use std::sync::Arc;

use async_trait::async_trait;
use dcbhub_domain::{
    Currency, Customer, Description, Money, NotificationId, PartnerCode, TransactionId,
};

/// How the customer pays: against a bill, or from a prepaid balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountType {
    Prepaid,
    Postpaid,
}

impl AccountType {
    /// The wire word of API.md §2: `prepaid` or `postpaid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepaid => "prepaid",
            Self::Postpaid => "postpaid",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "prepaid" => Some(Self::Prepaid),
            "postpaid" => Some(Self::Postpaid),
            _ => None,
        }
    }
}

/// What a CSP says about a customer's billing account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountOutcome {
    /// `account_ref`: the CSP's opaque, stable reference of the billing account (for the
    /// sandbox: the MSISDN digits); never shown to partners; used by the hub to key spending
    /// limits per customer.
    Active {
        account_type: AccountType,
        currency: Currency,
        account_ref: String,
    },
    NotFound,
    SuspendedNonPayment,
    Suspended,
    Barred,
}

/// Headers of the partner's request that every CSP call carries on (`X-Request-ID`,
/// `X-B3-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallContext {
    pub request_id: Option<String>,
    /// Zipkin B3 headers as `(name, value)`, e.g. `("X-B3-TraceId", "…")`. Only names
    /// starting with `X-B3-` are sent on.
    pub b3: Vec<(String, String)>,
}

impl CallContext {
    pub fn with_request_id(request_id: impl Into<String>) -> Self {
        Self {
            request_id: Some(request_id.into()),
            b3: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeKind {
    Charge,
    Refund { original: TransactionId },
}

impl ChargeKind {
    /// The wire word: `CHARGE` or `REFUND`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Charge => "CHARGE",
            Self::Refund { .. } => "REFUND",
        }
    }
}

/// A charge or refund as sent to the CSP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The hub's id, which is also the CSP's idempotency key.
    pub transaction_id: TransactionId,
    pub customer: Customer,
    pub money: Money,
    pub description: Description,
    /// The CSP's charging code, mapped from the partner's `productCode`.
    pub charge_code: Option<String>,
    pub partner: PartnerCode,
    pub kind: ChargeKind,
}

/// Why a CSP refused a charge for good (nothing was charged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    Declined,
    InsufficientFunds,
    AccountNotFound,
    SuspendedNonPayment,
    Suspended,
    Barred,
}

impl DeclineReason {
    pub const ALL: [Self; 6] = [
        Self::Declined,
        Self::InsufficientFunds,
        Self::AccountNotFound,
        Self::SuspendedNonPayment,
        Self::Suspended,
        Self::Barred,
    ];

    /// The error code of API.md (also the CSP-side API's `code` / `failureCode`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Declined => "transaction-declined",
            Self::InsufficientFunds => "insufficient-funds",
            Self::AccountNotFound => "account-not-found",
            Self::SuspendedNonPayment => "suspended-non-payment",
            Self::Suspended => "account-suspended",
            Self::Barred => "dcb-barred",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The decline that matches an account that cannot be charged; `None` for an active one.
    pub fn for_account(outcome: &AccountOutcome) -> Option<Self> {
        match outcome {
            AccountOutcome::Active { .. } => None,
            AccountOutcome::NotFound => Some(Self::AccountNotFound),
            AccountOutcome::SuspendedNonPayment => Some(Self::SuspendedNonPayment),
            AccountOutcome::Suspended => Some(Self::Suspended),
            AccountOutcome::Barred => Some(Self::Barred),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    Success {
        csp_reference: String,
    },
    /// Final: nothing charged.
    Declined(DeclineReason),
    /// Timeout or unreadable answer: maybe charged; keep the transaction PENDING and ask
    /// `charge_status` later.
    Unknown,
    /// Refused before charging: nothing charged.
    Unavailable {
        retry_after_secs: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    Success {
        csp_reference: String,
    },
    Failed(DeclineReason),
    Pending,
    /// The CSP never saw this transaction id.
    NotFound,
    Unavailable,
}

/// A message for the customer, delivered by the CSP (SMS for an MSISDN, email for an email).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub id: NotificationId,
    pub to: Customer,
    pub text: String,
    pub partner: PartnerCode,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    Delivered,
    /// Worth retrying later.
    Transient(String),
    /// Never going to work (e.g. no such recipient): dead-letter it.
    Permanent(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("the CSP is unavailable; retry after {retry_after_secs} s")]
    Unavailable { retry_after_secs: u32 },
}

#[async_trait]
pub trait CspConnector: Send + Sync {
    /// The connector kind as configured: `sandbox`, `http`, …
    fn kind(&self) -> &'static str;

    async fn validate_account(
        &self,
        customer: &Customer,
        partner: &PartnerCode,
        ctx: &CallContext,
    ) -> Result<AccountOutcome, ConnectorError>;

    /// Charges or refunds; idempotent on `req.transaction_id`.
    async fn charge(&self, req: &ChargeRequest, ctx: &CallContext) -> ChargeOutcome;

    async fn charge_status(
        &self,
        transaction_id: &TransactionId,
        ctx: &CallContext,
    ) -> StatusOutcome;

    /// Delivers a message; idempotent on `n.id`.
    async fn notify(&self, n: &Notification, ctx: &CallContext) -> NotifyOutcome;

    /// The reserve-then-debit interface, for a CSP whose charges are two-phase (an online
    /// charging system). When present, the core drives a charge as reserve → persist the
    /// reference → debit, and its reconciler finishes or releases a persisted reference.
    fn two_phase(&self) -> Option<&dyn TwoPhaseCharging> {
        None
    }

    /// The in-memory interface, for a connector that answers at once without any I/O (the
    /// sandbox). When present, the core asks it within the store's write of the
    /// transaction, so the row and the answer commit together in one write.
    fn inline(&self) -> Option<Arc<dyn InlineCharging>> {
        None
    }
}

/// Charging answered in memory, inside the hub's own write. A crash loses the hub's
/// uncommitted write and the connector's books together (they live in one process); a write
/// that fails or is refused without a crash is undone here with [`InlineCharging::forget`].
pub trait InlineCharging: Send + Sync {
    /// Charges or refunds, as [`CspConnector::charge`] would; idempotent on the id.
    fn charge_now(&self, req: &ChargeRequest) -> ChargeOutcome;

    /// Undoes what `charge_now` booked for a transaction the hub did not store.
    fn forget(&self, transaction_id: &TransactionId);
}

/// The answer to a reservation (the first phase of a two-phase charge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The amount is held; `reference` names the reservation for the debit or release.
    Reserved { reference: String },
    /// Final: nothing held.
    Declined(DeclineReason),
    /// No usable answer: an amount may be held under a reference we do not know (the CSP
    /// lets such a reservation lapse); nothing was debited.
    Unknown,
    /// Refused before reserving: nothing held.
    Unavailable { retry_after_secs: u32 },
}

/// The answer to a debit or a release (the second phase of a two-phase charge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The CSP confirmed this very debit or release.
    Done,
    /// The CSP no longer knows the reservation: an earlier debit or release of it (whose
    /// answer was lost) finished it, or it lapsed. Treat as done.
    AlreadyFinished,
    /// No usable answer: it may or may not have happened; ask again with the reference.
    Unknown,
    /// Not done (refused, or the CSP could not be reached): the reservation still stands.
    Unavailable,
}

/// Two-phase charging: hold the amount, then debit it or release it by reference. Every
/// method may be called again with the same reference after a crash; a reference that is
/// already finished answers [`FinishOutcome::AlreadyFinished`].
#[async_trait]
pub trait TwoPhaseCharging: Send + Sync {
    async fn reserve(&self, req: &ChargeRequest, ctx: &CallContext) -> ReserveOutcome;

    async fn debit(&self, reference: &str, req: &ChargeRequest, ctx: &CallContext)
    -> FinishOutcome;

    async fn release(
        &self,
        reference: &str,
        req: &ChargeRequest,
        ctx: &CallContext,
    ) -> FinishOutcome;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decline_codes_round_trip() {
        for reason in DeclineReason::ALL {
            assert_eq!(DeclineReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(DeclineReason::from_code("csp-unavailable"), None);
        assert_eq!(
            DeclineReason::for_account(&AccountOutcome::Barred),
            Some(DeclineReason::Barred)
        );
    }

    #[test]
    fn account_type_words() {
        assert_eq!(AccountType::parse("prepaid"), Some(AccountType::Prepaid));
        assert_eq!(AccountType::parse("postpaid"), Some(AccountType::Postpaid));
        assert_eq!(AccountType::parse("Postpaid"), None);
        assert_eq!(AccountType::Prepaid.as_str(), "prepaid");
    }
}
