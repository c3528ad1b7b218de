//! The OCS's JSON on the wire (`/work/shared/reference/nrf-rating-ocs.md`): what the
//! `nrf-rating` connector sends (exactly the documented fields) and what it reads back
//! (tolerant of extra fields; the fields it relies on are checked by the mapping).

use serde::{Deserialize, Serialize};

pub const RATING_PATH: [&str; 3] = ["nrf-rating", "v1", "ratingdata"];
pub const SERVICE_PATH: [&str; 3] = ["serviceInventoryManagement", "v2", "service"];
pub const BALANCE_PATH: [&str; 3] = ["balanceManagement", "v1", "service"];
pub const ADJUSTMENT_PATH: [&str; 3] = ["balanceManagement", "v1", "balanceAdjustment"];

/// Subscription ids name the subscriber by MSISDN digits: `msisdn-491700000002`.
pub const MSISDN_SUBSCRIPTION_PREFIX: &str = "msisdn-";
/// Bucket units of money.
pub const MONEY_UNITS: &str = "cents";
pub const RESULT_SUCCESS: &str = "SUCCESS";

/// Causes (3GPP `ProblemDetails.cause`) and reason texts (`reason` of the JSON error,
/// `title` of problem+json) the mapping recognises.
pub mod problems {
    pub const CAUSE_QUOTA_LIMIT_REACHED: &str = "QUOTA_LIMIT_REACHED";
    pub const TEXT_INSUFFICIENT_CREDIT: &str = "insufficient credit";
    pub const TEXT_RESTRICTED: &str = "restrictions or limitations related to the subscriber";
    /// Spelled `END_USER_REQUEST_DENIED` or `END_USER REQUEST_DENIED` depending on the
    /// version; compared with spaces and underscores made equal.
    pub const CAUSE_END_USER_REQUEST_DENIED: &str = "END_USER_REQUEST_DENIED";
    pub const CAUSES_UNKNOWN_SUBSCRIBER: [&str; 2] = ["USER_UNKNOWN", "SUBSCRIPTION_NOT_FOUND"];
    pub const TEXT_UNKNOWN_SUBSCRIBER: &str = "subscriber identity is unrecognized";
    pub const CAUSE_UNKNOWN_REF: &str = "RATING_DATA_REF_UNKNOWN";
    pub const TEXT_UNKNOWN_REF: &str = "rating data ref is not recognized";
    /// TMF answers for an unknown service, product or bucket: "No such Service inventory
    /// item", "No such Product/Service inventory item found", ….
    pub const TEXT_NO_SUCH: &str = "no such";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequestSubType {
    Reserve,
    Debit,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NfConsumerIdentification {
    pub node_functionality: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUnits {
    pub service_specific_unit: u64,
}

/// One `serviceRating` entry of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRatingRequest {
    pub service_id: u32,
    pub rating_group: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_unit: Option<ServiceUnits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_unit: Option<ServiceUnits>,
    pub request_sub_type: RequestSubType,
}

/// `POST /nrf-rating/v1/ratingdata` (PEC `RESERVE`) and
/// `POST /nrf-rating/v1/ratingdata/{ref}/release` (`DEBIT` or `RELEASE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatingDataRequest {
    pub nf_consumer_identification: NfConsumerIdentification,
    pub invocation_time_stamp: String,
    pub invocation_sequence_number: u32,
    pub subscription_id: Vec<String>,
    pub one_time_event: bool,
    /// Always `PEC`: the one-shot `IEC` silently drains a smaller balance.
    pub one_time_event_type: &'static str,
    pub service_context_id: String,
    pub service_rating: Vec<ServiceRatingRequest>,
}

/// One `serviceRating` entry of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRatingResult {
    #[serde(default)]
    pub granted_unit: Option<ServiceUnits>,
    #[serde(default)]
    pub consumed_unit: Option<ServiceUnits>,
    #[serde(default)]
    pub result_code: Option<String>,
}

/// `201` of a reserve, `200` of a debit or release.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RatingDataResponse {
    #[serde(default)]
    pub service_rating: Vec<ServiceRatingResult>,
}

/// A reference to a TMF entity: the OCS writes the service's product as a bare id; other
/// TMF implementations write `{"id": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EntityRef {
    Id(String),
    Object { id: String },
}

impl EntityRef {
    pub fn id(&self) -> &str {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

/// `200` of `GET /serviceInventoryManagement/v2/service/{msisdn}` (TMF638).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub product: Option<EntityRef>,
    pub is_service_enabled: bool,
}

/// TMF638 service states that mean the subscriber no longer exists for billing.
pub const GONE_STATES: [&str; 2] = ["terminated", "inactive"];
/// The other valid TMF638 states (rating ignores the state).
pub const LIVE_STATES: [&str; 4] = ["feasibilityChecked", "designed", "reserved", "active"];

/// A TMF654 quantity: a decimal string in major units, e.g. `{"amount":"5","units":"cents"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    pub units: String,
    pub amount: String,
}

/// `200` of `GET /balanceManagement/v1/service/{msisdn}/accumulatedBalance`. An empty
/// `totalBalance` means zero or less.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccumulatedBalance {
    pub total_balance: Vec<Quantity>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProductRef {
    pub id: String,
}

/// `POST /balanceManagement/v1/balanceAdjustment` (TMF654): a positive amount credits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BalanceAdjustment {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: String,
    pub reason: &'static str,
    pub amount: Quantity,
    pub product: ProductRef,
}

/// The adjustment type of a refund, one the OCS's balance log knows.
pub const ADJUSTMENT_TYPE: &str = "adjustment";
pub const REFUND_REASON: &str = "dcbhub-refund";

/// An error answer: the OCS's JSON form (`{"@type":"Error","code":"","reason":…,
/// "message":…,"status":"403"}`) or problem+json (`{"type":…,"title":…,"cause":…,
/// "status":403}`); both read into one shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}
