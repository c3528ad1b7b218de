//! Account validation (API.md §2): find the customer's CSP and ask it.

use std::time::Instant;

use dcbhub_connectors::{AccountOutcome, AccountType, CallContext, ConnectorError};
use dcbhub_domain::{Currency, Customer, PartnerCode};

use crate::Hub;

/// A customer's account in good standing at one CSP.
#[derive(Clone, Debug)]
pub struct Account {
    pub csp_id: String,
    pub account_type: AccountType,
    pub currency: Currency,
    pub account_ref: String,
}

impl Account {
    /// One key per billing account, however the customer was named (MSISDN or email).
    pub fn key(&self) -> String {
        [self.csp_id.as_str(), ":", self.account_ref.as_str()].concat()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountError {
    NotFound,
    SuspendedNonPayment,
    Suspended,
    Barred,
    Unavailable { retry_after_secs: u32 },
}

impl Hub {
    pub async fn validate_account(
        &self,
        partner: &PartnerCode,
        customer: &Customer,
        ctx: &CallContext,
    ) -> Result<Account, AccountError> {
        let started = Instant::now();
        let resolved = self.csps.resolve(customer, partner, ctx).await;
        let outcome = match resolved {
            Ok(None) => Err(AccountError::NotFound),
            Ok(Some((entry, outcome))) => match outcome {
                AccountOutcome::Active {
                    account_type,
                    currency,
                    account_ref,
                } => Ok(Account {
                    csp_id: entry.id.clone(),
                    account_type,
                    currency,
                    account_ref,
                }),
                AccountOutcome::NotFound => Err(AccountError::NotFound),
                AccountOutcome::SuspendedNonPayment => Err(AccountError::SuspendedNonPayment),
                AccountOutcome::Suspended => Err(AccountError::Suspended),
                AccountOutcome::Barred => Err(AccountError::Barred),
            },
            Err(ConnectorError::Unavailable { retry_after_secs }) => {
                Err(AccountError::Unavailable { retry_after_secs })
            }
        };
        let label = match &outcome {
            Ok(_) => "active",
            Err(AccountError::NotFound) => "not_found",
            Err(AccountError::SuspendedNonPayment) => "suspended_non_payment",
            Err(AccountError::Suspended) => "suspended",
            Err(AccountError::Barred) => "barred",
            Err(AccountError::Unavailable { .. }) => "unavailable",
        };
        metrics::counter!("dcbhub_account_validations_total", "outcome" => label).increment(1);
        tracing::debug!(customer = %customer, outcome = label, ms = started.elapsed().as_millis() as u64, "account validated");
        outcome
    }
}
