//! Business logic of dcbhub. It sees persistence and CSPs only through traits
//! (`dcbhub_store::Store`, `dcbhub_connectors::CspConnector`), and knows nothing of HTTP.

pub mod auth;
pub mod partners;

pub use auth::{AuthError, Authenticator, Caller};
pub use partners::{PartnerError, PartnerService};
