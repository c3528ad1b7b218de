//! `spawn_app`: the real server on `127.0.0.1:0` with a fresh database, and a client.

use std::net::SocketAddr;
use std::sync::Arc;

use dcbhub::{Application, Config};
use dcbhub_core::PartnerService;
use dcbhub_core::partners::NewPartnerRequest;
use dcbhub_domain::{ConsentPolicy, PartnerCode};
use dcbhub_store::Store;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    pub hub: Arc<dcbhub_core::Hub>,
    pub client: Client,
    pub store: Arc<dyn Store>,
    pub demo_key: Option<String>,
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Builds and starts the hub; `None` when the backend is PostgreSQL and none answers (the
/// skip is printed).
pub async fn spawn_app(backend: Backend, test: &str) -> Option<TestApp> {
    spawn_app_with(backend, test, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    test: &str,
    tweak: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let (dir, url) = match backend {
        Backend::Sqlite => {
            let (dir, url) = dcbhub_store::testing::sqlite_url().unwrap();
            (Some(dir), url)
        }
        Backend::Postgres => (None, dcbhub_store::testing::postgres_url(test).await?),
    };
    Some(spawn_on(url, dir, tweak).await)
}

/// Two hub instances sharing one fresh PostgreSQL database (`None`: no PostgreSQL).
pub async fn spawn_pair(test: &str, tweak: impl Fn(&mut Config)) -> Option<(TestApp, TestApp)> {
    let url = dcbhub_store::testing::postgres_url(test).await?;
    let a = spawn_on(url.clone(), None, &tweak).await;
    let b = spawn_on(url, None, &tweak).await;
    Some((a, b))
}

async fn spawn_on(
    url: String,
    dir: Option<tempfile::TempDir>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url.clone(),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    config.sandbox.demo_partner = false;
    config.pin.secret = Some("test-pin-secret-0123456789abcdef0123".into());
    // Quick background work, so tests see reconciled and delivered results soon.
    config.notifications.poll_interval_ms = 25;
    config.notifications.retry_base_ms = 50;
    config.notifications.retry_max_ms = 200;
    config.transactions.reconcile_first_delay_ms = 100;
    config.transactions.reconcile_interval_ms = 50;
    config.transactions.reconcile_max_delay_ms = 500;
    tweak(&mut config);
    let app = Application::build(&config).await.unwrap();
    let addr = app.local_addr().unwrap();
    let store = Arc::clone(&app.store);
    let hub = Arc::clone(&app.hub);
    let demo_key = app.demo_key.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        hub,
        client: Client::new(),
        store,
        demo_key,
        database_url: url,
        _dir: dir,
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a partner directly in the store and returns its API key.
    pub async fn partner(&self, code: &str, consent: ConsentPolicy) -> String {
        let created = PartnerService::new(Arc::clone(&self.store), None)
            .create(NewPartnerRequest {
                code: PartnerCode::parse(code).unwrap(),
                name: format!("{code} Media"),
                consent,
                receipts_enabled: true,
            })
            .await
            .unwrap();
        created.key.expose().to_owned()
    }

    pub fn post(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .header("X-API-KEY", key)
            .json(body)
    }

    pub fn get(&self, path: &str, key: &str) -> RequestBuilder {
        self.client.get(self.url(path)).header("X-API-KEY", key)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }
}

/// Status and JSON body of an answer; asserts the body is JSON.
pub async fn json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    assert!(
        ct.starts_with("application/json"),
        "status {status}: content-type {ct:?}, body {text:?}"
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// Asserts an error answer: status, code, and a non-empty message.
pub async fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    let (got, body) = json(resp).await;
    assert_eq!(
        (got, body["code"].as_str()),
        (status, Some(code)),
        "body: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    body
}

/// Declares each listed test once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite, stringify!($name)).await.unwrap();
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres, stringify!($name)).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// The sandbox CSP served over HTTP (what `dcbhub csp-sim` runs) on a loopback port.
pub struct Sim {
    pub addr: SocketAddr,
    pub state: dcbhub_csp_sim::SimState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub const SIM_KEY: &str = "sim-key-0123456789";

pub async fn spawn_sim(late_answer_ms: u64) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = dcbhub_csp_sim::SimConfig::new(SIM_KEY);
    config.late_answer_ms = late_answer_ms;
    let state = dcbhub_csp_sim::SimState::new(config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dcbhub_csp_sim::serve_state(
        listener,
        state.clone(),
        async {
            let _ = rx.await;
        },
    ));
    Sim {
        addr,
        state,
        _shutdown: tx,
    }
}

/// Points the hub at `sim` through the `http` connector instead of the in-process sandbox.
pub fn via_sim(config: &mut Config, sim: SocketAddr, timeout_ms: u64) {
    config.sandbox.enabled = false;
    let mut http = dcbhub_connectors::HttpConnectorConfig::new(format!("http://{sim}"), SIM_KEY);
    http.timeout_ms = timeout_ms;
    config.csps.push(dcbhub::config::CspConfig {
        id: "sim".into(),
        kind: dcbhub::config::CspKind::Http,
        prefixes: vec!["447700900".into()],
        accepts_email: true,
        http: Some(http),
        nrf_rating: None,
        limits: Some(dcbhub::config::LimitsConfig {
            currency: "GBP".into(),
            per_transaction: "40.00".into(),
            per_day: "100.00".into(),
            per_month: "240.00".into(),
        }),
        sms_channel: None,
        email_channel: None,
        smpp: None,
        smtp: None,
        charge_codes: Default::default(),
    });
    config.transactions.csp_timeout_ms = timeout_ms + 500;
}

/// Where a test's hub gets its CSP from.
#[derive(Clone, Copy, Debug)]
pub enum Csp {
    InProcess,
    OverHttp,
}

/// A hub on SQLite wired to the sandbox either in process or through csp-sim; the sim (when
/// used) is returned so the test can read its ledger and inbox.
pub async fn spawn_with_csp(csp: Csp, test: &str) -> (TestApp, Option<Sim>) {
    match csp {
        Csp::InProcess => (spawn_app(Backend::Sqlite, test).await.unwrap(), None),
        Csp::OverHttp => {
            let sim = spawn_sim(1500).await;
            let addr = sim.addr;
            let app = spawn_app_with(Backend::Sqlite, test, |c| via_sim(c, addr, 1000))
                .await
                .unwrap();
            (app, Some(sim))
        }
    }
}

impl TestApp {
    /// Messages the sandbox delivered to `msisdn` for this partner, newest first, wherever the
    /// sandbox runs (in process, or behind csp-sim).
    pub async fn inbox(
        &self,
        sim: Option<&Sim>,
        key: &str,
        partner: &str,
        msisdn: &str,
    ) -> Vec<String> {
        match sim {
            Some(sim) => {
                let c =
                    dcbhub_domain::Customer::Msisdn(dcbhub_domain::Msisdn::parse(msisdn).unwrap());
                let p = PartnerCode::parse(partner).unwrap();
                sim.state
                    .sandbox()
                    .inbox(&c, &p)
                    .into_iter()
                    .map(|m| m.text)
                    .collect()
            }
            None => {
                let url = format!("/sandbox/messages?msisdn={}", msisdn.replace('+', "%2B"));
                let (status, body) = json(self.get(&url, key).send().await.unwrap()).await;
                assert_eq!(status, 200, "{body}");
                body["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["text"].as_str().unwrap().to_owned())
                    .collect()
            }
        }
    }

    /// Waits (bounded) for a PIN message to arrive and returns its code.
    pub async fn latest_pin(
        &self,
        sim: Option<&Sim>,
        key: &str,
        partner: &str,
        msisdn: &str,
        skip: usize,
    ) -> String {
        for _ in 0..200 {
            let inbox = self.inbox(sim, key, partner, msisdn).await;
            let pins: Vec<String> = inbox
                .iter()
                .filter_map(|t| t.split("PIN is ").nth(1))
                .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
                .collect();
            if pins.len() > skip {
                return pins[0].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no PIN arrived for {msisdn}");
    }
}
