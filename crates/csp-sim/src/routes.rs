//! The handlers of the CSP-side API over the sandbox, plus the simulator's test endpoints.
//! Their `#[utoipa::path]` annotations are the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use dcbhub_connectors::http::wire::{
    AccountStatusWord, AccountTypeWord, ErrorBody, NotificationRequest, NotificationResponse,
    NotificationStatus, TransactionRequest, TransactionResponse, TransactionStatus,
    TransactionType, ValidateAccountRequest, ValidateAccountResponse, codes,
};
use dcbhub_connectors::{
    AccountOutcome, AccountType, ChargeKind, ChargeOutcome, DeclineReason, LedgerEntry,
    LedgerStatus, NotifyOutcome, StatusOutcome,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SimState;
use crate::convert;
use crate::error::SimError;
use crate::json::SimJson;

#[utoipa::path(
    post,
    path = "/account/validate",
    tag = "csp",
    summary = "Validate a customer's billing account",
    request_body = ValidateAccountRequest,
    responses(
        (status = 200, description = "The account is in good standing", body = ValidateAccountResponse),
        (status = 400, description = "`suspended-non-payment`, `account-suspended`, `dcb-barred`, or `invalid-request`", body = ErrorBody),
        (status = 404, description = "`account-not-found`", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn validate_account(
    State(state): State<SimState>,
    SimJson(body): SimJson<ValidateAccountRequest>,
) -> Result<Json<ValidateAccountResponse>, SimError> {
    if let Some(code) = &body.partner_code {
        convert::partner(code)?;
    }
    let customer = convert::customer(body.msisdn.as_deref(), body.email.as_deref())?;
    match state.sandbox.validate(&customer) {
        AccountOutcome::Active {
            account_type,
            currency,
            account_ref,
        } => Ok(Json(ValidateAccountResponse {
            status: AccountStatusWord::Active,
            account_type: match account_type {
                AccountType::Prepaid => AccountTypeWord::Prepaid,
                AccountType::Postpaid => AccountTypeWord::Postpaid,
            },
            currency: currency.code().to_owned(),
            account_ref,
        })),
        refused => Err(SimError::declined(
            DeclineReason::for_account(&refused).unwrap_or(DeclineReason::AccountNotFound),
        )),
    }
}

#[utoipa::path(
    post,
    path = "/transaction",
    tag = "csp",
    summary = "Charge or refund, idempotent on transactionId",
    description = "A repeat with the same `transactionId` gets the first answer and charges nothing \
        more. `503 csp-unavailable` means refused before charging: nothing was charged.",
    request_body = TransactionRequest,
    responses(
        (status = 201, description = "Charged (or refunded)", body = TransactionResponse),
        (status = 400, description = "`suspended-non-payment`, `account-suspended`, `dcb-barred`, or `invalid-request`", body = ErrorBody),
        (status = 402, description = "`transaction-declined` or `insufficient-funds`", body = ErrorBody),
        (status = 404, description = "`account-not-found`", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`, with `Retry-After`: nothing was charged", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_transaction(
    State(state): State<SimState>,
    SimJson(body): SimJson<TransactionRequest>,
) -> Result<(StatusCode, Json<TransactionResponse>), SimError> {
    let request = convert::charge_request(body)?;
    let answer = state.sandbox.charge(&request);
    if answer.answer_late {
        // Booked already; only the answer is late, as a slow CSP's would be.
        tokio::time::sleep(Duration::from_millis(state.config.late_answer_ms)).await;
    }
    match answer.outcome {
        ChargeOutcome::Success { csp_reference } => Ok((
            StatusCode::CREATED,
            Json(TransactionResponse {
                transaction_id: request.transaction_id.as_str().to_owned(),
                status: TransactionStatus::Success,
                csp_reference: Some(csp_reference),
                failure_code: None,
            }),
        )),
        ChargeOutcome::Declined(reason) => Err(SimError::declined(reason)),
        ChargeOutcome::Unavailable { retry_after_secs } => {
            Err(SimError::unavailable(retry_after_secs))
        }
        // The sandbox never answers so; treated as a refusal, which charges nothing.
        ChargeOutcome::Unknown => Err(SimError::unavailable(1)),
    }
}

#[utoipa::path(
    get,
    path = "/transaction/{transactionId}",
    tag = "csp",
    summary = "The state of a transaction, by the hub's transactionId",
    params(("transactionId" = String, Path, description = "The hub's transaction id")),
    responses(
        (status = 200, description = "`SUCCESS`, `FAILED` (with `failureCode`) or `PENDING`", body = TransactionResponse),
        (status = 404, description = "`transaction-not-found`: the CSP never booked this id", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_transaction(
    State(state): State<SimState>,
    Path(id): Path<String>,
) -> Result<Json<TransactionResponse>, SimError> {
    let id = convert::transaction_id(&id, "transactionId")
        .map_err(|_| SimError::transaction_not_found())?;
    let (status, csp_reference, failure_code) = match state.sandbox.charge_status(&id) {
        StatusOutcome::Success { csp_reference } => {
            (TransactionStatus::Success, Some(csp_reference), None)
        }
        StatusOutcome::Failed(reason) => (
            TransactionStatus::Failed,
            None,
            Some(reason.code().to_owned()),
        ),
        StatusOutcome::Pending => (TransactionStatus::Pending, None, None),
        StatusOutcome::NotFound | StatusOutcome::Unavailable => {
            return Err(SimError::transaction_not_found());
        }
    };
    Ok(Json(TransactionResponse {
        transaction_id: id.as_str().to_owned(),
        status,
        csp_reference,
        failure_code,
    }))
}

#[utoipa::path(
    post,
    path = "/notification",
    tag = "csp",
    summary = "Deliver a message to the customer, idempotent on notificationId",
    request_body = NotificationRequest,
    responses(
        (status = 202, description = "Accepted for delivery", body = NotificationResponse),
        (status = 400, description = "`invalid-request`", body = ErrorBody),
        (status = 404, description = "`account-not-found`: no such recipient", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`: try again later", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_notification(
    State(state): State<SimState>,
    SimJson(body): SimJson<NotificationRequest>,
) -> Result<(StatusCode, Json<NotificationResponse>), SimError> {
    let notification = convert::notification(body)?;
    match state.sandbox.notify(&notification) {
        NotifyOutcome::Delivered => Ok((
            StatusCode::ACCEPTED,
            Json(NotificationResponse {
                notification_id: notification.id.as_str().to_owned(),
                status: NotificationStatus::Accepted,
            }),
        )),
        NotifyOutcome::Permanent(code) if code == codes::ACCOUNT_NOT_FOUND => {
            Err(SimError::declined(DeclineReason::AccountNotFound))
        }
        NotifyOutcome::Permanent(_) => Err(SimError::invalid("msisdn", "Undeliverable")),
        NotifyOutcome::Transient(_) => Err(SimError::unavailable(5)),
    }
}

/// One booked transaction, as `GET /ledger` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryBody {
    pub transaction_id: String,
    /// The account reference (MSISDN digits), or the customer as given when unknown.
    pub account: String,
    pub partner_code: String,
    #[schema(example = "4.99")]
    pub amount: String,
    pub currency: String,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_transaction_id: Option<String>,
    pub status: TransactionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csp_reference: Option<String>,
    pub recorded_at: String,
}

impl From<LedgerEntry> for LedgerEntryBody {
    fn from(entry: LedgerEntry) -> Self {
        let (kind, original) = match entry.kind {
            ChargeKind::Charge => (TransactionType::Charge, None),
            ChargeKind::Refund { original } => {
                (TransactionType::Refund, Some(original.as_str().to_owned()))
            }
        };
        let (status, failure_code) = match entry.status {
            LedgerStatus::Success => (TransactionStatus::Success, None),
            LedgerStatus::Failed(reason) => {
                (TransactionStatus::Failed, Some(reason.code().to_owned()))
            }
        };
        Self {
            transaction_id: entry.transaction_id.as_str().to_owned(),
            account: entry.account,
            partner_code: entry.partner.as_str().to_owned(),
            amount: entry.money.to_decimal_string(),
            currency: entry.money.currency().code().to_owned(),
            kind,
            original_transaction_id: original,
            status,
            failure_code,
            csp_reference: entry.csp_reference,
            recorded_at: entry.recorded_at.to_rfc3339(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/ledger",
    tag = "simulator",
    summary = "Every transaction the simulator booked, oldest first (for tests)",
    responses((status = 200, description = "The ledger", body = Vec<LedgerEntryBody>)),
    security(("apiKey" = []))
)]
pub async fn ledger(State(state): State<SimState>) -> Json<Vec<LedgerEntryBody>> {
    Json(
        state
            .sandbox
            .ledger()
            .into_iter()
            .map(LedgerEntryBody::from)
            .collect(),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// The recipient number, exactly as messages were addressed to it.
    msisdn: Option<String>,
    /// Or the recipient email.
    email: Option<String>,
    /// Only the messages this partner caused; all partners' when absent.
    partner_code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxMessageBody {
    pub to: String,
    pub text: String,
    pub sent_at: String,
    pub partner_code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InboxBody {
    /// Newest first.
    pub messages: Vec<InboxMessageBody>,
}

#[utoipa::path(
    get,
    path = "/inbox",
    tag = "simulator",
    summary = "Messages the simulator delivered to one recipient, newest first (for tests)",
    params(InboxQuery),
    responses(
        (status = 200, description = "The recipient's messages", body = InboxBody),
        (status = 400, description = "`invalid-request`", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn inbox(
    State(state): State<SimState>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Json<InboxBody>, SimError> {
    let Query(query) = query.map_err(|_| {
        SimError::invalid("query", "Use msisdn or email, and optionally partnerCode")
    })?;
    let recipient = convert::customer(query.msisdn.as_deref(), query.email.as_deref())?;
    let partner = query
        .partner_code
        .as_deref()
        .map(convert::partner)
        .transpose()?;
    let messages = state
        .sandbox
        .inbox_all_partners(&recipient)
        .into_iter()
        .filter(|(sender, _)| partner.as_ref().is_none_or(|p| p == sender))
        .map(|(sender, message)| InboxMessageBody {
            to: message.to,
            text: message.text,
            sent_at: message.sent_at.to_rfc3339(),
            partner_code: sender.as_str().to_owned(),
        })
        .collect();
    Ok(Json(InboxBody { messages }))
}
