//! One contract suite for every store backend: each test below runs on SQLite and on
//! PostgreSQL (skipped, and said so, when no PostgreSQL answers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dcbhub_domain::{
    ApiKey, ConsentPolicy, Customer, Msisdn, NotificationId, PartnerCode, PartnerStatus, Timestamp,
};
use dcbhub_store::{
    BeginOutcome, ChargedInline, DeliveryResult, EnqueueOutcome, InlineAnswer, InlineCsp,
    NewNotification, NewPartner, NewPin, NewTransaction, NotificationStatus, PinBinding,
    PinCheckOutcome, PinSendOutcome, PinSendPolicy, PinStatus, Receipt, Settlement, SpendingLimits,
    Store, StoreError, TransactionQuery, TransactionRecord, TxStatus, TxType,
};

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, url) = dcbhub_store::testing::sqlite_url().unwrap();
                    let store = dcbhub_store::open(&url, true).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = dcbhub_store::testing::postgres_url(stringify!($name)).await else { return };
                    let store = dcbhub_store::open(&url, true).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
    };
}

contract!(
    migrations_are_applied_and_idempotent,
    partners_are_created_listed_and_unique,
    concurrent_creates_of_one_code_make_one_partner,
    suspension_and_resumption,
    keys_authenticate_until_revoked,
    config_version_grows_with_every_change,
    outbox_enqueue_rate_limit_and_read,
    outbox_leases_are_exclusive_and_complete_once,
    receipts_written_leased_wait_for_their_lease,
    pin_attempts_are_counted_atomically,
    pin_resend_rules_and_account_cap,
    transactions_are_idempotent_and_final,
    parallel_charges_never_pass_a_limit_together,
    parallel_refunds_never_exceed_the_original,
    consent_is_used_once_and_given_back_on_abandon,
    reconciler_leases_and_care_search,
    inline_charges_commit_with_their_answer,
    inline_unavailable_writes_nothing_and_keeps_the_consent,
    parallel_inline_charges_never_pass_a_limit_together,
    a_bad_charge_among_parallel_ones_fails_alone,
    spending_totals_follow_the_charges,
);

fn code(s: &str) -> PartnerCode {
    PartnerCode::parse(s).unwrap()
}

fn new_partner(c: &str, key: &ApiKey) -> NewPartner {
    NewPartner {
        code: code(c),
        name: format!("{c} Ltd"),
        consent: ConsentPolicy::Pin,
        receipts_enabled: true,
        first_key_id: format!("key_{}", &key.hash().as_str()[..16]),
        first_key_hash: key.hash(),
    }
}

async fn migrations_are_applied_and_idempotent(store: Arc<dyn Store>) {
    store.ready().await.unwrap();
    assert!(matches!(store.backend(), "sqlite" | "postgres"));
}

async fn partners_are_created_listed_and_unique(store: Arc<dyn Store>) {
    let key = ApiKey::generate();
    let created = store
        .create_partner(new_partner("NFLX", &key))
        .await
        .unwrap();
    assert_eq!(created.code, code("NFLX"));
    assert_eq!(created.name, "NFLX Ltd");
    assert_eq!(created.status, PartnerStatus::Active);
    assert_eq!(created.consent, ConsentPolicy::Pin);
    assert!(created.receipts_enabled);

    let dup = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");

    let other = ApiKey::generate();
    let mut none = new_partner("SPOT", &other);
    none.consent = ConsentPolicy::None;
    none.receipts_enabled = false;
    store.create_partner(none).await.unwrap();

    let all = store.list_partners().await.unwrap();
    let codes: Vec<_> = all.iter().map(|p| p.code.as_str().to_owned()).collect();
    assert_eq!(codes, ["NFLX", "SPOT"]);
    let spot = store.partner_by_code(&code("SPOT")).await.unwrap().unwrap();
    assert_eq!(spot.consent, ConsentPolicy::None);
    assert!(!spot.receipts_enabled);
    assert_eq!(store.partner_by_code(&code("NOPE")).await.unwrap(), None);
}

async fn concurrent_creates_of_one_code_make_one_partner(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_partner(new_partner("RACE", &ApiKey::generate()))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.list_partners().await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(&code("RACE")).await.unwrap().len(), 1);
}

async fn suspension_and_resumption(store: Arc<dyn Store>) {
    let key = ApiKey::generate();
    store
        .create_partner(new_partner("NFLX", &key))
        .await
        .unwrap();
    let suspended = store
        .set_partner_status(&code("NFLX"), PartnerStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(suspended.status, PartnerStatus::Suspended);
    // A suspended partner's key still resolves: the edge answers 403, not 401.
    let auth = store.find_api_key(&key.hash()).await.unwrap().unwrap();
    assert_eq!(auth.partner.status, PartnerStatus::Suspended);
    let resumed = store
        .set_partner_status(&code("NFLX"), PartnerStatus::Active)
        .await
        .unwrap();
    assert_eq!(resumed.status, PartnerStatus::Active);
    let missing = store
        .set_partner_status(&code("NOPE"), PartnerStatus::Active)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

async fn keys_authenticate_until_revoked(store: Arc<dyn Store>) {
    let first = ApiKey::generate();
    store
        .create_partner(new_partner("NFLX", &first))
        .await
        .unwrap();
    let second = ApiKey::generate();
    let rec = store
        .create_api_key(&code("NFLX"), "key_second", &second.hash())
        .await
        .unwrap();
    assert_eq!(rec.id, "key_second");
    assert_eq!(rec.revoked_at, None);

    for k in [&first, &second] {
        let auth = store.find_api_key(&k.hash()).await.unwrap().unwrap();
        assert_eq!(auth.partner.code, code("NFLX"));
    }
    assert_eq!(
        store
            .find_api_key(&ApiKey::generate().hash())
            .await
            .unwrap(),
        None
    );

    let revoked = store
        .revoke_api_key(&code("NFLX"), "key_second")
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.find_api_key(&second.hash()).await.unwrap(), None);
    assert!(store.find_api_key(&first.hash()).await.unwrap().is_some());
    // Revoking twice, or another partner's key, finds nothing.
    assert!(matches!(
        store.revoke_api_key(&code("NFLX"), "key_second").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .create_api_key(&code("NOPE"), "key_x", &ApiKey::generate().hash())
            .await,
        Err(StoreError::NotFound)
    ));
    let keys = store.list_api_keys(&code("NFLX")).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.revoked_at.is_some()).count(), 1);
}

async fn config_version_grows_with_every_change(store: Arc<dyn Store>) {
    let v0 = store.config_version().await.unwrap();
    store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let v1 = store.config_version().await.unwrap();
    store
        .set_partner_status(&code("NFLX"), PartnerStatus::Suspended)
        .await
        .unwrap();
    let v2 = store.config_version().await.unwrap();
    store
        .create_api_key(&code("NFLX"), "key_b", &ApiKey::generate().hash())
        .await
        .unwrap();
    let v3 = store.config_version().await.unwrap();
    store.revoke_api_key(&code("NFLX"), "key_b").await.unwrap();
    let v4 = store.config_version().await.unwrap();
    assert!(
        v0 < v1 && v1 < v2 && v2 < v3 && v3 < v4,
        "{v0} {v1} {v2} {v3} {v4}"
    );
}

fn note(partner_id: i64, to: &str, text: &str) -> NewNotification {
    NewNotification {
        id: NotificationId::generate(),
        partner_id,
        partner_code: "NFLX".into(),
        recipient: Customer::Msisdn(Msisdn::parse(to).unwrap()),
        csp_id: "sandbox".into(),
        channel: "sandbox".into(),
        kind: "PIN".into(),
        text: text.into(),
        redacted_text: Some("Your PIN is ******".into()),
        subject: None,
        ext_transaction_id: None,
        locale: None,
        leased_until: None,
    }
}

async fn outbox_enqueue_rate_limit_and_read(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let q = store
        .create_partner(new_partner("SPOT", &ApiKey::generate()))
        .await
        .unwrap();
    for i in 0..3 {
        let out = store
            .enqueue_notification(note(p.id, "+447700900000", &format!("m{i}")), Some(3))
            .await
            .unwrap();
        assert!(
            matches!(out, EnqueueOutcome::Queued(ref r) if r.status == NotificationStatus::Queued && r.attempts == 0)
        );
    }
    let limited = store
        .enqueue_notification(note(p.id, "+447700900000", "m4"), Some(3))
        .await
        .unwrap();
    match limited {
        EnqueueOutcome::RateLimited { retry_after_secs } => {
            assert!((3500..=3600).contains(&retry_after_secs))
        }
        other => panic!("{other:?}"),
    }
    // Other recipients and other partners have their own budget.
    assert!(matches!(
        store
            .enqueue_notification(note(p.id, "+447700900001", "x"), Some(3))
            .await
            .unwrap(),
        EnqueueOutcome::Queued(_)
    ));
    // The hub's receipts do not count against what the partner may send.
    for i in 0..3 {
        let receipt = NewNotification {
            kind: "RECEIPT".into(),
            ..note(p.id, "+447700900002", "Receipt")
        };
        let ChargedInline::Written(_) = store
            .begin_inline(
                charge(p.id, &format!("r{i}"), "447700900002", 100),
                Box::new(|| success("c")),
                Some(receipt),
            )
            .await
            .unwrap()
        else {
            panic!()
        };
    }
    assert!(matches!(
        store
            .enqueue_notification(note(p.id, "+447700900002", "x"), Some(3))
            .await
            .unwrap(),
        EnqueueOutcome::Queued(_)
    ));
    let EnqueueOutcome::Queued(theirs) = store
        .enqueue_notification(note(q.id, "+447700900000", "x"), Some(3))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(
        store
            .notification(q.id, &theirs.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.notification(p.id, &theirs.id).await.unwrap(),
        None,
        "another partner's id is not found"
    );
    let (depth, oldest) = store
        .outbox_depth(Timestamp::now().plus_millis(1))
        .await
        .unwrap();
    assert_eq!(
        depth, 9,
        "3 + 1 + 1 messages, 3 receipts and 1 more message queued"
    );
    assert!(oldest.is_some());
}

/// A receipt its instance delivers itself is written leased: no worker takes it while the
/// lease runs, its delivery completes as attempt 1, and a lapsed lease frees it for anyone.
async fn receipts_written_leased_wait_for_their_lease(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let now = Timestamp::now();
    let mut settled = Vec::new();
    for ext in ["a", "b"] {
        let BeginOutcome::Created(tx) = store
            .begin_transaction(charge(p.id, ext, "447700900000", 100))
            .await
            .unwrap()
        else {
            panic!()
        };
        let receipt = NewNotification {
            leased_until: Some(now.plus_millis(60_000)),
            ..note(p.id, "+447700900000", "Receipt")
        };
        let expected = receipt.to_record(now);
        let done = store
            .settle_transaction(
                &tx.id,
                Settlement::Success {
                    csp_reference: "c".into(),
                },
                Some(receipt),
            )
            .await
            .unwrap();
        assert!(done.moved);
        assert_eq!(
            (expected.attempts, expected.next_attempt_at),
            (1, now.plus_millis(60_000))
        );
        settled.push(expected);
    }
    assert!(
        store
            .lease_notifications(now.plus_millis(59_000), 10, 30_000)
            .await
            .unwrap()
            .is_empty(),
        "leased to the instance that wrote them"
    );
    assert!(
        store
            .complete_notification(&settled[0].id, 1, DeliveryResult::Sent)
            .await
            .unwrap()
    );
    let lapsed = store
        .lease_notifications(now.plus_millis(61_000), 10, 30_000)
        .await
        .unwrap();
    assert_eq!(
        lapsed
            .iter()
            .map(|n| (n.id.as_str(), n.attempts))
            .collect::<Vec<_>>(),
        vec![(settled[1].id.as_str(), 2)],
        "only the undelivered one, as its second attempt"
    );
    assert!(
        !store
            .complete_notification(&settled[1].id, 1, DeliveryResult::Sent)
            .await
            .unwrap(),
        "the first holder's lease is gone"
    );
}

async fn outbox_leases_are_exclusive_and_complete_once(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    for i in 0..40 {
        store
            .enqueue_notification(
                note(p.id, &format!("+4477009001{i:02}"), "Your PIN is 123456"),
                None,
            )
            .await
            .unwrap();
    }
    let now = Timestamp::now().plus_millis(5);
    let leasers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.lease_notifications(now, 15, 30_000).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for l in leasers {
        ids.extend(l.await.unwrap().into_iter().map(|n| (n.id, n.attempts)));
    }
    assert_eq!(ids.len(), 40);
    let mut unique: Vec<_> = ids.iter().map(|(id, _)| id.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 40, "no message leased twice");
    assert!(ids.iter().all(|(_, a)| *a == 1));
    // Nothing more is due while the leases run.
    assert!(
        store
            .lease_notifications(now, 100, 30_000)
            .await
            .unwrap()
            .is_empty()
    );

    let (first, _) = &ids[0];
    assert!(
        store
            .complete_notification(first, 1, DeliveryResult::Sent)
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_notification(first, 1, DeliveryResult::Sent)
            .await
            .unwrap(),
        "completes once"
    );
    let sent = store.notification(p.id, first).await.unwrap().unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    assert!(
        !sent.text.contains("123456"),
        "the PIN is gone once sent: {}",
        sent.text
    );

    let (second, _) = &ids[1];
    let at = Timestamp::now().plus_millis(-1);
    assert!(
        store
            .complete_notification(
                second,
                1,
                DeliveryResult::Retry {
                    at,
                    error: "busy".into()
                }
            )
            .await
            .unwrap()
    );
    let again = store
        .lease_notifications(Timestamp::now(), 100, 30_000)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].attempts),
        (second.as_str(), 2)
    );
    assert!(
        !store
            .complete_notification(second, 1, DeliveryResult::Sent)
            .await
            .unwrap(),
        "a stale lease is ignored"
    );
    assert!(
        store
            .complete_notification(
                second,
                2,
                DeliveryResult::Failed {
                    error: "gone".into()
                }
            )
            .await
            .unwrap()
    );
    let failed = store.notification(p.id, second).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (NotificationStatus::Failed, Some("gone"))
    );

    // A lease that runs out makes the message due again.
    let (third, _) = &ids[2];
    let later = Timestamp::now().plus_millis(31_000);
    let expired = store.lease_notifications(later, 100, 30_000).await.unwrap();
    assert!(expired.iter().any(|n| &n.id == third && n.attempts == 2));
}

const POLICY: PinSendPolicy = PinSendPolicy {
    ttl_ms: 300_000,
    cooldown_ms: 30_000,
    max_sends: 3,
    max_per_account_per_hour: 5,
};

fn binding(account: &str) -> PinBinding {
    PinBinding {
        customer: format!("+{account}"),
        customer_kind: "msisdn".into(),
        csp_id: "sandbox".into(),
        account_key: format!("sandbox:{account}"),
        ext_transaction_id: None,
        amount_minor: Some(499),
        currency: Some("GBP".into()),
        description: Some("Premium".into()),
    }
}

async fn new_pin(
    store: &Arc<dyn Store>,
    partner_id: i64,
    account: &str,
    hash: &str,
) -> PinSendOutcome {
    let id = dcbhub_domain::PinId::generate().as_str().to_owned();
    store
        .create_pin(
            NewPin {
                id,
                partner_id,
                binding: binding(account),
                pin_hash: hash.into(),
                message: note(partner_id, &format!("+{account}"), "Your PIN is 123456"),
            },
            POLICY,
        )
        .await
        .unwrap()
}

async fn pin_attempts_are_counted_atomically(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let PinSendOutcome::Sent(pin) = new_pin(&store, p.id, "447700900000", "right").await else {
        panic!()
    };
    let guesses: Vec<_> = (0..50)
        .map(|_| {
            let (store, id) = (store.clone(), pin.id.clone());
            tokio::spawn(async move {
                store
                    .check_pin(p.id, &id, "wrong".into(), 3, 600_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut invalid = 0;
    let mut exceeded = 0;
    for g in guesses {
        match g.await.unwrap() {
            PinCheckOutcome::Invalid { .. } => invalid += 1,
            PinCheckOutcome::AttemptsExceeded => exceeded += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((invalid, exceeded), (3, 47));
    assert_eq!(store.pin(p.id, &pin.id).await.unwrap().unwrap().attempts, 3);
    assert_eq!(
        store
            .check_pin(p.id, &pin.id, "right".into(), 3, 600_000)
            .await
            .unwrap(),
        PinCheckOutcome::AttemptsExceeded
    );
    // Another partner cannot see or try it.
    let q = store
        .create_partner(new_partner("SPOT", &ApiKey::generate()))
        .await
        .unwrap();
    assert_eq!(
        store
            .check_pin(q.id, &pin.id, "right".into(), 3, 600_000)
            .await
            .unwrap(),
        PinCheckOutcome::NotFound
    );

    let PinSendOutcome::Sent(ok) = new_pin(&store, p.id, "447700900001", "right").await else {
        panic!()
    };
    assert_eq!(
        store
            .check_pin(p.id, &ok.id, "wrong".into(), 3, 600_000)
            .await
            .unwrap(),
        PinCheckOutcome::Invalid {
            attempts_remaining: 2
        }
    );
    let PinCheckOutcome::Valid(v) = store
        .check_pin(p.id, &ok.id, "right".into(), 3, 600_000)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(v.status, PinStatus::Validated);
    assert!(v.consent_expires_at.is_some());
    assert_eq!(
        store
            .check_pin(p.id, &ok.id, "right".into(), 3, 600_000)
            .await
            .unwrap(),
        PinCheckOutcome::AlreadyUsed
    );
}

async fn pin_resend_rules_and_account_cap(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let PinSendOutcome::Sent(pin) = new_pin(&store, p.id, "447700900000", "h1").await else {
        panic!()
    };
    let resend = |policy: PinSendPolicy, hash: &str| {
        let (store, id, hash) = (store.clone(), pin.id.clone(), hash.to_owned());
        async move {
            store
                .resend_pin(
                    p.id,
                    &id,
                    hash,
                    note(p.id, "+447700900000", "Your PIN is 654321"),
                    policy,
                )
                .await
                .unwrap()
        }
    };
    let too_soon = resend(POLICY, "h2").await;
    assert!(
        matches!(too_soon, PinSendOutcome::TooSoon { retry_after_secs } if (29..=30).contains(&retry_after_secs)),
        "{too_soon:?}"
    );
    let no_cooldown = PinSendPolicy {
        cooldown_ms: 0,
        ..POLICY
    };
    let PinSendOutcome::Sent(again) = resend(no_cooldown, "h2").await else {
        panic!()
    };
    assert_eq!((again.sends, again.pin_hash.as_str()), (2, "h2"));
    // The old code is dead.
    assert!(matches!(
        store
            .check_pin(p.id, &pin.id, "h1".into(), 3, 1)
            .await
            .unwrap(),
        PinCheckOutcome::Invalid { .. }
    ));
    assert!(matches!(
        resend(no_cooldown, "h3").await,
        PinSendOutcome::Sent(_)
    ));
    assert!(
        matches!(
            resend(no_cooldown, "h4").await,
            PinSendOutcome::SendLimit { .. }
        ),
        "3 sends per challenge"
    );
    assert_eq!(
        store.pin(p.id, &pin.id).await.unwrap().unwrap().attempts,
        1,
        "attempts survive resends"
    );
    // Per account: 5 sends an hour across partners (3 used above).
    let q = store
        .create_partner(new_partner("SPOT", &ApiKey::generate()))
        .await
        .unwrap();
    assert!(matches!(
        new_pin(&store, q.id, "447700900000", "x").await,
        PinSendOutcome::Sent(_)
    ));
    assert!(matches!(
        new_pin(&store, p.id, "447700900000", "y").await,
        PinSendOutcome::Sent(_)
    ));
    assert!(matches!(
        new_pin(&store, q.id, "447700900000", "z").await,
        PinSendOutcome::SendLimit { .. }
    ));
    assert!(matches!(
        new_pin(&store, q.id, "447700900009", "z").await,
        PinSendOutcome::Sent(_)
    ));
    assert_eq!(
        store
            .resend_pin(
                q.id,
                &pin.id,
                "h".into(),
                note(q.id, "+447700900000", "x"),
                no_cooldown
            )
            .await
            .unwrap(),
        PinSendOutcome::NotFound
    );
}

fn charge(partner_id: i64, ext: &str, account: &str, amount: i64) -> NewTransaction {
    NewTransaction {
        id: dcbhub_domain::TransactionId::generate().as_str().to_owned(),
        partner_id,
        ext_transaction_id: ext.into(),
        fingerprint: format!("fp-{ext}-{amount}"),
        tx_type: TxType::Charge,
        customer: format!("+{account}"),
        customer_kind: "msisdn".into(),
        csp_id: "sandbox".into(),
        account_key: format!("sandbox:{account}"),
        amount_minor: amount,
        currency: "GBP".into(),
        description: "Premium".into(),
        product_code: Some("PREMIUM-M".into()),
        tax_included: true,
        original_id: None,
        consume_pin: None,
        limits: None,
        processing_until: Timestamp::now().plus_millis(5_000),
    }
}

async fn transactions_are_idempotent_and_final(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .begin_transaction(charge(p.id, "ott-1", "447700900000", 499))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut existing = 0;
    for t in tasks {
        match t.await.unwrap() {
            BeginOutcome::Created(r) => created.push(r),
            BeginOutcome::Existing(_) => existing += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((created.len(), existing), (1, 19));
    let tx = &created[0];
    assert_eq!(
        (tx.status, tx.amount_minor, tx.refunded_minor),
        (TxStatus::Pending, 499, 0)
    );
    assert_eq!(
        store
            .transaction_by_ext(p.id, "ott-1")
            .await
            .unwrap()
            .as_ref(),
        Some(tx),
        "begin answers exactly the row it stored"
    );
    let receipt = note(p.id, "+447700900000", "Receipt");
    let done = store
        .settle_transaction(
            &tx.id,
            Settlement::Success {
                csp_reference: "csp-1".into(),
            },
            Some(receipt),
        )
        .await
        .unwrap();
    assert!(done.moved);
    let done = done.record;
    assert_eq!(
        (done.status, done.csp_reference.as_deref()),
        (TxStatus::Success, Some("csp-1"))
    );
    assert_eq!(
        store
            .transaction_by_ext(p.id, "ott-1")
            .await
            .unwrap()
            .as_ref(),
        Some(&done),
        "settle answers exactly the row it stored"
    );
    // A second settlement (a late CSP answer, the reconciler) changes nothing and queues nothing.
    let again = store
        .settle_transaction(
            &tx.id,
            Settlement::Failed {
                failure_code: "transaction-declined".into(),
            },
            Some(note(p.id, "+447700900000", "x")),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.record.status, again.moved),
        (TxStatus::Success, false)
    );
    let (depth, _) = store.outbox_depth(Timestamp::now()).await.unwrap();
    assert_eq!(depth, 1, "one receipt");
    // Another partner's identical id is its own transaction.
    let q = store
        .create_partner(new_partner("SPOT", &ApiKey::generate()))
        .await
        .unwrap();
    assert!(matches!(
        store
            .begin_transaction(charge(q.id, "ott-1", "447700900000", 499))
            .await
            .unwrap(),
        BeginOutcome::Created(_)
    ));
    assert_eq!(
        store
            .transaction_by_ext(p.id, "ott-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        tx.id
    );
    assert_eq!(store.transaction_by_ext(p.id, "ott-2").await.unwrap(), None);
}

/// Limits with the windows of today (UTC) and a month that began ten days ago, as the core
/// computes them: every charge of a day names the same day start.
fn limits(per_tx: i64, per_day: i64, per_month: i64) -> Option<SpendingLimits> {
    const DAY: i64 = 86_400_000;
    let now = Timestamp::now().unix_millis();
    let day_start = now - now % DAY;
    Some(SpendingLimits {
        per_transaction: per_tx,
        per_day,
        per_month,
        day_start: Timestamp::from_unix_millis(day_start),
        month_start: Timestamp::from_unix_millis(day_start - 10 * DAY),
    })
}

async fn parallel_charges_never_pass_a_limit_together(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_transaction(NewTransaction {
                limits: limits(4000, 10_000, 24_000),
                ..charge(p.id, "big", "447700900000", 4001)
            })
            .await
            .unwrap(),
        BeginOutcome::LimitExceeded
    );
    // 30 parallel charges of 10.00 against a 100.00 day: exactly 10 pass.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .begin_transaction(NewTransaction {
                        limits: limits(4000, 10_000, 24_000),
                        ..charge(p.id, &format!("c{i}"), "447700900000", 1000)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            BeginOutcome::Created(_) => ok += 1,
            BeginOutcome::LimitExceeded => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 10);
    // Another account is not affected; a failed charge frees its share.
    assert!(matches!(
        store
            .begin_transaction(NewTransaction {
                limits: limits(4000, 10_000, 24_000),
                ..charge(p.id, "other", "447700900001", 1000)
            })
            .await
            .unwrap(),
        BeginOutcome::Created(_)
    ));
    let first = store
        .transaction_by_ext(p.id, "c0")
        .await
        .unwrap()
        .or(store.transaction_by_ext(p.id, "c1").await.unwrap());
    let some = match first {
        Some(t) if t.status == TxStatus::Pending => t,
        _ => {
            let mut found = None;
            for i in 0..30 {
                if let Some(t) = store
                    .transaction_by_ext(p.id, &format!("c{i}"))
                    .await
                    .unwrap()
                {
                    found = Some(t);
                    break;
                }
            }
            found.unwrap()
        }
    };
    store
        .settle_transaction(
            &some.id,
            Settlement::Failed {
                failure_code: "transaction-declined".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .begin_transaction(NewTransaction {
                limits: limits(4000, 10_000, 24_000),
                ..charge(p.id, "after", "447700900000", 1000)
            })
            .await
            .unwrap(),
        BeginOutcome::Created(_)
    ));
}

async fn parallel_refunds_never_exceed_the_original(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let BeginOutcome::Created(orig) = store
        .begin_transaction(charge(p.id, "orig", "447700900000", 1000))
        .await
        .unwrap()
    else {
        panic!()
    };
    let refund = |ext: String, amount: i64| NewTransaction {
        tx_type: TxType::Refund,
        original_id: Some(orig.id.clone()),
        ..charge(p.id, &ext, "447700900000", amount)
    };
    assert_eq!(
        store
            .begin_transaction(refund("early".into(), 100))
            .await
            .unwrap(),
        BeginOutcome::RefundExceedsOriginal,
        "a pending charge cannot be refunded"
    );
    store
        .settle_transaction(
            &orig.id,
            Settlement::Success {
                csp_reference: "c".into(),
            },
            None,
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, r) = (store.clone(), refund(format!("r{i}"), 300));
            tokio::spawn(async move { store.begin_transaction(r).await.unwrap() })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            BeginOutcome::Created(r) => ok.push(r),
            BeginOutcome::RefundExceedsOriginal => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ok.len(), 3, "3 x 3.00 fit in 10.00, a fourth does not");
    for r in &ok {
        store
            .settle_transaction(
                &r.id,
                Settlement::Success {
                    csp_reference: "r".into(),
                },
                None,
            )
            .await
            .unwrap();
    }
    let after = store
        .transaction_by_ext(p.id, "orig")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.refunded_minor, 900);
    let last = store
        .begin_transaction(refund("last".into(), 100))
        .await
        .unwrap();
    let BeginOutcome::Created(last) = last else {
        panic!("{last:?}")
    };
    assert_eq!(last.original_ext_transaction_id.as_deref(), Some("orig"));
    assert_eq!(
        store
            .transaction_by_ext(p.id, "last")
            .await
            .unwrap()
            .as_ref(),
        Some(&last)
    );
    assert_eq!(
        store
            .begin_transaction(refund("over".into(), 1))
            .await
            .unwrap(),
        BeginOutcome::RefundExceedsOriginal
    );
}

async fn consent_is_used_once_and_given_back_on_abandon(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let PinSendOutcome::Sent(pin) = new_pin(&store, p.id, "447700900000", "right").await else {
        panic!()
    };
    let with_pin = |ext: &str| NewTransaction {
        consume_pin: Some(pin.id.clone()),
        ..charge(p.id, ext, "447700900000", 499)
    };
    assert_eq!(
        store.begin_transaction(with_pin("t0")).await.unwrap(),
        BeginOutcome::ConsentUnusable,
        "not validated yet"
    );
    assert!(matches!(
        store
            .check_pin(p.id, &pin.id, "right".into(), 3, 600_000)
            .await
            .unwrap(),
        PinCheckOutcome::Valid(_)
    ));
    let BeginOutcome::Created(t1) = store.begin_transaction(with_pin("t1")).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        store.pin(p.id, &pin.id).await.unwrap().unwrap().status,
        PinStatus::Consumed
    );
    assert_eq!(
        store.begin_transaction(with_pin("t2")).await.unwrap(),
        BeginOutcome::ConsentUnusable,
        "used once"
    );
    store.abandon_transaction(&t1.id).await.unwrap();
    assert_eq!(store.transaction_by_ext(p.id, "t1").await.unwrap(), None);
    assert_eq!(
        store.pin(p.id, &pin.id).await.unwrap().unwrap().status,
        PinStatus::Validated
    );
    assert!(matches!(
        store.begin_transaction(with_pin("t1")).await.unwrap(),
        BeginOutcome::Created(_)
    ));
}

async fn reconciler_leases_and_care_search(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let past = Timestamp::now().plus_millis(-1);
    let BeginOutcome::Created(a) = store
        .begin_transaction(NewTransaction {
            processing_until: past,
            ..charge(p.id, "a", "447700900000", 100)
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let BeginOutcome::Created(_b) = store
        .begin_transaction(charge(p.id, "b", "447700900000", 100))
        .await
        .unwrap()
    else {
        panic!()
    };
    let now = Timestamp::now();
    let leased = store.lease_pending(now, 10, 10_000).await.unwrap();
    assert_eq!(
        leased.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [a.id.as_str()],
        "b is still being processed"
    );
    assert_eq!(leased[0].check_attempts, 1);
    assert!(
        store
            .lease_pending(now, 10, 10_000)
            .await
            .unwrap()
            .is_empty(),
        "leased once"
    );
    store
        .defer_transaction(&a.id, now.plus_millis(-1))
        .await
        .unwrap();
    assert_eq!(
        store
            .lease_pending(Timestamp::now(), 10, 10_000)
            .await
            .unwrap()
            .len(),
        1
    );

    let page1 = store
        .search_transactions(TransactionQuery {
            customer: "+447700900000".into(),
            from: now.plus_millis(-60_000),
            to: now.plus_millis(60_000),
            limit: 1,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(page1.len(), 1);
    let page2 = store
        .search_transactions(TransactionQuery {
            customer: "+447700900000".into(),
            from: now.plus_millis(-60_000),
            to: now.plus_millis(60_000),
            limit: 10,
            after: Some(page1[0].id.clone()),
        })
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert_ne!(page1[0].id, page2[0].id);
    let none = store
        .search_transactions(TransactionQuery {
            customer: "+447700900001".into(),
            from: now.plus_millis(-60_000),
            to: now.plus_millis(60_000),
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// An in-process CSP's answer for `begin_inline`, counting how often it was asked.
fn answering(answer: InlineAnswer, asked: &Arc<AtomicUsize>) -> InlineCsp {
    let asked = asked.clone();
    Box::new(move || {
        asked.fetch_add(1, Ordering::SeqCst);
        answer
    })
}

/// `begin_inline` as the core calls it: a store may ask the CSP before its checks, and the
/// caller undoes the booking of a charge the store then refused, so `booked` counts the
/// CSP's bookings that stand. Each must be a row written.
async fn booked_inline(
    store: &dyn Store,
    new: NewTransaction,
    answer: InlineAnswer,
    booked: &Arc<AtomicUsize>,
    receipt: Receipt,
) -> ChargedInline {
    let asked = Arc::new(AtomicBool::new(false));
    let (flag, count) = (asked.clone(), booked.clone());
    let csp: InlineCsp = Box::new(move || {
        flag.store(true, Ordering::SeqCst);
        count.fetch_add(1, Ordering::SeqCst);
        answer
    });
    let outcome = store.begin_inline(new, csp, receipt).await.unwrap();
    if matches!(outcome, ChargedInline::NotBegun(_)) && asked.load(Ordering::SeqCst) {
        booked.fetch_sub(1, Ordering::SeqCst);
    }
    outcome
}

fn success(reference: &str) -> InlineAnswer {
    InlineAnswer::Final {
        settlement: Settlement::Success {
            csp_reference: reference.into(),
        },
        receipt_sent: false,
    }
}

async fn inline_charges_commit_with_their_answer(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    // Twenty twins at once: one write, one question to the CSP, one receipt.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, asked) = (store.clone(), asked.clone());
            tokio::spawn(async move {
                let receipt = note(p.id, "+447700900000", "Receipt");
                booked_inline(
                    &*store,
                    charge(p.id, "ott-1", "447700900000", 499),
                    success("csp-1"),
                    &asked,
                    Some(receipt),
                )
                .await
            })
        })
        .collect();
    let mut written = Vec::new();
    let mut existing = 0;
    for t in tasks {
        match t.await.unwrap() {
            ChargedInline::Written(r) => written.push(r),
            ChargedInline::NotBegun(BeginOutcome::Existing(_)) => existing += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((written.len(), existing), (1, 19));
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "one booking stands at the CSP"
    );
    let tx = &written[0];
    assert_eq!(
        (
            tx.status,
            tx.csp_reference.as_deref(),
            tx.failure_code.as_deref()
        ),
        (TxStatus::Success, Some("csp-1"), None)
    );
    assert_eq!(
        store
            .transaction_by_ext(p.id, "ott-1")
            .await
            .unwrap()
            .as_ref(),
        Some(tx),
        "begin_inline answers exactly the row it stored"
    );
    let (depth, _) = store.outbox_depth(Timestamp::now()).await.unwrap();
    assert_eq!(depth, 1, "one receipt");

    // A decline is written final, without a receipt.
    let declined = InlineAnswer::Final {
        settlement: Settlement::Failed {
            failure_code: "insufficient-funds".into(),
        },
        receipt_sent: false,
    };
    let ChargedInline::Written(failed) = store
        .begin_inline(
            charge(p.id, "ott-2", "447700900001", 499),
            answering(declined, &asked),
            Some(note(p.id, "+447700900001", "Receipt")),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (failed.status, failed.failure_code.as_deref()),
        (TxStatus::Failed, Some("insufficient-funds"))
    );
    assert_eq!(
        store
            .transaction_by_ext(p.id, "ott-2")
            .await
            .unwrap()
            .as_ref(),
        Some(&failed)
    );
    let (depth, _) = store.outbox_depth(Timestamp::now()).await.unwrap();
    assert_eq!(depth, 1, "no receipt for a decline");

    // An unknown answer stays PENDING, due for the reconciler, and no twin waits for it.
    let due = Timestamp::now().plus_millis(-1);
    let ChargedInline::Written(unknown) = store
        .begin_inline(
            charge(p.id, "ott-3", "447700900007", 499),
            answering(InlineAnswer::Unknown { next_check_at: due }, &asked),
            Some(note(p.id, "+447700900007", "Receipt")),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (unknown.status, unknown.next_check_at),
        (TxStatus::Pending, due)
    );
    assert!(unknown.processing_until <= Timestamp::now());
    let leased = store
        .lease_pending(Timestamp::now(), 10, 60_000)
        .await
        .unwrap();
    assert_eq!(
        leased.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [unknown.id.as_str()]
    );
    let settled = store
        .settle_transaction(
            &unknown.id,
            Settlement::Success {
                csp_reference: "late".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert!(settled.moved);

    // A refused charge leaves no booking standing at the CSP.
    let before = asked.load(Ordering::SeqCst);
    let over = NewTransaction {
        limits: limits(400, 10_000, 10_000),
        ..charge(p.id, "ott-4", "447700900000", 499)
    };
    assert_eq!(
        booked_inline(&*store, over, success("x"), &asked, None).await,
        ChargedInline::NotBegun(BeginOutcome::LimitExceeded)
    );
    assert_eq!(store.transaction_by_ext(p.id, "ott-4").await.unwrap(), None);
    assert_eq!(asked.load(Ordering::SeqCst), before);

    // A successful inline refund counts against its original.
    let refund = NewTransaction {
        tx_type: TxType::Refund,
        original_id: Some(tx.id.clone()),
        ..charge(p.id, "ott-1-r1", "447700900000", 200)
    };
    let ChargedInline::Written(r) = store
        .begin_inline(refund, answering(success("csp-r1"), &asked), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (
            r.status,
            r.tx_type,
            r.original_ext_transaction_id.as_deref()
        ),
        (TxStatus::Success, TxType::Refund, Some("ott-1"))
    );
    let original = store
        .transaction_by_ext(p.id, "ott-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(original.refunded_minor, 200);

    // A receipt the in-process channel delivered inside the write is stored as sent, its
    // text redacted at rest, and the outbox has nothing more to do.
    let delivered = InlineAnswer::Final {
        settlement: Settlement::Success {
            csp_reference: "csp-5".into(),
        },
        receipt_sent: true,
    };
    let receipt = note(p.id, "+447700900000", "Receipt");
    let receipt_id = receipt.id.as_str().to_owned();
    assert!(matches!(
        store
            .begin_inline(
                charge(p.id, "ott-5", "447700900000", 499),
                answering(delivered, &asked),
                Some(receipt)
            )
            .await
            .unwrap(),
        ChargedInline::Written(_)
    ));
    let sent = store
        .notification(p.id, &receipt_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sent.status, sent.attempts, sent.text.as_str()),
        (NotificationStatus::Sent, 1, "Your PIN is ******")
    );
    let (depth, _) = store.outbox_depth(Timestamp::now()).await.unwrap();
    assert_eq!(depth, 1, "still only the first charge's receipt is queued");
}

async fn inline_unavailable_writes_nothing_and_keeps_the_consent(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let PinSendOutcome::Sent(pin) = new_pin(&store, p.id, "447700900000", "right").await else {
        panic!()
    };
    assert!(matches!(
        store
            .check_pin(p.id, &pin.id, "right".into(), 3, 600_000)
            .await
            .unwrap(),
        PinCheckOutcome::Valid(_)
    ));
    let with_pin = || NewTransaction {
        consume_pin: Some(pin.id.clone()),
        ..charge(p.id, "t1", "447700900000", 499)
    };
    let asked = Arc::new(AtomicUsize::new(0));
    let refused = InlineAnswer::Unavailable {
        retry_after_secs: 7,
    };
    assert_eq!(
        store
            .begin_inline(with_pin(), answering(refused, &asked), None)
            .await
            .unwrap(),
        ChargedInline::Unavailable {
            retry_after_secs: 7
        }
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(store.transaction_by_ext(p.id, "t1").await.unwrap(), None);
    assert_eq!(
        store.pin(p.id, &pin.id).await.unwrap().unwrap().status,
        PinStatus::Validated,
        "the consent is still there for the retry"
    );
    let ChargedInline::Written(done) = store
        .begin_inline(with_pin(), answering(success("c"), &asked), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(done.status, TxStatus::Success);
    assert_eq!(
        store.pin(p.id, &pin.id).await.unwrap().unwrap().status,
        PinStatus::Consumed
    );
}

async fn parallel_inline_charges_never_pass_a_limit_together(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let new = NewTransaction {
                limits: limits(1_000, 500, 10_000),
                ..charge(p.id, &format!("c{i}"), "447700900000", 100)
            };
            let (answer, asked) = (success(&format!("r{i}")), asked.clone());
            tokio::spawn(async move { booked_inline(&*store, new, answer, &asked, None).await })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        match t.await.unwrap() {
            ChargedInline::Written(r) => {
                assert_eq!(r.status, TxStatus::Success);
                written += 1;
            }
            ChargedInline::NotBegun(BeginOutcome::LimitExceeded) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(written, 5, "500 a day in charges of 100");
    assert_eq!(asked.load(Ordering::SeqCst), 5);
}

/// Charges written together (a group commit) stay independent: one the database refuses
/// (an amount its constraint forbids) fails alone, and every other is written.
async fn a_bad_charge_among_parallel_ones_fails_alone(store: Arc<dyn Store>) {
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let amount = if i == 7 { 0 } else { 100 };
            let new = NewTransaction {
                limits: limits(1_000, 10_000, 10_000),
                ..charge(p.id, &format!("g{i}"), &format!("4477009001{i:02}"), amount)
            };
            let csp = answering(success(&format!("r{i}")), &asked);
            tokio::spawn(async move { (i, store.begin_inline(new, csp, None).await) })
        })
        .collect();
    for t in tasks {
        let (i, outcome) = t.await.unwrap();
        match outcome {
            Err(_) => assert_eq!(i, 7, "only the charge of 0 is refused"),
            Ok(ChargedInline::Written(r)) => {
                assert_ne!(i, 7);
                let stored = store
                    .transaction_by_ext(p.id, &r.ext_transaction_id)
                    .await
                    .unwrap();
                assert_eq!(stored.map(|s| s.status), Some(TxStatus::Success));
            }
            Ok(other) => panic!("{i}: {other:?}"),
        }
    }
    let seven = store.transaction_by_ext(p.id, "g7").await.unwrap();
    assert!(seven.is_none(), "the refused charge left no row");
}

/// Spending totals follow the charges: a day's total is the day's PENDING and SUCCESS
/// charges, a month's the sum of its days; a charge leaves its own day's total when it fails
/// or is abandoned, and a decline never counts.
async fn spending_totals_follow_the_charges(store: Arc<dyn Store>) {
    const DAY: i64 = 86_400_000;
    let p = store
        .create_partner(new_partner("NFLX", &ApiKey::generate()))
        .await
        .unwrap();
    let today = limits(10_000, 1_000, 1_500).unwrap();
    let yesterday = SpendingLimits {
        day_start: today.day_start.plus_millis(-DAY),
        ..today
    };
    let write = |ext: &str, amount: i64, windows: SpendingLimits| {
        let store = store.clone();
        let new = NewTransaction {
            limits: Some(windows),
            ..charge(p.id, ext, "447700900000", amount)
        };
        async move { store.begin_transaction(new).await.unwrap() }
    };
    // Yesterday's 800 counts in the month only.
    let BeginOutcome::Created(old) = write("y1", 800, yesterday).await else {
        panic!()
    };
    let BeginOutcome::Created(a) = write("t1", 600, today).await else {
        panic!()
    };
    assert_eq!(
        write("t2", 200, today).await,
        BeginOutcome::LimitExceeded,
        "800 + 600 + 200 is over the month's 1500"
    );
    // Yesterday's charge fails: the month has room again, today's total is unchanged.
    store
        .settle_transaction(
            &old.id,
            Settlement::Failed {
                failure_code: "transaction-declined".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        write("t3", 500, today).await,
        BeginOutcome::LimitExceeded,
        "600 + 500 is over the day's 1000"
    );
    let BeginOutcome::Created(b) = write("t4", 400, today).await else {
        panic!()
    };
    // An abandoned charge gives its share back; a success keeps it.
    store.abandon_transaction(&b.id).await.unwrap();
    store
        .settle_transaction(
            &a.id,
            Settlement::Success {
                csp_reference: "c".into(),
            },
            None,
        )
        .await
        .unwrap();
    // A decline at an in-process CSP never counts; an unknown answer does.
    let declined = InlineAnswer::Final {
        settlement: Settlement::Failed {
            failure_code: "insufficient-funds".into(),
        },
        receipt_sent: false,
    };
    let asked = Arc::new(AtomicUsize::new(0));
    let inline = |ext: &str, amount: i64, answer: InlineAnswer| {
        let store = store.clone();
        let new = NewTransaction {
            limits: Some(today),
            ..charge(p.id, ext, "447700900000", amount)
        };
        let csp = answering(answer, &asked);
        async move { store.begin_inline(new, csp, None).await.unwrap() }
    };
    assert!(matches!(
        inline("i1", 400, declined).await,
        ChargedInline::Written(TransactionRecord {
            status: TxStatus::Failed,
            ..
        })
    ));
    let unknown = InlineAnswer::Unknown {
        next_check_at: Timestamp::now(),
    };
    assert!(matches!(
        inline("i2", 300, unknown).await,
        ChargedInline::Written(TransactionRecord {
            status: TxStatus::Pending,
            ..
        })
    ));
    // 600 + 300 counted today: 100 is left, 101 is over.
    assert_eq!(
        inline("i3", 101, success("x")).await,
        ChargedInline::NotBegun(BeginOutcome::LimitExceeded)
    );
    assert!(matches!(
        inline("i4", 100, success("y")).await,
        ChargedInline::Written(_)
    ));
    // Refunds are written without windows: they neither count nor are checked.
    let refund = NewTransaction {
        tx_type: TxType::Refund,
        original_id: Some(a.id.clone()),
        ..charge(p.id, "t1-r", "447700900000", 600)
    };
    assert!(matches!(
        store.begin_transaction(refund).await.unwrap(),
        BeginOutcome::Created(_)
    ));
    // Another currency of the same account has totals of its own.
    let euros = NewTransaction {
        limits: Some(today),
        currency: "EUR".into(),
        ..charge(p.id, "e1", "447700900000", 1_000)
    };
    assert!(matches!(
        store.begin_transaction(euros).await.unwrap(),
        BeginOutcome::Created(_)
    ));
}
