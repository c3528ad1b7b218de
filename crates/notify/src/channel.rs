use async_trait::async_trait;
use dcbhub_domain::{Customer, NotificationId};

/// One message for one customer, as a channel delivers it.
///
/// `Debug` leaves the text and subject out: they may hold a PIN.
#[derive(Clone)]
pub struct OutboundMessage {
    /// The outbox's idempotency id: stable across attempts, passed to the channel where it
    /// can take one.
    pub id: NotificationId,
    /// An MSISDN for SMS, an email address for email.
    pub to: Customer,
    pub text: String,
    /// The subject line, for email.
    pub subject: Option<String>,
}

impl std::fmt::Debug for OutboundMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessage")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("text_chars", &self.text.chars().count())
            .finish_non_exhaustive()
    }
}

/// Why an attempt failed. The text describes the failure (status codes, I/O errors), never the
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later: the peer was unreachable, busy or throttling.
    #[error("transient delivery failure: {0}")]
    Transient(String),
    /// Will fail the same way every time: the recipient or the message is refused.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

impl DeliveryError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// A way to reach a customer.
#[async_trait]
pub trait Channel: Send + Sync {
    /// A short stable name for metrics and the notification's `channel` field: `"smpp"`,
    /// `"smtp"`, …
    fn name(&self) -> &'static str;

    /// Delivers one message. A recipient the channel cannot serve (an email address given to
    /// SMS) is a [`DeliveryError::Permanent`].
    async fn deliver(&self, msg: &OutboundMessage) -> Result<(), DeliveryError>;
}
