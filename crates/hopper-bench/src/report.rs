//! The figures of a benchmark run, their medians over repeats, and how they
//! are printed: a table for people, one JSON object for scripts.

use serde::Serialize;

use crate::concurrent::Concurrent;
use crate::scale::{Spread, SpreadCheck};
use crate::usage::peak_rss_mb;
use crate::workloads::{Drain, Fairness, Latency};

/// The figures of one pass over every workload.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// W1, one dispatch per transaction: (hopper, raw) jobs/s.
    pub enqueue_one: (f64, f64),
    /// W1, bulk dispatch: (hopper, raw) jobs/s.
    pub enqueue_bulk: (f64, f64),
    /// W1's raw bulk limit by COPY, on PostgreSQL.
    pub raw_copy: Option<f64>,
    /// W8, single dispatches from many tasks at once.
    pub concurrent: Concurrent,
    /// W2 drain through Hopper.
    pub drain: Drain,
    /// The raw claim/complete loop, jobs/s.
    pub raw_drain: f64,
    /// The raw best drain: bigger claims from several connections, jobs/s.
    pub raw_drain_best: f64,
    /// W3.
    pub latency: Latency,
    /// W5: the drain of keyed jobs under a per-key limit.
    pub flow_per_key: Drain,
    /// W5g: the drain of unkeyed jobs under a global limit that does not bind.
    pub flow_global: Drain,
    /// W7: the drain of one batch and its `on_success` callback.
    pub batch: Drain,
    /// W7: the drain of one workflow, 1 → n → 1.
    pub workflow: Drain,
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

/// W8: single dispatches from many tasks at once, beside raw single-row
/// inserts from as many tasks.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct W8Report {
    /// Tasks dispatching at once.
    pub tasks: u32,
    /// Jobs dispatched between them.
    pub jobs: u32,
    /// Jobs/s through Hopper (group commit on, the default) and raw, and
    /// their ratio.
    #[serde(flatten)]
    pub versus: Versus,
    /// Median time one `Hopper::dispatch` call took, ms.
    pub hopper_p50_ms: f64,
    /// 99th percentile of that time, ms.
    pub hopper_p99_ms: f64,
    /// Jobs/s through Hopper with group commit off (one transaction per
    /// dispatch) and raw, and their ratio.
    pub alone: Versus,
    /// Median dispatch time with group commit off, ms.
    pub alone_p50_ms: f64,
    /// 99th percentile of that time, ms.
    pub alone_p99_ms: f64,
    /// Median time one raw INSERT took, ms.
    pub raw_p50_ms: f64,
    /// 99th percentile of that time, ms.
    pub raw_p99_ms: f64,
}

/// One W9 drain: several worker processes on one database, beside the raw
/// best drain on as many connections.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleOut {
    /// Worker processes draining at once.
    pub processes: u32,
    /// Jobs/s through Hopper and raw, and their ratio.
    #[serde(flatten)]
    pub versus: Versus,
    /// Every job finished after exactly one run, across the processes.
    #[serde(flatten)]
    pub check: SpreadCheck,
}

impl ScaleOut {
    /// `spread`, the drain by `processes` worker processes, beside the raw
    /// drain's `raw` jobs/s.
    pub fn new(processes: u32, spread: Spread, raw: f64) -> Self {
        Self {
            processes,
            versus: Versus::new(spread.jobs_per_s, raw),
            check: spread.check,
        }
    }
}

/// W9: W2's drain by several worker processes at once on one database.
#[derive(Clone, Debug, Serialize)]
pub struct W9Report {
    /// Run once, after the repeated passes.
    pub passes: usize,
    /// Jobs drained each time.
    pub jobs: u32,
    /// Workers per process.
    pub workers_per_process: usize,
    /// Jobs per claim in the raw drain (the raw best drain's).
    pub raw_claim_batch: Option<u32>,
    /// Why W9 did not run, if it did not.
    pub skipped: Option<&'static str>,
    /// One drain per process count, fewest processes first.
    pub runs: Vec<ScaleOut>,
}

impl W9Report {
    /// The drains `runs` of `jobs` each, by processes of `workers`, against
    /// raw loops claiming `raw_claim_batch` at a time.
    pub fn new(jobs: u32, workers: usize, raw_claim_batch: u32, runs: Vec<ScaleOut>) -> Self {
        Self {
            passes: 1,
            jobs,
            workers_per_process: workers,
            raw_claim_batch: Some(raw_claim_batch),
            skipped: None,
            runs,
        }
    }

    /// W9 not run, for `reason`.
    pub fn skipped(jobs: u32, workers: usize, reason: &'static str) -> Self {
        Self {
            passes: 0,
            jobs,
            workers_per_process: workers,
            raw_claim_batch: None,
            skipped: Some(reason),
            runs: Vec::new(),
        }
    }

    /// Every drain ran every job exactly once.
    fn ok(&self) -> bool {
        self.runs.iter().all(|run| run.check.ok(self.jobs))
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

/// The CPU time of a started pool with nothing to do.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Idle {
    /// Workers in the pool.
    pub workers: usize,
    /// How long it was watched, s.
    pub seconds: f64,
    /// CPU time the whole process used meanwhile, ms.
    pub cpu_ms: f64,
}

/// One W4 drain beside W2's rate.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Growth {
    /// Jobs drained.
    pub jobs: u32,
    /// Finished rows kept in the table meanwhile.
    pub finished_rows_kept: u32,
    /// The drain's rate and checks.
    #[serde(flatten)]
    pub drain: Drain,
    /// jobs_per_s / W2's jobs_per_s (median).
    pub ratio_to_w2: f64,
}

/// W4: the drain with many jobs queued, and behind many finished rows.
#[derive(Clone, Copy, Debug)]
pub struct W4 {
    /// `--w4-jobs` queued, drained.
    pub queued: Drain,
    /// `--jobs` queued behind `--w4-jobs` finished rows, drained.
    pub finished_kept: Drain,
}

/// W4's figures as reported.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct W4Report {
    /// Run once, after the repeated passes.
    pub passes: usize,
    /// Many queued.
    pub queued: Growth,
    /// Many finished rows kept.
    pub finished_kept: Growth,
}

/// A drain of a flow-controlled queue (W5, W5g), or of a batch and its
/// callback (W7), beside W2's rate.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Limited {
    /// Jobs drained.
    pub jobs: u32,
    /// Distinct partition keys (job `i` has key `i % keys`); null: no keys.
    pub keys: Option<u32>,
    /// The queue's per-key concurrency limit.
    pub key_limit: Option<u32>,
    /// The queue's concurrency limit.
    pub concurrency_limit: Option<u32>,
    /// Jobs per second (median over the passes).
    pub jobs_per_s: f64,
    /// jobs_per_s / W2's jobs_per_s (medians).
    pub ratio_to_w2: f64,
    /// Fewest `finished` rows any pass ended with (should equal `jobs`).
    pub finished: u64,
    /// Jobs never run, summed over passes.
    pub lost: u64,
    /// Jobs run more than once, summed over passes.
    pub duplicates: u64,
    /// The highest peak resident memory of the worker processes, MB.
    pub worker_peak_rss_mb: Option<f64>,
}

impl Limited {
    /// Every pass ran every job exactly once.
    fn ok(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.finished == u64::from(self.jobs)
    }
}

/// Everything a run reports; each figure is the median over the passes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The database: sqlite, postgres or mysql.
    pub database: &'static str,
    /// Jobs per workload.
    pub jobs: u32,
    /// Workers in the W2 pool.
    pub workers: usize,
    /// Jobs per claim in the raw drain loop.
    pub raw_claim_batch: u32,
    /// Passes the medians are taken over.
    pub repeat: usize,
    /// Where the databases went.
    pub databases: String,
    /// W1, one dispatch per transaction vs single-row INSERT commits.
    pub enqueue_one: Versus,
    /// W1, one `dispatch_many` call vs one multi-row INSERT transaction.
    pub enqueue_bulk: Versus,
    /// W1, one `dispatch_many` call vs one COPY, on PostgreSQL.
    pub enqueue_copy: Option<Versus>,
    /// W8, single dispatches from many tasks at once vs raw single-row
    /// inserts from as many tasks.
    pub w8: W8Report,
    /// W2 vs one loop claiming and finishing `raw_claim_batch` jobs a round.
    pub drain: Versus,
    /// Jobs per claim in the raw best drain.
    pub raw_best_claim_batch: u32,
    /// Loops, each on its own connection, in the raw best drain.
    pub raw_best_loops: u32,
    /// W2 vs the raw best drain.
    pub drain_best: Versus,
    /// W2's check.
    pub drain_check: DrainCheck,
    /// W3 jobs dispatched.
    pub latency_samples: u32,
    /// W3 median dispatch-to-handler delay, ms.
    pub latency_p50_ms: f64,
    /// W3 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// The highest peak resident memory (VmHWM) of the W2 worker processes,
    /// MB; null off Linux.
    pub worker_peak_rss_mb: Option<f64>,
    /// An idle pool's CPU use.
    pub idle: Idle,
    /// W4, when asked for with `--w4`.
    pub w4: Option<W4Report>,
    /// W5: keyed jobs drained under a per-key limit, vs W2.
    pub w5: Limited,
    /// W5g: unkeyed jobs drained under a global limit that does not bind, vs W2.
    pub w5g: Limited,
    /// W7: one batch of `jobs - 1` jobs and its `on_success` callback (the
    /// last job) drained, vs W2.
    pub w7_batch: Limited,
    /// W7: one workflow of `jobs` jobs (1 → jobs - 2 → 1) drained, vs W2.
    pub w7_workflow: Limited,
    /// W6: small keys queued behind one big key's backlog on a fair queue
    /// (run once, after the passes).
    pub w6: Fairness,
    /// W9, when asked for with `--w9`: drains by several worker processes.
    pub w9: Option<W9Report>,
    /// The benchmark process's own peak resident memory (it makes the
    /// payloads and runs W1 and W3), MB.
    pub bench_peak_rss_mb: Option<f64>,
}

/// Inputs of a report other than the passes.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The database.
    pub database: &'static str,
    /// Jobs per workload.
    pub jobs: u32,
    /// Workers in the W2 pool.
    pub workers: usize,
    /// Jobs per claim in the raw drain loop.
    pub raw_claim_batch: u32,
    /// The raw best drain: jobs per claim and loops.
    pub raw_best: (u32, u32),
    /// W3 jobs dispatched.
    pub latency_samples: u32,
    /// Where the databases go.
    pub databases: String,
    /// W4 jobs.
    pub w4_jobs: u32,
    /// W5's distinct keys and per-key limit.
    pub w5: (u32, u32),
    /// W5g's concurrency limit.
    pub w5g_limit: u32,
    /// W8's tasks.
    pub w8_tasks: u32,
}

impl Report {
    /// Takes the median of every figure over `passes` (at least one).
    pub fn new(
        setup: Setup,
        passes: &[Pass],
        idle: Idle,
        w4: Option<W4>,
        w6: Fairness,
        w9: Option<W9Report>,
    ) -> Self {
        let med = |figure: fn(&Pass) -> f64| median(passes.iter().map(figure).collect());
        let w2_rate = med(|p| p.drain.jobs_per_s);
        let limited = |drain: fn(&Pass) -> Drain, keys, key_limit, concurrency_limit| {
            let jobs_per_s = median(passes.iter().map(|p| drain(p).jobs_per_s).collect());
            Limited {
                jobs: setup.jobs,
                keys,
                key_limit,
                concurrency_limit,
                jobs_per_s,
                ratio_to_w2: jobs_per_s / w2_rate,
                finished: passes.iter().map(|p| drain(p).finished).min().unwrap_or(0),
                lost: passes.iter().map(|p| drain(p).lost).sum(),
                duplicates: passes.iter().map(|p| drain(p).duplicates).sum(),
                worker_peak_rss_mb: passes
                    .iter()
                    .filter_map(|p| drain(p).worker_peak_rss_mb)
                    .reduce(f64::max),
            }
        };
        let growth = |drain: Drain, jobs: u32, kept: u32| Growth {
            jobs,
            finished_rows_kept: kept,
            drain,
            ratio_to_w2: drain.jobs_per_s / w2_rate,
        };
        Self {
            database: setup.database,
            jobs: setup.jobs,
            workers: setup.workers,
            raw_claim_batch: setup.raw_claim_batch,
            repeat: passes.len(),
            databases: setup.databases,
            enqueue_one: Versus::new(med(|p| p.enqueue_one.0), med(|p| p.enqueue_one.1)),
            enqueue_bulk: Versus::new(med(|p| p.enqueue_bulk.0), med(|p| p.enqueue_bulk.1)),
            enqueue_copy: passes.iter().all(|p| p.raw_copy.is_some()).then(|| {
                Versus::new(
                    med(|p| p.enqueue_bulk.0),
                    med(|p| p.raw_copy.unwrap_or_default()),
                )
            }),
            w8: W8Report {
                tasks: setup.w8_tasks,
                jobs: setup.jobs,
                versus: Versus::new(
                    med(|p| p.concurrent.hopper.jobs_per_s),
                    med(|p| p.concurrent.raw.jobs_per_s),
                ),
                hopper_p50_ms: med(|p| p.concurrent.hopper.p50_ms),
                hopper_p99_ms: med(|p| p.concurrent.hopper.p99_ms),
                alone: Versus::new(
                    med(|p| p.concurrent.alone.jobs_per_s),
                    med(|p| p.concurrent.raw.jobs_per_s),
                ),
                alone_p50_ms: med(|p| p.concurrent.alone.p50_ms),
                alone_p99_ms: med(|p| p.concurrent.alone.p99_ms),
                raw_p50_ms: med(|p| p.concurrent.raw.p50_ms),
                raw_p99_ms: med(|p| p.concurrent.raw.p99_ms),
            },
            drain: Versus::new(med(|p| p.drain.jobs_per_s), med(|p| p.raw_drain)),
            raw_best_claim_batch: setup.raw_best.0,
            raw_best_loops: setup.raw_best.1,
            drain_best: Versus::new(med(|p| p.drain.jobs_per_s), med(|p| p.raw_drain_best)),
            drain_check: DrainCheck {
                finished: passes.iter().map(|p| p.drain.finished).min().unwrap_or(0),
                lost: passes.iter().map(|p| p.drain.lost).sum(),
                duplicates: passes.iter().map(|p| p.drain.duplicates).sum(),
            },
            latency_samples: setup.latency_samples,
            latency_p50_ms: med(|p| p.latency.p50_ms),
            latency_p99_ms: med(|p| p.latency.p99_ms),
            worker_peak_rss_mb: passes
                .iter()
                .filter_map(|p| p.drain.worker_peak_rss_mb)
                .reduce(f64::max),
            idle,
            w4: w4.map(|w4| W4Report {
                passes: 1,
                queued: growth(w4.queued, setup.w4_jobs, 0),
                finished_kept: growth(w4.finished_kept, setup.jobs, setup.w4_jobs),
            }),
            w5: limited(|p| p.flow_per_key, Some(setup.w5.0), Some(setup.w5.1), None),
            w5g: limited(|p| p.flow_global, None, None, Some(setup.w5g_limit)),
            w7_batch: limited(|p| p.batch, None, None, None),
            w7_workflow: limited(|p| p.workflow, None, None, None),
            w6,
            w9,
            bench_peak_rss_mb: peak_rss_mb(),
        }
    }

    /// Whether W2, W4, W5, W5g, W6, W7 and W9 ran every job exactly once and
    /// the database agrees.
    pub fn drain_ok(&self) -> bool {
        let check = self.drain_check;
        let w4_ok = self.w4.is_none_or(|w4| {
            [w4.queued, w4.finished_kept].iter().all(|g| {
                g.drain.lost == 0
                    && g.drain.duplicates == 0
                    && g.drain.finished == u64::from(g.jobs)
            })
        });
        check.lost == 0
            && check.duplicates == 0
            && check.finished == u64::from(self.jobs)
            && w4_ok
            && self.w5.ok()
            && self.w5g.ok()
            && self.w7_batch.ok()
            && self.w7_workflow.ok()
            && self.w6.ok()
            && self.w9.as_ref().is_none_or(W9Report::ok)
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Hopper benchmark: {} jobs, {} workers, median of {} pass(es)\ndatabases: {}\n\n",
            self.jobs, self.workers, self.repeat, self.databases
        );
        out += &format!(
            "{:<44} {:>16} {:>16} {:>11}\n",
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
            (
                &*format!(
                    "W2 drain vs raw best ({}/claim, {} conns)",
                    self.raw_best_claim_batch, self.raw_best_loops
                ),
                self.drain_best,
            ),
        ];
        let copy = self
            .enqueue_copy
            .map(|copy| ("W1 enqueue, one bulk call vs raw COPY", copy));
        for (name, v) in rows.into_iter().chain(copy) {
            out += &format!(
                "{name:<44} {:>16} {:>16} {:>11.2}\n",
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
                "{name:<44} {:>16} {:>16} {:>11}\n",
                format!("{ms:.2} ms"),
                "-",
                "-"
            );
        }
        if let Some(w4) = &self.w4 {
            for (name, g) in [
                (
                    format!("W4 drain, {} queued", g_count(w4.queued.jobs)),
                    w4.queued,
                ),
                (
                    format!(
                        "W4 drain, {} finished kept",
                        g_count(w4.finished_kept.finished_rows_kept)
                    ),
                    w4.finished_kept,
                ),
            ] {
                out += &format!(
                    "{name:<44} {:>16} {:>16} {:>11}\n",
                    per_s(g.drain.jobs_per_s),
                    "-",
                    format!("{:.2} of W2", g.ratio_to_w2)
                );
            }
        }
        for (name, limited) in [
            (
                format!(
                    "W5 drain, {} keys, {} per key",
                    g_count(self.w5.keys.unwrap_or(0)),
                    self.w5.key_limit.unwrap_or(0)
                ),
                self.w5,
            ),
            (
                format!(
                    "W5g drain, limit {} (not binding)",
                    g_count(self.w5g.concurrency_limit.unwrap_or(0))
                ),
                self.w5g,
            ),
            (
                format!(
                    "W7 drain, batch of {} + on_success",
                    g_count(self.w7_batch.jobs.saturating_sub(1))
                ),
                self.w7_batch,
            ),
            (
                format!(
                    "W7 drain, workflow 1 -> {} -> 1",
                    g_count(self.w7_workflow.jobs.saturating_sub(2))
                ),
                self.w7_workflow,
            ),
        ] {
            out += &format!(
                "{name:<44} {:>16} {:>16} {:>11}\n",
                per_s(limited.jobs_per_s),
                "-",
                format!("{:.2} of W2", limited.ratio_to_w2)
            );
        }
        let w8 = &self.w8;
        for (how, versus, p50, p99) in [
            (
                "group commit",
                &w8.versus,
                w8.hopper_p50_ms,
                w8.hopper_p99_ms,
            ),
            (
                "one per commit",
                &w8.alone,
                w8.alone_p50_ms,
                w8.alone_p99_ms,
            ),
        ] {
            let name = format!("W8 dispatch, {} tasks, {how}", w8.tasks);
            out += &format!(
                "{name:<44} {:>16} {:>16} {:>11.2}\n",
                per_s(versus.hopper_jobs_per_s),
                per_s(versus.raw_jobs_per_s),
                versus.ratio
            );
            out += &format!(
                "{:<44} {:>16} {:>16} {:>11}\n",
                format!("W8 dispatch time p50/p99, {how}"),
                format!("{p50:.2}/{p99:.2} ms"),
                format!("{:.2}/{:.2} ms", w8.raw_p50_ms, w8.raw_p99_ms),
                "-"
            );
        }
        if let Some(w9) = &self.w9 {
            for run in &w9.runs {
                let name = format!(
                    "W9 drain, {} process(es) x {} workers",
                    run.processes, w9.workers_per_process
                );
                out += &format!(
                    "{name:<44} {:>16} {:>16} {:>11.2}\n",
                    per_s(run.versus.hopper_jobs_per_s),
                    per_s(run.versus.raw_jobs_per_s),
                    run.versus.ratio
                );
            }
            match (w9.skipped, w9.raw_claim_batch) {
                (Some(reason), _) => out += &format!("W9 scale-out skipped ({reason})\n"),
                (None, Some(batch)) => {
                    out += &format!(
                        "W9: {} jobs drained by worker processes started together on one database; \
                         raw: the best drain, {batch}/claim, one connection per process\n",
                        g_count(w9.jobs)
                    );
                }
                (None, None) => {}
            }
        }
        let w6 = &self.w6;
        let rows = [
            (
                "W6 small-key wait p50/p99".to_owned(),
                format!("{:.0}/{:.0} ms", w6.small_wait_p50_ms, w6.small_wait_p99_ms),
                "-".to_owned(),
            ),
            (
                "W6 small keys done (bound: 2x them at rate)".to_owned(),
                format!("{:.2} s", w6.small_done_s),
                format!("{:.2} of bound", w6.small_done_vs_bound),
            ),
            (
                format!(
                    "W6 drain, all {} jobs, fair queue",
                    g_count(w6.shape.big_jobs + w6.shape.small_keys * w6.shape.small_jobs_per_key)
                ),
                per_s(w6.jobs_per_s),
                "-".to_owned(),
            ),
        ];
        for (name, hopper, ratio) in rows {
            out += &format!("{name:<44} {hopper:>16} {:>16} {ratio:>11}\n", "-");
        }
        out += &format!(
            "W6: {} keys x {} jobs queued behind {} of one key; small keys done {:.2} s after the pool started (bound {:.2} s), all jobs {:.2} s; \
             {} big-key jobs started before the last small-key job ended\n",
            w6.shape.small_keys,
            w6.shape.small_jobs_per_key,
            g_count(w6.shape.big_jobs),
            w6.small_done_s,
            w6.fair_bound_s,
            w6.all_done_s,
            w6.big_jobs_before_small_done
        );
        let check = self.drain_check;
        out += &format!(
            "\nW2 check: {} of {} finished, {} lost, {} run more than once{}\n",
            check.finished,
            self.jobs,
            check.lost,
            check.duplicates,
            if self.drain_ok() { "" } else { "  <-- FAILED" }
        );
        for (name, limited) in [
            ("W5", self.w5),
            ("W5g", self.w5g),
            ("W7", self.w7_batch),
            ("W7 workflow", self.w7_workflow),
        ] {
            out += &format!(
                "{name} check: {} of {} finished, {} lost, {} run more than once{}\n",
                limited.finished,
                limited.jobs,
                limited.lost,
                limited.duplicates,
                if limited.ok() { "" } else { "  <-- FAILED" }
            );
        }
        out += &format!(
            "W6 check: {} finished, {} lost, {} run more than once{}\n",
            w6.finished,
            w6.lost,
            w6.duplicates,
            if w6.ok() { "" } else { "  <-- FAILED" }
        );
        if let Some(w9) = &self.w9 {
            for run in &w9.runs {
                let check = &run.check;
                out += &format!(
                    "W9 check, {} process(es): {} of {} finished, {} runs (per process {:?}), \
                     {} lost, {} run more than once{}\n",
                    run.processes,
                    check.finished,
                    w9.jobs,
                    check.runs,
                    check.ran_per_process,
                    check.lost,
                    check.duplicates,
                    if check.ok(w9.jobs) {
                        ""
                    } else {
                        "  <-- FAILED"
                    }
                );
            }
        }
        let mb =
            |mb: Option<f64>| mb.map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:.1} MB"));
        out += &format!("worker peak RSS (W2): {}\n", mb(self.worker_peak_rss_mb));
        if let Some(w4) = &self.w4 {
            out += &format!(
                "worker peak RSS (W4, {} queued): {}\n",
                g_count(w4.queued.jobs),
                mb(w4.queued.drain.worker_peak_rss_mb)
            );
        }
        out += &format!(
            "idle pool of {}: {:.1} ms CPU in {:.0} s\n",
            self.idle.workers, self.idle.cpu_ms, self.idle.seconds
        );
        out
    }
}

/// `12345.6` as `12,346 jobs/s`.
fn per_s(rate: f64) -> String {
    format!(
        "{} jobs/s",
        g_count(rate.max(0.0).round().min(f64::from(u32::MAX)) as u32)
    )
}

/// `1000000` as `1,000,000`.
fn g_count(n: u32) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
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
}
