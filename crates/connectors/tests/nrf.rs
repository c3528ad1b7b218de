#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The `nrf-rating` connector against the test double of SigScale OCS in `support/ocs.rs`
//! (an axum server on 127.0.0.1:0, written from `/work/shared/reference/nrf-rating-ocs.md`).

#[path = "support/ocs.rs"]
mod ocs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcbhub_connectors::breaker::BreakerState;
use dcbhub_connectors::{
    AccountOutcome, AccountType, CallContext, ChargeKind, ChargeOutcome, ChargeRequest,
    ConnectorError, CspConnector, DeclineReason, FinishOutcome, Notification, NotifyOutcome,
    NrfBalance, NrfRatingConfig, NrfRatingConnector, ReserveOutcome, StatusOutcome,
    TwoPhaseCharging,
};
use dcbhub_domain::{
    Currency, Customer, Description, Email, MinorUnits, Money, Msisdn, NotificationId, PartnerCode,
    TransactionId,
};
use ocs::{
    BASIC_ADMIN, ERRONEOUS, Fault, Ocs, Route, SERVICE_CONTEXT, refusing_url, spawn_ocs,
    spawn_ocs_priced,
};
use serde_json::json;

// ------------------------------------------------------------------ the connector side

const TIMEOUT_MS: u64 = 300;
/// What a call may take beyond its budget: scheduling, connection teardown.
const MARGIN: Duration = Duration::from_millis(250);
/// A subscriber of the tests, provisioned per test.
const ANN: &str = "491701234567";
const BOB: &str = "491709876543";

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn config(url: &str) -> NrfRatingConfig {
    let mut config = NrfRatingConfig::new(url, "admin", "admin", eur());
    config.timeout_ms = TIMEOUT_MS;
    config.backoff_base_ms = 10;
    config.backoff_max_ms = 40;
    config.breaker_failure_threshold = 1_000;
    config
}

fn connector(url: &str) -> NrfRatingConnector {
    NrfRatingConnector::new("ocs-de", config(url)).unwrap()
}

fn msisdn(digits: &str) -> Msisdn {
    Msisdn::parse(&format!("+{digits}")).unwrap()
}

fn customer(digits: &str) -> Customer {
    Customer::Msisdn(msisdn(digits))
}

fn partner() -> PartnerCode {
    PartnerCode::parse("NFLX").unwrap()
}

fn ctx() -> CallContext {
    CallContext::with_request_id("req-1")
}

fn charge(digits: &str, amount: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId::generate(),
        customer: customer(digits),
        money: Money::parse(amount, eur()).unwrap(),
        description: Description::parse("Premium plan").unwrap(),
        charge_code: None,
        partner: partner(),
        kind: ChargeKind::Charge,
    }
}

fn refund_of(original: &ChargeRequest, amount: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId::generate(),
        money: Money::parse(amount, eur()).unwrap(),
        kind: ChargeKind::Refund {
            original: original.transaction_id.clone(),
        },
        ..original.clone()
    }
}

/// Runs `call`, checks it ended within the budget plus the margin, returns its outcome.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let outcome = call.await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "took {elapsed:?}"
    );
    outcome
}

fn reference_of(outcome: ReserveOutcome) -> String {
    match outcome {
        ReserveOutcome::Reserved { reference } => reference,
        other => panic!("not reserved: {other:?}"),
    }
}

fn is_unavailable(outcome: &Result<AccountOutcome, ConnectorError>) -> bool {
    matches!(outcome, Err(ConnectorError::Unavailable { retry_after_secs }) if *retry_after_secs >= 1)
}

// ------------------------------------------------------------------ the double itself

#[tokio::test]
async fn the_double_wants_basic_auth_except_on_health() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    let client = reqwest::Client::new();
    let open = client
        .get(format!("{url}/serviceInventoryManagement/v2/service/{ANN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401);
    assert_eq!(open.headers()["content-type"], "text/html");
    let health = client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["content-type"], "application/health+json");
    let asked = client
        .get(format!(
            "{url}/serviceInventoryManagement/v2/service/490000"
        ))
        .header("authorization", BASIC_ADMIN)
        .header("accept", "application/problem+json")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 404);
    assert_eq!(asked.headers()["content-type"], "application/problem+json");
}

// ------------------------------------------------------------------ accounts

#[tokio::test]
async fn an_active_subscriber_is_a_prepaid_account_in_the_configured_currency() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    ocs.subscriber(BOB, 0);
    let c = connector(&url);
    let outcome = c.validate_account(&customer(ANN), &partner(), &ctx()).await;
    assert_eq!(
        outcome,
        Ok(AccountOutcome::Active {
            account_type: AccountType::Prepaid,
            currency: eur(),
            account_ref: product,
        })
    );
    let paths: Vec<String> = ocs.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/serviceInventoryManagement/v2/service/{ANN}"),
            format!("/balanceManagement/v1/service/{ANN}/accumulatedBalance"),
        ]
    );
    // A zero balance (`[]`) is still an account in good standing.
    assert!(matches!(
        c.validate_account(&customer(BOB), &partner(), &ctx()).await,
        Ok(AccountOutcome::Active { .. })
    ));
    assert_eq!(
        c.balance(&msisdn(ANN), &ctx()).await,
        Ok(NrfBalance::Positive(MinorUnits::new(100)))
    );
    assert_eq!(
        c.balance(&msisdn(BOB), &ctx()).await,
        Ok(NrfBalance::ZeroOrLess)
    );
    assert_eq!(
        c.balance(&msisdn("491700000000"), &ctx()).await,
        Ok(NrfBalance::NotFound)
    );
}

#[tokio::test]
async fn unknown_gone_and_disabled_subscribers() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    ocs.subscriber(BOB, 100);
    let c = connector(&url);
    let validate = |digits: &'static str| {
        let c = &c;
        async move {
            c.validate_account(&customer(digits), &partner(), &ctx())
                .await
        }
    };
    assert_eq!(validate("491700000000").await, Ok(AccountOutcome::NotFound));
    ocs.set_enabled(ANN, false);
    assert_eq!(validate(ANN).await, Ok(AccountOutcome::Suspended));
    ocs.set_state(BOB, "terminated");
    assert_eq!(validate(BOB).await, Ok(AccountOutcome::NotFound));
    ocs.set_state(BOB, "inactive");
    assert_eq!(validate(BOB).await, Ok(AccountOutcome::NotFound));
    ocs.set_state(BOB, "reserved");
    assert!(matches!(
        validate(BOB).await,
        Ok(AccountOutcome::Active { .. })
    ));

    // The OCS knows MSISDNs only.
    let before = ocs.requests().len();
    let email = Customer::Email(Email::parse("ann@example.com").unwrap());
    assert_eq!(
        c.validate_account(&email, &partner(), &ctx()).await,
        Ok(AccountOutcome::NotFound)
    );
    assert_eq!(ocs.requests().len(), before);

    // With problem+json errors the answers are the same.
    ocs.set_problem_json(true);
    assert_eq!(validate("491700000000").await, Ok(AccountOutcome::NotFound));
}

#[tokio::test]
async fn malformed_lookups_are_unavailable() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let (ann, nflx, req_ctx) = (customer(ANN), partner(), ctx());
    let validate = || c.validate_account(&ann, &nflx, &req_ctx);

    ocs.arm(
        Route::Service,
        Fault::Answer(200, "application/json", "{garbage".into()),
        1,
    );
    // An unreadable 200 is asked again within the budget, and then answers properly.
    assert!(matches!(
        timed(validate()).await,
        Ok(AccountOutcome::Active { .. })
    ));

    ocs.arm(
        Route::Service,
        Fault::Answer(500, "application/json", "{}".into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.disarm();

    let product_less = r#"{"id":"491701234567","state":"active","isServiceEnabled":true}"#;
    ocs.arm(
        Route::Service,
        Fault::Answer(200, "application/json", product_less.into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.disarm();

    let invalid_state =
        r#"{"id":"491701234567","state":"suspended","product":"p","isServiceEnabled":true}"#;
    ocs.arm(
        Route::Service,
        Fault::Answer(200, "application/json", invalid_state.into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.disarm();

    ocs.arm(
        Route::Balance,
        Fault::Answer(200, "application/json", r#"{"totalBalance":{}}"#.into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.disarm();

    // A 404 that is not the OCS's (a wrong base path behind a proxy) is no verdict.
    ocs.arm(
        Route::Service,
        Fault::Answer(404, "text/html", "<html>gone</html>".into()),
        1,
    );
    assert!(is_unavailable(&timed(validate()).await));

    ocs.arm(Route::Service, Fault::Stall(Duration::from_secs(2)), 10);
    assert!(is_unavailable(&timed(validate()).await));
    ocs.disarm();

    let mut wrong = config(&url);
    wrong.password = dcbhub_domain::Secret::new("guess".into());
    let wrong = NrfRatingConnector::new("ocs-de", wrong).unwrap();
    assert!(is_unavailable(
        &wrong
            .validate_account(&customer(ANN), &partner(), &ctx())
            .await
    ));

    let down = connector(&refusing_url().await);
    assert!(is_unavailable(
        &timed(down.validate_account(&customer(ANN), &partner(), &ctx())).await
    ));
}

// ------------------------------------------------------------------ charges

#[tokio::test]
async fn a_charge_within_the_balance_takes_exactly_the_amount() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let outcome = c.charge(&req, &ctx()).await;
    let ChargeOutcome::Success { csp_reference } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(ocs.hold_count(), 0);

    let requests = ocs.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/nrf-rating/v1/ratingdata");
    let reserve = &requests[0].body;
    assert_eq!(reserve["oneTimeEventType"], "PEC");
    assert_eq!(reserve["subscriptionId"], json!([format!("msisdn-{ANN}")]));
    assert_eq!(reserve["serviceContextId"], SERVICE_CONTEXT);
    assert_eq!(
        reserve["serviceRating"],
        json!([{"serviceId": 1, "ratingGroup": 1,
                "requestedUnit": {"serviceSpecificUnit": 40}, "requestSubType": "RESERVE"}])
    );
    assert_eq!(
        requests[1].path,
        format!("/nrf-rating/v1/ratingdata/{csp_reference}/release")
    );
    assert_eq!(requests[1].body["invocationSequenceNumber"], 2);
    assert_eq!(
        requests[1].body["serviceRating"],
        json!([{"serviceId": 1, "ratingGroup": 1,
                "consumedUnit": {"serviceSpecificUnit": 40}, "requestSubType": "DEBIT"}])
    );
    assert!(
        requests.iter().all(|r| r.body["oneTimeEventType"] != "IEC"),
        "the one-shot form is never used"
    );

    // The whole remaining balance can be charged too.
    assert!(matches!(
        c.charge(&charge(ANN, "0.60"), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 0);
}

#[tokio::test]
async fn a_charge_above_the_balance_takes_nothing() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 30);
    let c = connector(&url);
    assert_eq!(
        c.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
    );
    assert_eq!(ocs.balance(&product), 30);
    assert_eq!(ocs.hold_count(), 0);
    assert_eq!(ocs.requests_to(Route::Finish), 0);
    // The same with problem+json error bodies.
    ocs.set_problem_json(true);
    assert_eq!(
        c.reserve(&charge(ANN, "0.31"), &ctx()).await,
        ReserveOutcome::Declined(DeclineReason::InsufficientFunds)
    );
    assert_eq!(ocs.balance(&product), 30);
    assert_eq!(ocs.hold_count(), 0);
}

#[tokio::test]
async fn refusals_of_the_reserve_are_typed_declines() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    let c = connector(&url);
    for problem_json in [false, true] {
        ocs.set_problem_json(problem_json);
        assert_eq!(
            c.charge(&charge("491700000000", "0.10"), &ctx()).await,
            ChargeOutcome::Declined(DeclineReason::AccountNotFound)
        );
        ocs.set_enabled(ANN, false);
        assert_eq!(
            c.charge(&charge(ANN, "0.10"), &ctx()).await,
            ChargeOutcome::Declined(DeclineReason::Suspended)
        );
        ocs.set_enabled(ANN, true);
    }
    // A service context the OCS does not rate: 400.
    let mut other = config(&url);
    other.service_context_id = "32251@3gpp.org".into();
    let other = NrfRatingConnector::new("ocs-de", other).unwrap();
    assert_eq!(
        other.charge(&charge(ANN, "0.10"), &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::Declined)
    );
    // Email customers and amounts that are not whole units never reach the OCS.
    let before = ocs.requests().len();
    let mut email = charge(ANN, "0.10");
    email.customer = Customer::Email(Email::parse("ann@example.com").unwrap());
    assert_eq!(
        c.charge(&email, &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::AccountNotFound)
    );
    assert_eq!(ocs.requests().len(), before);
    assert_eq!(ocs.hold_count(), 0);
}

#[tokio::test]
async fn units_follow_the_configured_unit_size() {
    // The tariff prices one unit at 5 cents.
    let (ocs, url) = spawn_ocs_priced(5).await;
    let product = ocs.subscriber(ANN, 100);
    let mut config = config(&url);
    config.minor_units_per_unit = 5;
    let c = NrfRatingConnector::new("ocs-de", config).unwrap();
    assert!(matches!(
        c.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(
        ocs.requests()[0].body["serviceRating"][0]["requestedUnit"],
        json!({"serviceSpecificUnit": 8})
    );
    let before = ocs.requests().len();
    assert_eq!(
        c.charge(&charge(ANN, "0.42"), &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::Declined)
    );
    assert_eq!(ocs.requests().len(), before);
    assert_eq!(ocs.balance(&product), 60);
}

#[tokio::test]
async fn concurrent_reserves_never_overspend() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = Arc::new(connector(&url));
    let calls = (0..20).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.charge(&charge(ANN, "0.15"), &ctx()).await })
    });
    let mut successes = 0;
    let mut declines = 0;
    for call in calls {
        match call.await.unwrap() {
            ChargeOutcome::Success { .. } => successes += 1,
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds) => declines += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((successes, declines), (6, 14));
    assert_eq!(ocs.balance(&product), 10);
    assert_eq!(ocs.hold_count(), 0);
}

// ------------------------------------------------------------------ crashes and the reconciler

#[tokio::test]
async fn a_crash_after_the_reserve_is_released_by_reference_once() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let req = charge(ANN, "0.40");
    let reference = {
        let c = connector(&url);
        let two_phase = c.two_phase().expect("the nrf connector is two-phase");
        reference_of(two_phase.reserve(&req, &ctx()).await)
        // The hub "crashes" here: the connector is gone, the persisted reference stays.
    };
    assert_eq!(ocs.held(&product), 40);
    assert_eq!(ocs.balance(&product), 100);

    let reconciler = connector(&url);
    assert_eq!(
        reconciler.release(&reference, &req, &ctx()).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.held(&product), 0);
    assert_eq!(ocs.balance(&product), 100);
    assert_eq!(
        reconciler.release(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    // Never both: a debit after the release finds nothing to take.
    assert_eq!(
        reconciler.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 100);
    let releases = ocs
        .requests()
        .iter()
        .filter(|r| r.body["serviceRating"][0]["requestSubType"] == "RELEASE")
        .count();
    assert_eq!(releases, 2);
}

#[tokio::test]
async fn a_crash_after_the_reserve_is_debited_by_reference_once() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let req = charge(ANN, "0.40");
    let reference = reference_of(connector(&url).reserve(&req, &ctx()).await);

    let reconciler = connector(&url);
    assert_eq!(
        reconciler.debit(&reference, &req, &ctx()).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(ocs.held(&product), 0);
    assert_eq!(
        reconciler.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(
        reconciler.release(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 60, "debited once, never released");
}

#[tokio::test]
async fn a_lost_debit_answer_is_settled_by_the_reference() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    // The OCS takes the money, and its answer comes too late.
    ocs.arm(
        Route::Finish,
        Fault::ActThenStall(Duration::from_secs(2)),
        1,
    );
    assert_eq!(
        timed(c.debit(&reference, &req, &ctx())).await,
        FinishOutcome::Unknown
    );
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 60, "debited once");

    // Through `charge`, the same loss is reported as unknown, never success.
    let req = charge(ANN, "0.10");
    ocs.arm(
        Route::Finish,
        Fault::ActThenStall(Duration::from_secs(2)),
        1,
    );
    assert_eq!(c.charge(&req, &ctx()).await, ChargeOutcome::Unknown);
    assert_eq!(ocs.balance(&product), 50);
}

#[tokio::test]
async fn a_debit_is_retried_within_its_budget_after_a_5xx() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    ocs.arm(
        Route::Finish,
        Fault::Answer(503, "text/html", String::new()),
        1,
    );
    assert_eq!(
        timed(c.debit(&reference, &req, &ctx())).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.requests_to(Route::Finish), 2);
    assert_eq!(ocs.balance(&product), 60);

    // A 5xx that persists leaves it unknown, and the reservation in place.
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    ocs.arm(
        Route::Finish,
        Fault::Answer(500, "application/json", "{}".into()),
        10,
    );
    assert_eq!(
        timed(c.debit(&reference, &req, &ctx())).await,
        FinishOutcome::Unknown
    );
    assert_eq!(ocs.held(&product), 40);
    ocs.disarm();
    assert_eq!(
        c.release(&reference, &req, &ctx()).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.balance(&product), 60);
}

#[tokio::test]
async fn only_the_unknown_reference_404_counts_as_finished() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    // A 404 from something else than the OCS's rating (a proxy, a wrong base path).
    ocs.arm(
        Route::Finish,
        Fault::Answer(404, "text/html", "<html>Not Found</html>".into()),
        1,
    );
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::Unavailable
    );
    // The subscriber vanished between reserve and debit: the OCS's 404 is about them.
    let mut stranger = req.clone();
    stranger.customer = customer("491700000000");
    assert_eq!(
        c.debit(&reference, &stranger, &ctx()).await,
        FinishOutcome::Unavailable
    );
    assert_eq!(ocs.held(&product), 40, "the reservation still stands");
    assert_eq!(c.debit(&reference, &req, &ctx()).await, FinishOutcome::Done);
    assert_eq!(ocs.balance(&product), 60);
}

#[tokio::test]
async fn a_refused_debit_is_released() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let bad_request = json!({"@type": "Error", "code": "", "reason": ERRONEOUS, "status": "400"});
    ocs.arm(
        Route::Finish,
        Fault::Answer(400, "application/json", bad_request.to_string()),
        1,
    );
    assert!(matches!(
        c.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(ocs.balance(&product), 100);
    assert_eq!(ocs.hold_count(), 0, "the reservation was released");
    let last = ocs.requests().pop().unwrap();
    assert_eq!(last.body["serviceRating"][0]["requestSubType"], "RELEASE");
}

#[tokio::test]
async fn a_garbled_debit_answer_is_unknown_then_settled() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    ocs.arm(
        Route::Finish,
        Fault::ActThenAnswer(200, "{garbage".into()),
        1,
    );
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::Unknown
    );
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 60);
}

// ------------------------------------------------------------------ unexpected reserve answers

/// A fresh OCS with 1.00 for ANN, a fault armed on its reserve route, one charge.
async fn charge_against(fault: Fault) -> (Arc<Ocs>, String, ChargeOutcome) {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    ocs.arm(Route::Reserve, fault, 1);
    let outcome = timed(connector(&url).charge(&charge(ANN, "0.40"), &ctx())).await;
    assert!(
        !matches!(outcome, ChargeOutcome::Success { .. }),
        "{outcome:?}"
    );
    assert_eq!(ocs.balance(&product), 100, "nothing is ever debited");
    assert_eq!(
        ocs.requests_to(Route::Reserve),
        1,
        "a reserve is never repeated"
    );
    (ocs, product, outcome)
}

#[tokio::test]
async fn unexpected_reserve_answers_are_never_success() {
    // A 500, with or without the reservation made: maybe held.
    let (ocs, product, outcome) =
        charge_against(Fault::Answer(500, "application/json", "{}".into())).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(ocs.held(&product), 0);
    let (ocs, product, outcome) = charge_against(Fault::ActThenAnswer(500, "{}".into())).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(
        ocs.held(&product),
        40,
        "held under a reference we never got"
    );

    // A 201 without Location: held, and nothing to name it by.
    let (ocs, product, outcome) = charge_against(Fault::DropLocation).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(ocs.held(&product), 40);
    assert_eq!(ocs.requests_to(Route::Finish), 0);

    // A 201 with a Location but garbage, or an unknown resultCode: released at once.
    let unknown_code = json!({"invocationSequenceNumber": 1, "serviceRating": [{"serviceId": 1,
        "ratingGroup": 1, "grantedUnit": {"serviceSpecificUnit": 40}, "resultCode": "END_USER_SERVICE_DENIED"}]});
    let partial = json!({"serviceRating": [{"grantedUnit": {"serviceSpecificUnit": 30},
        "resultCode": "SUCCESS"}]});
    for body in [
        "{garbage".to_owned(),
        unknown_code.to_string(),
        partial.to_string(),
        String::new(),
    ] {
        let (ocs, product, outcome) = charge_against(Fault::ActThenAnswer(201, body)).await;
        assert!(
            matches!(outcome, ChargeOutcome::Unavailable { .. }),
            "{outcome:?}"
        );
        assert_eq!(ocs.held(&product), 0, "the stray reservation was released");
        assert_eq!(ocs.requests_to(Route::Finish), 1);
    }

    // Refusals that are not the documented ones: nothing reserved.
    for (status, content_type, body) in [
        (403, "text/html", "<html>Forbidden</html>"),
        (404, "text/html", "<html>Not here</html>"),
        (400, "text/html", ""),
        (302, "text/html", ""),
    ] {
        let (_, _, outcome) =
            charge_against(Fault::Answer(status, content_type, body.into())).await;
        assert!(
            matches!(outcome, ChargeOutcome::Unavailable { .. }),
            "{status}: {outcome:?}"
        );
    }

    // No answer in time: maybe held.
    let (ocs, product, outcome) = charge_against(Fault::ActThenStall(Duration::from_secs(2))).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(ocs.held(&product), 40);
    let (_, _, outcome) = charge_against(Fault::Stall(Duration::from_secs(2))).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
}

#[tokio::test]
async fn wrong_credentials_and_a_dead_ocs_are_unavailable() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let mut wrong = config(&url);
    wrong.password = dcbhub_domain::Secret::new("guess".into());
    let wrong = NrfRatingConnector::new("ocs-de", wrong).unwrap();
    assert!(matches!(
        wrong.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(ocs.held(&product), 0);

    let down = connector(&refusing_url().await);
    let req = charge(ANN, "0.40");
    assert!(matches!(
        timed(down.reserve(&req, &ctx())).await,
        ReserveOutcome::Unavailable { .. }
    ));
    assert!(matches!(
        timed(down.charge(&req, &ctx())).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(
        timed(down.debit("1795733278058001", &req, &ctx())).await,
        FinishOutcome::Unavailable
    );
    assert_eq!(
        timed(down.release("1795733278058001", &req, &ctx())).await,
        FinishOutcome::Unavailable
    );
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_ocs() {
    let mut config = config(&refusing_url().await);
    config.breaker_failure_threshold = 2;
    config.max_retries = 0;
    let c = NrfRatingConnector::new("ocs-de", config).unwrap();
    let req = charge(ANN, "0.40");
    c.reserve(&req, &ctx()).await;
    c.reserve(&req, &ctx()).await;
    assert_eq!(c.breaker_state(), BreakerState::Open);
    assert!(matches!(
        c.reserve(&req, &ctx()).await,
        ReserveOutcome::Unavailable { retry_after_secs } if retry_after_secs >= 1
    ));
}

// ------------------------------------------------------------------ refunds

#[tokio::test]
async fn a_refund_is_a_positive_adjustment_naming_the_charge() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let original = charge(ANN, "0.40");
    assert!(matches!(
        c.charge(&original, &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 60);
    let refund = refund_of(&original, "0.25");
    assert_eq!(
        c.charge(&refund, &ctx()).await,
        ChargeOutcome::Success {
            csp_reference: refund.transaction_id.as_str().to_owned()
        }
    );
    assert_eq!(ocs.balance(&product), 85);
    let adjustments = ocs.adjustments();
    assert_eq!(adjustments.len(), 1);
    let adjustment = &adjustments[0];
    assert_eq!(
        adjustment["amount"],
        json!({"units": "cents", "amount": "0.25"})
    );
    assert_eq!(adjustment["product"], json!({"id": product}));
    assert_eq!(adjustment["type"], "adjustment");
    let description = adjustment["description"].as_str().unwrap();
    assert!(
        description.contains(refund.transaction_id.as_str()),
        "{description}"
    );
    assert!(
        description.contains(original.transaction_id.as_str()),
        "{description}"
    );

    // A disabled subscriber can still be refunded; an unknown one cannot.
    ocs.set_enabled(ANN, false);
    assert!(matches!(
        c.charge(&refund_of(&original, "0.15"), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 100);
    let mut stranger = refund_of(&original, "0.15");
    stranger.customer = customer("491700000000");
    assert_eq!(
        c.charge(&stranger, &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::AccountNotFound)
    );
    assert_eq!(ocs.adjustments().len(), 2);
}

#[tokio::test]
async fn a_refund_that_may_have_reached_the_ocs_is_never_repeated() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let original = charge(ANN, "0.40");

    ocs.arm(
        Route::Adjustment,
        Fault::Answer(500, "application/json", "{}".into()),
        10,
    );
    assert_eq!(
        timed(c.charge(&refund_of(&original, "0.40"), &ctx())).await,
        ChargeOutcome::Unknown
    );
    assert_eq!(ocs.requests_to(Route::Adjustment), 1);
    ocs.disarm();

    ocs.arm(
        Route::Adjustment,
        Fault::ActThenStall(Duration::from_secs(2)),
        1,
    );
    assert_eq!(
        timed(c.charge(&refund_of(&original, "0.40"), &ctx())).await,
        ChargeOutcome::Unknown
    );
    assert_eq!(ocs.requests_to(Route::Adjustment), 2);
    assert_eq!(ocs.balance(&product), 140, "credited once");

    // A 2xx other than the documented 204 is not trusted either.
    ocs.arm(Route::Adjustment, Fault::ActThenAnswer(200, "{}".into()), 1);
    assert_eq!(
        c.charge(&refund_of(&original, "0.10"), &ctx()).await,
        ChargeOutcome::Unknown
    );

    let down = connector(&refusing_url().await);
    assert!(matches!(
        timed(down.charge(&refund_of(&original, "0.40"), &ctx())).await,
        ChargeOutcome::Unavailable { .. }
    ));
}

// ------------------------------------------------------------------ the rest of the trait

#[tokio::test]
async fn status_and_messages_are_not_the_ocs_business() {
    let (_ocs, url) = spawn_ocs().await;
    let c = connector(&url);
    assert_eq!(c.kind(), "nrf-rating");
    assert!(c.two_phase().is_some());
    assert_eq!(
        c.charge_status(&TransactionId::generate(), &ctx()).await,
        StatusOutcome::Pending
    );
    let n = Notification {
        id: NotificationId::generate(),
        to: customer(ANN),
        text: "Your PIN is 123456".into(),
        partner: partner(),
    };
    assert_eq!(
        c.notify(&n, &ctx()).await,
        NotifyOutcome::Permanent("not supported".into())
    );
}

#[test]
fn calls_are_counted_and_timed_per_operation_and_outcome() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (ocs, url) = spawn_ocs().await;
            ocs.subscriber(ANN, 100);
            let c = connector(&url);
            c.validate_account(&customer(ANN), &partner(), &ctx())
                .await
                .unwrap();
            c.charge(&charge(ANN, "0.40"), &ctx()).await;
            c.charge(&charge(ANN, "0.70"), &ctx()).await;
        });
    });
    let text = handle.render();
    let lines: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    for (series, count) in [
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="validate",outcome="active"}"#,
            "1",
        ),
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="reserve",outcome="reserved"}"#,
            "1",
        ),
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="reserve",outcome="declined"}"#,
            "1",
        ),
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="debit",outcome="done"}"#,
            "1",
        ),
    ] {
        assert_eq!(lines.get(series), Some(&count), "{series}\n{text}");
    }
    assert!(
        text.contains(
            r#"dcbhub_csp_call_duration_seconds_count{csp="ocs-de",operation="reserve"} 2"#
        ) || text.contains(
            r#"dcbhub_csp_call_duration_seconds{csp="ocs-de",operation="reserve",quantile="#
        ),
        "{text}"
    );
}
