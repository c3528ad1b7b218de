//! Settlement as the CLI and the admin API see it: parsing what an operator types (periods
//! in a time zone, percentages, flat costs), running and finalising statements through the
//! store, and rendering them as JSON or CSV. The amounts themselves are computed by the store
//! (aggregating queries, integer minor units, one half-even rounding per line).

use std::sync::Arc;

use dcbhub_domain::{Currency, MinorUnits, Money, PartnerCode, ProductCode, Timestamp};
use dcbhub_store::{
    FinaliseOutcome, MAX_TAX_BP, ModelAddOutcome, ModelTerms, NewSettlementModel, NewTaxRate,
    Period, RunOutcome, SettlementModelRecord, Statement, StatementHeader, Store, StoreError,
    TaxRateOutcome, TaxRateRecord,
};
use serde::Serialize;

/// The rounding rule, as stated in every exported statement.
pub const ROUNDING_RULE: &str = "Amounts are integers in the currency's minor unit. Per line, \
    net ex tax = net x 10000 / (10000 + tax rate bp) and, for a revenue share, payout = net x \
    share bp / (10000 + tax rate bp) are each rounded once, half to even, from the line's exact \
    sums; tax and the CSP's share are the exact remainders; totals are exact sums of the lines.";

#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    #[error("no such partner")]
    PartnerNotFound,
    #[error("no such statement")]
    StatementNotFound,
    #[error("statement {id} is FINAL: it cannot be recomputed or changed")]
    StatementFinal { id: i64 },
    /// The period overlaps a FINAL statement of the partner.
    #[error("the period overlaps FINAL statement {id} of the partner")]
    OverlapsFinal { id: i64 },
    /// The draft cannot be finalised yet; the message says why and what to do.
    #[error("{0}")]
    NotReady(String),
    /// A model or tax rate that would clash with another or with a settled period.
    #[error("{0}")]
    ModelConflict(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> SettlementError {
    SettlementError::Invalid {
        field,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing what an operator types.

/// A time zone by IANA name (`Europe/London`, `UTC`), from the system's database or, where
/// the system has none, the copy built into the binary.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, SettlementError> {
    jiff::tz::TimeZone::get(name).map_err(|_| invalid("tz", format!("unknown time zone {name:?}")))
}

fn midnight(
    field: &'static str,
    date: jiff::civil::Date,
    tz: &jiff::tz::TimeZone,
) -> Result<Timestamp, SettlementError> {
    date.to_zoned(tz.clone())
        .map(|z| Timestamp::from_unix_millis(z.timestamp().as_millisecond()))
        .map_err(|e| invalid(field, e.to_string()))
}

/// An instant: RFC 3339 (`2026-11-01T00:00:00Z`), or a date (`2026-11-01`) meaning its
/// midnight in `tz`.
pub fn parse_instant(
    field: &'static str,
    text: &str,
    tz: &jiff::tz::TimeZone,
) -> Result<Timestamp, SettlementError> {
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    let date: jiff::civil::Date = text.parse().map_err(|_| {
        invalid(
            field,
            format!("{text:?} is neither a date (2026-11-01) nor RFC 3339"),
        )
    })?;
    midnight(field, date, tz)
}

/// The calendar month `YYYY-MM` in `tz`, as `[first midnight, next month's first midnight)`.
pub fn month_period(month: &str, tz: &jiff::tz::TimeZone) -> Result<Period, SettlementError> {
    let bad = || invalid("month", format!("{month:?} is not a month like 2026-11"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let first = jiff::civil::Date::new(
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        1,
    )
    .map_err(|_| bad())?;
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    Period::new(midnight("month", first, tz)?, midnight("month", next, tz)?).ok_or_else(bad)
}

/// Which period an operator asked for: a month, or `from` and `to`, in a time zone (UTC by
/// default).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeriodSpec<'a> {
    pub month: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub tz: Option<&'a str>,
}

impl PeriodSpec<'_> {
    pub fn resolve(&self) -> Result<Period, SettlementError> {
        let tz = time_zone(self.tz.unwrap_or("UTC"))?;
        match (self.month, self.from, self.to) {
            (Some(month), None, None) => month_period(month, &tz),
            (None, Some(from), Some(to)) => Period::new(
                parse_instant("from", from, &tz)?,
                parse_instant("to", to, &tz)?,
            )
            .ok_or_else(|| invalid("to", "must be after from")),
            _ => Err(invalid("month", "give either a month, or both from and to")),
        }
    }
}

/// A percentage with at most two decimals (`70`, `70.5`, `70.00`) as basis points, at most
/// `max_bp`.
pub fn parse_percent(field: &'static str, text: &str, max_bp: u32) -> Result<u32, SettlementError> {
    let bad = || invalid(field, format!("{text:?} is not a percentage like 70.00"));
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || int.len() > 6
        || !digits(int)
        || (int.len() > 1 && int.starts_with('0'))
        || frac.len() > 2
        || !digits(frac)
        || text.ends_with('.')
    {
        return Err(bad());
    }
    let int: u32 = int.parse().map_err(|_| bad())?;
    let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = int * 100 + frac;
    if bp > max_bp {
        return Err(invalid(
            field,
            format!("must be at most {}", format_percent(max_bp)),
        ));
    }
    Ok(bp)
}

/// `7000` as `"70.00"`.
pub fn format_percent(bp: u32) -> String {
    format!("{}.{:02}", bp / 100, bp % 100)
}

/// A model's terms from `--revenue-share 70.00`, or `--flat-cost 0.50 --currency GBP`.
pub fn parse_terms(
    revenue_share: Option<&str>,
    flat_cost: Option<&str>,
    currency: Option<&str>,
) -> Result<ModelTerms, SettlementError> {
    match (revenue_share, flat_cost, currency) {
        (Some(share), None, None) => Ok(ModelTerms::RevenueShare {
            partner_share_bp: parse_percent("revenueShare", share, dcbhub_store::FULL_BP)?,
        }),
        (None, Some(amount), Some(currency)) => {
            let currency =
                Currency::parse(currency).map_err(|e| invalid("currency", e.to_string()))?;
            let amount_minor = parse_flat_amount(amount, currency)?;
            Ok(ModelTerms::FlatCost {
                amount_minor,
                currency: currency.code().to_owned(),
            })
        }
        (None, Some(_), None) => Err(invalid("currency", "a flat cost needs its currency")),
        (None, None, Some(_)) => Err(invalid("flatCost", "a currency goes with a flat cost")),
        _ => Err(invalid(
            "revenueShare",
            "give either a revenue share, or a flat cost and its currency",
        )),
    }
}

/// A flat cost in the currency's decimal form; unlike a charge, zero is allowed.
fn parse_flat_amount(text: &str, currency: Currency) -> Result<i64, SettlementError> {
    let zero = text == "0"
        || text.strip_prefix("0.").is_some_and(|f| {
            !f.is_empty()
                && f.len() <= usize::from(currency.minor_unit())
                && f.bytes().all(|b| b == b'0')
        });
    if zero {
        return Ok(0);
    }
    Money::parse(text, currency)
        .map(|m| m.amount().get())
        .map_err(|e| invalid("flatCost", format!("{} {}", e.field, e.reason)))
}

// ---------------------------------------------------------------------------------------
// Operations.

/// What an operator asks to add.
#[derive(Clone, Debug)]
pub struct ModelRequest {
    pub partner: PartnerCode,
    pub product: Option<ProductCode>,
    pub terms: ModelTerms,
    pub valid_from: Timestamp,
    pub valid_to: Option<Timestamp>,
}

/// A model added, and the open-ended one it closed, if any.
#[derive(Clone, Debug)]
pub struct AddedModel {
    pub model: SettlementModelRecord,
    pub superseded: Option<SettlementModelRecord>,
}

/// Settlement operations, shared by the CLI and the admin API.
#[derive(Clone)]
pub struct SettlementService {
    store: Arc<dyn Store>,
}

impl SettlementService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn partner_id(&self, code: &PartnerCode) -> Result<i64, SettlementError> {
        self.store
            .partner_by_code(code)
            .await
            .map_err(SettlementError::Store)?
            .map(|p| p.id)
            .ok_or(SettlementError::PartnerNotFound)
    }

    pub async fn add_model(&self, req: ModelRequest) -> Result<AddedModel, SettlementError> {
        if req.valid_to.is_some_and(|to| to <= req.valid_from) {
            return Err(invalid("validTo", "must be after validFrom"));
        }
        let partner_id = self.partner_id(&req.partner).await?;
        let outcome = self
            .store
            .add_settlement_model(NewSettlementModel {
                partner_id,
                product_code: req.product.map(|p| p.as_str().to_owned()),
                terms: req.terms,
                valid_from: req.valid_from,
                valid_to: req.valid_to,
            })
            .await
            .map_err(SettlementError::Store)?;
        match outcome {
            ModelAddOutcome::Added { model, superseded } => Ok(AddedModel { model, superseded }),
            ModelAddOutcome::Overlaps { existing } => Err(SettlementError::ModelConflict(format!(
                "model {} of {} ({}) is in force for part of that range; choose a range after it, \
                 or start an open-ended model after an open-ended one to supersede it",
                existing.id,
                existing.partner_code,
                existing.product_code.as_deref().unwrap_or("default"),
            ))),
            ModelAddOutcome::InFinalPeriod { final_until } => {
                Err(SettlementError::ModelConflict(format!(
                    "periods up to {final_until} are settled by FINAL statements; a model can \
                     start at {final_until} at the earliest"
                )))
            }
        }
    }

    pub async fn models(
        &self,
        partner: Option<&PartnerCode>,
    ) -> Result<Vec<SettlementModelRecord>, SettlementError> {
        let partner_id = match partner {
            Some(code) => Some(self.partner_id(code).await?),
            None => None,
        };
        self.store
            .list_settlement_models(partner_id)
            .await
            .map_err(SettlementError::Store)
    }

    /// Sets a CSP's tax rate (`"20.00"` percent) from `valid_from` on.
    pub async fn set_tax_rate(
        &self,
        csp_id: &str,
        rate: &str,
        valid_from: Timestamp,
    ) -> Result<TaxRateRecord, SettlementError> {
        let csp_id = csp_id.trim();
        if csp_id.is_empty() || csp_id.len() > 64 || csp_id.chars().any(char::is_control) {
            return Err(invalid("cspId", "must be 1 to 64 characters"));
        }
        let rate_bp = parse_percent("rate", rate, MAX_TAX_BP)?;
        match self
            .store
            .set_tax_rate(NewTaxRate {
                csp_id: csp_id.to_owned(),
                rate_bp,
                valid_from,
            })
            .await
            .map_err(SettlementError::Store)?
        {
            TaxRateOutcome::Set(r) => Ok(r),
            TaxRateOutcome::InFinalPeriod { final_until } => {
                Err(SettlementError::ModelConflict(format!(
                    "periods up to {final_until} are settled by FINAL statements; a tax rate can \
                     start at {final_until} at the earliest"
                )))
            }
        }
    }

    pub async fn tax_rates(&self) -> Result<Vec<TaxRateRecord>, SettlementError> {
        self.store
            .list_tax_rates()
            .await
            .map_err(SettlementError::Store)
    }

    /// Computes (or recomputes) the draft of a partner and period; refused once it is final.
    pub async fn run(
        &self,
        partner: &PartnerCode,
        period: Period,
    ) -> Result<Statement, SettlementError> {
        let partner_id = self.partner_id(partner).await?;
        match self
            .store
            .run_statement(partner_id, period, Timestamp::now())
            .await
            .map_err(SettlementError::Store)?
        {
            RunOutcome::Computed(st) => Ok(st),
            RunOutcome::Final(st) => Err(SettlementError::StatementFinal { id: st.header.id }),
            RunOutcome::OverlapsFinal { statement_id } => {
                Err(SettlementError::OverlapsFinal { id: statement_id })
            }
        }
    }

    /// Makes a draft final; finalising a final statement again changes nothing.
    pub async fn finalise(&self, id: i64) -> Result<Statement, SettlementError> {
        use FinaliseOutcome as F;
        let outcome = self
            .store
            .finalise_statement(id, Timestamp::now())
            .await
            .map_err(SettlementError::Store)?;
        let not_ready = |m: String| Err(SettlementError::NotReady(m));
        match outcome {
            F::Finalised(st) | F::AlreadyFinal(st) => Ok(st),
            F::NotFound => Err(SettlementError::StatementNotFound),
            F::PeriodNotOver { finalisable_from } => not_ready(format!(
                "the period is not over: statement {id} can be finalised from {finalisable_from}"
            )),
            F::PendingTransactions { count } => not_ready(format!(
                "{count} transaction(s) of the period still wait for their outcome; finalise \
                 once the reconciler has settled them"
            )),
            F::Stale => not_ready(format!(
                "the data or models changed since statement {id} was computed: run it again, \
                 review it, then finalise"
            )),
            F::Unpriced { lines } => not_ready(format!(
                "{lines} line(s) have no usable settlement model (see each line's issue): add \
                 a model, run the statement again, then finalise"
            )),
            F::OverlapsFinal { statement_id } => {
                Err(SettlementError::OverlapsFinal { id: statement_id })
            }
        }
    }

    pub async fn statement(&self, id: i64) -> Result<Statement, SettlementError> {
        self.store
            .statement(id)
            .await
            .map_err(SettlementError::Store)?
            .ok_or(SettlementError::StatementNotFound)
    }

    pub async fn list(
        &self,
        partner: Option<&PartnerCode>,
    ) -> Result<Vec<StatementHeader>, SettlementError> {
        let partner_id = match partner {
            Some(code) => Some(self.partner_id(code).await?),
            None => None,
        };
        self.store
            .list_statements(partner_id)
            .await
            .map_err(SettlementError::Store)
    }
}

// ---------------------------------------------------------------------------------------
// Rendering.

/// A model's terms for people: `revenue-share` with the partner's percentage, or
/// `flat-cost` with its amount and currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TermsDoc {
    /// `revenue-share` or `flat-cost`.
    pub kind: &'static str,
    /// Revenue share: the partner's percentage of net revenue after tax, e.g. `"70.00"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_share: Option<String>,
    /// Flat cost: the amount per successful charge, e.g. `"0.50"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDoc {
    pub id: i64,
    pub partner: String,
    /// `null`: the partner's default.
    pub product_code: Option<String>,
    pub terms: TermsDoc,
    pub valid_from: String,
    /// `null`: open-ended.
    pub valid_to: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineDoc {
    /// `charges` or `adjustment` (refunds of charges from before the period).
    pub kind: &'static str,
    pub currency: String,
    pub product_code: Option<String>,
    pub model_id: Option<i64>,
    pub model: Option<TermsDoc>,
    /// Tax rate taken out, percent; `"0.00"` for transactions without tax included.
    pub tax_rate: String,
    pub charges: i64,
    pub refunds: i64,
    pub gross: String,
    pub refunded: String,
    pub net: String,
    pub tax: String,
    pub csp_share: String,
    pub partner_payout: String,
    /// Why the line could not be priced: `no-model` or `currency-mismatch`.
    pub issue: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalsDoc {
    pub currency: String,
    pub charges: i64,
    pub refunds: i64,
    pub gross: String,
    pub refunded: String,
    pub net: String,
    pub tax: String,
    pub csp_share: String,
    pub partner_payout: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementSummaryDoc {
    pub id: i64,
    pub partner: String,
    pub period_from: String,
    pub period_to: String,
    /// `DRAFT` or `FINAL`.
    pub status: &'static str,
    pub revision: i64,
    pub computed_at: String,
    pub finalised_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementDoc {
    #[serde(flatten)]
    pub summary: StatementSummaryDoc,
    pub rounding: &'static str,
    pub lines: Vec<LineDoc>,
    /// Per currency: exact sums of the lines.
    pub totals: Vec<TotalsDoc>,
}

fn currency(code: &str) -> Result<Currency, SettlementError> {
    Currency::parse(code).map_err(|e| {
        SettlementError::Store(StoreError::Backend(format!(
            "stored currency {code:?} does not parse: {e}"
        )))
    })
}

fn amount(minor: i64, code: &str) -> Result<String, SettlementError> {
    Ok(MinorUnits::new(minor).format(currency(code)?))
}

pub fn terms_doc(terms: &ModelTerms) -> Result<TermsDoc, SettlementError> {
    Ok(match terms {
        ModelTerms::RevenueShare { partner_share_bp } => TermsDoc {
            kind: "revenue-share",
            partner_share: Some(format_percent(*partner_share_bp)),
            amount: None,
            currency: None,
        },
        ModelTerms::FlatCost {
            amount_minor,
            currency: code,
        } => TermsDoc {
            kind: "flat-cost",
            partner_share: None,
            amount: Some(amount(*amount_minor, code)?),
            currency: Some(code.clone()),
        },
    })
}

pub fn model_doc(m: &SettlementModelRecord) -> Result<ModelDoc, SettlementError> {
    Ok(ModelDoc {
        id: m.id,
        partner: m.partner_code.as_str().to_owned(),
        product_code: m.product_code.clone(),
        terms: terms_doc(&m.terms)?,
        valid_from: m.valid_from.to_rfc3339(),
        valid_to: m.valid_to.map(Timestamp::to_rfc3339),
        created_at: m.created_at.to_rfc3339(),
    })
}

pub fn summary_doc(h: &StatementHeader) -> StatementSummaryDoc {
    StatementSummaryDoc {
        id: h.id,
        partner: h.partner_code.as_str().to_owned(),
        period_from: h.period.from().to_rfc3339(),
        period_to: h.period.to().to_rfc3339(),
        status: h.status.as_str(),
        revision: h.revision,
        computed_at: h.computed_at.to_rfc3339(),
        finalised_at: h.finalised_at.map(Timestamp::to_rfc3339),
    }
}

pub fn statement_doc(st: &Statement) -> Result<StatementDoc, SettlementError> {
    let lines = st
        .lines
        .iter()
        .map(|l| {
            let c = &l.currency;
            Ok(LineDoc {
                kind: l.kind.as_str(),
                currency: c.clone(),
                product_code: l.product_code.clone(),
                model_id: l.model_id,
                model: l.terms.as_ref().map(terms_doc).transpose()?,
                tax_rate: format_percent(l.tax_rate_bp),
                charges: l.charges,
                refunds: l.refunds,
                gross: amount(l.gross_minor, c)?,
                refunded: amount(l.refunded_minor, c)?,
                net: amount(l.net_minor, c)?,
                tax: amount(l.tax_minor, c)?,
                csp_share: amount(l.csp_share_minor, c)?,
                partner_payout: amount(l.payout_minor, c)?,
                issue: l.issue.map(|i| i.as_str()),
            })
        })
        .collect::<Result<_, SettlementError>>()?;
    let totals = st
        .totals()
        .map_err(SettlementError::Store)?
        .into_iter()
        .map(|t| {
            let c = &t.currency;
            Ok(TotalsDoc {
                gross: amount(t.gross_minor, c)?,
                refunded: amount(t.refunded_minor, c)?,
                net: amount(t.net_minor, c)?,
                tax: amount(t.tax_minor, c)?,
                csp_share: amount(t.csp_share_minor, c)?,
                partner_payout: amount(t.payout_minor, c)?,
                charges: t.charges,
                refunds: t.refunds,
                currency: t.currency,
            })
        })
        .collect::<Result<_, SettlementError>>()?;
    Ok(StatementDoc {
        summary: summary_doc(&st.header),
        rounding: ROUNDING_RULE,
        lines,
        totals,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Result<Self, SettlementError> {
        match s {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            _ => Err(invalid("format", "must be csv or json")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// The statement as a file: JSON (the same document as the admin API's) or CSV (one row per
/// line, then one `total` row per currency).
pub fn export(st: &Statement, format: ExportFormat) -> Result<String, SettlementError> {
    let doc = statement_doc(st)?;
    let failed = |e: &dyn std::fmt::Display| {
        SettlementError::Store(StoreError::Backend(format!("export failed: {e}")))
    };
    match format {
        ExportFormat::Json => serde_json::to_string_pretty(&doc).map_err(|e| failed(&e)),
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_HEADER).map_err(|e| failed(&e))?;
            let s = &doc.summary;
            let head = [
                s.id.to_string(),
                s.partner.clone(),
                s.period_from.clone(),
                s.period_to.clone(),
                s.status.to_owned(),
            ];
            for l in &doc.lines {
                let (model_kind, share, flat) = match &l.model {
                    Some(t) => (
                        t.kind.to_owned(),
                        t.partner_share.clone().unwrap_or_default(),
                        match (&t.amount, &t.currency) {
                            (Some(a), Some(c)) => format!("{a} {c}"),
                            _ => String::new(),
                        },
                    ),
                    None => Default::default(),
                };
                let row = [
                    "line".to_owned(),
                    l.kind.to_owned(),
                    l.currency.clone(),
                    l.product_code
                        .as_deref()
                        .map(spreadsheet_safe)
                        .unwrap_or_default(),
                    l.model_id.map(|m| m.to_string()).unwrap_or_default(),
                    model_kind,
                    share,
                    flat,
                    l.tax_rate.clone(),
                    l.charges.to_string(),
                    l.refunds.to_string(),
                    l.gross.clone(),
                    l.refunded.clone(),
                    l.net.clone(),
                    l.tax.clone(),
                    l.csp_share.clone(),
                    l.partner_payout.clone(),
                    l.issue.unwrap_or_default().to_owned(),
                ];
                w.write_record(head.iter().chain(row.iter()))
                    .map_err(|e| failed(&e))?;
            }
            for t in &doc.totals {
                let row = [
                    "total".to_owned(),
                    String::new(),
                    t.currency.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    t.charges.to_string(),
                    t.refunds.to_string(),
                    t.gross.clone(),
                    t.refunded.clone(),
                    t.net.clone(),
                    t.tax.clone(),
                    t.csp_share.clone(),
                    t.partner_payout.clone(),
                    String::new(),
                ];
                w.write_record(head.iter().chain(row.iter()))
                    .map_err(|e| failed(&e))?;
            }
            let bytes = w.into_inner().map_err(|e| failed(&e))?;
            String::from_utf8(bytes).map_err(|e| failed(&e))
        }
    }
}

pub const CSV_HEADER: [&str; 23] = [
    "statement_id",
    "partner",
    "period_from",
    "period_to",
    "status",
    "row",
    "kind",
    "currency",
    "product_code",
    "model_id",
    "model",
    "partner_share",
    "flat_cost",
    "tax_rate",
    "charges",
    "refunds",
    "gross",
    "refunded",
    "net",
    "tax",
    "csp_share",
    "partner_payout",
    "issue",
];

/// Product codes come from partners: one that a spreadsheet would run as a formula gets a
/// leading apostrophe (amounts are ours and may start with `-`, so they are left alone).
fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use dcbhub_domain::PartnerCode;
    use dcbhub_store::{LineKind, StatementLine, StatementStatus};

    use super::*;

    fn tz(name: &str) -> jiff::tz::TimeZone {
        time_zone(name).unwrap()
    }

    #[test]
    fn months_follow_the_time_zone() {
        let utc = month_period("2026-11", &tz("UTC")).unwrap();
        assert_eq!(utc.from().to_rfc3339(), "2026-11-01T00:00:00.000Z");
        assert_eq!(utc.to().to_rfc3339(), "2026-12-01T00:00:00.000Z");
        // London is on GMT in November and BST (UTC+1) in October: the month starts at
        // 23:00 UTC the day before.
        let london = month_period("2026-10", &tz("Europe/London")).unwrap();
        assert_eq!(london.from().to_rfc3339(), "2026-09-30T23:00:00.000Z");
        assert_eq!(london.to().to_rfc3339(), "2026-11-01T00:00:00.000Z");
        let tokyo = month_period("2026-12", &tz("Asia/Tokyo")).unwrap();
        assert_eq!(tokyo.from().to_rfc3339(), "2026-11-30T15:00:00.000Z");
        assert_eq!(tokyo.to().to_rfc3339(), "2026-12-31T15:00:00.000Z");
        for bad in [
            "2026-13", "2026-1", "26-11", "2026/11", "", "2026-00", "x-y",
        ] {
            assert!(month_period(bad, &tz("UTC")).is_err(), "{bad}");
        }
        assert!(time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn periods_from_a_month_or_a_range() {
        let spec = PeriodSpec {
            from: Some("2026-11-01"),
            to: Some("2026-11-15T12:00:00+01:00"),
            tz: Some("Europe/Paris"),
            ..PeriodSpec::default()
        };
        let p = spec.resolve().unwrap();
        assert_eq!(p.from().to_rfc3339(), "2026-10-31T23:00:00.000Z");
        assert_eq!(p.to().to_rfc3339(), "2026-11-15T11:00:00.000Z");
        let reversed = PeriodSpec {
            from: Some("2026-11-15"),
            to: Some("2026-11-01"),
            ..PeriodSpec::default()
        };
        assert!(reversed.resolve().is_err());
        let both = PeriodSpec {
            month: Some("2026-11"),
            from: Some("2026-11-01"),
            ..PeriodSpec::default()
        };
        assert!(both.resolve().is_err());
        assert!(PeriodSpec::default().resolve().is_err());
    }

    #[test]
    fn percentages_are_exact() {
        let p = |s| parse_percent("x", s, 10_000);
        assert_eq!(p("70").unwrap(), 7000);
        assert_eq!(p("70.00").unwrap(), 7000);
        assert_eq!(p("70.5").unwrap(), 7050);
        assert_eq!(p("0.01").unwrap(), 1);
        assert_eq!(p("100").unwrap(), 10_000);
        for bad in [
            "100.01", "70.001", "-1", "", ".5", "7.", "07", "1e2", "70,00", " 70", "abc",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(format_percent(7050), "70.50");
        assert_eq!(format_percent(1), "0.01");
    }

    #[test]
    fn terms_from_operator_input() {
        assert_eq!(
            parse_terms(Some("70.00"), None, None).unwrap(),
            ModelTerms::RevenueShare {
                partner_share_bp: 7000
            }
        );
        assert_eq!(
            parse_terms(None, Some("0.50"), Some("GBP")).unwrap(),
            ModelTerms::FlatCost {
                amount_minor: 50,
                currency: "GBP".into()
            }
        );
        assert_eq!(
            parse_terms(None, Some("0.250"), Some("KWD")).unwrap(),
            ModelTerms::FlatCost {
                amount_minor: 250,
                currency: "KWD".into()
            }
        );
        assert_eq!(
            parse_terms(None, Some("0"), Some("JPY")).unwrap(),
            ModelTerms::FlatCost {
                amount_minor: 0,
                currency: "JPY".into()
            }
        );
        assert!(parse_terms(None, Some("0.5"), Some("JPY")).is_err());
        assert!(parse_terms(None, Some("0.50"), None).is_err());
        assert!(parse_terms(Some("70"), Some("0.50"), Some("GBP")).is_err());
        assert!(parse_terms(None, None, None).is_err());
        assert!(parse_terms(None, Some("0.50"), Some("XXX")).is_err());
    }

    fn statement() -> Statement {
        let line = |kind, currency: &str, product: Option<&str>, v: [i64; 8]| StatementLine {
            kind,
            currency: currency.into(),
            product_code: product.map(Into::into),
            model_id: Some(1),
            terms: Some(ModelTerms::RevenueShare {
                partner_share_bp: 7000,
            }),
            tax_rate_bp: 2000,
            charges: v[0],
            refunds: v[1],
            gross_minor: v[2],
            refunded_minor: v[3],
            net_minor: v[4],
            tax_minor: v[5],
            csp_share_minor: v[6],
            payout_minor: v[7],
            issue: None,
        };
        Statement {
            header: StatementHeader {
                id: 7,
                partner_id: 1,
                partner_code: PartnerCode::parse("NFLX").unwrap(),
                period: Period::new(
                    Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap(),
                    Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
                )
                .unwrap(),
                status: StatementStatus::Draft,
                revision: 1,
                computed_at: Timestamp::from_unix_millis(0),
                finalised_at: None,
                created_at: Timestamp::from_unix_millis(0),
            },
            lines: vec![
                line(
                    LineKind::Charges,
                    "GBP",
                    Some("=cmd"),
                    [2, 1, 1499, 499, 1000, 167, 250, 583],
                ),
                line(
                    LineKind::Adjustment,
                    "GBP",
                    None,
                    [0, 1, 0, 400, -400, -67, -100, -233],
                ),
                line(
                    LineKind::Charges,
                    "KWD",
                    Some("P,1"),
                    [1, 0, 1234, 0, 1234, 206, 308, 720],
                ),
            ],
        }
    }

    #[test]
    fn json_export_formats_amounts_in_each_currency() {
        let text = export(&statement(), ExportFormat::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["partner"], "NFLX");
        assert_eq!(v["status"], "DRAFT");
        assert_eq!(v["lines"][0]["gross"], "14.99");
        assert_eq!(v["lines"][0]["taxRate"], "20.00");
        assert_eq!(v["lines"][0]["model"]["partnerShare"], "70.00");
        assert_eq!(v["lines"][1]["kind"], "adjustment");
        assert_eq!(v["lines"][1]["partnerPayout"], "-2.33");
        assert_eq!(v["lines"][2]["net"], "1.234");
        assert_eq!(v["totals"][0]["currency"], "GBP");
        assert_eq!(v["totals"][0]["partnerPayout"], "3.50");
        assert_eq!(v["totals"][0]["refunds"], 2);
        assert_eq!(v["totals"][1]["cspShare"], "0.308");
        assert!(v["rounding"].as_str().unwrap().contains("half to even"));
    }

    #[test]
    fn csv_export_has_a_row_per_line_and_per_currency_total() {
        let text = export(&statement(), ExportFormat::Csv).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            r.headers().unwrap(),
            &csv::StringRecord::from(CSV_HEADER.to_vec())
        );
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(&rows[0][5], "line");
        assert_eq!(
            &rows[0][8], "'=cmd",
            "formula-like product codes are defused"
        );
        assert_eq!(&rows[1][6], "adjustment");
        assert_eq!(&rows[1][21], "-2.33");
        assert_eq!(&rows[2][8], "P,1", "commas are quoted, not split");
        assert_eq!(&rows[3][5], "total");
        assert_eq!(&rows[3][7], "GBP");
        assert_eq!(&rows[3][21], "3.50");
        assert_eq!(&rows[4][7], "KWD");
        assert_eq!(&rows[4][16], "1.234");
    }
}
