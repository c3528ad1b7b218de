//! Charges and refunds (API.md §5–6): exactly-once money movement. The transaction is
//! written PENDING before the CSP is called (for a CSP that answers in memory, the sandbox:
//! once, with its answer, the booking undone if the write refuses); an unknown outcome stays
//! PENDING for the reconciler; final states never change; repeats are answered from the
//! store.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use dcbhub_connectors::{
    CallContext, ChargeKind, ChargeOutcome, ChargeRequest, DeclineReason, InlineCharging,
    Notification, NotifyOutcome, SandboxState,
};
use dcbhub_domain::{
    ConsentPolicy, Customer, Description, ExtTransactionId, Money, PartnerCode, PinId, ProductCode,
    Timestamp, TransactionId,
};
use dcbhub_store::{
    BeginOutcome, ChargedInline, InlineAnswer, InlineCsp, NewTransaction, PartnerRecord, PinStatus,
    Settlement, SpendingLimits, StoreError, TransactionRecord, TxStatus, TxType,
};
use sha2::{Digest, Sha256};

use crate::Hub;
use crate::accounts::AccountError;
use crate::hub::ChannelKind;
use crate::kept_metrics::Kept;
use crate::notifications::MessageSpec;

#[derive(Clone, Debug)]
pub enum CommandKind {
    Charge,
    Refund { original: ExtTransactionId },
}

/// A parsed `POST /transaction`.
#[derive(Clone, Debug)]
pub struct ChargeCommand {
    pub ext_transaction_id: ExtTransactionId,
    pub customer: Customer,
    pub money: Money,
    pub description: Description,
    pub product_code: Option<ProductCode>,
    pub pin_id: Option<PinId>,
    pub kind: CommandKind,
    pub tax_included: bool,
}

#[derive(Debug)]
pub enum TxError {
    ConsentRequired,
    InvalidConsent,
    Account(AccountError),
    CurrencyNotSupported,
    AmountTooLarge,
    LimitExceeded,
    RefundExceedsOriginal,
    OriginalNotFound,
    /// The refund names another customer than the original charge.
    RefundCustomerMismatch,
    Conflict,
    CspUnavailable {
        retry_after_secs: u32,
    },
    Store(StoreError),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The stored transaction an answer reflects.
#[derive(Debug)]
pub struct TxAnswer {
    pub record: TransactionRecord,
    /// Answered from an earlier request with the same `extTransactionID`.
    pub replayed: bool,
}

/// How often a repeat polls a twin that is still talking to the CSP.
const TWIN_POLL: Duration = Duration::from_millis(20);

fn fingerprint(cmd: &ChargeCommand) -> String {
    let mut h = Sha256::new();
    let (kind, original) = match &cmd.kind {
        CommandKind::Charge => ("CHARGE", ""),
        CommandKind::Refund { original } => ("REFUND", original.as_str()),
    };
    for part in [
        kind,
        original,
        cmd.customer.as_str(),
        &cmd.money.amount().get().to_string(),
        cmd.money.currency().code(),
        cmd.description.as_str(),
        cmd.product_code.as_ref().map_or("", |p| p.as_str()),
        cmd.pin_id.as_ref().map_or("", |p| p.as_str()),
        if cmd.tax_included { "1" } else { "0" },
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    dcbhub_domain::hex_lower(&h.finalize())
}

/// Puts a receipt into the sandbox inbox; `false` leaves it to the outbox (which retries or
/// dead-letters it as for any channel).
fn deliver_to_inbox(sandbox: &SandboxState, note: &Notification) -> bool {
    sandbox.notify(note) == NotifyOutcome::Delivered
}

fn count_inbox_delivery() {
    static SENT: OnceLock<metrics::Counter> = OnceLock::new();
    SENT.get_or_init(|| {
        metrics::counter!("dcbhub_notification_deliveries_total", "channel" => ChannelKind::Sandbox.as_str(), "outcome" => "sent")
    })
    .increment(1);
}

/// Undoes, at an in-memory CSP, the booking of a transaction that was not stored, and takes
/// back the receipt its inbox got for it.
fn undo_booking(
    csp: &dyn InlineCharging,
    id: &TransactionId,
    receipt: Option<(SandboxState, Notification)>,
) {
    csp.forget(id);
    if let Some((sandbox, note)) = receipt {
        sandbox.forget_message(&note.id, &note.to);
    }
}

/// What an in-process CSP did when the store asked it.
#[derive(Clone, Copy)]
struct Asked {
    outcome: &'static str,
    /// The receipt went into the sandbox inbox and is stored as sent.
    receipt_sent: bool,
}

fn outcome_label(outcome: &ChargeOutcome) -> &'static str {
    match outcome {
        ChargeOutcome::Success { .. } => "success",
        ChargeOutcome::Declined(_) => "declined",
        ChargeOutcome::Unknown => "unknown",
        ChargeOutcome::Unavailable { .. } => "unavailable",
    }
}

/// Counts a CSP's answer to a charge or refund.
fn count_charge(csp: &str, kind: &'static str, outcome: &'static str) {
    static KEPT: OnceLock<Kept<(&'static str, &'static str), metrics::Counter>> = OnceLock::new();
    KEPT.get_or_init(Kept::default)
        .get(csp, (kind, outcome), || {
            metrics::counter!("dcbhub_charges_total", "csp" => csp.to_owned(), "kind" => kind, "outcome" => outcome)
        })
        .increment(1);
}

/// The failure code stored for a CSP decline.
pub fn decline_code(reason: DeclineReason) -> &'static str {
    reason.code()
}

impl Hub {
    pub async fn transaction(
        &self,
        partner: &PartnerRecord,
        ext: &ExtTransactionId,
    ) -> Result<Option<TransactionRecord>, StoreError> {
        self.store
            .transaction_by_ext(partner.id, ext.as_str())
            .await
    }

    pub async fn charge(
        &self,
        partner: &PartnerRecord,
        cmd: ChargeCommand,
        ctx: &CallContext,
    ) -> Result<TxAnswer, TxError> {
        let scale = 10i64.pow(u32::from(cmd.money.currency().minor_unit()));
        if cmd.money.amount().get() > self.transactions.max_major_units.saturating_mul(scale) {
            return Err(TxError::AmountTooLarge);
        }
        let fingerprint = fingerprint(&cmd);
        // A repeat is answered from the store, before anything is asked of the CSP. Where the
        // CSP answers in memory, asking it first costs nothing, so the lookup is left to the
        // write (which finds a repeat anyway) and to a refusal below: one read less per charge.
        let look_first =
            !matches!(cmd.kind, CommandKind::Charge) || !self.answers_in_process(&cmd.customer);
        if look_first && let Some(existing) = self.stored(partner, &cmd).await? {
            return Box::pin(self.replay(existing, &fingerprint)).await;
        }
        let now = Timestamp::now();
        let prepared = match &cmd.kind {
            CommandKind::Charge => {
                self.prepare_charge(partner, &cmd, fingerprint.clone(), ctx, now)
                    .await
            }
            CommandKind::Refund { original } => {
                self.prepare_refund(partner, &cmd, original, fingerprint.clone(), now)
                    .await
            }
        };
        let new = match prepared {
            Ok(new) => new,
            Err(refusal) if !look_first => {
                return match self.stored(partner, &cmd).await? {
                    Some(existing) => Box::pin(self.replay(existing, &fingerprint)).await,
                    None => Err(refusal),
                };
            }
            Err(refusal) => return Err(refusal),
        };
        let inline = self
            .csps
            .get(&new.csp_id)
            .and_then(|e| e.connector.inline());
        // The paths are boxed: a future holds the largest state of all its paths, and is
        // copied whole at every level of the request's futures that holds it (a charge's
        // was 6.7 KB).
        if let Some(csp) = inline {
            return Box::pin(self.charge_inline(partner, &cmd, new, &fingerprint, csp)).await;
        }
        let record = match self.store.begin_transaction(new).await? {
            BeginOutcome::Created(r) => r,
            refused => return Box::pin(self.refused(refused, &fingerprint)).await,
        };
        let request = self.charge_request(
            &record.id,
            record.original_id.as_deref(),
            &record.csp_id,
            &partner.code,
            &cmd,
        )?;
        let outcome = Box::pin(self.call_csp_for(&record, &request, ctx)).await;
        let record = Box::pin(self.apply_outcome(partner, record, outcome, true)).await?;
        Ok(TxAnswer {
            record,
            replayed: false,
        })
    }

    async fn stored(
        &self,
        partner: &PartnerRecord,
        cmd: &ChargeCommand,
    ) -> Result<Option<TransactionRecord>, StoreError> {
        self.store
            .transaction_by_ext(partner.id, cmd.ext_transaction_id.as_str())
            .await
    }

    /// Whether the customer's CSP (every CSP an email could belong to) answers in memory.
    fn answers_in_process(&self, customer: &Customer) -> bool {
        let inline = |e: &dcbhub_connectors::CspEntry| e.connector.inline().is_some();
        match customer {
            Customer::Msisdn(m) => self.csps.route_msisdn(m).is_some_and(inline),
            Customer::Email(_) => {
                let mut candidates = self.csps.email_candidates().peekable();
                candidates.peek().is_some() && candidates.all(inline)
            }
        }
    }

    /// Why the store did not begin a transaction, as the partner's answer: a repeat is
    /// answered from the stored one.
    async fn refused(&self, outcome: BeginOutcome, fingerprint: &str) -> Result<TxAnswer, TxError> {
        match outcome {
            BeginOutcome::Existing(existing) => self.replay(existing, fingerprint).await,
            BeginOutcome::ConsentUnusable => Err(TxError::InvalidConsent),
            BeginOutcome::LimitExceeded => Err(TxError::LimitExceeded),
            BeginOutcome::RefundExceedsOriginal => Err(TxError::RefundExceedsOriginal),
            BeginOutcome::Created(r) => Err(TxError::Store(StoreError::Backend(format!(
                "transaction {} reported created where nothing was begun",
                r.id
            )))),
        }
    }

    /// A charge at a CSP that answers in memory (the sandbox): the row is written once, with
    /// the CSP's answer. The store asks the CSP just before its write, on the request's
    /// thread (a refund inside the write, after its checks); either way the booking and the
    /// row stand or fall together: a crash loses both (the CSP's books live in this process),
    /// and a write that fails or is refused leaves the CSP's booking undone.
    async fn charge_inline(
        &self,
        partner: &PartnerRecord,
        cmd: &ChargeCommand,
        new: NewTransaction,
        fingerprint: &str,
        csp: Arc<dyn InlineCharging>,
    ) -> Result<TxAnswer, TxError> {
        let request = self.charge_request(
            &new.id,
            new.original_id.as_deref(),
            &new.csp_id,
            &partner.code,
            cmd,
        )?;
        let receipt = match cmd.kind {
            CommandKind::Charge => self.receipt_of(partner, &new.csp_id, cmd),
            CommandKind::Refund { .. } => None,
        };
        // A receipt for the sandbox inbox is delivered with the CSP's answer.
        let inbox = self.sandbox.clone().and_then(|sandbox| {
            let n = receipt
                .as_ref()
                .filter(|n| n.channel == ChannelKind::Sandbox.as_str())?;
            let note = Notification {
                id: n.id.clone(),
                to: n.recipient.clone(),
                text: n.text.clone(),
                partner: partner.code.clone(),
            };
            Some((sandbox, note))
        });
        // Any other receipt is handed to this instance's outbox worker once written. (The
        // inbox refuses only an unknown number, which no successful charge has.)
        let handed = receipt
            .as_ref()
            .filter(|n| inbox.is_none() && n.leased_until.is_some())
            .map(|n| n.to_record(Timestamp::now()));
        let (id, ext, partner_id) = (
            request.transaction_id.clone(),
            new.ext_transaction_id.clone(),
            new.partner_id,
        );
        // What `ask` did, read once the write returns (a refund on SQLite is asked on the
        // writer's thread, so what can wait, the counting, is left to this one).
        let report = Arc::new(OnceLock::new());
        let first_delay = self.transactions.reconcile_first_delay_ms;
        let (csp_label, kind) = (new.csp_id.clone(), request.kind.as_str());
        let connector = csp.clone();
        let (inbox_for_write, report_in_write) = (inbox.clone(), report.clone());
        let ask: InlineCsp = Box::new(move || {
            let outcome = connector.charge_now(&request);
            let label = outcome_label(&outcome);
            let answer = match outcome {
                ChargeOutcome::Success { csp_reference } => {
                    let receipt_sent = inbox_for_write
                        .is_some_and(|(sandbox, note)| deliver_to_inbox(&sandbox, &note));
                    InlineAnswer::Final {
                        settlement: Settlement::Success { csp_reference },
                        receipt_sent,
                    }
                }
                ChargeOutcome::Declined(reason) => InlineAnswer::Final {
                    settlement: Settlement::Failed {
                        failure_code: decline_code(reason).to_owned(),
                    },
                    receipt_sent: false,
                },
                ChargeOutcome::Unknown => InlineAnswer::Unknown {
                    next_check_at: Timestamp::now().plus_millis(first_delay),
                },
                ChargeOutcome::Unavailable { retry_after_secs } => {
                    InlineAnswer::Unavailable { retry_after_secs }
                }
            };
            let _ = report_in_write.set(Asked {
                outcome: label,
                receipt_sent: answer.receipt_sent(),
            });
            answer
        });
        let outcome = self.store.begin_inline(new, ask, receipt).await;
        // The CSP has been asked by now, if it ever will be.
        let asked = report.get().copied();
        if let Some(asked) = asked {
            count_charge(&csp_label, kind, asked.outcome);
        }
        let sent = inbox.filter(|_| asked.is_some_and(|a| a.receipt_sent));
        if sent.is_some() {
            count_inbox_delivery();
        }
        match outcome {
            Ok(ChargedInline::Written(record)) => {
                if let (TxStatus::Success, None, Some(message)) = (record.status, &sent, handed) {
                    self.handoff.offer(message);
                }
                Ok(TxAnswer {
                    record,
                    replayed: false,
                })
            }
            Ok(ChargedInline::Unavailable { retry_after_secs }) => {
                Err(TxError::CspUnavailable { retry_after_secs })
            }
            Ok(ChargedInline::NotBegun(refused)) => {
                // A store may ask the CSP before its checks (PostgreSQL): nothing of this
                // request was stored, so what the CSP booked for it is undone.
                undo_booking(&*csp, &id, sent);
                Box::pin(self.refused(refused, fingerprint)).await
            }
            Err(e) => {
                Box::pin(self.forget_unstored(&*csp, &id, partner_id, &ext, sent)).await;
                Err(e.into())
            }
        }
    }

    /// After a failed write: unless the row turns out to be stored after all (a commit whose
    /// answer was lost), the in-memory CSP forgets what it booked for it.
    async fn forget_unstored(
        &self,
        csp: &dyn InlineCharging,
        id: &TransactionId,
        partner_id: i64,
        ext: &str,
        receipt: Option<(SandboxState, Notification)>,
    ) {
        match self.store.transaction_by_ext(partner_id, ext).await {
            Ok(Some(stored)) if stored.id == id.as_str() => {}
            Ok(_) => undo_booking(csp, id, receipt),
            Err(e) => {
                tracing::error!(error = %e, transaction = %id, "cannot tell whether a failed write was stored");
            }
        }
    }

    async fn prepare_charge(
        &self,
        partner: &PartnerRecord,
        cmd: &ChargeCommand,
        fingerprint: String,
        ctx: &CallContext,
        now: Timestamp,
    ) -> Result<NewTransaction, TxError> {
        let consent = self.check_consent(partner, cmd, now).await?;
        let account = self
            .validate_account(&partner.code, &cmd.customer, ctx)
            .await
            .map_err(TxError::Account)?;
        if account.currency != cmd.money.currency() {
            return Err(TxError::CurrencyNotSupported);
        }
        // Every charge counts in its day and month, so that limits configured later see it;
        // without a limit in the account's currency nothing is enforced.
        let (day_start, month_start) = self.windows(now);
        let policy = self
            .settings(&account.csp_id)
            .and_then(|s| s.limits)
            .filter(|l| l.currency == account.currency);
        let limits = Some(SpendingLimits {
            per_transaction: policy.map_or(i64::MAX, |l| l.per_transaction.get()),
            per_day: policy.map_or(i64::MAX, |l| l.per_day.get()),
            per_month: policy.map_or(i64::MAX, |l| l.per_month.get()),
            day_start,
            month_start,
        });
        Ok(self.new_transaction(
            partner,
            cmd,
            fingerprint,
            account.csp_id.clone(),
            account.key(),
            None,
            consent,
            limits,
            now,
        ))
    }

    async fn prepare_refund(
        &self,
        partner: &PartnerRecord,
        cmd: &ChargeCommand,
        original_ext: &ExtTransactionId,
        fingerprint: String,
        now: Timestamp,
    ) -> Result<NewTransaction, TxError> {
        let original = self
            .store
            .transaction_by_ext(partner.id, original_ext.as_str())
            .await?
            .filter(|o| o.tx_type == TxType::Charge)
            .ok_or(TxError::OriginalNotFound)?;
        if original.customer != cmd.customer.as_str() {
            return Err(TxError::RefundCustomerMismatch);
        }
        if original.currency != cmd.money.currency().code() {
            return Err(TxError::CurrencyNotSupported);
        }
        if original.status != TxStatus::Success {
            return Err(TxError::RefundExceedsOriginal);
        }
        Ok(self.new_transaction(
            partner,
            cmd,
            fingerprint,
            original.csp_id.clone(),
            original.account_key.clone(),
            Some(original.id),
            None,
            None,
            now,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn new_transaction(
        &self,
        partner: &PartnerRecord,
        cmd: &ChargeCommand,
        fingerprint: String,
        csp_id: String,
        account_key: String,
        original_id: Option<String>,
        consume_pin: Option<String>,
        limits: Option<SpendingLimits>,
        now: Timestamp,
    ) -> NewTransaction {
        NewTransaction {
            id: TransactionId::generate().as_str().to_owned(),
            partner_id: partner.id,
            ext_transaction_id: cmd.ext_transaction_id.as_str().to_owned(),
            fingerprint,
            tx_type: if original_id.is_some() {
                TxType::Refund
            } else {
                TxType::Charge
            },
            customer: cmd.customer.as_str().to_owned(),
            customer_kind: cmd.customer.kind().to_owned(),
            csp_id,
            account_key,
            amount_minor: cmd.money.amount().get(),
            currency: cmd.money.currency().code().to_owned(),
            description: cmd.description.as_str().to_owned(),
            product_code: cmd.product_code.as_ref().map(|p| p.as_str().to_owned()),
            tax_included: cmd.tax_included,
            original_id,
            consume_pin,
            limits,
            // A second past the CSP budget: a twin waits until the first request has answered.
            processing_until: now.plus_millis(self.transactions.processing_ms + 1_000),
        }
    }

    /// The PIN consent this charge will use up, when the partner's policy asks for one (or
    /// the partner sent one anyway).
    async fn check_consent(
        &self,
        partner: &PartnerRecord,
        cmd: &ChargeCommand,
        now: Timestamp,
    ) -> Result<Option<String>, TxError> {
        let Some(pin_id) = &cmd.pin_id else {
            return match partner.consent {
                ConsentPolicy::Pin => Err(TxError::ConsentRequired),
                ConsentPolicy::None => Ok(None),
            };
        };
        let pin = self
            .store
            .pin(partner.id, pin_id.as_str())
            .await?
            .ok_or(TxError::InvalidConsent)?;
        let b = &pin.binding;
        let usable = pin.status == PinStatus::Validated
            && pin.consent_expires_at.is_some_and(|t| t > now)
            && b.customer == cmd.customer.as_str()
            && b.amount_minor.is_none_or(|a| a == cmd.money.amount().get())
            && b.currency
                .as_deref()
                .is_none_or(|c| c == cmd.money.currency().code())
            && b.ext_transaction_id
                .as_deref()
                .is_none_or(|e| e == cmd.ext_transaction_id.as_str());
        if !usable {
            return Err(TxError::InvalidConsent);
        }
        Ok(Some(pin.id))
    }

    /// Starts of the spending-limit day and calendar month containing `now`.
    fn windows(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let offset = time::UtcOffset::from_whole_seconds(self.transactions.limits_utc_offset_secs)
            .unwrap_or(time::UtcOffset::UTC);
        let local = now.to_datetime().to_offset(offset);
        let day = local.replace_time(time::Time::MIDNIGHT);
        let month = day.replace_day(1).unwrap_or(day);
        (
            Timestamp::from_datetime(day),
            Timestamp::from_datetime(month),
        )
    }

    pub(crate) fn charge_request(
        &self,
        id: &str,
        original_id: Option<&str>,
        csp_id: &str,
        partner: &PartnerCode,
        cmd: &ChargeCommand,
    ) -> Result<ChargeRequest, TxError> {
        let transaction_id = TransactionId::parse(id)
            .map_err(|e| TxError::Store(StoreError::Backend(e.to_string())))?;
        let kind = match (&cmd.kind, original_id) {
            (CommandKind::Refund { .. }, Some(original)) => ChargeKind::Refund {
                original: TransactionId::parse(original)
                    .map_err(|e| TxError::Store(StoreError::Backend(e.to_string())))?,
            },
            _ => ChargeKind::Charge,
        };
        let charge_code =
            self.charge_code(csp_id, cmd.product_code.as_ref().map(ProductCode::as_str));
        Ok(ChargeRequest {
            transaction_id,
            customer: cmd.customer.clone(),
            money: cmd.money,
            description: cmd.description.clone(),
            charge_code,
            partner: partner.clone(),
            kind,
        })
    }

    /// Charges `record` at its CSP: in two phases where the CSP reserves and debits, in one
    /// call otherwise.
    pub(crate) async fn call_csp_for(
        &self,
        record: &TransactionRecord,
        request: &ChargeRequest,
        ctx: &CallContext,
    ) -> ChargeOutcome {
        let two_phase = self
            .csps
            .get(&record.csp_id)
            .and_then(|e| e.connector.two_phase());
        match (two_phase, &request.kind) {
            (Some(csp), ChargeKind::Charge) => {
                let budget = Duration::from_millis(
                    u64::try_from(self.transactions.processing_ms).unwrap_or(5_000),
                );
                tokio::time::timeout(budget, self.charge_two_phase(csp, record, request, ctx))
                    .await
                    .unwrap_or(ChargeOutcome::Unknown)
            }
            _ => self.call_csp(&record.csp_id, request, ctx).await,
        }
    }

    /// The CSP's charging code for a partner's product code, when the CSP maps it.
    pub(crate) fn charge_code(&self, csp_id: &str, product_code: Option<&str>) -> Option<String> {
        let product = product_code?;
        self.settings(csp_id)?.charge_codes.get(product).cloned()
    }

    /// Calls the CSP's charge; no answer within the processing window is an unknown outcome.
    pub(crate) async fn call_csp(
        &self,
        csp_id: &str,
        request: &ChargeRequest,
        ctx: &CallContext,
    ) -> ChargeOutcome {
        let Some(entry) = self.csps.get(csp_id) else {
            tracing::error!(csp = csp_id, "transaction routed to an unconfigured CSP");
            return ChargeOutcome::Unknown;
        };
        let budget =
            Duration::from_millis(u64::try_from(self.transactions.processing_ms).unwrap_or(5_000));
        let outcome = tokio::time::timeout(budget, entry.connector.charge(request, ctx))
            .await
            .unwrap_or(ChargeOutcome::Unknown);
        count_charge(csp_id, request.kind.as_str(), outcome_label(&outcome));
        outcome
    }

    /// Records what the CSP said. `in_request`: the partner is waiting for this answer (an
    /// unavailable CSP then abandons the transaction; in the reconciler it is retried).
    pub(crate) async fn apply_outcome(
        &self,
        partner: &PartnerRecord,
        record: TransactionRecord,
        outcome: ChargeOutcome,
        in_request: bool,
    ) -> Result<TransactionRecord, TxError> {
        match outcome {
            ChargeOutcome::Success { csp_reference } => {
                let mut receipt = self.receipt(partner, &record);
                if let Some(n) = receipt.as_mut() {
                    n.leased_until = self.handoff.lease_until(self.notifications.lease_ms);
                }
                let handed = receipt
                    .as_ref()
                    .filter(|n| n.leased_until.is_some())
                    .map(|n| n.to_record(Timestamp::now()));
                let settled = self
                    .store
                    .settle_transaction(&record.id, Settlement::Success { csp_reference }, receipt)
                    .await?;
                if let (true, Some(message)) = (settled.moved, handed) {
                    self.handoff.offer(message);
                }
                Ok(settled.record)
            }
            ChargeOutcome::Declined(reason) => Ok(self
                .store
                .settle_transaction(
                    &record.id,
                    Settlement::Failed {
                        failure_code: decline_code(reason).to_owned(),
                    },
                    None,
                )
                .await?
                .record),
            ChargeOutcome::Unknown => {
                let next = Timestamp::now().plus_millis(self.transactions.reconcile_first_delay_ms);
                self.store.defer_transaction(&record.id, next).await?;
                Ok(record)
            }
            ChargeOutcome::Unavailable { retry_after_secs } if in_request => {
                self.store.abandon_transaction(&record.id).await?;
                Err(TxError::CspUnavailable { retry_after_secs })
            }
            ChargeOutcome::Unavailable { .. } => Ok(record),
        }
    }

    fn receipt(
        &self,
        partner: &PartnerRecord,
        record: &TransactionRecord,
    ) -> Option<dcbhub_store::NewNotification> {
        if !partner.receipts_enabled || record.tx_type != TxType::Charge {
            return None;
        }
        let customer = record.customer().ok()?;
        let money = record.money().ok()?;
        let description = Description::parse(&record.description).ok()?;
        let ext = ExtTransactionId::parse(&record.ext_transaction_id).ok()?;
        Some(self.receipt_message(
            partner,
            &record.csp_id,
            &customer,
            &money,
            &description,
            &ext,
        ))
    }

    /// The receipt of a charge about to be written, leased to this instance's outbox worker
    /// (`None` when the partner takes no receipts).
    fn receipt_of(
        &self,
        partner: &PartnerRecord,
        csp_id: &str,
        cmd: &ChargeCommand,
    ) -> Option<dcbhub_store::NewNotification> {
        if !partner.receipts_enabled {
            return None;
        }
        let mut receipt = self.receipt_message(
            partner,
            csp_id,
            &cmd.customer,
            &cmd.money,
            &cmd.description,
            &cmd.ext_transaction_id,
        );
        receipt.leased_until = self.handoff.lease_until(self.notifications.lease_ms);
        Some(receipt)
    }

    fn receipt_message(
        &self,
        partner: &PartnerRecord,
        csp_id: &str,
        customer: &Customer,
        money: &Money,
        description: &Description,
        ext: &ExtTransactionId,
    ) -> dcbhub_store::NewNotification {
        let text =
            dcbhub_notify::templates::receipt_message(None, &partner.name, money, description, ext);
        self.message(
            partner,
            csp_id,
            customer,
            MessageSpec {
                kind: "RECEIPT",
                text,
                redacted_text: None,
                ext_transaction_id: Some(ext.as_str().to_owned()),
                locale: None,
            },
        )
    }

    /// Answers a repeat from the stored transaction. A twin still talking to the CSP is
    /// waited for, so that every repeat gets the same answer as the first request.
    async fn replay(
        &self,
        existing: TransactionRecord,
        fingerprint: &str,
    ) -> Result<TxAnswer, TxError> {
        if existing.fingerprint != fingerprint {
            return Err(TxError::Conflict);
        }
        let mut record = existing;
        while record.status == TxStatus::Pending && record.processing_until > Timestamp::now() {
            tokio::time::sleep(TWIN_POLL).await;
            match self
                .store
                .transaction_by_ext(record.partner_id, &record.ext_transaction_id)
                .await?
            {
                Some(r) => record = r,
                // The twin was abandoned (CSP unavailable): nothing is stored any more.
                None => {
                    return Err(TxError::CspUnavailable {
                        retry_after_secs: 1,
                    });
                }
            }
        }
        Ok(TxAnswer {
            record,
            replayed: true,
        })
    }
}
