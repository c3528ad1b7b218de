//! The admin API under `/admin/`: partners and keys. Bearer admin token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dcbhub_core::PartnerError;
use dcbhub_core::partners::NewPartnerRequest;
use dcbhub_domain::{ConsentPolicy, PartnerCode, PartnerStatus};
use dcbhub_store::{ApiKeyRecord, PartnerRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, RequestBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(partner_list, partner_create))
        .routes(routes!(partner_show))
        .routes(routes!(partner_suspend))
        .routes(routes!(partner_resume))
        .routes(routes!(key_list, key_create))
        .routes(routes!(key_revoke))
        .routes(routes!(csp_list))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CspView {
    id: String,
    /// `sandbox`, `http` or `nrf-rating`
    kind: &'static str,
    /// E.164 digit prefixes this CSP serves (the longest match wins).
    prefixes: Vec<String>,
    accepts_email: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CspList {
    csps: Vec<CspView>,
}

/// The CSPs the hub routes customers to, in configured order (set in the configuration).
#[utoipa::path(get, path = "/admin/csps", tag = "admin", security(("adminToken" = [])),
    responses((status = 200, body = CspList)))]
async fn csp_list(_: Admin, State(state): State<AppState>) -> Json<CspList> {
    let csps = state
        .hub
        .csps
        .entries()
        .iter()
        .map(|e| CspView {
            id: e.id.clone(),
            kind: e.connector.kind(),
            prefixes: e.prefixes.clone(),
            accepts_email: e.accepts_email,
        })
        .collect();
    Json(CspList { csps })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerView {
    code: String,
    name: String,
    /// `active` or `suspended`
    status: &'static str,
    /// `pin` or `none`
    consent: &'static str,
    receipts_enabled: bool,
    created_at: String,
}

impl From<PartnerRecord> for PartnerView {
    fn from(p: PartnerRecord) -> Self {
        Self {
            code: p.code.as_str().to_owned(),
            name: p.name,
            status: p.status.as_str(),
            consent: p.consent.as_str(),
            receipts_enabled: p.receipts_enabled,
            created_at: p.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerList {
    partners: Vec<PartnerView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePartner {
    /// 2 to 16 characters of `A-Z 0-9 _ -`, e.g. `NFLX`.
    code: String,
    name: String,
    /// `pin` (default) or `none`.
    consent: Option<String>,
    /// Default `true`.
    receipts: Option<bool>,
}

impl RequestBody for CreatePartner {
    const FIELDS: &'static [&'static str] = &["code", "name", "consent", "receipts"];
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedPartner {
    code: String,
    /// The first API key, shown this once.
    api_key: String,
    key_id: String,
    partner: PartnerView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    key_id: String,
    partner_code: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            key_id: k.id,
            partner_code: k.partner_code.as_str().to_owned(),
            created_at: k.created_at.to_rfc3339(),
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    /// Shown this once.
    api_key: String,
    key: KeyView,
}

fn partner_error(e: PartnerError) -> ApiError {
    match e {
        PartnerError::CodeTaken => ApiError::PartnerExists,
        PartnerError::PartnerNotFound => ApiError::PartnerNotFound,
        PartnerError::KeyNotFound => ApiError::KeyNotFound,
        PartnerError::InvalidName(reason) => ApiError::invalid("name", format!("name {reason}")),
        PartnerError::Store(e) => ApiError::internal("partner admin", e),
    }
}

fn code_param(raw: &str) -> Result<PartnerCode, ApiError> {
    PartnerCode::parse(raw).map_err(|_| ApiError::PartnerNotFound)
}

/// Lists partners.
#[utoipa::path(get, path = "/admin/partners", tag = "admin", security(("adminToken" = [])),
    responses((status = 200, body = PartnerList)))]
async fn partner_list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<PartnerList>, ApiError> {
    let partners = state.partners.list().await.map_err(partner_error)?;
    Ok(Json(PartnerList {
        partners: partners.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a partner and its first API key.
#[utoipa::path(post, path = "/admin/partners", tag = "admin", security(("adminToken" = [])),
    request_body = CreatePartner,
    responses(
        (status = 201, body = CreatedPartner),
        (status = 409, description = "`partner-exists`", body = ErrorBody),
    ))]
async fn partner_create(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreatePartner>,
) -> Result<(StatusCode, Json<CreatedPartner>), ApiError> {
    let code = PartnerCode::parse(&body.code)?;
    let consent = match body.consent.as_deref() {
        None => ConsentPolicy::Pin,
        Some(c) => ConsentPolicy::parse(c)?,
    };
    let created = state
        .partners
        .create(NewPartnerRequest {
            code,
            name: body.name,
            consent,
            receipts_enabled: body.receipts.unwrap_or(true),
        })
        .await
        .map_err(partner_error)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedPartner {
            code: created.partner.code.as_str().to_owned(),
            api_key: created.key.expose().to_owned(),
            key_id: created.key_id,
            partner: created.partner.into(),
        }),
    ))
}

/// Shows one partner.
#[utoipa::path(get, path = "/admin/partners/{code}", tag = "admin", security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code")),
    responses((status = 200, body = PartnerView), (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn partner_show(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<PartnerView>, ApiError> {
    let p = state
        .partners
        .get(&code_param(&code)?)
        .await
        .map_err(partner_error)?;
    Ok(Json(p.into()))
}

/// Suspends a partner: its keys answer 403 on every instance within seconds.
#[utoipa::path(post, path = "/admin/partners/{code}/suspend", tag = "admin", security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code")),
    responses((status = 200, body = PartnerView), (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn partner_suspend(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<PartnerView>, ApiError> {
    set_status(&state, &code, PartnerStatus::Suspended).await
}

/// Resumes a suspended partner.
#[utoipa::path(post, path = "/admin/partners/{code}/resume", tag = "admin", security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code")),
    responses((status = 200, body = PartnerView), (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn partner_resume(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<PartnerView>, ApiError> {
    set_status(&state, &code, PartnerStatus::Active).await
}

async fn set_status(
    state: &AppState,
    code: &str,
    status: PartnerStatus,
) -> Result<Json<PartnerView>, ApiError> {
    let p = state
        .partners
        .set_status(&code_param(code)?, status)
        .await
        .map_err(partner_error)?;
    Ok(Json(p.into()))
}

/// Lists a partner's keys (ids only; keys are never shown again).
#[utoipa::path(get, path = "/admin/partners/{code}/keys", tag = "admin", security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code")),
    responses((status = 200, body = KeyList), (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn key_list(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<KeyList>, ApiError> {
    let keys = state
        .partners
        .list_keys(&code_param(&code)?)
        .await
        .map_err(partner_error)?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Issues a new key for a partner (rotation); it works at once.
#[utoipa::path(post, path = "/admin/partners/{code}/keys", tag = "admin", security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code")),
    responses((status = 201, body = CreatedKey), (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn key_create(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let issued = state
        .partners
        .create_key(&code_param(&code)?)
        .await
        .map_err(partner_error)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            api_key: issued.key.expose().to_owned(),
            key: issued.record.into(),
        }),
    ))
}

/// Revokes a key; it stops working on every instance within seconds.
#[utoipa::path(delete, path = "/admin/partners/{code}/keys/{keyId}", tag = "admin", security(("adminToken" = [])),
    params(("code" = String, Path, description = "Partner code"), ("keyId" = String, Path, description = "Key id")),
    responses((status = 200, body = KeyView), (status = 404, description = "`partner-not-found` or `key-not-found`", body = ErrorBody)))]
async fn key_revoke(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((code, key_id)): ApiPath<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let r = state
        .partners
        .revoke_key(&code_param(&code)?, &key_id)
        .await
        .map_err(partner_error)?;
    Ok(Json(r.into()))
}
