//! Email over SMTP with `lettre` (rustls, pooled connections).

use std::time::Duration;

use async_trait::async_trait;
use dcbhub_domain::{Customer, Email, Secret};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        Error as SmtpError,
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use serde::Deserialize;
use tracing::{info, warn};

use crate::{Channel, DeliveryError, OutboundMessage, secret_serde::optional_secret_string};

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text; for a relay on the same host or network only.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// 587 by default (25 for `tls = "none"` is a common override, 465 for `tls = "tls"`).
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Authenticates only when set.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "optional_secret_string")]
    pub password: Option<Secret<String>>,
    /// The sender, e.g. `"DCB Hub <no-reply@hub.example>"`.
    pub from: String,
    /// Subject of a message that brings none.
    #[serde(default = "default_subject")]
    pub default_subject: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_port() -> u16 {
    587
}

fn default_subject() -> String {
    "Notification".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("invalid SMTP configuration: `from` is not a mailbox: {0}")]
    From(String),
    #[error("invalid SMTP configuration: TLS parameters: {0}")]
    Tls(String),
    #[error("invalid SMTP configuration: {0}")]
    Invalid(&'static str),
}

/// The SMTP channel.
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of Message-IDs: the sender's.
    id_domain: String,
    default_subject: String,
}

impl SmtpChannel {
    /// Checks the configuration and sets up the connection pool; connects on first delivery.
    /// Must run inside a Tokio runtime (the pool spawns its idle-connection reaper).
    pub fn new(config: SmtpConfig) -> Result<Self, SmtpConfigError> {
        if config.host.is_empty() {
            return Err(SmtpConfigError::Invalid("host must not be empty"));
        }
        if config.timeout_ms == 0 {
            return Err(SmtpConfigError::Invalid("timeout_ms must be above zero"));
        }
        if config.password.is_some() && config.username.is_none() {
            return Err(SmtpConfigError::Invalid("password is set without username"));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| SmtpConfigError::From(e.to_string()))?;
        let tls_parameters = || {
            TlsParameters::new(config.host.clone()).map_err(|e| SmtpConfigError::Tls(e.to_string()))
        };
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_millis(config.timeout_ms)));
        if let Some(username) = &config.username {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose().clone())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            id_domain: from.email.domain().to_owned(),
            from,
            default_subject: config.default_subject,
        })
    }

    /// The Message-ID of a notification: the same on every attempt, so a redelivery is
    /// recognisable as one.
    fn message_id(&self, msg: &OutboundMessage) -> String {
        format!("<{}@{}>", msg.id, self.id_domain)
    }

    fn build(&self, to: &Email, msg: &OutboundMessage) -> Result<Message, DeliveryError> {
        let to: Mailbox = to
            .as_str()
            .parse()
            .map_err(|e| DeliveryError::Permanent(format!("recipient is not a mailbox: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.as_deref().unwrap_or(&self.default_subject))
            .message_id(Some(self.message_id(msg)))
            .header(ContentType::TEXT_PLAIN)
            .body(msg.text.clone())
            .map_err(|e| DeliveryError::Permanent(format!("building the message: {e}")))
    }

    async fn send(&self, to: &Email, msg: &OutboundMessage) -> Result<(), DeliveryError> {
        let message = self.build(to, msg)?;
        match self.transport.send(message).await {
            Ok(response) => {
                info!(notification_id = %msg.id, to = %to, code = %response.code(), "email accepted");
                Ok(())
            }
            Err(e) => {
                let error = classify(&e);
                warn!(notification_id = %msg.id, to = %to, error = %error, "email refused");
                Err(error)
            }
        }
    }
}

/// 5xx replies are permanent; 4xx replies, I/O, TLS and timeouts are transient.
fn classify(error: &SmtpError) -> DeliveryError {
    let description = describe(error);
    if error.is_permanent() {
        DeliveryError::Permanent(description)
    } else {
        DeliveryError::Transient(description)
    }
}

/// The error with its sources (lettre's `Display` leaves out the I/O cause).
fn describe(error: &SmtpError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<(), DeliveryError> {
        match &msg.to {
            Customer::Email(to) => self.send(to, msg).await,
            Customer::Msisdn(_) => Err(DeliveryError::Permanent(
                "SMTP cannot deliver to an MSISDN".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcbhub_domain::NotificationId;

    fn config(tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: "smtp.example.com".into(),
            port: 587,
            tls,
            username: None,
            password: None,
            from: "DCB Hub <no-reply@hub.example>".into(),
            default_subject: "Notification".into(),
            timeout_ms: 1000,
        }
    }

    #[tokio::test]
    async fn config_deserializes_with_defaults() {
        let c: SmtpConfig = serde_json::from_value(serde_json::json!({
            "host": "smtp.example.com", "from": "no-reply@hub.example",
            "username": "hub", "password": "s3cret", "tls": "tls"
        }))
        .unwrap();
        assert_eq!(c.port, 587);
        assert_eq!(c.tls, SmtpTls::Tls);
        assert_eq!(
            c.password.as_ref().map(|p| p.expose().as_str()),
            Some("s3cret")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
            assert!(SmtpChannel::new(config(tls)).is_ok());
        }
    }

    #[tokio::test]
    async fn config_refusals() {
        let mut c = config(SmtpTls::None);
        c.from = "not a mailbox".into();
        assert!(matches!(SmtpChannel::new(c), Err(SmtpConfigError::From(_))));
        let mut c = config(SmtpTls::None);
        c.password = Some(Secret::new("x".into()));
        assert!(matches!(
            SmtpChannel::new(c),
            Err(SmtpConfigError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn message_id_derives_from_the_notification_id() {
        let channel = SmtpChannel::new(config(SmtpTls::None)).unwrap();
        let id = NotificationId::generate();
        let msg = OutboundMessage {
            id: id.clone(),
            to: Customer::Email(Email::parse("ann@example.com").unwrap()),
            text: "hello".into(),
            subject: None,
        };
        assert_eq!(channel.message_id(&msg), format!("<{id}@hub.example>"));
        let formatted = String::from_utf8(
            channel
                .build(&Email::parse("ann@example.com").unwrap(), &msg)
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(
            formatted.contains(&format!("Message-ID: <{id}@hub.example>")),
            "{formatted}"
        );
        assert!(formatted.contains("Subject: Notification"), "{formatted}");
    }
}
