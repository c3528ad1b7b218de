use async_trait::async_trait;
use dcbhub_domain::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::prepared::Hot;
use super::writer::WriteConn;
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

fn from_row(row: &Row<'_>) -> rusqlite::Result<Result<NotificationRecord, StoreError>> {
    let status: String = row.get(9)?;
    let attempts: i64 = row.get(10)?;
    let record = NotificationRecord {
        id: row.get(0)?,
        partner_id: row.get(1)?,
        recipient: row.get(2)?,
        recipient_kind: row.get(3)?,
        csp_id: row.get(4)?,
        channel: row.get(5)?,
        kind: row.get(6)?,
        text: row.get(7)?,
        subject: row.get(8)?,
        status: NotificationStatus::Queued,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: Timestamp::from_unix_millis(row.get(11)?),
        last_error: row.get(12)?,
        created_at: Timestamp::from_unix_millis(row.get(13)?),
        updated_at: Timestamp::from_unix_millis(row.get(14)?),
        partner_code: row.get(15)?,
    };
    Ok(NotificationStatus::parse(&status).map(|status| NotificationRecord { status, ..record }))
}

pub(super) const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (id, partner_id, recipient, recipient_kind, csp_id, channel, kind, text,
         redacted_text, subject, ext_transaction_id, locale, status, attempts, next_attempt_at, created_at, updated_at,
         partner_code)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?17, ?15, ?16, ?13, ?13, ?14)";

/// Inserts a queued message inside the caller's write, so it commits with the request that
/// causes it; `sent`: already delivered inside that write.
pub(crate) fn insert_notification(
    conn: &WriteConn<'_>,
    n: &NewNotification,
    now: Timestamp,
    sent: bool,
) -> Result<(), StoreError> {
    let row = n.as_written(sent, now);
    conn.prepared(Hot::InsertNotification)?.execute(params![
        n.id.as_str(),
        n.partner_id,
        n.recipient.as_str(),
        n.recipient.kind(),
        n.csp_id,
        n.channel,
        n.kind,
        row.text,
        n.redacted_text,
        n.subject,
        n.ext_transaction_id,
        n.locale,
        now.unix_millis(),
        n.partner_code,
        row.attempts,
        row.next_attempt_at.unix_millis(),
        row.status
    ])?;
    Ok(())
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<NotificationRecord>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        notification_columns!(),
        " FROM notifications WHERE id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()?
    .transpose()
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_notification(
        &self,
        n: NewNotification,
        max_per_hour: Option<u32>,
    ) -> Result<EnqueueOutcome, StoreError> {
        self.writer
            .write(move |conn| {
                let now = Timestamp::now();
                if let Some(max) = max_per_hour {
                    // The single writer serialises this check with every other insert.
                    let (count, oldest): (i64, Option<i64>) = conn
                        .prepare_cached(
                            "SELECT COUNT(*), MIN(created_at) FROM notifications
                             WHERE partner_id = ?1 AND recipient = ?2 AND created_at > ?3
                               AND kind <> 'RECEIPT'",
                        )?
                        .query_row(
                            params![
                                n.partner_id,
                                n.recipient.as_str(),
                                now.unix_millis() - HOUR_MS
                            ],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?;
                    if count >= i64::from(max) {
                        return Ok(EnqueueOutcome::RateLimited {
                            retry_after_secs: retry_after(oldest, now),
                        });
                    }
                }
                insert_notification(conn, &n, now, false)?;
                by_id(conn, n.id.as_str())?
                    .map(EnqueueOutcome::Queued)
                    .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn notification(
        &self,
        partner_id: i64,
        id: &str,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        self.readers
            .read(|conn| Ok(by_id(conn, id)?.filter(|n| n.partner_id == partner_id)))
    }

    async fn lease_notifications(
        &self,
        now: Timestamp,
        max: u32,
        lease_ms: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        self.writer
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(concat!(
                    "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?1, updated_at = ?2
                     WHERE id IN (SELECT id FROM notifications WHERE status = 'QUEUED' AND next_attempt_at <= ?2
                                  ORDER BY next_attempt_at LIMIT ?3)
                     RETURNING ",
                    notification_columns!()
                ))?;
                let rows = stmt.query_map(params![now.unix_millis() + lease_ms, now.unix_millis(), max], from_row)?;
                rows.map(|r| r.map_err(StoreError::from).and_then(|r| r)).collect()
            })
            .await
    }

    async fn complete_notification(
        &self,
        id: &str,
        attempt: u32,
        result: DeliveryResult,
    ) -> Result<bool, StoreError> {
        let done = vec![(id.to_owned(), attempt, result)];
        Ok(self
            .complete_notifications(done)
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    async fn complete_notifications(
        &self,
        done: Vec<(String, u32, DeliveryResult)>,
    ) -> Result<Vec<bool>, StoreError> {
        self.writer
            .write(move |conn| {
                done.iter()
                    .map(|(id, attempt, result)| complete(conn, id, *attempt, result))
                    .collect()
            })
            .await
    }

    async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<Timestamp>), StoreError> {
        self.readers.read(|conn| {
            let (count, oldest): (i64, Option<i64>) = conn
                .prepare_cached(
                    "SELECT COUNT(*), MIN(CASE WHEN next_attempt_at <= ?1 THEN created_at END)
                     FROM notifications WHERE status = 'QUEUED'",
                )?
                .query_row([now.unix_millis()], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok((
                u64::try_from(count).unwrap_or(0),
                oldest.map(Timestamp::from_unix_millis),
            ))
        })
    }
}

fn complete(
    conn: &Connection,
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
    let changed = conn
        .prepare_cached(
            "UPDATE notifications SET status = ?1, next_attempt_at = ?2, last_error = ?3, updated_at = ?4,
                 text = CASE WHEN ?1 = 'QUEUED' THEN text ELSE COALESCE(redacted_text, text) END
             WHERE id = ?5 AND attempts = ?6 AND status = 'QUEUED'",
        )?
        .execute(params![status, next, error, now, id, attempt])?;
    Ok(changed == 1)
}
