//! The SMTP channel against a real SMTP server on loopback: Python's `aiosmtpd`, with a small
//! handler that writes each message it accepts to a JSON file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::time::Duration;

use dcbhub_domain::{Customer, Email, Msisdn, NotificationId};
use dcbhub_notify::{Channel, DeliveryError, OutboundMessage, smtp::SmtpChannel};
use smtp_sink::{SmtpSink, config_for, free_port};

fn mail(to: &str, text: &str, subject: Option<&str>) -> OutboundMessage {
    OutboundMessage {
        id: NotificationId::generate(),
        to: Customer::Email(Email::parse(to).unwrap()),
        text: text.into(),
        subject: subject.map(str::to_owned),
    }
}

async fn deliver(channel: &SmtpChannel, msg: &OutboundMessage) -> Result<(), DeliveryError> {
    tokio::time::timeout(Duration::from_secs(20), channel.deliver(msg))
        .await
        .expect("delivery must not hang")
}

#[tokio::test]
async fn the_server_receives_recipient_subject_body_and_message_id() {
    let server = SmtpSink::start().await;
    let channel = SmtpChannel::new(server.config()).unwrap();
    assert_eq!(channel.name(), "smtp");
    let text = "Acme: 4.99 € für Premium — Zapłać.\nReference: ott-0001.";
    let msg = mail("ann.lee@example.com", text, Some("Your Acme receipt"));
    deliver(&channel, &msg).await.unwrap();

    let received = server.received();
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m["mail_from"], "no-reply@hub.example");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ann.lee@example.com"]));
    assert_eq!(m["to"], "ann.lee@example.com");
    assert_eq!(m["subject"], "Your Acme receipt");
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["charset"], "utf-8");
    // Mail travels with CRLF line ends.
    assert_eq!(
        m["body"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        text
    );
    let message_id = format!("<{}@hub.example>", msg.id);
    assert_eq!(m["message_id"], message_id.as_str());

    // A redelivery of the same notification carries the same Message-ID; another does not.
    deliver(&channel, &msg).await.unwrap();
    let other = mail("ann.lee@example.com", "hello", None);
    deliver(&channel, &other).await.unwrap();
    let received = server.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[1]["message_id"], message_id.as_str());
    assert_ne!(received[2]["message_id"], message_id.as_str());
    assert_eq!(received[2]["subject"], "Notification");
}

#[tokio::test]
async fn a_550_recipient_is_permanent_and_a_451_is_transient() {
    let server = SmtpSink::start().await;
    let channel = SmtpChannel::new(server.config()).unwrap();
    let err = deliver(&channel, &mail("reject@example.com", "hi", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Permanent(d) if d.contains("550")),
        "{err:?}"
    );
    let err = deliver(&channel, &mail("busy@example.com", "hi", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient(d) if d.contains("451")),
        "{err:?}"
    );
    // The pooled connection still works after refusals.
    deliver(&channel, &mail("ok@example.com", "hi", None))
        .await
        .unwrap();
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0]["rcpt_tos"],
        serde_json::json!(["ok@example.com"])
    );
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let channel = SmtpChannel::new(config_for(free_port())).unwrap();
    let err = deliver(&channel, &mail("ann@example.com", "hi", None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn an_msisdn_recipient_is_permanent() {
    let channel = SmtpChannel::new(config_for(free_port())).unwrap();
    let mut msg = mail("ann@example.com", "hi", None);
    msg.to = Customer::Msisdn(Msisdn::parse("+447700900123").unwrap());
    assert!(matches!(
        deliver(&channel, &msg).await,
        Err(DeliveryError::Permanent(_))
    ));
}
