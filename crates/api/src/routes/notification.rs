//! `POST /notification` and `GET /notification/{notificationId}` (API.md §7).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use dcbhub_core::notifications::{MessageType, NotificationRequest};
use dcbhub_domain::ExtTransactionId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{call_context, customer, notification_error};
use crate::auth::Partner;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, RequestBody};
use crate::middleware::TraceContext;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(notification_create))
        .routes(routes!(notification_get))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationCreateRequest {
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    msisdn: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// 1 to 640 characters.
    #[schema(min_length = 1, max_length = 640)]
    message: String,
    /// `PURCHASE_CONFIRMATION`, `SERVICE_UPDATE` or `GENERIC` (default).
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "extTransactionID")]
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    ext_transaction_id: Option<String>,
    /// BCP 47 language tag, e.g. `de-DE`.
    locale: Option<String>,
}

impl RequestBody for NotificationCreateRequest {
    const FIELDS: &'static [&'static str] = &[
        "msisdn",
        "email",
        "message",
        "type",
        "extTransactionID",
        "locale",
    ];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationQueued {
    notification_id: String,
    /// `QUEUED`
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    notification_id: String,
    /// `QUEUED`, `SENT` or `FAILED`
    status: &'static str,
    /// `csp`, `smpp`, `smtp` or `sandbox`
    channel: String,
    attempts: u32,
    updated_at: String,
}

fn locale(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(l) => {
            let ok = !l.is_empty()
                && l.len() <= 35
                && l.split('-').all(|p| {
                    !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if ok {
                Ok(Some(l))
            } else {
                Err(ApiError::invalid("locale", "locale must be a BCP 47 tag"))
            }
        }
    }
}

/// Sends a message to an active customer, through the channel of the customer's CSP.
#[utoipa::path(post, path = "/notification", tag = "notification", security(("apiKey" = [])),
    request_body = NotificationCreateRequest,
    responses(
        (status = 202, description = "Queued for delivery", body = NotificationQueued),
        (status = 400, description = "`invalid-request`, account errors as /account/validate", body = ErrorBody),
        (status = 404, description = "`account-not-found`", body = ErrorBody),
        (status = 429, description = "`too-many-requests`: per partner and recipient cap", body = ErrorBody),
        (status = 503, description = "`csp-unavailable`", body = ErrorBody),
    ))]
async fn notification_create(
    State(state): State<AppState>,
    Partner(caller): Partner,
    Extension(trace): Extension<TraceContext>,
    ApiJson(body): ApiJson<NotificationCreateRequest>,
) -> Result<(StatusCode, Json<NotificationQueued>), ApiError> {
    let customer = customer(body.msisdn.as_deref(), body.email.as_deref())?;
    let len = body.message.chars().count();
    if !(1..=640).contains(&len) || body.message.trim().is_empty() {
        return Err(ApiError::invalid(
            "message",
            "message must be 1 to 640 characters",
        ));
    }
    let kind = match body.kind.as_deref() {
        None => MessageType::Generic,
        Some(k) => MessageType::parse(k).ok_or_else(|| {
            ApiError::invalid(
                "type",
                "type must be PURCHASE_CONFIRMATION, SERVICE_UPDATE or GENERIC",
            )
        })?,
    };
    let req = NotificationRequest {
        customer,
        text: body.message,
        kind,
        ext_transaction_id: body
            .ext_transaction_id
            .as_deref()
            .map(ExtTransactionId::parse)
            .transpose()?,
        locale: locale(body.locale)?,
    };
    let record = state
        .hub
        .send_notification(&caller.partner, req, &call_context(&trace))
        .await
        .map_err(notification_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(NotificationQueued {
            notification_id: record.id,
            status: "QUEUED",
        }),
    ))
}

/// The delivery state of one of the partner's notifications.
#[utoipa::path(get, path = "/notification/{notificationId}", tag = "notification", security(("apiKey" = [])),
    params(("notificationId" = String, Path, description = "The hub's id, `ntf_…`")),
    responses(
        (status = 200, body = NotificationView),
        (status = 404, description = "`notification-not-found` (also another partner's)", body = ErrorBody),
    ))]
async fn notification_get(
    State(state): State<AppState>,
    Partner(caller): Partner,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NotificationView>, ApiError> {
    let record = state
        .hub
        .notification(&caller.partner, &id)
        .await
        .map_err(|e| ApiError::internal("notification lookup", e))?
        .ok_or(ApiError::NotificationNotFound)?;
    Ok(Json(NotificationView {
        notification_id: record.id,
        status: record.status.as_str(),
        channel: record.channel,
        attempts: record.attempts,
        updated_at: record.updated_at.to_rfc3339(),
    }))
}
