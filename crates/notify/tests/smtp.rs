//! The SMTP channel against a real SMTP server on loopback: Python's `aiosmtpd`, with a small
//! handler that writes each message it accepts to a JSON file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::{SocketAddr, TcpListener as StdTcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use dcbhub_domain::{Customer, Email, Msisdn, NotificationId};
use dcbhub_notify::{
    Channel, DeliveryError, OutboundMessage,
    smtp::{SmtpChannel, SmtpConfig, SmtpTls},
};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpStream, process::Child};

const HANDLER: &str = r#"
import email, json, os
from email import policy


class Handler:
    """Refuses recipients named reject* (550) and busy* (451); writes accepted mail as JSON."""

    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("handler needs OUTDIR")
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        if local.startswith("busy"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": msg.get_content(),
        }
        self.count += 1
        path = os.path.join(self.outdir, "%04d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return "250 Message accepted for delivery"
"#;

struct SmtpServer {
    port: u16,
    dir: TempDir,
    _child: Child,
}

impl SmtpServer {
    async fn start() -> Self {
        require_aiosmtpd();
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("smtp_sink.py"), HANDLER).unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let port = free_port();
        let mut child = tokio::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "smtp_sink.Handler"])
            .arg(&inbox)
            .env("PYTHONPATH", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 must be on PATH");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr)
                        .await
                        .ok();
                }
                panic!("aiosmtpd exited with {status}: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on port {port} in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            port,
            dir,
            _child: child,
        }
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    fn channel(&self) -> SmtpChannel {
        SmtpChannel::new(config(self.port)).unwrap()
    }

    /// The messages received so far, oldest first.
    fn received(&self) -> Vec<Value> {
        read_inbox(&self.inbox())
    }
}

fn read_inbox(inbox: &Path) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn require_aiosmtpd() {
    let found = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the SMTP tests need Python's aiosmtpd: run `python3 -m pip install aiosmtpd` (CI installs it)"
    );
}

/// A port nothing listens on (just released by the OS).
fn free_port() -> u16 {
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    addr.port()
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "DCB Hub <no-reply@hub.example>".into(),
        default_subject: "Notification".into(),
        timeout_ms: 5000,
    }
}

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
    let server = SmtpServer::start().await;
    let channel = server.channel();
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
    let server = SmtpServer::start().await;
    let channel = server.channel();
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
    let channel = SmtpChannel::new(config(free_port())).unwrap();
    let err = deliver(&channel, &mail("ann@example.com", "hi", None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn an_msisdn_recipient_is_permanent() {
    let channel = SmtpChannel::new(config(free_port())).unwrap();
    let mut msg = mail("ann@example.com", "hi", None);
    msg.to = Customer::Msisdn(Msisdn::parse("+447700900123").unwrap());
    assert!(matches!(
        deliver(&channel, &msg).await,
        Err(DeliveryError::Permanent(_))
    ));
}
