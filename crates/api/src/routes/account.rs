//! `POST /account/validate` (API.md §2).

use axum::Json;
use axum::extract::{Extension, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{account_error, call_context, customer};
use crate::auth::Partner;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, RequestBody};
use crate::middleware::TraceContext;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(account_validate))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountValidateRequest {
    /// E.164, e.g. `+447700900000`. Exactly one of `msisdn` or `email`.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    msisdn: Option<String>,
    /// RFC 5322 addr-spec. Exactly one of `msisdn` or `email`.
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
}

impl RequestBody for AccountValidateRequest {
    const FIELDS: &'static [&'static str] = &["msisdn", "email"];
}

#[derive(Serialize, ToSchema)]
pub struct AccountStatus {
    /// `ACTIVE`
    status: &'static str,
    /// `postpaid` or `prepaid`
    #[serde(rename = "type")]
    account_type: &'static str,
    /// The account's billing currency (ISO 4217).
    currency: String,
}

/// Validates that the customer's billing account is in good standing for a purchase.
#[utoipa::path(post, path = "/account/validate", tag = "account", security(("apiKey" = [])),
    request_body = AccountValidateRequest,
    responses(
        (status = 200, description = "Account in good standing", body = AccountStatus),
        (status = 400, description = "`invalid-request`, `suspended-non-payment`, `account-suspended`, `dcb-barred`", body = ErrorBody),
        (status = 404, description = "`account-not-found`", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`", body = ErrorBody),
    ))]
async fn account_validate(
    State(state): State<AppState>,
    Partner(caller): Partner,
    Extension(trace): Extension<TraceContext>,
    ApiJson(body): ApiJson<AccountValidateRequest>,
) -> Result<Json<AccountStatus>, ApiError> {
    let customer = customer(body.msisdn.as_deref(), body.email.as_deref())?;
    let account = state
        .hub
        .validate_account(&caller.partner.code, &customer, &call_context(&trace))
        .await
        .map_err(account_error)?;
    Ok(Json(AccountStatus {
        status: "ACTIVE",
        account_type: account.account_type.as_str(),
        currency: account.currency.code().to_owned(),
    }))
}
