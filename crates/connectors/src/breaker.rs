//! A circuit breaker per CSP: after `failure_threshold` consecutive failures it opens and
//! refuses calls at once; after `open_for` it lets one probe through (half-open), whose
//! result closes or re-opens it.
//!
//! Hand-written on purpose: the crates that exist either wrap a whole tower service (our
//! retry loop and outcome mapping sit inside one call) or bring their own retry policy;
//! the state machine itself is a few lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub open_for: Duration,
}

/// The observable state, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Permission for one attempt. Report its result with [`Permit::succeed`] or
/// [`Permit::fail`]; dropping it unreported (the caller was cancelled) counts as neither.
#[derive(Debug)]
#[must_use = "report the attempt's result"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

/// The breaker refused the call; `retry_after` is the time left until it probes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after: Duration,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                open_for: config.open_for,
            },
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    pub fn state(&self) -> BreakerState {
        match *self.state.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let mut state = self.state.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Rejected {
                        retry_after: until - now,
                    });
                }
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => {
                // One probe at a time; the others wait for its verdict.
                return Err(Rejected {
                    retry_after: self.config.open_for,
                });
            }
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// Returns whether this closed the breaker.
    fn on_success(&self, probe: bool) -> bool {
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => {
                *state = State::Closed { failures: 0 };
                false
            }
            State::HalfOpen { .. } if probe => {
                *state = State::Closed { failures: 0 };
                true
            }
            // A late answer of a call admitted before the breaker opened proves little.
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    /// Returns whether this opened the breaker.
    fn on_failure(&self, probe: bool) -> bool {
        let mut state = self.state.lock();
        let open = State::Open {
            until: Instant::now() + self.config.open_for,
        };
        match *state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                let opens = failures >= self.config.failure_threshold;
                *state = if opens {
                    open
                } else {
                    State::Closed { failures }
                };
                opens
            }
            State::HalfOpen { .. } if probe => {
                *state = open;
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    fn on_abandoned(&self, probe: bool) {
        let mut state = self.state.lock();
        if probe && matches!(*state, State::HalfOpen { probing: true }) {
            *state = State::HalfOpen { probing: false };
        }
    }
}

impl Permit<'_> {
    /// Reports a sound answer; returns whether this closed the breaker.
    pub fn succeed(mut self) -> bool {
        self.reported = true;
        self.breaker.on_success(self.probe)
    }

    /// Reports a failure; returns whether this opened the breaker.
    pub fn fail(mut self) -> bool {
        self.reported = true;
        self.breaker.on_failure(self.probe)
    }

    /// Reports how the call went, logging and publishing (`gauge`) when `csp`'s breaker
    /// closes or opens because of it.
    pub fn report(self, healthy: bool, csp: &Arc<str>, gauge: &'static str) {
        if healthy {
            if self.succeed() {
                tracing::info!(csp = %csp, "CSP circuit breaker closed");
                metrics::gauge!(gauge, "csp" => Arc::clone(csp)).set(0.0);
            }
        } else if self.fail() {
            tracing::warn!(csp = %csp, "CSP circuit breaker opened");
            metrics::gauge!(gauge, "csp" => Arc::clone(csp)).set(1.0);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.on_abandoned(self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            open_for: Duration::from_millis(open_ms),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3, 60_000);
        b.try_acquire().unwrap().fail();
        b.try_acquire().unwrap().fail();
        b.try_acquire().unwrap().succeed(); // resets the count
        b.try_acquire().unwrap().fail();
        b.try_acquire().unwrap().fail();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(
            b.try_acquire().unwrap().fail(),
            "the third failure opens it"
        );
        assert_eq!(b.state(), BreakerState::Open);
        let rejected = b.try_acquire().unwrap_err();
        assert!(rejected.retry_after > Duration::from_secs(59));
    }

    #[test]
    fn half_open_lets_one_probe_through_and_closes_on_success() {
        let b = breaker(1, 30);
        b.try_acquire().unwrap().fail();
        assert!(b.try_acquire().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        assert!(probe.succeed());
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire().unwrap().succeed();
    }

    #[test]
    fn a_failed_probe_reopens_and_an_abandoned_one_frees_the_slot() {
        let b = breaker(1, 30);
        b.try_acquire().unwrap().fail();
        std::thread::sleep(Duration::from_millis(40));
        b.try_acquire().unwrap().fail();
        assert_eq!(b.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(40));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().unwrap().succeed();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn late_results_of_old_calls_do_not_close_an_open_breaker() {
        let b = breaker(1, 60_000);
        let old = b.try_acquire().unwrap();
        b.try_acquire().unwrap().fail();
        old.succeed();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
