//! Pure domain types and rules of dcbhub. Every value here is built only by a checked
//! constructor, so code that holds one never has to validate it again. No I/O.

mod currency;
mod customer;
mod email;
mod error;
mod ids;
mod money;
mod msisdn;
mod partner;
mod secret;
mod text;
mod timestamp;

pub use currency::Currency;
pub use customer::Customer;
pub use email::Email;
pub use error::ParseError;
pub use ids::{
    Description, ExtTransactionId, NotificationId, PartnerCode, PinId, ProductCode, TransactionId,
    hex_id,
};
pub use money::{AmountLiteral, MinorUnits, Money};
pub use msisdn::Msisdn;
pub use partner::{ConsentPolicy, PartnerStatus};
pub use secret::{ApiKey, ApiKeyHash, Secret};
pub use text::hex_lower;
pub use timestamp::Timestamp;
