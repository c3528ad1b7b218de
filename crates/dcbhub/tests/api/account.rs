//! API.md §2 against every row of the sandbox table (§9): once with the in-process sandbox,
//! once through the `http` connector and csp-sim on a loopback port.

use dcbhub_domain::ConsentPolicy;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Csp, TestApp, assert_error, json, spawn_app_with, spawn_with_csp, via_sim,
};

async fn validate(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/account/validate", key, &body)
        .send()
        .await
        .unwrap()
}

async fn every_row(csp: Csp) {
    let (app, _sim) = spawn_with_csp(csp, "account_rows").await;
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let ok = |kind: &str| json!({"status": "ACTIVE", "type": kind, "currency": "GBP"});
    for (msisdn, expected) in [
        ("+447700900000", ok("postpaid")),
        ("+447700900001", ok("prepaid")),
        ("+447700900006", ok("postpaid")),
        ("+447700900007", ok("postpaid")),
        ("+447700900008", ok("postpaid")),
        ("+447700900123", ok("postpaid")),
        ("+447700900999", ok("postpaid")),
    ] {
        let (status, body) = json(validate(&app, &key, json!({"msisdn": msisdn})).await).await;
        assert_eq!((status, &body), (200, &expected), "{msisdn}");
    }
    // The MarketONE answers, to the byte.
    let resp = validate(&app, &key, json!({"msisdn": "+447700900002"})).await;
    let (status, body) = json(resp).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "account-not-found", "message": "Account not found"})
        )
    );
    let (status, body) = json(validate(&app, &key, json!({"msisdn": "+447700900003"})).await).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "suspended-non-payment", "message": "Account is suspended because of non-payment, or other billing issue"})
        )
    );
    assert_error(
        validate(&app, &key, json!({"msisdn": "+447700900004"})).await,
        400,
        "account-suspended",
    )
    .await;
    assert_error(
        validate(&app, &key, json!({"msisdn": "+447700900005"})).await,
        400,
        "dcb-barred",
    )
    .await;
    // Outside the range, and numbers no CSP serves.
    assert_error(
        validate(&app, &key, json!({"msisdn": "+447700901000"})).await,
        404,
        "account-not-found",
    )
    .await;
    assert_error(
        validate(&app, &key, json!({"msisdn": "+14155550123"})).await,
        404,
        "account-not-found",
    )
    .await;
    // Email aliases resolve to the number's account; the answer reveals no MSISDN.
    let resp = validate(
        &app,
        &key,
        json!({"email": "447700900001@sandbox.dcbhub.test"}),
    )
    .await;
    let (status, body) = json(resp).await;
    assert_eq!((status, &body), (200, &ok("prepaid")));
    assert!(!body.to_string().contains("447700900001"));
    assert_error(
        validate(
            &app,
            &key,
            json!({"email": "447700900003@Sandbox.DCBHUB.test"}),
        )
        .await,
        400,
        "suspended-non-payment",
    )
    .await;
    assert_error(
        validate(&app, &key, json!({"email": "ann@example.com"})).await,
        404,
        "account-not-found",
    )
    .await;
    // Bad input.
    for bad in [
        json!({"msisdn": "07700900000"}),
        json!({"msisdn": "+44 7700 900000"}),
        json!({}),
    ] {
        let body = assert_error(validate(&app, &key, bad).await, 400, "invalid-request").await;
        assert_eq!(body["field"], "msisdn");
    }
    let body = assert_error(
        validate(
            &app,
            &key,
            json!({"msisdn": "+447700900000", "email": "a@b.co"}),
        )
        .await,
        400,
        "invalid-request",
    )
    .await;
    assert_eq!(body["field"], "msisdn");
    let body = assert_error(
        validate(&app, &key, json!({"email": "not an email"})).await,
        400,
        "invalid-request",
    )
    .await;
    assert_eq!(body["field"], "email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sandbox_row_in_process() {
    every_row(Csp::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sandbox_row_through_csp_sim() {
    every_row(Csp::OverHttp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_csp_answers_503_with_retry_after() {
    // A port nothing listens on: connections are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let app = spawn_app_with(Backend::Sqlite, "csp_down", |c| via_sim(c, port, 300))
        .await
        .unwrap();
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let started = std::time::Instant::now();
    let resp = validate(&app, &key, json!({"msisdn": "+447700900000"})).await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 503, "csp-unavailable").await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

/// A CSP that misbehaves in one way on every account validation.
async fn misbehaving_csp(fault: &'static str) -> std::net::SocketAddr {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/account/validate",
        axum::routing::post(move || async move {
            match fault {
                "late" => {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    (StatusCode::OK, "{\"status\":\"ACTIVE\",\"type\":\"postpaid\",\"currency\":\"GBP\",\"accountRef\":\"a\"}").into_response()
                }
                "500" => (StatusCode::INTERNAL_SERVER_ERROR, "{\"code\":\"system-error\",\"message\":\"boom\"}").into_response(),
                _ => (StatusCode::OK, "{\"status\": \"ACT").into_response(),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

use axum::response::IntoResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failing_or_garbled_csp_answers_503_within_the_timeout() {
    for fault in ["late", "500", "garbled"] {
        let addr = misbehaving_csp(fault).await;
        let app = spawn_app_with(Backend::Sqlite, "csp_faults", |c| {
            via_sim(c, addr, 300);
            let http = c.csps[0].http.as_mut().unwrap();
            http.max_retries = 1;
            http.breaker_failure_threshold = 3;
            http.breaker_open_ms = 60_000;
        })
        .await
        .unwrap();
        let key = app.partner("NFLX", ConsentPolicy::Pin).await;
        for _ in 0..4 {
            let started = std::time::Instant::now();
            let resp = validate(&app, &key, json!({"msisdn": "+447700900000"})).await;
            assert!(resp.headers().get("retry-after").is_some(), "{fault}");
            assert_error(resp, 503, "csp-unavailable").await;
            assert!(
                started.elapsed() < std::time::Duration::from_millis(800),
                "{fault}: {:?}",
                started.elapsed()
            );
        }
        // After three failures the breaker is open: the answer comes at once.
        let started = std::time::Instant::now();
        assert_error(
            validate(&app, &key, json!({"msisdn": "+447700900000"})).await,
            503,
            "csp-unavailable",
        )
        .await;
        assert!(
            started.elapsed() < std::time::Duration::from_millis(100),
            "{fault}: breaker open"
        );
    }
}
