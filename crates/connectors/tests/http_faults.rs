#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The `http` connector against scripted fake CSPs (small axum servers on 127.0.0.1:0):
//! slow, failing, malformed and refusing CSPs all give Unavailable/Unknown within the time
//! budget plus a small margin, and the circuit breaker opens and closes again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use dcbhub_connectors::breaker::BreakerState;
use dcbhub_connectors::{
    AccountOutcome, CallContext, ChargeKind, ChargeOutcome, ChargeRequest, ConnectorError,
    CspConnector, HttpConnector, HttpConnectorConfig, Notification, NotifyOutcome, StatusOutcome,
};
use dcbhub_domain::{
    Currency, Customer, Description, Money, Msisdn, NotificationId, PartnerCode, TransactionId,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const TIMEOUT_MS: u64 = 300;
/// What a call may take beyond its budget: scheduling, connection teardown.
const MARGIN: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
enum Mode {
    /// Valid answers for every operation.
    Healthy,
    /// Answers only after this long.
    Slow(Duration),
    /// A fixed status and body for every request.
    Fixed(u16, &'static str),
    /// `n` answers of 503 without a body, then healthy.
    FlakyThenHealthy(usize),
}

#[derive(Default)]
struct Fake {
    mode: Mutex<Option<Mode>>,
    hits: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
}

impl Fake {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock() = Some(mode);
    }
}

async fn handle(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    fake.hits.fetch_add(1, Ordering::SeqCst);
    *fake.last_headers.lock() = Some(request.headers().clone());
    let mode = fake.mode.lock().clone().unwrap_or(Mode::Healthy);
    let mode = match mode {
        Mode::FlakyThenHealthy(0) => Mode::Healthy,
        Mode::FlakyThenHealthy(n) => {
            fake.set(Mode::FlakyThenHealthy(n - 1));
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        other => other,
    };
    match mode {
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            healthy(request).await
        }
        Mode::Fixed(status, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        Mode::Healthy | Mode::FlakyThenHealthy(_) => healthy(request).await,
    }
}

/// What a well-behaved CSP answers.
async fn healthy(request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body: Bytes = to_bytes(request.into_body(), 1 << 16).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = match (method, path.as_str()) {
        (Method::POST, "/account/validate") => (
            StatusCode::OK,
            json!({"status": "ACTIVE", "type": "postpaid", "currency": "GBP", "accountRef": "acc-1"}),
        ),
        (Method::POST, "/transaction") => (
            StatusCode::CREATED,
            json!({"transactionId": body["transactionId"], "status": "SUCCESS", "cspReference": "ref-1"}),
        ),
        (Method::GET, p) if p.starts_with("/transaction/") => (
            StatusCode::OK,
            json!({"transactionId": &p["/transaction/".len()..], "status": "SUCCESS", "cspReference": "ref-1"}),
        ),
        (Method::POST, "/notification") => (
            StatusCode::ACCEPTED,
            json!({"notificationId": body["notificationId"], "status": "ACCEPTED"}),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"code": "not-found", "message": "no route"}),
        ),
    };
    (status, axum::Json(answer)).into_response()
}

async fn spawn_fake(mode: Mode) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.set(mode);
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, url)
}

/// A loopback port with nobody listening: connections are refused.
async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn config(url: &str) -> HttpConnectorConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = HttpConnectorConfig::new(url, "csp-key");
    config.timeout_ms = TIMEOUT_MS;
    config.backoff_base_ms = 10;
    config.backoff_max_ms = 40;
    config.breaker_failure_threshold = 1_000;
    config
}

fn connector(config: HttpConnectorConfig) -> HttpConnector {
    HttpConnector::new("fake", config).unwrap()
}

fn customer() -> Customer {
    Customer::Msisdn(Msisdn::parse("+447700900000").unwrap())
}

fn partner() -> PartnerCode {
    PartnerCode::parse("NFLX").unwrap()
}

fn charge_request() -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId::generate(),
        customer: customer(),
        money: Money::parse("4.99", Currency::parse("GBP").unwrap()).unwrap(),
        description: Description::parse("Premium plan").unwrap(),
        charge_code: Some("PREM".into()),
        partner: partner(),
        kind: ChargeKind::Charge,
    }
}

fn notification() -> Notification {
    Notification {
        id: NotificationId::generate(),
        to: customer(),
        text: "Your PIN is 123456".into(),
        partner: partner(),
    }
}

fn ctx() -> CallContext {
    CallContext::with_request_id("req-1")
}

/// Runs `call`, checks it ended within the budget plus the margin, returns its outcome.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let outcome = call.await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "took {elapsed:?}"
    );
    outcome
}

fn is_unavailable(outcome: &Result<AccountOutcome, ConnectorError>) -> bool {
    matches!(outcome, Err(ConnectorError::Unavailable { retry_after_secs }) if *retry_after_secs >= 1)
}

#[tokio::test]
async fn a_healthy_csp_gets_every_call_right_with_headers_propagated() {
    let (fake, url) = spawn_fake(Mode::Healthy).await;
    let c = connector(config(&url));
    let ctx = CallContext {
        request_id: Some("req-42".into()),
        b3: vec![
            (
                "X-B3-TraceId".into(),
                "463ac35c9f6413ad48485a3953bb6124".into(),
            ),
            ("X-B3-SpanId".into(), "a2fb4a1d1a96d312".into()),
        ],
    };
    let outcome = c.validate_account(&customer(), &partner(), &ctx).await;
    assert!(
        matches!(outcome, Ok(AccountOutcome::Active { ref account_ref, .. }) if account_ref == "acc-1")
    );
    let headers = fake.last_headers.lock().clone().unwrap();
    assert_eq!(headers["x-api-key"], "csp-key");
    assert_eq!(headers["x-request-id"], "req-42");
    assert_eq!(headers["x-b3-traceid"], "463ac35c9f6413ad48485a3953bb6124");
    assert_eq!(headers["x-b3-spanid"], "a2fb4a1d1a96d312");

    let req = charge_request();
    assert_eq!(
        c.charge(&req, &ctx).await,
        ChargeOutcome::Success {
            csp_reference: "ref-1".into()
        }
    );
    assert_eq!(
        c.charge_status(&req.transaction_id, &ctx).await,
        StatusOutcome::Success {
            csp_reference: "ref-1".into()
        }
    );
    assert_eq!(
        c.notify(&notification(), &ctx).await,
        NotifyOutcome::Delivered
    );
    assert_eq!(fake.hits(), 4);
}

#[tokio::test]
async fn a_csp_answering_after_the_timeout() {
    let (fake, url) = spawn_fake(Mode::Slow(Duration::from_secs(3))).await;
    let c = connector(config(&url));
    assert!(is_unavailable(
        &timed(c.validate_account(&customer(), &partner(), &ctx())).await
    ));
    assert_eq!(
        timed(c.charge(&charge_request(), &ctx())).await,
        ChargeOutcome::Unknown
    );
    let id = TransactionId::generate();
    assert_eq!(
        timed(c.charge_status(&id, &ctx())).await,
        StatusOutcome::Unavailable
    );
    assert!(matches!(
        timed(c.notify(&notification(), &ctx())).await,
        NotifyOutcome::Transient(_)
    ));
    // The budget covers retries too: one attempt each.
    assert_eq!(fake.hits(), 4);
}

#[tokio::test]
async fn a_csp_answering_500() {
    let (fake, url) = spawn_fake(Mode::Fixed(
        500,
        r#"{"code":"system-error","message":"boom"}"#,
    ))
    .await;
    let c = connector(config(&url));
    assert!(is_unavailable(
        &timed(c.validate_account(&customer(), &partner(), &ctx())).await
    ));
    // Idempotent calls are retried: 1 + max_retries (2) attempts.
    assert_eq!(fake.hits(), 3);
    assert_eq!(
        timed(c.charge(&charge_request(), &ctx())).await,
        ChargeOutcome::Unknown
    );
    // A charge that reached the CSP is never repeated.
    assert_eq!(fake.hits(), 4);
    let id = TransactionId::generate();
    assert_eq!(
        timed(c.charge_status(&id, &ctx())).await,
        StatusOutcome::Unavailable
    );
    assert_eq!(fake.hits(), 7);
    assert!(matches!(
        timed(c.notify(&notification(), &ctx())).await,
        NotifyOutcome::Transient(_)
    ));
    assert_eq!(fake.hits(), 10);
}

#[tokio::test]
async fn a_csp_sending_malformed_json() {
    let (_fake, url) = spawn_fake(Mode::Fixed(200, r#"{"status": "ACTIVE", "type": "#)).await;
    let c = connector(config(&url));
    assert!(is_unavailable(
        &timed(c.validate_account(&customer(), &partner(), &ctx())).await
    ));
    let id = TransactionId::generate();
    assert_eq!(
        timed(c.charge_status(&id, &ctx())).await,
        StatusOutcome::Unavailable
    );
    assert!(matches!(
        timed(c.notify(&notification(), &ctx())).await,
        NotifyOutcome::Transient(_)
    ));

    let (_fake, url) = spawn_fake(Mode::Fixed(201, "<html>created</html>")).await;
    let c = connector(config(&url));
    assert_eq!(
        timed(c.charge(&charge_request(), &ctx())).await,
        ChargeOutcome::Unknown
    );
}

#[tokio::test]
async fn a_csp_using_an_unknown_status_word() {
    let body = r#"{"transactionId":"tx_x","status":"PROCESSED","cspReference":"r"}"#;
    let (_fake, url) = spawn_fake(Mode::Fixed(201, body)).await;
    let c = connector(config(&url));
    assert_eq!(
        c.charge(&charge_request(), &ctx()).await,
        ChargeOutcome::Unknown
    );
    let body = r#"{"status":"DORMANT","type":"postpaid","currency":"GBP","accountRef":"a"}"#;
    let (_fake, url) = spawn_fake(Mode::Fixed(200, body)).await;
    let c = connector(config(&url));
    assert!(is_unavailable(
        &c.validate_account(&customer(), &partner(), &ctx()).await
    ));
}

#[tokio::test]
async fn a_csp_refusing_connections() {
    let c = connector(config(&refusing_url().await));
    assert!(is_unavailable(
        &timed(c.validate_account(&customer(), &partner(), &ctx())).await
    ));
    // Nothing left the hub, so the charge is certainly not made: Unavailable, not Unknown.
    assert!(matches!(
        timed(c.charge(&charge_request(), &ctx())).await,
        ChargeOutcome::Unavailable { .. }
    ));
    let id = TransactionId::generate();
    assert_eq!(
        timed(c.charge_status(&id, &ctx())).await,
        StatusOutcome::Unavailable
    );
    assert!(matches!(
        timed(c.notify(&notification(), &ctx())).await,
        NotifyOutcome::Transient(_)
    ));
}

#[tokio::test]
async fn a_flaky_csp_is_retried_for_idempotent_calls() {
    let (fake, url) = spawn_fake(Mode::FlakyThenHealthy(2)).await;
    let c = connector(config(&url));
    let outcome = timed(c.validate_account(&customer(), &partner(), &ctx())).await;
    assert!(matches!(outcome, Ok(AccountOutcome::Active { .. })));
    assert_eq!(fake.hits(), 3);
}

#[tokio::test]
async fn csp_refusals_are_typed() {
    let body = r#"{"code":"csp-unavailable","message":"maintenance","retryAfterSeconds":7}"#;
    let (fake, url) = spawn_fake(Mode::Fixed(503, body)).await;
    let c = connector(config(&url));
    assert_eq!(
        c.charge(&charge_request(), &ctx()).await,
        ChargeOutcome::Unavailable {
            retry_after_secs: 7
        }
    );
    assert_eq!(
        c.validate_account(&customer(), &partner(), &ctx()).await,
        Err(ConnectorError::Unavailable {
            retry_after_secs: 7
        })
    );
    // A definite refusal is not retried.
    assert_eq!(fake.hits(), 2);

    let body = r#"{"code":"authorization-failure","message":"bad key"}"#;
    let (_fake, url) = spawn_fake(Mode::Fixed(401, body)).await;
    let c = connector(config(&url));
    assert!(matches!(
        c.charge(&charge_request(), &ctx()).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert!(is_unavailable(
        &c.validate_account(&customer(), &partner(), &ctx()).await
    ));
}

#[tokio::test]
async fn the_breaker_opens_after_the_threshold_and_closes_after_the_pause() {
    let (fake, url) = spawn_fake(Mode::Fixed(500, "")).await;
    let mut config = config(&url);
    config.max_retries = 0;
    config.breaker_failure_threshold = 3;
    config.breaker_open_ms = 400;
    let c = connector(config);
    for _ in 0..3 {
        assert!(is_unavailable(
            &c.validate_account(&customer(), &partner(), &ctx()).await
        ));
    }
    assert_eq!(fake.hits(), 3);
    assert_eq!(c.breaker_state(), BreakerState::Open);

    // Open: every call fails fast, without reaching the CSP.
    for _ in 0..5 {
        let started = Instant::now();
        assert!(is_unavailable(
            &c.validate_account(&customer(), &partner(), &ctx()).await
        ));
        assert!(started.elapsed() < Duration::from_millis(50));
    }
    assert!(matches!(
        c.charge(&charge_request(), &ctx()).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(
        c.charge_status(&TransactionId::generate(), &ctx()).await,
        StatusOutcome::Unavailable
    );
    assert!(matches!(
        c.notify(&notification(), &ctx()).await,
        NotifyOutcome::Transient(_)
    ));
    assert_eq!(fake.hits(), 3);

    // The CSP recovers; after the pause one probe goes through and closes the breaker.
    fake.set(Mode::Healthy);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(c.breaker_state(), BreakerState::HalfOpen);
    assert!(matches!(
        c.validate_account(&customer(), &partner(), &ctx()).await,
        Ok(AccountOutcome::Active { .. })
    ));
    assert_eq!(c.breaker_state(), BreakerState::Closed);
    assert!(matches!(
        c.charge(&charge_request(), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(fake.hits(), 5);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let (fake, url) = spawn_fake(Mode::Fixed(502, "")).await;
    let mut config = config(&url);
    config.max_retries = 0;
    config.breaker_failure_threshold = 2;
    config.breaker_open_ms = 200;
    let c = connector(config);
    for _ in 0..2 {
        c.charge_status(&TransactionId::generate(), &ctx()).await;
    }
    assert_eq!(c.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(250)).await;
    c.charge_status(&TransactionId::generate(), &ctx()).await;
    assert_eq!(fake.hits(), 3);
    assert_eq!(c.breaker_state(), BreakerState::Open);
    c.charge_status(&TransactionId::generate(), &ctx()).await;
    assert_eq!(fake.hits(), 3);
}

#[test]
fn calls_are_counted_and_timed_per_csp_operation_and_outcome() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (_fake, url) = spawn_fake(Mode::Healthy).await;
            let c = connector(config(&url));
            c.validate_account(&customer(), &partner(), &ctx())
                .await
                .unwrap();
            c.validate_account(&customer(), &partner(), &ctx())
                .await
                .unwrap();
            c.charge(&charge_request(), &ctx()).await;
            let mut down = config(&refusing_url().await);
            down.breaker_failure_threshold = 1;
            let down = connector(down);
            down.charge(&charge_request(), &ctx()).await;
        });
    });
    let text = handle.render();
    let lines: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    assert_eq!(
        lines.get(r#"dcbhub_csp_calls_total{csp="fake",operation="validate",outcome="active"}"#),
        Some(&"2"),
        "{text}"
    );
    assert_eq!(
        lines.get(r#"dcbhub_csp_calls_total{csp="fake",operation="charge",outcome="success"}"#),
        Some(&"1")
    );
    assert_eq!(
        lines.get(r#"dcbhub_csp_calls_total{csp="fake",operation="charge",outcome="unavailable"}"#),
        Some(&"1")
    );
    assert_eq!(
        lines.get(r#"dcbhub_csp_breaker_open{csp="fake"}"#),
        Some(&"1")
    );
    assert!(
        text.contains(
            r#"dcbhub_csp_call_duration_seconds{csp="fake",operation="validate",quantile="#
        ) || text.contains(
            r#"dcbhub_csp_call_duration_seconds_count{csp="fake",operation="validate"} 2"#
        ),
        "{text}"
    );
}
