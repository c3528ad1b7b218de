//! Issue 4 end to end: messages queued over HTTP reach the customer through the channel their
//! CSP is configured with — email over SMTP to a real `aiosmtpd`, SMS over SMPP to a fake SMSC
//! — exactly once, and a hub killed between queueing and delivery loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

#[path = "support/fake_smsc.rs"]
mod fake_smsc;

#[path = "../../notify/tests/support/smtp_sink.rs"]
mod smtp_sink;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use dcbhub::config::ChannelName;
use dcbhub_domain::{ConsentPolicy, Customer, Email, Msisdn, PartnerCode};
use fake_smsc::{FakeSmsc, Reply, Submitted, reassemble};
use helpers::{Backend, Sim, TestApp, json, spawn_app_with, spawn_sim, via_sim};
use rusmpp::CommandStatus;
use serde_json::{Value, json};
use smtp_sink::SmtpSink;

/// Upper bound of every wait in this file.
const PATIENCE: Duration = Duration::from_secs(15);

async fn notify(app: &TestApp, key: &str, body: Value) -> String {
    let (status, queued) = json(app.post("/notification", key, &body).send().await.unwrap()).await;
    assert_eq!(
        (status, queued["status"].as_str()),
        (202, Some("QUEUED")),
        "{queued}"
    );
    queued["notificationId"].as_str().unwrap().to_owned()
}

/// Polls `GET /notification/{id}` (bounded) until it reports `want`.
async fn wait_status(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    want: &str,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let resp = client
            .get(format!("{base}/notification/{id}"))
            .header("X-API-KEY", key)
            .send()
            .await
            .unwrap();
        let (status, body) = json(resp).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "notification {id} never became {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_sent(app: &TestApp, key: &str, id: &str) -> Value {
    wait_status(&app.client, &app.url(""), key, id, "SENT").await
}

/// Waits (bounded) until `ready` holds.
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the csp-sim's own notification API delivered to `customer` for `partner`.
fn sim_inbox(sim: &Sim, customer: &Customer, partner: &str) -> Vec<String> {
    sim.state
        .sandbox()
        .inbox(customer, &PartnerCode::parse(partner).unwrap())
        .into_iter()
        .map(|m| m.text)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SMTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_to_an_email_reaches_the_smtp_server_once() {
    let smtp = SmtpSink::start().await;
    let sim = spawn_sim(1500).await;
    let (sim_addr, smtp_config) = (sim.addr, smtp.config());
    let app = spawn_app_with(Backend::Sqlite, "ch_smtp", |c| {
        via_sim(c, sim_addr, 1000);
        c.csps[0].email_channel = Some(ChannelName::Smtp);
        c.csps[0].smtp = Some(smtp_config);
    })
    .await
    .unwrap();
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let to = "447700900000@sandbox.dcbhub.test";
    let text = "Your plan renews tomorrow: 4.99 € — Zapłać später.";

    let id = notify(&app, &key, json!({"email": to, "message": text})).await;
    let sent = wait_sent(&app, &key, &id).await;
    assert_eq!(
        (sent["channel"].as_str(), sent["attempts"].as_u64()),
        (Some("smtp"), Some(1)),
        "{sent}"
    );

    // The server accepted the mail before the hub recorded SENT.
    let received = smtp.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let m = &received[0];
    assert_eq!(m["mail_from"], "no-reply@hub.example");
    assert_eq!(m["rcpt_tos"], json!([to]));
    assert_eq!(m["to"], to);
    assert_eq!(m["subject"], "NFLX Media via your phone bill");
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(
        m["body"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        text
    );
    assert_eq!(m["message_id"], format!("<{id}@hub.example>"));

    // Nothing more arrives, and the CSP's own notification API was not used.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 1);
    let customer = Customer::Email(Email::parse(to).unwrap());
    assert!(sim_inbox(&sim, &customer, "NFLX").is_empty());
}

// ---------------------------------------------------------------------------------------------
// SMPP

/// A hub whose only CSP is csp-sim (account checks) with SMS over SMPP to `smsc`.
async fn spawn_with_smsc(test: &str, smsc: &FakeSmsc) -> (TestApp, Sim) {
    let sim = spawn_sim(1500).await;
    let (sim_addr, smpp_config) = (sim.addr, smsc.config());
    let app = spawn_app_with(Backend::Sqlite, test, |c| {
        via_sim(c, sim_addr, 1000);
        c.csps[0].sms_channel = Some(ChannelName::Smpp);
        c.csps[0].smpp = Some(smpp_config);
    })
    .await
    .unwrap();
    (app, sim)
}

/// The `submit_sm`s received since the first `seen`.
fn new_submits(smsc: &FakeSmsc, seen: usize) -> Vec<Submitted> {
    smsc.submits().split_off(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_smsc_in_the_right_encoding_and_segments_once() {
    let smsc = FakeSmsc::start().await;
    let (app, sim) = spawn_with_smsc("ch_smpp", &smsc).await;
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let msisdn = "+447700900000";

    let mut long: String =
        "Your Acme Premium plan renews on 1 May for 4.99 GBP; reply STOP to end. "
            .chars()
            .cycle()
            .take(399)
            .collect();
    long.push('.');
    assert_eq!(long.chars().count(), 400);
    // (text, data_coding, segments)
    let cases: [(&str, u8, usize); 4] = [
        ("Your plan renews tomorrow at 4.99 GBP.", 0x00, 1),
        ("Zapłać 4.99 zł jutro.", 0x08, 1),
        ("Thanks for subscribing! 👍", 0x08, 1),
        (&long, 0x00, 3),
    ];
    let mut seen = 0;
    for (text, coding, segments) in cases {
        let id = notify(&app, &key, json!({"msisdn": msisdn, "message": text})).await;
        let sent = wait_sent(&app, &key, &id).await;
        assert_eq!(
            (sent["channel"].as_str(), sent["attempts"].as_u64()),
            (Some("smpp"), Some(1)),
            "{text}: {sent}"
        );
        let submits = new_submits(&smsc, seen);
        seen += submits.len();
        assert_eq!(submits.len(), segments, "{text}: {submits:?}");
        for s in &submits {
            assert_eq!(s.data_coding, coding, "{text}");
            assert_eq!(s.destination, "447700900000");
            assert_eq!((s.dest_ton, s.dest_npi), (1, 1));
            assert_eq!(s.source, "DCBHUB");
        }
        // One concatenation reference shared by the parts, in order, and the exact text.
        assert_eq!(reassemble(&submits), text);
    }
    let three = &smsc.submits()[3..];
    let reference = three[0].short_message[3];
    for (i, s) in three.iter().enumerate() {
        assert_eq!(s.esm_class, 0x40);
        assert_eq!(s.short_message[..6], [5, 0, 3, reference, 3, i as u8 + 1]);
    }
    assert_eq!(three[0].short_message.len(), 6 + 153);

    // Nothing is sent twice; one session carried it all; the CSP's API was not used.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smsc.submits().len(), 6);
    let binds = smsc.binds();
    assert_eq!(binds.len(), 1);
    assert_eq!(
        (binds[0].system_id.as_str(), binds[0].interface_version),
        ("dcbhub", 0x34)
    );
    let customer = Customer::Msisdn(Msisdn::parse(msisdn).unwrap());
    assert!(sim_inbox(&sim, &customer, "NFLX").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_submit_is_retried_and_delivered_once() {
    let smsc = FakeSmsc::start().await;
    smsc.script([Reply::Status(CommandStatus::EsmeRthrottled)]);
    let (app, _sim) = spawn_with_smsc("ch_smpp_retry", &smsc).await;
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let id = notify(
        &app,
        &key,
        json!({"msisdn": "+447700900000", "message": "Second time lucky."}),
    )
    .await;
    let sent = wait_sent(&app, &key, &id).await;
    assert_eq!(sent["attempts"], 2, "{sent}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let submits = smsc.submits();
    assert_eq!(submits.len(), 2, "one refused, one accepted: {submits:?}");
    // The retry is the same message with the same reference.
    assert_eq!(submits[0].short_message, submits[1].short_message);
    assert_eq!(
        submits[0].user_message_reference,
        submits[1].user_message_reference
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_sent_over_smpp_validates() {
    let smsc = FakeSmsc::start().await;
    let (app, sim) = spawn_with_smsc("ch_smpp_pin", &smsc).await;
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let msisdn = "+447700900010";

    let (status, created) = json(
        app.post(
            "/pin",
            &key,
            &json!({"msisdn": msisdn, "amount": "4.99", "currency": "GBP", "description": "Premium plan"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let pin_id = created["pinId"].as_str().unwrap();
    assert!(!created.to_string().contains("PIN is"));

    wait_until("the PIN's submit_sm", || !smsc.submits().is_empty()).await;
    let submits = smsc.submits();
    assert_eq!(submits.len(), 1, "{submits:?}");
    assert_eq!(submits[0].destination, "447700900010");
    assert_eq!(submits[0].data_coding, 0x00);
    let text = reassemble(&submits);
    assert!(
        text.contains("NFLX Media") && text.contains("4.99 GBP") && text.contains("Premium plan"),
        "{text}"
    );
    let code: String = text
        .split("PIN is ")
        .nth(1)
        .unwrap_or_else(|| panic!("no PIN in {text:?}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 6, "{text}");

    let (status, valid) = json(
        app.post(
            "/pin/validate",
            &key,
            &json!({"pinId": pin_id, "pin": code}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{valid}");
    assert_eq!(valid["status"], "VALID");
    // The PIN went only over SMPP.
    let customer = Customer::Msisdn(Msisdn::parse(msisdn).unwrap());
    assert!(sim_inbox(&sim, &customer, "NFLX").is_empty());
    assert_eq!(smsc.submits().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Crash between queueing and delivery

/// A CSP answering account checks ACTIVE and recording the `notificationId` of every
/// notification call; it accepts them (`202`) or, when `answers` is false, never replies.
async fn recording_csp(answers: bool) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let app = axum::Router::new()
        .route(
            "/account/validate",
            axum::routing::post(|| async {
                Json(json!({"status": "ACTIVE", "type": "postpaid", "currency": "GBP", "accountRef": "acc-1"}))
            }),
        )
        .route(
            "/notification",
            axum::routing::post(move |Json(req): Json<Value>| {
                let id = req["notificationId"].as_str().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(id.clone());
                async move {
                    if !answers {
                        std::future::pending::<()>().await;
                    }
                    (
                        StatusCode::ACCEPTED,
                        Json(json!({"notificationId": id, "status": "ACCEPTED"})),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The hub's configuration file: SQLite in `dir`, one HTTP CSP at `csp` whose own API is the
/// notification channel, quick outbox polling and a short lease.
fn write_config(dir: &Path, listen: SocketAddr, csp: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("dcbhub.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "{listen}"
database_url = "sqlite://{db}"
log_format = "text"
[sandbox]
enabled = false
demo_partner = false
[pin]
secret = "channels-test-secret-0123456789abcdef"
[notifications]
poll_interval_ms = 25
retry_base_ms = 50
retry_max_ms = 200
max_attempts = 1000
lease_ms = 1500
[[csps]]
id = "acme"
kind = "http"
prefixes = ["447700900"]
sms_channel = "csp"
[csps.http]
base_url = "http://{csp}"
api_key = "acme-key-0123456789"
timeout_ms = 10000
max_retries = 0
"#,
            db = dir.join("hub.db").display()
        ),
    )
    .unwrap();
    path
}

fn dcbhub(args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcbhub"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A hub process, SIGKILLed when dropped.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(client: &reqwest::Client, config: &Path, listen: SocketAddr) -> Hub {
    let hub = Hub(dcbhub(&["serve"], config).spawn().unwrap());
    let url = format!("http://{listen}/healthz");
    let deadline = Instant::now() + PATIENCE;
    while !client
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "the hub did not come up at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_between_queueing_and_delivery_delivers_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (hanging, hanging_calls) = recording_csp(false).await;
    let first = free_addr();
    let config = write_config(dir.path(), first, hanging);
    let out = dcbhub(
        &[
            "partner",
            "create",
            "--code",
            "NFLX",
            "--name",
            "NFLX Media",
            "--consent",
            "pin",
            "--json",
        ],
        &config,
    )
    .stdout(Stdio::piped())
    .output()
    .unwrap();
    assert!(out.status.success(), "partner create: {out:?}");
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();
    dcbhub::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut hub = serve(&client, &config, first).await;

    // The first message is taken by the worker and its call hangs at the CSP; the others are
    // queued behind it. Then the hub dies.
    let base = format!("http://{first}");
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, queued) = json(
            client
                .post(format!("{base}/notification"))
                .header("X-API-KEY", &key)
                .json(&json!({"msisdn": format!("+44770090010{i}"), "message": format!("Reminder {i}")}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{queued}");
        ids.push(queued["notificationId"].as_str().unwrap().to_owned());
        if i == 0 {
            wait_until("the first delivery attempt", || {
                !hanging_calls.lock().unwrap().is_empty()
            })
            .await;
        }
    }
    for id in &ids {
        let (status, body) = json(
            client
                .get(format!("{base}/notification/{id}"))
                .header("X-API-KEY", &key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("QUEUED")),
            "{body}"
        );
    }
    hub.0.kill().unwrap();
    hub.0.wait().unwrap();
    drop(hub);
    let attempted_before_the_crash = hanging_calls.lock().unwrap().clone();
    assert_eq!(attempted_before_the_crash.first(), Some(&ids[0]));

    // Restart against a CSP that answers.
    let (working, working_calls) = recording_csp(true).await;
    let second = free_addr();
    let config = write_config(dir.path(), second, working);
    let _hub = serve(&client, &config, second).await;
    let base = format!("http://{second}");
    for id in &ids {
        let sent = wait_status(&client, &base, &key, id, "SENT").await;
        assert_eq!(sent["channel"], "csp", "{sent}");
        if *id == ids[0] {
            // Taken once before the crash (its lease then ran out), once after.
            assert_eq!(sent["attempts"], 2, "{sent}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut delivered = working_calls.lock().unwrap().clone();
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected, "each message delivered exactly once");
    assert_eq!(
        *hanging_calls.lock().unwrap(),
        attempted_before_the_crash,
        "nothing went to the old CSP after the crash"
    );
}
