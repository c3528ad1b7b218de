//! `GET /sandbox/messages` (API.md §9): what the sandbox CSP "delivered" for this partner.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::customer;
use crate::auth::Partner;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sandbox_messages))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// The recipient's MSISDN (exactly one of `msisdn` or `email`).
    #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
    msisdn: Option<String>,
    #[param(format = Email, max_length = 254)]
    email: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxMessageView {
    to: String,
    text: String,
    sent_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Inbox {
    /// Newest first.
    messages: Vec<InboxMessageView>,
}

/// Messages the sandbox CSP delivered to a recipient for this partner (sandbox only).
#[utoipa::path(get, path = "/sandbox/messages", tag = "sandbox", security(("apiKey" = [])),
    params(InboxQuery),
    responses(
        (status = 200, body = Inbox),
        (status = 400, description = "`invalid-request`", body = ErrorBody),
        (status = 404, description = "`not-found`: the sandbox is disabled", body = ErrorBody),
    ))]
async fn sandbox_messages(
    State(state): State<AppState>,
    Partner(caller): Partner,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Json<Inbox>, ApiError> {
    let sandbox = state.hub.sandbox.as_ref().ok_or(ApiError::NotFound)?;
    let recipient = customer(q.msisdn.as_deref(), q.email.as_deref())?;
    let messages = sandbox
        .inbox(&recipient, &caller.partner.code)
        .into_iter()
        .map(|m| InboxMessageView {
            to: m.to,
            text: m.text,
            sent_at: m.sent_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(Inbox { messages }))
}
