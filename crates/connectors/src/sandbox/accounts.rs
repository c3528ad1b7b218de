//! The table of API.md §9: which sandbox number behaves how.

use std::sync::OnceLock;

use dcbhub_domain::{Currency, Customer, MinorUnits};

use crate::{AccountOutcome, AccountType, DeclineReason};

/// Emails `<msisdn digits>@sandbox.dcbhub.test` name the account of that number.
pub const SANDBOX_EMAIL_DOMAIN: &str = "sandbox.dcbhub.test";
/// The drama-number range `+447700900000` to `+447700900999`, as digits before the last three.
pub const SANDBOX_RANGE_PREFIX: &str = "447700900";
/// What the prepaid account `+447700900001` starts with: 10.00 GBP.
pub const PREPAID_OPENING_BALANCE: MinorUnits = MinorUnits::new(1000);
/// The `Retry-After` of the number that refuses every charge as unavailable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

/// Every sandbox account bills in GBP.
pub fn sandbox_currency() -> Currency {
    static GBP: OnceLock<Currency> = OnceLock::new();
    // A constant, known-good input (the sandbox tests build it on every run).
    #[allow(clippy::expect_used)]
    *GBP.get_or_init(|| Currency::parse("GBP").expect("GBP is an active ISO 4217 code"))
}

/// One row of the sandbox table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Row {
    Postpaid,
    Prepaid,
    NotFound,
    SuspendedNonPayment,
    Suspended,
    Barred,
    DeclinesEveryCharge,
    AnswersLate,
    RefusesCharges,
}

/// A number of the sandbox range (whatever its row, `NotFound` included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Account<'a> {
    /// The MSISDN digits, which are also the account reference.
    pub digits: &'a str,
    pub row: Row,
}

impl<'a> Account<'a> {
    /// Finds the sandbox number a customer names: the number itself, or its email alias.
    pub fn find(customer: &'a Customer) -> Option<Self> {
        let digits = match customer {
            Customer::Msisdn(m) => m.digits(),
            Customer::Email(e) if e.domain() == SANDBOX_EMAIL_DOMAIN => e.local_part(),
            Customer::Email(_) => return None,
        };
        let suffix = digits.strip_prefix(SANDBOX_RANGE_PREFIX)?;
        if suffix.len() != 3 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let row = match suffix {
            "001" => Row::Prepaid,
            "002" => Row::NotFound,
            "003" => Row::SuspendedNonPayment,
            "004" => Row::Suspended,
            "005" => Row::Barred,
            "006" => Row::DeclinesEveryCharge,
            "007" => Row::AnswersLate,
            "008" => Row::RefusesCharges,
            _ => Row::Postpaid,
        };
        Some(Self { digits, row })
    }

    /// Why this account cannot be charged at all; `None` when it is active.
    pub fn refusal(&self) -> Option<DeclineReason> {
        match self.row {
            Row::NotFound => Some(DeclineReason::AccountNotFound),
            Row::SuspendedNonPayment => Some(DeclineReason::SuspendedNonPayment),
            Row::Suspended => Some(DeclineReason::Suspended),
            Row::Barred => Some(DeclineReason::Barred),
            Row::Postpaid
            | Row::Prepaid
            | Row::DeclinesEveryCharge
            | Row::AnswersLate
            | Row::RefusesCharges => None,
        }
    }

    pub fn outcome(&self) -> AccountOutcome {
        let active = |account_type| AccountOutcome::Active {
            account_type,
            currency: sandbox_currency(),
            account_ref: self.digits.to_owned(),
        };
        match self.row {
            Row::Prepaid => active(AccountType::Prepaid),
            Row::Postpaid | Row::DeclinesEveryCharge | Row::AnswersLate | Row::RefusesCharges => {
                active(AccountType::Postpaid)
            }
            Row::NotFound => AccountOutcome::NotFound,
            Row::SuspendedNonPayment => AccountOutcome::SuspendedNonPayment,
            Row::Suspended => AccountOutcome::Suspended,
            Row::Barred => AccountOutcome::Barred,
        }
    }
}

/// What the sandbox says about any customer.
pub(crate) fn account_outcome(customer: &Customer) -> AccountOutcome {
    Account::find(customer).map_or(AccountOutcome::NotFound, |a| a.outcome())
}
