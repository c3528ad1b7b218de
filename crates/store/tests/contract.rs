//! One contract suite for every store backend: each test below runs on SQLite and on
//! PostgreSQL (skipped, and said so, when no PostgreSQL answers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dcbhub_domain::{ApiKey, ConsentPolicy, PartnerCode, PartnerStatus};
use dcbhub_store::{NewPartner, Store, StoreError};

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
