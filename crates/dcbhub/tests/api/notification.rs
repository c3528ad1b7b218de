//! API.md §7: notifications through the outbox, delivered once, on the customer's CSP's channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use dcbhub_domain::ConsentPolicy;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, json, spawn_app_with, spawn_sim, via_sim};

async fn notify(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/notification", key, &body).send().await.unwrap()
}

async fn wait_status(app: &TestApp, key: &str, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (status, body) = json(
            app.get(&format!("/notification/{id}"), key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == want {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("notification {id} never became {want}: {last}");
}

crate::on_both_backends!(queued_sent_and_capped);

async fn queued_sent_and_capped(app: TestApp) {
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let resp = notify(&app, &key, json!({"msisdn": "+447700900000", "message": "Your plan renews tomorrow.", "type": "SERVICE_UPDATE", "locale": "en-GB"})).await;
    let (status, queued) = json(resp).await;
    assert_eq!(
        (status, queued["status"].as_str()),
        (202, Some("QUEUED")),
        "{queued}"
    );
    let id = queued["notificationId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ntf_"));
    let sent = wait_status(&app, &key, &id, "SENT").await;
    assert_eq!(
        (sent["channel"].as_str(), sent["attempts"].as_u64()),
        (Some("sandbox"), Some(1))
    );
    let inbox = app.inbox(None, &key, "NFLX", "+447700900000").await;
    assert_eq!(
        inbox
            .iter()
            .filter(|t| *t == "Your plan renews tomorrow.")
            .count(),
        1,
        "delivered once: {inbox:?}"
    );
    // Another partner's id is not found, and sees nothing in its inbox.
    let other = app.partner("SPOT", ConsentPolicy::Pin).await;
    assert_error(
        app.get(&format!("/notification/{id}"), &other)
            .send()
            .await
            .unwrap(),
        404,
        "notification-not-found",
    )
    .await;
    assert!(
        app.inbox(None, &other, "SPOT", "+447700900000")
            .await
            .is_empty()
    );
    // Only active accounts; bad input.
    assert_error(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900002", "message": "hi"}),
        )
        .await,
        404,
        "account-not-found",
    )
    .await;
    assert_error(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900004", "message": "hi"}),
        )
        .await,
        400,
        "account-suspended",
    )
    .await;
    let body = assert_error(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "message": ""}),
        )
        .await,
        400,
        "invalid-request",
    )
    .await;
    assert_eq!(body["field"], "message");
    let body = assert_error(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "message": "x".repeat(641)}),
        )
        .await,
        400,
        "invalid-request",
    )
    .await;
    assert_eq!(body["field"], "message");
    let body = assert_error(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "message": "x", "type": "SPAM"}),
        )
        .await,
        400,
        "invalid-request",
    )
    .await;
    assert_eq!(body["field"], "type");
    // 20 per partner and recipient per hour (one sent above).
    for i in 0..19 {
        let resp = notify(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "message": format!("m{i}")}),
        )
        .await;
        assert_eq!(resp.status(), 202);
    }
    let resp = notify(
        &app,
        &key,
        json!({"msisdn": "+447700900000", "message": "one too many"}),
    )
    .await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 429, "too-many-requests").await;
    assert_eq!(
        notify(
            &app,
            &other,
            json!({"msisdn": "+447700900000", "message": "theirs"})
        )
        .await
        .status(),
        202
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_through_the_csps_notification_api() {
    let sim = spawn_sim(1500).await;
    let addr = sim.addr;
    let app = spawn_app_with(Backend::Sqlite, "ntf_csp", |c| via_sim(c, addr, 1000))
        .await
        .unwrap();
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let (status, queued) = json(
        notify(
            &app,
            &key,
            json!({"email": "447700900000@sandbox.dcbhub.test", "message": "Via the CSP"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202);
    let sent = wait_status(
        &app,
        &key,
        queued["notificationId"].as_str().unwrap(),
        "SENT",
    )
    .await;
    assert_eq!(sent["channel"], "csp");
    let c = dcbhub_domain::Customer::Email(
        dcbhub_domain::Email::parse("447700900000@sandbox.dcbhub.test").unwrap(),
    );
    let got = sim
        .state
        .sandbox()
        .inbox(&c, &dcbhub_domain::PartnerCode::parse("NFLX").unwrap());
    assert_eq!(got.iter().filter(|m| m.text == "Via the CSP").count(), 1);
}

/// A CSP whose account validation always works and whose notification API fails `fail_first`
/// times (then answers 202, or fails for ever when `fail_first` is `usize::MAX`).
async fn flaky_csp(fail_first: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
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
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < fail_first {
                        (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"code": "system-error", "message": "boom"})))
                    } else {
                        (StatusCode::ACCEPTED, Json(json!({"notificationId": req["notificationId"], "status": "ACCEPTED"})))
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_failing_twice_delivers_exactly_once() {
    let (addr, calls) = flaky_csp(2).await;
    let app = spawn_app_with(Backend::Sqlite, "ntf_flaky", |c| {
        via_sim(c, addr, 500);
        c.csps[0].http.as_mut().unwrap().max_retries = 0;
    })
    .await
    .unwrap();
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let (_, queued) = json(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "message": "third time lucky"}),
        )
        .await,
    )
    .await;
    let sent = wait_status(
        &app,
        &key,
        queued["notificationId"].as_str().unwrap(),
        "SENT",
    )
    .await;
    assert_eq!(sent["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two failures, one delivery, nothing after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_keeps_failing_ends_failed() {
    let (addr, calls) = flaky_csp(usize::MAX).await;
    let app = spawn_app_with(Backend::Sqlite, "ntf_dead", |c| {
        via_sim(c, addr, 500);
        c.csps[0].http.as_mut().unwrap().max_retries = 0;
        c.csps[0].http.as_mut().unwrap().breaker_failure_threshold = 100;
        c.notifications.max_attempts = 4;
    })
    .await
    .unwrap();
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let (_, queued) = json(
        notify(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "message": "never"}),
        )
        .await,
    )
    .await;
    let failed = wait_status(
        &app,
        &key,
        queued["notificationId"].as_str().unwrap(),
        "FAILED",
    )
    .await;
    assert_eq!(failed["attempts"], 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}
