//! Ceiling (b): a bare axum handler doing one durable insert per request through a single
//! rusqlite writer thread with group commit: the writer drains whatever is queued into one
//! transaction (WAL, `synchronous=FULL`) and answers each request after the commit.
//!
//! The table has no index besides its rowid, as in the ceiling of
//! `shared/reference/ceilings.md`: it is the cost of one durable row, nothing more. (Two
//! unique TEXT keys, as the hub's `transactions` has, cost about 30% of it; see
//! docs/PERFORMANCE.md.)

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::{ChargeAnswer, ChargeBody, json_answer};

/// Most rows in one commit.
const MAX_BATCH: usize = 1024;

struct Job {
    row: Row,
    done: oneshot::Sender<bool>,
}

struct Row {
    id: String,
    ext_transaction_id: String,
    customer: String,
    amount: String,
    currency: String,
    description: String,
    product_code: Option<String>,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    CREATE TABLE IF NOT EXISTS charges (
        id TEXT NOT NULL,
        ext_transaction_id TEXT NOT NULL,
        customer TEXT NOT NULL,
        amount TEXT NOT NULL,
        currency TEXT NOT NULL,
        description TEXT NOT NULL,
        product_code TEXT,
        created_at INTEGER NOT NULL
    ) STRICT;";

/// Opens the database at `path`, starts the writer thread and returns the router.
pub fn router(path: &Path) -> anyhow::Result<Router> {
    let conn = Connection::open(path)?;
    conn.execute_batch(SCHEMA)?;
    let (tx, rx) = mpsc::channel::<Job>(8192);
    std::thread::Builder::new()
        .name("ceiling-writer".into())
        .spawn(move || writer(conn, rx))?;
    Ok(Router::new()
        .route("/transaction", post(charge))
        .with_state(Arc::new(tx)))
}

fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut outcomes: Vec<bool> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit(&mut conn, &batch, &mut outcomes);
        for (job, ok) in batch.drain(..).zip(outcomes.drain(..)) {
            let _ = job.done.send(committed && ok);
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Job], outcomes: &mut Vec<bool>) -> bool {
    let Ok(tx) = conn.transaction() else {
        outcomes.extend(batch.iter().map(|_| false));
        return false;
    };
    {
        let stmt = tx.prepare_cached(
            "INSERT INTO charges (id, ext_transaction_id, customer, amount, currency,
                                  description, product_code, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, unixepoch('subsec') * 1000)",
        );
        let Ok(mut stmt) = stmt else {
            outcomes.extend(batch.iter().map(|_| false));
            return false;
        };
        for job in batch {
            let r = &job.row;
            let ok = stmt
                .execute(params![
                    r.id,
                    r.ext_transaction_id,
                    r.customer,
                    r.amount,
                    r.currency,
                    r.description,
                    r.product_code
                ])
                .is_ok();
            outcomes.push(ok);
        }
    }
    tx.commit().is_ok()
}

async fn charge(
    State(writer): State<Arc<mpsc::Sender<Job>>>,
    Json(body): Json<ChargeBody>,
) -> Response {
    let answer = ChargeAnswer::success(&body);
    let row = Row {
        id: answer.transaction_id.clone(),
        ext_transaction_id: body.ext_transaction_id.clone(),
        customer: body
            .msisdn
            .clone()
            .or_else(|| body.email.clone())
            .unwrap_or_default(),
        amount: body.amount.clone(),
        currency: body.currency.clone(),
        description: body.description.clone(),
        product_code: body.product_code.clone(),
    };
    let (done, wait) = oneshot::channel();
    if writer.send(Job { row, done }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match wait.await {
        Ok(true) => json_answer(StatusCode::CREATED, &answer),
        _ => StatusCode::CONFLICT.into_response(),
    }
}
