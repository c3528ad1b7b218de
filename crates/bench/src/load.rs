//! The load generator: a fixed number of keep-alive HTTP/1.1 connections, each a closed loop
//! (send, wait for the whole answer, send the next), for a warm-up and then a measured window.
//! hyper's connection-level client is used directly so that the generator costs as little
//! CPU as possible on a machine it shares with the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one connection sends, request by request.
pub trait Workload: Send + Sync + 'static {
    /// Request number `seq` of connection `conn`, and the tag to keep when it succeeds (e.g.
    /// the `extTransactionID` of an acknowledged charge).
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, Option<String>);
    /// The status of a successful answer.
    fn expected(&self) -> StatusCode;
}

#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// The measured window of one run.
pub struct LoadResult {
    /// Answers with the expected status inside the measured window.
    pub ok: u64,
    /// Everything else inside the window, by kind (`status 503`, `io: …`).
    pub errors: BTreeMap<String, u64>,
    pub window: Duration,
    /// Latency of every answer in the window, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Tags of all successful requests, warm-up included.
    pub acked: Vec<String>,
    /// HTTP answers of any status over the whole run, warm-up included.
    pub answers_all: u64,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        per_second(self.ok, self.window)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        // Microseconds to milliseconds for display only.
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

pub fn per_second(count: u64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 60 s with 3 significant figures.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Drives `workload` against `addrs` (connection `i` goes to `addrs[i % len]`).
pub async fn run<W: Workload>(
    addrs: &[SocketAddr],
    spec: LoadSpec,
    workload: Arc<W>,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!addrs.is_empty(), "no address to drive");
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let until = measure_from + spec.measure;
    let mut tasks = Vec::with_capacity(spec.connections);
    for conn in 0..spec.connections {
        let addr = addrs[conn % addrs.len()];
        let workload = Arc::clone(&workload);
        tasks.push(tokio::spawn(async move {
            connection(addr, conn, workload.as_ref(), measure_from, until).await
        }));
    }
    let mut total = LoadResult {
        ok: 0,
        errors: BTreeMap::new(),
        window: spec.measure,
        latency_us: new_histogram()?,
        acked: Vec::new(),
        answers_all: 0,
    };
    for task in tasks {
        let part = task.await??;
        total.ok += part.ok;
        for (k, v) in part.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.latency_us.add(&part.latency_us)?;
        total.acked.extend(part.acked);
        total.answers_all += part.answers_all;
    }
    Ok(total)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn connection<W: Workload>(
    addr: SocketAddr,
    conn: usize,
    workload: &W,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<LoadResult> {
    let mut out = LoadResult {
        ok: 0,
        errors: BTreeMap::new(),
        window: until.saturating_duration_since(measure_from),
        latency_us: new_histogram()?,
        acked: Vec::new(),
        answers_all: 0,
    };
    let expected = workload.expected();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        let measured = now >= measure_from;
        let mut client = match sender.take() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    if measured {
                        *out.errors.entry(format!("connect: {e}")).or_default() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if client.ready().await.is_err() {
            continue;
        }
        let (request, tag) = workload.request(conn, seq);
        seq += 1;
        let sent = Instant::now();
        let answer = match client.send_request(request).await {
            Ok(resp) => {
                let status = resp.status();
                resp.into_body().collect().await.map(|_| status)
            }
            Err(e) => Err(e),
        };
        let latency = sent.elapsed();
        let measured = sent >= measure_from;
        match answer {
            Ok(status) => {
                out.answers_all += 1;
                // The connection stays open for the next request (keep-alive).
                sender = Some(client);
                if status == expected {
                    if let Some(tag) = tag {
                        out.acked.push(tag);
                    }
                    if measured {
                        out.ok += 1;
                    }
                } else if measured {
                    *out.errors.entry(format!("status {status}")).or_default() += 1;
                }
            }
            Err(e) => {
                if measured {
                    *out.errors.entry(format!("io: {e}")).or_default() += 1;
                }
            }
        }
        if measured {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            out.latency_us.saturating_record(micros.max(1));
        }
    }
    Ok(out)
}
