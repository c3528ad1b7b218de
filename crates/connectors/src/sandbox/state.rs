//! The simulated CSP's books: ledger, prepaid balances and inbox, behind one mutex, so the
//! in-process connector and the csp-sim HTTP server can share one state.

use std::collections::VecDeque;
use std::sync::Arc;

use dcbhub_domain::{
    Customer, MinorUnits, Money, NotificationId, PartnerCode, Timestamp, TransactionId,
};
use foldhash::{HashMap, HashMapExt};
use parking_lot::Mutex;

use super::accounts::{
    Account, PREPAID_OPENING_BALANCE, Row, UNAVAILABLE_RETRY_AFTER_SECS, account_outcome,
    sandbox_currency,
};
use super::remembered::Remembered;
use crate::{
    AccountOutcome, ChargeKind, ChargeOutcome, ChargeRequest, DeclineReason, Notification,
    NotifyOutcome, StatusOutcome,
};

/// Messages kept per recipient; older ones are dropped so a long-running sandbox stays small.
const INBOX_CAPACITY_PER_RECIPIENT: usize = 200;
/// Transactions and delivered notification ids the sandbox remembers (a few hundred bytes
/// each): beyond that the oldest are forgotten, so a sandbox under load for days stays
/// bounded. A forgotten transaction is unknown to status lookups and cannot be refunded; a
/// forgotten notification id delivered again is a new message. (The hub's reconciler sends a
/// PENDING charge again when its CSP has never seen it: a charge left PENDING while 200,000
/// others were booked would be booked a second time, which only moves the prepaid sandbox
/// account's simulated balance.)
const SANDBOX_MEMORY: usize = 200_000;

/// The final state of a transaction the sandbox answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerStatus {
    Success,
    Failed(DeclineReason),
}

/// One transaction as the sandbox CSP booked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub transaction_id: TransactionId,
    /// The account reference (MSISDN digits), or the customer as given when no sandbox
    /// account matched.
    pub account: String,
    pub partner: PartnerCode,
    pub money: Money,
    pub kind: ChargeKind,
    pub status: LedgerStatus,
    /// Set for successful transactions.
    pub csp_reference: Option<String>,
    pub recorded_at: Timestamp,
}

/// A message the sandbox "delivered".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxMessage {
    /// The recipient exactly as the message was addressed (number or email alias).
    pub to: String,
    pub text: String,
    pub sent_at: Timestamp,
}

/// The sandbox's answer to a charge, before the transport decides how to deliver it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxCharge {
    /// What the CSP did: `Success`, `Declined` or `Unavailable` (never `Unknown`).
    pub outcome: ChargeOutcome,
    /// The answer "never arrives in time" (number 007): the in-process connector reports
    /// `Unknown` at once, csp-sim answers only after its configured delay.
    pub answer_late: bool,
}

/// Shared, cloneable handle on the sandbox CSP's state.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Mutex<Books>>,
}

impl Default for SandboxState {
    fn default() -> Self {
        Self::remembering(SANDBOX_MEMORY)
    }
}

struct Books {
    /// In booking order.
    ledger: Remembered<TransactionId, Booked>,
    refunded: HashMap<TransactionId, MinorUnits>,
    balances: HashMap<String, MinorUnits>,
    inbox: HashMap<String, VecDeque<Delivered>>,
    delivered: Remembered<NotificationId, ()>,
}

/// An inbox entry: who caused it, under which notification id.
struct Delivered {
    partner: PartnerCode,
    id: NotificationId,
    message: InboxMessage,
}

struct Booked {
    entry: LedgerEntry,
    answer_late: bool,
}

impl Booked {
    fn answer(&self) -> SandboxCharge {
        let outcome = match (self.entry.status, &self.entry.csp_reference) {
            (LedgerStatus::Success, Some(reference)) => ChargeOutcome::Success {
                csp_reference: reference.clone(),
            },
            (LedgerStatus::Failed(reason), _) => ChargeOutcome::Declined(reason),
            // Never booked so; kept total rather than panicking.
            (LedgerStatus::Success, None) => ChargeOutcome::Declined(DeclineReason::Declined),
        };
        SandboxCharge {
            outcome,
            answer_late: self.answer_late,
        }
    }
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let books = self.inner.lock();
        f.debug_struct("SandboxState")
            .field("ledger_entries", &books.ledger.len())
            .finish_non_exhaustive()
    }
}

impl SandboxState {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sandbox that remembers `memory` transactions and delivered notification ids.
    pub(crate) fn remembering(memory: usize) -> Self {
        let books = Books {
            ledger: Remembered::new(memory),
            refunded: HashMap::new(),
            balances: HashMap::new(),
            inbox: HashMap::new(),
            delivered: Remembered::new(memory),
        };
        Self {
            inner: Arc::new(Mutex::new(books)),
        }
    }

    /// The account behind a customer, per the sandbox table. Never changes.
    pub fn validate(&self, customer: &Customer) -> AccountOutcome {
        account_outcome(customer)
    }

    /// Charges or refunds, idempotently on the transaction id: a repeat gets the first
    /// answer and moves no money.
    pub fn charge(&self, req: &ChargeRequest) -> SandboxCharge {
        let mut books = self.inner.lock();
        if let Some(booked) = books.booked(&req.transaction_id) {
            return booked.answer();
        }
        let Some(account) = Account::find(&req.customer) else {
            return books.book(
                req,
                req.customer.as_str(),
                Err(DeclineReason::AccountNotFound),
                false,
            );
        };
        if account.row == Row::RefusesCharges {
            // Refused before charging: nothing is booked, so a retry is processed anew.
            return SandboxCharge {
                outcome: ChargeOutcome::Unavailable {
                    retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
                },
                answer_late: false,
            };
        }
        if let Some(reason) = account.refusal() {
            return books.book(req, account.digits, Err(reason), false);
        }
        let result = match &req.kind {
            ChargeKind::Charge => books.debit(&account, req.money),
            ChargeKind::Refund { original } => books.credit(&account, original, req.money),
        };
        let answer_late = account.row == Row::AnswersLate && req.kind == ChargeKind::Charge;
        books.book(req, account.digits, result, answer_late)
    }

    /// Undoes a booking the hub did not store (its write failed): the entry leaves the
    /// ledger and what it moved goes back, as if the sandbox had never seen the id.
    pub fn forget(&self, transaction_id: &TransactionId) {
        let mut books = self.inner.lock();
        let Some(booked) = books.ledger.remove(transaction_id) else {
            return;
        };
        if booked.entry.status == LedgerStatus::Success {
            books.reverse(&booked.entry);
        }
    }

    /// What the sandbox knows about a transaction id.
    pub fn charge_status(&self, transaction_id: &TransactionId) -> StatusOutcome {
        let books = self.inner.lock();
        let Some(entry) = books.booked(transaction_id).map(|b| &b.entry) else {
            return StatusOutcome::NotFound;
        };
        match (entry.status, &entry.csp_reference) {
            (LedgerStatus::Success, Some(reference)) => StatusOutcome::Success {
                csp_reference: reference.clone(),
            },
            (LedgerStatus::Failed(reason), _) => StatusOutcome::Failed(reason),
            (LedgerStatus::Success, None) => StatusOutcome::Failed(DeclineReason::Declined),
        }
    }

    /// "Delivers" a message into the inbox, once per notification id. Recipients without a
    /// sandbox account get a permanent failure.
    pub fn notify(&self, n: &Notification) -> NotifyOutcome {
        if account_outcome(&n.to) == AccountOutcome::NotFound {
            return NotifyOutcome::Permanent(DeclineReason::AccountNotFound.code().to_owned());
        }
        let mut books = self.inner.lock();
        if books.delivered.contains(&n.id) {
            return NotifyOutcome::Delivered;
        }
        books.delivered.insert(n.id.clone(), ());
        let message = InboxMessage {
            to: n.to.as_str().to_owned(),
            text: n.text.clone(),
            sent_at: Timestamp::now(),
        };
        // Sized once, and the oldest dropped before the newest goes in: no regrowth.
        let messages = books
            .inbox
            .entry(message.to.clone())
            .or_insert_with(|| VecDeque::with_capacity(INBOX_CAPACITY_PER_RECIPIENT));
        if messages.len() >= INBOX_CAPACITY_PER_RECIPIENT {
            messages.pop_back();
        }
        messages.push_front(Delivered {
            partner: n.partner.clone(),
            id: n.id.clone(),
            message,
        });
        NotifyOutcome::Delivered
    }

    /// Takes back a message whose write in the hub did not commit.
    pub fn forget_message(&self, id: &NotificationId, to: &Customer) {
        let mut books = self.inner.lock();
        books.delivered.remove(id);
        if let Some(messages) = books.inbox.get_mut(to.as_str()) {
            messages.retain(|d| &d.id != id);
        }
    }

    /// Every transaction booked so far, oldest first.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        let books = self.inner.lock();
        books.ledger.values().map(|b| b.entry.clone()).collect()
    }

    /// The messages one partner caused to a recipient (as addressed), newest first.
    pub fn inbox(&self, recipient: &Customer, partner: &PartnerCode) -> Vec<InboxMessage> {
        let books = self.inner.lock();
        books
            .inbox
            .get(recipient.as_str())
            .into_iter()
            .flatten()
            .filter(|d| &d.partner == partner)
            .map(|d| d.message.clone())
            .collect()
    }

    /// All messages to a recipient (as addressed) with the partner that caused each, newest
    /// first.
    pub fn inbox_all_partners(&self, recipient: &Customer) -> Vec<(PartnerCode, InboxMessage)> {
        let books = self.inner.lock();
        books
            .inbox
            .get(recipient.as_str())
            .map(|messages| {
                messages
                    .iter()
                    .map(|d| (d.partner.clone(), d.message.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The current balance of a prepaid sandbox account; `None` for other customers.
    pub fn prepaid_balance(&self, customer: &Customer) -> Option<MinorUnits> {
        let account = Account::find(customer).filter(|a| a.row == Row::Prepaid)?;
        let books = self.inner.lock();
        Some(
            books
                .balances
                .get(account.digits)
                .copied()
                .unwrap_or(PREPAID_OPENING_BALANCE),
        )
    }
}

impl Books {
    fn debit(&mut self, account: &Account<'_>, money: Money) -> Result<(), DeclineReason> {
        if account.row == Row::DeclinesEveryCharge || money.currency() != sandbox_currency() {
            return Err(DeclineReason::Declined);
        }
        if account.row == Row::Prepaid {
            let balance = self
                .balances
                .entry(account.digits.to_owned())
                .or_insert(PREPAID_OPENING_BALANCE);
            let left = balance
                .checked_sub(money.amount())
                .filter(|left| left.get() >= 0)
                .ok_or(DeclineReason::InsufficientFunds)?;
            *balance = left;
        }
        Ok(())
    }

    /// A refund must name a successful charge of the same account and currency, and all
    /// refunds of it together never exceed what was charged.
    fn credit(
        &mut self,
        account: &Account<'_>,
        original: &TransactionId,
        money: Money,
    ) -> Result<(), DeclineReason> {
        let declined = DeclineReason::Declined;
        let charge = &self.booked(original).ok_or(declined)?.entry;
        let refundable = charge.kind == ChargeKind::Charge
            && charge.status == LedgerStatus::Success
            && charge.account == account.digits
            && charge.money.currency() == money.currency();
        if !refundable {
            return Err(declined);
        }
        let already = self.refunded.get(original).copied().unwrap_or_default();
        let total = already.checked_add(money.amount()).ok_or(declined)?;
        if total > charge.money.amount() {
            return Err(declined);
        }
        self.refunded.insert(original.clone(), total);
        if account.row == Row::Prepaid {
            let balance = self
                .balances
                .entry(account.digits.to_owned())
                .or_insert(PREPAID_OPENING_BALANCE);
            *balance = balance.checked_add(money.amount()).ok_or(declined)?;
        }
        Ok(())
    }

    /// Moves back what a successful entry moved. Only prepaid accounts have a balance.
    fn reverse(&mut self, entry: &LedgerEntry) {
        let amount = entry.money.amount();
        let balance = self.balances.get(&entry.account).copied();
        let restored = match &entry.kind {
            ChargeKind::Charge => balance.and_then(|b| b.checked_add(amount)),
            ChargeKind::Refund { original } => {
                if let Some(done) = self.refunded.get(original).copied() {
                    let left = done.checked_sub(amount).unwrap_or_default();
                    self.refunded.insert(original.clone(), left);
                }
                balance.and_then(|b| b.checked_sub(amount))
            }
        };
        if let Some(b) = restored {
            self.balances.insert(entry.account.clone(), b);
        }
    }

    fn booked(&self, id: &TransactionId) -> Option<&Booked> {
        self.ledger.get(id)
    }

    fn book(
        &mut self,
        req: &ChargeRequest,
        account: &str,
        result: Result<(), DeclineReason>,
        answer_late: bool,
    ) -> SandboxCharge {
        let (status, csp_reference) = match result {
            Ok(()) => (
                LedgerStatus::Success,
                Some(csp_reference(&req.transaction_id)),
            ),
            Err(reason) => (LedgerStatus::Failed(reason), None),
        };
        let booked = Booked {
            entry: LedgerEntry {
                transaction_id: req.transaction_id.clone(),
                account: account.to_owned(),
                partner: req.partner.clone(),
                money: req.money,
                kind: req.kind.clone(),
                status,
                csp_reference,
                recorded_at: Timestamp::now(),
            },
            answer_late,
        };
        let answer = booked.answer();
        if let Some((forgotten, _)) = self.ledger.insert(req.transaction_id.clone(), booked) {
            self.refunded.remove(&forgotten);
        }
        answer
    }
}

/// Deterministic: the same transaction always gets the same reference.
fn csp_reference(id: &TransactionId) -> String {
    let raw = id.as_str();
    [
        "sbx-",
        raw.strip_prefix(TransactionId::PREFIX).unwrap_or(raw),
    ]
    .concat()
}
