//! Benchmark (not a test): one statement over 1,000,000 transactions on the embedded store.
//!
//!     cargo run --release -p dcbhub-store --example settlement_bench [-- ROWS]
//!
//! Fills a fresh SQLite store (raw batch insert, one transaction) with ROWS successful
//! transactions of one partner in one month — charges in GBP, EUR and JPY over eight
//! product codes, half with tax included, one in ten a refund (a third of those of the
//! previous month's charges, so adjustment lines appear) — with a partner default, a product
//! rule and a model change in mid-month, then times `run_statement` (a first run creating
//! the draft, a second recomputing it) and `finalise_statement` (which recomputes to check
//! the draft). Goal: a statement in under 5 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use dcbhub_domain::{ApiKey, ConsentPolicy, PartnerCode, Timestamp};
use dcbhub_store::{
    FinaliseOutcome, ModelTerms, NewPartner, NewSettlementModel, NewTaxRate, Period, RunOutcome,
};

const DAY_MS: i64 = 86_400_000;

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.replace('_', "").parse().expect("ROWS must be a number"))
        .unwrap_or(1_000_000);
    let (_dir, url) = dcbhub_store::testing::sqlite_url().unwrap();
    let store = dcbhub_store::open(&url, true).await.unwrap();
    let key = ApiKey::generate();
    let partner = store
        .create_partner(NewPartner {
            code: PartnerCode::parse("BENCH").unwrap(),
            name: "Bench".into(),
            consent: ConsentPolicy::None,
            receipts_enabled: false,
            first_key_id: "key_bench".into(),
            first_key_hash: key.hash(),
        })
        .await
        .unwrap();
    let model = |product: Option<&str>, bp: u32, from: &str| NewSettlementModel {
        partner_id: partner.id,
        product_code: product.map(Into::into),
        terms: ModelTerms::RevenueShare {
            partner_share_bp: bp,
        },
        valid_from: t(from),
        valid_to: None,
    };
    for m in [
        model(None, 7000, "2025-01-01T00:00:00Z"),
        model(None, 6500, "2025-11-15T00:00:00Z"),
        model(Some("P3"), 8000, "2025-01-01T00:00:00Z"),
    ] {
        store.add_settlement_model(m).await.unwrap();
    }
    store
        .set_tax_rate(NewTaxRate {
            csp_id: "uk".into(),
            rate_bp: 2000,
            valid_from: t("2025-01-01T00:00:00Z"),
        })
        .await
        .unwrap();

    let from = t("2025-11-01T00:00:00Z").unix_millis();
    let period = Period::new(Timestamp::from_unix_millis(from), t("2025-12-01T00:00:00Z")).unwrap();
    let started = Instant::now();
    fill(
        url.strip_prefix("sqlite://").unwrap(),
        partner.id,
        from,
        rows,
    );
    println!(
        "filled {rows} transactions in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    for label in [
        "first run (creates the draft)",
        "second run (recomputes it)",
    ] {
        let started = Instant::now();
        let outcome = store
            .run_statement(partner.id, period, Timestamp::now())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let RunOutcome::Computed(st) = outcome else {
            panic!("{outcome:?}")
        };
        let counted: i64 = st.lines.iter().map(|l| l.charges + l.refunds).sum();
        assert_eq!(counted, i64::try_from(rows).unwrap());
        println!(
            "{label}: {:.3} s, {} lines, {} transactions",
            elapsed.as_secs_f64(),
            st.lines.len(),
            counted
        );
    }
    let id = store.list_statements(Some(partner.id)).await.unwrap()[0].id;
    let started = Instant::now();
    let outcome = store
        .finalise_statement(id, Timestamp::now())
        .await
        .unwrap();
    assert!(
        matches!(outcome, FinaliseOutcome::Finalised(_)),
        "{outcome:?}"
    );
    println!(
        "finalise (recompute and compare): {:.3} s",
        started.elapsed().as_secs_f64()
    );
}

/// Inserts `rows` SUCCESS transactions of the month starting at `from` in one transaction,
/// plus the earlier charges the adjustment refunds point to.
fn fill(path: &str, partner_id: i64, from: i64, rows: usize) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status, customer,
                     customer_kind, csp_id, account_key, amount_minor, currency, description, product_code,
                     tax_included, original_id, processing_until, next_check_at, created_at, updated_at)
                 VALUES (?1, ?2, ?1, 'fp', ?3, 'SUCCESS', ?4, 'msisdn', 'uk', ?4, ?5, ?6, 'bench', ?7, ?8, ?9, 0, 0, ?10, ?10)",
            )
            .unwrap();
        let currencies = ["GBP", "EUR", "JPY"];
        let month_ms = 30 * DAY_MS;
        let step = (month_ms / i64::try_from(rows.max(1)).unwrap()).max(1);
        // Earlier charges (the previous month) for a third of the refunds to point at.
        let earlier = rows / 30;
        for i in 0..earlier {
            let at = from - DAY_MS + i64::try_from(i).unwrap();
            let id = format!("o{i}");
            let product = format!("P{}", i % 8);
            insert
                .execute(rusqlite::params![
                    id,
                    partner_id,
                    "CHARGE",
                    format!("+4477009{:05}", i % 100_000),
                    499_i64,
                    currencies[i % 3],
                    product,
                    (i % 2) as i64,
                    None::<String>,
                    at
                ])
                .unwrap();
        }
        for i in 0..rows {
            let at = from + i64::try_from(i).unwrap() * step;
            let currency = currencies[i % 3];
            let product = format!("P{}", i % 8);
            let taxed = (i % 2) as i64;
            let (id, kind, original, amount) = if i % 10 == 9 {
                // A refund: of the previous charge in this month, or of a previous month's charge.
                let original = if i % 30 == 29 && earlier > 0 {
                    format!("o{}", (i / 30) % earlier)
                } else {
                    format!("t{}", i - 1)
                };
                (format!("t{i}"), "REFUND", Some(original), 100_i64)
            } else {
                (
                    format!("t{i}"),
                    "CHARGE",
                    None,
                    199 + i64::try_from(i % 1000).unwrap(),
                )
            };
            insert
                .execute(rusqlite::params![
                    id,
                    partner_id,
                    kind,
                    format!("+4477009{:05}", i % 100_000),
                    amount,
                    currency,
                    product,
                    taxed,
                    original,
                    at
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    // The query planner's statistics, as a long-running database would have them.
    conn.execute_batch("ANALYZE").unwrap();
}
