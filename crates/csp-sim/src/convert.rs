//! Wire requests of the CSP-side API turned into checked domain values.

use dcbhub_connectors::http::wire::{NotificationRequest, TransactionRequest, TransactionType};
use dcbhub_connectors::{ChargeKind, ChargeRequest, Notification};
use dcbhub_domain::{
    Currency, Customer, Description, Email, Money, Msisdn, NotificationId, PartnerCode,
    TransactionId,
};

use crate::error::SimError;

/// Longest charge code and message text the simulator takes.
const MAX_CHARGE_CODE: usize = 64;
const MAX_TEXT: usize = 1_600;

pub fn customer(msisdn: Option<&str>, email: Option<&str>) -> Result<Customer, SimError> {
    match (msisdn, email) {
        (Some(m), None) => Msisdn::parse(m)
            .map(Customer::Msisdn)
            .map_err(|e| SimError::parse("msisdn", e)),
        (None, Some(e)) => Email::parse(e)
            .map(Customer::Email)
            .map_err(|err| SimError::parse("email", err)),
        _ => Err(SimError::invalid(
            "msisdn",
            "Exactly one of msisdn or email is required",
        )),
    }
}

pub fn partner(code: &str) -> Result<PartnerCode, SimError> {
    PartnerCode::parse(code).map_err(|e| SimError::parse("partnerCode", e))
}

pub fn transaction_id(raw: &str, field: &str) -> Result<TransactionId, SimError> {
    TransactionId::parse(raw).map_err(|e| SimError::parse(field, e))
}

pub fn charge_request(body: TransactionRequest) -> Result<ChargeRequest, SimError> {
    let id = transaction_id(&body.transaction_id, "transactionId")?;
    let customer = customer(body.msisdn.as_deref(), body.email.as_deref())?;
    let currency = Currency::parse(&body.currency).map_err(|e| SimError::parse("currency", e))?;
    let money = Money::parse(&body.amount, currency).map_err(|e| SimError::parse("amount", e))?;
    let description =
        Description::parse(&body.description).map_err(|e| SimError::parse("description", e))?;
    if body
        .charge_code
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CHARGE_CODE)
    {
        return Err(SimError::invalid("chargeCode", "1 to 64 characters"));
    }
    let kind = match (body.kind, body.original_transaction_id) {
        (TransactionType::Charge, None) => ChargeKind::Charge,
        (TransactionType::Refund, Some(original)) => ChargeKind::Refund {
            original: transaction_id(&original, "originalTransactionId")?,
        },
        (TransactionType::Charge, Some(_)) => {
            return Err(SimError::invalid(
                "originalTransactionId",
                "Only a REFUND names an original transaction",
            ));
        }
        (TransactionType::Refund, None) => {
            return Err(SimError::invalid(
                "originalTransactionId",
                "A REFUND must name the charge it refunds",
            ));
        }
    };
    Ok(ChargeRequest {
        transaction_id: id,
        customer,
        money,
        description,
        charge_code: body.charge_code,
        partner: partner(&body.partner_code)?,
        kind,
    })
}

pub fn notification(body: NotificationRequest) -> Result<Notification, SimError> {
    let id = NotificationId::parse(&body.notification_id)
        .map_err(|e| SimError::parse("notificationId", e))?;
    let to = customer(body.msisdn.as_deref(), body.email.as_deref())?;
    let length = body.text.chars().count();
    if length == 0 || length > MAX_TEXT {
        return Err(SimError::invalid("text", "1 to 1600 characters"));
    }
    Ok(Notification {
        id,
        to,
        text: body.text,
        partner: partner(&body.partner_code)?,
    })
}
