//! PIN consent (API.md §3–4): a random code sent to the customer, stored only as an HMAC,
//! with attempt, expiry, resend and send caps enforced by the store atomically.

use dcbhub_connectors::CallContext;
use dcbhub_domain::{Customer, Description, ExtTransactionId, Money, PinId};
use dcbhub_store::{
    NewPin, PartnerRecord, PinBinding, PinCheckOutcome, PinRecord, PinSendOutcome, PinSendPolicy,
    StoreError,
};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::Hub;
use crate::accounts::AccountError;
use crate::notifications::MessageSpec;

/// A new challenge: the customer, and optionally the purchase it is bound to.
pub struct PinRequest {
    pub customer: Customer,
    pub ext_transaction_id: Option<ExtTransactionId>,
    pub money: Option<Money>,
    pub description: Option<Description>,
    pub locale: Option<String>,
}

#[derive(Debug)]
pub enum PinError {
    Account(AccountError),
    NotFound,
    ResendTooSoon { retry_after_secs: u32 },
    SendLimit { retry_after_secs: u32 },
    AlreadyUsed,
    AttemptsExceeded,
    Expired,
    Invalid { attempts_remaining: u32 },
    Store(StoreError),
}

/// A challenge as the partner sees it.
pub struct PinView {
    pub record: PinRecord,
    pub attempts_remaining: u32,
    pub resends_remaining: u32,
}

impl Hub {
    fn pin_policy(&self) -> PinSendPolicy {
        PinSendPolicy {
            ttl_ms: self.pin.ttl_ms,
            cooldown_ms: self.pin.resend_cooldown_ms,
            max_sends: self.pin.max_sends,
            max_per_account_per_hour: self.pin.max_per_customer_per_hour,
        }
    }

    fn view(&self, record: PinRecord) -> PinView {
        PinView {
            attempts_remaining: self.pin.max_attempts.saturating_sub(record.attempts),
            resends_remaining: self.pin.max_sends.saturating_sub(record.sends),
            record,
        }
    }

    /// HMAC-SHA-256 of the code, keyed by the server secret and bound to the challenge id.
    fn pin_hash(&self, pin_id: &str, code: &str) -> String {
        // new_from_slice accepts keys of any length for HMAC.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.pin.secret.expose()) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(pin_id.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        dcbhub_domain::hex_lower(&mac.finalize().into_bytes())
    }

    fn draw_code(&self) -> String {
        let digits = self.pin.length.clamp(4, 8);
        let bound = 10u32.pow(digits);
        // ThreadRng is a CSPRNG; random_range draws uniformly without modulo bias.
        let code = rand::rng().random_range(0..bound);
        format!("{code:0width$}", width = digits as usize)
    }

    fn pin_text(
        &self,
        partner: &PartnerRecord,
        code: &str,
        binding: &PinBinding,
        locale: Option<&str>,
    ) -> (String, String) {
        let money = match (&binding.amount_minor, &binding.currency) {
            (Some(minor), Some(cur)) => dcbhub_domain::Currency::parse(cur)
                .ok()
                .and_then(|c| Money::from_minor(dcbhub_domain::MinorUnits::new(*minor), c).ok()),
            _ => None,
        };
        let description = binding
            .description
            .as_deref()
            .and_then(|d| Description::parse(d).ok())
            .or_else(|| Description::parse("your purchase").ok());
        let purchase = money.zip(description);
        let minutes = u32::try_from(self.pin.ttl_ms / 60_000).unwrap_or(5).max(1);
        let purchase_ref = purchase.as_ref().map(|(m, d)| (m, d));
        let text = dcbhub_notify::templates::pin_message(
            locale,
            &partner.name,
            code,
            purchase_ref,
            minutes,
        );
        let masked = "*".repeat(code.len());
        let redacted = dcbhub_notify::templates::pin_message(
            locale,
            &partner.name,
            &masked,
            purchase_ref,
            minutes,
        );
        (text, redacted)
    }

    pub async fn create_pin(
        &self,
        partner: &PartnerRecord,
        req: PinRequest,
        ctx: &CallContext,
    ) -> Result<PinView, PinError> {
        let account = self
            .validate_account(&partner.code, &req.customer, ctx)
            .await
            .map_err(PinError::Account)?;
        let id = PinId::generate();
        let (amount_minor, currency) = match &req.money {
            Some(money) => (
                Some(money.amount().get()),
                Some(money.currency().code().to_owned()),
            ),
            None => (None, None),
        };
        let binding = PinBinding {
            customer: req.customer.as_str().to_owned(),
            customer_kind: req.customer.kind().to_owned(),
            csp_id: account.csp_id.clone(),
            account_key: account.key(),
            ext_transaction_id: req.ext_transaction_id.map(|e| e.as_str().to_owned()),
            amount_minor,
            currency,
            description: req.description.map(|d| d.as_str().to_owned()),
        };
        let code = self.draw_code();
        let (text, redacted) = self.pin_text(partner, &code, &binding, req.locale.as_deref());
        let message = self.message(
            partner,
            &account.csp_id,
            &req.customer,
            MessageSpec {
                kind: "PIN",
                text,
                redacted_text: Some(redacted),
                ext_transaction_id: binding.ext_transaction_id.clone(),
                locale: req.locale,
            },
        );
        let new = NewPin {
            id: id.as_str().to_owned(),
            partner_id: partner.id,
            pin_hash: self.pin_hash(id.as_str(), &code),
            binding,
            message,
        };
        let outcome = self
            .store
            .create_pin(new, self.pin_policy())
            .await
            .map_err(PinError::Store)?;
        self.sent(outcome)
    }

    pub async fn resend_pin(
        &self,
        partner: &PartnerRecord,
        pin_id: &PinId,
        locale: Option<String>,
    ) -> Result<PinView, PinError> {
        let existing = self
            .store
            .pin(partner.id, pin_id.as_str())
            .await
            .map_err(PinError::Store)?
            .ok_or(PinError::NotFound)?;
        let customer =
            Customer::parse_stored(&existing.binding.customer_kind, &existing.binding.customer)
                .map_err(|e| PinError::Store(StoreError::Backend(e.to_string())))?;
        let code = self.draw_code();
        let (text, redacted) = self.pin_text(partner, &code, &existing.binding, locale.as_deref());
        let message = self.message(
            partner,
            &existing.binding.csp_id,
            &customer,
            MessageSpec {
                kind: "PIN",
                text,
                redacted_text: Some(redacted),
                ext_transaction_id: existing.binding.ext_transaction_id.clone(),
                locale,
            },
        );
        let outcome = self
            .store
            .resend_pin(
                partner.id,
                pin_id.as_str(),
                self.pin_hash(pin_id.as_str(), &code),
                message,
                self.pin_policy(),
            )
            .await
            .map_err(PinError::Store)?;
        self.sent(outcome)
    }

    fn sent(&self, outcome: PinSendOutcome) -> Result<PinView, PinError> {
        let (label, result) = match outcome {
            PinSendOutcome::Sent(record) => ("sent", Ok(self.view(record))),
            PinSendOutcome::NotFound => ("not_found", Err(PinError::NotFound)),
            PinSendOutcome::TooSoon { retry_after_secs } => (
                "too_soon",
                Err(PinError::ResendTooSoon { retry_after_secs }),
            ),
            PinSendOutcome::SendLimit { retry_after_secs } => {
                ("send_limit", Err(PinError::SendLimit { retry_after_secs }))
            }
            PinSendOutcome::NotActive(record) => (
                "not_active",
                Err(if record.attempts >= self.pin.max_attempts {
                    PinError::AttemptsExceeded
                } else {
                    PinError::AlreadyUsed
                }),
            ),
        };
        metrics::counter!("dcbhub_pin_sends_total", "outcome" => label).increment(1);
        result
    }

    pub async fn validate_pin(
        &self,
        partner: &PartnerRecord,
        pin_id: &PinId,
        code: &str,
    ) -> Result<PinRecord, PinError> {
        let presented = self.pin_hash(pin_id.as_str(), code);
        let outcome = self
            .store
            .check_pin(
                partner.id,
                pin_id.as_str(),
                presented,
                self.pin.max_attempts,
                self.pin.consent_window_ms,
            )
            .await
            .map_err(PinError::Store)?;
        let (label, result) = match outcome {
            PinCheckOutcome::Valid(record) => ("valid", Ok(record)),
            PinCheckOutcome::Invalid { attempts_remaining } => {
                ("invalid", Err(PinError::Invalid { attempts_remaining }))
            }
            PinCheckOutcome::Expired => ("expired", Err(PinError::Expired)),
            PinCheckOutcome::AttemptsExceeded => {
                ("attempts_exceeded", Err(PinError::AttemptsExceeded))
            }
            PinCheckOutcome::AlreadyUsed => ("already_used", Err(PinError::AlreadyUsed)),
            PinCheckOutcome::NotFound => ("not_found", Err(PinError::NotFound)),
        };
        metrics::counter!("dcbhub_pin_validations_total", "outcome" => label).increment(1);
        result
    }
}
