//! The database's own guards, checked with SQL from outside the store: whatever code runs
//! against the database, a final transaction keeps its state and amount, on both backends;
//! on PostgreSQL, the functions that write answered charges keep their answers.
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

/// One call of migration 0008's group write for a single answered charge without a receipt,
/// counted against generous limits from day 0.
async fn write_answered(conn: &mut sqlx::PgConnection, id: &str, ext: &str) -> Vec<i16> {
    sqlx::query_scalar(
        "SELECT dcbhub_write_answered_charges(
             ARRAY[$1::TEXT], ARRAY[1::BIGINT], ARRAY[$2::TEXT], ARRAY['fp'], ARRAY['SUCCESS'],
             ARRAY['+447700900100'], ARRAY['msisdn'], ARRAY['sandbox'], ARRAY['sandbox:447700900100'],
             ARRAY[499::BIGINT], ARRAY['GBP'], ARRAY['Premium'], ARRAY[NULL::TEXT], ARRAY[TRUE],
             ARRAY[NULL::TEXT], ARRAY[0::BIGINT], ARRAY[0::BIGINT], ARRAY[0::BIGINT], ARRAY['ref'],
             ARRAY[NULL::TEXT],
             ARRAY[1000::BIGINT], ARRAY[10000::BIGINT], ARRAY[10000::BIGINT], ARRAY[0::BIGINT],
             ARRAY[0::BIGINT],
             ARRAY[NULL::TEXT], ARRAY[NULL::TEXT], ARRAY[NULL::TEXT], ARRAY[NULL::TEXT],
             ARRAY[NULL::TEXT], ARRAY[NULL::TEXT], ARRAY[NULL::TEXT], ARRAY[NULL::TEXT],
             ARRAY[NULL::TEXT], ARRAY[NULL::TEXT], ARRAY[NULL::TEXT], ARRAY[NULL::TEXT],
             ARRAY[NULL::INTEGER], ARRAY[NULL::BIGINT], ARRAY[NULL::TEXT])",
    )
    .bind(id)
    .bind(ext)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// A group write repeated after its commit (its answer lost on the way, the store writing the
/// charges again one by one) finds each charge's own row and answers it as written, counted
/// once; a row of another id under the same `extTransactionID` is a twin.
#[tokio::test]
async fn postgres_answers_a_repeated_group_write_as_written_once() {
    let Some(url) = dcbhub_store::testing::postgres_url("repeated_group_write").await else {
        return;
    };
    dcbhub_store::open(&url, true).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    assert_eq!(write_answered(&mut conn, "tx_a", "e1").await, vec![0]);
    assert_eq!(write_answered(&mut conn, "tx_a", "e1").await, vec![0]);
    assert_eq!(write_answered(&mut conn, "tx_b", "e1").await, vec![1]);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE ext_transaction_id = 'e1'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, 1);
    let counted: i64 = sqlx::query_scalar("SELECT total FROM spending_days")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(counted, 499, "the repeated write counted nothing");
}

/// Migration 0007's one-charge function, still called by instances of the previous build
/// during a rolling upgrade, answers as it did: FALSE written, TRUE a twin, DCB01 over a limit.
#[tokio::test]
async fn postgres_keeps_the_previous_builds_charge_function() {
    let Some(url) = dcbhub_store::testing::postgres_url("previous_charge_function").await else {
        return;
    };
    dcbhub_store::open(&url, true).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let write = |id: &'static str, ext: &'static str, amount: i64| {
        sqlx::query_scalar::<_, bool>(
            "SELECT dcbhub_write_answered_charge($1, 1, $2, 'fp', 'SUCCESS', '+447700900100',
                 'msisdn', 'sandbox', 'sandbox:447700900100', $3, 'GBP', 'Premium', NULL, TRUE,
                 NULL, 0, 0, 0, 'ref', NULL, 1000, 1000, 1000, 0, 0,
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, NULL)",
        )
        .bind(id)
        .bind(ext)
        .bind(amount)
    };
    assert!(!write("tx_a", "e1", 600).fetch_one(&mut conn).await.unwrap());
    assert!(write("tx_b", "e1", 600).fetch_one(&mut conn).await.unwrap());
    let over = write("tx_c", "e2", 600)
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    let code = over.as_database_error().and_then(|d| d.code()).unwrap();
    assert_eq!(code, "DCB01", "600 + 600 is over the day's 1000");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1, "neither the twin nor the refusal left a row");
}
