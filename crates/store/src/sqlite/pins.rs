use async_trait::async_trait;
use dcbhub_domain::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
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

fn from_row(row: &Row<'_>) -> rusqlite::Result<Result<PinRecord, StoreError>> {
    let status: String = row.get(15)?;
    let sends: i64 = row.get(11)?;
    let attempts: i64 = row.get(14)?;
    let record = PinRecord {
        id: row.get(0)?,
        partner_id: row.get(1)?,
        binding: PinBinding {
            customer: row.get(2)?,
            customer_kind: row.get(3)?,
            csp_id: row.get(4)?,
            account_key: row.get(5)?,
            ext_transaction_id: row.get(6)?,
            amount_minor: row.get(7)?,
            currency: row.get(8)?,
            description: row.get(9)?,
        },
        pin_hash: row.get(10)?,
        sends: u32::try_from(sends).unwrap_or(u32::MAX),
        last_sent_at: Timestamp::from_unix_millis(row.get(12)?),
        expires_at: Timestamp::from_unix_millis(row.get(13)?),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        status: PinStatus::Active,
        consent_expires_at: row
            .get::<_, Option<i64>>(16)?
            .map(Timestamp::from_unix_millis),
    };
    Ok(PinStatus::parse(&status).map(|status| PinRecord { status, ..record }))
}

fn by_id(conn: &Connection, partner_id: i64, id: &str) -> Result<Option<PinRecord>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        pin_columns!(),
        " FROM pin_challenges WHERE id = ?1 AND partner_id = ?2"
    ))?
    .query_row(params![id, partner_id], from_row)
    .optional()?
    .transpose()
}

/// Seconds until the account may receive another PIN, or `None` when it may now.
fn account_cap(
    conn: &Connection,
    account_key: &str,
    now: Timestamp,
    max: u32,
) -> Result<Option<u32>, StoreError> {
    let (count, oldest): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(sent_at) FROM pin_sends WHERE account_key = ?1 AND sent_at > ?2",
        )?
        .query_row(params![account_key, now.unix_millis() - HOUR_MS], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok((count >= i64::from(max)).then(|| retry_after(oldest, now)))
}

fn record_send(
    conn: &Connection,
    account_key: &str,
    pin_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO pin_sends (account_key, pin_id, sent_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![account_key, pin_id, now.unix_millis()])?;
    Ok(())
}

#[async_trait]
impl PinStore for SqliteStore {
    async fn create_pin(
        &self,
        new: NewPin,
        policy: PinSendPolicy,
    ) -> Result<PinSendOutcome, StoreError> {
        self.writer
            .write(move |conn| {
                let now = Timestamp::now();
                let b = &new.binding;
                if let Some(retry_after_secs) = account_cap(conn, &b.account_key, now, policy.max_per_account_per_hour)? {
                    return Ok(PinSendOutcome::SendLimit { retry_after_secs });
                }
                conn.prepare_cached(
                    "INSERT INTO pin_challenges (id, partner_id, customer, customer_kind, csp_id, account_key,
                         ext_transaction_id, amount_minor, currency, description, pin_hash, sends, last_sent_at,
                         expires_at, attempts, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?13, 0, 'ACTIVE', ?12, ?12)",
                )?
                .execute(params![
                    new.id,
                    new.partner_id,
                    b.customer,
                    b.customer_kind,
                    b.csp_id,
                    b.account_key,
                    b.ext_transaction_id,
                    b.amount_minor,
                    b.currency,
                    b.description,
                    new.pin_hash,
                    now.unix_millis(),
                    now.unix_millis() + policy.ttl_ms
                ])?;
                record_send(conn, &b.account_key, &new.id, now)?;
                insert_notification(conn, &new.message, now, false)?;
                by_id(conn, new.partner_id, &new.id)?.map(PinSendOutcome::Sent).ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn resend_pin(
        &self,
        partner_id: i64,
        pin_id: &str,
        new_hash: String,
        message: NewNotification,
        policy: PinSendPolicy,
    ) -> Result<PinSendOutcome, StoreError> {
        let pin_id = pin_id.to_owned();
        self.writer
            .write(move |conn| {
                let now = Timestamp::now();
                let Some(pin) = by_id(conn, partner_id, &pin_id)? else {
                    return Ok(PinSendOutcome::NotFound);
                };
                if let Some(refusal) = judge_resend(&pin, &policy, now) {
                    return Ok(refusal);
                }
                let account_key = pin.binding.account_key.clone();
                if let Some(retry_after_secs) = account_cap(conn, &account_key, now, policy.max_per_account_per_hour)? {
                    return Ok(PinSendOutcome::SendLimit { retry_after_secs });
                }
                conn.prepare_cached(
                    "UPDATE pin_challenges SET pin_hash = ?1, sends = sends + 1, last_sent_at = ?2, expires_at = ?3,
                         updated_at = ?2 WHERE id = ?4",
                )?
                .execute(params![new_hash, now.unix_millis(), now.unix_millis() + policy.ttl_ms, pin_id])?;
                record_send(conn, &account_key, &pin_id, now)?;
                insert_notification(conn, &message, now, false)?;
                by_id(conn, partner_id, &pin_id)?.map(PinSendOutcome::Sent).ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn check_pin(
        &self,
        partner_id: i64,
        pin_id: &str,
        presented_hash: String,
        max_attempts: u32,
        consent_window_ms: i64,
    ) -> Result<PinCheckOutcome, StoreError> {
        let pin_id = pin_id.to_owned();
        self.writer
            .write(move |conn| {
                let now = Timestamp::now();
                let Some(pin) = by_id(conn, partner_id, &pin_id)? else {
                    return Ok(PinCheckOutcome::NotFound);
                };
                let outcome = judge(&pin, &presented_hash, max_attempts, consent_window_ms, now);
                match &outcome {
                    Judged::Counted { valid, consent_expires_at } => {
                        conn.prepare_cached(
                            "UPDATE pin_challenges SET attempts = attempts + 1, updated_at = ?1,
                                 status = CASE WHEN ?2 THEN 'VALIDATED' ELSE status END,
                                 consent_expires_at = CASE WHEN ?2 THEN ?3 ELSE consent_expires_at END
                             WHERE id = ?4",
                        )?
                        .execute(params![now.unix_millis(), valid, consent_expires_at.unix_millis(), pin_id])?;
                        if *valid {
                            return by_id(conn, partner_id, &pin_id)?
                                .map(PinCheckOutcome::Valid)
                                .ok_or(StoreError::NotFound);
                        }
                        Ok(PinCheckOutcome::Invalid {
                            attempts_remaining: max_attempts.saturating_sub(pin.attempts + 1),
                        })
                    }
                    Judged::Refused(o) => Ok(o.clone()),
                }
            })
            .await
    }

    async fn pin(&self, partner_id: i64, pin_id: &str) -> Result<Option<PinRecord>, StoreError> {
        self.readers.read(|conn| by_id(conn, partner_id, pin_id))
    }
}
