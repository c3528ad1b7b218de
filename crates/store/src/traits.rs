use async_trait::async_trait;
use dcbhub_domain::{ApiKeyHash, PartnerCode, PartnerStatus, Timestamp};

use crate::{
    ApiKeyRecord, AuthRecord, DeliveryResult, EnqueueOutcome, NewNotification, NewPartner,
    NotificationRecord, PartnerRecord, StoreError,
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
    /// Messages waiting, and when the oldest due one was queued.
    async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<Timestamp>), StoreError>;
}

/// Everything the core needs from persistence.
pub trait Store: PartnerStore + OutboxStore + MetaStore {}

impl<T: PartnerStore + OutboxStore + MetaStore> Store for T {}
