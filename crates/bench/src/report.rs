//! The printed results: one line per step, each hub figure beside its ceilings, then the
//! quality bars of PRODUCT.md.

use std::fmt::Write as _;

use crate::load::LoadResult;

/// One measured step.
pub struct Line {
    pub key: &'static str,
    pub label: String,
    pub ok_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Ceilings (by key) this figure is compared with.
    pub versus: Vec<&'static str>,
    /// For hub steps: CPU the hub processes used per successful request, and how many cores
    /// they kept busy on average; how many the load generator kept busy.
    pub cpu: Option<CpuUse>,
}

#[derive(Clone, Copy, Debug)]
pub struct CpuUse {
    pub server_us_per_request: f64,
    pub server_cores: f64,
    pub client_cores: f64,
}

impl Line {
    pub fn new(key: &'static str, label: &str, r: &LoadResult, versus: Vec<&'static str>) -> Self {
        Self {
            key,
            label: label.to_owned(),
            ok_per_s: r.throughput(),
            p50_ms: r.percentile_ms(0.50),
            p99_ms: r.percentile_ms(0.99),
            errors: r.error_count(),
            versus,
            cpu: None,
        }
    }
}

/// `12345.6` → `12,346`.
pub fn thousands(value: f64) -> String {
    let rounded = format!("{value:.0}");
    let (sign, digits) = match rounded.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", rounded.as_str()),
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// `key`'s rate as a share of `ceiling`'s. A ceiling measured more than once (before and
/// after the hub steps, as the machine's load drifts) counts with the mean of its runs.
pub fn ratio(lines: &[Line], key: &str, ceiling: &str) -> Option<f64> {
    let value = lines.iter().find(|l| l.key == key)?.ok_per_s;
    let runs: Vec<f64> = lines
        .iter()
        .filter(|l| l.key == ceiling)
        .map(|l| l.ok_per_s)
        .collect();
    let base = runs.iter().sum::<f64>() / runs.len().max(1) as f64;
    (!runs.is_empty() && base > 0.0).then(|| value / base)
}

pub fn table(lines: &[Line]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>9} {:>8} {:>8} {:>7} {:>13}  vs ceilings",
        "step", "ok/s", "p50 ms", "p99 ms", "errors", "hub CPU/req"
    );
    let _ = writeln!(out, "{}", "-".repeat(120));
    for line in lines {
        let versus: Vec<String> = line
            .versus
            .iter()
            .filter_map(|c| ratio(lines, line.key, c).map(|r| format!("{:.1}% of {c}", r * 100.0)))
            .collect();
        let cpu = line.cpu.map_or(String::new(), |c| {
            format!("{:.0} µs", c.server_us_per_request)
        });
        let _ = writeln!(
            out,
            "{:<40} {:>9} {:>8.2} {:>8.2} {:>7} {:>13}  {}",
            line.label,
            thousands(line.ok_per_s),
            line.p50_ms,
            line.p99_ms,
            line.errors,
            cpu,
            versus.join(", ")
        );
    }
    out
}

/// One quality bar: what it asks, what was measured, whether it holds.
pub struct Bar {
    pub what: String,
    pub measured: String,
    pub passed: bool,
}

pub fn bars(bars: &[Bar]) -> String {
    let mut out = String::new();
    for bar in bars {
        let _ = writeln!(
            out,
            "  [{}] {:<52} {}",
            if bar.passed { "PASS" } else { "FAIL" },
            bar.what,
            bar.measured
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &'static str, ok: f64, versus: Vec<&'static str>) -> Line {
        Line {
            key,
            label: key.to_owned(),
            ok_per_s: ok,
            p50_ms: 1.0,
            p99_ms: 2.0,
            errors: 0,
            versus,
            cpu: None,
        }
    }

    #[test]
    fn formats_thousands_and_ratios() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        let lines = vec![
            line("(b)", 40_000.0, vec![]),
            line("hub", 20_000.0, vec!["(b)"]),
        ];
        assert_eq!(ratio(&lines, "hub", "(b)"), Some(0.5));
        assert_eq!(ratio(&lines, "hub", "(z)"), None);
        let again = vec![
            line("(b)", 40_000.0, vec![]),
            line("hub", 20_000.0, vec!["(b)"]),
            line("(b)", 20_000.0, vec![]),
        ];
        assert_eq!(ratio(&again, "hub", "(b)"), Some(20_000.0 / 30_000.0));
        let text = table(&lines);
        assert!(text.contains("50.0% of (b)"), "{text}");
        assert!(text.contains("20,000"), "{text}");
    }
}
