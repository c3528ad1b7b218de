//! The hub's wiring as the core sees it: the store, the CSPs with their per-CSP settings,
//! the delivery channels, and the policy numbers. Built once at start-up by the binary.

use std::collections::HashMap;
use std::sync::Arc;

use dcbhub_connectors::{CspRegistry, SandboxState};
use dcbhub_domain::{Currency, MinorUnits, Secret};
use dcbhub_notify::Channel;
use dcbhub_store::Store;

/// Spending limits of one CSP's customers, in one currency.
#[derive(Clone, Copy, Debug)]
pub struct LimitPolicy {
    pub currency: Currency,
    pub per_transaction: MinorUnits,
    pub per_day: MinorUnits,
    pub per_month: MinorUnits,
}

/// Which channel carries a CSP's messages: its own API (`csp`), SMPP, SMTP, or the sandbox
/// inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Csp,
    Smpp,
    Smtp,
    Sandbox,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csp => "csp",
            Self::Smpp => "smpp",
            Self::Smtp => "smtp",
            Self::Sandbox => "sandbox",
        }
    }
}

/// What the hub knows about one CSP besides its connector.
pub struct CspSettings {
    pub limits: Option<LimitPolicy>,
    pub sms_channel: ChannelKind,
    pub email_channel: ChannelKind,
    pub smpp: Option<Arc<dyn Channel>>,
    pub smtp: Option<Arc<dyn Channel>>,
    /// The CSP's charging code for a partner's product code.
    pub charge_codes: HashMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct PinPolicy {
    pub length: u32,
    pub ttl_ms: i64,
    pub max_attempts: u32,
    pub resend_cooldown_ms: i64,
    pub max_sends: u32,
    pub max_per_customer_per_hour: u32,
    pub consent_window_ms: i64,
    /// Key of the HMAC that stores PINs.
    pub secret: Secret<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct NotificationPolicy {
    pub max_per_recipient_per_hour: u32,
    pub max_attempts: u32,
    pub retry_base_ms: i64,
    pub retry_max_ms: i64,
    pub lease_ms: i64,
    pub poll_interval_ms: u64,
    pub batch: u32,
}

#[derive(Clone, Debug)]
pub struct TransactionPolicy {
    /// Largest amount accepted, in whole units of the transaction's currency.
    pub max_major_units: i64,
    /// How long a request may talk to the CSP before the reconciler may step in.
    pub processing_ms: i64,
    pub reconcile_first_delay_ms: i64,
    pub reconcile_max_delay_ms: i64,
    pub reconcile_interval_ms: u64,
    pub reconcile_batch: u32,
    /// Time zone offset of the spending-limit day and month, in seconds east of UTC.
    pub limits_utc_offset_secs: i32,
}

pub struct Hub {
    pub store: Arc<dyn Store>,
    pub csps: CspRegistry,
    pub settings: HashMap<String, CspSettings>,
    /// The built-in sandbox CSP's state, when the sandbox is enabled (its inbox is served).
    pub sandbox: Option<SandboxState>,
    pub pin: PinPolicy,
    pub notifications: NotificationPolicy,
    pub transactions: TransactionPolicy,
    /// Messages this instance delivers right after queuing them.
    pub handoff: crate::outbox::Handoff,
}

impl Hub {
    pub fn settings(&self, csp_id: &str) -> Option<&CspSettings> {
        self.settings.get(csp_id)
    }
}
