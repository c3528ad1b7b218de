//! Settlement on SQLite. A statement is aggregated on a read connection inside one read
//! transaction (a consistent snapshot), so the single writer never waits for the
//! aggregation; the writer then stores the result only if nothing it depends on moved since
//! the snapshot (the statement's revision, the inputs' version), and otherwise the whole
//! computation is retried.

use async_trait::async_trait;
use dcbhub_domain::{PartnerCode, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::records::corrupt;
use crate::settlement_records::{
    AggregateRow, FINALISE_GRACE_MS, FinaliseOutcome, Inputs, LineIssue, LineKind, ModelAddOutcome,
    ModelTerms, NewSettlementModel, NewTaxRate, Period, RunOutcome, SettlementModelRecord,
    Statement, StatementHeader, StatementLine, StatementStatus, TaxRateOutcome, TaxRateRecord,
    aggregate_sql, breakpoints, build_lines, final_until, pending_sql,
};
use crate::{SettlementStore, StoreError, TxType};

/// How often a computation is retried when its inputs moved before it could be stored.
const ATTEMPTS: usize = 3;

const MODEL_COLUMNS: &str = "m.id, m.partner_id, p.code, m.product_code, m.kind, m.share_bp, \
     m.flat_minor, m.flat_currency, m.valid_from, m.valid_to, m.created_at";

const HEADER_COLUMNS: &str = "s.id, s.partner_id, p.code, s.period_from, s.period_to, s.status, \
     s.revision, s.computed_at, s.finalised_at, s.created_at";

const LINE_COLUMNS: &str = "kind, currency, product_code, model_id, model_kind, share_bp, \
     flat_minor, flat_currency, tax_rate_bp, charges, refunds, gross_minor, refunded_minor, \
     net_minor, tax_minor, csp_share_minor, payout_minor, issue";

type Parsed<T> = rusqlite::Result<Result<T, StoreError>>;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn model_from_row(row: &Row<'_>) -> Parsed<SettlementModelRecord> {
    let code: String = row.get(2)?;
    let kind: String = row.get(4)?;
    let terms = ModelTerms::from_columns(&kind, row.get(5)?, row.get(6)?, row.get(7)?);
    let valid_to: Option<i64> = row.get(9)?;
    let (id, partner_id, product_code, valid_from, created_at) = (
        row.get(0)?,
        row.get(1)?,
        row.get(3)?,
        row.get(8)?,
        row.get(10)?,
    );
    Ok((|| {
        Ok(SettlementModelRecord {
            id,
            partner_id,
            partner_code: PartnerCode::parse(&code).map_err(corrupt)?,
            product_code,
            terms: terms?,
            valid_from: ts(valid_from),
            valid_to: valid_to.map(ts),
            created_at: ts(created_at),
        })
    })())
}

fn header_from_row(row: &Row<'_>) -> Parsed<StatementHeader> {
    let code: String = row.get(2)?;
    let status: String = row.get(5)?;
    let (from, to): (i64, i64) = (row.get(3)?, row.get(4)?);
    let finalised_at: Option<i64> = row.get(8)?;
    let (id, partner_id, revision, computed_at, created_at) = (
        row.get(0)?,
        row.get(1)?,
        row.get(6)?,
        row.get(7)?,
        row.get(9)?,
    );
    Ok((|| {
        Ok(StatementHeader {
            id,
            partner_id,
            partner_code: PartnerCode::parse(&code).map_err(corrupt)?,
            period: Period::new(ts(from), ts(to))
                .ok_or_else(|| StoreError::Backend("stored statement period is empty".into()))?,
            status: StatementStatus::parse(&status)?,
            revision,
            computed_at: ts(computed_at),
            finalised_at: finalised_at.map(ts),
            created_at: ts(created_at),
        })
    })())
}

fn line_from_row(row: &Row<'_>) -> Parsed<StatementLine> {
    let kind: String = row.get(0)?;
    let model_kind: Option<String> = row.get(4)?;
    let (share_bp, flat_minor, flat_currency) = (row.get(5)?, row.get(6)?, row.get(7)?);
    let tax_rate_bp: i64 = row.get(8)?;
    let issue: Option<String> = row.get(17)?;
    let base = StatementLine {
        kind: LineKind::Charges,
        currency: row.get(1)?,
        product_code: row.get(2)?,
        model_id: row.get(3)?,
        terms: None,
        tax_rate_bp: 0,
        charges: row.get(9)?,
        refunds: row.get(10)?,
        gross_minor: row.get(11)?,
        refunded_minor: row.get(12)?,
        net_minor: row.get(13)?,
        tax_minor: row.get(14)?,
        csp_share_minor: row.get(15)?,
        payout_minor: row.get(16)?,
        issue: None,
    };
    Ok((|| {
        Ok(StatementLine {
            kind: LineKind::parse(&kind)?,
            terms: model_kind
                .map(|k| ModelTerms::from_columns(&k, share_bp, flat_minor, flat_currency))
                .transpose()?,
            tax_rate_bp: u32::try_from(tax_rate_bp)
                .map_err(|_| StoreError::Backend("stored tax rate out of range".into()))?,
            issue: issue.as_deref().map(LineIssue::parse).transpose()?,
            ..base
        })
    })())
}

fn collect<T>(rows: impl Iterator<Item = Parsed<T>>) -> Result<Vec<T>, StoreError> {
    rows.map(|r| r.map_err(StoreError::from).and_then(|x| x))
        .collect()
}

fn models(
    conn: &Connection,
    partner_id: Option<i64>,
) -> Result<Vec<SettlementModelRecord>, StoreError> {
    let sql = format!(
        "SELECT {MODEL_COLUMNS} FROM settlement_models m JOIN partners p ON p.id = m.partner_id
         WHERE ?1 IS NULL OR m.partner_id = ?1
         ORDER BY p.code, m.product_code NULLS FIRST, m.valid_from"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([partner_id], model_from_row)?;
    collect(rows)
}

fn model_by_id(conn: &Connection, id: i64) -> Result<SettlementModelRecord, StoreError> {
    let sql = format!(
        "SELECT {MODEL_COLUMNS} FROM settlement_models m JOIN partners p ON p.id = m.partner_id
         WHERE m.id = ?1"
    );
    conn.prepare_cached(&sql)?
        .query_row([id], model_from_row)
        .optional()?
        .ok_or(StoreError::NotFound)?
}

fn tax_rates(conn: &Connection) -> Result<Vec<TaxRateRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT csp_id, rate_bp, valid_from, created_at FROM csp_tax_rates ORDER BY csp_id, valid_from",
    )?;
    let rows = stmt.query_map([], |r| {
        let rate: i64 = r.get(1)?;
        let (csp_id, from, created): (String, i64, i64) = (r.get(0)?, r.get(2)?, r.get(3)?);
        Ok(u32::try_from(rate)
            .map_err(|_| StoreError::Backend("stored tax rate out of range".into()))
            .map(|rate_bp| TaxRateRecord {
                csp_id,
                rate_bp,
                valid_from: ts(from),
                created_at: ts(created),
            }))
    })?;
    collect(rows)
}

fn inputs_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT version FROM settlement_inputs_version WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

fn header_where(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Option<StatementHeader>, StoreError> {
    let sql = format!(
        "SELECT {HEADER_COLUMNS} FROM settlement_statements s JOIN partners p ON p.id = s.partner_id WHERE {filter}"
    );
    conn.prepare_cached(&sql)?
        .query_row(p, header_from_row)
        .optional()?
        .transpose()
}

fn header_by_period(
    conn: &Connection,
    partner_id: i64,
    period: Period,
) -> Result<Option<StatementHeader>, StoreError> {
    header_where(
        conn,
        "s.partner_id = ?1 AND s.period_from = ?2 AND s.period_to = ?3",
        params![
            partner_id,
            period.from().unix_millis(),
            period.to().unix_millis()
        ],
    )
}

fn statement_by_id(conn: &Connection, id: i64) -> Result<Option<Statement>, StoreError> {
    let Some(header) = header_where(conn, "s.id = ?1", [id])? else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {LINE_COLUMNS} FROM settlement_lines WHERE statement_id = ?1 ORDER BY line_no"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let lines = collect(stmt.query_map([id], line_from_row)?)?;
    Ok(Some(Statement { header, lines }))
}

/// Another FINAL statement of the partner whose period overlaps `period`.
fn overlapping_final(
    conn: &Connection,
    partner_id: i64,
    period: Period,
    except: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM settlement_statements
             WHERE partner_id = ?1 AND status = 'FINAL' AND period_from < ?3 AND period_to > ?2
               AND id IS NOT ?4
             ORDER BY period_from LIMIT 1",
        )?
        .query_row(
            params![
                partner_id,
                period.from().unix_millis(),
                period.to().unix_millis(),
                except
            ],
            |r| r.get(0),
        )
        .optional()?)
}

/// End of the latest FINAL period of the partner (or of any partner).
fn latest_final_end(
    conn: &Connection,
    partner_id: Option<i64>,
) -> Result<Option<Timestamp>, StoreError> {
    let max: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(period_to) FROM settlement_statements
             WHERE status = 'FINAL' AND (?1 IS NULL OR partner_id = ?1)",
        )?
        .query_row([partner_id], |r| r.get(0))?;
    Ok(final_until(max))
}

fn compute_lines(
    conn: &Connection,
    partner_id: i64,
    period: Period,
) -> Result<Vec<StatementLine>, StoreError> {
    let inputs = Inputs {
        models: models(conn, Some(partner_id))?,
        tax_rates: tax_rates(conn)?,
    };
    let points = breakpoints(&inputs);
    let mut stmt = conn.prepare(&aggregate_sql(partner_id, period, &points))?;
    let rows = stmt.query_map([], |r| {
        let tx_type: String = r.get(1)?;
        let row = |tx_type| -> rusqlite::Result<AggregateRow> {
            Ok(AggregateRow {
                adjustment: r.get::<_, i64>(0)? != 0,
                tx_type,
                currency: r.get(2)?,
                product_code: r.get(3)?,
                tax_included: r.get::<_, i64>(4)? != 0,
                csp_id: r.get(5)?,
                segment: r.get(6)?,
                count: r.get(7)?,
                sum_minor: r.get(8)?,
            })
        };
        match TxType::parse(&tx_type) {
            Ok(t) => row(t).map(Ok),
            Err(e) => Ok(Err(e)),
        }
    })?;
    let rows = collect(rows)?;
    build_lines(&inputs, &points, rows)
}

/// Runs `f` in one read transaction, so every query sees the same snapshot.
fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN")?;
    let result = f(conn);
    let end = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let value = result?;
    end?;
    Ok(value)
}

enum RunSnapshot {
    Done(RunOutcome),
    Ready(Vec<StatementLine>),
}

fn run_snapshot(
    conn: &Connection,
    partner_id: i64,
    period: Period,
) -> Result<RunSnapshot, StoreError> {
    let existing = header_by_period(conn, partner_id, period)?;
    if let Some(h) = &existing
        && h.status == StatementStatus::Final
    {
        let st = statement_by_id(conn, h.id)?.ok_or(StoreError::NotFound)?;
        return Ok(RunSnapshot::Done(RunOutcome::Final(st)));
    }
    if let Some(statement_id) =
        overlapping_final(conn, partner_id, period, existing.as_ref().map(|h| h.id))?
    {
        return Ok(RunSnapshot::Done(RunOutcome::OverlapsFinal {
            statement_id,
        }));
    }
    Ok(RunSnapshot::Ready(compute_lines(conn, partner_id, period)?))
}

fn insert_lines(
    conn: &Connection,
    statement_id: i64,
    lines: &[StatementLine],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO settlement_lines (statement_id, line_no, {LINE_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
    ))?;
    for (no, l) in lines.iter().enumerate() {
        let (model_kind, share_bp, flat_minor, flat_currency) = match &l.terms {
            Some(t) => {
                let (k, s, f, c) = t.columns();
                (Some(k), s, f, c)
            }
            None => (None, None, None, None),
        };
        stmt.execute(params![
            statement_id,
            i64::try_from(no).unwrap_or(i64::MAX),
            l.kind.as_str(),
            l.currency,
            l.product_code,
            l.model_id,
            model_kind,
            share_bp,
            flat_minor,
            flat_currency,
            i64::from(l.tax_rate_bp),
            l.charges,
            l.refunds,
            l.gross_minor,
            l.refunded_minor,
            l.net_minor,
            l.tax_minor,
            l.csp_share_minor,
            l.payout_minor,
            l.issue.map(LineIssue::as_str),
        ])?;
    }
    Ok(())
}

/// Stores a computed draft. Two runs racing both store a correct draft (each as of its own
/// snapshot); finalising checks the draft against the data again, so no check is needed here
/// beyond the statement's state.
fn write_draft(
    conn: &Connection,
    partner_id: i64,
    period: Period,
    lines: &[StatementLine],
    now: Timestamp,
) -> Result<RunOutcome, StoreError> {
    let current = header_by_period(conn, partner_id, period)?;
    if let Some(h) = &current
        && h.status == StatementStatus::Final
    {
        let st = statement_by_id(conn, h.id)?.ok_or(StoreError::NotFound)?;
        return Ok(RunOutcome::Final(st));
    }
    if let Some(statement_id) =
        overlapping_final(conn, partner_id, period, current.as_ref().map(|h| h.id))?
    {
        return Ok(RunOutcome::OverlapsFinal { statement_id });
    }
    let id = match current {
        Some(h) => {
            conn.prepare_cached(
                "UPDATE settlement_statements SET revision = revision + 1, computed_at = ?1 WHERE id = ?2",
            )?
            .execute(params![now.unix_millis(), h.id])?;
            conn.prepare_cached("DELETE FROM settlement_lines WHERE statement_id = ?1")?
                .execute([h.id])?;
            h.id
        }
        None => conn
            .prepare_cached(
                "INSERT INTO settlement_statements (partner_id, period_from, period_to, status, revision,
                     computed_at, created_at)
                 VALUES (?1, ?2, ?3, 'DRAFT', 1, ?4, ?4) RETURNING id",
            )?
            .query_row(
                params![
                    partner_id,
                    period.from().unix_millis(),
                    period.to().unix_millis(),
                    now.unix_millis()
                ],
                |r| r.get(0),
            )?,
    };
    insert_lines(conn, id, lines)?;
    let st = statement_by_id(conn, id)?.ok_or(StoreError::NotFound)?;
    Ok(RunOutcome::Computed(st))
}

enum FinaliseSnapshot {
    Done(FinaliseOutcome),
    Ready { revision: i64, version: i64 },
}

fn finalise_snapshot(
    conn: &Connection,
    id: i64,
    now: Timestamp,
) -> Result<FinaliseSnapshot, StoreError> {
    use FinaliseOutcome as F;
    let done = |o| Ok(FinaliseSnapshot::Done(o));
    let Some(st) = statement_by_id(conn, id)? else {
        return done(F::NotFound);
    };
    let h = &st.header;
    if h.status == StatementStatus::Final {
        return done(F::AlreadyFinal(st));
    }
    let finalisable_from = h.period.to().plus_millis(FINALISE_GRACE_MS);
    if now < finalisable_from {
        return done(F::PeriodNotOver { finalisable_from });
    }
    if let Some(statement_id) = overlapping_final(conn, h.partner_id, h.period, Some(id))? {
        return done(F::OverlapsFinal { statement_id });
    }
    let count: i64 = conn
        .prepare(&pending_sql(h.partner_id, h.period))?
        .query_row([], |r| r.get(0))?;
    if count > 0 {
        return done(F::PendingTransactions { count });
    }
    let version = inputs_version(conn)?;
    if compute_lines(conn, h.partner_id, h.period)? != st.lines {
        return done(F::Stale);
    }
    if st.issues() > 0 {
        return done(F::Unpriced { lines: st.issues() });
    }
    Ok(FinaliseSnapshot::Ready {
        revision: h.revision,
        version,
    })
}

/// Marks the draft final; `None` when it or the inputs moved since the snapshot.
fn write_final(
    conn: &Connection,
    id: i64,
    revision: i64,
    version: i64,
    now: Timestamp,
) -> Result<Option<FinaliseOutcome>, StoreError> {
    let Some(st) = statement_by_id(conn, id)? else {
        return Ok(Some(FinaliseOutcome::NotFound));
    };
    if st.header.status == StatementStatus::Final {
        return Ok(Some(FinaliseOutcome::AlreadyFinal(st)));
    }
    if st.header.revision != revision || inputs_version(conn)? != version {
        return Ok(None);
    }
    if let Some(statement_id) =
        overlapping_final(conn, st.header.partner_id, st.header.period, Some(id))?
    {
        return Ok(Some(FinaliseOutcome::OverlapsFinal { statement_id }));
    }
    conn.prepare_cached(
        "UPDATE settlement_statements SET status = 'FINAL', finalised_at = ?1 WHERE id = ?2 AND status = 'DRAFT'",
    )?
    .execute(params![now.unix_millis(), id])?;
    let st = statement_by_id(conn, id)?.ok_or(StoreError::NotFound)?;
    Ok(Some(FinaliseOutcome::Finalised(st)))
}

fn add_model(
    conn: &Connection,
    new: &NewSettlementModel,
    now: Timestamp,
) -> Result<ModelAddOutcome, StoreError> {
    if let Some(until) = latest_final_end(conn, Some(new.partner_id))?
        && new.valid_from < until
    {
        return Ok(ModelAddOutcome::InFinalPeriod { final_until: until });
    }
    let overlapping: Vec<SettlementModelRecord> = models(conn, Some(new.partner_id))?
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
            conn.prepare_cached("UPDATE settlement_models SET valid_to = ?1 WHERE id = ?2")?
                .execute(params![new.valid_from.unix_millis(), only.id])?;
            Some(model_by_id(conn, only.id)?)
        }
        [first, ..] => {
            return Ok(ModelAddOutcome::Overlaps {
                existing: first.clone(),
            });
        }
    };
    let (kind, share_bp, flat_minor, flat_currency) = new.terms.columns();
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO settlement_models (partner_id, product_code, kind, share_bp, flat_minor, flat_currency,
                 valid_from, valid_to, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        )?
        .query_row(
            params![
                new.partner_id,
                new.product_code,
                kind,
                share_bp,
                flat_minor,
                flat_currency,
                new.valid_from.unix_millis(),
                new.valid_to.map(Timestamp::unix_millis),
                now.unix_millis()
            ],
            |r| r.get(0),
        )?;
    Ok(ModelAddOutcome::Added {
        model: model_by_id(conn, id)?,
        superseded,
    })
}

fn set_tax_rate(
    conn: &Connection,
    new: &NewTaxRate,
    now: Timestamp,
) -> Result<TaxRateOutcome, StoreError> {
    if let Some(until) = latest_final_end(conn, None)?
        && new.valid_from < until
    {
        return Ok(TaxRateOutcome::InFinalPeriod { final_until: until });
    }
    conn.prepare_cached(
        "INSERT INTO csp_tax_rates (csp_id, valid_from, rate_bp, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (csp_id, valid_from) DO UPDATE SET rate_bp = excluded.rate_bp, created_at = excluded.created_at",
    )?
    .execute(params![
        new.csp_id,
        new.valid_from.unix_millis(),
        i64::from(new.rate_bp),
        now.unix_millis()
    ])?;
    Ok(TaxRateOutcome::Set(TaxRateRecord {
        csp_id: new.csp_id.clone(),
        rate_bp: new.rate_bp,
        valid_from: new.valid_from,
        created_at: now,
    }))
}

impl SqliteStore {
    /// A read that may take seconds (an aggregation over a period): on a multi-threaded
    /// runtime the worker thread is handed over to other tasks meanwhile.
    fn long_read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let read = || self.readers.read(|c| in_snapshot(c, f));
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(read)
            }
            _ => read(),
        }
    }
}

fn moved() -> StoreError {
    StoreError::Backend("settlement inputs kept changing during the computation; try again".into())
}

#[async_trait]
impl SettlementStore for SqliteStore {
    async fn add_settlement_model(
        &self,
        new: NewSettlementModel,
    ) -> Result<ModelAddOutcome, StoreError> {
        let now = Timestamp::now();
        self.writer
            .write(move |conn| add_model(conn, &new, now))
            .await
    }

    async fn list_settlement_models(
        &self,
        partner_id: Option<i64>,
    ) -> Result<Vec<SettlementModelRecord>, StoreError> {
        self.readers.read(|c| models(c, partner_id))
    }

    async fn set_tax_rate(&self, new: NewTaxRate) -> Result<TaxRateOutcome, StoreError> {
        let now = Timestamp::now();
        self.writer
            .write(move |conn| set_tax_rate(conn, &new, now))
            .await
    }

    async fn list_tax_rates(&self) -> Result<Vec<TaxRateRecord>, StoreError> {
        self.readers.read(tax_rates)
    }

    async fn run_statement(
        &self,
        partner_id: i64,
        period: Period,
        now: Timestamp,
    ) -> Result<RunOutcome, StoreError> {
        let lines = match self.long_read(|c| run_snapshot(c, partner_id, period))? {
            RunSnapshot::Done(outcome) => return Ok(outcome),
            RunSnapshot::Ready(lines) => lines,
        };
        self.writer
            .write(move |conn| write_draft(conn, partner_id, period, &lines, now))
            .await
    }

    async fn finalise_statement(
        &self,
        id: i64,
        now: Timestamp,
    ) -> Result<FinaliseOutcome, StoreError> {
        for _ in 0..ATTEMPTS {
            let (revision, version) = match self.long_read(|c| finalise_snapshot(c, id, now))? {
                FinaliseSnapshot::Done(outcome) => return Ok(outcome),
                FinaliseSnapshot::Ready { revision, version } => (revision, version),
            };
            let written = self
                .writer
                .write(move |conn| write_final(conn, id, revision, version, now))
                .await?;
            if let Some(outcome) = written {
                return Ok(outcome);
            }
        }
        Err(moved())
    }

    async fn statement(&self, id: i64) -> Result<Option<Statement>, StoreError> {
        self.readers
            .read(|c| in_snapshot(c, |c| statement_by_id(c, id)))
    }

    async fn list_statements(
        &self,
        partner_id: Option<i64>,
    ) -> Result<Vec<StatementHeader>, StoreError> {
        self.readers.read(|c| {
            let sql = format!(
                "SELECT {HEADER_COLUMNS} FROM settlement_statements s JOIN partners p ON p.id = s.partner_id
                 WHERE ?1 IS NULL OR s.partner_id = ?1
                 ORDER BY s.period_from DESC, p.code, s.period_to DESC"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([partner_id], header_from_row)?;
            collect(rows)
        })
    }
}
