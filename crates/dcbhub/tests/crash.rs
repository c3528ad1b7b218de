//! Crash safety (issue 6): a hub process is killed with SIGKILL in the middle of a charge load
//! against `dcbhub csp-sim`, restarted, and left to reconcile. Then every charge in the CSP's
//! ledger is SUCCESS in the hub, none is in the ledger twice, and every charge the load
//! generator saw succeed is SUCCESS in the hub.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/process.rs"]
mod process;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use process::{Killed, dcbhub, free_port, wait_up};

const SIM_KEY: &str = "crash-sim-key-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_charge_load_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim_addr = free_port();
    let hub_addr = free_port();
    let config = dir.path().join("dcbhub.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "{hub_addr}"
database_url = "sqlite://{db}"
log_format = "text"
[sandbox]
enabled = false
[pin]
secret = "crash-test-secret-0123456789abcdef01"
[transactions]
csp_timeout_ms = 1000
reconcile_first_delay_ms = 100
reconcile_interval_ms = 50
reconcile_max_delay_ms = 500
[[csps]]
id = "sim"
kind = "http"
prefixes = ["447700900"]
[csps.http]
base_url = "http://{sim_addr}"
api_key = "{SIM_KEY}"
timeout_ms = 800
"#,
            db = dir.path().join("hub.db").display()
        ),
    )
    .unwrap();
    let _sim = Killed(
        dcbhub(
            &[
                "csp-sim",
                "--listen",
                &sim_addr.to_string(),
                "--api-key",
                SIM_KEY,
                "--late-answer-ms",
                "300",
            ],
            &config,
        )
        .spawn()
        .unwrap(),
    );
    let out = dcbhub(
        &[
            "partner",
            "create",
            "--code",
            "RENEW",
            "--name",
            "Renewals",
            "--consent",
            "none",
            "--json",
        ],
        &config,
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();

    dcbhub::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    wait_up(&client, &format!("http://{sim_addr}/openapi.json")).await;
    let mut hub = Killed(dcbhub(&["serve"], &config).spawn().unwrap());
    wait_up(&client, &format!("http://{hub_addr}/healthz")).await;

    // The load: 16 workers charging distinct transactions (some on the late number 007).
    let acknowledged = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (client, key, acknowledged, sent) = (client.clone(), key.clone(), Arc::clone(&acknowledged), Arc::clone(&sent));
            tokio::spawn(async move {
                for i in 0..10_000 {
                    let ext = format!("w{w}-{i}");
                    let msisdn = if i % 10 == 7 { "+447700900007".to_owned() } else { format!("+447700900{:03}", 100 + (w * 50 + i) % 800) };
                    let body = json!({"extTransactionID": ext, "msisdn": msisdn, "amount": "0.50", "currency": "GBP", "description": "Renewal"});
                    sent.lock().unwrap().push(ext.clone());
                    let resp = client.post(format!("http://{hub_addr}/transaction")).header("X-API-KEY", &key).json(&body).send().await;
                    match resp {
                        Ok(r) if r.status() == 201 => {
                            acknowledged.lock().unwrap().insert(ext);
                        }
                        Ok(_) => {}
                        Err(_) => return, // the hub died
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hub.0.kill().unwrap();
    hub.0.wait().unwrap();
    for w in workers {
        let _ = w.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the load ran ({} acknowledged)",
        acknowledged.len()
    );

    // Restart and let the reconciler settle what the crash left PENDING.
    drop(hub);
    let _hub = Killed(dcbhub(&["serve"], &config).spawn().unwrap());
    wait_up(&client, &format!("http://{hub_addr}/healthz")).await;
    let mut in_hub: HashMap<String, (String, String)> = HashMap::new(); // tx id -> (ext, status)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        in_hub.clear();
        let mut pending = 0;
        for ext in &sent {
            let r = client
                .get(format!("http://{hub_addr}/transaction/{ext}"))
                .header("X-API-KEY", &key)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                let v: Value = r.json().await.unwrap();
                let status = v["status"].as_str().unwrap().to_owned();
                if status == "PENDING" {
                    pending += 1;
                }
                in_hub.insert(
                    v["transactionId"].as_str().unwrap().to_owned(),
                    (ext.clone(), status),
                );
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} transactions still PENDING"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ledger: Vec<Value> = client
        .get(format!("http://{sim_addr}/ledger"))
        .header("X-API-KEY", SIM_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut charged = 0;
    for entry in &ledger {
        if entry["status"] != "SUCCESS" {
            continue;
        }
        let id = entry["transactionId"].as_str().unwrap().to_owned();
        assert!(seen.insert(id.clone()), "{id} is in the ledger twice");
        let (ext, status) = in_hub
            .get(&id)
            .unwrap_or_else(|| panic!("ledger charge {id} unknown to the hub"));
        assert_eq!(
            status, "SUCCESS",
            "{ext}: charged by the CSP but {status} in the hub"
        );
        charged += 1;
    }
    for ext in &acknowledged {
        let status = in_hub
            .values()
            .find(|(e, _)| e == ext)
            .map(|(_, s)| s.as_str());
        assert_eq!(status, Some("SUCCESS"), "{ext} was acknowledged as SUCCESS");
    }
    assert!(charged >= acknowledged.len());
    eprintln!(
        "crash test: {} sent, {} acknowledged, {} charged by the CSP",
        sent.len(),
        acknowledged.len(),
        charged
    );
}
