use std::{str::FromStr, time::Duration};

use dcbhub_domain::Secret;
use rusmpp::{
    pdus::BindTransmitter,
    types::COctetString,
    values::{InterfaceVersion, Npi, Ton},
};
use serde::Deserialize;

use crate::secret_serde::secret_string;

/// How to reach and bind to the SMSC. Plain TCP; TLS is not supported yet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// At most 15 characters.
    pub system_id: String,
    /// At most 8 characters.
    #[serde(deserialize_with = "secret_string")]
    pub password: Secret<String>,
    /// At most 12 characters; empty by default.
    #[serde(default)]
    pub system_type: String,
    /// The sender shown to the customer: a short code, a number or up to 11 letters.
    pub source_addr: String,
    /// Type of number of `source_addr`; 5 (alphanumeric) by default.
    #[serde(default = "default_source_ton")]
    pub source_ton: u8,
    /// Numbering plan of `source_addr`; 0 (unknown) by default.
    #[serde(default)]
    pub source_npi: u8,
    /// Connect, bind and response timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often an idle session is checked with `enquire_link`.
    #[serde(default = "default_enquire_link_interval_ms")]
    pub enquire_link_interval_ms: u64,
}

fn default_port() -> u16 {
    2775
}

fn default_source_ton() -> u8 {
    5
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_enquire_link_interval_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMPP configuration: {field} {reason}")]
pub struct SmppConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl SmppConfig {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(crate) fn enquire_link_interval(&self) -> Duration {
        Duration::from_millis(self.enquire_link_interval_ms)
    }

    /// The `bind_transmitter` PDU, SMPP 3.4.
    pub(crate) fn bind_transmitter(&self) -> Result<BindTransmitter, SmppConfigError> {
        Ok(BindTransmitter::builder()
            .system_id(c_octet_string("system_id", &self.system_id)?)
            .password(c_octet_string("password", self.password.expose())?)
            .system_type(c_octet_string("system_type", &self.system_type)?)
            .interface_version(InterfaceVersion::Smpp3_4)
            .addr_ton(Ton::Unknown)
            .addr_npi(Npi::Unknown)
            .address_range(COctetString::empty())
            .build())
    }

    pub(crate) fn source_addr(&self) -> Result<COctetString<1, 21>, SmppConfigError> {
        if self.source_addr.is_empty() {
            return Err(SmppConfigError {
                field: "source_addr",
                reason: "must not be empty",
            });
        }
        c_octet_string("source_addr", &self.source_addr)
    }

    pub(crate) fn validate(&self) -> Result<(), SmppConfigError> {
        if self.host.is_empty() {
            return Err(SmppConfigError {
                field: "host",
                reason: "must not be empty",
            });
        }
        if self.timeout_ms == 0 {
            return Err(SmppConfigError {
                field: "timeout_ms",
                reason: "must be above zero",
            });
        }
        if self.enquire_link_interval_ms == 0 {
            return Err(SmppConfigError {
                field: "enquire_link_interval_ms",
                reason: "must be above zero",
            });
        }
        self.bind_transmitter()?;
        self.source_addr()?;
        Ok(())
    }
}

fn c_octet_string<const MIN: usize, const MAX: usize>(
    field: &'static str,
    value: &str,
) -> Result<COctetString<MIN, MAX>, SmppConfigError> {
    if !value.is_ascii() {
        return Err(SmppConfigError {
            field,
            reason: "must be ASCII",
        });
    }
    COctetString::from_str(value).map_err(|_| SmppConfigError {
        field,
        reason: "is too long for its SMPP field",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SmppConfig {
        SmppConfig {
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: "dcbhub".into(),
            password: Secret::new("secret".into()),
            system_type: String::new(),
            source_addr: "DCBHUB".into(),
            source_ton: 5,
            source_npi: 0,
            timeout_ms: 1000,
            enquire_link_interval_ms: 30_000,
        }
    }

    #[test]
    fn valid_config_builds_a_3_4_bind() {
        let bind = config().bind_transmitter().unwrap();
        assert_eq!(bind.interface_version, InterfaceVersion::Smpp3_4);
        assert_eq!(bind.system_id.as_str(), "dcbhub");
        assert_eq!(bind.password.as_str(), "secret");
        assert!(config().validate().is_ok());
    }

    #[test]
    fn refuses_fields_too_long_for_smpp() {
        let mut c = config();
        c.password = Secret::new("123456789".into());
        assert_eq!(c.validate().unwrap_err().field, "password");
        let mut c = config();
        c.system_id = "a".repeat(16);
        assert_eq!(c.validate().unwrap_err().field, "system_id");
        let mut c = config();
        c.source_addr = "a".repeat(21);
        assert_eq!(c.validate().unwrap_err().field, "source_addr");
        let mut c = config();
        c.source_addr = String::new();
        assert_eq!(c.validate().unwrap_err().field, "source_addr");
    }

    #[test]
    fn deserializes_with_defaults_and_hides_the_password() {
        let c: SmppConfig = serde_json::from_value(serde_json::json!({
            "host": "smsc.example.com", "system_id": "hub", "password": "pw", "source_addr": "DCB"
        }))
        .unwrap();
        assert_eq!(c.port, 2775);
        assert_eq!(c.source_ton, 5);
        assert_eq!(c.timeout_ms, 10_000);
        assert_eq!(c.password.expose(), "pw");
        assert!(!format!("{c:?}").contains("pw\""));
        assert!(
            serde_json::from_value::<SmppConfig>(serde_json::json!({
                "host": "h", "system_id": "hub", "password": "pw", "source_addr": "DCB", "typo": 1
            }))
            .is_err()
        );
    }
}
