//! The database's own guards, checked with SQL from outside the store: whatever code runs
//! against the database, a final transaction keeps its state and amount, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dcbhub_domain::{ApiKey, ConsentPolicy, PartnerCode, Timestamp};
use dcbhub_store::{BeginOutcome, NewPartner, NewTransaction, Settlement, Store, TxType};
use sqlx::Connection;

async fn final_and_pending(store: &dyn Store) -> (String, String) {
    let key = ApiKey::generate();
    let p = store
        .create_partner(NewPartner {
            code: PartnerCode::parse("NFLX").unwrap(),
            name: "NFLX Ltd".into(),
            consent: ConsentPolicy::None,
            receipts_enabled: false,
            first_key_id: "key_guards".into(),
            first_key_hash: key.hash(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for ext in ["final", "pending"] {
        let new = NewTransaction {
            id: dcbhub_domain::TransactionId::generate().as_str().to_owned(),
            partner_id: p.id,
            ext_transaction_id: ext.into(),
            fingerprint: "f".into(),
            tx_type: TxType::Charge,
            customer: "+447700900100".into(),
            customer_kind: "msisdn".into(),
            csp_id: "sandbox".into(),
            account_key: "sandbox:447700900100".into(),
            amount_minor: 499,
            currency: "GBP".into(),
            description: "Premium".into(),
            product_code: None,
            tax_included: true,
            original_id: None,
            consume_pin: None,
            limits: None,
            processing_until: Timestamp::now(),
        };
        let BeginOutcome::Created(r) = store.begin_transaction(new).await.unwrap() else {
            panic!()
        };
        ids.push(r.id);
    }
    store
        .settle_transaction(
            &ids[0],
            Settlement::Success {
                csp_reference: "c".into(),
            },
            None,
        )
        .await
        .unwrap();
    (ids[0].clone(), ids[1].clone())
}

const CHANGES: [&str; 3] = [
    "UPDATE transactions SET status = 'FAILED' WHERE id = $1",
    "UPDATE transactions SET amount_minor = 1 WHERE id = $1",
    "UPDATE transactions SET customer = '+447700900101' WHERE id = $1",
];

#[tokio::test]
async fn sqlite_keeps_final_transactions_final() {
    let (_dir, url) = dcbhub_store::testing::sqlite_url().unwrap();
    let store = dcbhub_store::open(&url, true).await.unwrap();
    let (done, pending) = final_and_pending(store.as_ref()).await;
    let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap();
    for sql in CHANGES {
        let sql = sql.replace("$1", "?1");
        let err = conn.execute(&sql, [&done]).unwrap_err();
        assert!(
            err.to_string()
                .contains("final transaction state cannot change"),
            "{sql}: {err}"
        );
    }
    conn.execute(
        "UPDATE transactions SET refunded_minor = 100 WHERE id = ?1",
        [&done],
    )
    .unwrap();
    conn.execute(
        "UPDATE transactions SET status = 'FAILED' WHERE id = ?1",
        [&pending],
    )
    .unwrap();
}

/// A fresh PostgreSQL database with `final_and_pending`'s rows, and a connection of its own
/// (`None` without a PostgreSQL server).
async fn postgres_with_rows(name: &str) -> Option<(sqlx::PgConnection, String, String)> {
    let url = dcbhub_store::testing::postgres_url(name).await?;
    let store = dcbhub_store::open(&url, true).await.unwrap();
    let (done, pending) = final_and_pending(store.as_ref()).await;
    let conn = sqlx::PgConnection::connect(&url).await.unwrap();
    Some((conn, done, pending))
}

#[tokio::test]
async fn postgres_keeps_final_transactions_final() {
    let Some((mut conn, done, pending)) = postgres_with_rows("guards").await else {
        return;
    };
    for sql in CHANGES {
        let err = sqlx::query(sql)
            .bind(&done)
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("final transaction state cannot change"),
            "{sql}: {err}"
        );
    }
    sqlx::query("UPDATE transactions SET refunded_minor = 100 WHERE id = $1")
        .bind(&done)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE transactions SET status = 'FAILED' WHERE id = $1")
        .bind(&pending)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// The tables written with every request have no foreign key to their partner on
/// PostgreSQL (migration 0007); partners are kept by a trigger instead.
#[tokio::test]
async fn postgres_never_deletes_or_renumbers_partners() {
    let Some((mut conn, done, _)) = postgres_with_rows("guards_partners").await else {
        return;
    };
    let partner: i64 = sqlx::query_scalar("SELECT partner_id FROM transactions WHERE id = $1")
        .bind(&done)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    for sql in [
        "DELETE FROM partners WHERE id = $1",
        "UPDATE partners SET id = id + 1000 WHERE id = $1",
    ] {
        let err = sqlx::query(sql)
            .bind(partner)
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never deleted"), "{sql}: {err}");
    }
    let err = sqlx::query("TRUNCATE partners CASCADE")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never deleted"), "{err}");
    sqlx::query("UPDATE partners SET status = 'suspended' WHERE id = $1")
        .bind(partner)
        .execute(&mut conn)
        .await
        .unwrap();
}
