//! A real SMTP server on loopback: Python's `aiosmtpd` with a handler that writes each
//! message it accepts to a JSON file, read back by [`SmtpSink::received`]. Recipients named
//! `reject*` are refused for good (550), `busy*` for now (451).
//!
//! Shared by the notify crate's SMTP tests and the hub's channel tests
//! (`crates/dcbhub/tests/channels.rs` includes this file by path).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use dcbhub_notify::smtp::{SmtpConfig, SmtpTls};
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

/// The sender configured on the hub's SMTP channel; Message-IDs use its domain.
pub const FROM: &str = "DCB Hub <no-reply@hub.example>";

pub struct SmtpSink {
    pub port: u16,
    dir: TempDir,
    _child: Child,
}

impl SmtpSink {
    /// Starts `python3 -m aiosmtpd` on a free loopback port and waits until it listens.
    pub async fn start() -> Self {
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

    /// The hub's SMTP channel configuration for this server (plain text, no authentication).
    pub fn config(&self) -> SmtpConfig {
        config_for(self.port)
    }

    /// The messages received so far, oldest first.
    pub fn received(&self) -> Vec<Value> {
        let inbox: PathBuf = self.dir.path().join("inbox");
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
}

/// An SMTP channel configuration for `127.0.0.1:port` (plain text, no authentication).
pub fn config_for(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: FROM.into(),
        default_subject: "Notification".into(),
        timeout_ms: 5000,
    }
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
