//! Configuration: compiled-in defaults, then an optional TOML file, then `DCBHUB_*`
//! environment variables (`__` separates nested keys, e.g. `DCBHUB_SANDBOX__ENABLED`).
//! Unknown keys in the file and bad values anywhere stop the start with a message naming
//! them; an unknown `DCBHUB_*` variable is logged as a warning naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

pub const ENV_PREFIX: &str = "DCBHUB_";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// Bearer token of the admin API; without one the admin API is off.
    pub admin_token: Option<String>,
    /// `json` (default) or `text`.
    pub log_format: LogFormat,
    pub sandbox: SandboxConfig,
    /// The CSPs the hub routes customers to (besides the sandbox).
    pub csps: Vec<CspConfig>,
    pub pin: PinConfig,
    pub notifications: NotificationsConfig,
    pub transactions: TransactionsConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// The built-in simulated CSP (API.md §9) for `+447700900000`–`+447700900999`.
    pub enabled: bool,
    /// Create a `DEMO` partner at the first start and print its key once.
    pub demo_partner: bool,
    /// Spending limits of sandbox customers (UK: 40 / 100 / 240 GBP).
    pub limits: LimitsConfig,
}

/// Spending limits per customer across all partners, in one currency.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub currency: String,
    pub per_transaction: String,
    pub per_day: String,
    pub per_month: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CspKind {
    Sandbox,
    Http,
    NrfRating,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChannelName {
    Csp,
    Smpp,
    Smtp,
    Sandbox,
}

/// One CSP: its connector, the numbers it serves, its limits and message channels.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CspConfig {
    pub id: String,
    pub kind: CspKind,
    /// E.164 digit prefixes, e.g. `["44"]`; the longest match wins.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Whether customers may be looked up here by email.
    #[serde(default)]
    pub accepts_email: bool,
    pub http: Option<dcbhub_connectors::HttpConnectorConfig>,
    pub nrf_rating: Option<dcbhub_connectors::NrfRatingConfig>,
    pub limits: Option<LimitsConfig>,
    /// Channel for messages to an MSISDN (default: the CSP's own API).
    pub sms_channel: Option<ChannelName>,
    /// Channel for messages to an email (default: the CSP's own API).
    pub email_channel: Option<ChannelName>,
    pub smpp: Option<dcbhub_notify::smpp::SmppConfig>,
    pub smtp: Option<dcbhub_notify::smtp::SmtpConfig>,
    /// The CSP's charging code per partner product code.
    #[serde(default)]
    pub charge_codes: std::collections::HashMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinConfig {
    /// Digits of a PIN, 4 to 8.
    pub length: u32,
    /// A PIN expires this long after it was last sent.
    pub ttl_secs: u32,
    pub max_attempts: u32,
    pub resend_cooldown_secs: u32,
    /// Sends per challenge, the first included.
    pub max_sends: u32,
    /// PINs per customer per hour, across partners.
    pub max_per_customer_per_hour: u32,
    /// How long a validated PIN remains usable as consent.
    pub consent_window_secs: u32,
    /// HMAC key for stored PINs (at least 32 characters). Required with PostgreSQL (all
    /// instances must share it); the embedded default keeps a generated one in its data folder.
    pub secret: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Messages one partner may send one recipient per hour (the hub's receipts do not count).
    pub max_per_recipient_per_hour: u32,
    /// Attempts before a message is dead-lettered (`FAILED`).
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub poll_interval_ms: u64,
    pub batch: u32,
    /// How long a worker holds a message before another may take it over.
    pub lease_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionsConfig {
    /// Largest amount accepted, in whole units of the transaction's currency.
    pub max_amount: u64,
    /// How long a charge request waits for the CSP before answering `202 PENDING`.
    pub csp_timeout_ms: u64,
    /// The reconciler's first look at an unknown outcome comes this long after it.
    pub reconcile_first_delay_ms: u64,
    pub reconcile_max_delay_ms: u64,
    pub reconcile_interval_ms: u64,
    pub reconcile_batch: u32,
    /// Offset from UTC of the spending-limit day and month, in minutes.
    pub limits_utc_offset_minutes: i32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./dcbhub-data/dcbhub.db".into(),
            admin_token: None,
            log_format: LogFormat::Json,
            sandbox: SandboxConfig::default(),
            csps: Vec::new(),
            pin: PinConfig::default(),
            notifications: NotificationsConfig::default(),
            transactions: TransactionsConfig::default(),
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            demo_partner: true,
            limits: LimitsConfig {
                currency: "GBP".into(),
                per_transaction: "40.00".into(),
                per_day: "100.00".into(),
                per_month: "240.00".into(),
            },
        }
    }
}

impl Default for PinConfig {
    fn default() -> Self {
        Self {
            length: 6,
            ttl_secs: 300,
            max_attempts: 3,
            resend_cooldown_secs: 30,
            max_sends: 3,
            max_per_customer_per_hour: 5,
            consent_window_secs: 600,
            secret: None,
        }
    }
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            max_per_recipient_per_hour: 20,
            max_attempts: 8,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            poll_interval_ms: 200,
            batch: 64,
            lease_ms: 60_000,
        }
    }
}

impl Default for TransactionsConfig {
    fn default() -> Self {
        Self {
            max_amount: 10_000,
            csp_timeout_ms: 5_000,
            reconcile_first_delay_ms: 2_000,
            reconcile_max_delay_ms: 300_000,
            reconcile_interval_ms: 500,
            reconcile_batch: 64,
            limits_utc_offset_minutes: 0,
        }
    }
}

/// Top-level keys, as `DCBHUB_<KEY>` names; nested sections are matched by their prefix.
const KNOWN_KEYS: &[&str] = &["LISTEN", "DATABASE_URL", "ADMIN_TOKEN", "LOG_FORMAT"];
const KNOWN_SECTIONS: &[&str] = &["SANDBOX", "PIN", "NOTIFICATIONS", "TRANSACTIONS"];

fn known_env(name: &str) -> bool {
    let Some(key) = name.strip_prefix(ENV_PREFIX) else {
        return true;
    };
    KNOWN_KEYS.contains(&key)
        || KNOWN_SECTIONS.iter().any(|s| {
            key.strip_prefix(s)
                .is_some_and(|rest| rest.starts_with("__"))
        })
        || key == "CONFIG"
        || key == "CSP_SIM_API_KEY"
}

/// `DCBHUB_*` variables that name no setting; the caller logs them once logging is up.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(ENV_PREFIX) && !known_env(k))
        .collect()
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!(
                    "configuration file {} does not exist",
                    path.display()
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|k| {
                    known_env(&format!("{ENV_PREFIX}{}", k.as_str().to_ascii_uppercase()))
                        && k != "config"
                })
                .split("__"),
        );
        let config: Config = figment.extract().map_err(|e| {
            e.into_iter()
                .map(|e| format!("invalid configuration: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.database_url.starts_with("sqlite://")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(
                "invalid configuration: database_url must start with sqlite:// or postgres://"
                    .into(),
            );
        }
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return Err("invalid configuration: admin_token must be at least 16 characters".into());
        }
        if !(4..=8).contains(&self.pin.length) {
            return Err("invalid configuration: pin.length must be 4 to 8".into());
        }
        if self.pin.secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err("invalid configuration: pin.secret must be at least 32 characters".into());
        }
        if self.pin.secret.is_none() && self.data_dir().is_none() {
            return Err("invalid configuration: pin.secret is required with PostgreSQL (every instance must share it)".into());
        }
        for csp in &self.csps {
            let needs = match csp.kind {
                CspKind::Http => csp.http.is_none().then_some("http"),
                CspKind::NrfRating => csp.nrf_rating.is_none().then_some("nrf_rating"),
                CspKind::Sandbox => None,
            };
            if let Some(section) = needs {
                return Err(format!(
                    "invalid configuration: CSP {:?} needs a [csps.{section}] section",
                    csp.id
                ));
            }
        }
        Ok(())
    }

    /// The SQLite data folder, when the store is SQLite.
    pub fn data_dir(&self) -> Option<PathBuf> {
        let path = Path::new(self.database_url.strip_prefix("sqlite://")?);
        Some(path.parent().map(Path::to_path_buf).unwrap_or_default())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment's large Error
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_file_and_env_layer() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
            assert!(c.sandbox.enabled);
            jail.create_file(
                "dcbhub.toml",
                "listen = \"127.0.0.1:9000\"\n[sandbox]\ndemo_partner = false\n",
            )?;
            jail.set_env("DCBHUB_DATABASE_URL", "postgres://x@localhost/db");
            jail.set_env(
                "DCBHUB_PIN__SECRET",
                "a-shared-secret-of-32-characters-or-more",
            );
            let c = Config::load(Some(Path::new("dcbhub.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
            assert!(!c.sandbox.demo_partner);
            assert_eq!(c.database_url, "postgres://x@localhost/db");
            jail.set_env("DCBHUB_LISTEN", "127.0.0.1:9100");
            let c = Config::load(Some(Path::new("dcbhub.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
            Ok(())
        });
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "listn = \"127.0.0.1:9000\"\n")?;
            let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.contains("listn"), "{e}");
            jail.create_file("ok.toml", "")?;
            jail.set_env("DCBHUB_LISTEN", "not-an-address");
            let e = Config::load(Some(Path::new("ok.toml"))).unwrap_err();
            assert!(e.to_lowercase().contains("listen"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_env_vars_are_reported() {
        Jail::expect_with(|jail| {
            jail.set_env("DCBHUB_LISTN", "x");
            jail.set_env("DCBHUB_SANDBOX__ENABLED", "true");
            let unknown = unknown_env_vars();
            assert!(unknown.contains(&"DCBHUB_LISTN".to_owned()));
            assert!(!unknown.iter().any(|k| k == "DCBHUB_SANDBOX__ENABLED"));
            Ok(())
        });
    }
}
