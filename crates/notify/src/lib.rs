//! Notification channels of dcbhub: each delivers one message to one customer, once per call.
//! The durable outbox, its retries and its worker live elsewhere; a channel only says whether
//! a failed attempt is worth retrying ([`DeliveryError::Transient`]) or not
//! ([`DeliveryError::Permanent`]).
//!
//! - [`smpp`]: SMS over SMPP 3.4 (GSM 03.38 or UCS-2, concatenated segments).
//! - [`smtp`]: email over SMTP.
//! - [`templates`]: the PIN and receipt texts, per locale.
//!
//! Nothing here logs a message's text: it may hold a PIN.

mod channel;
mod secret_serde;
pub mod smpp;
pub mod smtp;
pub mod templates;

pub use channel::{Channel, DeliveryError, OutboundMessage};
