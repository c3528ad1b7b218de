//! Charging a CSP that reserves, then debits (an online charging system over Nrf_Rating).
//! The reservation's reference is stored with the transaction before the debit, so that after
//! a crash the reconciler can finish the same reservation instead of charging again.

use dcbhub_connectors::{
    CallContext, ChargeOutcome, ChargeRequest, FinishOutcome, ReserveOutcome, TwoPhaseCharging,
};
use dcbhub_store::TransactionRecord;

use crate::Hub;

impl Hub {
    /// Reserve, record the reservation, debit. Every way this can stop leaves either nothing
    /// charged, or a stored reservation the reconciler debits.
    pub(crate) async fn charge_two_phase(
        &self,
        csp: &dyn TwoPhaseCharging,
        record: &TransactionRecord,
        request: &ChargeRequest,
        ctx: &CallContext,
    ) -> ChargeOutcome {
        let reference = match csp.reserve(request, ctx).await {
            ReserveOutcome::Reserved { reference } => reference,
            ReserveOutcome::Declined(reason) => return ChargeOutcome::Declined(reason),
            ReserveOutcome::Unavailable { retry_after_secs } => {
                return ChargeOutcome::Unavailable { retry_after_secs };
            }
            // No reference came back: whatever the OCS may hold expires there; nothing was
            // debited, so the charge can be tried anew.
            ReserveOutcome::Unknown => {
                return ChargeOutcome::Unavailable {
                    retry_after_secs: 1,
                };
            }
        };
        if let Err(e) = self.store.record_reservation(&record.id, &reference).await {
            // Without the reference stored, a debit could not be finished after a crash; give
            // the reservation back instead.
            tracing::error!(transaction = %record.id, error = %e, "cannot store a reservation; releasing it");
            return match csp.release(&reference, request, ctx).await {
                FinishOutcome::Done | FinishOutcome::AlreadyFinished => {
                    ChargeOutcome::Unavailable {
                        retry_after_secs: 1,
                    }
                }
                FinishOutcome::Unknown | FinishOutcome::Unavailable => ChargeOutcome::Unknown,
            };
        }
        self.debit(csp, &reference, request, ctx).await
    }

    /// Debits a stored reservation. `AlreadyFinished` (the OCS no longer knows the
    /// reference) means an earlier debit went through: the hub only ever releases a
    /// reservation it failed to store, so a stored one was never released.
    pub(crate) async fn debit(
        &self,
        csp: &dyn TwoPhaseCharging,
        reference: &str,
        request: &ChargeRequest,
        ctx: &CallContext,
    ) -> ChargeOutcome {
        match csp.debit(reference, request, ctx).await {
            FinishOutcome::Done | FinishOutcome::AlreadyFinished => ChargeOutcome::Success {
                csp_reference: reference.to_owned(),
            },
            FinishOutcome::Unknown | FinishOutcome::Unavailable => ChargeOutcome::Unknown,
        }
    }
}
