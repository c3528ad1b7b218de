//! The admin API and the partner CLI.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, json, spawn_app_with};

crate::on_both_backends!(
    admin_partner_lifecycle,
    admin_needs_the_token,
    care_search_and_refund
);

async fn admin_partner_lifecycle(app: TestApp) {
    let resp = app
        .admin(Method::POST, "/admin/partners")
        .json(&json!({"code": "NFLX", "name": "Netflix", "consent": "none", "receipts": false}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["code"], "NFLX");
    assert!(body["apiKey"].as_str().unwrap().starts_with("dcb_"));
    assert_eq!(body["partner"]["consent"], "none");
    assert_eq!(body["partner"]["receiptsEnabled"], false);
    // The key is stored only hashed: nothing in the database holds it in clear.
    let key = body["apiKey"].as_str().unwrap();
    let keys = app
        .store
        .list_api_keys(&dcbhub_domain::PartnerCode::parse("NFLX").unwrap())
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.id.contains(&key[4..20])));

    let dup = app
        .admin(Method::POST, "/admin/partners")
        .json(&json!({"code": "NFLX", "name": "Again"}))
        .send()
        .await
        .unwrap();
    assert_error(dup, 409, "partner-exists").await;
    let bad = app
        .admin(Method::POST, "/admin/partners")
        .json(&json!({"code": "nf", "name": "x"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(bad, 400, "invalid-request").await;
    assert_eq!(body["field"], "code");

    let (status, list) = json(
        app.admin(Method::GET, "/admin/partners")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        list["partners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "NFLX")
    );
    let (_, shown) = json(
        app.admin(Method::GET, "/admin/partners/NFLX")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["name"], "Netflix");
    assert_error(
        app.admin(Method::GET, "/admin/partners/NOPE")
            .send()
            .await
            .unwrap(),
        404,
        "partner-not-found",
    )
    .await;
    let (_, keys) = json(
        app.admin(Method::GET, "/admin/partners/NFLX/keys")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert!(
        keys.to_string().find("dcb_").is_none(),
        "keys are never shown again: {keys}"
    );
    assert_error(
        app.admin(Method::DELETE, "/admin/partners/NFLX/keys/key_nope")
            .send()
            .await
            .unwrap(),
        404,
        "key-not-found",
    )
    .await;
}

async fn admin_needs_the_token(app: TestApp) {
    let (status, csps) = json(app.admin(Method::GET, "/admin/csps").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        csps["csps"][0],
        json!({"id": "sandbox", "kind": "sandbox", "prefixes": ["447700900"], "acceptsEmail": true})
    );
    let resp = app
        .client
        .get(app.url("/admin/partners"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "authorization-failure").await;
    let resp = app
        .client
        .get(app.url("/admin/partners"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "authorization-failure").await;
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let app = spawn_app_with(Backend::Sqlite, "admin_off", |c| c.admin_token = None)
        .await
        .unwrap();
    let resp = app
        .admin(Method::GET, "/admin/partners")
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not-found").await;
}

#[tokio::test]
async fn embedded_default_creates_demo_once() {
    let app = spawn_app_with(Backend::Sqlite, "demo", |c| c.sandbox.demo_partner = true)
        .await
        .unwrap();
    let key = app.demo_key.clone().expect("first start creates DEMO");
    assert!(key.starts_with("dcb_"));
    let partners = app.store.list_partners().await.unwrap();
    assert_eq!(partners.len(), 1);
    assert_eq!(partners[0].code.as_str(), "DEMO");
}

#[test]
fn cli_partner_create_prints_json_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dcbhub"))
            .args(args)
            .env("DCBHUB_DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&[
        "partner",
        "create",
        "--code",
        "NFLX",
        "--name",
        "Netflix",
        "--consent",
        "none",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "NFLX");
    assert!(v["apiKey"].as_str().unwrap().starts_with("dcb_"));

    let out = run(&[
        "partner", "create", "--code", "NFLX", "--name", "Again", "--json",
    ]);
    assert!(!out.status.success());

    let out = run(&["partner", "key", "create", "NFLX", "--json"]);
    assert!(out.status.success());
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key_id = k["keyId"].as_str().unwrap();
    assert!(
        run(&["partner", "key", "revoke", "NFLX", key_id])
            .status
            .success()
    );
    assert!(run(&["partner", "suspend", "NFLX"]).status.success());
    let out = run(&["partner", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["status"], "suspended");
    assert!(run(&["partner", "resume", "NFLX"]).status.success());

    // A bad value stops with a message naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dcbhub"))
        .args(["partner", "list"])
        .env("DCBHUB_LISTEN", "nonsense")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("listen")
    );
}

async fn care_search_and_refund(app: TestApp) {
    let a = app
        .partner("NFLX", dcbhub_domain::ConsentPolicy::None)
        .await;
    let b = app
        .partner("SPOT", dcbhub_domain::ConsentPolicy::None)
        .await;
    for (key, ext) in [(&a, "n-1"), (&b, "s-1"), (&a, "n-2")] {
        let body = json!({"extTransactionID": ext, "msisdn": "+447700900060", "amount": "2.00", "currency": "GBP", "description": "Plan"});
        let resp = app.post("/transaction", key, &body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    let other = json!({"extTransactionID": "n-3", "msisdn": "+447700900061", "amount": "2.00", "currency": "GBP", "description": "Plan"});
    assert_eq!(
        app.post("/transaction", &a, &other)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let range = "from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let (status, page) = json(
        app.admin(
            Method::GET,
            &format!("/admin/transactions?msisdn=%2B447700900060&{range}&limit=2"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let rows = page["transactions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["partnerCode"].as_str(),
            rows[0]["extTransactionID"].as_str()
        ),
        (Some("NFLX"), Some("n-1"))
    );
    let after = page["nextAfter"].as_str().unwrap();
    let (_, page2) = json(
        app.admin(
            Method::GET,
            &format!("/admin/transactions?msisdn=%2B447700900060&{range}&limit=2&after={after}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let rows2 = page2["transactions"].as_array().unwrap();
    assert_eq!(rows2.len(), 1);
    assert_eq!(rows2[0]["extTransactionID"], "n-2");
    assert!(page2.get("nextAfter").is_none());
    let bad = app
        .admin(
            Method::GET,
            "/admin/transactions?msisdn=%2B447700900060&from=yesterday&to=2100-01-01T00:00:00Z",
        )
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "invalid-request").await;

    // A care agent refunds what is left of n-1, then nothing more is refundable.
    let resp = app
        .admin(Method::POST, "/admin/partners/NFLX/transactions/n-1/refund")
        .json(&json!({"extTransactionID": "care-r1"}))
        .send()
        .await
        .unwrap();
    let (status, refund) = json(resp).await;
    assert_eq!(
        (status, refund["amount"].as_str(), refund["type"].as_str()),
        (201, Some("2.00"), Some("REFUND")),
        "{refund}"
    );
    let (_, original) = json(app.get("/transaction/n-1", &a).send().await.unwrap()).await;
    assert_eq!(original["refundedAmount"], "2.00");
    let resp = app
        .admin(Method::POST, "/admin/partners/NFLX/transactions/n-1/refund")
        .json(&json!({"extTransactionID": "care-r2", "amount": "0.01"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "refund-exceeds-original").await;
    let resp = app
        .admin(Method::POST, "/admin/partners/NFLX/transactions/s-1/refund")
        .json(&json!({"extTransactionID": "care-r3"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "transaction-not-found").await;
}
