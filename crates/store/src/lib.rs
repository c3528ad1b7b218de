//! Persistence of dcbhub. The core sees only the traits in [`traits`]; [`sqlite`] (one
//! writer thread with group commit, reads on their own connections) and [`postgres`] (sqlx)
//! implement them, and one contract suite (`tests/contract.rs`) runs against both.

mod error;
mod migrations;
mod pin_records;
pub mod postgres;
mod records;
mod rules;
mod settlement_records;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod traits;
mod tx_records;

use std::sync::Arc;

pub use error::StoreError;
pub use pin_records::{
    NewPin, PinBinding, PinCheckOutcome, PinRecord, PinSendOutcome, PinSendPolicy, PinStatus,
};
pub use records::{
    ApiKeyRecord, AuthRecord, DeliveryResult, EnqueueOutcome, NewNotification, NewPartner,
    NotificationRecord, NotificationStatus, PartnerRecord,
};
pub use settlement_records::{
    CurrencyTotals, FINALISE_GRACE_MS, FULL_BP, FinaliseOutcome, LineIssue, LineKind, MAX_TAX_BP,
    ModelAddOutcome, ModelTerms, NewSettlementModel, NewTaxRate, Period, Prices, RunOutcome,
    SettlementModelRecord, Statement, StatementHeader, StatementLine, StatementStatus,
    TaxRateOutcome, TaxRateRecord, div_round_half_even, price,
};
pub use traits::{
    MetaStore, OutboxStore, PartnerStore, PinStore, SettlementStore, Store, TransactionStore,
};
pub use tx_records::{
    BeginOutcome, ChargedInline, InlineAnswer, InlineCsp, NewTransaction, Receipt, Settled,
    Settlement, SpendingLimits, TransactionQuery, TransactionRecord, TxStatus, TxType,
};

/// Opens the store a database URL names: `sqlite://PATH` or `postgres://…`, applying
/// migrations when `migrate` is set.
pub async fn open(url: &str, migrate: bool) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(path.as_ref(), migrate).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PgStore::connect(url, migrate).await?;
        Ok(Arc::new(store))
    } else {
        Err(StoreError::Config(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}
