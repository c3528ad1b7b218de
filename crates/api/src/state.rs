use std::sync::Arc;

use dcbhub_core::{Authenticator, Hub, PartnerService};
use dcbhub_domain::ApiKeyHash;
use dcbhub_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
    pub partners: PartnerService,
    /// Hash of the admin bearer token; `None` turns the admin API off.
    pub admin_token: Option<Arc<ApiKeyHash>>,
    pub metrics: PrometheusHandle,
}
