//! API.md §1: every rejection of the edge answers with the contract's status, code and JSON.

use dcbhub_domain::ConsentPolicy;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, json};

crate::on_both_backends!(
    unknown_path_and_wrong_method,
    malformed_bodies,
    api_key_rules,
    request_id_is_echoed_or_minted,
    health_ready_metrics,
);

async fn unknown_path_and_wrong_method(app: TestApp) {
    assert_error(
        app.client
            .get(app.url("/no/such/path"))
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    assert_error(
        app.client.delete(app.url("/healthz")).send().await.unwrap(),
        405,
        "method-not-allowed",
    )
    .await;
    assert_error(
        app.client
            .put(app.url("/admin/partners"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
        405,
        "method-not-allowed",
    )
    .await;
}

async fn malformed_bodies(app: TestApp) {
    let url = app.url("/admin/partners");
    let send = |body: Vec<u8>, ct: Option<&'static str>| {
        let mut req = app.admin(Method::POST, "/admin/partners").body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let _ = url;
    assert_error(
        send(b"{".to_vec(), Some("application/json")).await.unwrap(),
        400,
        "invalid-request",
    )
    .await;
    assert_error(
        send(b"\x00\xff".to_vec(), Some("application/json"))
            .await
            .unwrap(),
        400,
        "invalid-request",
    )
    .await;
    let body = assert_error(
        send(
            br#"{"code":"NFLX","name":"N","colour":"red"}"#.to_vec(),
            Some("application/json"),
        )
        .await
        .unwrap(),
        400,
        "parameter-not-supported",
    )
    .await;
    assert_eq!(body["field"], "colour");
    let body = assert_error(
        send(
            br#"{"code":"NFLX","name":5}"#.to_vec(),
            Some("application/json"),
        )
        .await
        .unwrap(),
        400,
        "invalid-request",
    )
    .await;
    assert_eq!(body["field"], "name");
    let big = format!(r#"{{"code":"NFLX","name":"{}"}}"#, "x".repeat(17 * 1024));
    assert_error(
        send(big.into_bytes(), Some("application/json"))
            .await
            .unwrap(),
        413,
        "payload-too-large",
    )
    .await;
    assert_error(
        send(
            br#"{"code":"NFLX","name":"N"}"#.to_vec(),
            Some("text/plain"),
        )
        .await
        .unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    assert_error(
        send(br#"{"code":"NFLX","name":"N"}"#.to_vec(), None)
            .await
            .unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    // Nothing of the above created anything.
    assert!(
        app.store
            .list_partners()
            .await
            .unwrap()
            .iter()
            .all(|p| p.code.as_str() != "NFLX")
    );
    // A charset parameter is fine.
    let resp = send(
        br#"{"code":"NFLX","name":"Netflix"}"#.to_vec(),
        Some("application/json; charset=utf-8"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
}

async fn api_key_rules(app: TestApp) {
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let probe = |k: Option<&str>| {
        let mut req = app
            .client
            .get(app.url("/sandbox/messages?msisdn=%2B447700900000"));
        if let Some(k) = k {
            req = req.header("X-API-KEY", k);
        }
        req.send()
    };
    assert_eq!(probe(Some(&key)).await.unwrap().status(), 200);
    assert_error(probe(None).await.unwrap(), 401, "authorization-failure").await;
    assert_error(
        probe(Some("dcb_nope")).await.unwrap(),
        401,
        "authorization-failure",
    )
    .await;

    // A second key works at once; a revoked key stops at once on this instance.
    let (status, created) = json(
        app.admin(Method::POST, "/admin/partners/NFLX/keys")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let second = created["apiKey"].as_str().unwrap().to_owned();
    let key_id = created["key"]["keyId"].as_str().unwrap().to_owned();
    assert_eq!(probe(Some(&second)).await.unwrap().status(), 200);
    let resp = app
        .admin(
            Method::DELETE,
            &format!("/admin/partners/NFLX/keys/{key_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_error(
        probe(Some(&second)).await.unwrap(),
        401,
        "authorization-failure",
    )
    .await;
    assert_eq!(probe(Some(&key)).await.unwrap().status(), 200);

    // Suspended partner → 403; resumed → works again.
    assert_eq!(
        app.admin(Method::POST, "/admin/partners/NFLX/suspend")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_error(probe(Some(&key)).await.unwrap(), 403, "permission-denied").await;
    assert_eq!(
        app.admin(Method::POST, "/admin/partners/NFLX/resume")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(probe(Some(&key)).await.unwrap().status(), 200);
}

async fn request_id_is_echoed_or_minted(app: TestApp) {
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-ID", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert!(
        resp.headers()
            .get("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );
}

async fn health_ready_metrics(app: TestApp) {
    let (status, body) = json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, _) = json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    // A sandbox charge and its receipt are counted (the handles are kept between calls).
    let key = app.partner("MTRC", ConsentPolicy::None).await;
    for ext in ["m-1", "m-2"] {
        let body = json!({"extTransactionID": ext, "msisdn": "+447700900000", "amount": "0.99",
            "currency": "GBP", "description": "Metrics"});
        let (status, _) = json(app.post("/transaction", &key, &body).send().await.unwrap()).await;
        assert_eq!(status, 201);
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("dcbhub_http_requests_total"), "{text}");
    assert!(
        text.contains("dcbhub_http_request_duration_seconds"),
        "{text}"
    );
    // Other tests of this process charge too: the counters only grow.
    let counted = |series: &str| {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        counted(r#"dcbhub_charges_total{csp="sandbox",kind="CHARGE",outcome="success"}"#) >= 2.0,
        "{text}"
    );
    assert!(
        counted(r#"dcbhub_notification_deliveries_total{channel="sandbox",outcome="sent"}"#) >= 2.0,
        "{text}"
    );
}
