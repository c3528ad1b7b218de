//! One contract suite for every store backend: each test below runs on SQLite and on
//! PostgreSQL (skipped, and said so, when no PostgreSQL answers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dcbhub_domain::{
    ApiKey, ConsentPolicy, Customer, Msisdn, NotificationId, PartnerCode, PartnerStatus, Timestamp,
};
use dcbhub_store::{
    DeliveryResult, EnqueueOutcome, NewNotification, NewPartner, NotificationStatus, Store,
    StoreError,
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
        recipient: Customer::Msisdn(Msisdn::parse(to).unwrap()),
        csp_id: "sandbox".into(),
        channel: "sandbox".into(),
        kind: "PIN".into(),
        text: text.into(),
        redacted_text: Some("Your PIN is ******".into()),
        subject: None,
        ext_transaction_id: None,
        locale: None,
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
    assert_eq!(depth, 5);
    assert!(oldest.is_some());
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
