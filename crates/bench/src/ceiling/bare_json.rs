//! Ceiling (a): a bare axum handler that parses the charge JSON and answers JSON.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};

use super::{ChargeAnswer, ChargeBody, json_answer};

pub fn router() -> Router {
    Router::new().route("/transaction", post(charge))
}

async fn charge(Json(body): Json<ChargeBody>) -> Response {
    json_answer(StatusCode::CREATED, &ChargeAnswer::success(&body))
}
