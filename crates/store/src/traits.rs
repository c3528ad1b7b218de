use async_trait::async_trait;
use dcbhub_domain::{ApiKeyHash, PartnerCode, PartnerStatus};

use crate::{ApiKeyRecord, AuthRecord, NewPartner, PartnerRecord, StoreError};

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

/// Everything the core needs from persistence.
pub trait Store: PartnerStore + MetaStore {}

impl<T: PartnerStore + MetaStore> Store for T {}
