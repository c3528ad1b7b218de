use async_trait::async_trait;
use dcbhub_domain::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::PgStore;
use super::outbox::insert_notification;
use crate::rules::{Judged, judge, judge_resend, retry_after};
use crate::{
    NewNotification, NewPin, PinBinding, PinCheckOutcome, PinRecord, PinSendOutcome, PinSendPolicy,
    PinStatus, PinStore, StoreError,
};

const HOUR_MS: i64 = 3_600_000;

macro_rules! pin_columns {
    () => {
        "id, partner_id, customer, customer_kind, csp_id, account_key, ext_transaction_id, amount_minor, \
         currency, description, pin_hash, sends, last_sent_at, expires_at, attempts, status, consent_expires_at"
    };
}

fn from_row(row: &PgRow) -> Result<PinRecord, StoreError> {
    let sends: i32 = row.try_get(11)?;
    let attempts: i32 = row.try_get(14)?;
    Ok(PinRecord {
        id: row.try_get(0)?,
        partner_id: row.try_get(1)?,
        binding: PinBinding {
            customer: row.try_get(2)?,
            customer_kind: row.try_get(3)?,
            csp_id: row.try_get(4)?,
            account_key: row.try_get(5)?,
            ext_transaction_id: row.try_get(6)?,
            amount_minor: row.try_get(7)?,
            currency: row.try_get(8)?,
            description: row.try_get(9)?,
        },
        pin_hash: row.try_get(10)?,
        sends: u32::try_from(sends).unwrap_or(0),
        last_sent_at: Timestamp::from_unix_millis(row.try_get(12)?),
        expires_at: Timestamp::from_unix_millis(row.try_get(13)?),
        attempts: u32::try_from(attempts).unwrap_or(0),
        status: PinStatus::parse(row.try_get(15)?)?,
        consent_expires_at: row
            .try_get::<Option<i64>, _>(16)?
            .map(Timestamp::from_unix_millis),
    })
}

async fn by_id(
    conn: &mut PgConnection,
    partner_id: i64,
    id: &str,
    lock: bool,
) -> Result<Option<PinRecord>, StoreError> {
    let sql = if lock {
        concat!(
            "SELECT ",
            pin_columns!(),
            " FROM pin_challenges WHERE id = $1 AND partner_id = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            pin_columns!(),
            " FROM pin_challenges WHERE id = $1 AND partner_id = $2"
        )
    };
    sqlx::query(sql)
        .bind(id)
        .bind(partner_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Serialises the per-account cap across instances, then tells whether it is used up.
async fn account_cap(
    conn: &mut PgConnection,
    account_key: &str,
    now: Timestamp,
    max: u32,
) -> Result<Option<u32>, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("pin:{account_key}"))
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(
        "SELECT COUNT(*), MIN(sent_at) FROM pin_sends WHERE account_key = $1 AND sent_at > $2",
    )
    .bind(account_key)
    .bind(now.unix_millis() - HOUR_MS)
    .fetch_one(&mut *conn)
    .await?;
    let count: i64 = row.try_get(0)?;
    Ok((count >= i64::from(max)).then(|| retry_after(row.try_get(1).ok().flatten(), now)))
}

async fn record_send(
    conn: &mut PgConnection,
    account_key: &str,
    pin_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO pin_sends (account_key, pin_id, sent_at) VALUES ($1, $2, $3)")
        .bind(account_key)
        .bind(pin_id)
        .bind(now.unix_millis())
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl PinStore for PgStore {
    async fn create_pin(
        &self,
        new: NewPin,
        policy: PinSendPolicy,
    ) -> Result<PinSendOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now();
        let b = &new.binding;
        if let Some(retry_after_secs) = account_cap(
            &mut tx,
            &b.account_key,
            now,
            policy.max_per_account_per_hour,
        )
        .await?
        {
            return Ok(PinSendOutcome::SendLimit { retry_after_secs });
        }
        sqlx::query(
            "INSERT INTO pin_challenges (id, partner_id, customer, customer_kind, csp_id, account_key,
                 ext_transaction_id, amount_minor, currency, description, pin_hash, sends, last_sent_at,
                 expires_at, attempts, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, 0, 'ACTIVE', $12, $12)",
        )
        .bind(&new.id)
        .bind(new.partner_id)
        .bind(&b.customer)
        .bind(&b.customer_kind)
        .bind(&b.csp_id)
        .bind(&b.account_key)
        .bind(&b.ext_transaction_id)
        .bind(b.amount_minor)
        .bind(&b.currency)
        .bind(&b.description)
        .bind(&new.pin_hash)
        .bind(now.unix_millis())
        .bind(now.unix_millis() + policy.ttl_ms)
        .execute(&mut *tx)
        .await?;
        record_send(&mut tx, &b.account_key, &new.id, now).await?;
        insert_notification(&mut tx, &new.message, now, false).await?;
        let pin = by_id(&mut tx, new.partner_id, &new.id, false)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(PinSendOutcome::Sent(pin))
    }

    async fn resend_pin(
        &self,
        partner_id: i64,
        pin_id: &str,
        new_hash: String,
        message: NewNotification,
        policy: PinSendPolicy,
    ) -> Result<PinSendOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now();
        let Some(pin) = by_id(&mut tx, partner_id, pin_id, true).await? else {
            return Ok(PinSendOutcome::NotFound);
        };
        if let Some(refusal) = judge_resend(&pin, &policy, now) {
            return Ok(refusal);
        }
        let account_key = pin.binding.account_key.clone();
        if let Some(retry_after_secs) =
            account_cap(&mut tx, &account_key, now, policy.max_per_account_per_hour).await?
        {
            return Ok(PinSendOutcome::SendLimit { retry_after_secs });
        }
        sqlx::query(
            "UPDATE pin_challenges SET pin_hash = $1, sends = sends + 1, last_sent_at = $2, expires_at = $3,
                 updated_at = $2 WHERE id = $4",
        )
        .bind(&new_hash)
        .bind(now.unix_millis())
        .bind(now.unix_millis() + policy.ttl_ms)
        .bind(pin_id)
        .execute(&mut *tx)
        .await?;
        record_send(&mut tx, &account_key, pin_id, now).await?;
        insert_notification(&mut tx, &message, now, false).await?;
        let pin = by_id(&mut tx, partner_id, pin_id, false)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(PinSendOutcome::Sent(pin))
    }

    async fn check_pin(
        &self,
        partner_id: i64,
        pin_id: &str,
        presented_hash: String,
        max_attempts: u32,
        consent_window_ms: i64,
    ) -> Result<PinCheckOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now();
        // FOR UPDATE: concurrent guesses on any instance queue here, one attempt at a time.
        let Some(pin) = by_id(&mut tx, partner_id, pin_id, true).await? else {
            return Ok(PinCheckOutcome::NotFound);
        };
        match judge(&pin, &presented_hash, max_attempts, consent_window_ms, now) {
            Judged::Refused(outcome) => Ok(outcome),
            Judged::Counted {
                valid,
                consent_expires_at,
            } => {
                sqlx::query(
                    "UPDATE pin_challenges SET attempts = attempts + 1, updated_at = $1,
                         status = CASE WHEN $2 THEN 'VALIDATED' ELSE status END,
                         consent_expires_at = CASE WHEN $2 THEN $3 ELSE consent_expires_at END
                     WHERE id = $4",
                )
                .bind(now.unix_millis())
                .bind(valid)
                .bind(consent_expires_at.unix_millis())
                .bind(pin_id)
                .execute(&mut *tx)
                .await?;
                let outcome = if valid {
                    PinCheckOutcome::Valid(
                        by_id(&mut tx, partner_id, pin_id, false)
                            .await?
                            .ok_or(StoreError::NotFound)?,
                    )
                } else {
                    PinCheckOutcome::Invalid {
                        attempts_remaining: max_attempts.saturating_sub(pin.attempts + 1),
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }
        }
    }

    async fn pin(&self, partner_id: i64, pin_id: &str) -> Result<Option<PinRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        by_id(&mut conn, partner_id, pin_id, false).await
    }
}
