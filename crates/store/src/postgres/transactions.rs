use async_trait::async_trait;
use dcbhub_domain::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::PgStore;
use super::answered_groups::{AnsweredCharge, GroupOutcome};
use super::outbox::insert_notification;
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

fn from_row(row: &PgRow) -> Result<TransactionRecord, StoreError> {
    let check_attempts: i32 = row.try_get(23)?;
    let ts = |i: usize| row.try_get::<i64, _>(i).map(Timestamp::from_unix_millis);
    Ok(TransactionRecord {
        id: row.try_get(0)?,
        partner_id: row.try_get(1)?,
        ext_transaction_id: row.try_get(2)?,
        fingerprint: row.try_get(3)?,
        tx_type: TxType::parse(row.try_get(4)?)?,
        status: TxStatus::parse(row.try_get(5)?)?,
        customer: row.try_get(6)?,
        customer_kind: row.try_get(7)?,
        csp_id: row.try_get(8)?,
        account_key: row.try_get(9)?,
        amount_minor: row.try_get(10)?,
        currency: row.try_get(11)?,
        description: row.try_get(12)?,
        product_code: row.try_get(13)?,
        tax_included: row.try_get(14)?,
        original_id: row.try_get(15)?,
        original_ext_transaction_id: row.try_get(16)?,
        refunded_minor: row.try_get(17)?,
        csp_reference: row.try_get(18)?,
        failure_code: row.try_get(19)?,
        pin_id: row.try_get(20)?,
        processing_until: ts(21)?,
        next_check_at: ts(22)?,
        check_attempts: u32::try_from(check_attempts).unwrap_or(0),
        created_at: ts(24)?,
        updated_at: ts(25)?,
        reservation_ref: row.try_get(26)?,
    })
}

async fn by_id(conn: &mut PgConnection, id: &str) -> Result<Option<TransactionRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        tx_columns!(),
        " FROM transactions t WHERE t.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

async fn by_ext(
    conn: &mut PgConnection,
    partner_id: i64,
    ext: &str,
) -> Result<Option<TransactionRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        tx_columns!(),
        " FROM transactions t WHERE t.partner_id = $1 AND t.ext_transaction_id = $2"
    ))
    .bind(partner_id)
    .bind(ext)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// This account's successful and pending charges since the day's and the month's start, from
/// the day totals of the month.
async fn spent(
    conn: &mut PgConnection,
    new: &NewTransaction,
    limits: &SpendingLimits,
) -> Result<(i64, i64), StoreError> {
    let (day, month): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SUM(total) FILTER (WHERE day_start >= $3))::BIGINT, SUM(total)::BIGINT
         FROM spending_days WHERE account_key = $1 AND currency = $2 AND day_start >= $4",
    )
    .bind(&new.account_key)
    .bind(&new.currency)
    .bind(limits.day_start.unix_millis())
    .bind(limits.month_start.unix_millis())
    .fetch_one(conn)
    .await?;
    Ok((day.unwrap_or(0), month.unwrap_or(0)))
}

/// Counts a charge in the total of the day it is written in (the day of its limit windows).
async fn count_spending(conn: &mut PgConnection, new: &NewTransaction) -> Result<(), StoreError> {
    let Some(limits) = &new.limits else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO spending_days (account_key, currency, day_start, total) VALUES ($1, $2, $3, $4)
         ON CONFLICT (account_key, currency, day_start) DO UPDATE SET total = spending_days.total + EXCLUDED.total",
    )
    .bind(&new.account_key)
    .bind(&new.currency)
    .bind(limits.day_start.unix_millis())
    .bind(new.amount_minor)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes a PENDING charge that fails or is abandoned out of the day total it counted in
/// (`spend_day`; none for a charge that never counted).
async fn uncount_spending(
    conn: &mut PgConnection,
    r: &TransactionRecord,
    spend_day: Option<i64>,
) -> Result<(), StoreError> {
    let Some(day) = spend_day else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE spending_days SET total = GREATEST(0, total - $4)
         WHERE account_key = $1 AND currency = $2 AND day_start = $3",
    )
    .bind(&r.account_key)
    .bind(&r.currency)
    .bind(day)
    .bind(r.amount_minor)
    .execute(conn)
    .await?;
    Ok(())
}

enum Refusal {
    Limit,
    Refund,
    Consent,
}

/// The checks that must hold with the insert; the caller rolls back on a refusal. For a
/// refund, answers the original's `extTransactionID`.
async fn check_after_insert(
    conn: &mut PgConnection,
    new: &NewTransaction,
    now: Timestamp,
) -> Result<Result<Option<String>, Refusal>, StoreError> {
    if let Some(limits) = &new.limits {
        let over = new.amount_minor > limits.per_transaction || {
            let (day, month) = spent(conn, new, limits).await?;
            day.saturating_add(new.amount_minor) > limits.per_day
                || month.saturating_add(new.amount_minor) > limits.per_month
        };
        if over {
            return Ok(Err(Refusal::Limit));
        }
    }
    let mut original_ext = None;
    if let Some(original) = &new.original_id {
        // Locked by the caller before the insert.
        let row = sqlx::query(
            "SELECT amount_minor, status, ext_transaction_id FROM transactions WHERE id = $1",
        )
        .bind(original)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
        let amount: i64 = row.try_get(0)?;
        let status: String = row.try_get(1)?;
        original_ext = Some(row.try_get::<String, _>(2)?);
        let refunding: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(amount_minor)::BIGINT FROM transactions WHERE original_id = $1 AND status <> 'FAILED'",
        )
        .bind(original)
        .fetch_one(&mut *conn)
        .await?;
        if status != "SUCCESS" || refunding.unwrap_or(0) > amount {
            return Ok(Err(Refusal::Refund));
        }
    }
    if let Some(pin_id) = &new.consume_pin {
        let used = sqlx::query(
            "UPDATE pin_challenges SET status = 'CONSUMED', updated_at = $1
             WHERE id = $2 AND partner_id = $3 AND status = 'VALIDATED' AND consent_expires_at > $1",
        )
        .bind(now.unix_millis())
        .bind(pin_id)
        .bind(new.partner_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if used == 0 {
            return Ok(Err(Refusal::Consent));
        }
    }
    Ok(Ok(original_ext))
}

type PgTx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Inserts `new` PENDING and runs the checks that must hold with it, leaving the database
/// transaction open for the caller to finish; `Err` is the refusal (already rolled back).
async fn open_begin(
    store: &PgStore,
    new: &NewTransaction,
    now: Timestamp,
) -> Result<Result<(PgTx, Option<String>), BeginOutcome>, StoreError> {
    let mut tx = store.pool.begin().await?;
    if let Some(original) = &new.original_id {
        // Before the insert: its foreign key would take a share lock on the original that
        // parallel refunds could not then upgrade without deadlocking.
        sqlx::query("SELECT 1 FROM transactions WHERE id = $1 FOR UPDATE")
            .bind(original)
            .execute(&mut *tx)
            .await?;
    }
    // Insert first: a concurrent twin waits on the unique key, then finds this row. With
    // limits, the row is produced only once the account's advisory lock is held (parallel
    // charges of one account, on any instance, pass the limit check one by one), in the
    // same round trip. The day totals are then read by a later statement, whose snapshot
    // sees what the previous holder committed.
    let inserted = sqlx::query(
        "INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status, customer,
             customer_kind, csp_id, account_key, amount_minor, currency, description, product_code, tax_included,
             original_id, pin_id, processing_until, next_check_at, created_at, updated_at, spend_day)
         SELECT $1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $18, $20
         FROM (SELECT CASE WHEN $19 THEN pg_advisory_xact_lock(hashtextextended('limits:' || $9, 0)) END) AS l
         ON CONFLICT ON CONSTRAINT transactions_idempotency DO NOTHING",
    )
    .bind(&new.id)
    .bind(new.partner_id)
    .bind(&new.ext_transaction_id)
    .bind(&new.fingerprint)
    .bind(new.tx_type.as_str())
    .bind(&new.customer)
    .bind(&new.customer_kind)
    .bind(&new.csp_id)
    .bind(&new.account_key)
    .bind(new.amount_minor)
    .bind(&new.currency)
    .bind(&new.description)
    .bind(&new.product_code)
    .bind(new.tax_included)
    .bind(&new.original_id)
    .bind(&new.consume_pin)
    .bind(new.processing_until.unix_millis())
    .bind(now.unix_millis())
    .bind(new.limits.is_some())
    .bind(new.limits.as_ref().map(|l| l.day_start.unix_millis()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        tx.rollback().await?;
        let mut conn = store.pool.acquire().await?;
        let existing = by_ext(&mut conn, new.partner_id, &new.ext_transaction_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        return Ok(Err(BeginOutcome::Existing(existing)));
    }
    match check_after_insert(&mut tx, new, now).await? {
        Ok(original_ext) => Ok(Ok((tx, original_ext))),
        Err(refusal) => {
            tx.rollback().await?;
            Ok(Err(match refusal {
                Refusal::Limit => BeginOutcome::LimitExceeded,
                Refusal::Refund => BeginOutcome::RefundExceedsOriginal,
                Refusal::Consent => BeginOutcome::ConsentUnusable,
            }))
        }
    }
}

/// What a transaction's final state brings with it: a successful refund counts against its
/// original; the receipt is queued.
async fn after_final(
    conn: &mut PgConnection,
    record: &TransactionRecord,
    receipt: &Receipt,
    receipt_sent: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    if let (TxType::Refund, TxStatus::Success, Some(original)) =
        (record.tx_type, record.status, &record.original_id)
    {
        sqlx::query("UPDATE transactions SET refunded_minor = refunded_minor + $1, updated_at = $2 WHERE id = $3")
            .bind(record.amount_minor)
            .bind(now.unix_millis())
            .bind(original)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(n) = receipt {
        insert_notification(conn, n, now, receipt_sent).await?;
    }
    Ok(())
}

/// A refund at an in-process CSP: `begin_transaction`'s steps, then `csp` asked with the
/// original locked, then `settle_transaction`'s steps, in one database transaction, so
/// parallel refunds of one charge reach the CSP in the order the store admitted them.
async fn refund_inline(
    store: &PgStore,
    new: NewTransaction,
    csp: InlineCsp,
    receipt: Receipt,
) -> Result<ChargedInline, StoreError> {
    let now = Timestamp::now();
    let (mut tx, original_ext) = match open_begin(store, &new, now).await? {
        Ok(open) => open,
        Err(refused) => return Ok(ChargedInline::NotBegun(refused)),
    };
    count_spending(&mut tx, &new).await?;
    let spend_day = new.limits.as_ref().map(|l| l.day_start.unix_millis());
    let answer = csp();
    let Some(record) = new.into_answered(&answer, now, original_ext) else {
        // The rollback removes the row and gives the consent back.
        tx.rollback().await?;
        let InlineAnswer::Unavailable { retry_after_secs } = answer else {
            return Err(StoreError::Backend("an answered charge made no row".into()));
        };
        return Ok(ChargedInline::Unavailable { retry_after_secs });
    };
    sqlx::query(
        "UPDATE transactions SET status = $1, csp_reference = $2, failure_code = $3, next_check_at = $4,
             processing_until = $5, spend_day = CASE WHEN $1 <> 'FAILED' THEN spend_day END
         WHERE id = $6",
    )
    .bind(record.status.as_str())
    .bind(&record.csp_reference)
    .bind(&record.failure_code)
    .bind(record.next_check_at.unix_millis())
    .bind(record.processing_until.unix_millis())
    .bind(&record.id)
    .execute(&mut *tx)
    .await?;
    if record.status == TxStatus::Failed {
        uncount_spending(&mut tx, &record, spend_day).await?;
    }
    // Only a success has a receipt to follow it.
    let receipt = receipt.filter(|_| record.status == TxStatus::Success);
    after_final(&mut tx, &record, &receipt, answer.receipt_sent(), now).await?;
    tx.commit().await?;
    Ok(ChargedInline::Written(record))
}

#[async_trait]
impl TransactionStore for PgStore {
    async fn begin_transaction(&self, new: NewTransaction) -> Result<BeginOutcome, StoreError> {
        let now = Timestamp::now();
        let (mut tx, original_ext) = match open_begin(self, &new, now).await? {
            Ok(open) => open,
            Err(refused) => return Ok(refused),
        };
        count_spending(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(BeginOutcome::Created(new.into_record(now, original_ext)))
    }

    /// The CSP answers in memory, so it is asked first and the answered row written with the
    /// next group of charges (`answered_groups`, one statement and one commit); a refusal of
    /// the store comes back as `NotBegun` for the caller to undo the booking (the connector's
    /// books live in this process: a crash before the write loses them together with the
    /// request, as a rollback inside a database transaction would).
    async fn begin_inline(
        &self,
        mut new: NewTransaction,
        csp: InlineCsp,
        receipt: Receipt,
    ) -> Result<ChargedInline, StoreError> {
        if new.original_id.is_some() {
            return refund_inline(self, new, csp, receipt).await;
        }
        let now = Timestamp::now();
        let answer = csp();
        let limits = new.limits.take();
        let Some(record) = new.into_answered(&answer, now, None) else {
            let InlineAnswer::Unavailable { retry_after_secs } = answer else {
                return Err(StoreError::Backend("an answered charge made no row".into()));
            };
            return Ok(ChargedInline::Unavailable { retry_after_secs });
        };
        // Only a success has a receipt to follow it.
        let receipt = receipt.filter(|_| record.status == TxStatus::Success);
        let charge = AnsweredCharge {
            record,
            limits,
            receipt,
            receipt_sent: answer.receipt_sent(),
        };
        let (record, outcome) = self.answered.write(charge).await?;
        Ok(match outcome {
            GroupOutcome::Written => ChargedInline::Written(record),
            GroupOutcome::Twin => {
                let mut conn = self.pool.acquire().await?;
                let existing = by_ext(&mut conn, record.partner_id, &record.ext_transaction_id)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                ChargedInline::NotBegun(BeginOutcome::Existing(existing))
            }
            GroupOutcome::LimitExceeded => ChargedInline::NotBegun(BeginOutcome::LimitExceeded),
            GroupOutcome::ConsentUnusable => ChargedInline::NotBegun(BeginOutcome::ConsentUnusable),
        })
    }

    async fn settle_transaction(
        &self,
        id: &str,
        settlement: Settlement,
        receipt: Receipt,
    ) -> Result<Settled, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now();
        let (status, reference, code) = match &settlement {
            Settlement::Success { csp_reference } => {
                ("SUCCESS", Some(csp_reference.as_str()), None)
            }
            Settlement::Failed { failure_code } => ("FAILED", None, Some(failure_code.as_str())),
        };
        let moved = sqlx::query(concat!(
            "UPDATE transactions AS t SET status = $1, csp_reference = $2, failure_code = $3, updated_at = $4
             WHERE t.id = $5 AND t.status = 'PENDING' RETURNING ",
            tx_columns!(),
            ", t.spend_day"
        ))
        .bind(status)
        .bind(reference)
        .bind(code)
        .bind(now.unix_millis())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        // Already final (a late or repeated answer): nothing changes; answer what is stored.
        let Some(row) = moved else {
            let record = by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            return Ok(Settled {
                record,
                moved: false,
            });
        };
        let record = from_row(&row)?;
        if record.status == TxStatus::Failed {
            uncount_spending(&mut tx, &record, row.try_get(27)?).await?;
        }
        after_final(&mut tx, &record, &receipt, false, now).await?;
        tx.commit().await?;
        Ok(Settled {
            record,
            moved: true,
        })
    }

    async fn abandon_transaction(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(concat!(
            "DELETE FROM transactions AS t WHERE t.id = $1 AND t.status = 'PENDING' RETURNING ",
            tx_columns!(),
            ", t.spend_day"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = deleted else {
            tx.commit().await?;
            return Ok(());
        };
        let record = from_row(&row)?;
        uncount_spending(&mut tx, &record, row.try_get(27)?).await?;
        if let Some(pin) = record.pin_id {
            sqlx::query("UPDATE pin_challenges SET status = 'VALIDATED', updated_at = $1 WHERE id = $2 AND status = 'CONSUMED'")
                .bind(Timestamp::now().unix_millis())
                .bind(pin)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_reservation(&self, id: &str, reference: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE transactions SET reservation_ref = $1 WHERE id = $2 AND status = 'PENDING'",
        )
        .bind(reference)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn defer_transaction(
        &self,
        id: &str,
        next_check_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE transactions SET next_check_at = $1, processing_until = LEAST(processing_until, $2)
             WHERE id = $3 AND status = 'PENDING'",
        )
        .bind(next_check_at.unix_millis())
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn transaction_by_ext(
        &self,
        partner_id: i64,
        ext: &str,
    ) -> Result<Option<TransactionRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        by_ext(&mut conn, partner_id, ext).await
    }

    async fn lease_pending(
        &self,
        now: Timestamp,
        max: u32,
        lease_ms: i64,
    ) -> Result<Vec<TransactionRecord>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE transactions SET next_check_at = $1, check_attempts = check_attempts + 1
             WHERE id IN (SELECT id FROM transactions WHERE status = 'PENDING' AND next_check_at <= $2
                          AND processing_until <= $2 ORDER BY next_check_at LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(now.unix_millis() + lease_ms)
        .bind(now.unix_millis())
        .bind(i64::from(max))
        .fetch_all(&self.pool)
        .await?;
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = by_id(&mut conn, &id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn search_transactions(
        &self,
        q: TransactionQuery,
    ) -> Result<Vec<TransactionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            tx_columns!(),
            " FROM transactions t WHERE t.customer = $1 AND t.created_at >= $2 AND t.created_at < $3
              AND ($4::TEXT IS NULL OR (t.created_at, t.id) > ((SELECT created_at FROM transactions WHERE id = $4), $4))
              ORDER BY t.created_at, t.id LIMIT $5"
        ))
        .bind(&q.customer)
        .bind(q.from.unix_millis())
        .bind(q.to.unix_millis())
        .bind(&q.after)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }
}
