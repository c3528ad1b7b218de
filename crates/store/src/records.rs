use dcbhub_domain::{ApiKeyHash, ConsentPolicy, PartnerCode, PartnerStatus, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerRecord {
    pub id: i64,
    pub code: PartnerCode,
    pub name: String,
    pub status: PartnerStatus,
    pub consent: ConsentPolicy,
    pub receipts_enabled: bool,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewPartner {
    pub code: PartnerCode,
    pub name: String,
    pub consent: ConsentPolicy,
    pub receipts_enabled: bool,
    /// The first API key, created in the same transaction as the partner.
    pub first_key_id: String,
    pub first_key_hash: ApiKeyHash,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub partner_code: PartnerCode,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What authenticating an API key yields: the key's id and its partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRecord {
    pub key_id: String,
    pub partner: PartnerRecord,
}

/// A stored value that no longer parses: the database was changed behind the hub's back.
pub(crate) fn corrupt(e: dcbhub_domain::ParseError) -> crate::StoreError {
    crate::StoreError::Backend(format!("stored value does not parse: {e}"))
}
