//! The `nrf-rating` connector: a CSP whose prepaid balances live in an online charging
//! system (OCS) speaking 3GPP Nrf_Rating (TS 32.291) and the TM Forum service inventory
//! and balance management APIs, as SigScale OCS does
//! (`/work/shared/reference/nrf-rating-ocs.md`).
//!
//! * Account validation: the service inventory (exists, enabled, live state) and the
//!   accumulated balance; every account is prepaid, in the configured currency.
//! * Charges are two-phase ([`TwoPhaseCharging`]): a PEC `RESERVE` holds the amount, all or
//!   nothing; a `DEBIT` of the whole reservation takes it, a `RELEASE` returns it. A
//!   reference that is already finished answers 404, which makes a repeated debit or
//!   release safe. The one-shot IEC form is never used: it drains a smaller balance and
//!   still answers success.
//! * Refunds are positive balance adjustments on the subscriber's product.
//! * The OCS cannot be asked about a charge by the hub's transaction id (`charge_status`
//!   answers `Pending`), and it sends no messages (`notify` answers `Permanent`).
//!
//! Each phase is one connector call with its own time budget (`timeout_ms`). Lookups,
//! debits and releases are retried within the budget after transport failures and 5xx
//! answers; a reserve or an adjustment is repeated only when its connection could not be
//! made.

mod config;
mod mapping;
mod transport;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::ExponentialBuilder;
use dcbhub_domain::{Customer, Msisdn, PartnerCode, Timestamp, TransactionId};
use reqwest::{Client, Url};

pub use config::{NrfRatingConfig, defaults};
pub use mapping::NrfBalance;

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::{
    AccountOutcome, AccountType, CallContext, ChargeKind, ChargeOutcome, ChargeRequest,
    ConnectorError, CspConnector, DeclineReason, FinishOutcome, Notification, NotifyOutcome,
    ReserveOutcome, StatusOutcome, TwoPhaseCharging,
};
use mapping::{DEFAULT_RETRY_AFTER_SECS, Reserve, Standing, labels};
use transport::{Operation, Transport};
use wire::{
    ADJUSTMENT_PATH, ADJUSTMENT_TYPE, BALANCE_PATH, BalanceAdjustment, MONEY_UNITS,
    MSISDN_SUBSCRIPTION_PREFIX, NfConsumerIdentification, ProductRef, Quantity, RATING_PATH,
    REFUND_REASON, RatingDataRequest, RequestSubType, SERVICE_PATH, ServiceRatingRequest,
    ServiceUnits,
};

/// What `notify` answers: the OCS has no messaging API.
pub const NOTIFY_NOT_SUPPORTED: &str = "not supported";
/// The node that asks for rating: an online charging function.
const NODE_FUNCTIONALITY: &str = "OCF";
/// Session charging with unit reservation: reserve, then debit or release.
const ONE_TIME_EVENT_TYPE: &str = "PEC";
const SERVICE_ID: u32 = 1;
const RATING_GROUP: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum NrfRatingError {
    #[error("base_url {0:?} must be an absolute http or https URL")]
    BadBaseUrl(String),
    #[error("username must not be empty")]
    EmptyUsername,
    #[error("minor_units_per_unit must be greater than zero")]
    ZeroUnit,
    #[error("service_context_id must not be empty")]
    EmptyServiceContext,
    #[error("timeout_ms must be greater than zero")]
    ZeroTimeout,
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

pub struct NrfRatingConnector {
    transport: Transport,
    config: NrfRatingConfig,
}

impl std::fmt::Debug for NrfRatingConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NrfRatingConnector")
            .field("csp", &self.transport.csp)
            .field("base_url", &self.transport.base_url.as_str())
            .field("currency", &self.config.currency)
            .field("timeout", &self.transport.timeout)
            .finish_non_exhaustive()
    }
}

/// What a charge request is, in the OCS's terms.
struct Rated {
    msisdn: Msisdn,
    units: u64,
}

impl NrfRatingConnector {
    /// `csp_id` labels this CSP's metrics and logs.
    pub fn new(csp_id: impl Into<String>, config: NrfRatingConfig) -> Result<Self, NrfRatingError> {
        let mut base_url = Url::parse(&config.base_url)
            .map_err(|_| NrfRatingError::BadBaseUrl(config.base_url.clone()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(NrfRatingError::BadBaseUrl(config.base_url));
        }
        base_url.set_query(None);
        base_url.set_fragment(None);
        if config.username.is_empty() {
            return Err(NrfRatingError::EmptyUsername);
        }
        if config.minor_units_per_unit == 0 {
            return Err(NrfRatingError::ZeroUnit);
        }
        if config.service_context_id.trim().is_empty() {
            return Err(NrfRatingError::EmptyServiceContext);
        }
        if config.timeout_ms == 0 {
            return Err(NrfRatingError::ZeroTimeout);
        }
        ensure_crypto_provider();
        let client = Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // A redirected POST would be re-sent somewhere else; an answer is expected here.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let backoff = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(Duration::from_millis(config.backoff_base_ms))
            .with_max_delay(Duration::from_millis(
                config.backoff_max_ms.max(config.backoff_base_ms),
            ))
            .with_max_times(usize::try_from(config.max_retries).unwrap_or(usize::MAX));
        let breaker = CircuitBreaker::new(BreakerConfig {
            failure_threshold: config.breaker_failure_threshold,
            open_for: Duration::from_millis(config.breaker_open_ms),
        });
        let transport = Transport {
            csp: Arc::from(csp_id.into()),
            client,
            base_url,
            username: config.username.clone(),
            password: config.password.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            backoff,
            breaker,
        };
        Ok(Self { transport, config })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.transport.breaker_state()
    }

    /// The subscriber's balance as the OCS reports it.
    pub async fn balance(
        &self,
        msisdn: &Msisdn,
        ctx: &CallContext,
    ) -> Result<NrfBalance, ConnectorError> {
        let started = Instant::now();
        let outcome = self
            .fetch_balance(msisdn, self.transport.deadline(), ctx)
            .await;
        self.transport
            .record(Operation::Balance, started, labels::balance(&outcome));
        outcome
    }

    async fn fetch_service(
        &self,
        operation: Operation,
        msisdn: &Msisdn,
        deadline: Instant,
        ctx: &CallContext,
    ) -> Result<Standing, ConnectorError> {
        let mut segments = SERVICE_PATH.to_vec();
        segments.push(msisdn.digits());
        let url = self.transport.url(&segments);
        self.transport
            .exchange(
                operation,
                deadline,
                || self.transport.get(&url, ctx),
                mapping::service,
                |secs| {
                    Err(ConnectorError::Unavailable {
                        retry_after_secs: secs,
                    })
                },
            )
            .await
    }

    async fn fetch_balance(
        &self,
        msisdn: &Msisdn,
        deadline: Instant,
        ctx: &CallContext,
    ) -> Result<NrfBalance, ConnectorError> {
        let mut segments = BALANCE_PATH.to_vec();
        segments.extend([msisdn.digits(), "accumulatedBalance"]);
        let url = self.transport.url(&segments);
        let currency = self.config.currency;
        self.transport
            .exchange(
                Operation::Balance,
                deadline,
                || self.transport.get(&url, ctx),
                |attempt| mapping::balance(attempt, currency),
                |secs| {
                    Err(ConnectorError::Unavailable {
                        retry_after_secs: secs,
                    })
                },
            )
            .await
    }

    async fn lookup_account(
        &self,
        msisdn: &Msisdn,
        ctx: &CallContext,
    ) -> Result<AccountOutcome, ConnectorError> {
        let deadline = self.transport.deadline();
        let product = match self
            .fetch_service(Operation::Validate, msisdn, deadline, ctx)
            .await?
        {
            Standing::NotFound => return Ok(AccountOutcome::NotFound),
            Standing::Disabled { .. } => return Ok(AccountOutcome::Suspended),
            Standing::Good { product } => product,
        };
        // The balance itself does not decide good standing (a zero balance is declined
        // per charge); its lookup proves the billing account is there.
        match self.fetch_balance(msisdn, deadline, ctx).await? {
            NrfBalance::NotFound => Ok(AccountOutcome::NotFound),
            NrfBalance::Positive(_) | NrfBalance::ZeroOrLess => Ok(AccountOutcome::Active {
                account_type: AccountType::Prepaid,
                currency: self.config.currency,
                account_ref: product,
            }),
        }
    }

    /// Checks what can be checked without the OCS: an MSISDN, the billing currency, a
    /// whole number of units.
    fn rate(&self, req: &ChargeRequest) -> Result<Rated, DeclineReason> {
        let Customer::Msisdn(msisdn) = &req.customer else {
            return Err(DeclineReason::AccountNotFound);
        };
        if req.money.currency() != self.config.currency {
            tracing::warn!(
                csp = %self.transport.csp,
                currency = %req.money.currency(),
                "charge in another currency than the OCS's; declined"
            );
            return Err(DeclineReason::Declined);
        }
        let Some(units) = mapping::units_of(&req.money, self.config.minor_units_per_unit) else {
            tracing::warn!(
                csp = %self.transport.csp,
                amount = %req.money,
                minor_units_per_unit = self.config.minor_units_per_unit,
                "amount is not a whole number of service units; declined"
            );
            return Err(DeclineReason::Declined);
        };
        Ok(Rated {
            msisdn: msisdn.clone(),
            units,
        })
    }

    fn rating_request(
        &self,
        msisdn: &Msisdn,
        sequence: u32,
        rating: ServiceRatingRequest,
    ) -> RatingDataRequest {
        RatingDataRequest {
            nf_consumer_identification: NfConsumerIdentification {
                node_functionality: NODE_FUNCTIONALITY,
            },
            invocation_time_stamp: Timestamp::now().to_rfc3339(),
            invocation_sequence_number: sequence,
            subscription_id: vec![format!("{MSISDN_SUBSCRIPTION_PREFIX}{}", msisdn.digits())],
            one_time_event: true,
            one_time_event_type: ONE_TIME_EVENT_TYPE,
            service_context_id: self.config.service_context_id.clone(),
            service_rating: vec![rating],
        }
    }

    async fn finish(
        &self,
        sub_type: RequestSubType,
        reference: &str,
        req: &ChargeRequest,
        ctx: &CallContext,
    ) -> FinishOutcome {
        let operation = match sub_type {
            RequestSubType::Debit => Operation::Debit,
            _ => Operation::Release,
        };
        let started = Instant::now();
        let outcome = self.send_finish(sub_type, reference, req, ctx).await;
        self.transport
            .record(operation, started, labels::finish(&outcome));
        outcome
    }

    async fn send_finish(
        &self,
        sub_type: RequestSubType,
        reference: &str,
        req: &ChargeRequest,
        ctx: &CallContext,
    ) -> FinishOutcome {
        if !mapping::valid_ref(reference) {
            tracing::error!(csp = %self.transport.csp, "malformed rating data reference");
            return FinishOutcome::Unavailable;
        }
        let Ok(rated) = self.rate(req) else {
            return FinishOutcome::Unavailable;
        };
        let consumed = (sub_type == RequestSubType::Debit).then_some(ServiceUnits {
            service_specific_unit: rated.units,
        });
        let body = self.rating_request(
            &rated.msisdn,
            2,
            ServiceRatingRequest {
                service_id: SERVICE_ID,
                rating_group: RATING_GROUP,
                requested_unit: None,
                consumed_unit: consumed,
                request_sub_type: sub_type,
            },
        );
        let mut segments = RATING_PATH.to_vec();
        segments.extend([reference, "release"]);
        let url = self.transport.url(&segments);
        let operation = match sub_type {
            RequestSubType::Debit => Operation::Debit,
            _ => Operation::Release,
        };
        self.transport
            .exchange(
                operation,
                self.transport.deadline(),
                || self.transport.post(&url, &body, ctx),
                |attempt| mapping::finish(attempt, sub_type, rated.units),
                |_| FinishOutcome::Unavailable,
            )
            .await
    }

    async fn send_reserve(&self, req: &ChargeRequest, ctx: &CallContext) -> ReserveOutcome {
        if !matches!(req.kind, ChargeKind::Charge) {
            tracing::error!(csp = %self.transport.csp, "a refund cannot be reserved");
            return ReserveOutcome::Declined(DeclineReason::Declined);
        }
        let rated = match self.rate(req) {
            Ok(rated) => rated,
            Err(reason) => return ReserveOutcome::Declined(reason),
        };
        let body = self.rating_request(
            &rated.msisdn,
            1,
            ServiceRatingRequest {
                service_id: SERVICE_ID,
                rating_group: RATING_GROUP,
                requested_unit: Some(ServiceUnits {
                    service_specific_unit: rated.units,
                }),
                consumed_unit: None,
                request_sub_type: RequestSubType::Reserve,
            },
        );
        let url = self.transport.url(&RATING_PATH);
        let answer = self
            .transport
            .exchange(
                Operation::Reserve,
                self.transport.deadline(),
                || self.transport.post(&url, &body, ctx),
                |attempt| mapping::reserve(attempt, rated.units),
                |secs| {
                    Reserve::Final(ReserveOutcome::Unavailable {
                        retry_after_secs: secs,
                    })
                },
            )
            .await;
        match answer {
            Reserve::Final(outcome) => outcome,
            Reserve::Stray { reference } => self.release_stray(&reference, req, ctx).await,
        }
    }

    /// A reservation whose answer we do not trust is released at once: if that is
    /// confirmed, nothing is held or charged.
    async fn release_stray(
        &self,
        reference: &str,
        req: &ChargeRequest,
        ctx: &CallContext,
    ) -> ReserveOutcome {
        tracing::warn!(
            csp = %self.transport.csp,
            reference,
            "unexpected reserve answer; releasing the reservation"
        );
        match self
            .finish(RequestSubType::Release, reference, req, ctx)
            .await
        {
            FinishOutcome::Done | FinishOutcome::AlreadyFinished => ReserveOutcome::Unavailable {
                retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            },
            FinishOutcome::Unknown | FinishOutcome::Unavailable => {
                tracing::error!(
                    csp = %self.transport.csp,
                    reference,
                    "could not release an unexpected reservation; it stays held until the OCS lets it lapse"
                );
                ReserveOutcome::Unknown
            }
        }
    }

    /// Reserve, then debit; a debit refused outright is followed by a release.
    async fn charge_in_two_phases(&self, req: &ChargeRequest, ctx: &CallContext) -> ChargeOutcome {
        let reference = match self.reserve(req, ctx).await {
            ReserveOutcome::Reserved { reference } => reference,
            ReserveOutcome::Declined(reason) => return ChargeOutcome::Declined(reason),
            ReserveOutcome::Unknown => return ChargeOutcome::Unknown,
            ReserveOutcome::Unavailable { retry_after_secs } => {
                return ChargeOutcome::Unavailable { retry_after_secs };
            }
        };
        match self.debit(&reference, req, ctx).await {
            FinishOutcome::Done => ChargeOutcome::Success {
                csp_reference: reference,
            },
            FinishOutcome::Unavailable => match self.release(&reference, req, ctx).await {
                // Nothing taken, nothing held.
                FinishOutcome::Done | FinishOutcome::AlreadyFinished => {
                    ChargeOutcome::Unavailable {
                        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
                    }
                }
                FinishOutcome::Unknown | FinishOutcome::Unavailable => {
                    tracing::error!(
                        csp = %self.transport.csp,
                        reference,
                        "debit refused and release failed; the reservation stays held"
                    );
                    ChargeOutcome::Unknown
                }
            },
            // Gone without a confirmed debit (an earlier attempt's answer was lost, or the
            // reservation lapsed): only the reference can settle it.
            FinishOutcome::AlreadyFinished | FinishOutcome::Unknown => {
                tracing::warn!(
                    csp = %self.transport.csp,
                    reference,
                    "debit outcome unknown"
                );
                ChargeOutcome::Unknown
            }
        }
    }

    async fn refund(&self, req: &ChargeRequest, ctx: &CallContext) -> ChargeOutcome {
        let Customer::Msisdn(msisdn) = &req.customer else {
            return ChargeOutcome::Declined(DeclineReason::AccountNotFound);
        };
        let ChargeKind::Refund { original } = &req.kind else {
            return ChargeOutcome::Declined(DeclineReason::Declined);
        };
        if req.money.currency() != self.config.currency {
            return ChargeOutcome::Declined(DeclineReason::Declined);
        }
        let deadline = self.transport.deadline();
        // A refund credits the billing account even when the subscriber is disabled.
        let product = match self
            .fetch_service(Operation::Refund, msisdn, deadline, ctx)
            .await
        {
            Ok(Standing::Good { product } | Standing::Disabled { product }) => product,
            Ok(Standing::NotFound) => {
                return ChargeOutcome::Declined(DeclineReason::AccountNotFound);
            }
            Err(ConnectorError::Unavailable { retry_after_secs }) => {
                return ChargeOutcome::Unavailable { retry_after_secs };
            }
        };
        let body = BalanceAdjustment {
            kind: ADJUSTMENT_TYPE,
            description: refund_description(&req.transaction_id, original),
            reason: REFUND_REASON,
            amount: Quantity {
                units: MONEY_UNITS.into(),
                amount: req.money.to_decimal_string(),
            },
            product: ProductRef { id: product },
        };
        let url = self.transport.url(&ADJUSTMENT_PATH);
        self.transport
            .exchange(
                Operation::Refund,
                deadline,
                || self.transport.post(&url, &body, ctx),
                |attempt| mapping::adjustment(attempt, &req.transaction_id),
                |secs| ChargeOutcome::Unavailable {
                    retry_after_secs: secs,
                },
            )
            .await
    }
}

/// Names the refund and the charge it refunds, for the OCS's balance log.
fn refund_description(refund: &TransactionId, original: &TransactionId) -> String {
    format!("dcbhub refund {refund} of charge {original}")
}

/// reqwest is built without a default crypto provider; install ring's (the workspace's
/// choice) if the process has none yet, rather than letting the client builder panic.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: either way one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[async_trait]
impl CspConnector for NrfRatingConnector {
    fn kind(&self) -> &'static str {
        "nrf-rating"
    }

    async fn validate_account(
        &self,
        customer: &Customer,
        _partner: &PartnerCode,
        ctx: &CallContext,
    ) -> Result<AccountOutcome, ConnectorError> {
        // The OCS knows subscribers by MSISDN only.
        let Customer::Msisdn(msisdn) = customer else {
            return Ok(AccountOutcome::NotFound);
        };
        let started = Instant::now();
        let outcome = self.lookup_account(msisdn, ctx).await;
        self.transport
            .record(Operation::Validate, started, labels::validate(&outcome));
        outcome
    }

    /// A charge reserves then debits (the core drives the phases itself through
    /// [`CspConnector::two_phase`] so that it can persist the reference in between); a
    /// refund is a balance adjustment.
    async fn charge(&self, req: &ChargeRequest, ctx: &CallContext) -> ChargeOutcome {
        match req.kind {
            ChargeKind::Charge => self.charge_in_two_phases(req, ctx).await,
            ChargeKind::Refund { .. } => {
                let started = Instant::now();
                let outcome = self.refund(req, ctx).await;
                self.transport
                    .record(Operation::Refund, started, labels::charge(&outcome));
                outcome
            }
        }
    }

    /// The OCS keeps no record by the hub's transaction id: a charge is settled by its
    /// reservation reference ([`TwoPhaseCharging`]), a refund cannot be looked up at all.
    async fn charge_status(
        &self,
        _transaction_id: &TransactionId,
        _ctx: &CallContext,
    ) -> StatusOutcome {
        StatusOutcome::Pending
    }

    async fn notify(&self, _n: &Notification, _ctx: &CallContext) -> NotifyOutcome {
        NotifyOutcome::Permanent(NOTIFY_NOT_SUPPORTED.into())
    }

    fn two_phase(&self) -> Option<&dyn TwoPhaseCharging> {
        Some(self)
    }
}

#[async_trait]
impl TwoPhaseCharging for NrfRatingConnector {
    async fn reserve(&self, req: &ChargeRequest, ctx: &CallContext) -> ReserveOutcome {
        let started = Instant::now();
        let outcome = self.send_reserve(req, ctx).await;
        self.transport
            .record(Operation::Reserve, started, labels::reserve(&outcome));
        outcome
    }

    async fn debit(
        &self,
        reference: &str,
        req: &ChargeRequest,
        ctx: &CallContext,
    ) -> FinishOutcome {
        self.finish(RequestSubType::Debit, reference, req, ctx)
            .await
    }

    async fn release(
        &self,
        reference: &str,
        req: &ChargeRequest,
        ctx: &CallContext,
    ) -> FinishOutcome {
        self.finish(RequestSubType::Release, reference, req, ctx)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcbhub_domain::{Currency, Description, Money};

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn config(url: &str) -> NrfRatingConfig {
        NrfRatingConfig::new(url, "admin", "admin", eur())
    }

    fn charge(amount: &str) -> ChargeRequest {
        ChargeRequest {
            transaction_id: TransactionId::generate(),
            customer: Customer::Msisdn(Msisdn::parse("+491701234567").unwrap()),
            money: Money::parse(amount, eur()).unwrap(),
            description: Description::parse("Premium plan").unwrap(),
            charge_code: None,
            partner: PartnerCode::parse("NFLX").unwrap(),
            kind: ChargeKind::Charge,
        }
    }

    #[test]
    fn refuses_bad_settings() {
        let bad = |config: NrfRatingConfig| NrfRatingConnector::new("x", config).unwrap_err();
        assert!(matches!(
            bad(config("ftp://x")),
            NrfRatingError::BadBaseUrl(_)
        ));
        assert!(matches!(bad(config("nope")), NrfRatingError::BadBaseUrl(_)));
        let mut zero = config("http://x");
        zero.minor_units_per_unit = 0;
        assert!(matches!(bad(zero), NrfRatingError::ZeroUnit));
        let mut zero = config("http://x");
        zero.timeout_ms = 0;
        assert!(matches!(bad(zero), NrfRatingError::ZeroTimeout));
        let mut empty = config("http://x");
        empty.username.clear();
        assert!(matches!(bad(empty), NrfRatingError::EmptyUsername));
        let mut empty = config("http://x");
        empty.service_context_id = " ".into();
        assert!(matches!(bad(empty), NrfRatingError::EmptyServiceContext));
    }

    #[test]
    fn builds_the_documented_reserve_body() {
        let c = NrfRatingConnector::new("x", config("http://ocs.test/")).unwrap();
        let rated = c.rate(&charge("0.40")).unwrap();
        let body = c.rating_request(
            &rated.msisdn,
            1,
            ServiceRatingRequest {
                service_id: SERVICE_ID,
                rating_group: RATING_GROUP,
                requested_unit: Some(ServiceUnits {
                    service_specific_unit: rated.units,
                }),
                consumed_unit: None,
                request_sub_type: RequestSubType::Reserve,
            },
        );
        let mut json = serde_json::to_value(&body).unwrap();
        let stamp = json["invocationTimeStamp"].take();
        assert!(Timestamp::parse_rfc3339(stamp.as_str().unwrap()).is_some());
        assert_eq!(
            json,
            serde_json::json!({
                "nfConsumerIdentification": {"nodeFunctionality": "OCF"},
                "invocationTimeStamp": null,
                "invocationSequenceNumber": 1,
                "subscriptionId": ["msisdn-491701234567"],
                "oneTimeEvent": true,
                "oneTimeEventType": "PEC",
                "serviceContextId": "32274@3gpp.org",
                "serviceRating": [{"serviceId": 1, "ratingGroup": 1,
                    "requestedUnit": {"serviceSpecificUnit": 40}, "requestSubType": "RESERVE"}]
            })
        );
        assert_eq!(
            c.transport
                .url(&[RATING_PATH.as_slice(), &["17", "release"]].concat())
                .as_str(),
            "http://ocs.test/nrf-rating/v1/ratingdata/17/release"
        );
    }

    #[test]
    fn declines_what_the_ocs_cannot_rate() {
        let mut config = config("http://ocs.test");
        config.minor_units_per_unit = 5;
        let c = NrfRatingConnector::new("x", config).unwrap();
        assert_eq!(c.rate(&charge("0.40")).map(|r| r.units).ok(), Some(8));
        assert_eq!(c.rate(&charge("0.42")).err(), Some(DeclineReason::Declined));
        let mut gbp = charge("0.40");
        gbp.money = Money::parse("0.40", Currency::parse("GBP").unwrap()).unwrap();
        assert_eq!(c.rate(&gbp).err(), Some(DeclineReason::Declined));
        let mut email = charge("0.40");
        email.customer = Customer::Email(dcbhub_domain::Email::parse("a@b.example").unwrap());
        assert_eq!(c.rate(&email).err(), Some(DeclineReason::AccountNotFound));
    }
}
