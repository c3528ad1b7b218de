use dcbhub_domain::{Currency, Secret};
use serde::{Deserialize, Deserializer};

/// Settings of one `nrf-rating` CSP (an online charging system). Unknown keys are refused,
/// so a typo stops the start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NrfRatingConfig {
    /// The OCS's REST root, e.g. `http://ocs.example:8080`.
    pub base_url: String,
    /// HTTP Basic credentials of the OCS's REST user.
    pub username: String,
    #[serde(deserialize_with = "secret_string")]
    pub password: Secret<String>,
    /// How many minor units of `currency` one service-specific unit is worth in the OCS's
    /// tariff (a usage price of 0.01 per unit in EUR is 1). Amounts that are not a whole
    /// number of units are declined.
    #[serde(default = "defaults::minor_units_per_unit")]
    pub minor_units_per_unit: u32,
    /// The Nrf_Rating `serviceContextId` the tariff rates.
    #[serde(default = "defaults::service_context_id")]
    pub service_context_id: String,
    /// The CSP's billing currency: the OCS's balances carry none.
    #[serde(deserialize_with = "currency")]
    pub currency: Currency,
    /// The budget of one connector call (each phase of a charge is one call), retries
    /// included.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts of a repeatable call (lookups, debit, release) after a transport
    /// failure or a 5xx.
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

impl NrfRatingConfig {
    /// A configuration with every optional setting at its default.
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
        currency: Currency,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            username: username.into(),
            password: Secret::new(password.into()),
            minor_units_per_unit: defaults::minor_units_per_unit(),
            service_context_id: defaults::service_context_id(),
            currency,
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
    pub const fn minor_units_per_unit() -> u32 {
        1
    }
    /// The 3GPP service context of SMS charging, which SigScale's prepaid SMS
    /// specification rates.
    pub fn service_context_id() -> String {
        "32274@3gpp.org".into()
    }
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

fn currency<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
    let code = String::deserialize(deserializer)?;
    Currency::parse(&code).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_defaults_and_refuses_unknown_keys() {
        let config: NrfRatingConfig = serde_json::from_str(
            r#"{"base_url": "http://127.0.0.1:8080", "username": "admin",
                "password": "s3cret", "currency": "EUR", "timeout_ms": 300}"#,
        )
        .unwrap();
        assert_eq!(config.timeout_ms, 300);
        assert_eq!(config.minor_units_per_unit, 1);
        assert_eq!(config.service_context_id, "32274@3gpp.org");
        assert_eq!(config.currency.code(), "EUR");
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.password.expose(), "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
        let typo = serde_json::from_str::<NrfRatingConfig>(
            r#"{"base_url": "http://x", "username": "a", "password": "b", "currency": "EUR",
                "minor_unit_per_unit": 1}"#,
        );
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `minor_unit_per_unit`")
        );
        let bad_currency = serde_json::from_str::<NrfRatingConfig>(
            r#"{"base_url": "http://x", "username": "a", "password": "b", "currency": "XYZ"}"#,
        );
        assert!(bad_currency.is_err());
        let no_currency = serde_json::from_str::<NrfRatingConfig>(
            r#"{"base_url": "http://x", "username": "a", "password": "b"}"#,
        );
        assert!(no_currency.unwrap_err().to_string().contains("currency"));
    }
}
