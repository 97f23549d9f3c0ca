//! The figures of a benchmark run, their medians over repeats, and how they
//! are printed: a table for people, one JSON object for scripts.

use serde::Serialize;

use crate::workloads::{Drain, Latency};

/// The figures of one pass over every workload.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// W1, one dispatch per transaction: (hopper, raw) jobs/s.
    pub enqueue_one: (f64, f64),
    /// W1, bulk dispatch: (hopper, raw) jobs/s.
    pub enqueue_bulk: (f64, f64),
    /// W2 drain through Hopper.
    pub drain: Drain,
    /// The raw claim/complete loop, jobs/s.
    pub raw_drain: f64,
    /// W3.
    pub latency: Latency,
}

/// A Hopper rate beside the raw SQL rate for the same work.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Versus {
    /// Through Hopper, jobs/s.
    pub hopper_jobs_per_s: f64,
    /// Raw SQL, jobs/s.
    pub raw_jobs_per_s: f64,
    /// hopper / raw.
    pub ratio: f64,
}

impl Versus {
    fn new(hopper: f64, raw: f64) -> Self {
        Self {
            hopper_jobs_per_s: hopper,
            raw_jobs_per_s: raw,
            ratio: hopper / raw,
        }
    }
}

/// W2's correctness check, over every pass.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DrainCheck {
    /// Fewest `finished` rows any pass ended with (should equal `jobs`).
    pub finished: u64,
    /// Jobs never run, summed over passes.
    pub lost: u64,
    /// Jobs run more than once, summed over passes.
    pub duplicates: u64,
}

/// Everything a run reports; each figure is the median over the passes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Jobs per workload.
    pub jobs: u32,
    /// Workers in the W2 pool.
    pub workers: usize,
    /// Jobs per claim in the raw drain loop.
    pub raw_claim_batch: u32,
    /// Passes the medians are taken over.
    pub repeat: usize,
    /// Where the database files went.
    pub databases: String,
    /// W1, one dispatch per transaction vs single-row INSERT commits.
    pub enqueue_one: Versus,
    /// W1, one `dispatch_many` call vs multi-row INSERTs in one transaction.
    pub enqueue_bulk: Versus,
    /// W2 vs one loop claiming and finishing `raw_claim_batch` jobs a round.
    pub drain: Versus,
    /// W2's check.
    pub drain_check: DrainCheck,
    /// W3 jobs dispatched.
    pub latency_samples: u32,
    /// W3 median dispatch-to-handler delay, ms.
    pub latency_p50_ms: f64,
    /// W3 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// The process's peak resident memory (VmHWM), MB; null off Linux.
    pub peak_rss_mb: Option<f64>,
}

/// Inputs of a report other than the passes.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Jobs per workload.
    pub jobs: u32,
    /// Workers in the W2 pool.
    pub workers: usize,
    /// Jobs per claim in the raw drain loop.
    pub raw_claim_batch: u32,
    /// W3 jobs dispatched.
    pub latency_samples: u32,
    /// Where the database files go.
    pub databases: String,
}

impl Report {
    /// Takes the median of every figure over `passes` (at least one).
    pub fn new(setup: Setup, passes: &[Pass]) -> Self {
        let med = |figure: fn(&Pass) -> f64| median(passes.iter().map(figure).collect());
        Self {
            jobs: setup.jobs,
            workers: setup.workers,
            raw_claim_batch: setup.raw_claim_batch,
            repeat: passes.len(),
            databases: setup.databases,
            enqueue_one: Versus::new(med(|p| p.enqueue_one.0), med(|p| p.enqueue_one.1)),
            enqueue_bulk: Versus::new(med(|p| p.enqueue_bulk.0), med(|p| p.enqueue_bulk.1)),
            drain: Versus::new(med(|p| p.drain.jobs_per_s), med(|p| p.raw_drain)),
            drain_check: DrainCheck {
                finished: passes.iter().map(|p| p.drain.finished).min().unwrap_or(0),
                lost: passes.iter().map(|p| p.drain.lost).sum(),
                duplicates: passes.iter().map(|p| p.drain.duplicates).sum(),
            },
            latency_samples: setup.latency_samples,
            latency_p50_ms: med(|p| p.latency.p50_ms),
            latency_p99_ms: med(|p| p.latency.p99_ms),
            peak_rss_mb: peak_rss_mb(),
        }
    }

    /// Whether W2 ran every job exactly once and the database agrees.
    pub fn drain_ok(&self) -> bool {
        let check = self.drain_check;
        check.lost == 0 && check.duplicates == 0 && check.finished == u64::from(self.jobs)
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Hopper benchmark: {} jobs, {} workers, median of {} pass(es)\ndatabases: {}\n\n",
            self.jobs, self.workers, self.repeat, self.databases
        );
        out += &format!(
            "{:<40} {:>16} {:>16} {:>11}\n",
            "workload", "hopper", "raw SQL", "hopper/raw"
        );
        let rows = [
            ("W1 enqueue, one per transaction", self.enqueue_one),
            ("W1 enqueue, one bulk call", self.enqueue_bulk),
            (
                &*format!(
                    "W2 drain, {} workers (raw: {}/claim)",
                    self.workers, self.raw_claim_batch
                ),
                self.drain,
            ),
        ];
        for (name, v) in rows {
            out += &format!(
                "{name:<40} {:>16} {:>16} {:>11.2}\n",
                per_s(v.hopper_jobs_per_s),
                per_s(v.raw_jobs_per_s),
                v.ratio
            );
        }
        for (name, ms) in [
            ("W3 latency p50", self.latency_p50_ms),
            ("W3 latency p99", self.latency_p99_ms),
        ] {
            let name = format!("{name} ({} jobs)", self.latency_samples);
            out += &format!(
                "{name:<40} {:>16} {:>16} {:>11}\n",
                format!("{ms:.2} ms"),
                "-",
                "-"
            );
        }
        let check = self.drain_check;
        out += &format!(
            "\nW2 check: {} of {} finished, {} lost, {} run more than once{}\n",
            check.finished,
            self.jobs,
            check.lost,
            check.duplicates,
            if self.drain_ok() { "" } else { "  <-- FAILED" }
        );
        out += &match self.peak_rss_mb {
            Some(mb) => format!("peak RSS: {mb:.1} MB\n"),
            None => "peak RSS: unknown (no /proc/self/status)\n".to_owned(),
        };
        out
    }
}

/// `12345.6` as `12,346 jobs/s`.
fn per_s(rate: f64) -> String {
    let digits = format!("{:.0}", rate.max(0.0));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{grouped} jobs/s")
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The process's peak resident set (VmHWM in /proc/self/status), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn rates_are_grouped() {
        assert_eq!(per_s(1234567.4), "1,234,567 jobs/s");
        assert_eq!(per_s(999.0), "999 jobs/s");
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_mb().is_some_and(|mb| mb > 0.0));
        }
    }
}
