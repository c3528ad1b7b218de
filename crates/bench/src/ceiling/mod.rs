//! The ceilings of PRODUCT.md, measured in the same run as the hub: small axum servers inside
//! the bench process, on their own runtime (two workers, as the hub has on two cores), on
//! `127.0.0.1:0`.

pub mod bare_json;
pub mod group_commit;
pub mod pg_insert;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use serde::{Deserialize, Serialize};

/// The charge body the benchmark sends, parsed as strictly as the hub's edge does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Parsed to pay for parsing; not every field is used.
pub struct ChargeBody {
    #[serde(rename = "extTransactionID")]
    pub ext_transaction_id: String,
    pub msisdn: Option<String>,
    pub email: Option<String>,
    pub amount: String,
    pub currency: String,
    pub description: String,
    pub product_code: Option<String>,
    pub pin_id: Option<String>,
    #[serde(rename = "type")]
    pub tx_type: Option<String>,
    pub tax_included: Option<bool>,
}

/// An answer the size and shape of the hub's transaction view.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeAnswer<'a> {
    #[serde(rename = "extTransactionID")]
    pub ext_transaction_id: &'a str,
    pub transaction_id: String,
    #[serde(rename = "type")]
    pub tx_type: &'static str,
    pub status: &'static str,
    pub amount: &'a str,
    pub currency: &'a str,
    pub description: &'a str,
    pub product_code: Option<&'a str>,
    pub refunded_amount: &'static str,
    pub csp_reference: String,
    pub tax_included: bool,
    pub created_at: &'static str,
    pub updated_at: &'static str,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<'a> ChargeAnswer<'a> {
    pub fn success(body: &'a ChargeBody) -> Self {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self {
            ext_transaction_id: &body.ext_transaction_id,
            transaction_id: format!("tx_{n:026}"),
            tx_type: "CHARGE",
            status: "SUCCESS",
            amount: &body.amount,
            currency: &body.currency,
            description: &body.description,
            product_code: body.product_code.as_deref(),
            refunded_amount: "0.00",
            csp_reference: format!("sbx-{n:020}"),
            tax_included: body.tax_included.unwrap_or(true),
            created_at: "2026-12-01T00:00:00.000Z",
            updated_at: "2026-12-01T00:00:00.000Z",
        }
    }
}

/// A server running on its own runtime until dropped.
pub struct CeilingServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl CeilingServer {
    /// Builds the router with `make` and serves it on `127.0.0.1:0`, both on a new two-worker
    /// runtime (so that pools and tasks the router needs live on the server's side).
    pub async fn start<F>(make: F) -> anyhow::Result<Self>
    where
        F: Future<Output = anyhow::Result<Router>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ceiling")
            .enable_all()
            .build()?;
        let started = runtime.spawn(async move {
            let router = make.await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            anyhow::Ok(addr)
        });
        // Owned before the first `?`, so that a failed start still shuts the runtime down.
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            runtime: Some(runtime),
        };
        server.addr = started.await??;
        Ok(server)
    }
}

impl Drop for CeilingServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A JSON answer, serialised in the handler (the answer borrows from the request body).
pub fn json_answer(
    status: axum::http::StatusCode,
    value: &impl Serialize,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::load::{self, LoadSpec};
    use crate::workload::Charges;

    fn charges() -> Charges {
        Charges {
            run_id: "test".into(),
            api_key: None,
            host: "127.0.0.1".into(),
            path: "/transaction",
        }
    }

    const SPEC: LoadSpec = LoadSpec {
        connections: 4,
        warmup: Duration::from_millis(100),
        measure: Duration::from_millis(300),
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bare_json_ceiling_answers_every_request() {
        let server = CeilingServer::start(async { Ok(bare_json::router()) })
            .await
            .unwrap();
        let result = load::run(&[server.addr], SPEC, Arc::new(charges()))
            .await
            .unwrap();
        assert!(result.ok > 10, "{} answers", result.ok);
        assert_eq!(result.error_count(), 0, "{:?}", result.errors);
        assert!(result.acked.len() as u64 >= result.ok);
        assert!(result.percentile_ms(0.99) >= result.percentile_ms(0.5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_ceiling_stores_every_acknowledged_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let db = path.clone();
        let server = CeilingServer::start(async move { group_commit::router(&db) })
            .await
            .unwrap();
        let result = load::run(&[server.addr], SPEC, Arc::new(charges()))
            .await
            .unwrap();
        drop(server);
        assert!(result.ok > 10, "{} answers", result.ok);
        assert_eq!(result.error_count(), 0, "{:?}", result.errors);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare("SELECT count(*) FROM charges WHERE ext_transaction_id = ?1")
            .unwrap();
        for id in &result.acked {
            let n: i64 = stmt.query_row([id], |r| r.get(0)).unwrap();
            assert_eq!(n, 1, "{id}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_body_is_an_error_not_a_success() {
        let server = CeilingServer::start(async { Ok(bare_json::router()) })
            .await
            .unwrap();
        let mut bad = charges();
        bad.path = "/elsewhere";
        let result = load::run(&[server.addr], SPEC, Arc::new(bad))
            .await
            .unwrap();
        assert_eq!(result.ok, 0);
        assert!(result.acked.is_empty());
        assert!(
            result.errors.contains_key("status 404 Not Found"),
            "{:?}",
            result.errors
        );
    }
}
