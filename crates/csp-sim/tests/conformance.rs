//! One set of expectations for the sandbox CSP of API.md §9, run twice: against the
//! in-process `sandbox` connector, and against the `http` connector talking to a real
//! csp-sim on 127.0.0.1:0. Both must behave the same for every row of the table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use dcbhub_connectors::{
    AccountOutcome, AccountType, CallContext, ChargeKind, ChargeOutcome, ChargeRequest,
    CspConnector, DeclineReason, HttpConnector, HttpConnectorConfig, LedgerStatus, Notification,
    NotifyOutcome, SandboxConnector, SandboxState, StatusOutcome,
};
use dcbhub_csp_sim::{SimConfig, SimState, serve_state};
use dcbhub_domain::{
    Currency, Customer, Description, Email, MinorUnits, Money, Msisdn, NotificationId, PartnerCode,
    TransactionId,
};
use tokio::net::TcpListener;

const API_KEY: &str = "sim-key";
/// The http connector's budget, and the simulator's late answer beyond it.
const TIMEOUT_MS: u64 = 300;
const LATE_ANSWER_MS: u64 = 700;

struct Harness {
    connector: Arc<dyn CspConnector>,
    /// The books behind the connector, in process or inside the csp-sim server.
    sandbox: SandboxState,
}

impl Harness {
    fn in_process() -> Self {
        let sandbox = SandboxState::new();
        Self {
            connector: Arc::new(SandboxConnector::with_state(sandbox.clone())),
            sandbox,
        }
    }

    async fn over_http() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sandbox = SandboxState::new();
        let mut config = SimConfig::new(API_KEY);
        config.late_answer_ms = LATE_ANSWER_MS;
        let state = SimState::with_sandbox(config, sandbox.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve_state(listener, state, std::future::pending()));
        let mut config = HttpConnectorConfig::new(url, API_KEY);
        config.timeout_ms = TIMEOUT_MS;
        Self {
            connector: Arc::new(HttpConnector::new("csp-sim", config).unwrap()),
            sandbox,
        }
    }

    async fn validate(&self, customer: &Customer) -> AccountOutcome {
        self.connector
            .validate_account(customer, &partner("NFLX"), &ctx())
            .await
            .unwrap()
    }

    async fn charge(&self, req: &ChargeRequest) -> ChargeOutcome {
        self.connector.charge(req, &ctx()).await
    }

    async fn status(&self, req: &ChargeRequest) -> StatusOutcome {
        self.connector
            .charge_status(&req.transaction_id, &ctx())
            .await
    }

    async fn notify(&self, n: &Notification) -> NotifyOutcome {
        self.connector.notify(n, &ctx()).await
    }
}

fn ctx() -> CallContext {
    CallContext::with_request_id("conformance")
}

fn number(suffix: &str) -> Customer {
    Customer::Msisdn(Msisdn::parse(&format!("+447700900{suffix}")).unwrap())
}

fn alias(suffix: &str) -> Customer {
    Customer::Email(Email::parse(&format!("447700900{suffix}@sandbox.dcbhub.test")).unwrap())
}

fn partner(code: &str) -> PartnerCode {
    PartnerCode::parse(code).unwrap()
}

fn gbp(amount: &str) -> Money {
    Money::parse(amount, Currency::parse("GBP").unwrap()).unwrap()
}

fn charge(customer: Customer, amount: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId::generate(),
        customer,
        money: gbp(amount),
        description: Description::parse("Premium plan, December").unwrap(),
        charge_code: Some("PREM-M".into()),
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

fn message(to: Customer, from: &str, text: &str) -> Notification {
    Notification {
        id: NotificationId::generate(),
        to,
        text: text.into(),
        partner: partner(from),
    }
}

fn active(suffix: &str, account_type: AccountType) -> AccountOutcome {
    AccountOutcome::Active {
        account_type,
        currency: Currency::parse("GBP").unwrap(),
        account_ref: format!("447700900{suffix}"),
    }
}

fn success_reference(outcome: &ChargeOutcome) -> String {
    match outcome {
        ChargeOutcome::Success { csp_reference } => csp_reference.clone(),
        other => panic!("expected success, got {other:?}"),
    }
}

/// The expectations, written once.
mod expectations {
    use super::*;

    /// A plain postpaid account: charged, status, idempotent repeat, message delivered.
    async fn postpaid_row(h: &Harness, suffix: &str) {
        assert_eq!(
            h.validate(&number(suffix)).await,
            active(suffix, AccountType::Postpaid)
        );
        assert_eq!(
            h.validate(&alias(suffix)).await,
            active(suffix, AccountType::Postpaid)
        );
        let req = charge(number(suffix), "4.99");
        let first = h.charge(&req).await;
        let reference = success_reference(&first);
        assert_eq!(
            h.status(&req).await,
            StatusOutcome::Success {
                csp_reference: reference
            }
        );
        assert_eq!(
            h.charge(&req).await,
            first,
            "a repeat gets the first answer"
        );
        let ledger = h.sandbox.ledger();
        assert_eq!(ledger.len(), 1, "a repeat charges nothing more");
        assert_eq!(ledger[0].money, gbp("4.99"));
        assert_eq!(ledger[0].account, format!("447700900{suffix}"));
        assert_eq!(
            h.notify(&message(number(suffix), "NFLX", "Thanks")).await,
            NotifyOutcome::Delivered
        );
        assert_eq!(h.sandbox.inbox(&number(suffix), &partner("NFLX")).len(), 1);
    }

    pub async fn row_000_active_postpaid(h: &Harness) {
        postpaid_row(h, "000").await;
    }

    pub async fn any_other_number_in_the_range_is_active_postpaid(h: &Harness) {
        postpaid_row(h, "123").await;
    }

    pub async fn the_email_alias_charges_the_same_account(h: &Harness) {
        let req = charge(alias("042"), "1.00");
        success_reference(&h.charge(&req).await);
        assert_eq!(h.sandbox.ledger()[0].account, "447700900042");
    }

    pub async fn row_001_prepaid_with_a_balance_of_10(h: &Harness) {
        let prepaid = number("001");
        assert_eq!(
            h.validate(&prepaid).await,
            active("001", AccountType::Prepaid)
        );
        assert_eq!(
            h.validate(&alias("001")).await,
            active("001", AccountType::Prepaid)
        );
        let too_much = charge(prepaid.clone(), "10.01");
        assert_eq!(
            h.charge(&too_much).await,
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
        );
        assert_eq!(
            h.status(&too_much).await,
            StatusOutcome::Failed(DeclineReason::InsufficientFunds)
        );
        let six = charge(prepaid.clone(), "6.00");
        success_reference(&h.charge(&six).await);
        assert_eq!(
            h.charge(&charge(prepaid.clone(), "4.01")).await,
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
        );
        success_reference(&h.charge(&charge(alias("001"), "4.00")).await);
        assert_eq!(h.sandbox.prepaid_balance(&prepaid), Some(MinorUnits::ZERO));
        // A refund credits the balance back, and never more than was charged.
        success_reference(&h.charge(&refund(&six, "2.50")).await);
        assert_eq!(
            h.sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(250))
        );
        assert_eq!(
            h.charge(&refund(&six, "3.51")).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        success_reference(&h.charge(&refund(&six, "3.50")).await);
        assert_eq!(
            h.sandbox.prepaid_balance(&prepaid),
            Some(MinorUnits::new(600))
        );
        success_reference(&h.charge(&charge(prepaid.clone(), "6.00")).await);
    }

    async fn refused_row(
        h: &Harness,
        suffix: &str,
        account: AccountOutcome,
        reason: DeclineReason,
    ) {
        assert_eq!(h.validate(&number(suffix)).await, account);
        assert_eq!(h.validate(&alias(suffix)).await, account);
        let req = charge(number(suffix), "1.00");
        assert_eq!(h.charge(&req).await, ChargeOutcome::Declined(reason));
        assert_eq!(h.status(&req).await, StatusOutcome::Failed(reason));
        assert_eq!(h.sandbox.ledger()[0].status, LedgerStatus::Failed(reason));
    }

    pub async fn row_002_not_found(h: &Harness) {
        refused_row(
            h,
            "002",
            AccountOutcome::NotFound,
            DeclineReason::AccountNotFound,
        )
        .await;
        assert_eq!(
            h.notify(&message(number("002"), "NFLX", "hello")).await,
            NotifyOutcome::Permanent("account-not-found".into())
        );
    }

    pub async fn row_003_suspended_for_non_payment(h: &Harness) {
        refused_row(
            h,
            "003",
            AccountOutcome::SuspendedNonPayment,
            DeclineReason::SuspendedNonPayment,
        )
        .await;
    }

    pub async fn row_004_suspended_for_another_reason(h: &Harness) {
        refused_row(
            h,
            "004",
            AccountOutcome::Suspended,
            DeclineReason::Suspended,
        )
        .await;
    }

    pub async fn row_005_carrier_billing_barred(h: &Harness) {
        refused_row(h, "005", AccountOutcome::Barred, DeclineReason::Barred).await;
    }

    pub async fn row_006_declines_every_charge(h: &Harness) {
        assert_eq!(
            h.validate(&number("006")).await,
            active("006", AccountType::Postpaid)
        );
        let req = charge(number("006"), "0.99");
        assert_eq!(
            h.charge(&req).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        assert_eq!(
            h.charge(&req).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        assert_eq!(
            h.status(&req).await,
            StatusOutcome::Failed(DeclineReason::Declined)
        );
        // Nothing to refund either.
        assert_eq!(
            h.charge(&refund(&req, "0.99")).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
    }

    pub async fn row_007_answer_arrives_late_but_the_charge_is_made(h: &Harness) {
        assert_eq!(
            h.validate(&number("007")).await,
            active("007", AccountType::Postpaid)
        );
        let req = charge(number("007"), "2.99");
        assert_eq!(h.charge(&req).await, ChargeOutcome::Unknown);
        assert!(matches!(
            h.status(&req).await,
            StatusOutcome::Success { .. }
        ));
        let ledger = h.sandbox.ledger();
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].status, LedgerStatus::Success);
    }

    pub async fn row_008_refuses_charges_before_charging(h: &Harness) {
        assert_eq!(
            h.validate(&number("008")).await,
            active("008", AccountType::Postpaid)
        );
        let req = charge(number("008"), "2.99");
        assert_eq!(
            h.charge(&req).await,
            ChargeOutcome::Unavailable {
                retry_after_secs: 5
            }
        );
        assert_eq!(
            h.charge(&req).await,
            ChargeOutcome::Unavailable {
                retry_after_secs: 5
            }
        );
        assert_eq!(h.status(&req).await, StatusOutcome::NotFound);
        assert!(h.sandbox.ledger().is_empty(), "nothing was charged");
    }

    pub async fn numbers_outside_the_range_and_other_emails_are_not_found(h: &Harness) {
        for outside in ["+447700901000", "+447700899999", "+14155550123"] {
            let customer = Customer::Msisdn(Msisdn::parse(outside).unwrap());
            assert_eq!(
                h.validate(&customer).await,
                AccountOutcome::NotFound,
                "{outside}"
            );
        }
        for email in [
            "ann@example.com",
            "447700900000@example.com",
            "447700901000@sandbox.dcbhub.test",
        ] {
            let customer = Customer::Email(Email::parse(email).unwrap());
            assert_eq!(
                h.validate(&customer).await,
                AccountOutcome::NotFound,
                "{email}"
            );
        }
        let stranger = Customer::Msisdn(Msisdn::parse("+14155550123").unwrap());
        assert_eq!(
            h.charge(&charge(stranger, "1.00")).await,
            ChargeOutcome::Declined(DeclineReason::AccountNotFound)
        );
    }

    pub async fn unknown_transactions_have_no_status(h: &Harness) {
        assert_eq!(
            h.status(&charge(number("000"), "1.00")).await,
            StatusOutcome::NotFound
        );
    }

    pub async fn refunds_need_a_known_successful_charge(h: &Harness) {
        let never_sent = charge(number("000"), "1.00");
        assert_eq!(
            h.charge(&refund(&never_sent, "1.00")).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        let original = charge(number("000"), "5.00");
        success_reference(&h.charge(&original).await);
        let part = refund(&original, "2.00");
        success_reference(&h.charge(&part).await);
        // A repeated refund is answered the same and credits nothing more.
        success_reference(&h.charge(&part).await);
        success_reference(&h.charge(&refund(&original, "3.00")).await);
        assert_eq!(
            h.charge(&refund(&original, "0.01")).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        let mut elsewhere = refund(&original, "1.00");
        elsewhere.customer = number("009");
        assert_eq!(
            h.charge(&elsewhere).await,
            ChargeOutcome::Declined(DeclineReason::Declined)
        );
        let successful_refunds = h
            .sandbox
            .ledger()
            .iter()
            .filter(|e| {
                matches!(e.kind, ChargeKind::Refund { .. }) && e.status == LedgerStatus::Success
            })
            .count();
        assert_eq!(successful_refunds, 2);
    }

    pub async fn inbox_is_per_partner_and_idempotent(h: &Harness) {
        let first = message(number("000"), "NFLX", "Your PIN is 123456");
        assert_eq!(h.notify(&first).await, NotifyOutcome::Delivered);
        assert_eq!(h.notify(&first).await, NotifyOutcome::Delivered);
        h.notify(&message(number("000"), "SPOT", "Welcome to Spot"))
            .await;
        h.notify(&message(alias("000"), "NFLX", "Receipt: 4.99 GBP"))
            .await;
        h.notify(&message(number("000"), "NFLX", "Second")).await;
        let texts = |to: &Customer, from: &str| -> Vec<String> {
            h.sandbox
                .inbox(to, &partner(from))
                .into_iter()
                .map(|m| m.text)
                .collect()
        };
        assert_eq!(
            texts(&number("000"), "NFLX"),
            ["Second", "Your PIN is 123456"]
        );
        assert_eq!(texts(&number("000"), "SPOT"), ["Welcome to Spot"]);
        assert_eq!(texts(&alias("000"), "NFLX"), ["Receipt: 4.99 GBP"]);
        assert!(texts(&alias("000"), "SPOT").is_empty());
        assert_eq!(
            h.sandbox.inbox(&alias("000"), &partner("NFLX"))[0].to,
            "447700900000@sandbox.dcbhub.test"
        );
    }
}

macro_rules! run_against_both_connectors {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    expectations::$name(&Harness::in_process()).await;
                }
            )*
        }
        mod over_http {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    expectations::$name(&Harness::over_http().await).await;
                }
            )*
        }
    };
}

run_against_both_connectors!(
    row_000_active_postpaid,
    row_001_prepaid_with_a_balance_of_10,
    row_002_not_found,
    row_003_suspended_for_non_payment,
    row_004_suspended_for_another_reason,
    row_005_carrier_billing_barred,
    row_006_declines_every_charge,
    row_007_answer_arrives_late_but_the_charge_is_made,
    row_008_refuses_charges_before_charging,
    any_other_number_in_the_range_is_active_postpaid,
    the_email_alias_charges_the_same_account,
    numbers_outside_the_range_and_other_emails_are_not_found,
    unknown_transactions_have_no_status,
    refunds_need_a_known_successful_charge,
    inbox_is_per_partner_and_idempotent,
);

/// Over HTTP, 007's charge is cut off by the connector's budget, not by the sandbox.
#[tokio::test]
async fn the_late_answer_is_cut_off_by_the_connector_timeout() {
    let h = Harness::over_http().await;
    let started = std::time::Instant::now();
    assert_eq!(
        h.charge(&charge(number("007"), "1.00")).await,
        ChargeOutcome::Unknown
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(TIMEOUT_MS - 20),
        "{elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(LATE_ANSWER_MS),
        "{elapsed:?}"
    );
}
