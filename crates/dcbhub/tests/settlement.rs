//! Settlement through the real server (admin API on `127.0.0.1:0`) and the real binary
//! (`dcbhub settlement …` on the same database). The amounts themselves are covered by the
//! store's fixtures (`crates/store/tests/settlement.rs`); this checks the wiring, the wire
//! shapes, the errors and the exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;

use dcbhub::{Application, Config};
use dcbhub_core::PartnerService;
use dcbhub_core::partners::NewPartnerRequest;
use dcbhub_domain::{ConsentPolicy, PartnerCode, Timestamp};
use dcbhub_store::{NewTransaction, Receipt, Settlement, Store, TxType};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

const TOKEN: &str = "settlement-admin-token-0123456789";

struct Server {
    base: String,
    url: String,
    store: Arc<dyn Store>,
    client: Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Self {
        let (dir, url) = dcbhub_store::testing::sqlite_url().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: url.clone(),
            admin_token: Some(TOKEN.into()),
            ..Config::default()
        };
        config.sandbox.demo_partner = false;
        config.pin.secret = Some("test-pin-secret-0123456789abcdef0123".into());
        let app = Application::build(&config).await.unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let store = Arc::clone(&app.store);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            url,
            store,
            client: Client::new(),
            _dir: dir,
            _stop: stop,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self.call(method, path, body).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, v)
    }

    /// `dcbhub ARGS` on this server's database: exit success, stdout, stderr.
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_dcbhub"))
            .args(args)
            .env("DCBHUB_DATABASE_URL", &self.url)
            .env("DCBHUB_LOG_FORMAT", "text")
            .env_remove("DCBHUB_CONFIG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// A successful charge recorded now, as the charge flow would leave it.
    async fn charge(&self, partner_id: i64, id: &str, amount_minor: i64) {
        self.store
            .begin_transaction(NewTransaction {
                id: id.into(),
                partner_id,
                ext_transaction_id: id.into(),
                fingerprint: "fp".into(),
                tx_type: TxType::Charge,
                customer: "+447700900123".into(),
                customer_kind: "msisdn".into(),
                csp_id: "sandbox".into(),
                account_key: "acct".into(),
                amount_minor,
                currency: "GBP".into(),
                description: "Film".into(),
                product_code: None,
                tax_included: true,
                original_id: None,
                consume_pin: None,
                limits: None,
                processing_until: Timestamp::now(),
            })
            .await
            .unwrap();
        let receipt: Receipt = None;
        self.store
            .settle_transaction(
                id,
                Settlement::Success {
                    csp_reference: "ref".into(),
                },
                receipt,
            )
            .await
            .unwrap();
    }
}

fn this_month() -> String {
    let now = Timestamp::now().to_datetime();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_over_the_admin_api_and_the_cli() {
    let s = Server::start().await;
    let partner = PartnerService::new(Arc::clone(&s.store), None)
        .create(NewPartnerRequest {
            code: PartnerCode::parse("NFLX").unwrap(),
            name: "Netflix".into(),
            consent: ConsentPolicy::None,
            receipts_enabled: false,
        })
        .await
        .unwrap()
        .partner;

    // Models and tax rates.
    let model = json!({"partner": "NFLX", "revenueShare": "70.00", "validFrom": "2020-01-01"});
    let (status, added) = s
        .json(
            Method::POST,
            "/admin/settlement/models",
            Some(model.clone()),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["model"]["terms"]["partnerShare"], "70.00");
    assert_eq!(added["model"]["validFrom"], "2020-01-01T00:00:00.000Z");
    assert_eq!(added["model"]["validTo"], Value::Null);
    let (status, clash) = s
        .json(Method::POST, "/admin/settlement/models", Some(model))
        .await;
    assert_eq!(
        (status, &clash["code"]),
        (409, &json!("settlement-conflict"))
    );
    let (status, bad) = s
        .json(
            Method::POST,
            "/admin/settlement/models",
            Some(json!({"partner": "NFLX", "flatCost": "0.50", "validFrom": "2020-01-01"})),
        )
        .await;
    assert_eq!((status, &bad["code"]), (400, &json!("invalid-request")));
    assert_eq!(bad["field"], "currency");
    let (status, _) = s
        .json(
            Method::POST,
            "/admin/settlement/models",
            Some(json!({"partner": "NOPE", "revenueShare": "1", "validFrom": "2020-01-01"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, rate) = s
        .json(
            Method::POST,
            "/admin/settlement/tax-rates",
            Some(json!({"cspId": "sandbox", "rate": "20.00", "validFrom": "2020-01-01"})),
        )
        .await;
    assert_eq!((status, &rate["rate"]), (201, &json!("20.00")));
    let (_, models) = s
        .json(Method::GET, "/admin/settlement/models?partner=NFLX", None)
        .await;
    assert_eq!(models["models"].as_array().unwrap().len(), 1);

    // This month's draft: 10.00 GBP with 20 % VAT included at 70 %.
    s.charge(partner.id, "t1", 1000).await;
    let run = json!({"partner": "NFLX", "month": this_month()});
    let (status, draft) = s
        .json(
            Method::POST,
            "/admin/settlement/statements",
            Some(run.clone()),
        )
        .await;
    assert_eq!(status, 200, "{draft}");
    assert_eq!(draft["status"], "DRAFT");
    assert_eq!(draft["lines"][0]["gross"], "10.00");
    assert_eq!(draft["lines"][0]["tax"], "1.67");
    assert_eq!(draft["lines"][0]["cspShare"], "2.50");
    assert_eq!(draft["lines"][0]["partnerPayout"], "5.83");
    assert_eq!(draft["totals"][0]["partnerPayout"], "5.83");
    let (_, again) = s
        .json(Method::POST, "/admin/settlement/statements", Some(run))
        .await;
    assert_eq!(
        again["id"], draft["id"],
        "same partner and period, same statement"
    );
    assert_eq!(again["revision"], 2);
    let (status, early) = s
        .json(
            Method::POST,
            &format!("/admin/settlement/statements/{}/finalise", draft["id"]),
            None,
        )
        .await;
    assert_eq!(
        (status, &early["code"]),
        (409, &json!("statement-not-ready"))
    );
    assert!(
        early["message"].as_str().unwrap().contains("not over"),
        "{early}"
    );

    // A past month finalises, and then cannot be recomputed.
    let past =
        json!({"partner": "NFLX", "from": "2025-01-01", "to": "2025-02-01", "tz": "Europe/London"});
    let (status, jan) = s
        .json(
            Method::POST,
            "/admin/settlement/statements",
            Some(past.clone()),
        )
        .await;
    assert_eq!(status, 200, "{jan}");
    let jan_id = jan["id"].as_i64().unwrap();
    let (status, fin) = s
        .json(
            Method::POST,
            &format!("/admin/settlement/statements/{jan_id}/finalise"),
            None,
        )
        .await;
    assert_eq!((status, &fin["status"]), (200, &json!("FINAL")));
    let (status, refused) = s
        .json(Method::POST, "/admin/settlement/statements", Some(past))
        .await;
    assert_eq!((status, &refused["code"]), (409, &json!("statement-final")));
    assert!(refused["message"].as_str().unwrap().contains("FINAL"));

    // Reading and exporting.
    let (_, list) = s
        .json(
            Method::GET,
            "/admin/settlement/statements?partner=NFLX",
            None,
        )
        .await;
    let ids: Vec<_> = list["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [draft["id"].clone(), json!(jan_id)],
        "newest period first"
    );
    let (status, shown) = s
        .json(
            Method::GET,
            &format!("/admin/settlement/statements/{}", draft["id"]),
            None,
        )
        .await;
    assert_eq!((status, &shown["lines"]), (200, &draft["lines"]));
    let resp = s
        .call(
            Method::GET,
            &format!(
                "/admin/settlement/statements/{}/export?format=csv",
                draft["id"]
            ),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    assert!(csv.starts_with("statement_id,partner,period_from"), "{csv}");
    assert!(csv.contains(",line,charges,GBP,"), "{csv}");
    assert!(csv.contains(",total,,GBP,"), "{csv}");
    let (status, exported) = s
        .json(
            Method::GET,
            &format!(
                "/admin/settlement/statements/{}/export?format=json",
                draft["id"]
            ),
            None,
        )
        .await;
    assert_eq!((status, &exported["lines"]), (200, &draft["lines"]));
    let (status, _) = s
        .json(
            Method::GET,
            &format!("/admin/settlement/statements/{jan_id}/export?format=xml"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, missing) = s
        .json(Method::GET, "/admin/settlement/statements/999999", None)
        .await;
    assert_eq!(
        (status, &missing["code"]),
        (404, &json!("statement-not-found"))
    );
    let anonymous = s
        .client
        .get(format!("{}/admin/settlement/statements", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The CLI on the same database sees the same statements, and refuses what the API does.
    let (ok, out, err) = s.cli(&["settlement", "list", "--partner", "NFLX", "--json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let (ok, out, err) = s.cli(&[
        "settlement",
        "export",
        &jan_id.to_string(),
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let cli_doc: Value = serde_json::from_str(&out).unwrap();
    let (_, api_doc) = s
        .json(
            Method::GET,
            &format!("/admin/settlement/statements/{jan_id}"),
            None,
        )
        .await;
    assert_eq!(cli_doc, api_doc, "the CLI prints the API's document");
    let (ok, _, err) = s.cli(&[
        "settlement",
        "run",
        "--partner",
        "NFLX",
        "--from",
        "2025-01-01",
        "--to",
        "2025-02-01",
        "--tz",
        "Europe/London",
    ]);
    assert!(!ok, "recomputing a final statement must fail");
    assert!(err.contains("is FINAL"), "{err}");
    let (ok, _, err) = s.cli(&["settlement", "finalise", &draft["id"].to_string()]);
    assert!(!ok);
    assert!(err.contains("not over"), "{err}");
    let (ok, out, err) = s.cli(&[
        "settlement",
        "model",
        "add",
        "--partner",
        "NFLX",
        "--product",
        "PREM",
        "--flat-cost",
        "0.50",
        "--currency",
        "GBP",
        "--from",
        "2025-03-01",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("flat cost 0.50 GBP"), "{out}");
}
