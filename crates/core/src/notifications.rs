//! Customer messages (API.md §7): partner notifications, and the message rows every other
//! flow (PIN, receipt) queues through [`Hub::message`].

use dcbhub_connectors::CallContext;
use dcbhub_domain::{Customer, ExtTransactionId, NotificationId};
use dcbhub_store::{
    EnqueueOutcome, NewNotification, NotificationRecord, PartnerRecord, StoreError,
};

use crate::Hub;
use crate::accounts::AccountError;
use crate::hub::ChannelKind;

/// The `type` of a partner's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    PurchaseConfirmation,
    ServiceUpdate,
    Generic,
}

impl MessageType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PURCHASE_CONFIRMATION" => Some(Self::PurchaseConfirmation),
            "SERVICE_UPDATE" => Some(Self::ServiceUpdate),
            "GENERIC" => Some(Self::Generic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PurchaseConfirmation => "PURCHASE_CONFIRMATION",
            Self::ServiceUpdate => "SERVICE_UPDATE",
            Self::Generic => "GENERIC",
        }
    }
}

pub struct NotificationRequest {
    pub customer: Customer,
    pub text: String,
    pub kind: MessageType,
    pub ext_transaction_id: Option<ExtTransactionId>,
    pub locale: Option<String>,
}

#[derive(Debug)]
pub enum NotificationError {
    Account(AccountError),
    RateLimited { retry_after_secs: u32 },
    Store(StoreError),
}

/// The parts of a message that differ between flows.
pub struct MessageSpec {
    pub kind: &'static str,
    pub text: String,
    pub redacted_text: Option<String>,
    pub ext_transaction_id: Option<String>,
    pub locale: Option<String>,
}

impl Hub {
    /// The outbox row for a message to `customer` of `csp_id`, on the channel that CSP uses
    /// for that kind of recipient.
    pub fn message(
        &self,
        partner: &PartnerRecord,
        csp_id: &str,
        customer: &Customer,
        spec: MessageSpec,
    ) -> NewNotification {
        let channel = self.channel_for(csp_id, customer);
        NewNotification {
            id: NotificationId::generate(),
            partner_id: partner.id,
            partner_code: partner.code.as_str().to_owned(),
            recipient: customer.clone(),
            csp_id: csp_id.to_owned(),
            channel: channel.as_str().to_owned(),
            kind: spec.kind.to_owned(),
            subject: Some(format!("{} via your phone bill", partner.name)),
            text: spec.text,
            redacted_text: spec.redacted_text,
            ext_transaction_id: spec.ext_transaction_id,
            locale: spec.locale,
            leased_until: None,
        }
    }

    fn channel_for(&self, csp_id: &str, customer: &Customer) -> ChannelKind {
        match (self.settings(csp_id), customer) {
            (Some(s), Customer::Msisdn(_)) => s.sms_channel,
            (Some(s), Customer::Email(_)) => s.email_channel,
            (None, _) => ChannelKind::Csp,
        }
    }

    pub async fn send_notification(
        &self,
        partner: &PartnerRecord,
        req: NotificationRequest,
        ctx: &CallContext,
    ) -> Result<NotificationRecord, NotificationError> {
        let account = self
            .validate_account(&partner.code, &req.customer, ctx)
            .await
            .map_err(NotificationError::Account)?;
        let row = self.message(
            partner,
            &account.csp_id,
            &req.customer,
            MessageSpec {
                kind: req.kind.as_str(),
                text: req.text,
                redacted_text: None,
                ext_transaction_id: req.ext_transaction_id.map(|e| e.as_str().to_owned()),
                locale: req.locale,
            },
        );
        match self
            .store
            .enqueue_notification(row, Some(self.notifications.max_per_recipient_per_hour))
            .await
            .map_err(NotificationError::Store)?
        {
            EnqueueOutcome::Queued(record) => {
                tracing::info!(notification = %record.id, customer = %req.customer, "notification queued");
                Ok(record)
            }
            EnqueueOutcome::RateLimited { retry_after_secs } => {
                Err(NotificationError::RateLimited { retry_after_secs })
            }
        }
    }

    pub async fn notification(
        &self,
        partner: &PartnerRecord,
        id: &str,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        self.store.notification(partner.id, id).await
    }
}
