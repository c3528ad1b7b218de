//! `dcbhub csp-sim`: the sandbox CSP of API.md §9 as an HTTP server speaking the CSP-side
//! API (docs/csp-api.md), over the same [`SandboxState`] as the in-process `sandbox`
//! connector. Number `+447700900007`'s charge answer arrives only after
//! [`SimConfig::late_answer_ms`] (the charge is booked at once); `+447700900008` answers
//! `503 csp-unavailable`. `GET /ledger` and `GET /inbox` let tests look inside;
//! `GET /openapi.json` is the API's OpenAPI 3.1 document, generated from the handlers.

mod convert;
mod error;
mod json;
mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dcbhub_connectors::SandboxState;
use dcbhub_connectors::http::wire::{ErrorBody, HEADER_API_KEY};
use dcbhub_domain::Secret;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tower_http::request_id::PropagateRequestIdLayer;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::SimError;
pub use routes::{InboxBody, InboxMessageBody, LedgerEntryBody};

/// How long number 007's charge answer takes by default: beyond the hub's default 5 s
/// CSP timeout.
pub const DEFAULT_LATE_ANSWER_MS: u64 = 6_000;

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The key callers must send as `X-API-KEY`.
    pub api_key: Secret<String>,
    /// Delay of the late charge answer of `+447700900007`.
    pub late_answer_ms: u64,
}

impl SimConfig {
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: Secret::new(api_key.into()),
            late_answer_ms: DEFAULT_LATE_ANSWER_MS,
        }
    }
}

/// The server's state: the sandbox books and the configuration.
#[derive(Clone, Debug)]
pub struct SimState {
    sandbox: SandboxState,
    config: Arc<SimConfig>,
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        Self::with_sandbox(config, SandboxState::new())
    }

    /// A server over books shared with others (a test, or an in-process connector).
    pub fn with_sandbox(config: SimConfig, sandbox: SandboxState) -> Self {
        Self {
            sandbox,
            config: Arc::new(config),
        }
    }

    pub fn sandbox(&self) -> &SandboxState {
        &self.sandbox
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dcbhub CSP-side API",
        version = "1.0.0",
        description = "What dcbhub's `http` connector calls at a CSP: account validation, \
            idempotent charges and refunds keyed by the hub's transactionId, status by that id, \
            and customer notifications. Every non-2xx answer is `{\"code\", \"message\"}`. \
            Served here by csp-sim, the sandbox CSP."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "csp", description = "The CSP-side API"),
        (name = "simulator", description = "csp-sim only: inspect the sandbox books"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut OpenApi) {
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "apiKey",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-KEY"))),
            );
    }
}

fn api() -> (Router<SimState>, OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::validate_account))
        .routes(routes!(routes::create_transaction))
        .routes(routes!(routes::get_transaction))
        .routes(routes!(routes::create_notification))
        .routes(routes!(routes::ledger))
        .routes(routes!(routes::inbox))
        .split_for_parts()
}

/// The OpenAPI 3.1 document of the CSP-side API, as served at `GET /openapi.json`.
pub fn openapi() -> OpenApi {
    api().1
}

/// The simulator's routes over `state`.
pub fn router(state: SimState) -> Router {
    let (routes, spec) = api();
    let spec: Arc<str> = spec.to_pretty_json().unwrap_or_else(|_| "{}".into()).into();
    routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    spec.to_string(),
                )
            }),
        )
        .fallback(|| async { SimError::not_found() })
        .method_not_allowed_fallback(|| async { SimError::method_not_allowed() })
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
}

async fn require_api_key(State(state): State<SimState>, request: Request, next: Next) -> Response {
    let expected = state.config.api_key.expose().as_bytes();
    let presented = request
        .headers()
        .get(HEADER_API_KEY)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(presented.ct_eq(expected)) && !expected.is_empty() {
        next.run(request).await
    } else {
        SimError::unauthorized().into_response()
    }
}

/// Serves a fresh simulator on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_state(listener, SimState::new(config), shutdown).await
}

/// As [`serve`], over a given state (e.g. books a test also reads).
pub async fn serve_state(
    listener: TcpListener,
    state: SimState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
