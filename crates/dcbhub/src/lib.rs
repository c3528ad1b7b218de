//! Start-up of dcbhub: configuration, wiring of store, core and HTTP edge, and the run loop.
//! `main.rs` holds only the command line; tests build the same [`Application`].

pub mod config;
pub mod telemetry;
pub mod wiring;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use dcbhub_api::{AppState, Shared};
use dcbhub_core::partners::NewPartnerRequest;
use dcbhub_core::{Authenticator, Hub, PartnerService};
use dcbhub_domain::{ApiKeyHash, ConsentPolicy, PartnerCode};
use dcbhub_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

/// A configured hub bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    /// The `DEMO` partner's key when this start created it.
    pub demo_key: Option<String>,
    stop: watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        install_crypto_provider();
        let store = dcbhub_store::open(&config.database_url, true)
            .await
            .with_context(|| format!("cannot open the database ({})", config.backend_name()))?;
        let auth = Authenticator::new(Arc::clone(&store));
        auth.spawn_watcher();
        let partners = PartnerService::new(Arc::clone(&store), Some(Arc::clone(&auth)));
        let demo_key = if config.sandbox.enabled && config.sandbox.demo_partner {
            create_demo_partner(&partners).await?
        } else {
            None
        };
        let hub = wiring::build_hub(config, Arc::clone(&store))?;
        // The first number parsed builds phonenumber's metadata (≈ 0.2 s of CPU): pay it
        // here, not in the first request after a start or deploy.
        let _ = dcbhub_domain::Msisdn::parse("+447700900000");
        let (stop, stop_rx) = watch::channel(false);
        let workers = vec![
            tokio::spawn(dcbhub_core::outbox::run_outbox_worker(
                Arc::clone(&hub),
                stop_rx.clone(),
            )),
            tokio::spawn(dcbhub_core::reconciler::run_reconciler(
                Arc::clone(&hub),
                stop_rx,
            )),
        ];
        let state = AppState::new(Shared {
            store: Arc::clone(&store),
            hub: Arc::clone(&hub),
            auth,
            partners,
            admin_token: config.admin_token.as_deref().map(ApiKeyHash::of),
            metrics: dcbhub_api::metrics::prometheus(),
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Ok(Self {
            listener,
            router: dcbhub_api::app(state),
            store,
            hub,
            demo_key,
            stop,
            workers,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        // Then the background work, which finishes its current step first.
        let _ = self.stop.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        served
    }
}

impl Config {
    fn backend_name(&self) -> &'static str {
        if self.database_url.starts_with("sqlite://") {
            "sqlite"
        } else {
            "postgres"
        }
    }
}

/// On the first start (no partner at all), creates `DEMO` so a new user can try the whole
/// flow at once.
async fn create_demo_partner(partners: &PartnerService) -> anyhow::Result<Option<String>> {
    if !partners
        .list()
        .await
        .context("cannot list partners")?
        .is_empty()
    {
        return Ok(None);
    }
    let code = PartnerCode::parse("DEMO").context("DEMO is a valid code")?;
    let created = partners
        .create(NewPartnerRequest {
            code,
            name: "Demo OTT".into(),
            consent: ConsentPolicy::Pin,
            receipts_enabled: true,
        })
        .await;
    match created {
        Ok(c) => Ok(Some(c.key.expose().to_owned())),
        // Another instance created it at the same moment.
        Err(dcbhub_core::PartnerError::CodeTaken) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot create the DEMO partner: {e}")),
    }
}

/// rustls is built with ring only; installing it as the process default keeps every TLS
/// client (CSP connectors, SMTP) on one provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
