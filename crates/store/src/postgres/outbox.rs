use async_trait::async_trait;
use dcbhub_domain::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::rules::retry_after;
use crate::{
    DeliveryResult, EnqueueOutcome, NewNotification, NotificationRecord, NotificationStatus,
    OutboxStore, StoreError,
};

const HOUR_MS: i64 = 3_600_000;

macro_rules! notification_columns {
    () => {
        "id, partner_id, recipient, recipient_kind, csp_id, channel, kind, text, subject, status, \
         attempts, next_attempt_at, last_error, created_at, updated_at, partner_code"
    };
}

fn from_row(row: &PgRow) -> Result<NotificationRecord, StoreError> {
    let attempts: i32 = row.try_get(10)?;
    Ok(NotificationRecord {
        id: row.try_get(0)?,
        partner_id: row.try_get(1)?,
        recipient: row.try_get(2)?,
        recipient_kind: row.try_get(3)?,
        csp_id: row.try_get(4)?,
        channel: row.try_get(5)?,
        kind: row.try_get(6)?,
        text: row.try_get(7)?,
        subject: row.try_get(8)?,
        status: NotificationStatus::parse(row.try_get(9)?)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: Timestamp::from_unix_millis(row.try_get(11)?),
        last_error: row.try_get(12)?,
        created_at: Timestamp::from_unix_millis(row.try_get(13)?),
        updated_at: Timestamp::from_unix_millis(row.try_get(14)?),
        partner_code: row.try_get(15)?,
    })
}

/// Inserts a queued message inside the caller's transaction; `sent`: already delivered
/// inside that transaction.
pub(crate) async fn insert_notification(
    conn: &mut PgConnection,
    n: &NewNotification,
    now: Timestamp,
    sent: bool,
) -> Result<(), StoreError> {
    let row = n.as_written(sent, now);
    sqlx::query(
        "INSERT INTO notifications (id, partner_id, recipient, recipient_kind, csp_id, channel, kind, text,
             redacted_text, subject, ext_transaction_id, locale, status, attempts, next_attempt_at, created_at, updated_at,
             partner_code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $17, $15, $16, $13, $13, $14)",
    )
    .bind(n.id.as_str())
    .bind(n.partner_id)
    .bind(n.recipient.as_str())
    .bind(n.recipient.kind())
    .bind(&n.csp_id)
    .bind(&n.channel)
    .bind(&n.kind)
    .bind(row.text)
    .bind(&n.redacted_text)
    .bind(&n.subject)
    .bind(&n.ext_transaction_id)
    .bind(&n.locale)
    .bind(now.unix_millis())
    .bind(&n.partner_code)
    .bind(i32::try_from(row.attempts).unwrap_or(0))
    .bind(row.next_attempt_at.unix_millis())
    .bind(row.status)
    .execute(conn)
    .await?;
    Ok(())
}

async fn by_id(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<NotificationRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        notification_columns!(),
        " FROM notifications WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue_notification(
        &self,
        n: NewNotification,
        max_per_hour: Option<u32>,
    ) -> Result<EnqueueOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now();
        if let Some(max) = max_per_hour {
            // Serialises the count and the insert per partner and recipient, across instances.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("ntf:{}:{}", n.partner_id, n.recipient.as_str()))
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(
                "SELECT COUNT(*), MIN(created_at) FROM notifications
                 WHERE partner_id = $1 AND recipient = $2 AND created_at > $3 AND kind <> 'RECEIPT'",
            )
            .bind(n.partner_id)
            .bind(n.recipient.as_str())
            .bind(now.unix_millis() - HOUR_MS)
            .fetch_one(&mut *tx)
            .await?;
            let count: i64 = row.try_get(0)?;
            if count >= i64::from(max) {
                return Ok(EnqueueOutcome::RateLimited {
                    retry_after_secs: retry_after(row.try_get(1)?, now),
                });
            }
        }
        insert_notification(&mut tx, &n, now, false).await?;
        let record = by_id(&mut tx, n.id.as_str())
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(EnqueueOutcome::Queued(record))
    }

    async fn notification(
        &self,
        partner_id: i64,
        id: &str,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(by_id(&mut conn, id)
            .await?
            .filter(|n| n.partner_id == partner_id))
    }

    async fn lease_notifications(
        &self,
        now: Timestamp,
        max: u32,
        lease_ms: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        sqlx::query(concat!(
            "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2
             WHERE id IN (SELECT id FROM notifications WHERE status = 'QUEUED' AND next_attempt_at <= $2
                          ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            notification_columns!()
        ))
        .bind(now.unix_millis() + lease_ms)
        .bind(now.unix_millis())
        .bind(i64::from(max))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn complete_notification(
        &self,
        id: &str,
        attempt: u32,
        result: DeliveryResult,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        complete(&mut conn, id, attempt, &result).await
    }

    async fn complete_notifications(
        &self,
        done: Vec<(String, u32, DeliveryResult)>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut applied = Vec::with_capacity(done.len());
        for (id, attempt, result) in &done {
            applied.push(complete(&mut tx, id, *attempt, result).await?);
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<Timestamp>), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), MIN(CASE WHEN next_attempt_at <= $1 THEN created_at END)
             FROM notifications WHERE status = 'QUEUED'",
        )
        .bind(now.unix_millis())
        .fetch_one(&self.pool)
        .await?;
        let count: i64 = row.try_get(0)?;
        let oldest: Option<i64> = row.try_get(1)?;
        Ok((
            u64::try_from(count).unwrap_or(0),
            oldest.map(Timestamp::from_unix_millis),
        ))
    }
}

async fn complete(
    conn: &mut PgConnection,
    id: &str,
    attempt: u32,
    result: &DeliveryResult,
) -> Result<bool, StoreError> {
    let now = Timestamp::now().unix_millis();
    let (status, next, error) = match result {
        DeliveryResult::Sent => ("SENT", now, None),
        DeliveryResult::Retry { at, error } => ("QUEUED", at.unix_millis(), Some(error.as_str())),
        DeliveryResult::Failed { error } => ("FAILED", now, Some(error.as_str())),
    };
    let changed = sqlx::query(
        "UPDATE notifications SET status = $1, next_attempt_at = $2, last_error = $3, updated_at = $4,
             text = CASE WHEN $1 = 'QUEUED' THEN text ELSE COALESCE(redacted_text, text) END
         WHERE id = $5 AND attempts = $6 AND status = 'QUEUED'",
    )
    .bind(status)
    .bind(next)
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}
