//! The outbox worker: leases due messages, hands each to its channel, and records the
//! outcome — retry with jittered exponential backoff, or dead-letter (`FAILED`) after the
//! configured attempts. Several instances share the work through the store's leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dcbhub_connectors::{CallContext, Notification, NotifyOutcome};
use dcbhub_domain::{Customer, NotificationId, PartnerCode, Timestamp};
use dcbhub_notify::{DeliveryError, OutboundMessage};
use dcbhub_store::{DeliveryResult, NotificationRecord};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{mpsc, watch};

use crate::Hub;

/// Messages this instance delivers itself, straight after the write that queued them has
/// committed. They are written already leased to it, so the worker skips the lease write and
/// the wait for its next poll; should the instance stop before recording the delivery, the
/// lease lapses and any worker picks the message up as usual.
pub struct Handoff {
    tx: mpsc::Sender<NotificationRecord>,
    rx: Mutex<Option<mpsc::Receiver<NotificationRecord>>>,
    /// A worker is taking hand-offs.
    taken: AtomicBool,
}

impl Handoff {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            taken: AtomicBool::new(false),
        }
    }

    /// Until when a message queued now should be leased to this instance; `None` (queue it
    /// for any worker) when no worker takes hand-offs or their queue is full.
    pub fn lease_until(&self, lease_ms: i64) -> Option<Timestamp> {
        (self.taken.load(Ordering::Relaxed) && self.tx.capacity() > 0)
            .then(|| Timestamp::now().plus_millis(lease_ms))
    }

    /// Passes a committed, leased message to the worker. When the queue has filled up since
    /// [`Handoff::lease_until`], the message waits for its lease to lapse instead.
    pub fn offer(&self, message: NotificationRecord) {
        if self.tx.try_send(message).is_err() {
            metrics::counter!("dcbhub_outbox_handoff_overflow_total").increment(1);
        }
    }

    fn take(&self) -> Option<mpsc::Receiver<NotificationRecord>> {
        let rx = self.rx.lock().take();
        self.taken.store(rx.is_some(), Ordering::Relaxed);
        rx
    }
}

/// Runs until `stop` turns true.
pub async fn run_outbox_worker(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let idle = Duration::from_millis(hub.notifications.poll_interval_ms);
    let max = usize::try_from(hub.notifications.batch)
        .unwrap_or(64)
        .max(1);
    let mut handed = hub.handoff.take();
    let mut last_gauges = Instant::now() - Duration::from_secs(10);
    let mut last_poll = Instant::now() - idle;
    loop {
        if *stop.borrow() {
            return;
        }
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            publish_gauges(&hub).await;
            last_gauges = Instant::now();
        }
        let mut batch = Vec::new();
        if let Some(rx) = handed.as_mut() {
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(n) => batch.push(n),
                    Err(_) => break,
                }
            }
        }
        // Retries and lapsed leases are polled for even while hand-offs keep coming.
        if batch.is_empty() || last_poll.elapsed() >= idle {
            last_poll = Instant::now();
            batch.extend(lease(&hub).await);
        }
        if batch.is_empty() {
            let handoff = async {
                match handed.as_mut() {
                    Some(rx) => rx.recv_many(&mut batch, max).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = handoff => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
            }
            if batch.is_empty() {
                continue;
            }
        }
        // A hand-off that waited in the queue for much of its lease is left to lapse: a
        // worker (maybe this one) leases it again, and it is never sent twice at once.
        let now = Timestamp::now();
        batch.retain(|n| {
            let keep = lease_left_enough(n.next_attempt_at, now, hub.notifications.lease_ms);
            if !keep {
                metrics::counter!("dcbhub_outbox_handoff_expired_total").increment(1);
            }
            keep
        });
        let results = futures::future::join_all(batch.iter().map(|n| deliver_one(&hub, n))).await;
        record(&hub, &batch, results).await;
    }
}

/// Whether a message leased until `leased_until` still has at least half its lease to go,
/// enough to be delivered and recorded before anyone else may take it.
fn lease_left_enough(leased_until: Timestamp, now: Timestamp, lease_ms: i64) -> bool {
    leased_until.unix_millis() - now.unix_millis() >= lease_ms / 2
}

async fn lease(hub: &Hub) -> Vec<NotificationRecord> {
    match hub
        .store
        .lease_notifications(
            Timestamp::now(),
            hub.notifications.batch,
            hub.notifications.lease_ms,
        )
        .await
    {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot lease notifications");
            Vec::new()
        }
    }
}

async fn publish_gauges(hub: &Hub) {
    let now = Timestamp::now();
    if let Ok((depth, oldest)) = hub.store.outbox_depth(now).await {
        metrics::gauge!("dcbhub_outbox_depth").set(depth as f64);
        let age = oldest.map_or(0, |t| (now.unix_millis() - t.unix_millis()).max(0));
        metrics::gauge!("dcbhub_outbox_oldest_due_age_seconds").set(age as f64 / 1000.0);
    }
}

enum Attempt {
    Delivered,
    Transient(String),
    Permanent(String),
}

/// Delivers one message and says how its attempt ended.
async fn deliver_one(hub: &Hub, n: &NotificationRecord) -> DeliveryResult {
    let attempt = send(hub, n).await;
    let (label, result) = match attempt {
        Attempt::Delivered => ("sent", DeliveryResult::Sent),
        Attempt::Permanent(error) => ("failed", DeliveryResult::Failed { error }),
        Attempt::Transient(error) if n.attempts >= hub.notifications.max_attempts => {
            ("failed", DeliveryResult::Failed { error })
        }
        Attempt::Transient(error) => (
            "retry",
            DeliveryResult::Retry {
                at: next_attempt(hub, n.attempts),
                error,
            },
        ),
    };
    metrics::counter!("dcbhub_notification_deliveries_total", "channel" => n.channel.clone(), "outcome" => label)
        .increment(1);
    result
}

/// Records a batch's outcomes in one write.
async fn record(hub: &Hub, batch: &[NotificationRecord], results: Vec<DeliveryResult>) {
    let done = batch
        .iter()
        .zip(results)
        .map(|(n, r)| (n.id.clone(), n.attempts, r))
        .collect();
    match hub.store.complete_notifications(done).await {
        Ok(applied) => {
            for (n, ok) in batch.iter().zip(applied) {
                if !ok {
                    tracing::warn!(notification = %n.id, "lease lost before the delivery was recorded");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, messages = batch.len(), "cannot record deliveries"),
    }
}

/// Jittered exponential backoff: base·2^(attempt−1), capped, times a random factor in
/// [0.5, 1].
fn next_attempt(hub: &Hub, attempts: u32) -> Timestamp {
    let p = &hub.notifications;
    let exp = p
        .retry_base_ms
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(p.retry_max_ms);
    let jittered = rand::rng().random_range(capped / 2..=capped.max(1));
    Timestamp::now().plus_millis(jittered)
}

async fn send(hub: &Hub, n: &NotificationRecord) -> Attempt {
    let (Some(to), Ok(id), Ok(partner)) = (
        Customer::parse_stored(&n.recipient_kind, &n.recipient).ok(),
        NotificationId::parse(&n.id),
        PartnerCode::parse(&n.partner_code),
    ) else {
        return Attempt::Permanent("stored message does not parse".into());
    };
    let settings = hub.settings(&n.csp_id);
    let via_channel = |channel: Option<&Arc<dyn dcbhub_notify::Channel>>| {
        let msg = OutboundMessage {
            id: id.clone(),
            to: to.clone(),
            text: n.text.clone(),
            subject: n.subject.clone(),
        };
        let channel = channel.cloned();
        async move {
            match channel {
                None => Attempt::Permanent(format!(
                    "no {} channel configured for CSP {}",
                    n.channel, n.csp_id
                )),
                Some(c) => match c.deliver(&msg).await {
                    Ok(()) => Attempt::Delivered,
                    Err(DeliveryError::Transient(e)) => Attempt::Transient(e),
                    Err(DeliveryError::Permanent(e)) => Attempt::Permanent(e),
                },
            }
        }
    };
    let notification = Notification {
        id: id.clone(),
        to: to.clone(),
        text: n.text.clone(),
        partner,
    };
    let from_csp = |o: NotifyOutcome| match o {
        NotifyOutcome::Delivered => Attempt::Delivered,
        NotifyOutcome::Transient(e) => Attempt::Transient(e),
        NotifyOutcome::Permanent(e) => Attempt::Permanent(e),
    };
    match n.channel.as_str() {
        "smpp" => via_channel(settings.and_then(|s| s.smpp.as_ref())).await,
        "smtp" => via_channel(settings.and_then(|s| s.smtp.as_ref())).await,
        "sandbox" => match &hub.sandbox {
            Some(state) => from_csp(state.notify(&notification)),
            None => Attempt::Permanent("the sandbox is disabled".into()),
        },
        "csp" => match hub.csps.get(&n.csp_id) {
            Some(entry) => from_csp(
                entry
                    .connector
                    .notify(&notification, &CallContext::default())
                    .await,
            ),
            None => Attempt::Transient(format!("CSP {} is not configured", n.csp_id)),
        },
        other => Attempt::Permanent(format!("unknown channel {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_off_is_delivered_only_with_half_its_lease_left() {
        let now = Timestamp::from_unix_millis(1_000_000);
        assert!(lease_left_enough(now.plus_millis(60_000), now, 60_000));
        assert!(lease_left_enough(now.plus_millis(30_000), now, 60_000));
        assert!(!lease_left_enough(now.plus_millis(29_999), now, 60_000));
        assert!(!lease_left_enough(now.plus_millis(-1), now, 60_000));
    }
}
