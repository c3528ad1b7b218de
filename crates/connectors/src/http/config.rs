use dcbhub_domain::Secret;
use serde::{Deserialize, Deserializer};

/// Settings of one `http` CSP. Unknown keys are refused, so a typo stops the start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConnectorConfig {
    /// Where the CSP-side API lives, e.g. `https://csp.example/dcb/`.
    pub base_url: String,
    /// The CSP's key for us, sent as `X-API-KEY`.
    #[serde(deserialize_with = "secret_string")]
    pub api_key: Secret<String>,
    /// The budget of one connector call, retries included.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts of an idempotent call after a transport failure or a 5xx.
    #[serde(default = "defaults::max_retries")]
    pub max_retries: u32,
    /// First backoff delay; it doubles, with jitter, up to `backoff_max_ms`.
    #[serde(default = "defaults::backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "defaults::backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "defaults::breaker_failure_threshold")]
    pub breaker_failure_threshold: u32,
    /// How long the open breaker refuses calls before it lets one probe through.
    #[serde(default = "defaults::breaker_open_ms")]
    pub breaker_open_ms: u64,
}

impl HttpConnectorConfig {
    /// A configuration with every optional setting at its default.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: Secret::new(api_key.into()),
            timeout_ms: defaults::timeout_ms(),
            max_retries: defaults::max_retries(),
            backoff_base_ms: defaults::backoff_base_ms(),
            backoff_max_ms: defaults::backoff_max_ms(),
            breaker_failure_threshold: defaults::breaker_failure_threshold(),
            breaker_open_ms: defaults::breaker_open_ms(),
        }
    }
}

pub mod defaults {
    pub const fn timeout_ms() -> u64 {
        5_000
    }
    pub const fn max_retries() -> u32 {
        2
    }
    pub const fn backoff_base_ms() -> u64 {
        50
    }
    pub const fn backoff_max_ms() -> u64 {
        1_000
    }
    pub const fn breaker_failure_threshold() -> u32 {
        5
    }
    pub const fn breaker_open_ms() -> u64 {
        10_000
    }
}

fn secret_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret<String>, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_defaults_and_refuses_unknown_keys() {
        let config: HttpConnectorConfig = serde_json::from_str(
            r#"{"base_url": "http://127.0.0.1:9090", "api_key": "k", "timeout_ms": 300}"#,
        )
        .unwrap();
        assert_eq!(config.timeout_ms, 300);
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.breaker_failure_threshold, 5);
        assert_eq!(config.breaker_open_ms, 10_000);
        assert_eq!(config.api_key.expose(), "k");
        assert!(!format!("{config:?}").contains("\"k\""));
        let typo = serde_json::from_str::<HttpConnectorConfig>(
            r#"{"base_url": "http://x", "api_key": "k", "timeout": 1}"#,
        );
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `timeout`")
        );
    }
}
