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
    pub client: Client,
    pub store: Arc<dyn Store>,
    pub demo_key: Option<String>,
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
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url,
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    tweak(&mut config);
    let app = Application::build(&config).await.unwrap();
    let addr = app.local_addr().unwrap();
    let store = Arc::clone(&app.store);
    let demo_key = app.demo_key.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Some(TestApp {
        addr,
        client: Client::new(),
        store,
        demo_key,
        _dir: dir,
        _shutdown: tx,
    })
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
