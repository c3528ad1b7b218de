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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationStatus {
    Queued,
    Sent,
    Failed,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "QUEUED" => Ok(Self::Queued),
            "SENT" => Ok(Self::Sent),
            "FAILED" => Ok(Self::Failed),
            other => Err(crate::StoreError::Backend(format!(
                "unknown notification status {other}"
            ))),
        }
    }
}

/// A message to queue in the outbox.
#[derive(Clone, Debug)]
pub struct NewNotification {
    pub id: dcbhub_domain::NotificationId,
    pub partner_id: i64,
    pub partner_code: String,
    pub recipient: dcbhub_domain::Customer,
    pub csp_id: String,
    /// Which channel of that CSP delivers it (`sandbox`, `csp`, `smpp`, `smtp`).
    pub channel: String,
    /// `PIN`, `RECEIPT`, or the partner's `type` (`GENERIC`, …).
    pub kind: String,
    pub text: String,
    /// Replaces `text` once delivered or given up (PIN messages), so no PIN stays at rest.
    pub redacted_text: Option<String>,
    pub subject: Option<String>,
    pub ext_transaction_id: Option<String>,
    pub locale: Option<String>,
    /// Written already leased until then, by an instance that delivers it itself right after
    /// the commit; `None` queues it for any outbox worker to lease.
    pub leased_until: Option<Timestamp>,
}

impl NewNotification {
    /// The row as it is written (its first attempt leased when `leased_until` is set).
    pub fn to_record(&self, created_at: Timestamp) -> NotificationRecord {
        NotificationRecord {
            id: self.id.as_str().to_owned(),
            partner_id: self.partner_id,
            partner_code: self.partner_code.clone(),
            recipient: self.recipient.as_str().to_owned(),
            recipient_kind: self.recipient.kind().to_owned(),
            csp_id: self.csp_id.clone(),
            channel: self.channel.clone(),
            kind: self.kind.clone(),
            text: self.text.clone(),
            subject: self.subject.clone(),
            status: NotificationStatus::Queued,
            attempts: self.first_attempts(),
            next_attempt_at: self.leased_until.unwrap_or(created_at),
            last_error: None,
            created_at,
            updated_at: created_at,
        }
    }

    /// `attempts` of the new row: a leased row's first attempt has begun.
    pub fn first_attempts(&self) -> u32 {
        u32::from(self.leased_until.is_some())
    }

    /// The columns that differ between a row queued for the outbox and one written already
    /// delivered (`sent`: an in-process channel took it inside the same write, so its text is
    /// redacted at rest at once).
    pub(crate) fn as_written(&self, sent: bool, now: Timestamp) -> WrittenAs<'_> {
        if sent {
            WrittenAs {
                status: "SENT",
                attempts: 1,
                next_attempt_at: now,
                text: self.redacted_text.as_deref().unwrap_or(&self.text),
            }
        } else {
            WrittenAs {
                status: "QUEUED",
                attempts: self.first_attempts(),
                next_attempt_at: self.leased_until.unwrap_or(now),
                text: &self.text,
            }
        }
    }
}

pub(crate) struct WrittenAs<'a> {
    pub status: &'static str,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub text: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: String,
    pub partner_id: i64,
    pub partner_code: String,
    pub recipient: String,
    pub recipient_kind: String,
    pub csp_id: String,
    pub channel: String,
    pub kind: String,
    pub text: String,
    pub subject: Option<String>,
    pub status: NotificationStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Queued(NotificationRecord),
    /// The per partner and recipient cap is reached; the oldest counted message ages out
    /// after this many seconds.
    RateLimited {
        retry_after_secs: u32,
    },
}

/// What a delivery attempt ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    Sent,
    Retry { at: Timestamp, error: String },
    Failed { error: String },
}
