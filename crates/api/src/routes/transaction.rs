//! `POST /transaction` and `GET /transaction/{extTransactionID}` (API.md §5–6).

use axum::extract::{Extension, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dcbhub_core::transactions::{ChargeCommand, CommandKind, TxAnswer};
use dcbhub_domain::{
    AmountLiteral, Currency, Description, ExtTransactionId, MinorUnits, PinId, ProductCode,
};
use dcbhub_store::{TransactionRecord, TxStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{call_context, customer, failure_error, tx_error};
use crate::auth::Partner;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, RequestBody};
use crate::middleware::TraceContext;
use crate::respond::JsonAnswer;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transaction_create))
        .routes(routes!(transaction_get))
}

const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRequest {
    /// The partner's id of this transaction: the idempotency key.
    #[serde(rename = "extTransactionID")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    ext_transaction_id: String,
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    msisdn: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// Decimal string (or JSON number) in the currency's units, e.g. `"4.99"`.
    #[schema(value_type = String, example = "4.99")]
    amount: AmountLiteral,
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
    /// 1 to 100 characters; printed on the customer's bill.
    #[schema(min_length = 1, max_length = 100)]
    description: String,
    #[schema(pattern = "^[!-~]{1,15}$")]
    product_code: Option<String>,
    pin_id: Option<String>,
    /// `CHARGE` (default) or `REFUND`.
    #[serde(rename = "type")]
    tx_type: Option<String>,
    /// For `REFUND`: the charge being refunded.
    #[serde(rename = "originalExtTransactionID")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    original_ext_transaction_id: Option<String>,
    /// Default `true`.
    tax_included: Option<bool>,
}

impl RequestBody for TransactionRequest {
    const FIELDS: &'static [&'static str] = &[
        "extTransactionID",
        "msisdn",
        "email",
        "amount",
        "currency",
        "description",
        "productCode",
        "pinId",
        "type",
        "originalExtTransactionID",
        "taxIncluded",
    ];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionView {
    #[serde(rename = "extTransactionID")]
    ext_transaction_id: String,
    transaction_id: String,
    /// `CHARGE` or `REFUND`
    #[serde(rename = "type")]
    tx_type: &'static str,
    /// `PENDING`, `SUCCESS` or `FAILED`
    status: &'static str,
    amount: String,
    currency: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_code: Option<String>,
    refunded_amount: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    csp_reference: Option<String>,
    /// For `FAILED`: why, e.g. `insufficient-funds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_code: Option<String>,
    #[serde(
        rename = "originalExtTransactionID",
        skip_serializing_if = "Option::is_none"
    )]
    original_ext_transaction_id: Option<String>,
    tax_included: bool,
    created_at: String,
    updated_at: String,
}

impl From<TransactionRecord> for TransactionView {
    fn from(r: TransactionRecord) -> Self {
        let created_at = r.created_at.to_rfc3339();
        // Most answers show a row written once.
        let updated_at = if r.updated_at == r.created_at {
            created_at.clone()
        } else {
            r.updated_at.to_rfc3339()
        };
        let currency = Currency::parse(&r.currency).ok();
        let format = |minor: i64| match currency {
            Some(c) => MinorUnits::new(minor).format(c),
            None => minor.to_string(),
        };
        Self {
            amount: format(r.amount_minor),
            refunded_amount: format(r.refunded_minor),
            ext_transaction_id: r.ext_transaction_id,
            transaction_id: r.id,
            tx_type: r.tx_type.as_str(),
            status: r.status.as_str(),
            currency: r.currency,
            description: r.description,
            product_code: r.product_code,
            csp_reference: r.csp_reference,
            failure_code: r.failure_code,
            original_ext_transaction_id: r.original_ext_transaction_id,
            tax_included: r.tax_included,
            created_at,
            updated_at,
        }
    }
}

fn command(body: TransactionRequest) -> Result<ChargeCommand, ApiError> {
    let customer = customer(body.msisdn.as_deref(), body.email.as_deref())?;
    let currency = Currency::parse(&body.currency)?;
    let kind = match (
        body.tx_type.as_deref(),
        body.original_ext_transaction_id.as_deref(),
    ) {
        (None | Some("CHARGE"), None) => CommandKind::Charge,
        (None | Some("CHARGE"), Some(_)) => {
            return Err(ApiError::invalid(
                "originalExtTransactionID",
                "only a REFUND names an original",
            ));
        }
        (Some("REFUND"), Some(original)) => CommandKind::Refund {
            original: ExtTransactionId::parse_field(original, "originalExtTransactionID")?,
        },
        (Some("REFUND"), None) => {
            return Err(ApiError::invalid(
                "originalExtTransactionID",
                "a REFUND needs originalExtTransactionID",
            ));
        }
        (Some(_), _) => return Err(ApiError::invalid("type", "type must be CHARGE or REFUND")),
    };
    Ok(ChargeCommand {
        ext_transaction_id: ExtTransactionId::parse(&body.ext_transaction_id)?,
        customer,
        money: body.amount.to_money(currency)?,
        description: Description::parse(&body.description)?,
        product_code: body
            .product_code
            .as_deref()
            .map(ProductCode::parse)
            .transpose()?,
        pin_id: body
            .pin_id
            .as_deref()
            .map(|p| PinId::parse(p).map_err(|_| ApiError::InvalidConsent))
            .transpose()?,
        kind,
        tax_included: body.tax_included.unwrap_or(true),
    })
}

pub(super) fn answer(a: TxAnswer) -> Response {
    let shown = match a.record.status {
        TxStatus::Success => Some(StatusCode::CREATED),
        TxStatus::Pending => Some(StatusCode::ACCEPTED),
        TxStatus::Failed => None,
    };
    let mut response = match shown {
        Some(status) => (status, JsonAnswer(TransactionView::from(a.record))).into_response(),
        None => failure_error(a.record.failure_code.as_deref()).into_response(),
    };
    if a.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Charges the customer (or refunds a charge), exactly once per `extTransactionID`.
#[utoipa::path(post, path = "/transaction", tag = "transaction", security(("apiKey" = [])),
    request_body = TransactionRequest,
    responses(
        (status = 201, description = "Charged (`SUCCESS`); a repeat carries `Idempotent-Replayed: true`", body = TransactionView),
        (status = 202, description = "Outcome unknown yet (`PENDING`); settled later with the CSP", body = TransactionView),
        (status = 400, description = "`invalid-request`, `currency-not-supported`, `consent-required`, `invalid-consent`, `refund-exceeds-original`, account errors", body = ErrorBody),
        (status = 402, description = "`transaction-declined`, `insufficient-funds`, `spending-limit-exceeded`", body = ErrorBody),
        (status = 404, description = "`account-not-found`, `transaction-not-found` (refund of an unknown original)", body = ErrorBody),
        (status = 409, description = "`ext-transaction-id-conflict`", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`: nothing was charged", body = ErrorBody),
    ))]
async fn transaction_create(
    State(state): State<AppState>,
    Partner(caller): Partner,
    Extension(trace): Extension<TraceContext>,
    ApiJson(body): ApiJson<TransactionRequest>,
) -> Result<Response, ApiError> {
    let cmd = command(body)?;
    let answer_ = state
        .hub
        .charge(&caller.partner, cmd, &call_context(&trace))
        .await
        .map_err(tx_error)?;
    Ok(answer(answer_))
}

/// The current state of one of the partner's transactions.
#[utoipa::path(get, path = "/transaction/{extTransactionID}", tag = "transaction", security(("apiKey" = [])),
    params(("extTransactionID" = String, Path, description = "The partner's id of the transaction")),
    responses(
        (status = 200, body = TransactionView),
        (status = 404, description = "`transaction-not-found` (also another partner's)", body = ErrorBody),
    ))]
async fn transaction_get(
    State(state): State<AppState>,
    Partner(caller): Partner,
    ApiPath(ext): ApiPath<String>,
) -> Result<JsonAnswer<TransactionView>, ApiError> {
    let ext = ExtTransactionId::parse(&ext).map_err(|_| ApiError::TransactionNotFound)?;
    let record = state
        .hub
        .transaction(&caller.partner, &ext)
        .await
        .map_err(|e| ApiError::internal("transaction lookup", e))?
        .ok_or(ApiError::TransactionNotFound)?;
    Ok(JsonAnswer(TransactionView::from(record)))
}
