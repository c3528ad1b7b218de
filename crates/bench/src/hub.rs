//! Runs the release `dcbhub` binary: its configuration file, a partner, `serve` processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `dcbhub` binary: `--hub PATH`, or `dcbhub` beside this executable
/// (`target/release/`).
pub fn locate(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("dcbhub"))
            .context("cannot tell the folder of this executable")?,
    };
    if !path.is_file() {
        bail!(
            "the hub binary {} is missing; build it first with\n    \
             cargo build --release -p dcbhub -p dcbhub-bench",
            path.display()
        );
    }
    Ok(path)
}

/// Writes the hub's configuration: the sandbox CSP with spending limits raised far above what
/// a run can spend, no DEMO partner, and (for PostgreSQL) the shared PIN secret.
pub fn write_config(
    dir: &Path,
    database_url: &str,
    pin_secret: Option<&str>,
) -> anyhow::Result<PathBuf> {
    // A JSON string literal is a valid TOML basic string.
    let quoted = |s: &str| serde_json::to_string(s);
    let mut text = format!(
        "database_url = {}\n\
         log_format = \"json\"\n\
         [sandbox]\n\
         demo_partner = false\n\
         [sandbox.limits]\n\
         currency = \"GBP\"\n\
         per_transaction = \"40.00\"\n\
         per_day = \"1000000.00\"\n\
         per_month = \"1000000000.00\"\n",
        quoted(database_url)?
    );
    if let Some(secret) = pin_secret {
        text.push_str(&format!("[pin]\nsecret = {}\n", quoted(secret)?));
    }
    let path = dir.join("dcbhub.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn command(bin: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    // Only the benchmark's configuration counts, not DCBHUB_* variables of the caller.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DCBHUB_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Creates a partner whose consent policy needs no PIN; returns its API key.
pub async fn create_partner(
    bin: &Path,
    config: &Path,
    code: &str,
    receipts: bool,
) -> anyhow::Result<String> {
    let mut cmd = command(bin, config);
    cmd.args([
        "partner",
        "create",
        "--code",
        code,
        "--name",
        "Benchmark",
        "--consent",
        "none",
        "--json",
    ]);
    if !receipts {
        cmd.arg("--no-receipts");
    }
    let out = cmd
        .output()
        .await
        .context("cannot run dcbhub partner create")?;
    if !out.status.success() {
        bail!(
            "dcbhub partner create failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Created {
        api_key: String,
    }
    let created: Created = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unexpected output of dcbhub partner create: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(created.api_key)
}

/// A running `dcbhub serve`.
pub struct Hub {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

const LISTENING: &str = "dcbhub listening on http://";

impl Hub {
    /// Starts `dcbhub serve` on a free port; its logs go to `log`.
    pub async fn start(bin: &Path, config: &Path, log: PathBuf) -> anyhow::Result<Self> {
        let mut cmd = command(bin, config);
        cmd.arg("serve")
            .env("DCBHUB_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut child = cmd.spawn().context("cannot start dcbhub serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(LISTENING) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    return Ok(Some(addr.parse::<SocketAddr>()?));
                }
            }
            anyhow::Ok(None)
        })
        .await;
        let addr = match found {
            Ok(Ok(Some(addr))) => addr,
            other => {
                let _ = child.start_kill();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                bail!(
                    "dcbhub serve did not start ({}); its log ends:\n{}",
                    match other {
                        Err(_) => "timed out".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(_)) => "exited".to_owned(),
                    },
                    last_lines(&tail, 20)
                );
            }
        };
        // Nothing more is expected on stdout; keep draining it so the hub never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr, log })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would: what it acknowledged must
    /// already be durable.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "dcbhub serve had already exited ({status}); its log ends:\n{}",
                last_lines(&std::fs::read_to_string(&self.log).unwrap_or_default(), 20)
            );
        }
        self.child.kill().await?;
        Ok(())
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// CPU time (user + system, all threads) process `pid` has used so far, from `/proc`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it. The
    // first one after it is field 3 (state); utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // In clock ticks, USER_HZ = 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// What process `pid` holds resident now, in bytes: `(anonymous, file-backed)`. The
/// file-backed part is mostly the readers' mapping of the SQLite database, which the kernel
/// can drop at any time; the anonymous part is the process's own memory.
pub fn resident_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_resident_memory_of_this_process() {
        let (anonymous, file) = resident_memory(std::process::id()).unwrap();
        assert!(anonymous > 1 << 16 && file > 1 << 16, "{anonymous} {file}");
    }

    #[test]
    fn reads_the_cpu_time_of_this_process() {
        let before = cpu_time(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(150) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = cpu_time(std::process::id()).unwrap();
        assert!(after > before, "{before:?} → {after:?}");
    }
}
