use std::ops::Deref;
use std::sync::Arc;

use dcbhub_core::{Authenticator, Hub, PartnerService};
use dcbhub_domain::ApiKeyHash;
use dcbhub_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

/// What every handler can reach, behind one `Arc`: axum clones the state several times per
/// request (each route's service, each extractor), and one shared count costs a fraction of
/// one count per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
    pub partners: PartnerService,
    /// Hash of the admin bearer token; `None` turns the admin API off.
    pub admin_token: Option<ApiKeyHash>,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
