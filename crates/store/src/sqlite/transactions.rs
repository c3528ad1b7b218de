use std::sync::Arc;

use async_trait::async_trait;
use dcbhub_domain::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, Statement, params};

use super::SqliteStore;
use super::outbox::insert_notification;
use super::prepared::Hot;
use super::writer::WriteConn;
use crate::{
    BeginOutcome, ChargedInline, InlineAnswer, InlineCsp, NewTransaction, Receipt, Settled,
    Settlement, SpendingLimits, StoreError, TransactionQuery, TransactionRecord, TransactionStore,
    TxStatus, TxType,
};

macro_rules! tx_columns {
    () => {
        "t.id, t.partner_id, t.ext_transaction_id, t.fingerprint, t.type, t.status, t.customer, t.customer_kind, \
         t.csp_id, t.account_key, t.amount_minor, t.currency, t.description, t.product_code, t.tax_included, \
         t.original_id, (SELECT o.ext_transaction_id FROM transactions o WHERE o.id = t.original_id), \
         t.refunded_minor, t.csp_reference, t.failure_code, t.pin_id, t.processing_until, t.next_check_at, \
         t.check_attempts, t.created_at, t.updated_at, t.reservation_ref"
    };
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Result<TransactionRecord, StoreError>> {
    let tx_type: String = row.get(4)?;
    let status: String = row.get(5)?;
    let check_attempts: i64 = row.get(23)?;
    let ts = |i: usize| row.get::<_, i64>(i).map(Timestamp::from_unix_millis);
    let base = TransactionRecord {
        id: row.get(0)?,
        partner_id: row.get(1)?,
        ext_transaction_id: row.get(2)?,
        fingerprint: row.get(3)?,
        tx_type: TxType::Charge,
        status: TxStatus::Pending,
        customer: row.get(6)?,
        customer_kind: row.get(7)?,
        csp_id: row.get(8)?,
        account_key: row.get(9)?,
        amount_minor: row.get(10)?,
        currency: row.get(11)?,
        description: row.get(12)?,
        product_code: row.get(13)?,
        tax_included: row.get::<_, i64>(14)? != 0,
        original_id: row.get(15)?,
        original_ext_transaction_id: row.get(16)?,
        refunded_minor: row.get(17)?,
        csp_reference: row.get(18)?,
        failure_code: row.get(19)?,
        pin_id: row.get(20)?,
        processing_until: ts(21)?,
        next_check_at: ts(22)?,
        check_attempts: u32::try_from(check_attempts).unwrap_or(u32::MAX),
        created_at: ts(24)?,
        updated_at: ts(25)?,
        reservation_ref: row.get(26)?,
    };
    Ok((|| {
        Ok(TransactionRecord {
            tx_type: TxType::parse(&tx_type)?,
            status: TxStatus::parse(&status)?,
            ..base
        })
    })())
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<TransactionRecord>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        tx_columns!(),
        " FROM transactions t WHERE t.id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()?
    .transpose()
}

pub(super) const TX_BY_EXT: &str = concat!(
    "SELECT ",
    tx_columns!(),
    " FROM transactions t WHERE t.partner_id = ?1 AND t.ext_transaction_id = ?2"
);

/// Runs [`TX_BY_EXT`], prepared on a reader or kept on the writer.
fn by_ext(
    stmt: &mut Statement<'_>,
    partner_id: i64,
    ext: &str,
) -> Result<Option<TransactionRecord>, StoreError> {
    stmt.query_row(params![partner_id, ext], from_row)
        .optional()?
        .transpose()
}

pub(super) const SPENT: &str =
    "SELECT COALESCE(SUM(CASE WHEN day_start >= ?3 THEN total END), 0), COALESCE(SUM(total), 0)
     FROM spending_days WHERE account_key = ?1 AND currency = ?2 AND day_start >= ?4";

/// This account's successful and pending charges since the day's and the month's start, from
/// the day totals of the month.
fn spent(
    conn: &WriteConn<'_>,
    r: &TransactionRecord,
    limits: &SpendingLimits,
) -> Result<(i64, i64), StoreError> {
    Ok(conn.prepared(Hot::Spent)?.query_row(
        params![
            r.account_key,
            r.currency,
            limits.day_start.unix_millis(),
            limits.month_start.unix_millis()
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

pub(super) const COUNT_SPENDING: &str =
    "INSERT INTO spending_days (account_key, currency, day_start, total) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (account_key, currency, day_start) DO UPDATE SET total = total + excluded.total";

/// Counts a charge in the total of the day it is written in.
fn count_spending(conn: &WriteConn<'_>, r: &TransactionRecord, day: i64) -> Result<(), StoreError> {
    conn.prepared(Hot::CountSpending)?.execute(params![
        r.account_key,
        r.currency,
        day,
        r.amount_minor
    ])?;
    Ok(())
}

/// Takes a PENDING charge that fails or is abandoned out of the day total it counted in.
fn uncount_spending(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE spending_days SET total = MAX(0, total - (SELECT amount_minor FROM transactions WHERE id = ?1))
         WHERE (account_key, currency, day_start) =
               (SELECT account_key, currency, spend_day FROM transactions WHERE id = ?1)",
    )?
    .execute([id])?;
    Ok(())
}

/// The partner's transaction with this one's `extTransactionID`, if there is one.
fn existing(
    conn: &WriteConn<'_>,
    new: &TransactionRecord,
) -> Result<Option<TransactionRecord>, StoreError> {
    by_ext(
        &mut *conn.prepared(Hot::TxByExt)?,
        new.partner_id,
        &new.ext_transaction_id,
    )
}

/// The checks that hold with the insert, and the consent used up: `Err` is the refusal. For a
/// refund, answers the original's `extTransactionID`. The single writer runs the whole write
/// alone: every check holds until it commits. The row of `new` may be in already: it does not
/// count against itself.
fn check(
    conn: &WriteConn<'_>,
    new: &TransactionRecord,
    limits: Option<&SpendingLimits>,
    now: Timestamp,
) -> Result<Result<Option<String>, BeginOutcome>, StoreError> {
    if let Some(limits) = limits {
        let over = new.amount_minor > limits.per_transaction || {
            let (day, month) = spent(conn, new, limits)?;
            day.saturating_add(new.amount_minor) > limits.per_day
                || month.saturating_add(new.amount_minor) > limits.per_month
        };
        if over {
            return Ok(Err(BeginOutcome::LimitExceeded));
        }
    }
    let mut original_ext = None;
    if let Some(original) = &new.original_id {
        let (amount, status, ext): (i64, String, String) = conn
            .prepare_cached(
                "SELECT amount_minor, status, ext_transaction_id FROM transactions WHERE id = ?1",
            )?
            .query_row([original], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .ok_or(StoreError::NotFound)?;
        original_ext = Some(ext);
        let refunding: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(amount_minor), 0) FROM transactions
                 WHERE original_id = ?1 AND status <> 'FAILED' AND id <> ?2",
            )?
            .query_row([original, &new.id], |r| r.get(0))?;
        if status != "SUCCESS" || refunding + new.amount_minor > amount {
            return Ok(Err(BeginOutcome::RefundExceedsOriginal));
        }
    }
    if let Some(pin_id) = &new.pin_id {
        let used = conn
            .prepare_cached(
                "UPDATE pin_challenges SET status = 'CONSUMED', updated_at = ?1
                 WHERE id = ?2 AND partner_id = ?3 AND status = 'VALIDATED' AND consent_expires_at > ?1",
            )?
            .execute(params![now.unix_millis(), pin_id, new.partner_id])?;
        if used == 0 {
            return Ok(Err(BeginOutcome::ConsentUnusable));
        }
    }
    Ok(Ok(original_ext))
}

/// Writes a new transaction as `record` describes it (PENDING, or final for an in-process
/// CSP): the row first, whose idempotency key finds a repeat in the same step, then the
/// checks (a refusal takes the row out again), then its count in the spending total of
/// `spend_day`. Answers the original's `extTransactionID` of a refund.
fn insert_checked(
    conn: &WriteConn<'_>,
    record: &TransactionRecord,
    limits: Option<&SpendingLimits>,
    spend_day: Option<i64>,
) -> Result<Result<Option<String>, BeginOutcome>, StoreError> {
    if !insert(conn, record, spend_day)? {
        let existing = existing(conn, record)?.ok_or_else(|| {
            StoreError::Backend("an idempotency key was taken by no transaction".into())
        })?;
        return Ok(Err(BeginOutcome::Existing(existing)));
    }
    match check(conn, record, limits, record.created_at)? {
        Ok(original_ext) => {
            if let Some(day) = spend_day {
                count_spending(conn, record, day)?;
            }
            Ok(Ok(original_ext))
        }
        Err(refused) => {
            conn.prepare_cached("DELETE FROM transactions WHERE id = ?1")?
                .execute([&record.id])?;
            Ok(Err(refused))
        }
    }
}

/// `ON CONFLICT … DO NOTHING`: a repeat is found by the insert's own uniqueness check instead
/// of a lookup before it.
pub(super) const INSERT_TRANSACTION: &str = "INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status, customer,
         customer_kind, csp_id, account_key, amount_minor, currency, description, product_code, tax_included,
         original_id, pin_id, processing_until, next_check_at, created_at, updated_at, csp_reference, failure_code,
         spend_day)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?20, ?21, ?22, ?23)
     ON CONFLICT (partner_id, ext_transaction_id) DO NOTHING";

/// Inserts the row as `record` describes it; `false` when the partner has a transaction with
/// its `extTransactionID` already.
fn insert(
    conn: &WriteConn<'_>,
    r: &TransactionRecord,
    spend_day: Option<i64>,
) -> Result<bool, StoreError> {
    let inserted = conn.prepared(Hot::InsertTransaction)?.execute(params![
        r.id,
        r.partner_id,
        r.ext_transaction_id,
        r.fingerprint,
        r.tx_type.as_str(),
        r.status.as_str(),
        r.customer,
        r.customer_kind,
        r.csp_id,
        r.account_key,
        r.amount_minor,
        r.currency,
        r.description,
        r.product_code,
        i64::from(r.tax_included),
        r.original_id,
        r.pin_id,
        r.processing_until.unix_millis(),
        r.next_check_at.unix_millis(),
        r.created_at.unix_millis(),
        r.csp_reference,
        r.failure_code,
        spend_day
    ])?;
    Ok(inserted == 1)
}

/// The day a new charge counts in: charges written with spending windows count.
fn spend_day(limits: Option<&SpendingLimits>) -> Option<i64> {
    limits.map(|l| l.day_start.unix_millis())
}

/// The `PENDING` row and its checks; answers the original's `extTransactionID` of a refund.
/// `record` is the row as the caller built it, so that a repeated run writes the same.
fn begin(
    conn: &WriteConn<'_>,
    record: &TransactionRecord,
    limits: Option<&SpendingLimits>,
) -> Result<Result<Option<String>, BeginOutcome>, StoreError> {
    insert_checked(conn, record, limits, spend_day(limits))
}

/// A refund at a CSP that answers in process: the CSP is asked inside the write, after the
/// checks, so that the refundable amount it was checked against holds until its answer is
/// stored. It runs once (its group with savepoints).
fn begin_inline(
    conn: &WriteConn<'_>,
    new: NewTransaction,
    csp: InlineCsp,
    receipt: &Receipt,
) -> Result<ChargedInline, StoreError> {
    let now = Timestamp::now();
    let limits = new.limits;
    let pending = new.into_record(now, None);
    if let Some(existing) = existing(conn, &pending)? {
        return Ok(ChargedInline::NotBegun(BeginOutcome::Existing(existing)));
    }
    let original_ext = match check(conn, &pending, limits.as_ref(), now)? {
        Ok(original_ext) => original_ext,
        Err(refused) => return Ok(ChargedInline::NotBegun(refused)),
    };
    let answer = csp();
    let pin = pending.pin_id.clone();
    let Some(mut record) = pending.answered(&answer) else {
        if let Some(pin) = pin {
            give_back_consent(conn, &pin, now)?;
        }
        return not_charged(&answer);
    };
    record.original_ext_transaction_id = original_ext;
    // Refunds count in no spending total.
    if !insert(conn, &record, None)? {
        return Err(StoreError::Backend(
            "a checked refund's key was taken".into(),
        ));
    }
    after_final_of_answer(conn, &record, receipt, answer.receipt_sent())?;
    Ok(ChargedInline::Written(record))
}

/// A charge the CSP has already answered, as the caller built its row: the row and its
/// checks. A refusal comes back for the caller to undo what the CSP booked.
fn write_answered(
    conn: &WriteConn<'_>,
    record: &TransactionRecord,
    limits: Option<&SpendingLimits>,
    receipt: &Receipt,
    receipt_sent: bool,
) -> Result<Result<(), BeginOutcome>, StoreError> {
    // A decline never counts against the limits.
    let day = spend_day(limits).filter(|_| record.status != TxStatus::Failed);
    if let Err(refused) = insert_checked(conn, record, limits, day)? {
        return Ok(Err(refused));
    }
    after_final_of_answer(conn, record, receipt, receipt_sent)?;
    Ok(Ok(()))
}

/// What an answer that makes no row comes back as: the CSP refused before charging.
fn not_charged(answer: &InlineAnswer) -> Result<ChargedInline, StoreError> {
    match *answer {
        InlineAnswer::Unavailable { retry_after_secs } => {
            Ok(ChargedInline::Unavailable { retry_after_secs })
        }
        InlineAnswer::Final { .. } | InlineAnswer::Unknown { .. } => {
            Err(StoreError::Backend("an answered charge made no row".into()))
        }
    }
}

/// Only a success has anything to follow it: no receipt for a decline.
fn after_final_of_answer(
    conn: &WriteConn<'_>,
    record: &TransactionRecord,
    receipt: &Receipt,
    receipt_sent: bool,
) -> Result<(), StoreError> {
    if record.status == TxStatus::Success {
        after_final(conn, record, receipt, receipt_sent, record.created_at)?;
    }
    Ok(())
}

/// What a transaction's final state brings with it: a successful refund counts against its
/// original; the receipt is queued.
fn after_final(
    conn: &WriteConn<'_>,
    record: &TransactionRecord,
    receipt: &Receipt,
    receipt_sent: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    if let (TxType::Refund, TxStatus::Success, Some(original)) =
        (record.tx_type, record.status, &record.original_id)
    {
        conn.prepare_cached(
            "UPDATE transactions SET refunded_minor = refunded_minor + ?1, updated_at = ?2 WHERE id = ?3",
        )?
        .execute(params![record.amount_minor, now.unix_millis(), original])?;
    }
    if let Some(n) = receipt {
        insert_notification(conn, n, now, receipt_sent)?;
    }
    Ok(())
}

fn give_back_consent(conn: &Connection, pin: &str, now: Timestamp) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE pin_challenges SET status = 'VALIDATED', updated_at = ?1 WHERE id = ?2 AND status = 'CONSUMED'",
    )?
    .execute(params![now.unix_millis(), pin])?;
    Ok(())
}

fn settle(
    conn: &WriteConn<'_>,
    id: &str,
    settlement: &Settlement,
    receipt: &Receipt,
) -> Result<Settled, StoreError> {
    let now = Timestamp::now();
    let (status, reference, code) = match settlement {
        Settlement::Success { csp_reference } => ("SUCCESS", Some(csp_reference.as_str()), None),
        Settlement::Failed { failure_code } => ("FAILED", None, Some(failure_code.as_str())),
    };
    // A plain UPDATE and a point read: `RETURNING` costs SQLite several times more (it
    // buffers the returned rows in an ephemeral table).
    let moved = conn
        .prepare_cached(
            "UPDATE transactions SET status = ?1, csp_reference = ?2, failure_code = ?3, updated_at = ?4
             WHERE id = ?5 AND status = 'PENDING'",
        )?
        .execute(params![status, reference, code, now.unix_millis(), id])?
        == 1;
    let record = by_id(conn, id)?.ok_or(StoreError::NotFound)?;
    if moved && record.status == TxStatus::Failed {
        uncount_spending(conn, id)?;
    }
    if moved {
        after_final(conn, &record, receipt, false, now)?;
    }
    Ok(Settled { record, moved })
}

/// The row a write was given back: the writer drops its share before it answers, so this
/// copies only should that ever change.
fn sole(record: Arc<TransactionRecord>) -> TransactionRecord {
    Arc::try_unwrap(record).unwrap_or_else(|shared| (*shared).clone())
}

#[async_trait]
impl TransactionStore for SqliteStore {
    async fn begin_transaction(&self, new: NewTransaction) -> Result<BeginOutcome, StoreError> {
        let limits = new.limits;
        let record = Arc::new(new.into_record(Timestamp::now(), None));
        let written = record.clone();
        let begun = self
            .writer
            .write(move |conn| begin(conn, &written, limits.as_ref()))
            .await?;
        Ok(match begun {
            Ok(original_ext) => BeginOutcome::Created(TransactionRecord {
                original_ext_transaction_id: original_ext,
                ..sole(record)
            }),
            Err(refused) => refused,
        })
    }

    async fn begin_inline(
        &self,
        new: NewTransaction,
        csp: InlineCsp,
        receipt: Receipt,
    ) -> Result<ChargedInline, StoreError> {
        if new.original_id.is_some() {
            return self
                .writer
                .write_once(move |conn| begin_inline(conn, new, csp, &receipt))
                .await;
        }
        // A charge asks the CSP first, on the caller's thread, as on PostgreSQL: the single
        // writer is left the checks and the row (the CSP's books were a tenth of its time per
        // charge). The caller undoes the booking when the write refuses or fails.
        let answer = csp();
        let limits = new.limits;
        let Some(record) = new.into_answered(&answer, Timestamp::now(), None) else {
            return not_charged(&answer);
        };
        // The row is built here, off the writer, and shared with the write.
        let record = Arc::new(record);
        let written = record.clone();
        let receipt_sent = answer.receipt_sent();
        let admitted = self
            .writer
            .write(move |conn| {
                write_answered(conn, &written, limits.as_ref(), &receipt, receipt_sent)
            })
            .await?;
        Ok(match admitted {
            Ok(()) => ChargedInline::Written(sole(record)),
            Err(refused) => ChargedInline::NotBegun(refused),
        })
    }

    async fn settle_transaction(
        &self,
        id: &str,
        settlement: Settlement,
        receipt: Receipt,
    ) -> Result<Settled, StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| settle(conn, &id, &settlement, &receipt))
            .await
    }

    async fn abandon_transaction(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| {
                let pin: Option<Option<String>> = conn
                    .prepare_cached(
                        "SELECT pin_id FROM transactions WHERE id = ?1 AND status = 'PENDING'",
                    )?
                    .query_row([&id], |r| r.get(0))
                    .optional()?;
                let Some(pin) = pin else { return Ok(()) };
                uncount_spending(conn, &id)?;
                conn.prepare_cached(
                    "DELETE FROM transactions WHERE id = ?1 AND status = 'PENDING'",
                )?
                .execute([&id])?;
                if let Some(pin) = pin {
                    give_back_consent(conn, &pin, Timestamp::now())?;
                }
                Ok(())
            })
            .await
    }

    async fn record_reservation(&self, id: &str, reference: &str) -> Result<(), StoreError> {
        let (id, reference) = (id.to_owned(), reference.to_owned());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE transactions SET reservation_ref = ?1 WHERE id = ?2 AND status = 'PENDING'",
                )?
                .execute(params![reference, id])?;
                Ok(())
            })
            .await
    }

    async fn defer_transaction(
        &self,
        id: &str,
        next_check_at: Timestamp,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE transactions SET next_check_at = ?1, processing_until = MIN(processing_until, ?2)
                     WHERE id = ?3 AND status = 'PENDING'",
                )?
                .execute(params![next_check_at.unix_millis(), Timestamp::now().unix_millis(), id])?;
                Ok(())
            })
            .await
    }

    async fn transaction_by_ext(
        &self,
        partner_id: i64,
        ext: &str,
    ) -> Result<Option<TransactionRecord>, StoreError> {
        self.readers
            .read(|conn| by_ext(&mut *conn.prepare_cached(TX_BY_EXT)?, partner_id, ext))
    }

    async fn lease_pending(
        &self,
        now: Timestamp,
        max: u32,
        lease_ms: i64,
    ) -> Result<Vec<TransactionRecord>, StoreError> {
        self.writer
            .write(move |conn| {
                let ids: Vec<String> = conn
                    .prepare_cached(
                        "UPDATE transactions SET next_check_at = ?1, check_attempts = check_attempts + 1
                         WHERE id IN (SELECT id FROM transactions WHERE status = 'PENDING' AND next_check_at <= ?2
                                      AND processing_until <= ?2 ORDER BY next_check_at LIMIT ?3)
                         RETURNING id",
                    )?
                    .query_map(params![now.unix_millis() + lease_ms, now.unix_millis(), max], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                ids.iter().filter_map(|id| by_id(conn, id).transpose()).collect()
            })
            .await
    }

    async fn search_transactions(
        &self,
        q: TransactionQuery,
    ) -> Result<Vec<TransactionRecord>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT ",
                tx_columns!(),
                " FROM transactions t WHERE t.customer = ?1 AND t.created_at >= ?2 AND t.created_at < ?3
                  AND (?4 IS NULL OR (t.created_at, t.id) > ((SELECT created_at FROM transactions WHERE id = ?4), ?4))
                  ORDER BY t.created_at, t.id LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                params![q.customer, q.from.unix_millis(), q.to.unix_millis(), q.after, q.limit],
                from_row,
            )?;
            rows.map(|r| r.map_err(StoreError::from).and_then(|r| r)).collect()
        })
    }
}
