//! The controller: starts the worker processes (one of them, at all
//! times, on a host clock that runs ahead) and the dispatcher, does damage
//! on a timer (SIGKILLs, connection kills, a server restart, a dispatcher
//! killed with its transaction open), then lets the survivors drain the
//! queue and hands what happened to the audit.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use hopper::store::QueueFlow;
use hopper::testing::all_jobs;
use hopper::{Hopper, Job, JobFilter, JobState};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::db::{self, Backend, Db, Fresh};
use crate::job::ChaosJob;

/// How the controller runs and what damage it does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Jobs dispatched over the run.
    pub jobs: u64,
    /// Worker processes alive at a time.
    pub workers: usize,
    /// Jobs each worker process runs at the same time.
    pub concurrency: usize,
    /// How long the damage goes on; jobs are dispatched evenly over it.
    pub duration: Duration,
    /// The lease on a claimed job.
    pub lease: Duration,
    /// How often expired leases are looked for.
    pub rescue_interval: Duration,
    /// About how often a worker process is SIGKILLed.
    pub kill_every: Duration,
    /// About how often the dispatcher is killed with a transaction open.
    pub writer_kill_every: Duration,
    /// About how often a burst of connection kills hits a server database.
    pub burst_every: Duration,
    /// Whether a local PostgreSQL server is restarted once, halfway.
    pub restart: bool,
    /// How long the survivors get to drain the queue after the damage stops.
    pub drain_timeout: Duration,
    /// The most milliseconds one job works.
    pub max_work_ms: u64,
    /// How long each dispatch transaction stays open after writing its rows.
    pub hold_ms: u64,
    /// Where the child processes' logs go (none: discarded).
    pub log_dir: Option<PathBuf>,
    /// How far ahead of the real time the one skewed worker process's clock
    /// runs (zero: no skewed worker).
    pub clock_skew: Duration,
    /// A limited run's flow settings (`None`: jobs without keys on a queue
    /// without limits).
    pub limits: Option<Limits>,
    /// Dispatch each paced group of jobs as a batch with a success and a
    /// completion callback, and audit the batches.
    pub batches: bool,
    /// Dispatch each paced group of jobs as a workflow (1 → n → 1) with a
    /// success and a completion callback, and audit the batches and the
    /// order the steps ran in.
    pub workflows: bool,
    /// In a batched or workflow run: exactly this many jobs in each batch
    /// or workflow (group `k` is jobs `k·n..(k+1)·n`, the last group what
    /// is left), each dispatched once its last job is due (`None`: each
    /// group holds what became due since the last one).
    pub group_size: Option<u64>,
}

/// The limited workload: jobs spread over keys, the queue limited per key
/// and in all.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Partition keys: job `n` gets key `key:<n % keys>`.
    pub keys: u64,
    /// The most jobs of one key running at once.
    pub key_limit: u32,
    /// The most jobs of the queue running at once.
    pub queue_limit: u32,
}

impl Limits {
    /// The key the dispatcher gives job `seq`.
    pub fn key_of(&self, seq: u64) -> String {
        format!("key:{}", seq % self.keys.max(1))
    }
}

/// A worker process SIGKILLed by the controller.
#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    /// Its worker id.
    pub worker: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it was the worker whose clock runs ahead.
    pub skewed: bool,
    /// When the signal was sent.
    pub at: DateTime<Utc>,
}

/// The dispatcher killed between writing a batch and committing it.
#[derive(Debug, Clone, Serialize)]
pub struct WriterKill {
    /// When.
    pub at: DateTime<Utc>,
    /// The batch's first sequence number.
    pub first: u64,
    /// One past its last.
    pub end: u64,
    /// Whether the batch was found stored afterwards (it must not be, as a
    /// whole, or be there as a whole: never in part).
    pub stored: bool,
}

/// A time the workers' database connections were cut.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    /// `restart` (the server restarted) or `connections` (a burst of connection kills).
    pub kind: &'static str,
    /// When it began.
    pub start: DateTime<Utc>,
    /// When the database answered again.
    pub end: DateTime<Utc>,
    /// Connections killed (bursts).
    pub killed: u64,
}

/// A worker process that ended without being told to.
#[derive(Debug, Clone, Serialize)]
pub struct Exit {
    /// Its worker id.
    pub worker: String,
    /// Its exit status.
    pub status: String,
}

/// Everything the controller did and saw, for the audit.
#[derive(Debug, Default, Serialize)]
pub struct Events {
    /// Worker processes SIGKILLed.
    pub kills: Vec<Kill>,
    /// Dispatcher kills with a transaction open.
    pub writer_kills: Vec<WriterKill>,
    /// Times the database connections were cut.
    pub outages: Vec<Outage>,
    /// Worker processes that exited on their own.
    pub unexpected_exits: Vec<Exit>,
    /// Dispatcher processes that stopped on a database error.
    pub dispatcher_errors: u64,
    /// Times the stored jobs were not a whole prefix of the sequence.
    pub torn_batches: u64,
    /// Worker processes started in all.
    pub workers_started: u64,
    /// The ids of the worker processes started with a clock running ahead
    /// (one alive at a time), in order.
    pub skewed_workers: Vec<String>,
    /// Whether every job was dispatched.
    pub all_dispatched: bool,
    /// Seconds from the end of the damage until the queue was drained
    /// (`None`: the drain deadline passed).
    pub drain_secs: Option<f64>,
    /// Jobs `started` with a lease expired longer ago than the rescuer
    /// needs, while the survivors still ran.
    pub stuck: Vec<i64>,
    /// Worker processes that did not stop when asked and were killed.
    pub stop_failures: u64,
}

struct Proc {
    id: String,
    skewed: bool,
    child: Child,
    stdin: Option<ChildStdin>,
}

struct Dispatcher {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

/// One run in progress.
struct Controller<'a> {
    plan: &'a Plan,
    backend: Backend,
    url: String,
    database: Option<String>,
    db: Db,
    hopper: Hopper,
    epoch_ms: i64,
    workers: Vec<Proc>,
    generation: u64,
    dispatcher: Option<Dispatcher>,
    dispatchers: u64,
    restart_dispatcher_at: Instant,
    events: Events,
}

/// How soon a writer kill that caught no transaction is tried again.
const WRITER_KILL_RETRY: Duration = Duration::from_secs(1);

fn jitter(every: Duration) -> Duration {
    every.mul_f64(0.5 + fastrand::f64())
}

fn log(message: &str) {
    eprintln!("[{}] {message}", Utc::now().format("%H:%M:%S%.3f"));
}

impl Controller<'_> {
    fn stderr(&self, name: &str) -> Result<Stdio> {
        Ok(match &self.plan.log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Stdio::from(std::fs::File::create(dir.join(format!("{name}.log")))?)
            }
            None => Stdio::null(),
        })
    }

    /// Starts a worker process; a `skewed` one runs its clock
    /// [`Plan::clock_skew`] ahead.
    fn spawn_worker(&mut self, skewed: bool) -> Result<()> {
        let id = format!("chaos-w{}", self.generation);
        self.generation += 1;
        let ahead_ms = if skewed {
            self.plan.clock_skew.as_millis()
        } else {
            0
        };
        let mut child = Command::new(std::env::current_exe()?)
            .args(["worker", "--database-url", &self.url, "--id", &id])
            .args(["--concurrency", &self.plan.concurrency.to_string()])
            .args(["--lease-ms", &self.plan.lease.as_millis().to_string()])
            .args([
                "--rescue-ms",
                &self.plan.rescue_interval.as_millis().to_string(),
            ])
            .args(["--max-work-ms", &self.plan.max_work_ms.to_string()])
            .args(["--clock-ahead-ms", &ahead_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(self.stderr(&id)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let stdin = child.stdin.take();
        if skewed {
            log(&format!(
                "started worker {id} with its clock {ahead_ms} ms ahead"
            ));
            self.events.skewed_workers.push(id.clone());
        }
        self.workers.push(Proc {
            id,
            skewed,
            child,
            stdin,
        });
        self.events.workers_started += 1;
        Ok(())
    }

    /// Where the stored jobs end: the next sequence number to dispatch.
    async fn resume_point(&mut self) -> Result<u64> {
        let (count, max) = self.db.dispatched_prefix(<ChaosJob as Job>::TYPE).await?;
        let count = u64::try_from(count).unwrap_or(0);
        let next = max.map_or(0, |m| u64::try_from(m + 1).unwrap_or(0));
        if next != count {
            self.events.torn_batches += 1;
            log(&format!(
                "stored jobs are not a whole prefix: {count} stored, highest {max:?}"
            ));
        }
        Ok(next)
    }

    async fn spawn_dispatcher(&mut self) -> Result<()> {
        let from = self.resume_point().await?;
        if from >= self.plan.jobs {
            self.events.all_dispatched = true;
            return Ok(());
        }
        let pace_us = (self.plan.duration.as_micros() as u64 / self.plan.jobs.max(1)).max(1);
        let mut child = Command::new(std::env::current_exe()?)
            .args(["dispatch", "--database-url", &self.url])
            .args([
                "--from",
                &from.to_string(),
                "--to",
                &self.plan.jobs.to_string(),
            ])
            .args(["--epoch-ms", &self.epoch_ms.to_string()])
            .args(["--pace-us", &pace_us.to_string()])
            .args(["--hold-ms", &self.plan.hold_ms.to_string()])
            .args([
                "--keys",
                &self.plan.limits.map_or(0, |l| l.keys).to_string(),
            ])
            .args(self.plan.batches.then_some("--batches"))
            .args(self.plan.workflows.then_some("--workflows"))
            .args(
                self.plan
                    .group_size
                    .iter()
                    .flat_map(|size| ["--group-size".to_owned(), size.to_string()]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.stderr(&format!("dispatch-{}", self.dispatchers))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting the dispatcher")?;
        self.dispatchers += 1;
        let stdout = child.stdout.take().context("dispatcher stdout")?;
        let (send, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        self.dispatcher = Some(Dispatcher { child, lines });
        Ok(())
    }

    /// Notices processes that ended, replaces dead workers and restarts a
    /// dispatcher that stopped on an error.
    async fn reap(&mut self) -> Result<()> {
        let mut i = 0;
        while i < self.workers.len() {
            if let Some(status) = self.workers[i].child.try_wait()? {
                let proc = self.workers.remove(i);
                log(&format!("worker {} exited on its own: {status}", proc.id));
                self.events.unexpected_exits.push(Exit {
                    worker: proc.id,
                    status: status.to_string(),
                });
                // A skewed worker's replacement is skewed: one stays alive.
                self.spawn_worker(proc.skewed)?;
            } else {
                i += 1;
            }
        }
        if let Some(dispatcher) = &mut self.dispatcher {
            if let Some(status) = dispatcher.child.try_wait()? {
                self.dispatcher = None;
                if status.success() {
                    self.events.all_dispatched = true;
                } else {
                    self.events.dispatcher_errors += 1;
                    self.restart_dispatcher_at = Instant::now() + Duration::from_millis(300);
                }
            }
        }
        if self.dispatcher.is_none()
            && !self.events.all_dispatched
            && Instant::now() >= self.restart_dispatcher_at
        {
            if let Err(error) = self.spawn_dispatcher().await {
                log(&format!("cannot restart the dispatcher yet: {error:#}"));
                self.restart_dispatcher_at = Instant::now() + Duration::from_millis(500);
            }
        }
        Ok(())
    }

    async fn kill_worker(&mut self) -> Result<()> {
        if self.workers.is_empty() {
            return Ok(());
        }
        let mut proc = self.workers.remove(fastrand::usize(..self.workers.len()));
        let pid = proc.child.id().unwrap_or(0);
        let at = Utc::now();
        proc.child.start_kill()?;
        proc.child.wait().await?;
        log(&format!(
            "SIGKILLed worker {} (pid {pid}{})",
            proc.id,
            if proc.skewed { ", skewed clock" } else { "" }
        ));
        self.events.kills.push(Kill {
            worker: proc.id,
            pid,
            skewed: proc.skewed,
            at,
        });
        // A skewed worker's replacement is skewed: one stays alive.
        self.spawn_worker(proc.skewed)
    }

    /// Kills the dispatcher right after it has written a batch and before
    /// it commits, then checks the batch is stored whole or not at all.
    /// Answers whether it caught the dispatcher inside a transaction: not
    /// when no dispatcher runs (one restarting after a lost connection, say)
    /// or none wrote a batch in time.
    async fn kill_writer(&mut self) -> Result<bool> {
        let Some(mut dispatcher) = self.dispatcher.take() else {
            return Ok(false);
        };
        while dispatcher.lines.try_recv().is_ok() {}
        let written = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(line) = dispatcher.lines.recv().await {
                let mut words = line.split_whitespace();
                if words.next() == Some("written") {
                    let first = words.next().and_then(|w| w.parse::<u64>().ok());
                    let end = words.next().and_then(|w| w.parse::<u64>().ok());
                    if let (Some(first), Some(end)) = (first, end) {
                        return Some((first, end));
                    }
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let at = Utc::now();
        dispatcher.child.start_kill()?;
        let status = dispatcher.child.wait().await?;
        let Some((first, end)) = written else {
            // It finished, failed or wrote nothing in time: a plain kill.
            if status.success() {
                self.events.all_dispatched = true;
            }
            return Ok(false);
        };
        let next = match self.resume_point().await {
            Ok(next) => next,
            Err(error) => {
                // The database is away (someone restarted it?): the batch is
                // checked by the next look at the stored prefix instead.
                log(&format!("cannot look at the stored jobs: {error:#}"));
                self.restart_dispatcher_at = Instant::now() + Duration::from_millis(500);
                return Ok(false);
            }
        };
        let stored = next >= end;
        log(&format!(
            "killed the dispatcher inside its transaction for jobs {first}..{end}: {}",
            if stored {
                "it had committed"
            } else {
                "rolled back"
            }
        ));
        self.events.writer_kills.push(WriterKill {
            at,
            first,
            end,
            stored,
        });
        if let Err(error) = self.spawn_dispatcher().await {
            log(&format!("cannot restart the dispatcher yet: {error:#}"));
            self.restart_dispatcher_at = Instant::now() + Duration::from_millis(500);
        }
        Ok(true)
    }

    async fn wait_for_database(&self) -> DateTime<Utc> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.hopper.counts().await.is_err() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Utc::now()
    }

    async fn burst(&mut self) -> Result<()> {
        let Some(database) = self.database.clone() else {
            return Ok(());
        };
        let start = Utc::now();
        let mut killed = 0;
        for _ in 0..3 {
            killed += self.db.kill_connections(&database).await.unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let end = self.wait_for_database().await;
        log(&format!("killed {killed} database connections"));
        self.events.outages.push(Outage {
            kind: "connections",
            start,
            end,
            killed,
        });
        Ok(())
    }

    async fn restart_server(&mut self) -> Result<()> {
        let version = postgres_version()?;
        let start = Utc::now();
        log(&format!("restarting PostgreSQL {version}"));
        let status = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "restart"])
            .status()
            .await
            .context("running pg_ctlcluster")?;
        let end = self.wait_for_database().await;
        if !status.success() {
            // Counted as no restart: the audit shows it, and the run goes on.
            log(&format!(
                "pg_ctlcluster {version} main restart failed: {status}"
            ));
            return Ok(());
        }
        log(&format!(
            "PostgreSQL is back after {:.1} s",
            (end - start).num_milliseconds() as f64 / 1e3
        ));
        self.events.outages.push(Outage {
            kind: "restart",
            start,
            end,
            killed: 0,
        });
        Ok(())
    }

    async fn chaos(&mut self) -> Result<()> {
        let plan = self.plan;
        let start = Instant::now();
        let deadline = start + plan.duration;
        let mut next_kill = start + jitter(plan.kill_every);
        let mut next_writer_kill = start + jitter(plan.writer_kill_every);
        let server = self.backend != Backend::Sqlite;
        let mut next_burst = start + jitter(plan.burst_every);
        let mut restart_at =
            (plan.restart && self.backend == Backend::Postgres).then(|| start + plan.duration / 2);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.reap().await?;
            let now = Instant::now();
            if now >= next_kill {
                self.kill_worker().await?;
                next_kill = now + jitter(plan.kill_every);
            }
            if now >= next_writer_kill {
                // A try that caught no transaction is made again soon, so
                // lost connections and a server restart do not leave a run
                // without a writer killed mid-transaction.
                next_writer_kill = if self.kill_writer().await? {
                    now + jitter(plan.writer_kill_every)
                } else {
                    now + WRITER_KILL_RETRY
                };
            }
            if server && now >= next_burst {
                self.burst().await?;
                next_burst = now + jitter(plan.burst_every);
            }
            if restart_at.is_some_and(|at| now >= at) {
                restart_at = None;
                self.restart_server().await?;
            }
        }
        Ok(())
    }

    /// Waits, with no more damage, until every job is dispatched and ended
    /// (in a batched run, every batch's callbacks too) or the drain deadline
    /// passes; then notes stuck jobs.
    async fn drain(&mut self) -> Result<()> {
        let start = Instant::now();
        let deadline = start + self.plan.drain_timeout;
        loop {
            self.reap().await?;
            if self.events.all_dispatched {
                let ended: u64 = match self.hopper.counts().await {
                    Ok(counts) => counts
                        .iter()
                        .filter(|c| c.state.is_final())
                        .map(|c| c.count)
                        .sum(),
                    Err(_) => 0,
                };
                if ended >= self.jobs_to_end().await {
                    self.events.drain_secs = Some(start.elapsed().as_secs_f64());
                    break;
                }
            }
            if Instant::now() >= deadline {
                log("the drain deadline passed");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let grace = self.plan.rescue_interval * 3 + Duration::from_secs(1);
        let horizon = Utc::now() - chrono::TimeDelta::from_std(grace).unwrap_or_default();
        let filter = JobFilter {
            state: Some(JobState::Started),
            job_type: Some(<ChaosJob as Job>::TYPE.to_owned()),
            ..JobFilter::default()
        };
        let started = retry(|| all_jobs(&self.hopper, &filter)).await?;
        self.events.stuck = started
            .iter()
            .filter(|job| job.locked_until.is_none_or(|until| until < horizon))
            .map(|job| job.id)
            .collect();
        Ok(())
    }

    /// How many jobs the run ends with: the chaos jobs, and in a batched run
    /// two callbacks per batch stored (all of them, while the batches
    /// cannot be read).
    async fn jobs_to_end(&self) -> u64 {
        if !self.plan.batches && !self.plan.workflows {
            return self.plan.jobs;
        }
        match self.db.batches().await {
            Ok(batches) => self.plan.jobs + 2 * batches.len() as u64,
            Err(_) => u64::MAX,
        }
    }

    /// Asks every worker to stop (closes its stdin) and waits for it.
    async fn stop_workers(&mut self) {
        for proc in &mut self.workers {
            proc.stdin = None;
        }
        for mut proc in std::mem::take(&mut self.workers) {
            match tokio::time::timeout(Duration::from_secs(30), proc.child.wait()).await {
                Ok(Ok(_)) => {}
                _ => {
                    self.events.stop_failures += 1;
                    let _ = proc.child.start_kill();
                    let _ = proc.child.wait().await;
                }
            }
        }
        if let Some(mut dispatcher) = self.dispatcher.take() {
            let _ = dispatcher.child.start_kill();
            let _ = dispatcher.child.wait().await;
        }
    }
}

/// Runs `query` until it succeeds, for up to a minute: the database may be
/// restarting under the run (by this run or anyone else).
pub async fn retry<T, E, F>(mut query: impl FnMut() -> F) -> Result<T>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match query().await {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() >= deadline => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The newest PostgreSQL cluster version under `/etc/postgresql`.
fn postgres_version() -> Result<String> {
    let mut versions = std::fs::read_dir("/etc/postgresql")
        .context("no PostgreSQL installation under /etc/postgresql to restart")?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect::<Vec<_>>();
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|part| part.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    versions
        .pop()
        .context("no PostgreSQL cluster under /etc/postgresql")
}

/// What a run leaves for the audit.
pub struct Outcome {
    /// The run's database kind.
    pub backend: Backend,
    /// The controller's handle on it.
    pub hopper: Hopper,
    /// Raw queries on it.
    pub db: Db,
    /// What happened.
    pub events: Events,
    /// The fresh database, to remove after the audit.
    pub fresh: Fresh,
}

/// Runs the whole plan on a fresh database made from `url`.
pub async fn run(url: &str, plan: &Plan) -> Result<Outcome> {
    let fresh = Fresh::create(url).await?;
    let backend = fresh.backend;
    let control_url = match backend {
        Backend::Postgres => {
            db::with_param(&fresh.url, "application_name", db::CONTROL_APPLICATION)
        }
        _ => fresh.url.clone(),
    };
    let result = async {
        let (store, db) = db::open(&control_url).await?;
        store.migrate().await?;
        db.create_runs_table().await?;
        let hopper = Hopper::builder().register(ChaosJob)?.build(store);
        if let Some(limits) = plan.limits {
            let flow = QueueFlow::default()
                .per_key(limits.key_limit)
                .concurrency(limits.queue_limit);
            hopper
                .set_queue_flow(<ChaosJob as Job>::QUEUE, flow)
                .await?;
            log(&format!(
                "limited: {} keys, {} per key, {} in all",
                limits.keys, limits.key_limit, limits.queue_limit
            ));
        }
        if plan.restart && backend == Backend::Postgres {
            postgres_version()?;
        }
        if let Some(size) = plan.group_size {
            log(&format!(
                "{} of {size} jobs each",
                if plan.workflows {
                    "workflows"
                } else {
                    "batches"
                }
            ));
        }
        log(&format!(
            "chaos on {} with {} jobs, {} worker processes (one's clock {:?} ahead), for {:?}",
            fresh.name().unwrap_or(&fresh.url),
            plan.jobs,
            plan.workers,
            plan.clock_skew,
            plan.duration
        ));
        let mut controller = Controller {
            plan,
            backend,
            url: fresh.url.clone(),
            database: fresh.name().map(str::to_owned),
            db: db.clone(),
            hopper: hopper.clone(),
            epoch_ms: Utc::now().timestamp_millis(),
            workers: Vec::new(),
            generation: 0,
            dispatcher: None,
            dispatchers: 0,
            restart_dispatcher_at: Instant::now(),
            events: Events::default(),
        };
        // The first worker runs its clock ahead (if asked): it is likely to
        // take the maintenance lease first, and so to be the one rescuing.
        let skew = !plan.clock_skew.is_zero();
        for n in 0..plan.workers {
            controller.spawn_worker(skew && n == 0)?;
        }
        controller.spawn_dispatcher().await?;
        let chaos = controller.chaos().await;
        log("damage over; draining");
        let drained = match chaos {
            Ok(()) => controller.drain().await,
            Err(error) => Err(error),
        };
        controller.stop_workers().await;
        drained?;
        Ok::<_, anyhow::Error>((hopper, db, controller.events))
    }
    .await;
    match result {
        Ok((hopper, db, events)) => Ok(Outcome {
            backend,
            hopper,
            db,
            events,
            fresh,
        }),
        Err(error) => {
            let _ = fresh.remove().await;
            Err(error)
        }
    }
}
