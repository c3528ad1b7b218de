//! csp-sim over raw HTTP: the wire contract of docs/csp-api.md, the API key, the test
//! endpoints, the late and refusing numbers, the OpenAPI document and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dcbhub_csp_sim::{InboxBody, LedgerEntryBody, SimConfig, serve};
use dcbhub_domain::{NotificationId, TransactionId};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const KEY: &str = "sim-key";

struct Sim {
    url: String,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(late_answer_ms: u64) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = SimConfig::new(KEY);
    config.late_answer_ms = late_answer_ms;
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Sim {
        url,
        client: Client::new(),
        stop: Some(stop),
        done,
    }
}

impl Sim {
    async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(format!("{}{path}", self.url))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.url))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap()
    }
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn charge_body(id: &TransactionId, msisdn: &str, amount: &str) -> Value {
    json!({
        "transactionId": id.as_str(),
        "msisdn": msisdn,
        "amount": amount,
        "currency": "GBP",
        "description": "Premium plan",
        "chargeCode": "PREM",
        "partnerCode": "NFLX",
        "type": "CHARGE"
    })
}

#[tokio::test]
async fn validate_answers_with_the_contract_bodies() {
    let sim = start(6_000).await;
    let (status, body) = json_of(
        sim.post("/account/validate", json!({"msisdn": "+447700900000"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ACTIVE", "type": "postpaid", "currency": "GBP", "accountRef": "447700900000"})
    );
    let (status, body) = json_of(
        sim.post(
            "/account/validate",
            json!({"email": "447700900001@sandbox.dcbhub.test"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (StatusCode::OK, Some("prepaid"))
    );
    let (status, body) = json_of(
        sim.post("/account/validate", json!({"msisdn": "+447700900002"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "account-not-found", "message": "Account not found"})
    );
    let (status, body) = json_of(
        sim.post("/account/validate", json!({"msisdn": "+447700900003"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "suspended-non-payment", "message": "Account is suspended because of non-payment, or other billing issue"})
    );
    let (_, body) = json_of(
        sim.post("/account/validate", json!({"msisdn": "+447700900004"}))
            .await,
    )
    .await;
    assert_eq!(body["code"], "account-suspended");
    let (_, body) = json_of(
        sim.post("/account/validate", json!({"msisdn": "+447700900005"}))
            .await,
    )
    .await;
    assert_eq!(body["code"], "dcb-barred");
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let sim = start(6_000).await;
    let cases = [
        (
            json!({"msisdn": "+447700900000", "email": "447700900000@sandbox.dcbhub.test"}),
            "invalid-request",
            "msisdn",
        ),
        (json!({}), "invalid-request", "msisdn"),
        (
            json!({"msisdn": "447700900000"}),
            "invalid-request",
            "msisdn",
        ),
        (
            json!({"msisdn": 447700900000u64}),
            "invalid-request",
            "msisdn",
        ),
        (
            json!({"msisdn": "+447700900000", "pin": "1"}),
            "parameter-not-supported",
            "pin",
        ),
    ];
    for (request, code, field) in cases {
        let (status, body) = json_of(sim.post("/account/validate", request.clone()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
        assert_eq!(
            (body["code"].as_str(), body["field"].as_str()),
            (Some(code), Some(field)),
            "{request}"
        );
    }
    let id = TransactionId::generate();
    let mut bad_amount = charge_body(&id, "+447700900000", "4.999");
    let (status, body) = json_of(sim.post("/transaction", bad_amount.clone()).await).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("amount"))
    );
    bad_amount["amount"] = json!("4.99");
    bad_amount["type"] = json!("REFUND");
    let (_, body) = json_of(sim.post("/transaction", bad_amount).await).await;
    assert_eq!(body["field"], "originalTransactionId");
    let mut bad_id = charge_body(&id, "+447700900000", "1.00");
    bad_id["transactionId"] = json!("ott-1");
    let (_, body) = json_of(sim.post("/transaction", bad_id).await).await;
    assert_eq!(body["field"], "transactionId");
    // Nothing was booked by any of these.
    let ledger: Vec<LedgerEntryBody> = sim.get("/ledger").await.json().await.unwrap();
    assert!(ledger.is_empty());

    let plain = sim
        .client
        .post(format!("{}/account/validate", sim.url))
        .header("x-api-key", KEY)
        .body("msisdn=+447700900000")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(plain).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported-media-type")
        )
    );
    let (status, body) = json_of(sim.get("/nowhere").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    let (status, body) = json_of(sim.get("/transaction").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method-not-allowed"))
    );
}

#[tokio::test]
async fn the_api_key_is_required() {
    let sim = start(6_000).await;
    for key in [None, Some("wrong"), Some("")] {
        let mut request = sim.client.post(format!("{}/account/validate", sim.url));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = request
            .json(&json!({"msisdn": "+447700900000"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "authorization-failure");
    }
    let unauthorised_ledger = sim
        .client
        .get(format!("{}/ledger", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised_ledger.status(), StatusCode::UNAUTHORIZED);
    // The document is public.
    let spec = sim
        .client
        .get(format!("{}/openapi.json", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(spec.status(), StatusCode::OK);
}

#[tokio::test]
async fn charges_are_idempotent_and_booked_in_the_ledger() {
    let sim = start(6_000).await;
    let id = TransactionId::generate();
    let (status, first) = json_of(
        sim.post("/transaction", charge_body(&id, "+447700900000", "4.99"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "SUCCESS");
    assert_eq!(first["transactionId"], id.as_str());
    let (status, again) = json_of(
        sim.post("/transaction", charge_body(&id, "+447700900000", "4.99"))
            .await,
    )
    .await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first));
    let (status, got) = json_of(sim.get(&format!("/transaction/{id}")).await).await;
    assert_eq!((status, &got), (StatusCode::OK, &first));

    let declined = TransactionId::generate();
    let (status, body) = json_of(
        sim.post(
            "/transaction",
            charge_body(&declined, "+447700900006", "1.00"),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("transaction-declined"))
    );
    let (_, got) = json_of(sim.get(&format!("/transaction/{declined}")).await).await;
    assert_eq!(
        got,
        json!({"transactionId": declined.as_str(), "status": "FAILED", "failureCode": "transaction-declined"})
    );
    let (status, body) = json_of(
        sim.get(&format!("/transaction/{}", TransactionId::generate()))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("transaction-not-found"))
    );
    let (status, _) = json_of(sim.get("/transaction/not-an-id").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let ledger: Vec<LedgerEntryBody> = sim.get("/ledger").await.json().await.unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].transaction_id, id.as_str());
    assert_eq!(ledger[0].amount, "4.99");
    assert_eq!(ledger[0].account, "447700900000");
    assert_eq!(ledger[0].partner_code, "NFLX");
    assert_eq!(
        ledger[1].failure_code.as_deref(),
        Some("transaction-declined")
    );
}

#[tokio::test]
async fn number_007_answers_late_but_books_at_once() {
    let sim = start(800).await;
    let id = TransactionId::generate();
    let started = Instant::now();
    let late = sim.post("/transaction", charge_body(&id, "+447700900007", "2.00"));
    let peek = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        json_of(sim.get(&format!("/transaction/{id}")).await).await
    };
    let (late, (status, during)) = tokio::join!(late, peek);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(during["status"], "SUCCESS", "booked before the answer");
    assert!(started.elapsed() >= Duration::from_millis(800));
    let (status, body) = json_of(late).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::CREATED, Some("SUCCESS"))
    );
}

#[tokio::test]
async fn number_008_refuses_with_retry_after() {
    let sim = start(6_000).await;
    let id = TransactionId::generate();
    let response = sim
        .post("/transaction", charge_body(&id, "+447700900008", "2.00"))
        .await;
    assert_eq!(response.headers()["retry-after"], "5");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "csp-unavailable");
    assert_eq!(body["retryAfterSeconds"], 5);
    let (status, _) = json_of(sim.get(&format!("/transaction/{id}")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn notifications_land_in_the_inbox_once() {
    let sim = start(6_000).await;
    let id = NotificationId::generate();
    let body = json!({"notificationId": id.as_str(), "msisdn": "+447700900000", "text": "PIN 123456", "partnerCode": "NFLX"});
    for _ in 0..2 {
        let (status, answer) = json_of(sim.post("/notification", body.clone()).await).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(
            answer,
            json!({"notificationId": id.as_str(), "status": "ACCEPTED"})
        );
    }
    let other = json!({"notificationId": NotificationId::generate().as_str(), "msisdn": "+447700900000", "text": "Hi", "partnerCode": "SPOT"});
    sim.post("/notification", other).await;
    let inbox: InboxBody = sim
        .get("/inbox?msisdn=%2B447700900000&partnerCode=NFLX")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inbox.messages.len(), 1);
    assert_eq!(inbox.messages[0].text, "PIN 123456");
    assert_eq!(inbox.messages[0].to, "+447700900000");
    let all: InboxBody = sim
        .get("/inbox?msisdn=%2B447700900000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.messages.len(), 2);
    assert_eq!(all.messages[0].partner_code, "SPOT");
    let (status, _) = json_of(
        sim.get("/inbox?msisdn=%2B447700900000&email=a%40b.cd")
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = json_of(sim.get("/inbox?phone=1").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let nobody = json!({"notificationId": NotificationId::generate().as_str(), "msisdn": "+447700900002", "text": "Hi", "partnerCode": "NFLX"});
    let (status, body) = json_of(sim.post("/notification", nobody).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("account-not-found"))
    );
}

#[tokio::test]
async fn serves_its_openapi_document_and_echoes_the_request_id() {
    let sim = start(6_000).await;
    let response = sim
        .client
        .get(format!("{}/openapi.json", sim.url))
        .header("x-request-id", "req-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-7");
    let (_, spec) = json_of(response).await;
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/account/validate",
        "/transaction",
        "/transaction/{transactionId}",
        "/notification",
        "/ledger",
        "/inbox",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing");
    }
    assert!(spec["paths"]["/transaction"]["post"]["responses"]["503"].is_object());
    assert_eq!(
        spec["components"]["securitySchemes"]["apiKey"]["name"],
        "X-API-KEY"
    );
    assert!(spec["components"]["schemas"]["TransactionRequest"].is_object());
    assert_eq!(dcbhub_csp_sim::openapi().paths.paths.len(), 6);
}

#[tokio::test]
async fn shuts_down_gracefully_on_the_signal() {
    let mut sim = start(6_000).await;
    let (status, _) = json_of(
        sim.post("/account/validate", json!({"msisdn": "+447700900000"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    sim.stop.take().unwrap().send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), &mut sim.done).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))));
    assert!(
        Client::new()
            .get(format!("{}/openapi.json", sim.url))
            .send()
            .await
            .is_err()
    );
}
