//! Onboarding and managing partners and their keys; shared by the CLI and the admin API.

use std::sync::Arc;

use dcbhub_domain::{ApiKey, ConsentPolicy, PartnerCode, PartnerStatus};
use dcbhub_store::{ApiKeyRecord, NewPartner, PartnerRecord, Store, StoreError};

use crate::Authenticator;

#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("a partner with this code exists")]
    CodeTaken,
    #[error("no such partner")]
    PartnerNotFound,
    #[error("no such active key")]
    KeyNotFound,
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    #[error(transparent)]
    Store(StoreError),
}

/// A newly issued key: the only moment its clear text exists.
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub key: ApiKey,
}

/// A newly created partner and its first key, shown this once.
pub struct CreatedPartner {
    pub partner: PartnerRecord,
    pub key_id: String,
    pub key: ApiKey,
}

pub struct NewPartnerRequest {
    pub code: PartnerCode,
    pub name: String,
    pub consent: ConsentPolicy,
    pub receipts_enabled: bool,
}

#[derive(Clone)]
pub struct PartnerService {
    store: Arc<dyn Store>,
    auth: Option<Arc<Authenticator>>,
}

/// `key_` and 64 random bits in hex: key ids are public and only need to be unique.
fn key_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("key_{}", dcbhub_domain::hex_lower(&b))
}

impl PartnerService {
    /// `auth`, when given, is invalidated at once after changes made through this service.
    pub fn new(store: Arc<dyn Store>, auth: Option<Arc<Authenticator>>) -> Self {
        Self { store, auth }
    }

    fn changed(&self) {
        if let Some(a) = &self.auth {
            a.invalidate();
        }
    }

    pub async fn create(&self, req: NewPartnerRequest) -> Result<CreatedPartner, PartnerError> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(PartnerError::InvalidName("must be 1 to 100 characters"));
        }
        let key = ApiKey::generate();
        let key_id = key_id();
        let partner = self
            .store
            .create_partner(NewPartner {
                code: req.code,
                name: name.to_owned(),
                consent: req.consent,
                receipts_enabled: req.receipts_enabled,
                first_key_id: key_id.clone(),
                first_key_hash: key.hash(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => PartnerError::CodeTaken,
                other => PartnerError::Store(other),
            })?;
        self.changed();
        Ok(CreatedPartner {
            partner,
            key_id,
            key,
        })
    }

    pub async fn list(&self) -> Result<Vec<PartnerRecord>, PartnerError> {
        self.store
            .list_partners()
            .await
            .map_err(PartnerError::Store)
    }

    pub async fn get(&self, code: &PartnerCode) -> Result<PartnerRecord, PartnerError> {
        self.store
            .partner_by_code(code)
            .await
            .map_err(PartnerError::Store)?
            .ok_or(PartnerError::PartnerNotFound)
    }

    pub async fn set_status(
        &self,
        code: &PartnerCode,
        status: PartnerStatus,
    ) -> Result<PartnerRecord, PartnerError> {
        let p = self
            .store
            .set_partner_status(code, status)
            .await
            .map_err(|e| not_found_as(e, PartnerError::PartnerNotFound))?;
        self.changed();
        Ok(p)
    }

    pub async fn create_key(&self, code: &PartnerCode) -> Result<IssuedKey, PartnerError> {
        let key = ApiKey::generate();
        let record = self
            .store
            .create_api_key(code, &key_id(), &key.hash())
            .await
            .map_err(|e| not_found_as(e, PartnerError::PartnerNotFound))?;
        self.changed();
        Ok(IssuedKey { record, key })
    }

    pub async fn revoke_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
    ) -> Result<ApiKeyRecord, PartnerError> {
        let r = self
            .store
            .revoke_api_key(code, key_id)
            .await
            .map_err(|e| not_found_as(e, PartnerError::KeyNotFound))?;
        self.changed();
        Ok(r)
    }

    pub async fn list_keys(&self, code: &PartnerCode) -> Result<Vec<ApiKeyRecord>, PartnerError> {
        self.get(code).await?;
        self.store
            .list_api_keys(code)
            .await
            .map_err(PartnerError::Store)
    }
}

fn not_found_as(e: StoreError, mapped: PartnerError) -> PartnerError {
    match e {
        StoreError::NotFound => mapped,
        other => PartnerError::Store(other),
    }
}
