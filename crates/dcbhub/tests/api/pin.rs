//! API.md §3–4: PIN consent over HTTP, reading real PINs from the sandbox inbox.

use std::sync::Arc;

use dcbhub_domain::ConsentPolicy;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, json, spawn_app, spawn_app_with};

const ANN: &str = "+447700900000";

async fn pin(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/pin", key, &body).send().await.unwrap()
}

async fn check(app: &TestApp, key: &str, pin_id: &str, code: &str) -> reqwest::Response {
    app.post("/pin/validate", key, &json!({"pinId": pin_id, "pin": code}))
        .send()
        .await
        .unwrap()
}

async fn new_pin(app: &TestApp, key: &str, body: Value) -> String {
    let (status, created) = json(pin(app, key, body).await).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["attemptsRemaining"], 3);
    assert_eq!(created["resendsRemaining"], 2);
    assert!(created["expiresAt"].as_str().unwrap().ends_with('Z'));
    created["pinId"].as_str().unwrap().to_owned()
}

crate::on_both_backends!(every_validate_row, fifty_parallel_wrong_guesses_count_three);

async fn every_validate_row(app: TestApp) {
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let id = new_pin(
        &app,
        &key,
        json!({"msisdn": ANN, "amount": "4.99", "currency": "GBP", "description": "Premium plan"}),
    )
    .await;
    let code = app.latest_pin(None, &key, "NFLX", ANN, 0).await;
    assert_eq!(code.len(), 6);
    let inbox = app.inbox(None, &key, "NFLX", ANN).await;
    assert!(
        inbox[0].contains("NFLX Media")
            && inbox[0].contains("4.99 GBP")
            && inbox[0].contains("Premium plan"),
        "{inbox:?}"
    );
    // The PIN is in no answer.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let body = assert_error(check(&app, &key, &id, wrong).await, 400, "invalid-pin").await;
    assert_eq!(body["attemptsRemaining"], 2);
    assert!(!body.to_string().contains(&code));
    // Another partner, an unknown id, a malformed id.
    let other = app.partner("SPOT", ConsentPolicy::Pin).await;
    assert_error(check(&app, &other, &id, &code).await, 404, "pin-not-found").await;
    assert_error(
        check(&app, &key, "pin_0123456789abcdef0123456789abcdef", &code).await,
        404,
        "pin-not-found",
    )
    .await;
    assert_error(check(&app, &key, "nope", &code).await, 404, "pin-not-found").await;
    let (status, valid) = json(check(&app, &key, &id, &code).await).await;
    assert_eq!(status, 200, "{valid}");
    assert_eq!(
        (valid["status"].as_str(), valid["pinId"].as_str()),
        (Some("VALID"), Some(id.as_str()))
    );
    assert!(valid["consentExpiresAt"].as_str().is_some());
    assert_error(check(&app, &key, &id, &code).await, 400, "pin-already-used").await;

    // Attempts used up: even the right PIN fails afterwards.
    let id2 = new_pin(&app, &key, json!({"msisdn": "+447700900011"})).await;
    let code2 = app.latest_pin(None, &key, "NFLX", "+447700900011", 0).await;
    let wrong2 = if code2 == "000000" {
        "111111"
    } else {
        "000000"
    };
    for remaining in [2, 1, 0] {
        let body = assert_error(check(&app, &key, &id2, wrong2).await, 400, "invalid-pin").await;
        assert_eq!(body["attemptsRemaining"], remaining);
    }
    assert_error(
        check(&app, &key, &id2, &code2).await,
        400,
        "pin-attempts-exceeded",
    )
    .await;

    // Account errors as /account/validate.
    assert_error(
        pin(&app, &key, json!({"msisdn": "+447700900002"})).await,
        404,
        "account-not-found",
    )
    .await;
    assert_error(
        pin(&app, &key, json!({"msisdn": "+447700900003"})).await,
        400,
        "suspended-non-payment",
    )
    .await;
    assert_error(
        pin(
            &app,
            &key,
            json!({"msisdn": ANN, "amount": "4.999", "currency": "GBP"}),
        )
        .await,
        400,
        "invalid-request",
    )
    .await;
    assert_error(
        pin(&app, &key, json!({"msisdn": ANN, "pin": "123456"})).await,
        400,
        "parameter-not-supported",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_resend_rules() {
    let app = spawn_app_with(Backend::Sqlite, "pin_expiry", |c| {
        c.pin.ttl_secs = 1;
        c.pin.resend_cooldown_secs = 1;
    })
    .await
    .unwrap();
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let id = new_pin(&app, &key, json!({"msisdn": ANN})).await;
    let first = app.latest_pin(None, &key, "NFLX", ANN, 0).await;
    // Too soon.
    let resp = pin(&app, &key, json!({"pinId": id})).await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 429, "pin-resend-too-soon").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Expired.
    assert_error(check(&app, &key, &id, &first).await, 400, "pin-expired").await;
    // A resend gives a new code; the old one is dead; attempts are kept.
    let (status, resent) = json(pin(&app, &key, json!({"pinId": id})).await).await;
    assert_eq!(status, 201, "{resent}");
    assert_eq!(resent["resendsRemaining"], 1);
    let second = app.latest_pin(None, &key, "NFLX", ANN, 1).await;
    if second != first {
        let body = assert_error(check(&app, &key, &id, &first).await, 400, "invalid-pin").await;
        assert_eq!(body["attemptsRemaining"], 2);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _) = json(pin(&app, &key, json!({"pinId": id})).await).await;
    assert_eq!(status, 201);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_error(
        pin(&app, &key, json!({"pinId": id})).await,
        429,
        "pin-send-limit",
    )
    .await;
    // Another partner's pinId is not found; a resend carries pinId alone.
    let other = app.partner("SPOT", ConsentPolicy::Pin).await;
    assert_error(
        pin(&app, &other, json!({"pinId": id})).await,
        404,
        "pin-not-found",
    )
    .await;
    assert_error(
        pin(&app, &key, json!({"pinId": id, "msisdn": ANN})).await,
        400,
        "invalid-request",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_pins_an_hour_per_customer_across_partners() {
    let app = spawn_app(Backend::Sqlite, "pin_cap").await.unwrap();
    let a = app.partner("NFLX", ConsentPolicy::Pin).await;
    let b = app.partner("SPOT", ConsentPolicy::Pin).await;
    for i in 0..5 {
        let key = if i % 2 == 0 { &a } else { &b };
        new_pin(&app, key, json!({"msisdn": "+447700900020"})).await;
    }
    let resp = pin(
        &app,
        &b,
        json!({"email": "447700900020@sandbox.dcbhub.test"}),
    )
    .await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 429, "pin-send-limit").await;
    new_pin(&app, &b, json!({"msisdn": "+447700900021"})).await;
}

async fn fifty_parallel_wrong_guesses_count_three(app: TestApp) {
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let id = new_pin(&app, &key, json!({"msisdn": ANN})).await;
    let code = app.latest_pin(None, &key, "NFLX", ANN, 0).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let app = Arc::new(app);
    let guesses: Vec<_> = (0..50)
        .map(|_| {
            let (app, key, id) = (Arc::clone(&app), key.clone(), id.clone());
            tokio::spawn(async move { json(check(&app, &key, &id, wrong).await).await })
        })
        .collect();
    let mut invalid = 0;
    let mut exceeded = 0;
    for g in guesses {
        let (status, body) = g.await.unwrap();
        assert_eq!(status, 400);
        match body["code"].as_str().unwrap() {
            "invalid-pin" => invalid += 1,
            "pin-attempts-exceeded" => exceeded += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!((invalid, exceeded), (3, 47));
    assert_error(
        check(&app, &key, &id, &code).await,
        400,
        "pin-attempts-exceeded",
    )
    .await;
}
