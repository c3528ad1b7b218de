//! Ceiling (c): a bare axum handler doing one PostgreSQL insert per request (its own
//! autocommit transaction, `synchronous_commit` as the server has it) through an sqlx pool of
//! 16 connections. Like ceiling (b), the table has no index: the cost of one durable row.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{ChargeAnswer, ChargeBody, json_answer};

pub const POOL_SIZE: u32 = 16;

/// Creates the ceiling's table in the database at `url` and returns the router with its pool.
/// The pool lives on the runtime that calls this; the server must run on the same one.
pub async fn router(url: &str) -> anyhow::Result<Router> {
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .min_connections(POOL_SIZE)
        .connect(url)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_ceiling_charges (
             id TEXT NOT NULL,
             ext_transaction_id TEXT NOT NULL,
             customer TEXT NOT NULL,
             amount TEXT NOT NULL,
             currency TEXT NOT NULL,
             description TEXT NOT NULL,
             product_code TEXT,
             created_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .execute(&pool)
    .await?;
    Ok(Router::new()
        .route("/transaction", post(charge))
        .with_state(pool))
}

async fn charge(State(pool): State<PgPool>, Json(body): Json<ChargeBody>) -> Response {
    let answer = ChargeAnswer::success(&body);
    let customer = body
        .msisdn
        .as_deref()
        .or(body.email.as_deref())
        .unwrap_or("");
    let inserted = sqlx::query(
        "INSERT INTO bench_ceiling_charges
             (id, ext_transaction_id, customer, amount, currency, description, product_code)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&answer.transaction_id)
    .bind(&body.ext_transaction_id)
    .bind(customer)
    .bind(&body.amount)
    .bind(&body.currency)
    .bind(&body.description)
    .bind(body.product_code.as_deref())
    .execute(&pool)
    .await;
    match inserted {
        Ok(_) => json_answer(StatusCode::CREATED, &answer),
        Err(_) => StatusCode::CONFLICT.into_response(),
    }
}
