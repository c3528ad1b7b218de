//! The settlement admin API under `/admin/settlement/`: models, tax rates, statements (run,
//! list, show, finalise, export). Bearer admin token. The JSON shapes are those of
//! `dcbhub_core::settlement` (the CLI prints the same documents).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcbhub_core::settlement::{
    self, ExportFormat, LineDoc, ModelDoc, ModelRequest, PeriodSpec, SettlementError,
    SettlementService, StatementDoc, StatementSummaryDoc, TermsDoc, TotalsDoc,
};
use dcbhub_domain::{PartnerCode, ProductCode};
use dcbhub_store::TaxRateRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(model_list, model_create))
        .routes(routes!(tax_rate_list, tax_rate_set))
        .routes(routes!(statement_list, statement_run))
        .routes(routes!(statement_show))
        .routes(routes!(statement_finalise))
        .routes(routes!(statement_export))
}

fn service(state: &AppState) -> SettlementService {
    SettlementService::new(state.store.clone())
}

fn settlement_error(e: SettlementError) -> ApiError {
    match e {
        SettlementError::PartnerNotFound => ApiError::PartnerNotFound,
        SettlementError::StatementNotFound => ApiError::StatementNotFound,
        e @ SettlementError::StatementFinal { .. } => ApiError::StatementFinal {
            message: e.to_string(),
        },
        e @ SettlementError::OverlapsFinal { .. } => ApiError::SettlementConflict {
            message: e.to_string(),
        },
        SettlementError::NotReady(message) => ApiError::StatementNotReady { message },
        SettlementError::ModelConflict(message) => ApiError::SettlementConflict { message },
        SettlementError::Invalid { field, message } => {
            ApiError::invalid(field, format!("{field}: {message}"))
        }
        SettlementError::Store(e) => ApiError::internal("settlement", e),
    }
}

fn partner_param(raw: &str) -> Result<PartnerCode, ApiError> {
    PartnerCode::parse(raw)
        .map_err(|e| ApiError::invalid("partner", format!("partner {}", e.reason)))
}

// ---------------------------------------------------------------------------------------
// Views: the core's documents with their OpenAPI schemas. Each `From` names every field, so
// a change on either side fails to compile until both agree.

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TermsView {
    /// `revenue-share` or `flat-cost`.
    kind: &'static str,
    /// Revenue share: the partner's percentage of net revenue after tax, e.g. `"70.00"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_share: Option<String>,
    /// Flat cost: the amount per successful charge, e.g. `"0.50"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
}

impl From<TermsDoc> for TermsView {
    fn from(d: TermsDoc) -> Self {
        let TermsDoc {
            kind,
            partner_share,
            amount,
            currency,
        } = d;
        Self {
            kind,
            partner_share,
            amount,
            currency,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    id: i64,
    partner: String,
    /// `null`: the partner's default, used where no product rule is in force.
    product_code: Option<String>,
    terms: TermsView,
    /// Inclusive.
    valid_from: String,
    /// Exclusive; `null`: open-ended.
    valid_to: Option<String>,
    created_at: String,
}

impl From<ModelDoc> for ModelView {
    fn from(d: ModelDoc) -> Self {
        let ModelDoc {
            id,
            partner,
            product_code,
            terms,
            valid_from,
            valid_to,
            created_at,
        } = d;
        Self {
            id,
            partner,
            product_code,
            terms: terms.into(),
            valid_from,
            valid_to,
            created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddedModel {
    model: ModelView,
    /// The open-ended model of the same partner and product that now ends where this one
    /// starts, if any.
    superseded: Option<ModelView>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    models: Vec<ModelView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxRateView {
    csp_id: String,
    /// Percent, e.g. `"20.00"`.
    rate: String,
    /// In force from here until the CSP's next rate.
    valid_from: String,
    created_at: String,
}

impl From<TaxRateRecord> for TaxRateView {
    fn from(r: TaxRateRecord) -> Self {
        Self {
            csp_id: r.csp_id,
            rate: settlement::format_percent(r.rate_bp),
            valid_from: r.valid_from.to_rfc3339(),
            created_at: r.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxRateList {
    tax_rates: Vec<TaxRateView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    /// `charges`, or `adjustment` for refunds of charges made before the period.
    kind: &'static str,
    currency: String,
    product_code: Option<String>,
    model_id: Option<i64>,
    model: Option<TermsView>,
    /// Percent taken out as tax; `"0.00"` for transactions without tax included.
    tax_rate: String,
    charges: i64,
    refunds: i64,
    gross: String,
    refunded: String,
    /// `gross - refunded` = `tax + cspShare + partnerPayout`.
    net: String,
    tax: String,
    csp_share: String,
    partner_payout: String,
    /// Why the line could not be priced (`no-model`, `currency-mismatch`); such a
    /// statement cannot be finalised.
    issue: Option<&'static str>,
}

impl From<LineDoc> for LineView {
    fn from(d: LineDoc) -> Self {
        let LineDoc {
            kind,
            currency,
            product_code,
            model_id,
            model,
            tax_rate,
            charges,
            refunds,
            gross,
            refunded,
            net,
            tax,
            csp_share,
            partner_payout,
            issue,
        } = d;
        Self {
            kind,
            currency,
            product_code,
            model_id,
            model: model.map(Into::into),
            tax_rate,
            charges,
            refunds,
            gross,
            refunded,
            net,
            tax,
            csp_share,
            partner_payout,
            issue,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotalsView {
    currency: String,
    charges: i64,
    refunds: i64,
    gross: String,
    refunded: String,
    net: String,
    tax: String,
    csp_share: String,
    partner_payout: String,
}

impl From<TotalsDoc> for TotalsView {
    fn from(d: TotalsDoc) -> Self {
        let TotalsDoc {
            currency,
            charges,
            refunds,
            gross,
            refunded,
            net,
            tax,
            csp_share,
            partner_payout,
        } = d;
        Self {
            currency,
            charges,
            refunds,
            gross,
            refunded,
            net,
            tax,
            csp_share,
            partner_payout,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementSummaryView {
    /// Stable: running the same partner and period again keeps it.
    id: i64,
    partner: String,
    /// Inclusive.
    period_from: String,
    /// Exclusive.
    period_to: String,
    /// `DRAFT` (can be recomputed) or `FINAL` (never changes).
    status: &'static str,
    /// Grows with every computation of the draft.
    revision: i64,
    computed_at: String,
    finalised_at: Option<String>,
}

impl From<StatementSummaryDoc> for StatementSummaryView {
    fn from(d: StatementSummaryDoc) -> Self {
        let StatementSummaryDoc {
            id,
            partner,
            period_from,
            period_to,
            status,
            revision,
            computed_at,
            finalised_at,
        } = d;
        Self {
            id,
            partner,
            period_from,
            period_to,
            status,
            revision,
            computed_at,
            finalised_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementView {
    #[serde(flatten)]
    summary: StatementSummaryView,
    /// The rounding rule, in words.
    rounding: &'static str,
    lines: Vec<LineView>,
    /// Per currency: exact sums of the lines.
    totals: Vec<TotalsView>,
}

impl From<StatementDoc> for StatementView {
    fn from(d: StatementDoc) -> Self {
        let StatementDoc {
            summary,
            rounding,
            lines,
            totals,
        } = d;
        Self {
            summary: summary.into(),
            rounding,
            lines: lines.into_iter().map(Into::into).collect(),
            totals: totals.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatementList {
    /// Newest period first.
    statements: Vec<StatementSummaryView>,
}

fn statement_view(st: &dcbhub_store::Statement) -> Result<StatementView, ApiError> {
    settlement::statement_doc(st)
        .map(Into::into)
        .map_err(settlement_error)
}

fn model_view(m: &dcbhub_store::SettlementModelRecord) -> Result<ModelView, ApiError> {
    settlement::model_doc(m)
        .map(Into::into)
        .map_err(settlement_error)
}

// ---------------------------------------------------------------------------------------
// Requests.

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateModel {
    /// Partner code, e.g. `NFLX`.
    partner: String,
    /// Only for this product code (wins over the partner's default); omit for the default.
    product_code: Option<String>,
    /// The partner's percentage of net revenue after tax, e.g. `"70.00"`. Or:
    revenue_share: Option<String>,
    /// A fixed amount per successful charge, e.g. `"0.50"`, with `currency`.
    flat_cost: Option<String>,
    currency: Option<String>,
    /// `2026-01-01` (midnight in `tz`) or RFC 3339; inclusive.
    valid_from: String,
    /// Exclusive; omit for open-ended.
    valid_to: Option<String>,
    /// IANA time zone for dates; default `UTC`.
    tz: Option<String>,
}

impl RequestBody for CreateModel {
    const FIELDS: &'static [&'static str] = &[
        "partner",
        "productCode",
        "revenueShare",
        "flatCost",
        "currency",
        "validFrom",
        "validTo",
        "tz",
    ];
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetTaxRate {
    /// The CSP's id, as recorded on its transactions.
    csp_id: String,
    /// Percent, e.g. `"20.00"`.
    rate: String,
    /// `2026-01-01` (midnight in `tz`) or RFC 3339.
    valid_from: String,
    tz: Option<String>,
}

impl RequestBody for SetTaxRate {
    const FIELDS: &'static [&'static str] = &["cspId", "rate", "validFrom", "tz"];
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatement {
    partner: String,
    /// `2026-11`: the calendar month in `tz`. Or `from` and `to`.
    month: Option<String>,
    /// Inclusive: `2026-11-01` (midnight in `tz`) or RFC 3339.
    from: Option<String>,
    /// Exclusive.
    to: Option<String>,
    /// IANA time zone, e.g. `Europe/London`; default `UTC`.
    tz: Option<String>,
}

impl RequestBody for RunStatement {
    const FIELDS: &'static [&'static str] = &["partner", "month", "from", "to", "tz"];
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerFilter {
    /// Only this partner's.
    partner: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` or `json`.
    format: String,
}

// ---------------------------------------------------------------------------------------
// Handlers.

/// Lists settlement models.
#[utoipa::path(get, path = "/admin/settlement/models", tag = "admin", security(("adminToken" = [])),
    params(PartnerFilter),
    responses(
        (status = 200, body = ModelList),
        (status = 400, description = "`invalid-request`: a malformed partner code", body = ErrorBody),
        (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn model_list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PartnerFilter>,
) -> Result<Json<ModelList>, ApiError> {
    let partner = q.partner.as_deref().map(partner_param).transpose()?;
    let models = service(&state)
        .models(partner.as_ref())
        .await
        .map_err(settlement_error)?;
    Ok(Json(ModelList {
        models: models.iter().map(model_view).collect::<Result<_, _>>()?,
    }))
}

/// Adds a settlement model: a revenue share or a flat cost, for a partner or one of its
/// product codes, valid from a date. An open-ended model closes the open-ended one it
/// follows; any other overlap is refused.
#[utoipa::path(post, path = "/admin/settlement/models", tag = "admin", security(("adminToken" = [])),
    request_body = CreateModel,
    responses(
        (status = 201, body = AddedModel),
        (status = 404, description = "`partner-not-found`", body = ErrorBody),
        (status = 409, description = "`settlement-conflict`: overlaps another model, or starts in a settled period", body = ErrorBody),
    ))]
async fn model_create(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateModel>,
) -> Result<(StatusCode, Json<AddedModel>), ApiError> {
    let tz =
        settlement::time_zone(body.tz.as_deref().unwrap_or("UTC")).map_err(settlement_error)?;
    let request = ModelRequest {
        partner: partner_param(&body.partner)?,
        product: body
            .product_code
            .as_deref()
            .map(ProductCode::parse)
            .transpose()?,
        terms: settlement::parse_terms(
            body.revenue_share.as_deref(),
            body.flat_cost.as_deref(),
            body.currency.as_deref(),
        )
        .map_err(settlement_error)?,
        valid_from: settlement::parse_instant("validFrom", &body.valid_from, &tz)
            .map_err(settlement_error)?,
        valid_to: body
            .valid_to
            .as_deref()
            .map(|t| settlement::parse_instant("validTo", t, &tz))
            .transpose()
            .map_err(settlement_error)?,
    };
    let added = service(&state)
        .add_model(request)
        .await
        .map_err(settlement_error)?;
    Ok((
        StatusCode::CREATED,
        Json(AddedModel {
            model: model_view(&added.model)?,
            superseded: added.superseded.as_ref().map(model_view).transpose()?,
        }),
    ))
}

/// Lists the CSPs' tax rates.
#[utoipa::path(get, path = "/admin/settlement/tax-rates", tag = "admin", security(("adminToken" = [])),
    responses((status = 200, body = TaxRateList)))]
async fn tax_rate_list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<TaxRateList>, ApiError> {
    let rates = service(&state)
        .tax_rates()
        .await
        .map_err(settlement_error)?;
    Ok(Json(TaxRateList {
        tax_rates: rates.into_iter().map(Into::into).collect(),
    }))
}

/// Sets a CSP's tax rate from a date on (taken out of transactions with tax included before
/// the revenue share).
#[utoipa::path(post, path = "/admin/settlement/tax-rates", tag = "admin", security(("adminToken" = [])),
    request_body = SetTaxRate,
    responses(
        (status = 201, body = TaxRateView),
        (status = 409, description = "`settlement-conflict`: starts in a settled period", body = ErrorBody),
    ))]
async fn tax_rate_set(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetTaxRate>,
) -> Result<(StatusCode, Json<TaxRateView>), ApiError> {
    let tz =
        settlement::time_zone(body.tz.as_deref().unwrap_or("UTC")).map_err(settlement_error)?;
    let from =
        settlement::parse_instant("validFrom", &body.valid_from, &tz).map_err(settlement_error)?;
    let rate = service(&state)
        .set_tax_rate(&body.csp_id, &body.rate, from)
        .await
        .map_err(settlement_error)?;
    Ok((StatusCode::CREATED, Json(rate.into())))
}

/// Lists statements.
#[utoipa::path(get, path = "/admin/settlement/statements", tag = "admin", security(("adminToken" = [])),
    params(PartnerFilter),
    responses(
        (status = 200, body = StatementList),
        (status = 400, description = "`invalid-request`: a malformed partner code", body = ErrorBody),
        (status = 404, description = "`partner-not-found`", body = ErrorBody)))]
async fn statement_list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PartnerFilter>,
) -> Result<Json<StatementList>, ApiError> {
    let partner = q.partner.as_deref().map(partner_param).transpose()?;
    let list = service(&state)
        .list(partner.as_ref())
        .await
        .map_err(settlement_error)?;
    Ok(Json(StatementList {
        statements: list
            .iter()
            .map(|h| settlement::summary_doc(h).into())
            .collect(),
    }))
}

/// Runs the statement of a partner and period: creates the draft, or recomputes it (same
/// id, lines replaced). A FINAL statement is never recomputed.
#[utoipa::path(post, path = "/admin/settlement/statements", tag = "admin", security(("adminToken" = [])),
    request_body = RunStatement,
    responses(
        (status = 200, body = StatementView),
        (status = 404, description = "`partner-not-found`", body = ErrorBody),
        (status = 409, description = "`statement-final`, or `settlement-conflict`: the period overlaps a FINAL statement", body = ErrorBody),
    ))]
async fn statement_run(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RunStatement>,
) -> Result<Json<StatementView>, ApiError> {
    let partner = partner_param(&body.partner)?;
    let period = PeriodSpec {
        month: body.month.as_deref(),
        from: body.from.as_deref(),
        to: body.to.as_deref(),
        tz: body.tz.as_deref(),
    }
    .resolve()
    .map_err(settlement_error)?;
    let st = service(&state)
        .run(&partner, period)
        .await
        .map_err(settlement_error)?;
    Ok(Json(statement_view(&st)?))
}

/// Shows a statement with its lines and totals.
#[utoipa::path(get, path = "/admin/settlement/statements/{id}", tag = "admin", security(("adminToken" = [])),
    params(("id" = i64, Path, description = "Statement id")),
    responses((status = 200, body = StatementView), (status = 404, description = "`statement-not-found`", body = ErrorBody)))]
async fn statement_show(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<StatementView>, ApiError> {
    let st = service(&state)
        .statement(id)
        .await
        .map_err(settlement_error)?;
    Ok(Json(statement_view(&st)?))
}

/// Makes a draft FINAL: once its period is over, none of its transactions is pending, every
/// line is priced and a recomputation gives exactly its lines. Finalising again is a no-op.
#[utoipa::path(post, path = "/admin/settlement/statements/{id}/finalise", tag = "admin", security(("adminToken" = [])),
    params(("id" = i64, Path, description = "Statement id")),
    responses(
        (status = 200, body = StatementView),
        (status = 404, description = "`statement-not-found`", body = ErrorBody),
        (status = 409, description = "`statement-not-ready` (the message says why), or `settlement-conflict`", body = ErrorBody),
    ))]
async fn statement_finalise(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<StatementView>, ApiError> {
    let st = service(&state)
        .finalise(id)
        .await
        .map_err(settlement_error)?;
    Ok(Json(statement_view(&st)?))
}

/// Exports a statement as CSV (a row per line, then a `total` row per currency) or JSON.
#[utoipa::path(get, path = "/admin/settlement/statements/{id}/export", tag = "admin", security(("adminToken" = [])),
    params(("id" = i64, Path, description = "Statement id"), ExportQuery),
    responses(
        (status = 200, description = "The statement file", content(
            (String = "text/csv"),
            (StatementView = "application/json"),
        )),
        (status = 400, description = "`invalid-request`: unknown format", body = ErrorBody),
        (status = 404, description = "`statement-not-found`", body = ErrorBody),
    ))]
async fn statement_export(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = ExportFormat::parse(&q.format).map_err(settlement_error)?;
    let st = service(&state)
        .statement(id)
        .await
        .map_err(settlement_error)?;
    let body = settlement::export(&st, format).map_err(settlement_error)?;
    let extension = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"statement-{id}.{extension}\""),
            ),
        ],
        body,
    )
        .into_response())
}
