//! Two `dcbhub serve` processes on one PostgreSQL database, against `dcbhub csp-sim`:
//! idempotent charges, PIN attempt counting, spending limits, outbox delivery and the
//! reconciler stay exactly-once across them (issue 9). Skipped, and said so, without
//! PostgreSQL (CI requires it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/process.rs"]
mod process;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use process::{Killed, dcbhub, free_port, wait_up};

const SIM_KEY: &str = "two-proc-sim-key";
// The budgets are generous: 60 first calls at once from two debug builds on a busy 2-core CI
// machine took longer than 400 ms, and the CSP was then (rightly) reported unavailable. Late
// answers (007) still come well after the hub stops waiting.

fn config(
    dir: &std::path::Path,
    name: &str,
    listen: SocketAddr,
    db: &str,
    sim: SocketAddr,
) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"listen = "{listen}"
database_url = "{db}"
admin_token = "two-process-admin-token"
[sandbox]
enabled = false
[pin]
secret = "two-process-secret-0123456789abcdef"
[notifications]
poll_interval_ms = 25
[transactions]
csp_timeout_ms = 2500
reconcile_first_delay_ms = 100
reconcile_interval_ms = 50
reconcile_max_delay_ms = 500
[[csps]]
id = "sim"
kind = "http"
prefixes = ["447700900"]
[csps.http]
base_url = "http://{sim}"
api_key = "{SIM_KEY}"
timeout_ms = 2000
[csps.limits]
currency = "GBP"
per_transaction = "40.00"
per_day = "100.00"
per_month = "240.00"
"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hub_processes_on_one_postgres_stay_exactly_once() {
    let Some(db) = dcbhub_store::testing::postgres_url("two_processes").await else {
        return;
    };
    dcbhub::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (sim, a, b) = (free_port(), free_port(), free_port());
    let conf_a = config(dir.path(), "a.toml", a, &db, sim);
    let conf_b = config(dir.path(), "b.toml", b, &db, sim);
    let _sim = Killed(
        dcbhub(
            &[
                "csp-sim",
                "--listen",
                &sim.to_string(),
                "--api-key",
                SIM_KEY,
                "--late-answer-ms",
                "5000",
            ],
            &conf_a,
        )
        .spawn()
        .unwrap(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_up(&client, &format!("http://{sim}/openapi.json")).await;
    let _a = Killed(dcbhub(&["serve"], &conf_a).spawn().unwrap());
    wait_up(&client, &format!("http://{a}/readyz")).await;
    let _b = Killed(dcbhub(&["serve"], &conf_b).spawn().unwrap());
    wait_up(&client, &format!("http://{b}/readyz")).await;
    let create = |code: &str, consent: &str| {
        let out = dcbhub(
            &[
                "partner",
                "create",
                "--code",
                code,
                "--name",
                code,
                "--consent",
                consent,
                "--json",
            ],
            &conf_a,
        )
        .output()
        .unwrap();
        assert!(out.status.success());
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["apiKey"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let renew = create("RENEW", "none");
    let pin_partner = create("NFLX", "pin");
    let hubs = [a, b];
    let post = {
        let client = client.clone();
        move |i: usize, path: &'static str, key: String, body: Value| {
            let client = client.clone();
            let hub = hubs[i % 2];
            async move {
                let r = client
                    .post(format!("http://{hub}{path}"))
                    .header("X-API-KEY", key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        }
    };
    let post = Arc::new(post);

    // 1. 60 identical charges, alternating instances: one charge, identical answers.
    let body = json!({"extTransactionID": "same", "msisdn": "+447700900000", "amount": "4.99", "currency": "GBP", "description": "Renewal"});
    let tasks: Vec<_> = (0..60)
        .map(|i| tokio::spawn((post)(i, "/transaction", renew.clone(), body.clone())))
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(answers[0].0, 201, "{:?}", answers[0]);
    assert!(answers.iter().all(|x| *x == answers[0]));

    // 2. PIN guesses across both: exactly three counted.
    let (status, created) = (post)(
        0,
        "/pin",
        pin_partner.clone(),
        json!({"msisdn": "+447700900001"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let pin_id = created["pinId"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            tokio::spawn((post)(
                i,
                "/pin/validate",
                pin_partner.clone(),
                json!({"pinId": pin_id, "pin": "00000000"}),
            ))
        })
        .collect();
    let mut invalid = 0;
    for t in tasks {
        if t.await.unwrap().1["code"] == "invalid-pin" {
            invalid += 1;
        }
    }
    assert_eq!(invalid, 3);

    // 3. Spending limits: 20 parallel 10.00 charges of one customer, 100.00 a day: ten pass.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let body = json!({"extTransactionID": format!("lim-{i}"), "msisdn": "+447700900020", "amount": "10.00", "currency": "GBP", "description": "Renewal"});
            tokio::spawn((post)(i, "/transaction", renew.clone(), body))
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().0 == 201 {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);

    // 4. The reconciler: late answers (007) settled by whichever instance, each charged once.
    for i in 0..6 {
        let body = json!({"extTransactionID": format!("late-{i}"), "msisdn": "+447700900007", "amount": "1.00", "currency": "GBP", "description": "Renewal"});
        let (status, _) = (post)(i, "/transaction", renew.clone(), body).await;
        assert_eq!(status, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut settled: HashMap<String, String> = HashMap::new();
    while settled.len() < 6 {
        assert!(
            Instant::now() < deadline,
            "late charges not settled: {settled:?}"
        );
        for i in 0..6 {
            let r = client
                .get(format!("http://{}/transaction/late-{i}", hubs[i % 2]))
                .header("X-API-KEY", &renew)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            if v["status"] == "SUCCESS" {
                settled.insert(
                    v["transactionId"].as_str().unwrap().to_owned(),
                    format!("late-{i}"),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 5. Outbox: 100 notifications through both instances, each delivered once by the CSP.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let body = json!({"msisdn": format!("+447700900{:03}", 100 + i), "message": format!("hello {i}")});
            tokio::spawn((post)(i, "/notification", renew.clone(), body))
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 202, "{body}");
        ids.push(body["notificationId"].as_str().unwrap().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, id) in ids.iter().enumerate() {
        loop {
            let r = client
                .get(format!("http://{}/notification/{id}", hubs[i % 2]))
                .header("X-API-KEY", &renew)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            if v["status"] == "SENT" {
                assert_eq!(v["attempts"], 1, "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "{id} not sent: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The CSP's ledger: every charge once.
    let ledger: Vec<Value> = client
        .get(format!("http://{sim}/ledger"))
        .header("X-API-KEY", SIM_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut count: HashMap<String, usize> = HashMap::new();
    for e in &ledger {
        *count
            .entry(e["transactionId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        count.values().all(|n| *n == 1),
        "a charge is in the ledger twice"
    );
    let same_id = answers[0].1["transactionId"].as_str().unwrap();
    assert_eq!(count.get(same_id), Some(&1));
    for id in settled.keys() {
        assert_eq!(count.get(id), Some(&1), "late charge {id}");
    }
    assert_eq!(
        ledger.iter().filter(|e| e["status"] == "SUCCESS").count(),
        1 + 10 + 6
    );
}
