use async_trait::async_trait;
use dcbhub_domain::{ApiKeyHash, PartnerCode, PartnerStatus, Timestamp};

use crate::settlement_records::{
    FinaliseOutcome, ModelAddOutcome, NewSettlementModel, NewTaxRate, Period, RunOutcome,
    SettlementModelRecord, Statement, StatementHeader, TaxRateOutcome, TaxRateRecord,
};
use crate::{
    ApiKeyRecord, AuthRecord, BeginOutcome, ChargedInline, DeliveryResult, EnqueueOutcome,
    InlineCsp, NewNotification, NewPartner, NewPin, NewTransaction, NotificationRecord,
    PartnerRecord, PinCheckOutcome, PinRecord, PinSendOutcome, PinSendPolicy, Receipt, Settled,
    Settlement, StoreError, TransactionQuery, TransactionRecord,
};

/// Partners (OTT organisations) and their API keys.
#[async_trait]
pub trait PartnerStore: Send + Sync {
    /// Creates a partner with its first key; `Duplicate("partners.code")` if the code is taken.
    async fn create_partner(&self, new: NewPartner) -> Result<PartnerRecord, StoreError>;
    async fn list_partners(&self) -> Result<Vec<PartnerRecord>, StoreError>;
    async fn partner_by_code(
        &self,
        code: &PartnerCode,
    ) -> Result<Option<PartnerRecord>, StoreError>;
    /// `NotFound` if there is no such partner.
    async fn set_partner_status(
        &self,
        code: &PartnerCode,
        status: PartnerStatus,
    ) -> Result<PartnerRecord, StoreError>;
    /// `NotFound` if there is no such partner.
    async fn create_api_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
        hash: &ApiKeyHash,
    ) -> Result<ApiKeyRecord, StoreError>;
    /// `NotFound` if the partner has no such unrevoked key.
    async fn revoke_api_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
    ) -> Result<ApiKeyRecord, StoreError>;
    async fn list_api_keys(&self, code: &PartnerCode) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// The partner of an unrevoked key with this hash (suspended partners included: the
    /// caller answers them differently from unknown keys).
    async fn find_api_key(&self, hash: &ApiKeyHash) -> Result<Option<AuthRecord>, StoreError>;
    /// A number that grows with every change to partners or keys.
    async fn config_version(&self) -> Result<i64, StoreError>;
}

/// Health of the store itself.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// The backend's name, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Ok when the database answers and every migration this build knows is applied.
    async fn ready(&self) -> Result<(), StoreError>;
}

/// The notification outbox. Rows are leased by pushing `next_attempt_at` past the lease, so
/// a worker that dies leaves its rows due again once the lease runs out, and a lease is
/// identified by the attempt number it set (a late completion of an old lease is ignored).
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a message; with `max_per_hour`, refuses it when the partner already queued
    /// that many for this recipient in the last hour (checked atomically with the insert).
    async fn enqueue_notification(
        &self,
        n: NewNotification,
        max_per_hour: Option<u32>,
    ) -> Result<EnqueueOutcome, StoreError>;
    async fn notification(
        &self,
        partner_id: i64,
        id: &str,
    ) -> Result<Option<NotificationRecord>, StoreError>;
    /// Takes up to `max` due messages for `lease_ms`, counting an attempt on each.
    async fn lease_notifications(
        &self,
        now: Timestamp,
        max: u32,
        lease_ms: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError>;
    /// Records the end of attempt `attempt`; false when that lease is no longer current.
    async fn complete_notification(
        &self,
        id: &str,
        attempt: u32,
        result: DeliveryResult,
    ) -> Result<bool, StoreError>;
    /// Records the ends of several attempts in one write; one flag per entry, as
    /// [`OutboxStore::complete_notification`] answers.
    async fn complete_notifications(
        &self,
        done: Vec<(String, u32, DeliveryResult)>,
    ) -> Result<Vec<bool>, StoreError>;
    /// Messages waiting, and when the oldest due one was queued.
    async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<Timestamp>), StoreError>;
}

/// PIN challenges. Every check and count happens inside one database transaction, so
/// concurrent requests (on any number of instances) never get more than the limits allow.
#[async_trait]
pub trait PinStore: Send + Sync {
    /// Creates a challenge and queues its message, unless the account's hourly cap is used up.
    async fn create_pin(
        &self,
        new: NewPin,
        policy: PinSendPolicy,
    ) -> Result<PinSendOutcome, StoreError>;
    /// Replaces the code of an active challenge (the old one dies, attempts are kept) and
    /// queues the new message, within the cooldown and send caps.
    async fn resend_pin(
        &self,
        partner_id: i64,
        pin_id: &str,
        new_hash: String,
        message: NewNotification,
        policy: PinSendPolicy,
    ) -> Result<PinSendOutcome, StoreError>;
    /// Counts one attempt and compares `presented_hash` in constant time.
    async fn check_pin(
        &self,
        partner_id: i64,
        pin_id: &str,
        presented_hash: String,
        max_attempts: u32,
        consent_window_ms: i64,
    ) -> Result<PinCheckOutcome, StoreError>;
    async fn pin(&self, partner_id: i64, pin_id: &str) -> Result<Option<PinRecord>, StoreError>;
}

/// Charges and refunds.
#[async_trait]
pub trait TransactionStore: Send + Sync {
    /// Writes a new PENDING transaction, or finds the existing one with the same
    /// `extTransactionID`. Spending limits, refundable amounts and the consent are checked
    /// and used atomically with the insert.
    async fn begin_transaction(&self, new: NewTransaction) -> Result<BeginOutcome, StoreError>;
    /// For a CSP that answers in process: the checks of `begin_transaction` and the row
    /// written with `csp`'s answer (and `receipt` queued with a success), in one write
    /// instead of a PENDING row and a settle. `csp` is asked inside the database transaction
    /// after the checks (SQLite) or just before the one write that checks and stores it
    /// with the charges of other requests (PostgreSQL's group commit); after `NotBegun` the
    /// caller undoes what the CSP booked.
    async fn begin_inline(
        &self,
        new: NewTransaction,
        csp: InlineCsp,
        receipt: Receipt,
    ) -> Result<ChargedInline, StoreError>;
    /// Moves a PENDING transaction to its final state (queuing `receipt` with it); a
    /// transaction already final stays unchanged (and no receipt is queued).
    async fn settle_transaction(
        &self,
        id: &str,
        settlement: Settlement,
        receipt: Receipt,
    ) -> Result<Settled, StoreError>;
    /// Removes a PENDING transaction the CSP refused before charging, giving back its PIN
    /// consent: the partner may send the same `extTransactionID` again.
    async fn abandon_transaction(&self, id: &str) -> Result<(), StoreError>;
    /// Keeps a two-phase CSP's reservation with a PENDING transaction, before it is debited.
    async fn record_reservation(&self, id: &str, reference: &str) -> Result<(), StoreError>;
    /// Schedules the reconciler's next look at a PENDING transaction.
    async fn defer_transaction(&self, id: &str, next_check_at: Timestamp)
    -> Result<(), StoreError>;
    async fn transaction_by_ext(
        &self,
        partner_id: i64,
        ext_transaction_id: &str,
    ) -> Result<Option<TransactionRecord>, StoreError>;
    /// Takes up to `max` PENDING transactions due for a look and not being processed by a
    /// request, for `lease_ms`.
    async fn lease_pending(
        &self,
        now: Timestamp,
        max: u32,
        lease_ms: i64,
    ) -> Result<Vec<TransactionRecord>, StoreError>;
    /// A customer's transactions in a time range, oldest first, for customer care.
    async fn search_transactions(
        &self,
        q: TransactionQuery,
    ) -> Result<Vec<TransactionRecord>, StoreError>;
}

/// Settlement models, tax rates and statements. Statements are aggregated by the database;
/// a FINAL statement never changes (the database refuses it).
#[async_trait]
pub trait SettlementStore: Send + Sync {
    /// Adds a model; an open-ended model of the same partner and product that started
    /// earlier is closed where an open-ended new one starts.
    async fn add_settlement_model(
        &self,
        new: NewSettlementModel,
    ) -> Result<ModelAddOutcome, StoreError>;
    /// Models of one partner (or all), by partner, product and start.
    async fn list_settlement_models(
        &self,
        partner_id: Option<i64>,
    ) -> Result<Vec<SettlementModelRecord>, StoreError>;
    async fn set_tax_rate(&self, new: NewTaxRate) -> Result<TaxRateOutcome, StoreError>;
    async fn list_tax_rates(&self) -> Result<Vec<TaxRateRecord>, StoreError>;
    /// Computes the draft of a partner and period (one statement per partner and period:
    /// a second run recomputes the same one), unless it is final.
    async fn run_statement(
        &self,
        partner_id: i64,
        period: Period,
        now: dcbhub_domain::Timestamp,
    ) -> Result<RunOutcome, StoreError>;
    /// Makes a draft final, once its period is over, none of its transactions is pending,
    /// every line is priced and a recomputation gives exactly its lines.
    async fn finalise_statement(
        &self,
        id: i64,
        now: dcbhub_domain::Timestamp,
    ) -> Result<FinaliseOutcome, StoreError>;
    async fn statement(&self, id: i64) -> Result<Option<Statement>, StoreError>;
    /// Statements of one partner (or all), newest period first.
    async fn list_statements(
        &self,
        partner_id: Option<i64>,
    ) -> Result<Vec<StatementHeader>, StoreError>;
}

/// Everything the core needs from persistence.
pub trait Store:
    PartnerStore + OutboxStore + PinStore + TransactionStore + SettlementStore + MetaStore
{
}

impl<T: PartnerStore + OutboxStore + PinStore + TransactionStore + SettlementStore + MetaStore>
    Store for T
{
}
