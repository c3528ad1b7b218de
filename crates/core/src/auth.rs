//! Authentication of `X-API-KEY`, cached in memory. A new key works at once (a miss goes to
//! the store); a revocation or suspension reaches every instance within about a second,
//! because each instance watches the store's config version and drops its cache when it
//! moves, and no entry lives longer than [`MAX_AGE`] whatever happens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcbhub_domain::{ApiKeyHash, PartnerStatus};
use dcbhub_store::{PartnerRecord, Store, StoreError};
use parking_lot::RwLock;

const MAX_AGE: Duration = Duration::from_secs(4);
const WATCH_INTERVAL: Duration = Duration::from_millis(1000);
/// Bounds memory if a client sprays random keys (misses are never cached).
const MAX_ENTRIES: usize = 10_000;

/// The authenticated partner of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub partner: PartnerRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing, unknown or revoked API key")]
    Unauthorized,
    #[error("partner suspended")]
    Suspended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Entry {
    caller: Arc<Caller>,
    fetched: Instant,
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<ApiKeyHash, Entry>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Starts the task that drops the cache whenever partners or keys change in the store
    /// (on this instance or another).
    pub fn spawn_watcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                match this.store.config_version().await {
                    Ok(v) => {
                        if seen.is_some_and(|s| s != v) {
                            this.invalidate();
                        }
                        seen = Some(v);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the config version"),
                }
                tokio::time::sleep(WATCH_INTERVAL).await;
            }
        })
    }

    pub fn invalidate(&self) {
        self.cache.write().clear();
    }

    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Arc<Caller>, AuthError> {
        let presented = presented
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Unauthorized)?;
        let hash = ApiKeyHash::of(presented);
        let cached = self
            .cache
            .read()
            .get(&hash)
            .filter(|e| e.fetched.elapsed() < MAX_AGE)
            .map(|e| Arc::clone(&e.caller));
        let caller = match cached {
            Some(c) => c,
            None => {
                let record = self
                    .store
                    .find_api_key(&hash)
                    .await?
                    .ok_or(AuthError::Unauthorized)?;
                let caller = Arc::new(Caller {
                    key_id: record.key_id,
                    partner: record.partner,
                });
                let mut cache = self.cache.write();
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
                cache.insert(
                    hash,
                    Entry {
                        caller: Arc::clone(&caller),
                        fetched: Instant::now(),
                    },
                );
                caller
            }
        };
        match caller.partner.status {
            PartnerStatus::Active => Ok(caller),
            PartnerStatus::Suspended => Err(AuthError::Suspended),
        }
    }
}
