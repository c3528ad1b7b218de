use dcbhub_domain::Timestamp;

use crate::NewNotification;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinStatus {
    Active,
    Validated,
    Consumed,
}

impl PinStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Validated => "VALIDATED",
            Self::Consumed => "CONSUMED",
        }
    }

    pub fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "ACTIVE" => Ok(Self::Active),
            "VALIDATED" => Ok(Self::Validated),
            "CONSUMED" => Ok(Self::Consumed),
            other => Err(crate::StoreError::Backend(format!(
                "unknown PIN status {other}"
            ))),
        }
    }
}

/// What a PIN challenge is bound to, besides its partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinBinding {
    pub customer: String,
    pub customer_kind: String,
    pub csp_id: String,
    /// `csp_id:account_ref`: one key per billing account, however the customer was named.
    pub account_key: String,
    pub ext_transaction_id: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRecord {
    pub id: String,
    pub partner_id: i64,
    pub binding: PinBinding,
    pub pin_hash: String,
    pub sends: u32,
    pub last_sent_at: Timestamp,
    pub expires_at: Timestamp,
    pub attempts: u32,
    pub status: PinStatus,
    pub consent_expires_at: Option<Timestamp>,
}

/// Limits applied atomically when a PIN is sent.
#[derive(Clone, Copy, Debug)]
pub struct PinSendPolicy {
    pub ttl_ms: i64,
    pub cooldown_ms: i64,
    pub max_sends: u32,
    pub max_per_account_per_hour: u32,
}

#[derive(Clone, Debug)]
pub struct NewPin {
    pub id: String,
    pub partner_id: i64,
    pub binding: PinBinding,
    pub pin_hash: String,
    /// The message carrying the PIN, queued in the same transaction.
    pub message: NewNotification,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinSendOutcome {
    Sent(PinRecord),
    NotFound,
    TooSoon {
        retry_after_secs: u32,
    },
    SendLimit {
        retry_after_secs: u32,
    },
    /// A resend of a challenge that is no longer active.
    NotActive(PinRecord),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinCheckOutcome {
    Valid(PinRecord),
    Invalid { attempts_remaining: u32 },
    Expired,
    AttemptsExceeded,
    AlreadyUsed,
    NotFound,
}
