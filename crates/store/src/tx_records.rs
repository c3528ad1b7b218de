use dcbhub_domain::{Customer, Money, ParseError, Timestamp};

use crate::NewNotification;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxStatus {
    Pending,
    Success,
    Failed,
}

impl TxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "SUCCESS" => Ok(Self::Success),
            "FAILED" => Ok(Self::Failed),
            other => Err(crate::StoreError::Backend(format!(
                "unknown transaction status {other}"
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxType {
    Charge,
    Refund,
}

impl TxType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "CHARGE",
            Self::Refund => "REFUND",
        }
    }

    pub fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "CHARGE" => Ok(Self::Charge),
            "REFUND" => Ok(Self::Refund),
            other => Err(crate::StoreError::Backend(format!(
                "unknown transaction type {other}"
            ))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRecord {
    pub id: String,
    pub partner_id: i64,
    pub ext_transaction_id: String,
    pub fingerprint: String,
    pub tx_type: TxType,
    pub status: TxStatus,
    pub customer: String,
    pub customer_kind: String,
    pub csp_id: String,
    pub account_key: String,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    pub product_code: Option<String>,
    pub tax_included: bool,
    pub original_id: Option<String>,
    /// For a refund: the original charge's partner id (`ext_transaction_id`).
    pub original_ext_transaction_id: Option<String>,
    pub refunded_minor: i64,
    pub csp_reference: Option<String>,
    /// A two-phase CSP's reservation (reserved, not yet debited when the row is PENDING).
    pub reservation_ref: Option<String>,
    pub failure_code: Option<String>,
    pub pin_id: Option<String>,
    pub processing_until: Timestamp,
    pub next_check_at: Timestamp,
    pub check_attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl TransactionRecord {
    pub fn customer(&self) -> Result<Customer, ParseError> {
        Customer::parse_stored(&self.customer_kind, &self.customer)
    }

    pub fn money(&self) -> Result<Money, ParseError> {
        Money::from_stored(self.amount_minor, &self.currency)
    }
}

/// Spending limits of one account, in its currency's minor units, with the windows' starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpendingLimits {
    pub per_transaction: i64,
    pub per_day: i64,
    pub per_month: i64,
    pub day_start: Timestamp,
    pub month_start: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewTransaction {
    pub id: String,
    pub partner_id: i64,
    pub ext_transaction_id: String,
    pub fingerprint: String,
    pub tx_type: TxType,
    pub customer: String,
    pub customer_kind: String,
    pub csp_id: String,
    pub account_key: String,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    pub product_code: Option<String>,
    pub tax_included: bool,
    /// For a refund: the original charge (the hub's id).
    pub original_id: Option<String>,
    /// A validated PIN consent to use up with this transaction.
    pub consume_pin: Option<String>,
    /// For a charge: limits to enforce, counting this account's successful and pending
    /// charges, and the day and month the charge itself counts in. A transaction written
    /// without them (a refund) is neither checked nor counted.
    pub limits: Option<SpendingLimits>,
    /// Until then, the request that writes the row is talking to the CSP.
    pub processing_until: Timestamp,
}

impl NewTransaction {
    /// The `PENDING` row this transaction is written as, so that a store need not read back
    /// what it has just inserted.
    pub fn into_record(
        self,
        created_at: Timestamp,
        original_ext_transaction_id: Option<String>,
    ) -> TransactionRecord {
        TransactionRecord {
            id: self.id,
            partner_id: self.partner_id,
            ext_transaction_id: self.ext_transaction_id,
            fingerprint: self.fingerprint,
            tx_type: self.tx_type,
            status: TxStatus::Pending,
            customer: self.customer,
            customer_kind: self.customer_kind,
            csp_id: self.csp_id,
            account_key: self.account_key,
            amount_minor: self.amount_minor,
            currency: self.currency,
            description: self.description,
            product_code: self.product_code,
            tax_included: self.tax_included,
            original_id: self.original_id,
            original_ext_transaction_id,
            refunded_minor: 0,
            csp_reference: None,
            reservation_ref: None,
            failure_code: None,
            pin_id: self.consume_pin,
            processing_until: self.processing_until,
            next_check_at: self.processing_until,
            check_attempts: 0,
            created_at,
            updated_at: created_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginOutcome {
    Created(TransactionRecord),
    /// A transaction with this `extTransactionID` exists for the partner.
    Existing(TransactionRecord),
    /// The PIN consent is no longer usable (used, or raced by another request).
    ConsentUnusable,
    LimitExceeded,
    /// Successful and pending refunds would exceed the original.
    RefundExceedsOriginal,
}

/// How a pending transaction ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    Success { csp_reference: String },
    Failed { failure_code: String },
}

/// What `settle_transaction` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The transaction as stored now.
    pub record: TransactionRecord,
    /// This call moved it out of PENDING (and queued its receipt); false when it was final
    /// already.
    pub moved: bool,
}

/// What an in-process CSP (the sandbox) answered. A charge asks it just before the store's
/// write of the row (a refund inside that write, after its checks); the booking and the row
/// stand or fall together: a crash loses both (the in-process CSP's books live in the same
/// process), and a write that refuses or fails has the booking undone by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InlineAnswer {
    /// The row is written in this final state, with the receipt for a success: already
    /// delivered when `receipt_sent` (an in-process channel took it with the answer), queued
    /// for the outbox otherwise.
    Final {
        settlement: Settlement,
        receipt_sent: bool,
    },
    /// Maybe charged: the row is written PENDING for the reconciler, due at `next_check_at`.
    Unknown { next_check_at: Timestamp },
    /// Refused before charging: nothing is written and the consent stays unused.
    Unavailable { retry_after_secs: u32 },
}

/// Asks the in-process CSP; the store calls it at most once, just before or inside the write.
pub type InlineCsp = Box<dyn FnOnce() -> InlineAnswer + Send>;

/// What `begin_inline` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargedInline {
    /// Written with the CSP's answer: final, or PENDING when the answer is unknown.
    Written(TransactionRecord),
    /// The CSP refused before charging; nothing was written.
    Unavailable { retry_after_secs: u32 },
    /// The store's checks refused it (or found it) before the CSP was asked; never
    /// [`BeginOutcome::Created`].
    NotBegun(BeginOutcome),
}

impl InlineAnswer {
    /// The in-process channel delivered the receipt with the answer.
    pub fn receipt_sent(&self) -> bool {
        matches!(
            self,
            Self::Final {
                receipt_sent: true,
                ..
            }
        )
    }
}

impl NewTransaction {
    /// The row `begin_inline` writes for the CSP's answer (`None`: refused before charging).
    pub fn into_answered(
        self,
        answer: &InlineAnswer,
        created_at: Timestamp,
        original_ext_transaction_id: Option<String>,
    ) -> Option<TransactionRecord> {
        self.into_record(created_at, original_ext_transaction_id)
            .answered(answer)
    }
}

impl TransactionRecord {
    /// This new row as the CSP's answer leaves it (`None`: refused before charging).
    pub fn answered(mut self, answer: &InlineAnswer) -> Option<Self> {
        match answer {
            InlineAnswer::Final {
                settlement: Settlement::Success { csp_reference },
                ..
            } => {
                self.status = TxStatus::Success;
                self.csp_reference = Some(csp_reference.clone());
            }
            InlineAnswer::Final {
                settlement: Settlement::Failed { failure_code },
                ..
            } => {
                self.status = TxStatus::Failed;
                self.failure_code = Some(failure_code.clone());
            }
            // As `defer_transaction` leaves it: a twin no longer waits for this request.
            InlineAnswer::Unknown { next_check_at } => {
                self.next_check_at = *next_check_at;
                self.processing_until = self.processing_until.min(self.created_at);
            }
            InlineAnswer::Unavailable { .. } => return None,
        }
        Some(self)
    }
}

/// A page of the care search.
#[derive(Clone, Debug)]
pub struct TransactionQuery {
    pub customer: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub limit: u32,
    /// Continue after this transaction id (the last of the previous page).
    pub after: Option<String>,
}

/// Which notification to queue with a final state.
pub type Receipt = Option<NewNotification>;
