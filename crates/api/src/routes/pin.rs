//! `POST /pin` (create or resend) and `POST /pin/validate` (API.md §3–4).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use dcbhub_core::pins::{PinRequest, PinView};
use dcbhub_domain::{AmountLiteral, Currency, Description, ExtTransactionId, PinId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{call_context, customer, pin_error};
use crate::auth::Partner;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, RequestBody};
use crate::middleware::TraceContext;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pin_create))
        .routes(routes!(pin_validate))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinCreateRequest {
    /// The customer (exactly one of `msisdn` or `email`) for a new PIN.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    msisdn: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// Resend: the challenge whose PIN to send again (alone in the body).
    pin_id: Option<String>,
    /// Binds the PIN to this purchase.
    #[serde(rename = "extTransactionID")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    ext_transaction_id: Option<String>,
    /// Binds the PIN to this amount (with `currency`): a decimal string or number.
    #[schema(value_type = Option<String>, example = "4.99")]
    amount: Option<AmountLiteral>,
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    /// Shown in the PIN message.
    #[schema(min_length = 1, max_length = 100)]
    description: Option<String>,
}

impl RequestBody for PinCreateRequest {
    const FIELDS: &'static [&'static str] = &[
        "msisdn",
        "email",
        "pinId",
        "extTransactionID",
        "amount",
        "currency",
        "description",
    ];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinCreated {
    pin_id: String,
    expires_at: String,
    attempts_remaining: u32,
    resends_remaining: u32,
}

impl From<PinView> for PinCreated {
    fn from(v: PinView) -> Self {
        Self {
            pin_id: v.record.id,
            expires_at: v.record.expires_at.to_rfc3339(),
            attempts_remaining: v.attempts_remaining,
            resends_remaining: v.resends_remaining,
        }
    }
}

/// Sends the customer a one-time PIN for their consent, or sends it again (`{"pinId"}`).
#[utoipa::path(post, path = "/pin", tag = "pin", security(("apiKey" = [])),
    request_body = PinCreateRequest,
    responses(
        (status = 201, description = "PIN sent", body = PinCreated),
        (status = 400, description = "`invalid-request`, account errors as /account/validate, `pin-already-used`, `pin-attempts-exceeded`", body = ErrorBody),
        (status = 404, description = "`account-not-found`, `pin-not-found`", body = ErrorBody),
        (status = 429, description = "`pin-resend-too-soon`, `pin-send-limit`", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`", body = ErrorBody),
    ))]
async fn pin_create(
    State(state): State<AppState>,
    Partner(caller): Partner,
    Extension(trace): Extension<TraceContext>,
    ApiJson(body): ApiJson<PinCreateRequest>,
) -> Result<(StatusCode, Json<PinCreated>), ApiError> {
    let partner = &caller.partner;
    if let Some(pin_id) = &body.pin_id {
        let others = body.msisdn.is_some()
            || body.email.is_some()
            || body.ext_transaction_id.is_some()
            || body.amount.is_some()
            || body.currency.is_some()
            || body.description.is_some();
        if others {
            return Err(ApiError::invalid("pinId", "A resend carries pinId alone."));
        }
        let pin_id = PinId::parse(pin_id).map_err(|_| ApiError::PinNotFound)?;
        let view = state
            .hub
            .resend_pin(partner, &pin_id, None)
            .await
            .map_err(pin_error)?;
        return Ok((StatusCode::CREATED, Json(view.into())));
    }
    let customer = customer(body.msisdn.as_deref(), body.email.as_deref())?;
    let money = match (&body.amount, &body.currency) {
        (Some(amount), Some(currency)) => Some(amount.to_money(Currency::parse(currency)?)?),
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::invalid("currency", "amount needs a currency")),
        (None, Some(_)) => return Err(ApiError::invalid("amount", "currency needs an amount")),
    };
    let req = PinRequest {
        customer,
        ext_transaction_id: body
            .ext_transaction_id
            .as_deref()
            .map(ExtTransactionId::parse)
            .transpose()?,
        money,
        description: body
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()?,
        locale: None,
    };
    let view = state
        .hub
        .create_pin(partner, req, &call_context(&trace))
        .await
        .map_err(pin_error)?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinValidateRequest {
    pin_id: String,
    /// The code the customer entered.
    pin: String,
}

impl RequestBody for PinValidateRequest {
    const FIELDS: &'static [&'static str] = &["pinId", "pin"];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinValid {
    /// `VALID`
    status: &'static str,
    pin_id: String,
    consent_expires_at: String,
}

/// Checks the PIN the customer entered; a valid PIN is consent for one transaction.
#[utoipa::path(post, path = "/pin/validate", tag = "pin", security(("apiKey" = [])),
    request_body = PinValidateRequest,
    responses(
        (status = 200, description = "Correct and in time", body = PinValid),
        (status = 400, description = "`invalid-pin` (with `attemptsRemaining`), `pin-expired`, `pin-attempts-exceeded`, `pin-already-used`, `invalid-request`", body = ErrorBody),
        (status = 404, description = "`pin-not-found`", body = ErrorBody),
    ))]
async fn pin_validate(
    State(state): State<AppState>,
    Partner(caller): Partner,
    ApiJson(body): ApiJson<PinValidateRequest>,
) -> Result<Json<PinValid>, ApiError> {
    let pin_id = PinId::parse(&body.pin_id).map_err(|_| ApiError::PinNotFound)?;
    let well_formed =
        (4..=8).contains(&body.pin.len()) && body.pin.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(ApiError::invalid("pin", "pin must be 4 to 8 digits"));
    }
    let record = state
        .hub
        .validate_pin(&caller.partner, &pin_id, &body.pin)
        .await
        .map_err(pin_error)?;
    Ok(Json(PinValid {
        status: "VALID",
        pin_id: record.id,
        consent_expires_at: record
            .consent_expires_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    }))
}
