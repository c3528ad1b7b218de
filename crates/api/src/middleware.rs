//! Per-request context: the request id, the B3 trace headers to pass on to CSPs, a tracing
//! span, and the HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const B3_HEADERS: [&str; 4] = [
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
];

/// Tracing headers of the incoming request, to propagate on every CSP call it causes.
#[derive(Clone, Debug, Default)]
pub struct TraceContext {
    pub request_id: String,
    pub b3: Vec<(&'static str, String)>,
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

fn trace_context(headers: &HeaderMap) -> TraceContext {
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(|| dcbhub_domain::hex_id("", uuid::Uuid::new_v4()));
    let b3 = B3_HEADERS
        .iter()
        .filter_map(|name| {
            let v = headers.get(*name)?.to_str().ok()?;
            (v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .then(|| (*name, v.to_owned()))
        })
        .collect();
    TraceContext { request_id, b3 }
}

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ctx = trace_context(req.headers());
    let method = req.method().clone();
    let request_id = ctx.request_id.clone();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        operation = tracing::field::Empty,
        partner = tracing::field::Empty,
    );
    req.extensions_mut().insert(ctx);
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    let elapsed = started.elapsed();
    let operation = response
        .extensions()
        .get::<Operation>()
        .map_or("unmatched", |o| o.0.as_str());
    span.record("operation", operation);
    crate::metrics::http_request(&method, operation, status.as_u16(), elapsed);
    span.in_scope(|| {
        let ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), ms, "answered");
        } else if status.is_client_error() {
            tracing::info!(status = status.as_u16(), ms, "answered");
        } else {
            tracing::debug!(status = status.as_u16(), ms, "answered");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// The route template that answered, carried from the router back to [`request_context`].
#[derive(Clone)]
struct Operation(MatchedPath);

/// Runs inside routing (a route layer), where the matched route is known.
pub async fn record_operation(req: Request, next: Next) -> Response {
    let operation = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| Operation(p.clone()));
    let mut response = next.run(req).await;
    if let Some(op) = operation {
        response.extensions_mut().insert(op);
    }
    response
}
