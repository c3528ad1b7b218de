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

/// One call of the group write for a single answered charge of 499 without a receipt, counted
/// against generous limits from day 0.
async fn write_answered(conn: &mut sqlx::PgConnection, id: &str, ext: &str) -> Vec<i16> {
    let charge = Answered {
        day_start: Some(0),
        ..Answered::new(id, ext)
    };
    write_group(conn, "dcbhub_write_answered_charges", &[charge]).await
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

/// One charge of a group, as the store hands it to the group functions.
struct Answered {
    id: String,
    ext: String,
    account: String,
    amount: i64,
    status: &'static str,
    day_start: Option<i64>,
    pin: Option<String>,
    receipt: bool,
}

impl Answered {
    /// A successful charge of 499 to one account, without limits, PIN or receipt.
    fn new(id: &str, ext: &str) -> Self {
        Self {
            id: id.into(),
            ext: ext.into(),
            account: "sandbox:447700900100".into(),
            amount: 499,
            status: "SUCCESS",
            day_start: None,
            pin: None,
            receipt: false,
        }
    }
}

/// One call of `function` (the group write or migration 0008's loop) for `group`, with the
/// limits of 500 a charge, 2,000 a day and 40,000 a month for its limited charges.
async fn write_group(
    conn: &mut sqlx::PgConnection,
    function: &str,
    group: &[Answered],
) -> Vec<i16> {
    let texts = |f: &dyn Fn(&Answered) -> Option<String>| group.iter().map(f).collect::<Vec<_>>();
    let ints = |f: &dyn Fn(&Answered) -> Option<i64>| group.iter().map(f).collect::<Vec<_>>();
    let receipt = |a: &Answered, v: &str| a.receipt.then(|| v.to_owned());
    let sql = format!(
        "SELECT {function}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
             $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33,
             $34, $35, $36, $37, $38, $39, $40)"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(texts(&|a| Some(a.id.clone())))
        .bind(ints(&|_| Some(1)))
        .bind(texts(&|a| Some(a.ext.clone())))
        .bind(texts(&|_| Some("fp".into())))
        .bind(texts(&|a| Some(a.status.into())))
        .bind(texts(&|_| Some("+447700900100".into())))
        .bind(texts(&|_| Some("msisdn".into())))
        .bind(texts(&|_| Some("sandbox".into())))
        .bind(texts(&|a| Some(a.account.clone())))
        .bind(ints(&|a| Some(a.amount)))
        .bind(texts(&|_| Some("GBP".into())))
        .bind(texts(&|_| Some("Premium".into())))
        .bind(texts(&|_| None))
        .bind(group.iter().map(|_| true).collect::<Vec<_>>())
        .bind(texts(&|a| a.pin.clone()))
        .bind(ints(&|_| Some(0)))
        .bind(ints(&|_| Some(0)))
        .bind(ints(&|_| Some(5)))
        .bind(texts(&|a| {
            (a.status == "SUCCESS").then(|| format!("ref-{}", a.id))
        }))
        .bind(texts(&|a| {
            (a.status == "FAILED").then(|| "DECLINED".to_owned())
        }))
        .bind(ints(&|a| a.day_start.map(|_| 500)))
        .bind(ints(&|a| a.day_start.map(|_| 2_000)))
        .bind(ints(&|a| a.day_start.map(|_| 40_000)))
        .bind(ints(&|a| a.day_start))
        .bind(ints(&|a| a.day_start.map(|_| 0)))
        .bind(texts(&|a| a.receipt.then(|| format!("ntf_{}", a.id))))
        .bind(texts(&|a| receipt(a, "+447700900100")))
        .bind(texts(&|a| receipt(a, "msisdn")))
        .bind(texts(&|a| receipt(a, "sandbox")))
        .bind(texts(&|a| receipt(a, "sandbox")))
        .bind(texts(&|a| receipt(a, "RECEIPT")))
        .bind(texts(&|a| receipt(a, "Thanks")))
        .bind(texts(&|a| receipt(a, "Thanks")))
        .bind(texts(&|_| None))
        .bind(texts(&|a| a.receipt.then(|| a.ext.clone())))
        .bind(texts(&|a| receipt(a, "en")))
        .bind(texts(&|a| receipt(a, "SENT")))
        .bind(
            group
                .iter()
                .map(|a| a.receipt.then_some(1_i32))
                .collect::<Vec<_>>(),
        )
        .bind(ints(&|a| a.receipt.then_some(0)))
        .bind(texts(&|a| receipt(a, "NFLX")))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Every row the group functions write, in a comparable order.
async fn written(
    conn: &mut sqlx::PgConnection,
) -> (
    Vec<(String, String, Option<i64>)>,
    Vec<(String, i64, i64)>,
    Vec<String>,
) {
    let tx = sqlx::query_as("SELECT id, status, spend_day FROM transactions ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let days =
        sqlx::query_as("SELECT account_key, day_start, total FROM spending_days ORDER BY 1, 2")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let receipts = sqlx::query_scalar("SELECT id FROM notifications ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    (tx, days, receipts)
}

/// The set-based group write (migrations 0009, 0010) answers every group as migration 0008's loop
/// does, and leaves the same rows, day totals and receipts: 300 groups drawn from a seeded
/// generator over three accounts with tight limits, so that groups within their limits (the
/// set-based write) and groups with refusals (of the day and of the month), declines, twins
/// inside a group and of earlier groups, two day starts and PINs (the loop) all occur.
#[tokio::test]
async fn postgres_writes_a_group_set_based_exactly_as_the_loop_would() {
    let (Some(set_url), Some(loop_url)) = (
        dcbhub_store::testing::postgres_url("set_based_group").await,
        dcbhub_store::testing::postgres_url("looped_group").await,
    ) else {
        return;
    };
    dcbhub_store::open(&set_url, true).await.unwrap();
    dcbhub_store::open(&loop_url, true).await.unwrap();
    let mut set_based = sqlx::PgConnection::connect(&set_url).await.unwrap();
    let mut looped = sqlx::PgConnection::connect(&loop_url).await.unwrap();
    // A fixed linear congruential generator: the same groups on every run.
    let mut seed: u64 = 0x5eed;
    let mut draw = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let (mut all_written, mut next) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..300 {
        let mut group = Vec::new();
        for _ in 0..=draw(8) {
            next += 1;
            let ext = match draw(20) {
                0 if next > 1 => format!("e{}", draw(next - 1) + 1),
                _ => format!("e{next}"),
            };
            // A new day every ten groups; the month's limit is reached on the twentieth.
            let day = 86_400_000 * (1 + round / 10);
            group.push(Answered {
                id: format!("tx_{next:05}"),
                ext,
                account: format!("sandbox:{}", draw(3)),
                amount: 1 + i64::try_from(draw(450)).unwrap(),
                status: if draw(10) == 0 { "FAILED" } else { "SUCCESS" },
                day_start: match draw(30) {
                    0 => None,
                    1 => Some(day + 86_400_000),
                    _ => Some(day),
                },
                pin: (draw(40) == 0).then(|| format!("pin_{next}")),
                receipt: draw(2) == 0,
            });
        }
        group.sort_by(|a, b| a.account.cmp(&b.account));
        let codes = write_group(&mut set_based, "dcbhub_write_answered_charges", &group).await;
        let expected = write_group(&mut looped, "dcbhub_write_answered_charges_each", &group).await;
        assert_eq!(codes, expected, "round {round}");
        seen.extend(codes.iter().copied());
        if group.len() > 1 && codes.iter().all(|&c| c == 0) {
            all_written += 1;
        }
    }
    assert!(
        all_written > 30,
        "only {all_written} groups were written whole"
    );
    assert!(
        written(&mut looped)
            .await
            .0
            .iter()
            .any(|(_, s, _)| s == "FAILED"),
        "declines occur"
    );
    assert_eq!(written(&mut set_based).await, written(&mut looped).await);
}

/// A group write repeated while its first call is still committing (the connection lost, the
/// store writing again while the server still runs the first call) waits for that commit,
/// answers every charge as written, and leaves the first call's rows and receipts as they are.
/// Its insert finds the keys taken after its twin check: it must then take back only the rows
/// it inserted itself, not the first call's (whose receipts the loop would write again).
#[tokio::test]
async fn postgres_answers_a_group_repeated_during_its_first_commit_as_written() {
    let Some(url) = dcbhub_store::testing::postgres_url("group_repeated_during_commit").await
    else {
        return;
    };
    dcbhub_store::open(&url, true).await.unwrap();
    let group = || {
        ["a", "b"].map(|n| Answered {
            receipt: true,
            ..Answered::new(&format!("tx_{n}"), &format!("e_{n}"))
        })
    };
    let mut first = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut second = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut watch = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut first).await.unwrap();
    let function = "dcbhub_write_answered_charges";
    assert_eq!(write_group(&mut first, function, &group()).await, [0, 0]);
    let repeat = tokio::spawn(async move { write_group(&mut second, function, &group()).await });
    let mut waits = 0;
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_locks WHERE NOT granted")
        .fetch_one(&mut watch)
        .await
        .unwrap()
        == 0
    {
        waits += 1;
        assert!(waits < 500, "the repeated write never waited for the first");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut first).await.unwrap();
    assert_eq!(repeat.await.unwrap(), [0, 0]);
    let (tx, _, receipts) = written(&mut watch).await;
    assert_eq!((tx.len(), receipts.len()), (2, 2));
}
