//! HTTP edge of dcbhub: thin axum handlers over the core, our own extractors and error
//! model (API.md §1), request context and metrics, and the OpenAPI document generated from
//! the handlers themselves.

pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
mod respond;
mod routes;
pub mod state;

use axum::Router;
use axum::http::Response;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};
pub use state::{AppState, Shared};

/// The routes and their OpenAPI document, before state and layers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut spec) = OpenApiRouter::with_openapi(openapi::base())
        .merge(routes::account::router())
        .merge(routes::pin::router())
        .merge(routes::transaction::router())
        .merge(routes::notification::router())
        .merge(routes::sandbox::router())
        .merge(routes::ops::router())
        .merge(routes::admin::router())
        .merge(routes::care::router())
        .merge(routes::settlement::router())
        .split_for_parts();
    utoipa::Modify::modify(&openapi::CommonErrors, &mut spec);
    (router, spec)
}

/// The whole service.
pub fn app(state: AppState) -> Router {
    let (routes, spec) = api();
    let routed = routes
        .route_layer(axum::middleware::from_fn(middleware::record_operation))
        .merge(openapi::docs_router(&spec))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    // The layers of every request wrap the router once. `Router::layer` would wrap each route
    // in each of them, and every request clones and boxes its route's service once per layer.
    let layered = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(middleware::request_context))
        .layer(CatchPanicLayer::custom(|_| -> Response<axum::body::Body> {
            tracing::error!("handler panicked");
            axum::response::IntoResponse::into_response(ApiError::SystemError)
        }))
        // Bodies past the contract's 16 KiB are refused while reading, not after.
        .layer(axum::extract::DefaultBodyLimit::max(extract::MAX_BODY + 1))
        .service(routed);
    Router::new().fallback_service(layered)
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_json() -> String {
    let (_, spec) = api();
    spec.to_pretty_json().unwrap_or_default()
}
