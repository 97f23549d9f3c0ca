//! `queue:*`: run workers, look at jobs, retry, cancel, release a job
//! waiting on others, prune, dispatch, pause and resume, and set and show
//! queues' flow settings.

use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use hopper::status::StateCounts;
use hopper::store::{DEFAULT_PAGE_SIZE, FlowUsage, MAX_PAGE_SIZE, QueueFlow, Rate, TypeCount};
use hopper::{
    Concurrency, DispatchOptions, Hopper, JobFilter, JobId, JobRecord, JobState, Retention,
    WorkerConfig,
};
use serde::Serialize;

use super::{age, args, clip, count_cell, state_style, time, usage};
use crate::console::{Command, ConsoleError, Context};
use crate::output::{Cell, Style, Table};

#[derive(Args, Debug)]
struct WorkArgs {
    /// Queues to run (repeat or separate with commas; default: the
    /// configured queues and every queue a registered job names).
    #[arg(long, value_delimiter = ',')]
    queue: Vec<String>,
    /// Jobs run at the same time, per queue.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,
    /// Stop once no job these queues can run is left (for scripts and tests).
    #[arg(long)]
    stop_when_empty: bool,
}

pub(crate) struct Work;

#[async_trait]
impl Command for Work {
    fn definition(&self) -> clap::Command {
        WorkArgs::augment_args(clap::Command::new("queue:work").about(
            "Run workers, schedules and alert checks (no HTTP server) until Ctrl-C or SIGTERM",
        ))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: WorkArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let mut services = ctx
            .console()
            .services(work_config(ctx.console().base_worker_config(), &args))?;
        if !args.queue.is_empty() {
            services = services.only_configured_queues();
        }
        let config = services.worker_config(&hopper);
        let queues: Vec<String> = config
            .queues()
            .iter()
            .map(|(queue, n)| format!("{queue} ({n} workers)"))
            .collect();
        let running = services.start(&hopper)?;
        let out = ctx.out();
        out.line(format!(
            "Working on {}. Ctrl-C stops gracefully.",
            queues.join(", ")
        ))?;
        if args.stop_when_empty {
            let names: Vec<String> = config.queues().iter().map(|(q, _)| q.clone()).collect();
            tokio::select! {
                result = wait_empty(&hopper, running.pool(), &names) => result?,
                () = ctx.console().wait_for_shutdown() => {}
            }
        } else {
            ctx.console().wait_for_shutdown().await;
        }
        let handed_back = running.stop().await?;
        let out = ctx.out();
        if handed_back > 0 {
            out.line(format!(
                "Stopped; {handed_back} unfinished jobs handed back to the queue."
            ))?;
        } else {
            out.line("Stopped.")?;
        }
        Ok(())
    }
}

/// The worker configuration `queue:work` asks for: the console's, or only
/// the queues `--queue` names (each with its configured bounds, or those of
/// the console's first queue), with `--workers` fixing every queue's count.
/// Queues registered jobs name join it when the services start (see
/// [`hopper::services::Services::worker_config`]) unless `--queue` is given.
fn work_config(base: &WorkerConfig, args: &WorkArgs) -> WorkerConfig {
    let first = base
        .queues()
        .first()
        .and_then(|(queue, _)| base.concurrency(queue))
        .unwrap_or(Concurrency::fixed(10));
    let mut config = base.clone();
    if !args.queue.is_empty() {
        config = config.only();
        for queue in &args.queue {
            let bounds = base.concurrency(queue).unwrap_or(first);
            config = config.queue_scaled(queue.clone(), bounds.min, bounds.max);
        }
    }
    if let Some(workers) = args.workers {
        for (queue, _) in config.queues() {
            config = config.queue(queue, workers as usize);
        }
    }
    config
}

/// Waits until `queues` hold no due job that is not paused and `pool` runs none.
async fn wait_empty(
    hopper: &Hopper,
    pool: &hopper::WorkerPool,
    queues: &[String],
) -> Result<(), ConsoleError> {
    let mut activity = pool.activity();
    loop {
        activity.borrow_and_update();
        let due: u64 = hopper
            .queue_stats()
            .await?
            .iter()
            .filter(|stats| queues.contains(&stats.queue) && !stats.paused)
            .map(|stats| stats.due)
            .sum();
        if due == 0 && pool.in_flight() == 0 {
            return Ok(());
        }
        // Due jobs another process dispatched wake no one here: look again
        // at least every second.
        let _ = tokio::time::timeout(Duration::from_secs(1), activity.changed()).await;
    }
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Also show jobs per type and state.
    #[arg(long)]
    by_type: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct QueueRow<'a> {
    queue: &'a str,
    #[serde(flatten)]
    counts: StateCounts,
    due: u64,
    oldest_due_at: Option<chrono::DateTime<chrono::Utc>>,
    oldest_due_seconds: Option<u64>,
    paused: bool,
}

/// One job type's jobs per state.
#[derive(Debug, Serialize)]
struct TypeRow {
    #[serde(rename = "type")]
    job_type: String,
    #[serde(flatten)]
    counts: StateCounts,
}

/// `counts` (by type, then state) as one row per type.
fn type_rows(counts: Vec<TypeCount>) -> Vec<TypeRow> {
    let mut rows: Vec<TypeRow> = Vec::new();
    for count in counts {
        match rows.last_mut() {
            Some(row) if row.job_type == count.job_type => {}
            _ => rows.push(TypeRow {
                job_type: count.job_type,
                counts: StateCounts::default(),
            }),
        }
        if let Some(row) = rows.last_mut() {
            row.counts.add(count.state, count.count);
        }
    }
    rows
}

#[derive(Debug, Serialize)]
struct StatusReport<'a> {
    queues: Vec<QueueRow<'a>>,
    /// Every queue with flow settings: its limits and their use.
    flow: Vec<FlowUsage>,
    /// With `--by-type` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    types: Option<Vec<TypeRow>>,
    finished_last_minute: u64,
    failed_last_minute: u64,
}

/// The count cells of `counts`, one per state, in [`JobState::ALL`] order.
fn state_cells(counts: &StateCounts) -> [Cell; 5] {
    JobState::ALL.map(|state| count_cell(counts.get(state), state_style(state)))
}

pub(crate) struct Status;

#[async_trait]
impl Command for Status {
    fn definition(&self) -> clap::Command {
        StatusArgs::augment_args(clap::Command::new("queue:status").about(
            "Jobs per queue and state (and per type with --by-type), the oldest waiting job, and jobs finished in the last minute",
        ))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: StatusArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let status = hopper.status(Duration::from_secs(60)).await?;
        let types = if args.by_type {
            Some(type_rows(hopper.counts_by_type().await?))
        } else {
            None
        };
        let now = status.now;
        let report = StatusReport {
            queues: status
                .queues
                .iter()
                .map(|queue| QueueRow {
                    queue: &queue.queue,
                    counts: queue.counts,
                    due: queue.due,
                    oldest_due_at: queue.oldest_due_at,
                    oldest_due_seconds: queue.oldest_due_age(now).map(|age| age.as_secs()),
                    paused: queue.paused,
                })
                .collect(),
            flow: hopper.flow_usage().await?,
            types,
            finished_last_minute: status.finished(),
            failed_last_minute: status.failed(),
        };
        let out = ctx.out();
        if args.json {
            out.json(&report)?;
            return Ok(());
        }
        if report.queues.is_empty() {
            out.line("No jobs and no paused queues.")?;
        } else {
            let mut table = Table::new([
                "QUEUE",
                "PENDING",
                "STARTED",
                "FINISHED",
                "FAILED",
                "CANCELLED",
                "OLDEST DUE",
                "PAUSED",
            ]);
            for q in &report.queues {
                let oldest = q
                    .oldest_due_at
                    .map_or_else(|| "-".to_owned(), |at| age(now, at));
                let paused = if q.paused {
                    Cell::styled("paused", Style::Red)
                } else {
                    Cell::from("no")
                };
                let name = Cell::styled(q.queue, Style::Bold);
                table.row(
                    std::iter::once(name)
                        .chain(state_cells(&q.counts))
                        .chain([oldest.into(), paused]),
                );
            }
            out.table(&table)?;
        }
        if !report.flow.is_empty() {
            out.line("")?;
            out.table(&flow_table(&report.flow))?;
        }
        if let Some(types) = &report.types {
            out.line("")?;
            if types.is_empty() {
                out.line("No jobs of any type.")?;
            } else {
                let mut table = Table::new([
                    "TYPE",
                    "PENDING",
                    "STARTED",
                    "FINISHED",
                    "FAILED",
                    "CANCELLED",
                ]);
                for row in types {
                    let name = Cell::styled(row.job_type.clone(), Style::Bold);
                    table.row(std::iter::once(name).chain(state_cells(&row.counts)));
                }
                out.table(&table)?;
            }
        }
        out.line(format!(
            "Last minute: {} finished, {} failed.",
            report.finished_last_minute, report.failed_last_minute
        ))?;
        Ok(())
    }
}

#[derive(Args, Debug)]
struct FailedArgs {
    /// Only jobs of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs of this type.
    #[arg(long = "type", value_name = "TYPE")]
    job_type: Option<String>,
    #[arg(
        long,
        help = format!("Jobs per page, newest first (1 to {MAX_PAGE_SIZE})"),
        default_value_t = DEFAULT_PAGE_SIZE,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)),
    )]
    limit: u32,
    /// Only jobs with an id below this: the next page's cursor, which the
    /// page before prints (`next` in JSON).
    #[arg(long, value_name = "ID")]
    before: Option<JobId>,
    /// Print JSON for scripts: `{"jobs": […], "next": cursor or null}`.
    #[arg(long)]
    json: bool,
}

pub(crate) struct Failed;

#[async_trait]
impl Command for Failed {
    fn definition(&self) -> clap::Command {
        FailedArgs::augment_args(
            clap::Command::new("queue:failed").about("List failed jobs with their last error"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: FailedArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let filter = JobFilter {
            state: Some(JobState::Failed),
            queue: args.queue,
            job_type: args.job_type,
            before: args.before,
            limit: Some(args.limit),
            ..JobFilter::default()
        };
        let page = hopper.jobs(&filter).await?;
        let out = ctx.out();
        if args.json {
            out.json(&page)?;
            return Ok(());
        }
        let jobs = &page.jobs;
        if jobs.is_empty() {
            out.line("No failed jobs.")?;
            return Ok(());
        }
        let mut table = Table::new(["ID", "TYPE", "QUEUE", "ATTEMPTS", "FAILED AT", "LAST ERROR"]);
        for job in jobs {
            table.row([
                Cell::styled(job.id.to_string(), Style::Cyan),
                job.job_type.clone().into(),
                job.queue.clone().into(),
                format!("{}/{}", job.attempts, job.max_attempts).into(),
                job.finished_at.map_or_else(String::new, time).into(),
                Cell::styled(
                    clip(job.last_error.as_deref().unwrap_or(""), 70),
                    Style::Red,
                ),
            ]);
        }
        out.table(&table)?;
        out.line(format!(
            "{} failed jobs shown. `queue:show <id>` for one, `queue:retry <id>` or `queue:retry --all` to run them again.",
            jobs.len()
        ))?;
        if let Some(next) = page.next {
            out.line(format!(
                "Older failed jobs: add `--before {next}` for the next page."
            ))?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The job's id.
    id: JobId,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub(crate) struct Show;

#[async_trait]
impl Command for Show {
    fn definition(&self) -> clap::Command {
        ShowArgs::augment_args(
            clap::Command::new("queue:show")
                .about("Show one job: payload, attempts, error history and timestamps"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: ShowArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let job = find(&hopper, args.id).await?;
        let out = ctx.out();
        if args.json {
            let mut value = serde_json::to_value(&job).map_err(crate::output::OutputError::from)?;
            // Show the payload as JSON, not as a string holding JSON.
            if let Ok(payload) = serde_json::from_str::<serde_json::Value>(&job.payload) {
                value["payload"] = payload;
            }
            if let Some(Ok(output)) = job
                .output
                .as_deref()
                .map(serde_json::from_str::<serde_json::Value>)
            {
                value["output"] = output;
            }
            out.json(&value)?;
            return Ok(());
        }
        let optional =
            |at: Option<chrono::DateTime<chrono::Utc>>| at.map_or_else(|| "-".to_owned(), time);
        let mut table = Table::default();
        let mut field = |name: &str, value: Cell| {
            table.row([Cell::styled(name, Style::Bold), value]);
        };
        field("id", job.id.to_string().into());
        field("type", job.job_type.clone().into());
        field("queue", job.queue.clone().into());
        field(
            "state",
            Cell::styled(job.state.as_str(), state_style(job.state)),
        );
        field(
            "attempts",
            format!("{} of {}", job.attempts, job.max_attempts).into(),
        );
        field("priority", job.priority.to_string().into());
        field("created", time(job.created_at).into());
        field("available", time(job.available_at).into());
        field("started", optional(job.started_at).into());
        field("ended", optional(job.finished_at).into());
        if let Some(worker) = &job.locked_by {
            field(
                "worker",
                format!("{worker} (lease until {})", optional(job.locked_until)).into(),
            );
        }
        if let Some(key) = &job.unique_key {
            field("unique key", key.clone().into());
        }
        if let Some(progress) = &job.progress {
            let shown = match progress.message.as_str() {
                "" => format!("{}%", progress.percent),
                message => format!("{}% {message}", progress.percent),
            };
            field("progress", shown.into());
        }
        out.table(&table)?;
        out.line("")?;
        out.line(out.paint(Style::Bold, "payload"))?;
        out.line(pretty_json(&job.payload))?;
        out.line("")?;
        if let Some(output) = &job.output {
            out.line(out.paint(Style::Bold, "output"))?;
            out.line(pretty_json(output))?;
            out.line("")?;
        }
        if job.errors.is_empty() {
            out.line(format!("{}: none", out.paint(Style::Bold, "errors")))?;
        } else {
            let mut errors = Table::new(["ATTEMPT", "AT", "ERROR"]);
            for error in &job.errors {
                errors.row([
                    error.attempt.to_string().into(),
                    time(error.at).into(),
                    Cell::styled(error.error.clone(), Style::Red),
                ]);
            }
            out.table(&errors)?;
        }
        Ok(())
    }
}

/// JSON `text` laid out over lines, or as it is if it is not JSON.
fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// Job `id`, or a failure saying there is none.
async fn find(hopper: &Hopper, id: JobId) -> Result<JobRecord, ConsoleError> {
    hopper
        .job(id)
        .await?
        .ok_or_else(|| ConsoleError::Failed(format!("no job {id}")))
}

#[derive(Args, Debug)]
struct RetryArgs {
    /// The failed or cancelled job to run again.
    id: Option<JobId>,
    /// Retry every failed job (of --type, if given).
    #[arg(long, conflicts_with = "id")]
    all: bool,
    /// With --all: only jobs of this type.
    #[arg(long = "type", value_name = "TYPE", requires = "all")]
    job_type: Option<String>,
}

pub(crate) struct Retry;

#[async_trait]
impl Command for Retry {
    fn definition(&self) -> clap::Command {
        RetryArgs::augment_args(
            clap::Command::new("queue:retry")
                .about("Run a failed or cancelled job again, or every failed job with --all"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: RetryArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        if let Some(id) = args.id {
            let job = find(&hopper, id).await?;
            if !hopper.retry(id).await? {
                return Err(ConsoleError::Failed(format!(
                    "job {id} is {}: only failed or cancelled jobs can be retried",
                    job.state.as_str()
                )));
            }
            ctx.out()
                .line(format!("Job {id} ({}) is pending again.", job.job_type))?;
            return Ok(());
        }
        if !args.all {
            return Err(usage(
                ctx.console(),
                self.definition(),
                "give the id of a job to retry, or --all for every failed job",
            ));
        }
        let progress = ctx.out().progress(None, "retrying");
        let done = hopper
            .retry_all_failed(args.job_type.as_deref(), None)
            .await;
        progress.finish();
        let done = done?;
        let what = args
            .job_type
            .map_or_else(String::new, |t| format!(" of type {t}"));
        let out = ctx.out();
        out.line(format!("Retried {} failed jobs{what}.", done.retried))?;
        if done.skipped > 0 {
            out.line(format!(
                "Skipped {} whose unique key another live job holds.",
                done.skipped
            ))?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct IdArgs {
    /// The job's id.
    id: JobId,
}

pub(crate) struct Cancel;

#[async_trait]
impl Command for Cancel {
    fn definition(&self) -> clap::Command {
        IdArgs::augment_args(
            clap::Command::new("queue:cancel").about("Cancel a pending job so it never runs"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: IdArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let job = find(&hopper, args.id).await?;
        if !hopper.cancel(args.id).await? {
            return Err(ConsoleError::Failed(format!(
                "job {} is {}: only pending and running jobs can be cancelled",
                args.id,
                job.state.as_str()
            )));
        }
        let done = if job.state == hopper::JobState::Started {
            "asked to stop: it ends cancelled once its pool hears of it (on MySQL, at its next heartbeat)"
        } else {
            "cancelled"
        };
        ctx.out()
            .line(format!("Job {} ({}) {done}.", args.id, job.job_type))?;
        Ok(())
    }
}

/// `queue:skip-wait <id>`: runs a pending job that waits on others now
/// ([`Hopper::skip_wait`]), the way past a sequence held by a job that
/// failed for good.
pub(crate) struct SkipWait;

#[async_trait]
impl Command for SkipWait {
    fn definition(&self) -> clap::Command {
        IdArgs::augment_args(clap::Command::new("queue:skip-wait").about(
            "Run a pending job that waits on others (a held sequence, a workflow step) without waiting any longer",
        ))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: IdArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let job = find(&hopper, args.id).await?;
        if !hopper.skip_wait(args.id).await? {
            let what = if job.state == JobState::Pending {
                "pending and waits on no other job".to_owned()
            } else {
                job.state.as_str().to_owned()
            };
            return Err(ConsoleError::Failed(format!(
                "job {} is {what}: only pending jobs that wait on other jobs can be released",
                args.id
            )));
        }
        ctx.out().line(format!(
            "Job {} ({}) released: it no longer waits and is due now.",
            args.id, job.job_type
        ))?;
        Ok(())
    }
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Delete finished, failed and cancelled jobs that ended longer ago than
    /// this (default: finished after 7 days, failed and cancelled after 30).
    #[arg(long, value_parser = crate::duration::clap_parse)]
    older_than: Option<Duration>,
}

pub(crate) struct Prune;

#[async_trait]
impl Command for Prune {
    fn definition(&self) -> clap::Command {
        PruneArgs::augment_args(
            clap::Command::new("queue:prune")
                .about("Delete old finished, failed and cancelled jobs"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: PruneArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let retention = args
            .older_than
            .map_or_else(Retention::default, Retention::all);
        let progress = ctx.out().progress(None, "pruning");
        let deleted = hopper.prune(retention).await;
        progress.finish();
        let deleted = deleted?;
        let rule = match args.older_than {
            Some(age) => format!("ended more than {} ago", crate::duration::human(age)),
            None => "past the default retention (finished 7d, failed and cancelled 30d)".to_owned(),
        };
        ctx.out().line(format!("Deleted {deleted} jobs {rule}."))?;
        Ok(())
    }
}

#[derive(Args, Debug)]
struct DispatchArgs {
    /// The job type, e.g. send_email.
    #[arg(value_name = "TYPE")]
    job_type: String,
    /// The payload as JSON, checked against the job's payload type.
    #[arg(default_value = "null")]
    payload: String,
    /// The queue (default: the job type's).
    #[arg(long)]
    queue: Option<String>,
    /// Run it no sooner than this from now (30s, 5m, …).
    #[arg(long, value_parser = crate::duration::clap_parse)]
    delay: Option<Duration>,
    /// Higher runs first among due jobs.
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Store nothing while a job with this key is pending or running.
    #[arg(long)]
    unique_key: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub(crate) struct Dispatch;

#[async_trait]
impl Command for Dispatch {
    fn definition(&self) -> clap::Command {
        DispatchArgs::augment_args(
            clap::Command::new("queue:dispatch")
                .about("Dispatch a job by type with a JSON payload, checked before it is stored"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: DispatchArgs = args(matches)?;
        let payload: serde_json::Value = serde_json::from_str(&args.payload).map_err(|e| {
            ConsoleError::Failed(format!("the payload is not JSON ({e}): {}", args.payload))
        })?;
        let hopper = ctx.hopper().await?;
        if !hopper.registry().contains(&args.job_type) {
            let types: Vec<&str> = hopper.registry().types().collect();
            let hint = match crate::console::nearest(&args.job_type, types.iter().copied()) {
                Some(close) => format!("; did you mean {close}?"),
                None => format!("; registered types: {}", types.join(", ")),
            };
            return Err(ConsoleError::Failed(format!(
                "no job registered for type {}{hint}",
                args.job_type
            )));
        }
        let mut options = DispatchOptions::new();
        if let Some(queue) = args.queue {
            options = options.queue(queue);
        }
        if let Some(delay) = args.delay {
            options = options.delay(delay);
        }
        if let Some(priority) = args.priority {
            options = options.priority(priority);
        }
        if let Some(key) = args.unique_key {
            options = options.unique_key(key);
        }
        let id = hopper
            .dispatch_json(&args.job_type, &payload, options)
            .await?;
        let out = ctx.out();
        if args.json {
            out.json(&serde_json::json!({ "id": id, "type": args.job_type }))?;
        } else {
            out.line(format!("Dispatched {} as job {id}.", args.job_type))?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct QueueArgs {
    /// The queue's name.
    queue: String,
}

pub(crate) struct Pause;

#[async_trait]
impl Command for Pause {
    fn definition(&self) -> clap::Command {
        QueueArgs::augment_args(
            clap::Command::new("queue:pause")
                .about("Stop every worker, in every process, from starting jobs of a queue"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: QueueArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        hopper.pause(&args.queue).await?;
        ctx.out().line(format!(
            "Queue {} paused: running jobs finish, no new ones start until queue:resume.",
            args.queue
        ))?;
        Ok(())
    }
}

pub(crate) struct Limit;

#[derive(Args, Debug)]
struct LimitArgs {
    /// The queue's name.
    queue: String,
    /// The most of its jobs running at once across every process, or
    /// `none` to lift the limit.
    #[arg(value_parser = parse_limit)]
    limit: JobLimit,
}

/// A queue's concurrency limit as the command line gives it.
#[derive(Clone, Copy, Debug)]
struct JobLimit(Option<u32>);

/// `none`, or a number of jobs of at least 1.
fn parse_limit(text: &str) -> Result<JobLimit, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(JobLimit(None));
    }
    match text.parse::<u32>() {
        Ok(0) => Err("a limit of 0 would run nothing: use queue:pause".to_owned()),
        Ok(limit) => Ok(JobLimit(Some(limit))),
        Err(_) => Err(format!("expected a number of jobs or `none`, not {text:?}")),
    }
}

#[async_trait]
impl Command for Limit {
    fn definition(&self) -> clap::Command {
        LimitArgs::augment_args(clap::Command::new("queue:limit").about(
            "Limit how many jobs of a queue run at once across every process (or lift the limit)",
        ))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: LimitArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        hopper.limit_queue(&args.queue, args.limit.0).await?;
        let said = match args.limit.0 {
            Some(limit) => format!(
                "Queue {}: at most {limit} jobs run at once, across every process.",
                args.queue
            ),
            None => format!("Queue {}: no limit.", args.queue),
        };
        ctx.out().line(said)?;
        Ok(())
    }
}

/// The flow figures of `usage`, one row per queue.
fn flow_table(usage: &[FlowUsage]) -> Table {
    let mut table = Table::new([
        "QUEUE",
        "LIMITS",
        "RUNNING",
        "STARTS IN WINDOW",
        "WAITING ON LIMIT",
        "BUSIEST KEYS",
    ]);
    for u in usage {
        let running = match u.flow.concurrency {
            Some(limit) => format!("{}/{limit}", u.running),
            None => u.running.to_string(),
        };
        let starts = match (u.starts_in_window, u.flow.rate) {
            (Some(n), Some(rate)) if !rate.per_key => format!("{n}/{}", rate.starts),
            (Some(n), _) => n.to_string(),
            (None, _) => "-".to_owned(),
        };
        let waiting = if u.full {
            Cell::styled(format!("{} (queue full)", u.waiting), Style::Red)
        } else {
            count_cell(u.waiting, Style::Yellow)
        };
        let keys: Vec<String> = u
            .busiest_keys
            .iter()
            .map(|key| {
                let name = key.key.as_deref().unwrap_or("(no key)");
                match key.starts_in_window {
                    Some(n) => format!("{name} {}/{n}", key.running),
                    None => format!("{name} {}", key.running),
                }
            })
            .collect();
        table.row([
            Cell::styled(u.queue.clone(), Style::Bold),
            u.flow.to_string().into(),
            running.into(),
            starts.into(),
            waiting,
            if keys.is_empty() {
                "-".to_owned()
            } else {
                keys.join(", ")
            }
            .into(),
        ]);
    }
    table
}

pub(crate) struct Flow;

#[derive(Args, Debug)]
struct FlowArgs {
    /// The queue's name.
    queue: String,
    /// The most of its jobs started at once, across every process.
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// The most jobs of one partition key started at once.
    #[arg(long, value_name = "N")]
    per_key: Option<u32>,
    /// The most starts per period, like 100/1m, 10/1s or 5/500ms.
    #[arg(long, value_name = "N/PERIOD", value_parser = parse_rate)]
    rate: Option<Rate>,
    /// Count --rate per partition key instead of per queue.
    #[arg(long, requires = "rate")]
    per_key_rate: bool,
    /// Serve the queue's keys in turn.
    #[arg(long)]
    fair: bool,
    /// Lift every flow setting of the queue.
    #[arg(long, conflicts_with_all = ["concurrency", "per_key", "rate", "fair"])]
    clear: bool,
}

/// A rate as the command line gives it: `STARTS/PERIOD`.
fn parse_rate(text: &str) -> Result<Rate, String> {
    text.parse()
        .map_err(|error: hopper::store::RateError| error.to_string())
}

#[async_trait]
impl Command for Flow {
    fn definition(&self) -> clap::Command {
        FlowArgs::augment_args(clap::Command::new("queue:flow").about(
            "Show a queue's flow settings and their use, or replace them (--concurrency, --per-key, --rate, --fair; --clear lifts them)",
        ))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: FlowArgs = args(matches)?;
        let asked = QueueFlow {
            concurrency: args.concurrency,
            key_concurrency: args.per_key,
            rate: args.rate.map(|rate| Rate {
                per_key: args.per_key_rate,
                ..rate
            }),
            fair: args.fair,
        };
        let change = args.clear || asked.is_controlled();
        if change {
            if let Err(error) = asked.check() {
                return Err(usage(ctx.console(), self.definition(), error));
            }
        }
        let hopper = ctx.hopper().await?;
        if change {
            hopper.set_queue_flow(&args.queue, asked).await?;
        }
        let usage = hopper
            .flow_usage()
            .await?
            .into_iter()
            .find(|usage| usage.queue == args.queue);
        let out = ctx.out();
        match usage {
            None if change => out.line(format!("Queue {}: no flow settings.", args.queue))?,
            None => out.line(format!(
                "Queue {} has no flow settings: its jobs start as workers are free.",
                args.queue
            ))?,
            Some(usage) => {
                if change {
                    out.line(format!(
                        "Queue {}: {}, across every process.",
                        args.queue, usage.flow
                    ))?;
                }
                out.table(&flow_table(std::slice::from_ref(&usage)))?;
            }
        }
        Ok(())
    }
}

pub(crate) struct Resume;

#[async_trait]
impl Command for Resume {
    fn definition(&self) -> clap::Command {
        QueueArgs::augment_args(
            clap::Command::new("queue:resume")
                .about("Let workers start jobs of a paused queue again"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: QueueArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        hopper.resume(&args.queue).await?;
        ctx.out().line(format!("Queue {} resumed.", args.queue))?;
        Ok(())
    }
}
