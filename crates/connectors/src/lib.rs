//! CSP connectors of dcbhub behind one trait ([`CspConnector`]): the in-process `sandbox`
//! (API.md §9), `http` (the CSP-side API of docs/csp-api.md) and `nrf-rating` (an online
//! charging system over 3GPP Nrf_Rating and TM Forum APIs, charging in two phases through
//! [`TwoPhaseCharging`]), plus the routing table that picks a customer's CSP.

pub mod breaker;
mod connector;
pub mod http;
pub mod nrf;
pub mod routing;
pub mod sandbox;

pub use connector::{
    AccountOutcome, AccountType, CallContext, ChargeKind, ChargeOutcome, ChargeRequest,
    ConnectorError, CspConnector, DeclineReason, FinishOutcome, InlineCharging, Notification,
    NotifyOutcome, ReserveOutcome, StatusOutcome, TwoPhaseCharging,
};
pub use http::{HttpConnector, HttpConnectorConfig, HttpConnectorError};
pub use nrf::{NrfBalance, NrfRatingConfig, NrfRatingConnector, NrfRatingError};
pub use routing::{CspEntry, CspRegistry, RoutingError};
pub use sandbox::{InboxMessage, LedgerEntry, LedgerStatus, SandboxConnector, SandboxState};
