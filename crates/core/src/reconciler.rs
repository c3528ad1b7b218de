//! The reconciler: settles PENDING transactions whose outcome the request never learnt (a
//! CSP timeout, an unreadable answer, a crash between the write and the CSP's answer). It asks
//! the CSP for the status under the same idempotency key, re-drives a charge the CSP never
//! saw with that same key, and otherwise waits with backoff. It never guesses. Several
//! instances share the work through the store's leases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dcbhub_connectors::{
    CallContext, ChargeKind, ChargeOutcome, ChargeRequest, DeclineReason, StatusOutcome,
};
use dcbhub_domain::{Description, Timestamp, TransactionId};
use dcbhub_store::{PartnerRecord, Settlement, StoreError, TransactionRecord};
use tokio::sync::watch;

use crate::Hub;
use crate::transactions::decline_code;

/// Looks during which a refusal for insufficient funds is put down to a lost, still held
/// first reservation (with the backoff, about a minute).
const HELD_RESERVATION_LOOKS: u32 = 5;

/// How long one look at a transaction may take before another instance may take over.
const LEASE_MS: i64 = 30_000;

pub async fn run_reconciler(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let idle = Duration::from_millis(hub.transactions.reconcile_interval_ms);
    loop {
        if *stop.borrow() {
            return;
        }
        let worked = match reconcile_once(&hub).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "reconciler pass failed");
                0
            }
        };
        if worked == 0 {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// One pass: looks at every due PENDING transaction once; returns how many it looked at.
pub async fn reconcile_once(hub: &Hub) -> Result<usize, StoreError> {
    let due = hub
        .store
        .lease_pending(Timestamp::now(), hub.transactions.reconcile_batch, LEASE_MS)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let partners: HashMap<i64, PartnerRecord> = hub
        .store
        .list_partners()
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let n = due.len();
    let looks = due.into_iter().map(|tx| {
        let partner = partners.get(&tx.partner_id).cloned();
        async move {
            match partner {
                Some(p) => {
                    if let Err(e) = look(hub, &p, tx).await {
                        tracing::warn!(error = %e, "reconciling a transaction failed");
                    }
                }
                None => tracing::error!(transaction = %tx.id, "pending transaction of an unknown partner"),
            }
        }
    });
    futures::future::join_all(looks).await;
    Ok(n)
}

async fn look(hub: &Hub, partner: &PartnerRecord, tx: TransactionRecord) -> Result<(), StoreError> {
    let Some(entry) = hub.csps.get(&tx.csp_id) else {
        tracing::error!(transaction = %tx.id, csp = %tx.csp_id, "pending transaction of an unconfigured CSP");
        return defer(hub, &tx).await;
    };
    let ctx = CallContext::with_request_id(format!("reconcile-{}", tx.id));
    let Ok(id) = TransactionId::parse(&tx.id) else {
        return Err(StoreError::Backend(format!(
            "stored id {} does not parse",
            tx.id
        )));
    };
    if let (Some(csp), None) = (entry.connector.two_phase(), &tx.original_id) {
        // A reserving CSP cannot be asked by the hub's id: finish the stored reservation, or
        // charge anew when none was stored (then nothing was ever debited).
        let Some(request) = rebuild(hub, &tx, partner) else {
            return defer(hub, &tx).await;
        };
        let outcome = match &tx.reservation_ref {
            Some(reference) => hub.debit(csp, reference, &request, &ctx).await,
            None => hub.charge_two_phase(csp, &tx, &request, &ctx).await,
        };
        return match outcome {
            ChargeOutcome::Unknown | ChargeOutcome::Unavailable { .. } => defer(hub, &tx).await,
            // A first reservation whose answer was lost may still hold the balance until the
            // OCS lets it lapse: give it time before calling the customer short of funds.
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
                if tx.reservation_ref.is_none() && tx.check_attempts < HELD_RESERVATION_LOOKS =>
            {
                defer(hub, &tx).await
            }
            other => settle(hub, partner, tx, other).await,
        };
    }
    let status = entry.connector.charge_status(&id, &ctx).await;
    metrics::counter!("dcbhub_reconciler_looks_total", "csp" => tx.csp_id.clone(), "answer" => status_label(&status))
        .increment(1);
    match status {
        StatusOutcome::Success { csp_reference } => {
            let outcome = ChargeOutcome::Success { csp_reference };
            settle(hub, partner, tx, outcome).await
        }
        StatusOutcome::Failed(reason) => {
            hub.store
                .settle_transaction(
                    &tx.id,
                    Settlement::Failed {
                        failure_code: decline_code(reason).to_owned(),
                    },
                    None,
                )
                .await?;
            Ok(())
        }
        StatusOutcome::NotFound => {
            // The CSP never saw it: send it again under the same idempotency key.
            let Some(request) = rebuild(hub, &tx, partner) else {
                tracing::error!(transaction = %tx.id, "cannot rebuild a pending transaction");
                return defer(hub, &tx).await;
            };
            let outcome = hub.call_csp(&tx.csp_id, &request, &ctx).await;
            match outcome {
                ChargeOutcome::Unknown | ChargeOutcome::Unavailable { .. } => defer(hub, &tx).await,
                other => settle(hub, partner, tx, other).await,
            }
        }
        StatusOutcome::Pending | StatusOutcome::Unavailable => defer(hub, &tx).await,
    }
}

async fn settle(
    hub: &Hub,
    partner: &PartnerRecord,
    tx: TransactionRecord,
    outcome: ChargeOutcome,
) -> Result<(), StoreError> {
    match hub.apply_outcome(partner, tx, outcome, false).await {
        Ok(record) => {
            tracing::info!(transaction = %record.id, status = record.status.as_str(), "reconciled");
            Ok(())
        }
        Err(crate::transactions::TxError::Store(e)) => Err(e),
        Err(other) => Err(StoreError::Backend(format!("{other:?}"))),
    }
}

/// Next look with exponential backoff from the first delay, capped.
async fn defer(hub: &Hub, tx: &TransactionRecord) -> Result<(), StoreError> {
    let p = &hub.transactions;
    let delay = p
        .reconcile_first_delay_ms
        .saturating_mul(1i64 << tx.check_attempts.min(20))
        .min(p.reconcile_max_delay_ms);
    hub.store
        .defer_transaction(&tx.id, Timestamp::now().plus_millis(delay))
        .await
}

fn status_label(s: &StatusOutcome) -> &'static str {
    match s {
        StatusOutcome::Success { .. } => "success",
        StatusOutcome::Failed(_) => "failed",
        StatusOutcome::Pending => "pending",
        StatusOutcome::NotFound => "not_found",
        StatusOutcome::Unavailable => "unavailable",
    }
}

/// The CSP request of a stored transaction, exactly as first sent.
fn rebuild(hub: &Hub, tx: &TransactionRecord, partner: &PartnerRecord) -> Option<ChargeRequest> {
    let kind = match &tx.original_id {
        Some(o) => ChargeKind::Refund {
            original: TransactionId::parse(o).ok()?,
        },
        None => ChargeKind::Charge,
    };
    Some(ChargeRequest {
        transaction_id: TransactionId::parse(&tx.id).ok()?,
        customer: tx.customer().ok()?,
        money: tx.money().ok()?,
        description: Description::parse(&tx.description).ok()?,
        charge_code: hub.charge_code(&tx.csp_id, tx.product_code.as_deref()),
        partner: partner.code.clone(),
        kind,
    })
}
