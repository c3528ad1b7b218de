//! Business logic of dcbhub. It sees persistence and CSPs only through traits
//! (`dcbhub_store::Store`, `dcbhub_connectors::CspConnector`), and knows nothing of HTTP.

pub mod accounts;
pub mod auth;
pub mod hub;
pub mod kept_metrics;
pub mod notifications;
pub mod outbox;
pub mod partners;
pub mod pins;
pub mod reconciler;
pub mod settlement;
pub mod transactions;
mod two_phase;

pub use auth::{AuthError, Authenticator, Caller};
pub use hub::Hub;
pub use partners::{PartnerError, PartnerService};
