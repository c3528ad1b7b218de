//! Migrations that move data, run on a database holding rows (SQLite's twin is a unit test of
//! `sqlite`): 0006 fills the spending-limit day totals from the charges already written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::{Connection, Row};

const BEFORE_0006: [&str; 5] = [
    include_str!("../migrations/postgres/0001_partners.sql"),
    include_str!("../migrations/postgres/0002_notifications.sql"),
    include_str!("../migrations/postgres/0003_pins.sql"),
    include_str!("../migrations/postgres/0004_transactions.sql"),
    include_str!("../migrations/postgres/0005_settlement.sql"),
];
const SPENDING: &str = include_str!("../migrations/postgres/0006_spending.sql");
const DAY: i64 = 86_400_000;

#[tokio::test]
async fn postgres_spending_migration_counts_the_last_month_of_charges_by_utc_day() {
    let Some(url) = dcbhub_store::testing::postgres_url("migration_0006").await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in BEFORE_0006 {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO partners (code, name, status, consent_policy, created_at, updated_at)
         VALUES ('NFLX', 'NFLX Ltd', 'active', 'none', 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let now = dcbhub_domain::Timestamp::now().unix_millis();
    let today = now - now % DAY;
    for (id, account, amount, status, at) in [
        ("tx_a", "sandbox:1", 100, "SUCCESS", today + 1),
        ("tx_b", "sandbox:1", 200, "PENDING", today + 2),
        ("tx_c", "sandbox:1", 400, "FAILED", today + 3),
        ("tx_d", "sandbox:1", 800, "SUCCESS", today - DAY + 5),
        ("tx_e", "sandbox:1", 1600, "SUCCESS", today - 40 * DAY),
        ("tx_f", "sandbox:2", 3200, "SUCCESS", today + 4),
    ] {
        sqlx::query(
            "INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status,
                 customer, customer_kind, csp_id, account_key, amount_minor, currency, description,
                 tax_included, processing_until, next_check_at, created_at, updated_at)
             SELECT $1, id, $1, 'f', 'CHARGE', $2, '+447700900100', 'msisdn', 'sandbox', $3, $4,
                 'GBP', 'd', TRUE, $5, $5, $5, $5 FROM partners",
        )
        .bind(id)
        .bind(status)
        .bind(account)
        .bind(amount)
        .bind(at)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::raw_sql(SPENDING).execute(&mut conn).await.unwrap();
    let days: Vec<(String, i64, i64)> =
        sqlx::query("SELECT account_key, day_start, total FROM spending_days ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    assert_eq!(
        days,
        [
            ("sandbox:1".to_owned(), today - DAY, 800),
            ("sandbox:1".to_owned(), today, 300),
            ("sandbox:2".to_owned(), today, 3200),
        ],
        "the failed and the 40-day-old charge do not count"
    );
    let failed: Option<i64> =
        sqlx::query_scalar("SELECT spend_day FROM transactions WHERE id = 'tx_c'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(failed, None);
}
