//! The OpenAPI document is generated from the handlers; this pins it and checks its rules.

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

#[test]
fn openapi_snapshot() {
    // Fails when the contract changes unnoticed; review with `cargo insta review` (or
    // delete the snapshot and re-run) after an intended change.
    insta::assert_snapshot!("openapi", dcbhub_api::openapi_json());
}

#[test]
fn every_operation_declares_its_errors() {
    let spec: Value = serde_json::from_str(&dcbhub_api::openapi_json()).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path} lacks 500");
            if op.get("requestBody").is_some() {
                for s in ["400", "413", "415"] {
                    assert!(responses.contains_key(s), "{method} {path} lacks {s}");
                }
            }
            if op.get("security").is_some() {
                for s in ["401", "403"] {
                    assert!(responses.contains_key(s), "{method} {path} lacks {s}");
                }
            }
        }
    }
}

#[tokio::test]
async fn docs_page_is_served_offline() {
    let app = spawn_app(Backend::Sqlite, "docs").await.unwrap();
    for path in ["/docs", "/docs/"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        assert!(
            !html.contains("https://"),
            "the page must load nothing from the network"
        );
    }
    let js = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains("/openapi.json"));
    assert!(
        js.contains("\"validatorUrl\": \"none\"") || js.contains("validatorUrl\":\"none"),
        "{js}"
    );
    let resp = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
}
