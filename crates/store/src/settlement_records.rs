//! Settlement records and the arithmetic both backends share: which model and tax rate apply
//! to an aggregated group of transactions, and how a statement line is priced.
//!
//! The database aggregates (`GROUP BY` over the transactions of one partner and period); this
//! module only turns those few groups into lines. Every amount is an integer in the minor
//! units of its currency; intermediate products use `i128`; each derived amount is rounded
//! once, half to even, from the line's exact sums (see `docs/SETTLEMENT.md`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use dcbhub_domain::{PartnerCode, Timestamp};

use crate::{StoreError, TxType};

/// How long after a period ends its statement may be finalised: a transaction stamped just
/// before the end may still be committing.
pub const FINALISE_GRACE_MS: i64 = 5 * 60 * 1000;

/// 100.00 % in basis points.
pub const FULL_BP: u32 = 10_000;

/// Highest tax rate a CSP may have: 1000.00 %.
pub const MAX_TAX_BP: u32 = 100_000;

/// A half-open time range `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    from: Timestamp,
    to: Timestamp,
}

impl Period {
    /// `None` unless `from < to`.
    pub fn new(from: Timestamp, to: Timestamp) -> Option<Self> {
        (from < to).then_some(Self { from, to })
    }

    pub fn from(&self) -> Timestamp {
        self.from
    }

    pub fn to(&self) -> Timestamp {
        self.to
    }
}

/// What a model pays the partner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModelTerms {
    /// The partner's share of net revenue (after tax), in basis points: 7000 = 70.00 %.
    RevenueShare { partner_share_bp: u32 },
    /// A fixed amount per successful charge, in the minor units of `currency`.
    FlatCost { amount_minor: i64, currency: String },
}

impl ModelTerms {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RevenueShare { .. } => "REVENUE_SHARE",
            Self::FlatCost { .. } => "FLAT_COST",
        }
    }

    /// Rebuilds terms from their stored columns.
    pub(crate) fn from_columns(
        kind: &str,
        share_bp: Option<i64>,
        flat_minor: Option<i64>,
        flat_currency: Option<String>,
    ) -> Result<Self, StoreError> {
        match (kind, share_bp, flat_minor, flat_currency) {
            ("REVENUE_SHARE", Some(bp), None, None) => Ok(Self::RevenueShare {
                partner_share_bp: u32::try_from(bp)
                    .ok()
                    .filter(|bp| *bp <= FULL_BP)
                    .ok_or_else(|| corrupt("share_bp"))?,
            }),
            ("FLAT_COST", None, Some(amount_minor), Some(currency)) => Ok(Self::FlatCost {
                amount_minor,
                currency,
            }),
            _ => Err(corrupt("settlement model terms")),
        }
    }

    /// `(kind, share_bp, flat_minor, flat_currency)` as stored.
    pub(crate) fn columns(&self) -> (&'static str, Option<i64>, Option<i64>, Option<&str>) {
        match self {
            Self::RevenueShare { partner_share_bp } => {
                (self.kind(), Some(i64::from(*partner_share_bp)), None, None)
            }
            Self::FlatCost {
                amount_minor,
                currency,
            } => (self.kind(), None, Some(*amount_minor), Some(currency)),
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored settlement value does not parse: {what}"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSettlementModel {
    pub partner_id: i64,
    /// `None`: the partner's default, used where no product rule is in force.
    pub product_code: Option<String>,
    pub terms: ModelTerms,
    pub valid_from: Timestamp,
    pub valid_to: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementModelRecord {
    pub id: i64,
    pub partner_id: i64,
    pub partner_code: PartnerCode,
    pub product_code: Option<String>,
    pub terms: ModelTerms,
    pub valid_from: Timestamp,
    pub valid_to: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl SettlementModelRecord {
    fn in_force_at(&self, t: i64) -> bool {
        self.valid_from.unix_millis() <= t && self.valid_to.is_none_or(|to| t < to.unix_millis())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelAddOutcome {
    /// Added; an open-ended model of the same partner and product that started earlier now
    /// ends where the new one starts (`superseded`, as it is now).
    Added {
        model: SettlementModelRecord,
        superseded: Option<SettlementModelRecord>,
    },
    /// Another model of the same partner and product is in force for part of the range.
    Overlaps { existing: SettlementModelRecord },
    /// The model would start inside a period already settled by a FINAL statement.
    InFinalPeriod { final_until: Timestamp },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTaxRate {
    pub csp_id: String,
    pub rate_bp: u32,
    pub valid_from: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaxRateRecord {
    pub csp_id: String,
    pub rate_bp: u32,
    pub valid_from: Timestamp,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaxRateOutcome {
    /// Set (a rate with the same CSP and start is replaced).
    Set(TaxRateRecord),
    /// The rate would start inside a period already settled by a FINAL statement.
    InFinalPeriod { final_until: Timestamp },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatementStatus {
    Draft,
    Final,
}

impl StatementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Final => "FINAL",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "DRAFT" => Ok(Self::Draft),
            "FINAL" => Ok(Self::Final),
            _ => Err(corrupt("statement status")),
        }
    }
}

/// `charges`: the period's charges and refunds of those charges; `adjustment`: refunds in
/// the period of charges made before it (an earlier, possibly final, period).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineKind {
    Charges,
    Adjustment,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charges => "charges",
            Self::Adjustment => "adjustment",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "charges" => Ok(Self::Charges),
            "adjustment" => Ok(Self::Adjustment),
            _ => Err(corrupt("line kind")),
        }
    }
}

/// Why a line could not be priced; a statement with such a line cannot be finalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineIssue {
    /// No model of the partner was in force for these transactions.
    NoModel,
    /// A flat-cost model in another currency than the transactions'.
    CurrencyMismatch,
}

impl LineIssue {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoModel => "no-model",
            Self::CurrencyMismatch => "currency-mismatch",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "no-model" => Ok(Self::NoModel),
            "currency-mismatch" => Ok(Self::CurrencyMismatch),
            _ => Err(corrupt("line issue")),
        }
    }
}

/// One line: the transactions of one kind, currency, product code, model and tax rate.
/// `net = gross - refunded = tax + csp_share + payout` always holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub kind: LineKind,
    pub currency: String,
    pub product_code: Option<String>,
    pub model_id: Option<i64>,
    /// The model's terms as they were applied (a copy: the statement stands on its own).
    pub terms: Option<ModelTerms>,
    /// The tax rate taken out of the line's amounts; 0 for transactions without tax included.
    pub tax_rate_bp: u32,
    pub charges: i64,
    pub refunds: i64,
    pub gross_minor: i64,
    pub refunded_minor: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub csp_share_minor: i64,
    pub payout_minor: i64,
    pub issue: Option<LineIssue>,
}

/// The sums of a statement's lines in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrencyTotals {
    pub currency: String,
    pub charges: i64,
    pub refunds: i64,
    pub gross_minor: i64,
    pub refunded_minor: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub csp_share_minor: i64,
    pub payout_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementHeader {
    pub id: i64,
    pub partner_id: i64,
    pub partner_code: PartnerCode,
    pub period: Period,
    pub status: StatementStatus,
    /// Grows by one with every computation of a draft.
    pub revision: i64,
    pub computed_at: Timestamp,
    pub finalised_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub header: StatementHeader,
    pub lines: Vec<StatementLine>,
}

impl Statement {
    /// Totals per currency, alphabetically: exact sums of the lines, never recomputed.
    pub fn totals(&self) -> Result<Vec<CurrencyTotals>, StoreError> {
        let mut by_currency: BTreeMap<&str, CurrencyTotals> = BTreeMap::new();
        for l in &self.lines {
            let t = by_currency
                .entry(&l.currency)
                .or_insert_with(|| CurrencyTotals {
                    currency: l.currency.clone(),
                    ..CurrencyTotals::default()
                });
            let add = |acc: &mut i64, v: i64| -> Result<(), StoreError> {
                *acc = acc.checked_add(v).ok_or_else(overflow)?;
                Ok(())
            };
            add(&mut t.charges, l.charges)?;
            add(&mut t.refunds, l.refunds)?;
            add(&mut t.gross_minor, l.gross_minor)?;
            add(&mut t.refunded_minor, l.refunded_minor)?;
            add(&mut t.net_minor, l.net_minor)?;
            add(&mut t.tax_minor, l.tax_minor)?;
            add(&mut t.csp_share_minor, l.csp_share_minor)?;
            add(&mut t.payout_minor, l.payout_minor)?;
        }
        Ok(by_currency.into_values().collect())
    }

    /// Lines that could not be priced.
    pub fn issues(&self) -> usize {
        self.lines.iter().filter(|l| l.issue.is_some()).count()
    }
}

fn overflow() -> StoreError {
    StoreError::Backend("settlement amount out of range".into())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The draft, created or recomputed (its lines replaced).
    Computed(Statement),
    /// The statement of this partner and period is final: nothing was changed.
    Final(Statement),
    /// The period overlaps another FINAL statement of the partner.
    OverlapsFinal { statement_id: i64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinaliseOutcome {
    Finalised(Statement),
    /// It was final already; nothing changed.
    AlreadyFinal(Statement),
    NotFound,
    /// The period (plus [`FINALISE_GRACE_MS`]) has not ended by `now`.
    PeriodNotOver {
        finalisable_from: Timestamp,
    },
    /// Transactions of the period still wait for their outcome.
    PendingTransactions {
        count: i64,
    },
    /// The transactions or models changed since the draft was computed: run it again and
    /// review it before finalising.
    Stale,
    /// Lines without a usable model.
    Unpriced {
        lines: usize,
    },
    /// The period overlaps another FINAL statement of the partner.
    OverlapsFinal {
        statement_id: i64,
    },
}

// ---------------------------------------------------------------------------------------
// Computing lines.

/// What a statement's computation reads besides the transactions.
pub(crate) struct Inputs {
    pub models: Vec<SettlementModelRecord>,
    pub tax_rates: Vec<TaxRateRecord>,
}

/// One group of the database's aggregation.
pub(crate) struct AggregateRow {
    pub adjustment: bool,
    pub tx_type: TxType,
    pub currency: String,
    pub product_code: Option<String>,
    pub tax_included: bool,
    pub csp_id: String,
    /// How many breakpoints lie at or before the time that decides the model and tax rate.
    pub segment: i64,
    pub count: i64,
    pub sum_minor: i64,
}

/// Every instant at which the model or tax rate of some transaction could change, sorted.
/// Within two consecutive breakpoints the same model and rate apply to every transaction of
/// one product and CSP, so the database can group by segment instead of joining models.
pub(crate) fn breakpoints(inputs: &Inputs) -> Vec<i64> {
    let mut points: Vec<i64> = inputs
        .models
        .iter()
        .flat_map(|m| {
            std::iter::once(m.valid_from.unix_millis())
                .chain(m.valid_to.map(Timestamp::unix_millis))
        })
        .chain(inputs.tax_rates.iter().map(|r| r.valid_from.unix_millis()))
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

/// The aggregation, the same SQL on both backends. Only integers are inlined (the partner id,
/// the period and the breakpoints), so the text is safe to build.
///
/// A refund's model and tax rate are those of its original charge's time (a refund reverses
/// the charge as it was settled); a refund of a charge made before the period is an
/// adjustment.
pub(crate) fn aggregate_sql(partner_id: i64, period: Period, points: &[i64]) -> String {
    let from = period.from().unix_millis();
    let to = period.to().unix_millis();
    format!(
        "SELECT s.adjustment, s.type, s.currency, s.product_code, s.tax_included, s.csp_id,
                CAST({segment} AS BIGINT) AS segment, CAST(COUNT(*) AS BIGINT), CAST(SUM(s.amount_minor) AS BIGINT)
         FROM (SELECT CAST(CASE WHEN t.type = 'REFUND' AND o.created_at < {from} THEN 1 ELSE 0 END AS BIGINT) AS adjustment,
                      t.type, t.currency, t.product_code,
                      CAST(CASE WHEN t.tax_included THEN 1 ELSE 0 END AS BIGINT) AS tax_included, t.csp_id,
                      COALESCE(o.created_at, t.created_at) AS model_time, t.amount_minor
               FROM transactions t LEFT JOIN transactions o ON o.id = t.original_id
               WHERE t.partner_id = {partner_id} AND t.status = 'SUCCESS'
                 AND t.created_at >= {from} AND t.created_at < {to}) s
         GROUP BY 1, 2, 3, 4, 5, 6, 7",
        segment = segment_expr("s.model_time", points, 0),
    )
}

/// A binary search over the sorted breakpoints as nested CASEs: the number of breakpoints at
/// or before `x`, in O(log n) comparisons per row.
fn segment_expr(x: &str, points: &[i64], offset: usize) -> String {
    if points.is_empty() {
        return offset.to_string();
    }
    let mid = points.len() / 2;
    format!(
        "CASE WHEN {x} < {} THEN {} ELSE {} END",
        points[mid],
        segment_expr(x, &points[..mid], offset),
        segment_expr(x, &points[mid + 1..], offset + mid + 1)
    )
}

/// The query counting a period's transactions still waiting for their outcome.
pub(crate) fn pending_sql(partner_id: i64, period: Period) -> String {
    format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM transactions
         WHERE partner_id = {partner_id} AND status = 'PENDING'
           AND created_at >= {} AND created_at < {}",
        period.from().unix_millis(),
        period.to().unix_millis()
    )
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LineKey {
    kind: LineKind,
    currency: String,
    product_code: Option<String>,
    model_id: Option<i64>,
    tax_rate_bp: u32,
}

#[derive(Default)]
struct Sums {
    terms: Option<ModelTerms>,
    charges: i64,
    refunds: i64,
    gross: i64,
    refunded: i64,
}

/// Turns the database's groups into priced lines, in a stable order.
pub(crate) fn build_lines(
    inputs: &Inputs,
    points: &[i64],
    rows: Vec<AggregateRow>,
) -> Result<Vec<StatementLine>, StoreError> {
    let mut lines: BTreeMap<LineKey, Sums> = BTreeMap::new();
    for row in rows {
        // Any instant of the segment decides; its first one is at hand.
        let at = match usize::try_from(row.segment) {
            Ok(0) => i64::MIN,
            Ok(s) => *points.get(s - 1).ok_or_else(|| corrupt("segment"))?,
            Err(_) => return Err(corrupt("segment")),
        };
        let model = model_at(&inputs.models, row.product_code.as_deref(), at);
        let tax_rate_bp = if row.tax_included {
            tax_rate_at(&inputs.tax_rates, &row.csp_id, at)
        } else {
            0
        };
        let key = LineKey {
            kind: if row.adjustment {
                LineKind::Adjustment
            } else {
                LineKind::Charges
            },
            currency: row.currency,
            product_code: row.product_code,
            model_id: model.map(|m| m.id),
            tax_rate_bp,
        };
        let sums = lines.entry(key).or_default();
        sums.terms = model.map(|m| m.terms.clone());
        let (count, amount) = match row.tx_type {
            TxType::Charge => (&mut sums.charges, &mut sums.gross),
            TxType::Refund => (&mut sums.refunds, &mut sums.refunded),
        };
        *count = count.checked_add(row.count).ok_or_else(overflow)?;
        *amount = amount.checked_add(row.sum_minor).ok_or_else(overflow)?;
    }
    lines
        .into_iter()
        .map(|(key, sums)| price_line(key, sums))
        .collect()
}

/// The product's rule in force at `at`, else the partner's default in force at `at`.
fn model_at<'a>(
    models: &'a [SettlementModelRecord],
    product_code: Option<&str>,
    at: i64,
) -> Option<&'a SettlementModelRecord> {
    let find = |product: Option<&str>| {
        models
            .iter()
            .find(|m| m.product_code.as_deref() == product && m.in_force_at(at))
    };
    product_code
        .and_then(|p| find(Some(p)))
        .or_else(|| find(None))
}

/// The CSP's rate with the latest start at or before `at`; 0 when it has none.
fn tax_rate_at(rates: &[TaxRateRecord], csp_id: &str, at: i64) -> u32 {
    rates
        .iter()
        .filter(|r| r.csp_id == csp_id && r.valid_from.unix_millis() <= at)
        .max_by_key(|r| r.valid_from)
        .map_or(0, |r| r.rate_bp)
}

fn price_line(key: LineKey, sums: Sums) -> Result<StatementLine, StoreError> {
    let net = sums.gross.checked_sub(sums.refunded).ok_or_else(overflow)?;
    let prices = price(
        net,
        key.tax_rate_bp,
        sums.charges,
        &key.currency,
        sums.terms.as_ref(),
    )?;
    Ok(StatementLine {
        kind: key.kind,
        currency: key.currency,
        product_code: key.product_code,
        model_id: key.model_id,
        terms: sums.terms,
        tax_rate_bp: key.tax_rate_bp,
        charges: sums.charges,
        refunds: sums.refunds,
        gross_minor: sums.gross,
        refunded_minor: sums.refunded,
        net_minor: net,
        tax_minor: prices.tax,
        csp_share_minor: prices.csp_share,
        payout_minor: prices.payout,
        issue: prices.issue,
    })
}

/// The split of one line's net amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prices {
    pub tax: i64,
    pub csp_share: i64,
    pub payout: i64,
    pub issue: Option<LineIssue>,
}

/// Splits `net` (minor units, tax included at `tax_rate_bp`) into tax, the CSP's share and
/// the partner's payout. Each of `net_ex_tax = net·10000/(10000+rate)` and, for a revenue
/// share, `payout = net·share/(10000+rate)` is rounded once, half to even, from the exact
/// sum; `tax` and `csp_share` are the exact remainders, so the three always add up to `net`.
/// A flat cost pays `amount × charges` exactly (refunds do not take it back).
pub fn price(
    net: i64,
    tax_rate_bp: u32,
    charges: i64,
    currency: &str,
    terms: Option<&ModelTerms>,
) -> Result<Prices, StoreError> {
    let denominator = i128::from(FULL_BP) + i128::from(tax_rate_bp);
    let net_ex_tax = div_round_half_even(i128::from(net) * i128::from(FULL_BP), denominator);
    let (payout, issue) = match terms {
        None => (0, Some(LineIssue::NoModel)),
        Some(ModelTerms::RevenueShare { partner_share_bp }) => (
            div_round_half_even(i128::from(net) * i128::from(*partner_share_bp), denominator),
            None,
        ),
        Some(ModelTerms::FlatCost {
            amount_minor,
            currency: model_currency,
        }) if model_currency == currency => (i128::from(*amount_minor) * i128::from(charges), None),
        Some(ModelTerms::FlatCost { .. }) => (0, Some(LineIssue::CurrencyMismatch)),
    };
    let narrow = |v: i128| i64::try_from(v).map_err(|_| overflow());
    Ok(Prices {
        tax: narrow(i128::from(net) - net_ex_tax)?,
        csp_share: narrow(net_ex_tax - payout)?,
        payout: narrow(payout)?,
        issue,
    })
}

/// `n / d` rounded to the nearest integer, ties to the even one (banker's rounding), for any
/// sign of `n` and `d > 0`.
pub fn div_round_half_even(n: i128, d: i128) -> i128 {
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    match (2 * r).cmp(&d) {
        Ordering::Less => q,
        Ordering::Greater => q + 1,
        Ordering::Equal if q.rem_euclid(2) == 0 => q,
        Ordering::Equal => q + 1,
    }
}

/// The end of the latest FINAL period, given the `MAX(period_to)` a backend read.
pub(crate) fn final_until(max_period_to: Option<i64>) -> Option<Timestamp> {
    max_period_to.map(Timestamp::from_unix_millis)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rounds_half_to_even_for_both_signs() {
        let r = |n, d| div_round_half_even(n, d);
        assert_eq!(r(5, 10), 0);
        assert_eq!(r(15, 10), 2);
        assert_eq!(r(25, 10), 2);
        assert_eq!(r(26, 10), 3);
        assert_eq!(r(24, 10), 2);
        assert_eq!(r(-5, 10), 0);
        assert_eq!(r(-15, 10), -2);
        assert_eq!(r(-25, 10), -2);
        assert_eq!(r(-26, 10), -3);
        assert_eq!(r(-24, 10), -2);
        assert_eq!(r(0, 7), 0);
        assert_eq!(r(7, 7), 1);
    }

    #[test]
    fn prices_add_up_to_net() {
        let rs = ModelTerms::RevenueShare {
            partner_share_bp: 7000,
        };
        // 10.00 GBP with 20 % VAT included: 8.33333 ex tax -> 8.33, tax 1.67; payout
        // 10.00 * 0.7 / 1.2 = 5.8333 -> 5.83; CSP 8.33 - 5.83 = 2.50.
        let p = price(1000, 2000, 1, "GBP", Some(&rs)).unwrap();
        assert_eq!(
            p,
            Prices {
                tax: 167,
                csp_share: 250,
                payout: 583,
                issue: None
            }
        );
        // Ties: 3p at 20 % -> 2.5 ex tax -> 2 (even); 9p -> 7.5 -> 8.
        assert_eq!(price(3, 2000, 1, "GBP", Some(&rs)).unwrap().tax, 1);
        assert_eq!(price(9, 2000, 1, "GBP", Some(&rs)).unwrap().tax, 1);
        let half = ModelTerms::RevenueShare {
            partner_share_bp: 5000,
        };
        assert_eq!(price(1, 0, 1, "GBP", Some(&half)).unwrap().payout, 0);
        assert_eq!(price(3, 0, 1, "GBP", Some(&half)).unwrap().payout, 2);
        assert_eq!(price(-3, 0, 0, "GBP", Some(&half)).unwrap().payout, -2);
        let flat = ModelTerms::FlatCost {
            amount_minor: 50,
            currency: "GBP".into(),
        };
        let p = price(1000, 0, 4, "GBP", Some(&flat)).unwrap();
        assert_eq!((p.payout, p.csp_share, p.tax), (200, 800, 0));
        assert_eq!(
            price(1000, 0, 4, "EUR", Some(&flat)).unwrap().issue,
            Some(LineIssue::CurrencyMismatch)
        );
        assert_eq!(
            price(1000, 0, 4, "EUR", None).unwrap().issue,
            Some(LineIssue::NoModel)
        );
    }

    #[test]
    fn segment_expression_counts_breakpoints_at_or_before() {
        assert_eq!(segment_expr("x", &[], 0), "0");
        assert_eq!(
            segment_expr("x", &[10, 20], 0),
            "CASE WHEN x < 20 THEN CASE WHEN x < 10 THEN 0 ELSE 1 END ELSE 2 END"
        );
    }
}
