//! Group commit for the charges an in-process CSP has answered. A request hands its row to the
//! instance's writer task; the writer takes every row waiting, writes them in one call of
//! `dcbhub_write_answered_charges` (migrations 0008 and 0009) in autocommit, and each request is
//! answered after that commit. One transaction and one WAL flush serve a whole group, so PostgreSQL's
//! cost per charge falls with the load instead of rising with it.

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::records::WrittenAs;
use crate::{NewNotification, SpendingLimits, StoreError, TransactionRecord};

/// The most charges one call writes (the arrays stay small; a longer queue waits its turn).
const MAX_GROUP: usize = 64;
/// Requests waiting beyond this are held back at `write` (backpressure, not memory).
const QUEUE: usize = 4096;

pub(super) struct AnsweredCharge {
    pub record: TransactionRecord,
    pub limits: Option<SpendingLimits>,
    pub receipt: Option<NewNotification>,
    pub receipt_sent: bool,
}

/// What the database did with one charge of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GroupOutcome {
    Written,
    /// A charge with the same idempotency key was there (in this group or before it).
    Twin,
    LimitExceeded,
    ConsentUnusable,
}

impl GroupOutcome {
    fn from_code(code: i16) -> Result<Self, StoreError> {
        Ok(match code {
            0 => Self::Written,
            1 => Self::Twin,
            2 => Self::LimitExceeded,
            3 => Self::ConsentUnusable,
            other => {
                return Err(StoreError::Backend(format!(
                    "dcbhub_write_answered_charges answered code {other}"
                )));
            }
        })
    }
}

type Answer = Result<(TransactionRecord, GroupOutcome), StoreError>;

struct Job {
    charge: AnsweredCharge,
    reply: oneshot::Sender<Answer>,
}

/// One writer task per instance, so one group in flight: the next group fills while one
/// commits, and a larger group is written set-based (migration 0009) for less per charge; with
/// four writers per instance the set-based write lost to lock waits between the groups
/// (docs/PERFORMANCE.md, seventh round).
pub(super) struct AnsweredWriter {
    jobs: mpsc::Sender<Job>,
}

impl AnsweredWriter {
    /// Starts the writer on the current runtime; it ends when this is dropped.
    pub fn start(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        Self { jobs }
    }

    /// Writes `charge` with the next group and gives its record back with the outcome.
    pub async fn write(&self, charge: AnsweredCharge) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { charge, reply })
            .await
            .map_err(|_| StoreError::Backend("the charge writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the charge writer stopped mid-group".into()))?
    }
}

async fn run(pool: PgPool, mut queue: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        write_group(&pool, &mut group).await;
    }
}

/// Writes and answers every job of `group`, leaving it empty. When the call fails as a whole
/// (a deadlock with another instance's group, a row a constraint refuses), each charge is
/// written again alone, so one charge's error is its own. A failed call may still have
/// committed (its answer lost on the way): the function then answers each charge it finds
/// already written by its own id as written.
async fn write_group(pool: &PgPool, group: &mut Vec<Job>) {
    // One lock order for every group: two groups never wait on each other's accounts.
    group.sort_unstable_by(|a, b| {
        a.charge
            .record
            .account_key
            .cmp(&b.charge.record.account_key)
    });
    match call(pool, group).await {
        Err(e) if group.len() > 1 => {
            tracing::warn!(error = %e, charges = group.len(), "a group of charges failed; writing them one by one");
            for job in group.drain(..) {
                let mut one = vec![job];
                let outcomes = outcomes(call(pool, &one).await, 1);
                answer(&mut one, outcomes);
            }
        }
        written => {
            let outcomes = outcomes(written, group.len());
            answer(group, outcomes);
        }
    }
}

/// The outcome of each of `n` charges from a call's codes.
fn outcomes(
    written: Result<Vec<i16>, sqlx::Error>,
    n: usize,
) -> Result<Vec<GroupOutcome>, StoreError> {
    let codes = written?;
    if codes.len() != n {
        return Err(StoreError::Backend(format!(
            "{} codes for a group of {n}",
            codes.len()
        )));
    }
    codes.into_iter().map(GroupOutcome::from_code).collect()
}

/// Answers every job of `jobs` (leaving it empty) with its outcome, or all with the error.
fn answer(jobs: &mut Vec<Job>, outcomes: Result<Vec<GroupOutcome>, StoreError>) {
    // A request that went away takes nothing with it: its row is written.
    match outcomes {
        Ok(outcomes) => {
            for (job, outcome) in jobs.drain(..).zip(outcomes) {
                let _ = job.reply.send(Ok((job.charge.record, outcome)));
            }
        }
        Err(e) => {
            for job in jobs.drain(..) {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// One call of `dcbhub_write_answered_charges` for `jobs`, a column array per parameter.
async fn call(pool: &PgPool, jobs: &[Job]) -> Result<Vec<i16>, sqlx::Error> {
    let rows: Vec<Option<WrittenAs<'_>>> = jobs
        .iter()
        .map(|j| {
            let c = &j.charge;
            c.receipt
                .as_ref()
                .map(|n| n.as_written(c.receipt_sent, c.record.created_at))
        })
        .collect();
    macro_rules! column {
        (|$c:ident| $value:expr) => {
            jobs.iter()
                .map(|j| {
                    let $c = &j.charge;
                    $value
                })
                .collect::<Vec<_>>()
        };
    }
    macro_rules! limit {
        (|$l:ident| $value:expr) => {
            column!(|c| c.limits.as_ref().map(|$l| $value))
        };
    }
    macro_rules! receipt {
        (|$n:ident| $value:expr) => {
            column!(|c| c.receipt.as_ref().map(|$n| $value))
        };
    }
    macro_rules! written {
        (|$w:ident| $value:expr) => {
            rows.iter()
                .map(|r| r.as_ref().map(|$w| $value))
                .collect::<Vec<_>>()
        };
    }
    sqlx::query_scalar::<_, Vec<i16>>(
        "SELECT dcbhub_write_answered_charges($1, $2, $3, $4, $5, $6, $7, $8, $9,
             $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27,
             $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40)",
    )
    .bind(column!(|c| c.record.id.as_str()))
    .bind(column!(|c| c.record.partner_id))
    .bind(column!(|c| c.record.ext_transaction_id.as_str()))
    .bind(column!(|c| c.record.fingerprint.as_str()))
    .bind(column!(|c| c.record.status.as_str()))
    .bind(column!(|c| c.record.customer.as_str()))
    .bind(column!(|c| c.record.customer_kind.as_str()))
    .bind(column!(|c| c.record.csp_id.as_str()))
    .bind(column!(|c| c.record.account_key.as_str()))
    .bind(column!(|c| c.record.amount_minor))
    .bind(column!(|c| c.record.currency.as_str()))
    .bind(column!(|c| c.record.description.as_str()))
    .bind(column!(|c| c.record.product_code.as_deref()))
    .bind(column!(|c| c.record.tax_included))
    .bind(column!(|c| c.record.pin_id.as_deref()))
    .bind(column!(|c| c.record.processing_until.unix_millis()))
    .bind(column!(|c| c.record.next_check_at.unix_millis()))
    .bind(column!(|c| c.record.created_at.unix_millis()))
    .bind(column!(|c| c.record.csp_reference.as_deref()))
    .bind(column!(|c| c.record.failure_code.as_deref()))
    .bind(limit!(|l| l.per_transaction))
    .bind(limit!(|l| l.per_day))
    .bind(limit!(|l| l.per_month))
    .bind(limit!(|l| l.day_start.unix_millis()))
    .bind(limit!(|l| l.month_start.unix_millis()))
    .bind(receipt!(|n| n.id.as_str()))
    .bind(receipt!(|n| n.recipient.as_str()))
    .bind(receipt!(|n| n.recipient.kind()))
    .bind(receipt!(|n| n.csp_id.as_str()))
    .bind(receipt!(|n| n.channel.as_str()))
    .bind(receipt!(|n| n.kind.as_str()))
    .bind(written!(|w| w.text))
    .bind(column!(|c| c.receipt.as_ref().and_then(|n| n.redacted_text.as_deref())))
    .bind(column!(|c| c.receipt.as_ref().and_then(|n| n.subject.as_deref())))
    .bind(column!(|c| c.receipt.as_ref().and_then(|n| n.ext_transaction_id.as_deref())))
    .bind(column!(|c| c.receipt.as_ref().and_then(|n| n.locale.as_deref())))
    .bind(written!(|w| w.status))
    .bind(written!(|w| i32::try_from(w.attempts).unwrap_or(0)))
    .bind(written!(|w| w.next_attempt_at.unix_millis()))
    .bind(receipt!(|n| n.partner_code.as_str()))
    .fetch_one(pool)
    .await
}
