//! Settlement on PostgreSQL. Every settlement write (models, tax rates, runs, finalising)
//! runs in one transaction holding one advisory lock, so hub instances and CLI runs take
//! turns; the aggregation is a single statement, consistent on its own.

use async_trait::async_trait;
use dcbhub_domain::{PartnerCode, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::PgStore;
use crate::records::corrupt;
use crate::settlement_records::{
    AggregateRow, FINALISE_GRACE_MS, FinaliseOutcome, Inputs, LineIssue, LineKind, ModelAddOutcome,
    ModelTerms, NewSettlementModel, NewTaxRate, Period, RunOutcome, SettlementModelRecord,
    Statement, StatementHeader, StatementLine, StatementStatus, TaxRateOutcome, TaxRateRecord,
    aggregate_sql, breakpoints, build_lines, final_until, pending_sql,
};
use crate::{SettlementStore, StoreError, TxType};

/// Any number; only every dcbhub instance must use the same one.
const SETTLEMENT_LOCK: i64 = 0x7365_7474_6c65;

macro_rules! model_columns {
    () => {
        "m.id, m.partner_id, p.code, m.product_code, m.kind, m.share_bp, m.flat_minor, \
         m.flat_currency, m.valid_from, m.valid_to, m.created_at"
    };
}

macro_rules! header_columns {
    () => {
        "s.id, s.partner_id, p.code, s.period_from, s.period_to, s.status, s.revision, \
         s.computed_at, s.finalised_at, s.created_at"
    };
}

macro_rules! line_columns {
    () => {
        "kind, currency, product_code, model_id, model_kind, share_bp, flat_minor, flat_currency, \
         tax_rate_bp, charges, refunds, gross_minor, refunded_minor, net_minor, tax_minor, \
         csp_share_minor, payout_minor, issue"
    };
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn model_from_row(row: &PgRow) -> Result<SettlementModelRecord, StoreError> {
    Ok(SettlementModelRecord {
        id: row.try_get(0)?,
        partner_id: row.try_get(1)?,
        partner_code: PartnerCode::parse(row.try_get(2)?).map_err(corrupt)?,
        product_code: row.try_get(3)?,
        terms: ModelTerms::from_columns(
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
        )?,
        valid_from: ts(row.try_get(8)?),
        valid_to: row.try_get::<Option<i64>, _>(9)?.map(ts),
        created_at: ts(row.try_get(10)?),
    })
}

fn header_from_row(row: &PgRow) -> Result<StatementHeader, StoreError> {
    Ok(StatementHeader {
        id: row.try_get(0)?,
        partner_id: row.try_get(1)?,
        partner_code: PartnerCode::parse(row.try_get(2)?).map_err(corrupt)?,
        period: Period::new(ts(row.try_get(3)?), ts(row.try_get(4)?))
            .ok_or_else(|| StoreError::Backend("stored statement period is empty".into()))?,
        status: StatementStatus::parse(row.try_get(5)?)?,
        revision: row.try_get(6)?,
        computed_at: ts(row.try_get(7)?),
        finalised_at: row.try_get::<Option<i64>, _>(8)?.map(ts),
        created_at: ts(row.try_get(9)?),
    })
}

fn rate(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Backend("stored tax rate out of range".into()))
}

fn line_from_row(row: &PgRow) -> Result<StatementLine, StoreError> {
    let model_kind: Option<String> = row.try_get(4)?;
    let issue: Option<String> = row.try_get(17)?;
    Ok(StatementLine {
        kind: LineKind::parse(row.try_get(0)?)?,
        currency: row.try_get(1)?,
        product_code: row.try_get(2)?,
        model_id: row.try_get(3)?,
        terms: model_kind
            .map(|k| {
                ModelTerms::from_columns(&k, row.try_get(5)?, row.try_get(6)?, row.try_get(7)?)
            })
            .transpose()?,
        tax_rate_bp: rate(row.try_get(8)?)?,
        charges: row.try_get(9)?,
        refunds: row.try_get(10)?,
        gross_minor: row.try_get(11)?,
        refunded_minor: row.try_get(12)?,
        net_minor: row.try_get(13)?,
        tax_minor: row.try_get(14)?,
        csp_share_minor: row.try_get(15)?,
        payout_minor: row.try_get(16)?,
        issue: issue.as_deref().map(LineIssue::parse).transpose()?,
    })
}

async fn lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETTLEMENT_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

async fn models(
    conn: &mut PgConnection,
    partner_id: Option<i64>,
) -> Result<Vec<SettlementModelRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        model_columns!(),
        " FROM settlement_models m JOIN partners p ON p.id = m.partner_id
         WHERE $1::BIGINT IS NULL OR m.partner_id = $1
         ORDER BY p.code, m.product_code NULLS FIRST, m.valid_from"
    ))
    .bind(partner_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(model_from_row)
    .collect()
}

async fn model_by_id(
    conn: &mut PgConnection,
    id: i64,
) -> Result<SettlementModelRecord, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        model_columns!(),
        " FROM settlement_models m JOIN partners p ON p.id = m.partner_id WHERE m.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    model_from_row(&row)
}

async fn tax_rates(conn: &mut PgConnection) -> Result<Vec<TaxRateRecord>, StoreError> {
    sqlx::query(
        "SELECT csp_id, rate_bp, valid_from, created_at FROM csp_tax_rates ORDER BY csp_id, valid_from",
    )
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| {
        Ok(TaxRateRecord {
            csp_id: r.try_get(0)?,
            rate_bp: rate(r.try_get(1)?)?,
            valid_from: ts(r.try_get(2)?),
            created_at: ts(r.try_get(3)?),
        })
    })
    .collect()
}

async fn header_by_period(
    conn: &mut PgConnection,
    partner_id: i64,
    period: Period,
) -> Result<Option<StatementHeader>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        header_columns!(),
        " FROM settlement_statements s JOIN partners p ON p.id = s.partner_id
         WHERE s.partner_id = $1 AND s.period_from = $2 AND s.period_to = $3"
    ))
    .bind(partner_id)
    .bind(period.from().unix_millis())
    .bind(period.to().unix_millis())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(header_from_row)
    .transpose()
}

async fn statement_by_id(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<Statement>, StoreError> {
    let Some(header) = sqlx::query(concat!(
        "SELECT ",
        header_columns!(),
        " FROM settlement_statements s JOIN partners p ON p.id = s.partner_id WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(header_from_row)
    .transpose()?
    else {
        return Ok(None);
    };
    let lines = sqlx::query(concat!(
        "SELECT ",
        line_columns!(),
        " FROM settlement_lines WHERE statement_id = $1 ORDER BY line_no"
    ))
    .bind(id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(line_from_row)
    .collect::<Result<_, _>>()?;
    Ok(Some(Statement { header, lines }))
}

/// Another FINAL statement of the partner whose period overlaps `period`.
async fn overlapping_final(
    conn: &mut PgConnection,
    partner_id: i64,
    period: Period,
    except: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM settlement_statements
         WHERE partner_id = $1 AND status = 'FINAL' AND period_from < $3 AND period_to > $2
           AND id IS DISTINCT FROM $4
         ORDER BY period_from LIMIT 1",
    )
    .bind(partner_id)
    .bind(period.from().unix_millis())
    .bind(period.to().unix_millis())
    .bind(except)
    .fetch_optional(conn)
    .await?)
}

/// End of the latest FINAL period of the partner (or of any partner).
async fn latest_final_end(
    conn: &mut PgConnection,
    partner_id: Option<i64>,
) -> Result<Option<Timestamp>, StoreError> {
    let max: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(period_to) FROM settlement_statements
         WHERE status = 'FINAL' AND ($1::BIGINT IS NULL OR partner_id = $1)",
    )
    .bind(partner_id)
    .fetch_one(conn)
    .await?;
    Ok(final_until(max))
}

async fn compute_lines(
    conn: &mut PgConnection,
    partner_id: i64,
    period: Period,
) -> Result<Vec<StatementLine>, StoreError> {
    let inputs = Inputs {
        models: models(conn, Some(partner_id)).await?,
        tax_rates: tax_rates(conn).await?,
    };
    let points = breakpoints(&inputs);
    let rows = sqlx::query(AssertSqlSafe(aggregate_sql(partner_id, period, &points)))
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(AggregateRow {
                adjustment: r.try_get::<i64, _>(0)? != 0,
                tx_type: TxType::parse(r.try_get(1)?)?,
                currency: r.try_get(2)?,
                product_code: r.try_get(3)?,
                tax_included: r.try_get::<i64, _>(4)? != 0,
                csp_id: r.try_get(5)?,
                segment: r.try_get(6)?,
                count: r.try_get(7)?,
                sum_minor: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    build_lines(&inputs, &points, rows)
}

async fn insert_lines(
    conn: &mut PgConnection,
    statement_id: i64,
    lines: &[StatementLine],
) -> Result<(), StoreError> {
    for (no, l) in lines.iter().enumerate() {
        let (model_kind, share_bp, flat_minor, flat_currency) = match &l.terms {
            Some(t) => {
                let (k, s, f, c) = t.columns();
                (Some(k), s, f, c)
            }
            None => (None, None, None, None),
        };
        sqlx::query(concat!(
            "INSERT INTO settlement_lines (statement_id, line_no, ",
            line_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
        .bind(statement_id)
        .bind(i64::try_from(no).unwrap_or(i64::MAX))
        .bind(l.kind.as_str())
        .bind(&l.currency)
        .bind(&l.product_code)
        .bind(l.model_id)
        .bind(model_kind)
        .bind(share_bp)
        .bind(flat_minor)
        .bind(flat_currency)
        .bind(i64::from(l.tax_rate_bp))
        .bind(l.charges)
        .bind(l.refunds)
        .bind(l.gross_minor)
        .bind(l.refunded_minor)
        .bind(l.net_minor)
        .bind(l.tax_minor)
        .bind(l.csp_share_minor)
        .bind(l.payout_minor)
        .bind(l.issue.map(LineIssue::as_str))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn run_locked(
    conn: &mut PgConnection,
    partner_id: i64,
    period: Period,
    now: Timestamp,
) -> Result<RunOutcome, StoreError> {
    let existing = header_by_period(conn, partner_id, period).await?;
    if let Some(h) = &existing
        && h.status == StatementStatus::Final
    {
        let st = statement_by_id(conn, h.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        return Ok(RunOutcome::Final(st));
    }
    let existing_id = existing.as_ref().map(|h| h.id);
    if let Some(statement_id) = overlapping_final(conn, partner_id, period, existing_id).await? {
        return Ok(RunOutcome::OverlapsFinal { statement_id });
    }
    let lines = compute_lines(conn, partner_id, period).await?;
    let id = match existing_id {
        Some(id) => {
            sqlx::query(
                "UPDATE settlement_statements SET revision = revision + 1, computed_at = $1 WHERE id = $2",
            )
            .bind(now.unix_millis())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM settlement_lines WHERE statement_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            id
        }
        None => {
            sqlx::query_scalar(
                "INSERT INTO settlement_statements (partner_id, period_from, period_to, status, revision,
                     computed_at, created_at)
                 VALUES ($1, $2, $3, 'DRAFT', 1, $4, $4) RETURNING id",
            )
            .bind(partner_id)
            .bind(period.from().unix_millis())
            .bind(period.to().unix_millis())
            .bind(now.unix_millis())
            .fetch_one(&mut *conn)
            .await?
        }
    };
    insert_lines(conn, id, &lines).await?;
    let st = statement_by_id(conn, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(RunOutcome::Computed(st))
}

async fn finalise_locked(
    conn: &mut PgConnection,
    id: i64,
    now: Timestamp,
) -> Result<FinaliseOutcome, StoreError> {
    use FinaliseOutcome as F;
    let Some(st) = statement_by_id(conn, id).await? else {
        return Ok(F::NotFound);
    };
    let h = &st.header;
    if h.status == StatementStatus::Final {
        return Ok(F::AlreadyFinal(st));
    }
    let finalisable_from = h.period.to().plus_millis(FINALISE_GRACE_MS);
    if now < finalisable_from {
        return Ok(F::PeriodNotOver { finalisable_from });
    }
    if let Some(statement_id) = overlapping_final(conn, h.partner_id, h.period, Some(id)).await? {
        return Ok(F::OverlapsFinal { statement_id });
    }
    // Checked before the aggregation: once nothing of a past period is pending, its set of
    // successful transactions cannot change any more.
    let count: i64 = sqlx::query_scalar(AssertSqlSafe(pending_sql(h.partner_id, h.period)))
        .fetch_one(&mut *conn)
        .await?;
    if count > 0 {
        return Ok(F::PendingTransactions { count });
    }
    if compute_lines(conn, h.partner_id, h.period).await? != st.lines {
        return Ok(F::Stale);
    }
    if st.issues() > 0 {
        return Ok(F::Unpriced { lines: st.issues() });
    }
    sqlx::query(
        "UPDATE settlement_statements SET status = 'FINAL', finalised_at = $1 WHERE id = $2 AND status = 'DRAFT'",
    )
    .bind(now.unix_millis())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let st = statement_by_id(conn, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(F::Finalised(st))
}

async fn add_model_locked(
    conn: &mut PgConnection,
    new: &NewSettlementModel,
    now: Timestamp,
) -> Result<ModelAddOutcome, StoreError> {
    if let Some(until) = latest_final_end(conn, Some(new.partner_id)).await?
        && new.valid_from < until
    {
        return Ok(ModelAddOutcome::InFinalPeriod { final_until: until });
    }
    let overlapping: Vec<SettlementModelRecord> = models(conn, Some(new.partner_id))
        .await?
        .into_iter()
        .filter(|m| {
            m.product_code == new.product_code
                && m.valid_to.is_none_or(|to| to > new.valid_from)
                && new.valid_to.is_none_or(|to| to > m.valid_from)
        })
        .collect();
    let superseded = match overlapping.as_slice() {
        [] => None,
        [only]
            if only.valid_to.is_none()
                && new.valid_to.is_none()
                && only.valid_from < new.valid_from =>
        {
            sqlx::query("UPDATE settlement_models SET valid_to = $1 WHERE id = $2")
                .bind(new.valid_from.unix_millis())
                .bind(only.id)
                .execute(&mut *conn)
                .await?;
            Some(model_by_id(conn, only.id).await?)
        }
        [first, ..] => {
            return Ok(ModelAddOutcome::Overlaps {
                existing: first.clone(),
            });
        }
    };
    let (kind, share_bp, flat_minor, flat_currency) = new.terms.columns();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO settlement_models (partner_id, product_code, kind, share_bp, flat_minor, flat_currency,
             valid_from, valid_to, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(new.partner_id)
    .bind(&new.product_code)
    .bind(kind)
    .bind(share_bp)
    .bind(flat_minor)
    .bind(flat_currency)
    .bind(new.valid_from.unix_millis())
    .bind(new.valid_to.map(Timestamp::unix_millis))
    .bind(now.unix_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(ModelAddOutcome::Added {
        model: model_by_id(conn, id).await?,
        superseded,
    })
}

async fn set_tax_rate_locked(
    conn: &mut PgConnection,
    new: &NewTaxRate,
    now: Timestamp,
) -> Result<TaxRateOutcome, StoreError> {
    if let Some(until) = latest_final_end(conn, None).await?
        && new.valid_from < until
    {
        return Ok(TaxRateOutcome::InFinalPeriod { final_until: until });
    }
    sqlx::query(
        "INSERT INTO csp_tax_rates (csp_id, valid_from, rate_bp, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (csp_id, valid_from) DO UPDATE SET rate_bp = excluded.rate_bp, created_at = excluded.created_at",
    )
    .bind(&new.csp_id)
    .bind(new.valid_from.unix_millis())
    .bind(i64::from(new.rate_bp))
    .bind(now.unix_millis())
    .execute(conn)
    .await?;
    Ok(TaxRateOutcome::Set(TaxRateRecord {
        csp_id: new.csp_id.clone(),
        rate_bp: new.rate_bp,
        valid_from: new.valid_from,
        created_at: now,
    }))
}

#[async_trait]
impl SettlementStore for PgStore {
    async fn add_settlement_model(
        &self,
        new: NewSettlementModel,
    ) -> Result<ModelAddOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let outcome = add_model_locked(&mut tx, &new, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_settlement_models(
        &self,
        partner_id: Option<i64>,
    ) -> Result<Vec<SettlementModelRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        models(&mut conn, partner_id).await
    }

    async fn set_tax_rate(&self, new: NewTaxRate) -> Result<TaxRateOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let outcome = set_tax_rate_locked(&mut tx, &new, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_tax_rates(&self) -> Result<Vec<TaxRateRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        tax_rates(&mut conn).await
    }

    async fn run_statement(
        &self,
        partner_id: i64,
        period: Period,
        now: Timestamp,
    ) -> Result<RunOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let outcome = run_locked(&mut tx, partner_id, period, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn finalise_statement(
        &self,
        id: i64,
        now: Timestamp,
    ) -> Result<FinaliseOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let outcome = finalise_locked(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn statement(&self, id: i64) -> Result<Option<Statement>, StoreError> {
        // The header and the lines from one snapshot, even while a draft is recomputed.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let st = statement_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(st)
    }

    async fn list_statements(
        &self,
        partner_id: Option<i64>,
    ) -> Result<Vec<StatementHeader>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            header_columns!(),
            " FROM settlement_statements s JOIN partners p ON p.id = s.partner_id
             WHERE $1::BIGINT IS NULL OR s.partner_id = $1
             ORDER BY s.period_from DESC, p.code, s.period_to DESC"
        ))
        .bind(partner_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(header_from_row)
        .collect()
    }
}
