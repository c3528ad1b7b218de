//! The `sandbox` connector: the simulated CSP of API.md §9, in process. Deterministic and
//! idempotent on transaction and notification ids.

mod accounts;
mod remembered;
mod state;

use std::sync::Arc;

use async_trait::async_trait;
use dcbhub_domain::{Customer, PartnerCode, TransactionId};

pub use accounts::{
    PREPAID_OPENING_BALANCE, SANDBOX_EMAIL_DOMAIN, SANDBOX_RANGE_PREFIX,
    UNAVAILABLE_RETRY_AFTER_SECS, sandbox_currency,
};
pub use state::{InboxMessage, LedgerEntry, LedgerStatus, SandboxCharge, SandboxState};

use crate::{
    AccountOutcome, CallContext, ChargeOutcome, ChargeRequest, ConnectorError, CspConnector,
    InlineCharging, Notification, NotifyOutcome, StatusOutcome,
};

#[derive(Clone, Debug)]
pub struct SandboxConnector {
    state: SandboxState,
    /// The same state, as the core's in-memory charging interface (made once, not per call).
    inline: Arc<SandboxInline>,
}

impl Default for SandboxConnector {
    fn default() -> Self {
        Self::with_state(SandboxState::default())
    }
}

/// The sandbox answers in memory: the store asks it just before (a refund: inside) the write
/// of the transaction.
#[derive(Debug)]
struct SandboxInline(SandboxState);

impl InlineCharging for SandboxInline {
    fn charge_now(&self, req: &ChargeRequest) -> ChargeOutcome {
        let answer = self.0.charge(req);
        if answer.answer_late {
            // In process there is nothing to wait for: report what a hub would see after
            // its timeout, while the charge itself is already booked.
            ChargeOutcome::Unknown
        } else {
            answer.outcome
        }
    }

    fn forget(&self, transaction_id: &TransactionId) {
        self.0.forget(transaction_id);
    }
}

impl SandboxConnector {
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector over a state shared with others (e.g. a csp-sim server).
    pub fn with_state(state: SandboxState) -> Self {
        Self {
            inline: Arc::new(SandboxInline(state.clone())),
            state,
        }
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state.ledger()
    }

    pub fn inbox(&self, recipient: &Customer, partner: &PartnerCode) -> Vec<InboxMessage> {
        self.state.inbox(recipient, partner)
    }
}

#[async_trait]
impl CspConnector for SandboxConnector {
    fn kind(&self) -> &'static str {
        "sandbox"
    }

    async fn validate_account(
        &self,
        customer: &Customer,
        _partner: &PartnerCode,
        _ctx: &CallContext,
    ) -> Result<AccountOutcome, ConnectorError> {
        Ok(self.state.validate(customer))
    }

    async fn charge(&self, req: &ChargeRequest, _ctx: &CallContext) -> ChargeOutcome {
        self.inline.charge_now(req)
    }

    async fn charge_status(
        &self,
        transaction_id: &TransactionId,
        _ctx: &CallContext,
    ) -> StatusOutcome {
        self.state.charge_status(transaction_id)
    }

    async fn notify(&self, n: &Notification, _ctx: &CallContext) -> NotifyOutcome {
        self.state.notify(n)
    }

    fn inline(&self) -> Option<Arc<dyn InlineCharging>> {
        Some(self.inline.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountType, ChargeKind, DeclineReason};
    use dcbhub_domain::{Currency, Description, Email, MinorUnits, Money, Msisdn, NotificationId};

    fn number(suffix: &str) -> Customer {
        Customer::Msisdn(Msisdn::parse(&format!("+447700900{suffix}")).unwrap())
    }

    fn alias(suffix: &str) -> Customer {
        Customer::Email(Email::parse(&format!("447700900{suffix}@sandbox.dcbhub.test")).unwrap())
    }

    fn gbp(amount: &str) -> Money {
        Money::parse(amount, Currency::parse("GBP").unwrap()).unwrap()
    }

    fn partner(code: &str) -> PartnerCode {
        PartnerCode::parse(code).unwrap()
    }

    fn charge(customer: Customer, amount: &str) -> ChargeRequest {
        ChargeRequest {
            transaction_id: TransactionId::generate(),
            customer,
            money: gbp(amount),
            description: Description::parse("Premium plan").unwrap(),
            charge_code: None,
            partner: partner("NFLX"),
            kind: ChargeKind::Charge,
        }
    }

    fn refund(of: &ChargeRequest, amount: &str) -> ChargeRequest {
        ChargeRequest {
            transaction_id: TransactionId::generate(),
            money: gbp(amount),
            kind: ChargeKind::Refund {
                original: of.transaction_id.clone(),
            },
            ..of.clone()
        }
    }

    fn active(suffix: &str, account_type: AccountType) -> AccountOutcome {
        AccountOutcome::Active {
            account_type,
            currency: Currency::parse("GBP").unwrap(),
            account_ref: format!("447700900{suffix}"),
        }
    }

    fn is_success(outcome: &ChargeOutcome) -> bool {
        matches!(outcome, ChargeOutcome::Success { .. })
    }

    #[test]
    fn validates_every_row_by_number_and_by_email_alias() {
        let sandbox = SandboxState::new();
        let rows = [
            ("000", active("000", AccountType::Postpaid)),
            ("001", active("001", AccountType::Prepaid)),
            ("002", AccountOutcome::NotFound),
            ("003", AccountOutcome::SuspendedNonPayment),
            ("004", AccountOutcome::Suspended),
            ("005", AccountOutcome::Barred),
            ("006", active("006", AccountType::Postpaid)),
            ("007", active("007", AccountType::Postpaid)),
            ("008", active("008", AccountType::Postpaid)),
            ("009", active("009", AccountType::Postpaid)),
            ("999", active("999", AccountType::Postpaid)),
        ];
        for (suffix, expected) in rows {
            assert_eq!(
                sandbox.validate(&number(suffix)),
                expected,
                "number {suffix}"
            );
            assert_eq!(sandbox.validate(&alias(suffix)), expected, "alias {suffix}");
        }
    }

    #[test]
    fn numbers_and_emails_outside_the_sandbox_are_not_found() {
        let sandbox = SandboxState::new();
        for outside in [
            "+447700901000",
            "+447700899999",
            "+14155550123",
            "+4477009000001",
        ] {
            let customer = Customer::Msisdn(Msisdn::parse(outside).unwrap());
            assert_eq!(
                sandbox.validate(&customer),
                AccountOutcome::NotFound,
                "{outside}"
            );
        }
        for email in [
            "ann@example.com",
            "447700900000@example.com",
            "447700901000@sandbox.dcbhub.test",
            "44770090000@sandbox.dcbhub.test",
            "x447700900000@sandbox.dcbhub.test",
        ] {
            let customer = Customer::Email(Email::parse(email).unwrap());
            assert_eq!(
                sandbox.validate(&customer),
                AccountOutcome::NotFound,
                "{email}"
            );
        }
        // The domain is compared case-insensitively.
        let upper = Customer::Email(Email::parse("447700900000@SANDBOX.dcbhub.TEST").unwrap());
        assert_eq!(
            sandbox.validate(&upper),
            active("000", AccountType::Postpaid)
        );
    }

    #[test]
    fn charges_follow_the_table() {
        let sandbox = SandboxState::new();
        let outcome = |customer: Customer| sandbox.charge(&charge(customer, "4.99"));
        assert!(is_success(&outcome(number("000")).outcome));
        assert!(is_success(&outcome(alias("009")).outcome));
        assert!(is_success(&outcome(number("001")).outcome));
        let declined = |reason| SandboxCharge {
            outcome: ChargeOutcome::Declined(reason),
            answer_late: false,
        };
        assert_eq!(
            outcome(number("002")),
            declined(DeclineReason::AccountNotFound)
        );
        assert_eq!(
            outcome(number("003")),
            declined(DeclineReason::SuspendedNonPayment)
        );
        assert_eq!(outcome(number("004")), declined(DeclineReason::Suspended));
        assert_eq!(outcome(number("005")), declined(DeclineReason::Barred));
        assert_eq!(outcome(number("006")), declined(DeclineReason::Declined));
        assert_eq!(
            outcome(Customer::Msisdn(Msisdn::parse("+14155550123").unwrap())),
            declined(DeclineReason::AccountNotFound)
        );
        let late = outcome(number("007"));
        assert!(late.answer_late && is_success(&late.outcome));
        assert_eq!(
            outcome(number("008")),
            SandboxCharge {
                outcome: ChargeOutcome::Unavailable {
                    retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS
                },
                answer_late: false,
            }
        );
    }

    #[test]
    fn charges_in_another_currency_are_declined() {
        let sandbox = SandboxState::new();
        let mut req = charge(number("000"), "1.00");
        req.money = Money::parse("1.00", Currency::parse("EUR").unwrap()).unwrap();
        assert_eq!(
            sandbox.charge(&req).outcome,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
    }

    #[tokio::test]
    async fn late_number_reports_unknown_at_once_and_success_later() {
        let connector = SandboxConnector::new();
        let ctx = CallContext::default();
        let req = charge(number("007"), "2.00");
        assert_eq!(connector.charge(&req, &ctx).await, ChargeOutcome::Unknown);
        assert!(matches!(
            connector.charge_status(&req.transaction_id, &ctx).await,
            StatusOutcome::Success { .. }
        ));
        // A repeat is late again and books nothing new.
        assert_eq!(connector.charge(&req, &ctx).await, ChargeOutcome::Unknown);
        assert_eq!(connector.ledger().len(), 1);
    }

    #[tokio::test]
    async fn unavailable_number_books_nothing() {
        let connector = SandboxConnector::new();
        let ctx = CallContext::default();
        let req = charge(number("008"), "2.00");
        for _ in 0..2 {
            assert!(matches!(
                connector.charge(&req, &ctx).await,
                ChargeOutcome::Unavailable {
                    retry_after_secs: 5
                }
            ));
        }
        assert_eq!(
            connector.charge_status(&req.transaction_id, &ctx).await,
            StatusOutcome::NotFound
        );
        assert!(connector.ledger().is_empty());
    }

    #[test]
    fn charges_are_idempotent_on_the_transaction_id() {
        let sandbox = SandboxState::new();
        let prepaid = number("001");
        let req = charge(prepaid.clone(), "3.00");
        let first = sandbox.charge(&req);
        assert!(is_success(&first.outcome));
        // A repeat, even with other content, gets the first answer and moves no money.
        let mut repeat = req.clone();
        repeat.money = gbp("9.00");
        assert_eq!(sandbox.charge(&repeat), first);
        assert_eq!(sandbox.charge(&req), first);
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(700))
        );
        let ledger = sandbox.ledger();
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].money, gbp("3.00"));
        assert_eq!(ledger[0].status, LedgerStatus::Success);
        assert_eq!(ledger[0].account, "447700900001");

        // Declines are final too.
        let declined = charge(number("006"), "1.00");
        let first = sandbox.charge(&declined);
        assert_eq!(sandbox.charge(&declined), first);
        assert_eq!(
            sandbox.charge_status(&declined.transaction_id),
            StatusOutcome::Failed(DeclineReason::Declined)
        );
        assert_eq!(sandbox.ledger().len(), 2);
    }

    #[test]
    fn a_forgotten_booking_moves_everything_back() {
        let connector = SandboxConnector::new();
        let inline = connector.inline().unwrap();
        let sandbox = connector.state();
        let prepaid = number("001");
        let kept = charge(prepaid.clone(), "2.00");
        let lost = charge(prepaid.clone(), "3.00");
        assert!(is_success(&inline.charge_now(&kept)));
        assert!(is_success(&inline.charge_now(&lost)));
        let refund_lost = refund(&kept, "1.00");
        assert!(is_success(&inline.charge_now(&refund_lost)));
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(600))
        );

        inline.forget(&lost.transaction_id);
        inline.forget(&refund_lost.transaction_id);
        inline.forget(&TransactionId::generate());
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(800))
        );
        assert_eq!(
            sandbox.charge_status(&lost.transaction_id),
            StatusOutcome::NotFound
        );
        let ledger = sandbox.ledger();
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].transaction_id, kept.transaction_id);
        assert!(matches!(
            sandbox.charge_status(&kept.transaction_id),
            StatusOutcome::Success { .. }
        ));
        // The whole of the kept charge can still be refunded: the forgotten refund is gone.
        assert!(is_success(&inline.charge_now(&refund(&kept, "2.00"))));
        // A forgotten id is new to the sandbox again.
        assert!(is_success(&inline.charge_now(&lost)));
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(700))
        );
    }

    #[test]
    fn prepaid_balance_is_drawn_down_and_refused_beyond() {
        let sandbox = SandboxState::new();
        let prepaid = number("001");
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(PREPAID_OPENING_BALANCE)
        );
        assert_eq!(sandbox.prepaid_balance(&number("000")), None);
        assert_eq!(
            sandbox.charge(&charge(prepaid.clone(), "10.01")).outcome,
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
        );
        assert!(is_success(
            &sandbox.charge(&charge(prepaid.clone(), "6.00")).outcome
        ));
        // The email alias names the same account and balance.
        assert!(is_success(
            &sandbox.charge(&charge(alias("001"), "3.50")).outcome
        ));
        assert_eq!(sandbox.prepaid_balance(&prepaid), Some(MinorUnits::new(50)));
        assert_eq!(
            sandbox.charge(&charge(prepaid.clone(), "0.51")).outcome,
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
        );
        assert!(is_success(
            &sandbox.charge(&charge(prepaid.clone(), "0.50")).outcome
        ));
        assert_eq!(sandbox.prepaid_balance(&prepaid), Some(MinorUnits::ZERO));
    }

    #[test]
    fn refunds_never_exceed_the_charge_and_credit_prepaid_balances() {
        let sandbox = SandboxState::new();
        let prepaid = number("001");
        let original = charge(prepaid.clone(), "4.00");
        assert!(is_success(&sandbox.charge(&original).outcome));
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(600))
        );

        let first = refund(&original, "1.50");
        assert!(is_success(&sandbox.charge(&first).outcome));
        // A repeat of the refund credits nothing more.
        assert!(is_success(&sandbox.charge(&first).outcome));
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(750))
        );

        let too_much = refund(&original, "2.51");
        assert_eq!(
            sandbox.charge(&too_much).outcome,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        assert!(is_success(
            &sandbox.charge(&refund(&original, "2.50")).outcome
        ));
        assert_eq!(
            sandbox.prepaid_balance(&prepaid),
            Some(PREPAID_OPENING_BALANCE)
        );
        assert_eq!(
            sandbox.charge(&refund(&original, "0.01")).outcome,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
    }

    #[test]
    fn refunds_need_a_successful_charge_of_the_same_account() {
        let sandbox = SandboxState::new();
        let declined_charge = charge(number("006"), "1.00");
        sandbox.charge(&declined_charge);
        let postpaid = charge(number("000"), "5.00");
        sandbox.charge(&postpaid);
        let declined = ChargeOutcome::Declined(DeclineReason::Declined);

        // Unknown original.
        let stranger = refund(&charge(number("000"), "1.00"), "1.00");
        assert_eq!(sandbox.charge(&stranger).outcome, declined);
        // Refund of a declined charge.
        assert_eq!(
            sandbox.charge(&refund(&declined_charge, "1.00")).outcome,
            declined
        );
        // Refund to another account.
        let mut elsewhere = refund(&postpaid, "1.00");
        elsewhere.customer = number("009");
        assert_eq!(sandbox.charge(&elsewhere).outcome, declined);
        // Refund of a refund.
        let ok = refund(&postpaid, "1.00");
        assert!(is_success(&sandbox.charge(&ok).outcome));
        assert_eq!(sandbox.charge(&refund(&ok, "0.50")).outcome, declined);
        // Through the email alias of the same number it works.
        let mut via_alias = refund(&postpaid, "4.00");
        via_alias.customer = alias("000");
        assert!(is_success(&sandbox.charge(&via_alias).outcome));

        let refunds: Vec<_> = sandbox
            .ledger()
            .into_iter()
            .filter(|e| matches!(e.kind, ChargeKind::Refund { .. }))
            .map(|e| e.status)
            .collect();
        assert_eq!(
            refunds
                .iter()
                .filter(|s| **s == LedgerStatus::Success)
                .count(),
            2
        );
        assert_eq!(refunds.len(), 6);
    }

    fn message(to: Customer, from: &str, text: &str) -> Notification {
        Notification {
            id: NotificationId::generate(),
            to,
            text: text.to_owned(),
            partner: partner(from),
        }
    }

    #[test]
    fn an_inbox_keeps_the_newest_two_hundred_messages_of_a_recipient() {
        let sandbox = SandboxState::new();
        for i in 0..450 {
            sandbox.notify(&message(number("000"), "NFLX", &i.to_string()));
        }
        let texts: Vec<String> = sandbox
            .inbox(&number("000"), &partner("NFLX"))
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts.len(), 200);
        assert_eq!((texts[0].as_str(), texts[199].as_str()), ("449", "250"));
    }

    #[test]
    fn inbox_is_per_partner_and_recipient_newest_first_and_idempotent() {
        let sandbox = SandboxState::new();
        let first = message(number("000"), "NFLX", "one");
        assert_eq!(sandbox.notify(&first), NotifyOutcome::Delivered);
        assert_eq!(sandbox.notify(&first), NotifyOutcome::Delivered);
        sandbox.notify(&message(number("000"), "NFLX", "two"));
        sandbox.notify(&message(number("000"), "SPOT", "other partner"));
        sandbox.notify(&message(alias("000"), "NFLX", "to the alias"));

        let texts = |to: &Customer, from: &str| -> Vec<String> {
            sandbox
                .inbox(to, &partner(from))
                .into_iter()
                .map(|m| m.text)
                .collect()
        };
        assert_eq!(texts(&number("000"), "NFLX"), ["two", "one"]);
        assert_eq!(texts(&number("000"), "SPOT"), ["other partner"]);
        assert_eq!(texts(&alias("000"), "NFLX"), ["to the alias"]);
        assert!(texts(&alias("000"), "SPOT").is_empty());
        assert!(texts(&number("009"), "NFLX").is_empty());
        let inbox = sandbox.inbox(&alias("000"), &partner("NFLX"));
        assert_eq!(inbox[0].to, "447700900000@sandbox.dcbhub.test");
        assert_eq!(
            sandbox.inbox(&number("000"), &partner("NFLX"))[0].to,
            "+447700900000"
        );
        assert_eq!(sandbox.inbox_all_partners(&number("000")).len(), 3);
    }

    #[test]
    fn messages_to_unknown_recipients_fail_for_good() {
        let sandbox = SandboxState::new();
        let outcome = sandbox.notify(&message(number("002"), "NFLX", "hello"));
        assert_eq!(
            outcome,
            NotifyOutcome::Permanent("account-not-found".into())
        );
        let outside = Customer::Email(Email::parse("ann@example.com").unwrap());
        assert!(matches!(
            sandbox.notify(&message(outside, "NFLX", "hello")),
            NotifyOutcome::Permanent(_)
        ));
        assert!(sandbox.inbox_all_partners(&number("002")).is_empty());
    }

    #[test]
    fn the_oldest_transactions_are_forgotten_beyond_the_memory() {
        let sandbox = SandboxState::remembering(3);
        let first = charge(number("000"), "1.00");
        assert!(is_success(&sandbox.charge(&first).outcome));
        let refunded = charge(number("009"), "2.00");
        assert!(is_success(&sandbox.charge(&refunded).outcome));
        assert!(is_success(
            &sandbox.charge(&refund(&refunded, "2.00")).outcome
        ));
        assert!(is_success(
            &sandbox.charge(&charge(number("000"), "3.00")).outcome
        ));
        let kept: Vec<_> = sandbox.ledger().into_iter().map(|e| e.money).collect();
        assert_eq!(kept, [gbp("2.00"), gbp("2.00"), gbp("3.00")]);
        assert_eq!(
            sandbox.charge_status(&first.transaction_id),
            StatusOutcome::NotFound
        );
        // Still remembered, and wholly refunded: a further refund is declined (and booked,
        // which pushes `refunded` itself out).
        let declined = ChargeOutcome::Declined(DeclineReason::Declined);
        assert_eq!(sandbox.charge(&refund(&refunded, "0.01")).outcome, declined);
        assert_eq!(
            sandbox.charge_status(&refunded.transaction_id),
            StatusOutcome::NotFound
        );
        assert_eq!(sandbox.charge(&refund(&first, "1.00")).outcome, declined);
        assert_eq!(sandbox.ledger().len(), 3);
        // A forgotten id is new again: charged a second time.
        assert!(is_success(&sandbox.charge(&first).outcome));
    }

    #[test]
    fn the_oldest_delivered_ids_are_forgotten_beyond_the_memory() {
        let sandbox = SandboxState::remembering(2);
        let first = message(number("000"), "NFLX", "one");
        for n in [
            &first,
            &message(number("000"), "NFLX", "two"),
            &message(number("000"), "NFLX", "three"),
        ] {
            assert_eq!(sandbox.notify(n), NotifyOutcome::Delivered);
        }
        let recent = message(number("000"), "NFLX", "four");
        sandbox.notify(&recent);
        sandbox.notify(&recent);
        assert_eq!(sandbox.inbox_all_partners(&number("000")).len(), 4);
        // Forgotten: delivered again as a new message.
        sandbox.notify(&first);
        let texts: Vec<_> = sandbox
            .inbox_all_partners(&number("000"))
            .into_iter()
            .map(|(_, m)| m.text)
            .collect();
        assert_eq!(texts, ["one", "four", "three", "two", "one"]);
    }

    #[test]
    fn state_is_shared_between_clones() {
        let connector = SandboxConnector::new();
        let other = SandboxConnector::with_state(connector.state().clone());
        other.state().charge(&charge(number("000"), "1.00"));
        assert_eq!(connector.ledger().len(), 1);
        assert_eq!(connector.kind(), "sandbox");
    }
}
