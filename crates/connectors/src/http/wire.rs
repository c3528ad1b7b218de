//! The CSP-side API on the wire (docs/csp-api.md): what the `http` connector sends and what
//! csp-sim serves. Requests refuse unknown fields; answers tolerate them, so a CSP may add
//! fields without breaking the hub. Status words are enums: an unknown word fails to parse
//! and is treated as an unreadable answer.

use dcbhub_domain::Customer;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const HEADER_API_KEY: &str = "x-api-key";
pub const HEADER_REQUEST_ID: &str = "x-request-id";
/// Prefix of the Zipkin B3 headers carried on to the CSP.
pub const B3_HEADER_PREFIX: &str = "x-b3-";

/// Error codes of the CSP-side API (the same tokens as the OTT API).
pub mod codes {
    pub const ACCOUNT_NOT_FOUND: &str = "account-not-found";
    pub const SUSPENDED_NON_PAYMENT: &str = "suspended-non-payment";
    pub const ACCOUNT_SUSPENDED: &str = "account-suspended";
    pub const DCB_BARRED: &str = "dcb-barred";
    pub const TRANSACTION_DECLINED: &str = "transaction-declined";
    pub const INSUFFICIENT_FUNDS: &str = "insufficient-funds";
    pub const TRANSACTION_NOT_FOUND: &str = "transaction-not-found";
    pub const CSP_UNAVAILABLE: &str = "csp-unavailable";
    pub const AUTHORIZATION_FAILURE: &str = "authorization-failure";
    pub const INVALID_REQUEST: &str = "invalid-request";
    pub const PARAMETER_NOT_SUPPORTED: &str = "parameter-not-supported";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported-media-type";
    pub const PAYLOAD_TOO_LARGE: &str = "payload-too-large";
    pub const NOT_FOUND: &str = "not-found";
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    pub const SYSTEM_ERROR: &str = "system-error";
}

/// `POST /account/validate`: exactly one of `msisdn` or `email`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateAccountRequest {
    /// E.164, e.g. `+447700900000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "+447700900000")]
    pub msisdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The partner asking, for CSPs that bar carrier billing per partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "NFLX")]
    pub partner_code: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AccountStatusWord {
    #[serde(rename = "ACTIVE")]
    Active,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountTypeWord {
    Prepaid,
    Postpaid,
}

/// `200` of `POST /account/validate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateAccountResponse {
    pub status: AccountStatusWord,
    #[serde(rename = "type")]
    pub account_type: AccountTypeWord,
    /// The account's billing currency (ISO 4217).
    #[schema(example = "GBP")]
    pub currency: String,
    /// The CSP's opaque, stable reference of the billing account.
    pub account_ref: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransactionType {
    Charge,
    Refund,
}

/// `POST /transaction`: a charge or a refund, idempotent on `transactionId`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionRequest {
    /// The hub's transaction id; the idempotency key.
    #[schema(example = "tx_0190c7e0a1b27c3d8e9f001122334455")]
    pub transaction_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A decimal string with the currency's minor unit, never a float.
    #[schema(example = "4.99", pattern = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")]
    pub amount: String,
    #[schema(example = "GBP")]
    pub currency: String,
    /// 1 to 100 characters, printed on the customer's bill.
    pub description: String,
    /// The CSP's charging code for the partner's product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_code: Option<String>,
    #[schema(example = "NFLX")]
    pub partner_code: String,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// For a `REFUND`: the charge being refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_transaction_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransactionStatus {
    Success,
    Failed,
    Pending,
}

/// `201` of `POST /transaction` and `200` of `GET /transaction/{transactionId}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResponse {
    pub transaction_id: String,
    pub status: TransactionStatus,
    /// The CSP's own reference; set when `status` is `SUCCESS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csp_reference: Option<String>,
    /// Why it failed, when `status` is `FAILED`: one of the decline or account codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
}

/// `POST /notification`: a message for the customer, idempotent on `notificationId`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationRequest {
    #[schema(example = "ntf_0190c7e0a1b27c3d8e9f001122334455")]
    pub notification_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub text: String,
    #[schema(example = "NFLX")]
    pub partner_code: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum NotificationStatus {
    Accepted,
}

/// `202` of `POST /notification`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationResponse {
    pub notification_id: String,
    pub status: NotificationStatus,
}

/// Every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[schema(example = "account-not-found")]
    pub code: String,
    #[schema(example = "Account not found")]
    pub message: String,
    /// The request field at fault, for `invalid-request` and `parameter-not-supported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// With `csp-unavailable`: also sent as the `Retry-After` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after_seconds: None,
        }
    }
}

/// The `(msisdn, email)` pair of a customer, exactly one of them set.
pub fn customer_fields(customer: &Customer) -> (Option<String>, Option<String>) {
    match customer {
        Customer::Msisdn(m) => (Some(m.as_str().to_owned()), None),
        Customer::Email(e) => (None, Some(e.as_str().to_owned())),
    }
}
