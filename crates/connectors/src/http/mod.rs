//! The `http` connector: a CSP that speaks the CSP-side API (docs/csp-api.md).
//!
//! One connector call has one time budget (`timeout_ms`), retries included, so the hub
//! answers within the timeout plus a small margin whatever the CSP does. Idempotent calls
//! (validate, status, notify) are retried after transport failures and 5xx answers with
//! jittered exponential backoff; a charge is retried only when its connection could not be
//! made, since anything that may have reached the CSP is settled later by the reconciler.

mod config;
mod mapping;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use dcbhub_domain::{Customer, PartnerCode, TransactionId};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, Url};

pub use config::{HttpConnectorConfig, defaults};

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::{
    AccountOutcome, CallContext, ChargeKind, ChargeOutcome, ChargeRequest, ConnectorError,
    CspConnector, Notification, NotifyOutcome, StatusOutcome,
};
use mapping::{Answer, Attempt, Failure, Verdict, labels};
use wire::{
    B3_HEADER_PREFIX, HEADER_API_KEY, HEADER_REQUEST_ID, NotificationRequest, TransactionRequest,
    TransactionType, ValidateAccountRequest, customer_fields,
};

/// Answers larger than this are not CSP-side API answers; they count as unreadable.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// No new attempt is started with less time than this left in the budget.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(20);

pub const METRIC_CALLS: &str = "dcbhub_csp_calls_total";
pub const METRIC_DURATION: &str = "dcbhub_csp_call_duration_seconds";
/// 1 while the CSP's circuit breaker is open (or probing), 0 once it closed again.
pub const METRIC_BREAKER_OPEN: &str = "dcbhub_csp_breaker_open";

#[derive(Debug, thiserror::Error)]
pub enum HttpConnectorError {
    #[error("base_url {0:?} must be an absolute http or https URL")]
    BadBaseUrl(String),
    #[error("api_key must be a visible ASCII header value")]
    BadApiKey,
    #[error("timeout_ms must be greater than zero")]
    ZeroTimeout,
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Validate,
    Charge,
    Status,
    Notify,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Charge => "charge",
            Self::Status => "status",
            Self::Notify => "notify",
        }
    }
}

pub struct HttpConnector {
    csp: Arc<str>,
    client: Client,
    base_url: Url,
    api_key: HeaderValue,
    timeout: Duration,
    backoff: ExponentialBuilder,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for HttpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConnector")
            .field("csp", &self.csp)
            .field("base_url", &self.base_url.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector {
    /// `csp_id` labels this CSP's metrics and logs.
    pub fn new(
        csp_id: impl Into<String>,
        config: HttpConnectorConfig,
    ) -> Result<Self, HttpConnectorError> {
        let mut base_url = Url::parse(&config.base_url)
            .map_err(|_| HttpConnectorError::BadBaseUrl(config.base_url.clone()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(HttpConnectorError::BadBaseUrl(config.base_url));
        }
        base_url.set_query(None);
        base_url.set_fragment(None);
        if config.timeout_ms == 0 {
            return Err(HttpConnectorError::ZeroTimeout);
        }
        let mut api_key = HeaderValue::from_str(config.api_key.expose())
            .map_err(|_| HttpConnectorError::BadApiKey)?;
        api_key.set_sensitive(true);
        ensure_crypto_provider();
        let client = Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
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
        Ok(Self {
            csp: Arc::from(csp_id.into()),
            client,
            base_url,
            api_key,
            timeout: Duration::from_millis(config.timeout_ms),
            backoff,
            breaker,
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn headers(&self, ctx: &CallContext) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_API_KEY, self.api_key.clone());
        let request_id = ctx
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok());
        if let Some(id) = request_id {
            headers.insert(HEADER_REQUEST_ID, id);
        }
        for (name, value) in &ctx.b3 {
            if !name.to_ascii_lowercase().starts_with(B3_HEADER_PREFIX) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        headers
    }

    /// Runs one connector call: attempts within the time budget, breaker checks, metrics.
    async fn call<T>(
        &self,
        operation: Operation,
        request: impl Fn() -> RequestBuilder,
        interpret: impl Fn(&Attempt) -> Verdict<T>,
        when_open: impl Fn(u32) -> T,
        label: impl Fn(&T) -> &'static str,
    ) -> T {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut delays = self.backoff.build();
        let outcome = loop {
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => break when_open(ceil_secs(rejected.retry_after)),
            };
            let budget = deadline.saturating_duration_since(Instant::now());
            let attempt = self.attempt(request(), budget).await;
            let verdict = interpret(&attempt);
            if !verdict.healthy {
                tracing::warn!(
                    csp = %self.csp,
                    operation = operation.as_str(),
                    answer = %describe(&attempt),
                    "CSP call failed"
                );
            }
            permit.report(verdict.healthy, &self.csp, METRIC_BREAKER_OPEN);
            if !verdict.retry {
                break verdict.outcome;
            }
            let Some(delay) = delays.next() else {
                break verdict.outcome;
            };
            if Instant::now() + delay + MIN_ATTEMPT_BUDGET >= deadline {
                break verdict.outcome;
            }
            tokio::time::sleep(delay).await;
        };
        let outcome_label = label(&outcome);
        metrics::counter!(
            METRIC_CALLS,
            "csp" => Arc::clone(&self.csp),
            "operation" => operation.as_str(),
            "outcome" => outcome_label
        )
        .increment(1);
        metrics::histogram!(
            METRIC_DURATION,
            "csp" => Arc::clone(&self.csp),
            "operation" => operation.as_str()
        )
        .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            csp = %self.csp,
            operation = operation.as_str(),
            outcome = outcome_label,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "CSP call"
        );
        outcome
    }

    async fn attempt(&self, request: RequestBuilder, budget: Duration) -> Attempt {
        let exchange = async {
            let mut response = request.timeout(budget).send().await.map_err(|e| {
                // A failed connect means the request never left; anything later may have
                // reached the CSP.
                if e.is_connect() || e.is_builder() {
                    Failure::NotSent
                } else {
                    Failure::Lost
                }
            })?;
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(mapping::parse_retry_after);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|_| Failure::Lost)? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Failure::Lost);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Answer {
                status: response.status().as_u16(),
                retry_after,
                body,
            })
        };
        tokio::time::timeout(budget, exchange)
            .await
            .unwrap_or(Err(Failure::Lost))
    }
}

fn ceil_secs(duration: Duration) -> u32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}

/// What went wrong, for logs: never the body, which may carry personal data.
fn describe(attempt: &Attempt) -> String {
    match attempt {
        Ok(answer) => format!("HTTP {}", answer.status),
        Err(Failure::NotSent) => "connection failed".into(),
        Err(Failure::Lost) => "no readable answer in time".into(),
    }
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
impl CspConnector for HttpConnector {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn validate_account(
        &self,
        customer: &Customer,
        partner: &PartnerCode,
        ctx: &CallContext,
    ) -> Result<AccountOutcome, ConnectorError> {
        let (msisdn, email) = customer_fields(customer);
        let body = ValidateAccountRequest {
            msisdn,
            email,
            partner_code: Some(partner.as_str().to_owned()),
        };
        let url = self.endpoint(&["account", "validate"]);
        let headers = self.headers(ctx);
        self.call(
            Operation::Validate,
            || {
                self.client
                    .post(url.clone())
                    .headers(headers.clone())
                    .json(&body)
            },
            mapping::validate,
            |secs| {
                Err(ConnectorError::Unavailable {
                    retry_after_secs: secs,
                })
            },
            labels::validate,
        )
        .await
    }

    async fn charge(&self, req: &ChargeRequest, ctx: &CallContext) -> ChargeOutcome {
        let (msisdn, email) = customer_fields(&req.customer);
        let (kind, original) = match &req.kind {
            ChargeKind::Charge => (TransactionType::Charge, None),
            ChargeKind::Refund { original } => {
                (TransactionType::Refund, Some(original.as_str().to_owned()))
            }
        };
        let body = TransactionRequest {
            transaction_id: req.transaction_id.as_str().to_owned(),
            msisdn,
            email,
            amount: req.money.to_decimal_string(),
            currency: req.money.currency().code().to_owned(),
            description: req.description.as_str().to_owned(),
            charge_code: req.charge_code.clone(),
            partner_code: req.partner.as_str().to_owned(),
            kind,
            original_transaction_id: original,
        };
        let url = self.endpoint(&["transaction"]);
        let headers = self.headers(ctx);
        self.call(
            Operation::Charge,
            || {
                self.client
                    .post(url.clone())
                    .headers(headers.clone())
                    .json(&body)
            },
            |attempt| mapping::charge(attempt, &req.transaction_id),
            |secs| ChargeOutcome::Unavailable {
                retry_after_secs: secs,
            },
            labels::charge,
        )
        .await
    }

    async fn charge_status(
        &self,
        transaction_id: &TransactionId,
        ctx: &CallContext,
    ) -> StatusOutcome {
        let url = self.endpoint(&["transaction", transaction_id.as_str()]);
        let headers = self.headers(ctx);
        self.call(
            Operation::Status,
            || self.client.get(url.clone()).headers(headers.clone()),
            |attempt| mapping::status(attempt, transaction_id),
            |_| StatusOutcome::Unavailable,
            labels::status,
        )
        .await
    }

    async fn notify(&self, n: &Notification, ctx: &CallContext) -> NotifyOutcome {
        let (msisdn, email) = customer_fields(&n.to);
        let body = NotificationRequest {
            notification_id: n.id.as_str().to_owned(),
            msisdn,
            email,
            text: n.text.clone(),
            partner_code: n.partner.as_str().to_owned(),
        };
        let url = self.endpoint(&["notification"]);
        let headers = self.headers(ctx);
        self.call(
            Operation::Notify,
            || {
                self.client
                    .post(url.clone())
                    .headers(headers.clone())
                    .json(&body)
            },
            |attempt| mapping::notify(attempt, &n.id),
            |secs| NotifyOutcome::Transient(format!("circuit open; retry after {secs} s")),
            labels::notify,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_settings() {
        let bad =
            |url: &str| HttpConnector::new("x", HttpConnectorConfig::new(url, "k")).unwrap_err();
        assert!(matches!(bad("ftp://x"), HttpConnectorError::BadBaseUrl(_)));
        assert!(matches!(
            bad("not a url"),
            HttpConnectorError::BadBaseUrl(_)
        ));
        assert!(matches!(
            bad("mailto:a@b.c"),
            HttpConnectorError::BadBaseUrl(_)
        ));
        let bad_key = HttpConnector::new("x", HttpConnectorConfig::new("http://x", "a\nb"));
        assert!(matches!(
            bad_key.unwrap_err(),
            HttpConnectorError::BadApiKey
        ));
        let mut zero = HttpConnectorConfig::new("http://x", "k");
        zero.timeout_ms = 0;
        assert!(matches!(
            HttpConnector::new("x", zero).unwrap_err(),
            HttpConnectorError::ZeroTimeout
        ));
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        for base in ["http://csp.test/dcb", "http://csp.test/dcb/"] {
            let c = HttpConnector::new("x", HttpConnectorConfig::new(base, "k")).unwrap();
            assert_eq!(
                c.endpoint(&["transaction", "tx_1"]).as_str(),
                "http://csp.test/dcb/transaction/tx_1"
            );
        }
        let c = HttpConnector::new("x", HttpConnectorConfig::new("http://csp.test", "k")).unwrap();
        assert_eq!(
            c.endpoint(&["account", "validate"]).as_str(),
            "http://csp.test/account/validate"
        );
    }

    #[test]
    fn propagates_request_id_and_b3_only() {
        let c =
            HttpConnector::new("x", HttpConnectorConfig::new("http://csp.test", "key")).unwrap();
        let ctx = CallContext {
            request_id: Some("req-1".into()),
            b3: vec![
                (
                    "X-B3-TraceId".into(),
                    "80f198ee56343ba864fe8b2a57d3eff7".into(),
                ),
                ("X-B3-Sampled".into(), "1".into()),
                ("X-API-KEY".into(), "stolen".into()),
                ("X-B3-Bad".into(), "line\nbreak".into()),
            ],
        };
        let headers = c.headers(&ctx);
        assert_eq!(headers["x-api-key"], "key");
        assert!(headers["x-api-key"].is_sensitive());
        assert_eq!(headers["x-request-id"], "req-1");
        assert_eq!(headers["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(headers["x-b3-sampled"], "1");
        assert!(headers.get("x-b3-bad").is_none());
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn rounds_retry_after_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }
}
