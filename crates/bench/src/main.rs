//! dcbhub's load benchmark (issue 9, docs/PERFORMANCE.md). One command:
//!
//! ```sh
//! cargo build --release -p dcbhub -p dcbhub-bench && target/release/dcbhub-bench
//! ```
//!
//! It measures, in one run and at the same concurrency: (a) a bare axum handler parsing the
//! charge JSON, (b) a bare handler doing one durable SQLite insert per request with group
//! commit, then the hub on its embedded default (`POST /transaction`, then `GET`), and with
//! `--postgres URL` (c) a bare handler doing one PostgreSQL insert per request and two hub
//! instances sharing that database. After each hub run it kills the hub (SIGKILL) and checks
//! that every acknowledged charge is stored exactly once.

mod ceiling;
mod hub;
mod load;
mod pg;
mod report;
mod verify;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use ceiling::CeilingServer;
use hub::Hub;
use load::{LoadResult, LoadSpec};
use report::{Bar, CpuUse, Line, ratio, thousands};
use workload::{Charges, Lookups};

#[derive(Parser, Debug)]
#[command(
    name = "dcbhub-bench",
    about = "Load benchmark of dcbhub with same-run ceilings"
)]
struct Args {
    /// Also run two hub instances on PostgreSQL. A database `dcbhub_bench_<run>` is created
    /// beside the one named here and dropped afterwards (the URL's own database is used when
    /// that is not allowed).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Measured seconds of each step.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds before each step.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent keep-alive connections (closed loop).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The dcbhub binary (default: `dcbhub` beside this executable).
    #[arg(long, value_name = "PATH")]
    hub: Option<PathBuf>,
    /// Create the benchmark partner with receipts off (by default every charge also queues a
    /// receipt, as for a real partner).
    #[arg(long)]
    no_receipts: bool,
    /// Skip the embedded (SQLite) part; with `--postgres`, measure PostgreSQL only.
    #[arg(long)]
    skip_sqlite: bool,
    /// Keep the temporary folder (hub logs, databases) and the PostgreSQL database.
    #[arg(long)]
    keep: bool,
    /// Drive an already running hub instead (e.g. one under a profiler): `POST` then `GET`
    /// only, no ceilings, no exactly-once check. Its partner must need no PIN.
    #[arg(long, value_name = "HOST:PORT", requires = "api_key")]
    hub_addr: Option<String>,
    /// The API key for `--hub-addr`.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// With `--hub-addr`: charges only, no `GET` step (e.g. to profile the charge path).
    #[arg(long, requires = "hub_addr")]
    post_only: bool,
    /// Exit with status 1 when a quality bar of PRODUCT.md is missed (not only when the
    /// exactly-once check fails).
    #[arg(long)]
    check_bars: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The load generator's own two workers, as `wrk -t2` in ceilings.md.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// What the run found; `Ok(false)` when a check (or, with `--check-bars`, a bar) failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    let spec = LoadSpec {
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        measure: Duration::from_secs(args.seconds),
    };
    if let (Some(addr), Some(key)) = (&args.hub_addr, &args.api_key) {
        return external(&spec, addr, key, args.post_only).await;
    }
    let bin = hub::locate(args.hub.clone())?;
    let dir = tempfile::Builder::new().prefix("dcbhub-bench-").tempdir()?;
    let run_id = workload::run_id();
    println!("{}", machine_summary());
    println!(
        "run {run_id}: {} connections, {} s measured per step after {} s warm-up, receipts {}, hub {}\n",
        spec.connections,
        args.seconds,
        args.warmup,
        if args.no_receipts { "off" } else { "on" },
        bin.display()
    );

    let mut lines: Vec<Line> = Vec::new();
    let mut checks: Vec<(String, verify::Verdict)> = Vec::new();

    let charge_body = |key: Option<String>, path| Charges {
        run_id: run_id.clone(),
        api_key: key,
        host: "127.0.0.1".into(),
        path,
    };

    if !args.skip_sqlite {
        let result = ceiling_run(&spec, charge_body(None, "/transaction"), async {
            Ok(ceiling::bare_json::router())
        })
        .await?;
        lines.push(step(
            "(a)",
            "ceiling (a) bare JSON handler",
            &result,
            vec![],
        ));

        let path = dir.path().join("ceiling-group-commit.db");
        let charges = charge_body(None, "/transaction");
        lines.push(ceiling_b(&spec, charges, path, "ceiling (b) SQLite group commit").await?);

        let hub_dir = dir.path().join("hub-sqlite");
        std::fs::create_dir_all(&hub_dir)?;
        let db = hub_dir.join("dcbhub.db");
        let config = hub::write_config(&hub_dir, &format!("sqlite://{}", db.display()), None)?;
        let code = "BENCH";
        let key = hub::create_partner(&bin, &config, code, !args.no_receipts).await?;
        let hubs = vec![Hub::start(&bin, &config, hub_dir.join("hub.log")).await?];
        let acked = hub_steps(
            &spec,
            &Targets::of(&hubs),
            &key,
            charge_body(Some(key.clone()), "/transaction"),
            (
                "hub-sqlite-post",
                "hub SQLite POST /transaction",
                vec!["(b)", "(a)"],
            ),
            (
                "hub-sqlite-get",
                "hub SQLite GET /transaction/{id}",
                vec!["(a)"],
            ),
            &mut lines,
        )
        .await;
        stop(hubs).await?;
        let acked = acked?;
        // Again after the hub: the ratio uses the mean of both runs of the ceiling.
        let path = dir.path().join("ceiling-group-commit-again.db");
        let charges = charge_body(None, "/transaction");
        lines.push(ceiling_b(&spec, charges, path, "ceiling (b) again, after the hub").await?);
        let verdict = verify::sqlite(&db, code, &acked)?;
        println!("  exactly once (SQLite): {verdict}");
        checks.push(("SQLite".into(), verdict));
        if args.postgres.is_some() {
            quiet_disk(dir.path(), args.keep);
        }
    }

    if let Some(admin_url) = &args.postgres {
        let database = pg::BenchDatabase::create(admin_url, &run_id).await?;
        let outcome = postgres_part(
            &args,
            &spec,
            &bin,
            dir.path(),
            &database.url,
            &run_id,
            &mut lines,
        )
        .await;
        if args.keep {
            println!("  kept the PostgreSQL database: {}", database.url);
        } else if let Err(e) = database.drop_database().await {
            eprintln!("note: cannot drop the run's database: {e:#}");
        }
        checks.push(("PostgreSQL, two instances".into(), outcome?));
    }

    println!("\n{}", report::table(&lines));
    let bars = quality_bars(&lines);
    println!("quality bars (PRODUCT.md):\n{}", report::bars(&bars));
    let mut passed = true;
    for (name, verdict) in &checks {
        let ok = verdict.passed();
        passed &= ok;
        println!(
            "  [{}] exactly once, {name}: {verdict}",
            if ok { "PASS" } else { "FAIL" }
        );
    }
    if args.keep {
        let kept = dir.keep();
        println!("\nkept {}", kept.display());
    }
    if args.check_bars {
        passed &= bars.iter().all(|b| b.passed);
    }
    Ok(passed)
}

/// Stops the hubs, saying first how much memory each holds (the sandbox's books and the
/// caches are bounded: a longer run should not show much more).
async fn stop(hubs: Vec<Hub>) -> anyhow::Result<()> {
    for hub in hubs {
        if let Some((anonymous, file)) = hub.pid().and_then(hub::resident_memory) {
            println!(
                "  hub resident memory at the end: {} MiB its own, {} MiB of mapped files",
                anonymous >> 20,
                file >> 20
            );
        }
        hub.kill().await?;
    }
    Ok(())
}

/// Lets the PostgreSQL part start on a quiet disk: the SQLite part's databases (a few hundred
/// MiB, every file in the run's folder so far) would otherwise still be written back by the
/// kernel during its steps, which measured the previous part's writes instead of PostgreSQL's.
/// They go (unless kept) and the file systems are flushed (`sync`, from coreutils: std has no
/// call for it).
fn quiet_disk(dir: &std::path::Path, keep: bool) {
    if !keep {
        let removed = std::fs::read_dir(dir).and_then(|entries| {
            entries.into_iter().try_for_each(|entry| {
                let path = entry?.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
            })
        });
        if let Err(e) = removed {
            eprintln!("note: cannot remove the SQLite part's files: {e}");
        }
    }
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("note: cannot run sync: {e}");
    }
}

/// Ceiling (b): the bare handler with one durable insert per request, into the database at
/// `path`.
async fn ceiling_b(
    spec: &LoadSpec,
    charges: Charges,
    path: PathBuf,
    label: &str,
) -> anyhow::Result<Line> {
    let result = ceiling_run(spec, charges, async move {
        ceiling::group_commit::router(&path)
    })
    .await?;
    Ok(step("(b)", label, &result, vec![]))
}

/// Ceiling (c): the bare handler with one PostgreSQL insert per request, into the database at
/// `url`.
async fn ceiling_c(
    spec: &LoadSpec,
    charges: Charges,
    url: &str,
    label: &str,
) -> anyhow::Result<Line> {
    let url = url.to_owned();
    let result = ceiling_run(spec, charges, async move {
        ceiling::pg_insert::router(&url).await
    })
    .await?;
    Ok(step("(c)", label, &result, vec![]))
}

fn step(key: &'static str, label: &str, result: &LoadResult, versus: Vec<&'static str>) -> Line {
    let line = Line::new(key, label, result, versus);
    print_step(&line, result);
    line
}

fn print_step(line: &Line, result: &LoadResult) {
    let cpu = line.cpu.map_or(String::new(), |c| {
        format!(
            "; hub CPU {:.0} µs per answer ({:.2} cores), load generator {:.2} cores",
            c.server_us_per_request, c.server_cores, c.client_cores
        )
    });
    println!(
        "  {}: {} ok/s, p50 {:.2} ms, p99 {:.2} ms, {} errors{cpu}",
        line.label,
        thousands(line.ok_per_s),
        line.p50_ms,
        line.p99_ms,
        line.errors
    );
    for (kind, count) in result.errors.iter().take(5) {
        println!("      {count} × {kind}");
    }
}

async fn ceiling_run<F>(spec: &LoadSpec, charges: Charges, make: F) -> anyhow::Result<LoadResult>
where
    F: Future<Output = anyhow::Result<axum::Router>> + Send + 'static,
{
    let server = CeilingServer::start(make).await?;
    let result = load::run(&[server.addr], *spec, Arc::new(charges)).await;
    drop(server);
    result
}

/// The hub processes under load: where to send requests, which processes to watch.
struct Targets {
    addrs: Vec<std::net::SocketAddr>,
    pids: Vec<u32>,
}

impl Targets {
    fn of(hubs: &[Hub]) -> Self {
        Self {
            addrs: hubs.iter().map(|h| h.addr).collect(),
            pids: hubs.iter().filter_map(Hub::pid).collect(),
        }
    }

    fn cpu(&self) -> Option<Duration> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|p| hub::cpu_time(*p)).sum()
    }
}

/// Runs one load against the hub and measures the CPU the hub and this process used.
async fn hub_load<W: load::Workload>(
    spec: &LoadSpec,
    targets: &Targets,
    workload: W,
    (key, label, versus): (&'static str, &str, Vec<&'static str>),
) -> anyhow::Result<(Line, LoadResult)> {
    let me = std::process::id();
    let before = (targets.cpu(), hub::cpu_time(me), std::time::Instant::now());
    let result = load::run(&targets.addrs, *spec, Arc::new(workload)).await?;
    let after = (targets.cpu(), hub::cpu_time(me), std::time::Instant::now());
    let mut line = Line::new(key, label, &result, versus);
    if let ((Some(s0), Some(c0), t0), (Some(s1), Some(c1), t1)) = (before, after) {
        // Warm-up included on both sides: CPU over all the answers of the whole run.
        let wall = (t1 - t0).as_secs_f64();
        let answers = result.answers_all.max(1) as f64;
        line.cpu = Some(CpuUse {
            server_us_per_request: (s1 - s0).as_secs_f64() * 1e6 / answers,
            server_cores: (s1 - s0).as_secs_f64() / wall,
            client_cores: (c1 - c0).as_secs_f64() / wall,
        });
    }
    print_step(&line, &result);
    Ok((line, result))
}

/// `POST /transaction` then `GET` over what was acknowledged; returns the acknowledged ids.
async fn hub_steps(
    spec: &LoadSpec,
    targets: &Targets,
    key: &str,
    charges: Charges,
    post: (&'static str, &str, Vec<&'static str>),
    get: (&'static str, &str, Vec<&'static str>),
    lines: &mut Vec<Line>,
) -> anyhow::Result<Vec<String>> {
    let (line, result) = hub_load(spec, targets, charges, post).await?;
    lines.push(line);
    let acked = result.acked;
    anyhow::ensure!(!acked.is_empty(), "the hub acknowledged no charge");
    let ids = Arc::new(acked);
    let lookups = Lookups {
        ids: Arc::clone(&ids),
        api_key: key.to_owned(),
        host: "127.0.0.1".into(),
    };
    let (line, _) = hub_load(spec, targets, lookups, get).await?;
    lines.push(line);
    Ok(Arc::try_unwrap(ids).unwrap_or_else(|shared| shared.as_ref().clone()))
}

/// `--hub-addr`: loads a hub someone else started.
async fn external(spec: &LoadSpec, addr: &str, key: &str, post_only: bool) -> anyhow::Result<bool> {
    let addrs: Vec<_> = tokio::net::lookup_host(addr).await?.take(1).collect();
    anyhow::ensure!(!addrs.is_empty(), "cannot resolve {addr}");
    let targets = Targets {
        addrs,
        pids: Vec::new(),
    };
    let charges = Charges {
        run_id: workload::run_id(),
        api_key: Some(key.to_owned()),
        host: addr.to_owned(),
        path: "/transaction",
    };
    let mut lines = Vec::new();
    let post = ("hub-post", "hub POST /transaction", vec![]);
    let acked = if post_only {
        let (line, result) = hub_load(spec, &targets, charges, post).await?;
        lines.push(line);
        result.acked
    } else {
        let get = ("hub-get", "hub GET /transaction/{id}", vec![]);
        hub_steps(spec, &targets, key, charges, post, get, &mut lines).await?
    };
    println!("\n{}", report::table(&lines));
    println!("{} charges acknowledged", acked.len());
    Ok(true)
}

async fn postgres_part(
    args: &Args,
    spec: &LoadSpec,
    bin: &std::path::Path,
    dir: &std::path::Path,
    url: &str,
    run_id: &str,
    lines: &mut Vec<Line>,
) -> anyhow::Result<verify::Verdict> {
    let charges = |key: Option<String>| Charges {
        run_id: run_id.to_owned(),
        api_key: key,
        host: "127.0.0.1".into(),
        path: "/transaction",
    };
    lines.push(
        ceiling_c(
            spec,
            charges(None),
            url,
            "ceiling (c) PostgreSQL insert/request",
        )
        .await?,
    );

    let hub_dir = dir.join("hub-postgres");
    std::fs::create_dir_all(&hub_dir)?;
    let secret = format!("dcbhub-bench-pin-secret-{run_id}-0123456789abcdef");
    let config = hub::write_config(&hub_dir, url, Some(&secret))?;
    let code = format!("BENCH-{}", run_id.to_ascii_uppercase());
    let key = hub::create_partner(bin, &config, &code, !args.no_receipts).await?;
    let mut hubs = Vec::new();
    for i in 0..2 {
        hubs.push(Hub::start(bin, &config, hub_dir.join(format!("hub-{i}.log"))).await?);
    }
    let acked = hub_steps(
        spec,
        &Targets::of(&hubs),
        &key,
        charges(Some(key.clone())),
        (
            "hub-pg-post",
            "hub PostgreSQL x2 POST /transaction",
            vec!["(c)"],
        ),
        (
            "hub-pg-get",
            "hub PostgreSQL x2 GET /transaction/{id}",
            vec!["(a)"],
        ),
        lines,
    )
    .await;
    stop(hubs).await?;
    let acked = acked?;
    lines.push(
        ceiling_c(
            spec,
            charges(None),
            url,
            "ceiling (c) again, after the hubs",
        )
        .await?,
    );
    let verdict = verify::postgres(url, &code, &acked).await?;
    println!("  exactly once (PostgreSQL): {verdict}");
    Ok(verdict)
}

fn quality_bars(lines: &[Line]) -> Vec<Bar> {
    let find = |key: &str| lines.iter().find(|l| l.key == key);
    let mut bars = Vec::new();
    if let Some(post) = find("hub-sqlite-post") {
        bars.push(Bar {
            what: "embedded: POST >= 20,000 charges/s".into(),
            measured: format!("{}/s", thousands(post.ok_per_s)),
            passed: post.ok_per_s >= 20_000.0,
        });
        bars.push(Bar {
            what: "embedded: POST p99 < 10 ms".into(),
            measured: format!("{:.2} ms", post.p99_ms),
            passed: post.p99_ms < 10.0,
        });
        bars.push(Bar {
            what: "embedded: POST without errors".into(),
            measured: format!("{} errors", post.errors),
            passed: post.errors == 0,
        });
        let r = ratio(lines, "hub-sqlite-post", "(b)").unwrap_or(0.0);
        bars.push(Bar {
            what: "embedded: POST >= 40% of the group-commit ceiling (b)".into(),
            measured: format!("{:.1}%", r * 100.0),
            passed: r >= 0.40,
        });
    }
    if let Some(get) = find("hub-sqlite-get") {
        bars.push(Bar {
            what: "embedded: GET >= 40,000/s".into(),
            measured: format!("{}/s", thousands(get.ok_per_s)),
            passed: get.ok_per_s >= 40_000.0,
        });
    }
    if let Some(post) = find("hub-pg-post") {
        bars.push(Bar {
            what: "PostgreSQL, two instances: POST >= 5,000/s".into(),
            measured: format!("{}/s", thousands(post.ok_per_s)),
            passed: post.ok_per_s >= 5_000.0,
        });
        let r = ratio(lines, "hub-pg-post", "(c)").unwrap_or(0.0);
        bars.push(Bar {
            what: "PostgreSQL, two instances: POST >= 50% of ceiling (c)".into(),
            measured: format!("{:.1}%", r * 100.0),
            passed: r >= 0.50,
        });
    }
    bars
}

/// The machine, as PERFORMANCE.md records it.
fn machine_summary() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = read("/proc/meminfo");
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "machine: {cpus} CPUs ({model}), {} GiB memory, Linux {}",
        mem_kib / (1024 * 1024),
        read("/proc/sys/kernel/osrelease").trim()
    )
}
