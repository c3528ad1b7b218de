//! CSP connectors of dcbhub behind one trait ([`CspConnector`]): the in-process `sandbox`
//! (API.md §9) and `http` (the CSP-side API of docs/csp-api.md), plus the routing table
//! that picks a customer's CSP.

pub mod breaker;
mod connector;
pub mod http;
pub mod routing;
pub mod sandbox;

pub use connector::{
    AccountOutcome, AccountType, CallContext, ChargeKind, ChargeOutcome, ChargeRequest,
    ConnectorError, CspConnector, DeclineReason, Notification, NotifyOutcome, StatusOutcome,
};
pub use http::{HttpConnector, HttpConnectorConfig, HttpConnectorError};
pub use routing::{CspEntry, CspRegistry, RoutingError};
pub use sandbox::{InboxMessage, LedgerEntry, LedgerStatus, SandboxConnector, SandboxState};
