use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use dcbhub_core::kept_metrics::Kept;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// One operation's series by method and status.
type Series = Kept<(&'static str, u16), (Counter, Histogram)>;

/// Counts one answered request. The series' handles are registered once and kept: looking
/// them up by their labels on every request (building the labels, hashing them) cost more
/// than the rest of the request's bookkeeping.
pub fn http_request(method: &Method, operation: &str, status: u16, elapsed: Duration) {
    static SERIES: OnceLock<Series> = OnceLock::new();
    let method = method_label(method);
    let (counter, histogram) =
        SERIES
            .get_or_init(Series::default)
            .get(operation, (method, status), || {
                let label = format!("{method} {operation}");
                (
                    metrics::counter!("dcbhub_http_requests_total", "operation" => label.clone(), "status" => status.to_string()),
                    metrics::histogram!("dcbhub_http_request_duration_seconds", "operation" => label),
                )
            });
    counter.increment(1);
    histogram.record(elapsed.as_secs_f64());
}

/// Methods outside HTTP's common set share one label, so a client inventing methods cannot
/// create series without end.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The process-wide Prometheus recorder; installed on first use (several apps in one test
/// process share it).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only in odd test set-ups): keep a detached
                // one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
