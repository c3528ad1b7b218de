//! Two hub instances on one PostgreSQL: every coordination goes through the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use dcbhub_domain::ConsentPolicy;
use serde_json::{Value, json};

use crate::helpers::{json, spawn_pair, spawn_sim, via_sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_identical_charges_across_two_instances_charge_once() {
    let sim = spawn_sim(1500).await;
    let addr = sim.addr;
    let Some((a, b)) = spawn_pair("two_charge", |c| via_sim(c, addr, 1000)).await else {
        return;
    };
    let key = a.partner("RENEW", ConsentPolicy::None).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let body = json!({"extTransactionID": "twice", "msisdn": "+447700900000", "amount": "4.99", "currency": "GBP", "description": "Renewal"});
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let app = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let (key, body) = (key.clone(), body.clone());
            tokio::spawn(async move {
                json(app.post("/transaction", &key, &body).send().await.unwrap()).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(answers[0].0, 201, "{}", answers[0].1);
    assert!(
        answers.iter().all(|x| *x == answers[0]),
        "100 identical answers"
    );
    let tx_id = answers[0].1["transactionId"].as_str().unwrap();
    let charged = sim
        .state
        .sandbox()
        .ledger()
        .iter()
        .filter(|e| e.transaction_id.as_str() == tx_id)
        .count();
    assert_eq!(charged, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pin_guesses_and_limits_hold_across_two_instances() {
    let sim = spawn_sim(1500).await;
    let addr = sim.addr;
    let Some((a, b)) = spawn_pair("two_pin", |c| via_sim(c, addr, 1000)).await else {
        return;
    };
    let key = a.partner("NFLX", ConsentPolicy::Pin).await;
    let (_, created) = json(
        a.post("/pin", &key, &json!({"msisdn": "+447700900000"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let pin_id = created["pinId"].as_str().unwrap().to_owned();
    let code = a
        .latest_pin(Some(&sim), &key, "NFLX", "+447700900000", 0)
        .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (a, b) = (Arc::new(a), Arc::new(b));
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let app = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let (key, pin_id) = (key.clone(), pin_id.clone());
            tokio::spawn(async move {
                let (_, body) = json(
                    app.post(
                        "/pin/validate",
                        &key,
                        &json!({"pinId": pin_id, "pin": wrong}),
                    )
                    .send()
                    .await
                    .unwrap(),
                )
                .await;
                body["code"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut invalid = 0;
    for g in guesses {
        if g.await.unwrap() == "invalid-pin" {
            invalid += 1;
        }
    }
    assert_eq!(invalid, 3);
    // Spending limits: 20 parallel 10.00 charges split over both instances, 100.00 a day.
    let renew = a.partner("RENEW", ConsentPolicy::None).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
            let renew = renew.clone();
            tokio::spawn(async move {
                let body = json!({"extTransactionID": format!("lim-{i}"), "msisdn": "+447700900050", "amount": "10.00", "currency": "GBP", "description": "Renewal"});
                app.post("/transaction", &renew, &body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 201 {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
}

/// Records every notification id a CSP receives.
async fn recording_csp() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/account/validate",
            axum::routing::post(|Json(req): Json<Value>| async move {
                let acc = req["msisdn"].as_str().unwrap_or("x").to_owned();
                Json(json!({"status": "ACTIVE", "type": "postpaid", "currency": "GBP", "accountRef": acc}))
            }),
        )
        .route(
            "/notification",
            axum::routing::post(move |Json(req): Json<Value>| {
                let id = req["notificationId"].as_str().unwrap_or("").to_owned();
                *record.lock().unwrap().entry(id.clone()).or_default() += 1;
                async move { (StatusCode::ACCEPTED, Json(json!({"notificationId": id, "status": "ACCEPTED"}))) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_messages_across_two_instances_are_delivered_once_each() {
    let (addr, seen) = recording_csp().await;
    let Some((a, b)) = spawn_pair("two_outbox", |c| {
        via_sim(c, addr, 1000);
        c.notifications.batch = 16;
    })
    .await
    else {
        return;
    };
    let key = a.partner("NFLX", ConsentPolicy::Pin).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let queued: Vec<_> = (0..1000)
        .map(|i| {
            let app = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
            let key = key.clone();
            tokio::spawn(async move {
                let body = json!({"msisdn": format!("+447700900{:03}", i % 1000), "message": format!("m{i}")});
                let (status, body) = json(app.post("/notification", &key, &body).send().await.unwrap()).await;
                assert_eq!(status, 202, "{body}");
                body["notificationId"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for q in queued {
        ids.push(q.await.unwrap());
    }
    for _ in 0..500 {
        if seen.lock().unwrap().len() >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1000, "every message delivered");
    assert!(
        ids.iter().all(|id| seen.get(id) == Some(&1)),
        "each exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_key_and_a_suspension_reach_the_other_instance_within_seconds() {
    let Some((a, b)) = spawn_pair("two_revoke", |_| {}).await else {
        return;
    };
    let key = a.partner("NFLX", ConsentPolicy::Pin).await;
    let probe = |app: &crate::helpers::TestApp| {
        app.get("/sandbox/messages?msisdn=%2B447700900000", &key)
            .send()
    };
    assert_eq!(probe(&b).await.unwrap().status(), 200, "b caches the key");
    // Suspend through instance a's admin API; b must answer 403 within 5 s.
    let resp = a
        .admin(reqwest::Method::POST, "/admin/partners/NFLX/suspend")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    loop {
        let status = probe(&b).await.unwrap().status().as_u16();
        if status == 403 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b still answers {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = a
        .admin(reqwest::Method::POST, "/admin/partners/NFLX/resume")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Revoke the only key on a; b must refuse it within 5 s.
    let (_, keys) = json(
        a.admin(reqwest::Method::GET, "/admin/partners/NFLX/keys")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let key_id = keys["keys"][0]["keyId"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    loop {
        if probe(&b).await.unwrap().status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b did not see the resumption"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = a
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/partners/NFLX/keys/{key_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    loop {
        let status = probe(&b).await.unwrap().status().as_u16();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b still answers {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
