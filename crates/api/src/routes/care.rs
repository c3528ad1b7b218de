//! Customer care under `/admin/`: a customer's transactions by MSISDN or email and time range,
//! and refunds on a partner's behalf.

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::Response;
use dcbhub_core::transactions::{ChargeCommand, CommandKind};
use dcbhub_domain::{
    AmountLiteral, Currency, Customer, Description, ExtTransactionId, PartnerCode, Timestamp,
};
use dcbhub_store::TransactionQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{call_context, customer, tx_error};
use super::transaction::{TransactionView, answer};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestBody};
use crate::middleware::TraceContext;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(care_search))
        .routes(routes!(care_refund))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The customer's MSISDN (exactly one of `msisdn` or `email`).
    #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
    msisdn: Option<String>,
    #[param(format = Email, max_length = 254)]
    email: Option<String>,
    /// Start of the range (RFC 3339, inclusive).
    from: String,
    /// End of the range (RFC 3339, exclusive).
    to: String,
    /// Page size, 1 to 500 (default 100).
    limit: Option<u32>,
    /// The last `transactionId` of the previous page.
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CareTransaction {
    partner_code: String,
    #[serde(flatten)]
    transaction: TransactionView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CarePage {
    transactions: Vec<CareTransaction>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

fn timestamp(raw: &str, field: &'static str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(raw)
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be an RFC 3339 time")))
}

/// A customer's transactions across partners in a time range, oldest first, paginated.
#[utoipa::path(get, path = "/admin/transactions", tag = "admin", security(("adminToken" = [])),
    params(SearchQuery),
    responses((status = 200, body = CarePage), (status = 400, description = "`invalid-request`", body = ErrorBody)))]
async fn care_search(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<CarePage>, ApiError> {
    let customer: Customer = customer(q.msisdn.as_deref(), q.email.as_deref())?;
    let (from, to) = (timestamp(&q.from, "from")?, timestamp(&q.to, "to")?);
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be 1 to 500"));
    }
    let rows = state
        .store
        .search_transactions(TransactionQuery {
            customer: customer.as_str().to_owned(),
            from,
            to,
            limit,
            after: q.after,
        })
        .await
        .map_err(|e| ApiError::internal("care search", e))?;
    let codes: std::collections::HashMap<i64, String> = state
        .partners
        .list()
        .await
        .map_err(|e| ApiError::internal("care search", format!("{e:?}")))?
        .into_iter()
        .map(|p| (p.id, p.code.as_str().to_owned()))
        .collect();
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let transactions = rows
        .into_iter()
        .map(|r| CareTransaction {
            partner_code: codes.get(&r.partner_id).cloned().unwrap_or_default(),
            transaction: r.into(),
        })
        .collect();
    Ok(Json(CarePage {
        transactions,
        next_after,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CareRefundRequest {
    /// The refund's own id, unique per partner (the idempotency key).
    #[serde(rename = "extTransactionID")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    ext_transaction_id: String,
    /// Decimal string; default: what is left of the original.
    #[schema(value_type = Option<String>, example = "1.00")]
    amount: Option<AmountLiteral>,
    #[schema(min_length = 1, max_length = 100)]
    description: Option<String>,
}

impl RequestBody for CareRefundRequest {
    const FIELDS: &'static [&'static str] = &["extTransactionID", "amount", "description"];
}

/// Refunds a partner's successful charge (all that is left of it, or `amount`).
#[utoipa::path(post, path = "/admin/partners/{code}/transactions/{extTransactionID}/refund", tag = "admin",
    security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code"), ("extTransactionID" = String, Path, description = "The charge")),
    request_body = CareRefundRequest,
    responses(
        (status = 201, description = "Refunded", body = TransactionView),
        (status = 202, description = "Outcome pending", body = TransactionView),
        (status = 400, description = "`refund-exceeds-original`, `invalid-request`", body = ErrorBody),
        (status = 404, description = "`partner-not-found`, `transaction-not-found`", body = ErrorBody),
        (status = 409, description = "`ext-transaction-id-conflict`", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`", body = ErrorBody),
    ))]
async fn care_refund(
    _: Admin,
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    ApiPath((code, ext)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CareRefundRequest>,
) -> Result<Response, ApiError> {
    let code = PartnerCode::parse(&code).map_err(|_| ApiError::PartnerNotFound)?;
    let partner = state
        .partners
        .get(&code)
        .await
        .map_err(|_| ApiError::PartnerNotFound)?;
    let original_ext = ExtTransactionId::parse(&ext).map_err(|_| ApiError::TransactionNotFound)?;
    let original = state
        .hub
        .transaction(&partner, &original_ext)
        .await
        .map_err(|e| ApiError::internal("care refund", e))?
        .ok_or(ApiError::TransactionNotFound)?;
    let currency =
        Currency::parse(&original.currency).map_err(|e| ApiError::internal("care refund", e))?;
    let left = original.amount_minor - original.refunded_minor;
    let money = match &body.amount {
        Some(a) => a.to_money(currency)?,
        None => dcbhub_domain::Money::from_minor(dcbhub_domain::MinorUnits::new(left), currency)
            .map_err(|_| ApiError::RefundExceedsOriginal)?,
    };
    let customer = original
        .customer()
        .map_err(|e| ApiError::internal("care refund", e))?;
    let cmd = ChargeCommand {
        ext_transaction_id: ExtTransactionId::parse(&body.ext_transaction_id)?,
        customer,
        money,
        description: Description::parse(body.description.as_deref().unwrap_or("Refund"))?,
        product_code: None,
        pin_id: None,
        kind: CommandKind::Refund {
            original: original_ext,
        },
        tax_included: original.tax_included,
    };
    let result = state
        .hub
        .charge(&partner, cmd, &call_context(&trace))
        .await
        .map_err(tx_error)?;
    Ok(answer(result))
}
