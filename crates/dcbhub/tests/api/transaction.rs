//! API.md §5–6: charges and refunds over HTTP, in process and through csp-sim.

use std::sync::Arc;
use std::time::Duration;

use dcbhub_domain::ConsentPolicy;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Csp, Sim, TestApp, assert_error, json, spawn_app_with, spawn_with_csp,
};

async fn post(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.post("/transaction", key, body).send().await.unwrap()
}

fn charge(ext: &str, msisdn: &str, amount: &str) -> Value {
    json!({"extTransactionID": ext, "msisdn": msisdn, "amount": amount, "currency": "GBP", "description": "Premium plan", "productCode": "PREMIUM-M"})
}

/// Ledger entries the sandbox holds for a transaction id.
fn ledger_count(app: &TestApp, sim: Option<&Sim>, tx_id: &str) -> usize {
    let ledger = match sim {
        Some(s) => s.state.sandbox().ledger(),
        None => app.hub.sandbox.as_ref().unwrap().ledger(),
    };
    ledger
        .iter()
        .filter(|e| e.transaction_id.as_str() == tx_id)
        .count()
}

async fn get_status(app: &TestApp, key: &str, ext: &str) -> (u16, Value) {
    json(
        app.get(&format!("/transaction/{ext}"), key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn wait_final(app: &TestApp, key: &str, ext: &str) -> Value {
    for _ in 0..300 {
        let (status, body) = get_status(app, key, ext).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "PENDING" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{ext} stayed PENDING");
}

async fn every_row(csp: Csp) {
    let (app, sim) = spawn_with_csp(csp, "tx_rows").await;
    let sim = sim.as_ref();
    let key = app.partner("RENEW", ConsentPolicy::None).await;

    // Charged.
    let resp = post(&app, &key, &charge("c-ok", "+447700900000", "4.99")).await;
    assert!(resp.headers().get("idempotent-replayed").is_none());
    let (status, body) = json(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            body["status"].as_str(),
            body["amount"].as_str(),
            body["refundedAmount"].as_str()
        ),
        (Some("SUCCESS"), Some("4.99"), Some("0.00"))
    );
    assert_eq!(
        (
            body["type"].as_str(),
            body["productCode"].as_str(),
            body["currency"].as_str()
        ),
        (Some("CHARGE"), Some("PREMIUM-M"), Some("GBP"))
    );
    assert!(
        body["cspReference"].as_str().is_some()
            && body["transactionId"].as_str().unwrap().starts_with("tx_")
    );
    let tx_id = body["transactionId"].as_str().unwrap().to_owned();
    assert_eq!(ledger_count(&app, sim, &tx_id), 1);
    // A repeat: the same answer, replayed, no second charge.
    let resp = post(&app, &key, &charge("c-ok", "+447700900000", "4.99")).await;
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let (status, again) = json(resp).await;
    assert_eq!((status, &again), (201, &body));
    assert_eq!(ledger_count(&app, sim, &tx_id), 1);
    let (status, got) = get_status(&app, &key, "c-ok").await;
    assert_eq!((status, got), (200, body.clone()));
    // Same id, other content.
    assert_error(
        post(&app, &key, &charge("c-ok", "+447700900000", "5.00")).await,
        409,
        "ext-transaction-id-conflict",
    )
    .await;
    // A JSON number is read from its literal.
    let mut numeric = charge("c-num", "+447700900000", "0");
    numeric["amount"] = serde_json::from_str("0.30").unwrap();
    let (status, body) = json(post(&app, &key, &numeric).await).await;
    assert_eq!((status, body["amount"].as_str()), (201, Some("0.30")));

    // Declined; insufficient funds on the prepaid balance (10.00).
    assert_error(
        post(&app, &key, &charge("c-dec", "+447700900006", "1.00")).await,
        402,
        "transaction-declined",
    )
    .await;
    let (_, failed) = get_status(&app, &key, "c-dec").await;
    assert_eq!(
        (failed["status"].as_str(), failed["failureCode"].as_str()),
        (Some("FAILED"), Some("transaction-declined"))
    );
    // The decline is final: a repeat answers the same, and never charges.
    assert_error(
        post(&app, &key, &charge("c-dec", "+447700900006", "1.00")).await,
        402,
        "transaction-declined",
    )
    .await;
    assert_error(
        post(&app, &key, &charge("c-poor", "+447700900001", "10.01")).await,
        402,
        "insufficient-funds",
    )
    .await;
    let (status, _) =
        json(post(&app, &key, &charge("c-rich", "+447700900001", "10.00")).await).await;
    assert_eq!(status, 201);

    // The answer never arrives in time: 202 PENDING, then SUCCESS once the reconciler asks.
    let (status, pending) =
        json(post(&app, &key, &charge("c-late", "+447700900007", "2.00")).await).await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (202, Some("PENDING")),
        "{pending}"
    );
    let settled = wait_final(&app, &key, "c-late").await;
    assert_eq!(settled["status"], "SUCCESS");
    let late_id = settled["transactionId"].as_str().unwrap();
    assert_eq!(ledger_count(&app, sim, late_id), 1);
    let resp = post(&app, &key, &charge("c-late", "+447700900007", "2.00")).await;
    assert_eq!(
        resp.status(),
        201,
        "a repeat after settlement gets the final answer"
    );

    // The CSP refuses before charging: 503, nothing stored, the same id may be sent again.
    let resp = post(&app, &key, &charge("c-down", "+447700900008", "1.00")).await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 503, "csp-unavailable").await;
    assert_error(
        app.get("/transaction/c-down", &key).send().await.unwrap(),
        404,
        "transaction-not-found",
    )
    .await;
    assert_error(
        post(&app, &key, &charge("c-down", "+447700900008", "1.00")).await,
        503,
        "csp-unavailable",
    )
    .await;

    // Spending limit: 40.00 per transaction; currency; account problems.
    assert_error(
        post(&app, &key, &charge("c-big", "+447700900000", "40.01")).await,
        402,
        "spending-limit-exceeded",
    )
    .await;
    let mut eur = charge("c-eur", "+447700900000", "1.00");
    eur["currency"] = json!("EUR");
    assert_error(post(&app, &key, &eur).await, 400, "currency-not-supported").await;
    assert_error(
        post(&app, &key, &charge("c-gone", "+447700900002", "1.00")).await,
        404,
        "account-not-found",
    )
    .await;
    assert_error(
        post(&app, &key, &charge("c-susp", "+447700900003", "1.00")).await,
        400,
        "suspended-non-payment",
    )
    .await;
    assert_error(
        post(&app, &key, &charge("c-bar", "+447700900005", "1.00")).await,
        400,
        "dcb-barred",
    )
    .await;

    // Refunds: partial, then what is left; never more.
    let refund = |ext: &str, amount: &str| json!({"extTransactionID": ext, "msisdn": "+447700900000", "amount": amount, "currency": "GBP", "description": "Refund", "type": "REFUND", "originalExtTransactionID": "c-ok"});
    let (status, r1) = json(post(&app, &key, &refund("r-1", "1.00")).await).await;
    assert_eq!(
        (
            status,
            r1["type"].as_str(),
            r1["originalExtTransactionID"].as_str()
        ),
        (201, Some("REFUND"), Some("c-ok")),
        "{r1}"
    );
    assert_error(
        post(&app, &key, &refund("r-2", "4.00")).await,
        400,
        "refund-exceeds-original",
    )
    .await;
    let (status, _) = json(post(&app, &key, &refund("r-3", "3.99")).await).await;
    assert_eq!(status, 201);
    let (_, original) = get_status(&app, &key, "c-ok").await;
    assert_eq!(original["refundedAmount"], "4.99");
    assert_error(
        post(&app, &key, &refund("r-4", "0.01")).await,
        400,
        "refund-exceeds-original",
    )
    .await;
    let mut unknown = refund("r-5", "1.00");
    unknown["originalExtTransactionID"] = json!("nope");
    assert_error(
        post(&app, &key, &unknown).await,
        404,
        "transaction-not-found",
    )
    .await;
    let mut missing = refund("r-6", "1.00");
    missing
        .as_object_mut()
        .unwrap()
        .remove("originalExtTransactionID");
    assert_error(post(&app, &key, &missing).await, 400, "invalid-request").await;

    // Another partner sees nothing of it.
    let other = app.partner("SPOT", ConsentPolicy::None).await;
    assert_error(
        app.get("/transaction/c-ok", &other).send().await.unwrap(),
        404,
        "transaction-not-found",
    )
    .await;
    let mut theirs = refund("r-7", "1.00");
    theirs["originalExtTransactionID"] = json!("c-rich");
    assert_error(
        post(&app, &other, &theirs).await,
        404,
        "transaction-not-found",
    )
    .await;

    // Bad input changes nothing.
    for (bad, field) in [
        (
            charge("bad id", "+447700900000", "1.00"),
            "extTransactionID",
        ),
        (charge("c-x", "+447700900000", "1.001"), "amount"),
        (charge("c-x", "+447700900000", "-1"), "amount"),
        (charge("c-x", "+447700900000", "1e2"), "amount"),
        (charge("c-x", "447700900000", "1.00"), "msisdn"),
    ] {
        let body = assert_error(post(&app, &key, &bad).await, 400, "invalid-request").await;
        assert_eq!(body["field"], field, "{bad}");
    }
    assert_error(
        app.get("/transaction/c-x", &key).send().await.unwrap(),
        404,
        "transaction-not-found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_in_process() {
    every_row(Csp::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_through_csp_sim() {
    every_row(Csp::OverHttp).await;
}

async fn hundred_identical(csp: Csp) {
    let (app, sim) = spawn_with_csp(csp, "tx_once").await;
    let key = app.partner("RENEW", ConsentPolicy::None).await;
    let app = Arc::new(app);
    let body = charge("once", "+447700900000", "4.99");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (app, key, body) = (Arc::clone(&app), key.clone(), body.clone());
            tokio::spawn(async move { json(post(&app, &key, &body).await).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let first = answers[0].clone();
    assert_eq!(first.0, 201, "{}", first.1);
    assert!(
        answers.iter().all(|a| *a == first),
        "all 100 answers are the same"
    );
    let tx_id = first.1["transactionId"].as_str().unwrap();
    assert_eq!(ledger_count(&app, sim.as_ref(), tx_id), 1, "charged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_identical_charges_in_process() {
    hundred_identical(Csp::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_identical_charges_through_csp_sim() {
    hundred_identical(Csp::OverHttp).await;
}

crate::on_both_backends!(
    consent_rules,
    parallel_limits_and_refunds,
    a_failed_write_leaves_the_sandbox_untouched,
    a_refused_charge_leaves_no_booking_at_the_sandbox
);

async fn consent_rules(app: TestApp) {
    let key = app.partner("NFLX", ConsentPolicy::Pin).await;
    let ann = "+447700900000";
    assert_error(
        post(&app, &key, &charge("p-0", ann, "4.99")).await,
        400,
        "consent-required",
    )
    .await;
    let (_, created) = json(
        app.post(
            "/pin",
            &key,
            &json!({"msisdn": ann, "amount": "4.99", "currency": "GBP"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let pin_id = created["pinId"].as_str().unwrap().to_owned();
    let with_pin = |ext: &str, amount: &str| {
        let mut b = charge(ext, ann, amount);
        b["pinId"] = json!(pin_id);
        b
    };
    assert_error(
        post(&app, &key, &with_pin("p-1", "4.99")).await,
        400,
        "invalid-consent",
    )
    .await;
    let code = app.latest_pin(None, &key, "NFLX", ann, 0).await;
    let resp = app
        .post(
            "/pin/validate",
            &key,
            &json!({"pinId": pin_id, "pin": code}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Bound to 4.99 GBP: not for 5.00, nor for another partner, nor another customer.
    assert_error(
        post(&app, &key, &with_pin("p-2", "5.00")).await,
        400,
        "invalid-consent",
    )
    .await;
    let other = app.partner("SPOT", ConsentPolicy::Pin).await;
    assert_error(
        post(&app, &other, &with_pin("p-3", "4.99")).await,
        400,
        "invalid-consent",
    )
    .await;
    let mut bob = with_pin("p-4", "4.99");
    bob["msisdn"] = json!("+447700900010");
    assert_error(post(&app, &key, &bob).await, 400, "invalid-consent").await;
    // Used once.
    let (status, _) = json(post(&app, &key, &with_pin("p-5", "4.99")).await).await;
    assert_eq!(status, 201);
    assert_error(
        post(&app, &key, &with_pin("p-6", "4.99")).await,
        400,
        "invalid-consent",
    )
    .await;
}

async fn parallel_limits_and_refunds(app: TestApp) {
    let key = app.partner("RENEW", ConsentPolicy::None).await;
    let app = Arc::new(app);
    // 30 parallel charges of 10.00 against the 100.00 day: exactly 10 pass.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (app, key) = (Arc::clone(&app), key.clone());
            tokio::spawn(async move {
                let ext = format!("l-{i}");
                (
                    post(&app, &key, &charge(&ext, "+447700900030", "10.00"))
                        .await
                        .status()
                        .as_u16(),
                    ext,
                )
            })
        })
        .collect();
    let mut ok = Vec::new();
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            (201, ext) => ok.push(ext),
            (402, _) => limited += 1,
            (other, _) => panic!("{other}"),
        }
    }
    assert_eq!((ok.len(), limited), (10, 20));
    let charged = ok[0].clone();
    // 12 parallel refunds of 3.00 against a 10.00 charge: exactly 3 pass.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (app, key, charged) = (Arc::clone(&app), key.clone(), charged.clone());
            tokio::spawn(async move {
                let body = json!({"extTransactionID": format!("rf-{i}"), "msisdn": "+447700900030", "amount": "3.00", "currency": "GBP", "description": "Refund", "type": "REFUND", "originalExtTransactionID": charged});
                post(&app, &key, &body).await.status().as_u16()
            })
        })
        .collect();
    let mut refunded = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => refunded += 1,
            400 => {}
            other => panic!("{other}"),
        }
    }
    let (_, original) = get_status(&app, &key, &charged).await;
    assert_eq!(refunded, 3);
    assert_eq!(original["refundedAmount"], "9.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_follow_successful_charges() {
    let app = spawn_app_with(Backend::Sqlite, "receipts", |_| {})
        .await
        .unwrap();
    let key = app.partner("RENEW", ConsentPolicy::None).await;
    let (status, _) = json(post(&app, &key, &charge("rc-1", "+447700900040", "1.50")).await).await;
    assert_eq!(status, 201);
    for _ in 0..100 {
        let inbox = app.inbox(None, &key, "RENEW", "+447700900040").await;
        if let Some(receipt) = inbox.first() {
            assert!(
                receipt.contains("1.50 GBP")
                    && receipt.contains("rc-1")
                    && receipt.contains("RENEW Media"),
                "{receipt}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no receipt");
}

/// Makes every receipt insert fail (from outside the hub, with the database's own means), or
/// stops doing so.
async fn fail_receipts(app: &TestApp, fail: bool) {
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch(if fail {
            "CREATE TRIGGER fail_receipts BEFORE INSERT ON notifications WHEN NEW.kind = 'RECEIPT'
             BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;"
        } else {
            "DROP TRIGGER fail_receipts;"
        })
        .unwrap();
        return;
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let sql = if fail {
        "CREATE FUNCTION fail_receipts() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'the disk says no'; END $$;
         CREATE TRIGGER fail_receipts BEFORE INSERT ON notifications
         FOR EACH ROW WHEN (NEW.kind = 'RECEIPT') EXECUTE FUNCTION fail_receipts();"
    } else {
        "DROP TRIGGER fail_receipts ON notifications; DROP FUNCTION fail_receipts();"
    };
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

/// The sandbox is asked inside the write of the charge: when that write fails after the
/// sandbox booked the charge (here: its receipt cannot be stored), the booking, the balance
/// and the receipt in the inbox are taken back, and a retry charges once.
async fn a_failed_write_leaves_the_sandbox_untouched(app: TestApp) {
    let key = app.partner("RENEW", ConsentPolicy::None).await;
    let sandbox = app.hub.sandbox.clone().unwrap();
    let prepaid =
        dcbhub_domain::Customer::Msisdn(dcbhub_domain::Msisdn::parse("+447700900001").unwrap());
    let opening = sandbox.prepaid_balance(&prepaid).unwrap();
    let body = charge("lost-1", "+447700900001", "4.00");

    fail_receipts(&app, true).await;
    assert_error(post(&app, &key, &body).await, 500, "system-error").await;
    assert_eq!(get_status(&app, &key, "lost-1").await.0, 404);
    assert!(sandbox.ledger().is_empty(), "{:?}", sandbox.ledger());
    assert_eq!(sandbox.prepaid_balance(&prepaid), Some(opening));
    assert!(
        sandbox
            .inbox(
                &prepaid,
                &dcbhub_domain::PartnerCode::parse("RENEW").unwrap()
            )
            .is_empty()
    );

    fail_receipts(&app, false).await;
    let (status, done) = json(post(&app, &key, &body).await).await;
    assert_eq!(
        (status, done["status"].as_str()),
        (201, Some("SUCCESS")),
        "{done}"
    );
    assert_eq!(sandbox.ledger().len(), 1);
    assert_eq!(
        sandbox.prepaid_balance(&prepaid),
        opening.checked_sub(dcbhub_domain::MinorUnits::new(400))
    );
    let inbox = sandbox.inbox(
        &prepaid,
        &dcbhub_domain::PartnerCode::parse("RENEW").unwrap(),
    );
    assert_eq!(inbox.len(), 1, "one receipt");
}

/// The sandbox may be asked before the store's checks (PostgreSQL): a charge the store then
/// refuses, or finds already written, leaves no booking and no message behind.
async fn a_refused_charge_leaves_no_booking_at_the_sandbox(app: TestApp) {
    let key = app.partner("RENEW", ConsentPolicy::None).await;
    let sandbox = app.hub.sandbox.clone().unwrap();
    let customer =
        dcbhub_domain::Customer::Msisdn(dcbhub_domain::Msisdn::parse("+447700900000").unwrap());
    let renew = dcbhub_domain::PartnerCode::parse("RENEW").unwrap();
    for ext in ["d-1", "d-2"] {
        let (status, _) =
            json(post(&app, &key, &charge(ext, "+447700900000", "40.00")).await).await;
        assert_eq!(status, 201);
    }
    // 120.00 would pass the 100.00 of the day.
    assert_error(
        post(&app, &key, &charge("d-3", "+447700900000", "40.00")).await,
        402,
        "spending-limit-exceeded",
    )
    .await;
    let (status, replayed) =
        json(post(&app, &key, &charge("d-1", "+447700900000", "40.00")).await).await;
    assert_eq!(
        (status, replayed["status"].as_str()),
        (201, Some("SUCCESS"))
    );
    let ledger = sandbox.ledger();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    for _ in 0..100 {
        if sandbox.inbox(&customer, &renew).len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        sandbox.inbox(&customer, &renew).len(),
        2,
        "a receipt per charge"
    );
    assert_eq!(get_status(&app, &key, "d-3").await.0, 404);
}
