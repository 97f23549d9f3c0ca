//! `make:job`, `make:cron`, `make:seeder`: the generators.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;

use super::{args, shown, usage};
use crate::console::{Command, ConsoleError, Context};
use crate::generate::{Generated, JobSpec, SourceTree, TypeName};
use crate::output::{Output, Style};

// Where generated files go (a plain comment: a doc comment would become
// the description of every command that flattens these arguments).
#[derive(Args, Debug)]
struct SourceArgs {
    /// The application's src folder (holding jobs/, cron/, seeders/) [default: src of the package around the working directory].
    #[arg(long, value_name = "DIR", env = "HOPPER_SOURCE_DIR")]
    source: Option<PathBuf>,
    /// Overwrite the file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct MakeJobArgs {
    /// The job's type name in UpperCamelCase, e.g. ProcessPaymentJob.
    name: Option<String>,
    /// How many times the job runs before it fails for good.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: Option<u32>,
    /// How long to wait before running it again after a failed attempt (30s, 5m, …).
    #[arg(long, value_parser = crate::duration::clap_parse)]
    retry_delay: Option<Duration>,
    /// The queue it runs on.
    #[arg(long)]
    queue: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
}

pub(crate) struct MakeJob;

#[async_trait]
impl Command for MakeJob {
    fn definition(&self) -> clap::Command {
        MakeJobArgs::augment_args(
            clap::Command::new("make:job")
                .about("Create a background job in src/jobs/ and register it")
                .after_help(
                    "Writes src/jobs/<snake_name>.rs (ProcessPaymentJob → process_payment_job.rs) with a \
                     payload, the handler, its attempts, retry delay and a test, and registers it in \
                     src/jobs/mod.rs. Asks for the settings when run at a terminal without flags.",
                ),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: MakeJobArgs = args(matches)?;
        let no_flags =
            args.attempts.is_none() && args.retry_delay.is_none() && args.queue.is_none();
        let ask = ctx.out().is_interactive() && (no_flags || args.name.is_none());
        let name = match args.name {
            Some(name) => name,
            None if ask => ctx
                .out()
                .prompt("Job name (UpperCamelCase)", "ExampleJob")?,
            None => {
                return Err(usage(
                    ctx.console(),
                    self.definition(),
                    "make:job needs the job's NAME, e.g. `make:job ProcessPaymentJob`",
                ));
            }
        };
        let mut spec = JobSpec::new(TypeName::parse(&name)?);
        if let Some(attempts) = args.attempts {
            spec.max_attempts = attempts;
        }
        if let Some(delay) = args.retry_delay {
            spec.retry_delay = delay;
        }
        if let Some(queue) = args.queue {
            spec.queue = queue;
        }
        if ask && no_flags {
            ask_settings(ctx.out(), &mut spec)?;
        }
        let tree = SourceTree::new(ctx.console().source(args.source.source)?);
        let generated = tree.make_job(&spec, args.source.force, ctx.console().name())?;
        report(ctx.out(), &generated, spec.name.name())
    }
}

fn ask_settings(out: &mut Output, spec: &mut JobSpec) -> Result<(), ConsoleError> {
    let attempts = out.prompt("Max attempts", &spec.max_attempts.to_string())?;
    spec.max_attempts = attempts.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        ConsoleError::Failed(format!(
            "max attempts must be a whole number from 1, got {attempts:?}"
        ))
    })?;
    let delay = out.prompt("Retry delay", &crate::duration::human(spec.retry_delay))?;
    spec.retry_delay = crate::duration::parse(&delay.replace(' ', ""))
        .map_err(|e| ConsoleError::Failed(e.to_string()))?;
    spec.queue = out.prompt("Queue", &spec.queue)?;
    Ok(())
}

fn report(out: &mut Output, generated: &Generated, name: &str) -> Result<(), ConsoleError> {
    let mut created = format!(
        "{} {}",
        out.paint(Style::Green, "Created"),
        shown(&generated.created)
    );
    if let Some(job_type) = &generated.job_type {
        created.push_str(&format!(" (job type {job_type})"));
    }
    out.line(created)?;
    for path in &generated.updated {
        out.line(format!(
            "{} {}",
            out.paint(Style::Green, "Updated"),
            shown(path)
        ))?;
    }
    out.line(format!(
        "{name} is registered; fill in its code and run its test with `cargo test`."
    ))?;
    Ok(())
}

#[derive(Args, Debug)]
struct MakeCronArgs {
    /// The task's type name in UpperCamelCase, e.g. PingTask.
    name: String,
    /// When it runs: a cron expression, seconds optional ("*/5 * * * *", "0 0 3 * * *"), or @hourly, @daily, @weekly, @monthly, @yearly, "@every 30s" (s, m, h, d: "@every 1h30m").
    #[arg(long, default_value = "0 * * * *")]
    schedule: String,
    #[command(flatten)]
    source: SourceArgs,
}

pub(crate) struct MakeCron;

#[async_trait]
impl Command for MakeCron {
    fn definition(&self) -> clap::Command {
        MakeCronArgs::augment_args(
            clap::Command::new("make:cron")
                .about("Create a scheduled task in src/cron/ and register it"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: MakeCronArgs = args(matches)?;
        let name = TypeName::parse(&args.name)?;
        let tree = SourceTree::new(ctx.console().source(args.source.source)?);
        let generated = tree.make_cron(&name, &args.schedule, args.source.force)?;
        report(ctx.out(), &generated, name.name())
    }
}

#[derive(Args, Debug)]
struct MakeSeederArgs {
    /// The seeder's type name in UpperCamelCase, e.g. UserSeeder.
    name: String,
    #[command(flatten)]
    source: SourceArgs,
}

pub(crate) struct MakeSeeder;

#[async_trait]
impl Command for MakeSeeder {
    fn definition(&self) -> clap::Command {
        MakeSeederArgs::augment_args(
            clap::Command::new("make:seeder")
                .about("Create a seeder in src/seeders/ and register it for db:seed"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: MakeSeederArgs = args(matches)?;
        let name = TypeName::parse(&args.name)?;
        let tree = SourceTree::new(ctx.console().source(args.source.source)?);
        let generated = tree.make_seeder(&name, args.source.force)?;
        report(ctx.out(), &generated, name.name())
    }
}
