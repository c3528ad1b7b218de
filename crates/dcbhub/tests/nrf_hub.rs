//! The OTT API over HTTP against the OCS test double, through the real hub: sandbox off, one
//! `nrf-rating` CSP for `+49…` pointing at the double (`crates/connectors/tests/support/ocs.rs`).
//! Account validation, charges (reserve → stored reference → debit), a crash between reserve
//! and debit settled by the reconciler, refunds, and unusable reserve answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../../connectors/tests/support/ocs.rs"]
mod ocs;

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dcbhub::config::{CspConfig, CspKind, LimitsConfig};
use dcbhub_connectors::NrfRatingConfig;
use dcbhub_domain::{ConsentPolicy, Currency};
use dcbhub_store::{TransactionRecord, TxStatus};
use helpers::{Backend, TestApp, assert_error, json, spawn_app_with};
use ocs::{Fault, Ocs, Route, spawn_ocs};
use serde_json::{Value, json};

/// Subscribers of the tests, provisioned in the double per test.
const ANN: &str = "491701234567";
const BOB: &str = "491709876543";
const NOBODY: &str = "491700000000";
const PARTNER: &str = "NFLX";

/// How the hub is wired to the double.
struct Timing {
    /// The hub's budget for one charge (`transactions.csp_timeout_ms`).
    hub_budget_ms: u64,
    /// The connector's budget for each call (`[csps.nrf_rating] timeout_ms`).
    call_budget_ms: u64,
    /// The reconciler's first look at a PENDING transaction.
    first_look_ms: u64,
}

const QUICK: Timing = Timing {
    hub_budget_ms: 3_000,
    call_budget_ms: 1_000,
    first_look_ms: 100,
};

struct World {
    app: TestApp,
    ocs: Arc<Ocs>,
    key: String,
}

async fn world(test: &str, timing: Timing) -> World {
    let (ocs, url) = spawn_ocs().await;
    let app = spawn_app_with(Backend::Sqlite, test, |config| {
        config.sandbox.enabled = false;
        let mut nrf = NrfRatingConfig::new(url, "admin", "admin", Currency::parse("EUR").unwrap());
        nrf.timeout_ms = timing.call_budget_ms;
        nrf.backoff_base_ms = 10;
        nrf.backoff_max_ms = 40;
        nrf.breaker_failure_threshold = 1_000;
        config.csps.push(CspConfig {
            id: "ocs-de".into(),
            kind: CspKind::NrfRating,
            prefixes: vec!["49".into()],
            accepts_email: false,
            http: None,
            nrf_rating: Some(nrf),
            limits: Some(LimitsConfig {
                currency: "EUR".into(),
                per_transaction: "40.00".into(),
                per_day: "100.00".into(),
                per_month: "240.00".into(),
            }),
            sms_channel: None,
            email_channel: None,
            smpp: None,
            smtp: None,
            charge_codes: Default::default(),
        });
        config.transactions.csp_timeout_ms = timing.hub_budget_ms;
        config.transactions.reconcile_first_delay_ms = timing.first_look_ms;
    })
    .await
    .unwrap();
    let key = app.partner(PARTNER, ConsentPolicy::None).await;
    World { app, ocs, key }
}

impl World {
    async fn validate(&self, msisdn: &str) -> reqwest::Response {
        self.app
            .post("/account/validate", &self.key, &json!({"msisdn": msisdn}))
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        self.app
            .post("/transaction", &self.key, body)
            .send()
            .await
            .unwrap()
    }

    async fn status(&self, ext: &str) -> (u16, Value) {
        json(
            self.app
                .get(&format!("/transaction/{ext}"), &self.key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Polls `GET /transaction/{ext}` until it is no longer PENDING (bounded).
    async fn final_status(&self, ext: &str) -> Value {
        for _ in 0..250 {
            let (status, body) = self.status(ext).await;
            assert_eq!(status, 200, "{body}");
            if body["status"] != "PENDING" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{ext} stayed PENDING");
    }

    /// The stored transaction behind a partner's `extTransactionID`.
    async fn record(&self, ext: &str) -> Option<TransactionRecord> {
        let partners = self.app.store.list_partners().await.unwrap();
        let partner = partners
            .iter()
            .find(|p| p.code.as_str() == PARTNER)
            .unwrap();
        self.app
            .store
            .transaction_by_ext(partner.id, ext)
            .await
            .unwrap()
    }

    /// `requestSubType`s of the rating requests the double received, in order.
    fn rating_calls(&self) -> Vec<String> {
        self.ocs
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/nrf-rating/"))
            .map(|r| {
                r.body["serviceRating"][0]["requestSubType"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }
}

fn charge(ext: &str, digits: &str, amount: &str) -> Value {
    json!({"extTransactionID": ext, "msisdn": format!("+{digits}"), "amount": amount,
           "currency": "EUR", "description": "Premium plan"})
}

fn refund(ext: &str, original: &str, digits: &str, amount: &str) -> Value {
    json!({"extTransactionID": ext, "msisdn": format!("+{digits}"), "amount": amount,
           "currency": "EUR", "description": "Refund", "type": "REFUND",
           "originalExtTransactionID": original})
}

// ------------------------------------------------------------------ 1. account validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_validation_reads_the_service_inventory() {
    let w = world("nrf_accounts", QUICK).await;
    w.ocs.subscriber(ANN, 500);
    w.ocs.subscriber(BOB, 500);
    w.ocs.set_enabled(BOB, false);

    let (status, body) = json(w.validate(&format!("+{ANN}")).await).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"status": "ACTIVE", "type": "prepaid", "currency": "EUR"})
        )
    );
    // The hub asked the double: the service, then its balance.
    let paths: Vec<String> = w.ocs.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/serviceInventoryManagement/v2/service/{ANN}"),
            format!("/balanceManagement/v1/service/{ANN}/accumulatedBalance"),
        ]
    );

    assert_error(
        w.validate(&format!("+{NOBODY}")).await,
        404,
        "account-not-found",
    )
    .await;
    assert_error(
        w.validate(&format!("+{BOB}")).await,
        400,
        "account-suspended",
    )
    .await;

    // A zero balance is still an account in good standing; charges are declined one by one.
    w.ocs.subscriber("491705550000", 0);
    let (status, body) = json(w.validate("+491705550000").await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ACTIVE")));

    // The OCS knows MSISDNs only, and nobody else serves this hub.
    let before = w.ocs.requests().len();
    let resp = w
        .app
        .post(
            "/account/validate",
            &w.key,
            &json!({"email": "ann@example.com"}),
        )
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "account-not-found").await;
    assert_error(w.validate("+447700900001").await, 404, "account-not-found").await;
    assert_eq!(w.ocs.requests().len(), before);
}

// ------------------------------------------------------------------ 2. charging

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_take_exactly_the_amount_once() {
    let w = world("nrf_charges", QUICK).await;
    let product = w.ocs.subscriber(ANN, 100);

    let resp = w.post(&charge("c-ok", ANN, "0.40")).await;
    assert!(resp.headers().get("idempotent-replayed").is_none());
    let (status, body) = json(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            body["status"].as_str(),
            body["amount"].as_str(),
            body["currency"].as_str(),
            body["type"].as_str()
        ),
        (Some("SUCCESS"), Some("0.40"), Some("EUR"), Some("CHARGE"))
    );
    assert_eq!(w.ocs.balance(&product), 60);
    assert_eq!(w.ocs.hold_count(), 0);
    assert_eq!(w.rating_calls(), ["RESERVE", "DEBIT"]);
    // The reservation was stored with the transaction and is its CSP reference.
    let reference = body["cspReference"].as_str().unwrap().to_owned();
    let record = w.record("c-ok").await.unwrap();
    assert_eq!(record.reservation_ref.as_deref(), Some(reference.as_str()));
    assert_eq!(record.status, TxStatus::Success);
    let debit = w
        .ocs
        .requests()
        .into_iter()
        .find(|r| r.body["serviceRating"][0]["requestSubType"] == "DEBIT")
        .unwrap();
    assert_eq!(
        debit.path,
        format!("/nrf-rating/v1/ratingdata/{reference}/release")
    );

    // Above the balance: declined, nothing taken, nothing held.
    assert_error(
        w.post(&charge("c-poor", ANN, "0.70")).await,
        402,
        "insufficient-funds",
    )
    .await;
    assert_eq!(w.ocs.balance(&product), 60);
    assert_eq!(w.ocs.hold_count(), 0);
    let (_, failed) = w.status("c-poor").await;
    assert_eq!(
        (failed["status"].as_str(), failed["failureCode"].as_str()),
        (Some("FAILED"), Some("insufficient-funds"))
    );

    // A repeat of the successful charge: the same answer, replayed, debited once.
    let resp = w.post(&charge("c-ok", ANN, "0.40")).await;
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let (status, again) = json(resp).await;
    assert_eq!((status, &again), (201, &body));
    let (status, got) = w.status("c-ok").await;
    assert_eq!((status, &got), (200, &body));
    assert_eq!(w.ocs.balance(&product), 60);
    assert_eq!(w.rating_calls(), ["RESERVE", "DEBIT", "RESERVE"]);

    // The whole rest of the balance can be charged; then nothing more.
    let (status, _) = json(w.post(&charge("c-rest", ANN, "0.60")).await).await;
    assert_eq!(status, 201);
    assert_eq!(w.ocs.balance(&product), 0);
    assert_error(
        w.post(&charge("c-empty", ANN, "0.01")).await,
        402,
        "insufficient-funds",
    )
    .await;
    assert_eq!(w.ocs.balance(&product), 0);
    assert_eq!(w.ocs.hold_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_of_unknown_disabled_or_foreign_currency_accounts_take_nothing() {
    let w = world("nrf_refusals", QUICK).await;
    let product = w.ocs.subscriber(ANN, 100);
    assert_error(
        w.post(&charge("c-nobody", NOBODY, "0.10")).await,
        404,
        "account-not-found",
    )
    .await;
    let mut usd = charge("c-usd", ANN, "0.10");
    usd["currency"] = json!("USD");
    assert_error(w.post(&usd).await, 400, "currency-not-supported").await;
    w.ocs.set_enabled(ANN, false);
    assert_error(
        w.post(&charge("c-off", ANN, "0.10")).await,
        400,
        "account-suspended",
    )
    .await;
    assert_eq!(w.ocs.balance(&product), 100);
    assert!(w.rating_calls().is_empty(), "{:?}", w.rating_calls());
}

// ------------------------------------------------------------------ 3. crash between reserve and debit

/// Charges 0.40 of 1.00 with `fault` armed once on the debit; expects `202 PENDING` with the
/// reservation stored, then the reconciler's SUCCESS with exactly one debit and nothing held.
async fn lost_debit(test: &str, timing: Timing, fault: Fault) {
    let w = world(test, timing).await;
    let product = w.ocs.subscriber(ANN, 100);
    w.ocs.arm(Route::Finish, fault, 1);

    let started = Instant::now();
    let (status, pending) = json(w.post(&charge("c-lost", ANN, "0.40")).await).await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (202, Some("PENDING")),
        "{pending}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "answered after {:?}",
        started.elapsed()
    );
    // The reserve's reference is stored before the debit (the reconciler's first look comes
    // later than this read).
    let record = w.record("c-lost").await.unwrap();
    assert_eq!(record.status, TxStatus::Pending);
    let reference = record.reservation_ref.clone().expect("reservation stored");

    let done = w.final_status("c-lost").await;
    assert_eq!(
        (done["status"].as_str(), done["cspReference"].as_str()),
        (Some("SUCCESS"), Some(reference.as_str())),
        "{done}"
    );
    assert_eq!(w.ocs.balance(&product), 60, "debited exactly once");
    assert_eq!(w.ocs.hold_count(), 0, "no reservation left held");
    let calls = w.rating_calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "RESERVE").count(),
        1,
        "{calls:?}"
    );
    assert!(!calls.contains(&"RELEASE".to_owned()), "{calls:?}");
    // The request's debit, then the reconciler's.
    assert_eq!(
        calls.iter().filter(|c| *c == "DEBIT").count(),
        2,
        "{calls:?}"
    );
    // A repeat now answers the final state.
    let (status, again) = json(w.post(&charge("c-lost", ANN, "0.40")).await).await;
    assert_eq!((status, again["status"].as_str()), (201, Some("SUCCESS")));
    assert_eq!(w.ocs.balance(&product), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_debit_answer_is_settled_by_the_reconciler() {
    // The OCS debits, but its answer cannot be read.
    let timing = Timing {
        first_look_ms: 600,
        ..QUICK
    };
    lost_debit(
        "nrf_lost_answer",
        timing,
        Fault::ActThenAnswer(200, "{garbage".into()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debit_answered_after_the_hub_budget_is_settled_by_the_reconciler() {
    // The OCS debits and answers long after the hub's budget.
    let timing = Timing {
        hub_budget_ms: 400,
        call_budget_ms: 2_000,
        first_look_ms: 600,
    };
    lost_debit(
        "nrf_late_debit",
        timing,
        Fault::ActThenStall(Duration::from_millis(1_500)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debit_that_never_arrived_is_made_by_the_reconciler() {
    // The debit hangs without being made until the hub gives up.
    let timing = Timing {
        hub_budget_ms: 400,
        call_budget_ms: 2_000,
        first_look_ms: 600,
    };
    lost_debit(
        "nrf_stalled_debit",
        timing,
        Fault::Stall(Duration::from_millis(1_500)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_answered_after_the_hub_budget_is_charged_once() {
    // The OCS reserves and answers after the hub's budget: no reference was stored, so the
    // reconciler charges anew; the first reservation is never debited.
    let w = world(
        "nrf_late_reserve",
        Timing {
            hub_budget_ms: 400,
            call_budget_ms: 2_000,
            first_look_ms: 100,
        },
    )
    .await;
    let product = w.ocs.subscriber(ANN, 100);
    w.ocs.arm(
        Route::Reserve,
        Fault::ActThenStall(Duration::from_millis(1_500)),
        1,
    );
    let (status, pending) = json(w.post(&charge("c-late", ANN, "0.40")).await).await;
    assert_eq!((status, pending["status"].as_str()), (202, Some("PENDING")));
    let done = w.final_status("c-late").await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(w.ocs.balance(&product), 60, "debited exactly once");
    assert_eq!(w.rating_calls(), ["RESERVE", "RESERVE", "DEBIT"]);
    // The first reservation stays held until the OCS lets it lapse.
    assert_eq!(w.ocs.held(&product), 40);
}

// ------------------------------------------------------------------ 4. refunds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_credits_the_balance_back() {
    let w = world("nrf_refund", QUICK).await;
    let product = w.ocs.subscriber(ANN, 100);
    let (status, charged) = json(w.post(&charge("c-1", ANN, "0.40")).await).await;
    assert_eq!(status, 201, "{charged}");
    assert_eq!(w.ocs.balance(&product), 60);

    let (status, body) = json(w.post(&refund("r-1", "c-1", ANN, "0.25")).await).await;
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["type"].as_str(),
            body["amount"].as_str()
        ),
        (201, Some("SUCCESS"), Some("REFUND"), Some("0.25")),
        "{body}"
    );
    assert_eq!(w.ocs.balance(&product), 85);
    let adjustments = w.ocs.adjustments();
    assert_eq!(adjustments.len(), 1);
    assert_eq!(
        adjustments[0]["amount"],
        json!({"units": "cents", "amount": "0.25"})
    );
    assert_eq!(adjustments[0]["product"], json!({"id": product}));
    let description = adjustments[0]["description"].as_str().unwrap();
    for id in [&body["transactionId"], &charged["transactionId"]] {
        assert!(description.contains(id.as_str().unwrap()), "{description}");
    }
    let (_, original) = w.status("c-1").await;
    assert_eq!(original["refundedAmount"], "0.25");

    // A repeat credits nothing more; the rest can be refunded, never more than the charge.
    let (status, _) = json(w.post(&refund("r-1", "c-1", ANN, "0.25")).await).await;
    assert_eq!(status, 201);
    assert_eq!(w.ocs.balance(&product), 85);
    assert_error(
        w.post(&refund("r-2", "c-1", ANN, "0.16")).await,
        400,
        "refund-exceeds-original",
    )
    .await;
    let (status, _) = json(w.post(&refund("r-3", "c-1", ANN, "0.15")).await).await;
    assert_eq!(status, 201);
    assert_eq!(w.ocs.balance(&product), 100);
    assert_eq!(w.ocs.adjustments().len(), 2);
}

// ------------------------------------------------------------------ 5. unusable reserve answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_reserve_answers_are_never_success() {
    let w = world("nrf_bad_reserve", QUICK).await;
    let product = w.ocs.subscriber(ANN, 100);
    let cases = [
        // Nothing done, a 500.
        Fault::Answer(500, "application/json", "{}".into()),
        // Reserved, then a 500: held under a reference the hub never learns.
        Fault::ActThenAnswer(500, "{}".into()),
        // Reserved, with a Location but a garbled body: released at once.
        Fault::ActThenAnswer(201, "{garbage".into()),
        // A 200 of garbage without a Location.
        Fault::Answer(200, "application/json", "{garbage".into()),
        Fault::Answer(200, "text/html", "<html>hello</html>".into()),
    ];
    for (i, fault) in cases.into_iter().enumerate() {
        let ext = format!("c-bad-{i}");
        w.ocs.arm(Route::Reserve, fault.clone(), 1);
        let resp = w.post(&charge(&ext, ANN, "0.40")).await;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let (_, body) = json(resp).await;
        match status {
            503 => {
                assert_eq!(body["code"], "csp-unavailable", "{fault:?}: {body}");
                assert!(retry_after.is_some(), "{fault:?}: no Retry-After");
            }
            202 => assert_eq!(body["status"], "PENDING", "{fault:?}: {body}"),
            _ => panic!("{fault:?}: {status} {body}"),
        }
        assert_eq!(w.ocs.balance(&product), 100, "{fault:?}: nothing debited");
        assert!(
            !w.rating_calls().contains(&"DEBIT".to_owned()),
            "{fault:?}: {:?}",
            w.rating_calls()
        );
    }
    // Only the reservation made under an unknown reference stays held (the OCS lets it lapse).
    assert_eq!(w.ocs.held(&product), 40);
    let releases = w.rating_calls().iter().filter(|c| *c == "RELEASE").count();
    assert_eq!(releases, 1, "the garbled 201 was released");

    // The same extTransactionID may be sent again and is charged once.
    let (status, body) = json(w.post(&charge("c-bad-0", ANN, "0.40")).await).await;
    assert_eq!((status, body["status"].as_str()), (201, Some("SUCCESS")));
    assert_eq!(w.ocs.balance(&product), 60);
}
