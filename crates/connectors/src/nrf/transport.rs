//! HTTP to the OCS: Basic auth, JSON, one time budget per connector call with jittered
//! retries of repeatable requests, the circuit breaker and the call metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use dcbhub_domain::Secret;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Client, RequestBuilder, Url};
use serde::Serialize;

use crate::CallContext;
use crate::breaker::{BreakerState, CircuitBreaker};
use crate::http::wire::{B3_HEADER_PREFIX, HEADER_REQUEST_ID};
use crate::http::{METRIC_BREAKER_OPEN, METRIC_CALLS, METRIC_DURATION};

/// OCS answers larger than this are not answers we expect; they count as unreadable.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// No new attempt is started with less time than this left in the budget.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(20);

/// An HTTP answer, read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// A request that got no readable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection could not be made: the request never left.
    NotSent,
    /// Timeout or broken connection after the request may have reached the OCS.
    Lost,
}

pub(crate) type Attempt = Result<Answer, Failure>;

#[derive(Debug)]
pub(crate) struct Verdict<T> {
    pub outcome: T,
    /// The OCS answered sensibly (even with a refusal); feeds the circuit breaker.
    pub healthy: bool,
    /// Worth another attempt, if time is left.
    pub retry: bool,
}

pub(crate) fn verdict<T>(outcome: T, healthy: bool, retry: bool) -> Verdict<T> {
    Verdict {
        outcome,
        healthy,
        retry,
    }
}

/// What a connector call reports in `dcbhub_csp_calls_total{operation}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Validate,
    Balance,
    Reserve,
    Debit,
    Release,
    Refund,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Balance => "balance",
            Self::Reserve => "reserve",
            Self::Debit => "debit",
            Self::Release => "release",
            Self::Refund => "refund",
        }
    }
}

pub(crate) struct Transport {
    pub csp: Arc<str>,
    pub client: Client,
    pub base_url: Url,
    pub username: String,
    pub password: Secret<String>,
    pub timeout: Duration,
    pub backoff: ExponentialBuilder,
    pub breaker: CircuitBreaker,
}

impl Transport {
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The deadline of a connector call that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// `base_url` plus path segments, each percent-encoded as needed.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn headers(ctx: &CallContext) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
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

    pub fn get(&self, url: &Url, ctx: &CallContext) -> RequestBuilder {
        self.client
            .get(url.clone())
            .headers(Self::headers(ctx))
            .basic_auth(&self.username, Some(self.password.expose()))
    }

    pub fn post<T: Serialize>(&self, url: &Url, body: &T, ctx: &CallContext) -> RequestBuilder {
        self.client
            .post(url.clone())
            .headers(Self::headers(ctx))
            .basic_auth(&self.username, Some(self.password.expose()))
            .json(body)
    }

    /// Runs one request until its verdict says stop or the deadline is near: breaker check,
    /// attempt, breaker report, backoff.
    pub async fn exchange<T>(
        &self,
        operation: Operation,
        deadline: Instant,
        request: impl Fn() -> RequestBuilder,
        interpret: impl Fn(&Attempt) -> Verdict<T>,
        when_open: impl FnOnce(u32) -> T,
    ) -> T {
        let mut delays = self.backoff.build();
        loop {
            let budget = deadline.saturating_duration_since(Instant::now());
            if budget < MIN_ATTEMPT_BUDGET {
                // An earlier request of this call used up the budget: this one never left.
                return interpret(&Err(Failure::NotSent)).outcome;
            }
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => return when_open(ceil_secs(rejected.retry_after)),
            };
            let attempt = self.attempt(request(), budget).await;
            let verdict = interpret(&attempt);
            if !verdict.healthy {
                tracing::warn!(
                    csp = %self.csp,
                    operation = operation.as_str(),
                    answer = %describe(&attempt),
                    "OCS call failed"
                );
            }
            permit.report(verdict.healthy, &self.csp, METRIC_BREAKER_OPEN);
            if !verdict.retry {
                return verdict.outcome;
            }
            let Some(delay) = delays.next() else {
                return verdict.outcome;
            };
            if Instant::now() + delay + MIN_ATTEMPT_BUDGET >= deadline {
                return verdict.outcome;
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, request: RequestBuilder, budget: Duration) -> Attempt {
        let exchange = async {
            let mut response = request.timeout(budget).send().await.map_err(|e| {
                // A failed connect means the request never left; anything later may have
                // reached the OCS.
                if e.is_connect() || e.is_builder() {
                    Failure::NotSent
                } else {
                    Failure::Lost
                }
            })?;
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|_| Failure::Lost)? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Failure::Lost);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Answer {
                status: response.status().as_u16(),
                location,
                body,
            })
        };
        tokio::time::timeout(budget, exchange)
            .await
            .unwrap_or(Err(Failure::Lost))
    }

    /// Counts and times one connector call.
    pub fn record(&self, operation: Operation, started: Instant, outcome: &'static str) {
        metrics::counter!(
            METRIC_CALLS,
            "csp" => Arc::clone(&self.csp),
            "operation" => operation.as_str(),
            "outcome" => outcome
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
            outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "CSP call"
        );
    }
}

pub(crate) fn ceil_secs(duration: Duration) -> u32 {
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
