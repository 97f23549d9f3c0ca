//! `queue:bulk`: retry, cancel or delete every job a filter matches (state,
//! queue, type, age), after a confirmation that shows how many match. The
//! work is [`Hopper::bulk`]'s, as for the dashboard and the API.

use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use hopper::bulk::{BulkAction, BulkOutcome};
use hopper::{Hopper, JobFilter, JobState};

use super::{args, usage};
use crate::console::{Command, ConsoleError, Context};

#[derive(Args, Debug)]
struct BulkArgs {
    /// What to do with every matching job.
    #[arg(value_parser = action_parser())]
    action: BulkAction,
    /// Only jobs in this state.
    #[arg(long, value_parser = state_parser())]
    state: Option<JobState>,
    /// Only jobs of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs of this type.
    #[arg(long = "type", value_name = "TYPE")]
    job_type: Option<String>,
    /// Only jobs created longer ago than this (10m, 2h, 7d, …).
    #[arg(long, value_name = "AGE", value_parser = crate::duration::clap_parse)]
    older_than: Option<Duration>,
    /// Go ahead without asking (needed when not run at a terminal).
    #[arg(long)]
    yes: bool,
    /// Print the outcome as JSON for scripts: `{"matched", "applied", "skipped"}`.
    #[arg(long)]
    json: bool,
}

/// `retry`, `cancel` or `delete`, listed in `--help` and checked by clap.
fn action_parser() -> impl TypedValueParser<Value = BulkAction> {
    PossibleValuesParser::new(BulkAction::ALL.map(BulkAction::as_str))
        .try_map(|name| name.parse::<BulkAction>())
}

/// A job state's name, listed in `--help` and checked by clap.
fn state_parser() -> impl TypedValueParser<Value = JobState> {
    PossibleValuesParser::new(JobState::ALL.map(JobState::as_str))
        .try_map(|name| name.parse::<JobState>())
}

pub(crate) struct Bulk;

#[async_trait]
impl Command for Bulk {
    fn definition(&self) -> clap::Command {
        BulkArgs::augment_args(
            clap::Command::new("queue:bulk")
                .about("Retry, cancel or delete every job matching a filter (state, queue, type, age), after confirming the count")
                .after_help(
                    "Shows how many jobs match and asks before changing them; --yes skips the \
                     question, and is needed when not run at a terminal. Jobs the action does not \
                     apply to (a retry of a pending job, a delete of a running one) are counted as \
                     skipped. The dashboard's bulk buttons and POST /api/jobs/bulk do the same.",
                ),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: BulkArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let filter = filter(&hopper, &args)?;
        if !args.yes && !confirmed(self, ctx, &hopper, &args, &filter).await? {
            return Ok(());
        }
        let progress = ctx.out().progress(None, gerund(args.action));
        let done = hopper.bulk(args.action, &filter).await;
        progress.finish();
        report(ctx, args.action, &done?, args.json)
    }
}

/// The jobs `args` select, their age reckoned from the queue's clock.
fn filter(hopper: &Hopper, args: &BulkArgs) -> Result<JobFilter, ConsoleError> {
    let created_before = match args.older_than {
        Some(age) => Some(crate::duration::ago(hopper.now(), age).ok_or_else(|| {
            ConsoleError::Failed(format!(
                "--older-than {} reaches back before the earliest date",
                crate::duration::human(age)
            ))
        })?),
        None => None,
    };
    Ok(JobFilter {
        state: args.state,
        queue: args.queue.clone(),
        job_type: args.job_type.clone(),
        created_before,
        ..JobFilter::default()
    })
}

/// Whether to go ahead: shows the count and asks at a terminal; refuses
/// (a usage error) anywhere else, since only `--yes` can answer there.
async fn confirmed(
    command: &Bulk,
    ctx: &mut Context<'_>,
    hopper: &Hopper,
    args: &BulkArgs,
    filter: &JobFilter,
) -> Result<bool, ConsoleError> {
    let count = hopper.count_jobs(filter).await?;
    let what = format!("{count} jobs match {}", describe(args));
    if !ctx.out().is_interactive() {
        return Err(usage(
            ctx.console(),
            command.definition(),
            format!(
                "{what}; not at a terminal to confirm, so nothing was changed: add --yes to {} them",
                args.action.as_str()
            ),
        ));
    }
    let out = ctx.out();
    if count == 0 {
        out.line(format!("{what}: nothing to {}.", args.action.as_str()))?;
        return Ok(false);
    }
    let question = format!("{what}. {} them? Type yes to go on", args.action.title());
    let answer = out.prompt(&question, "no")?;
    if matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
        return Ok(true);
    }
    out.line("Nothing changed.")?;
    Ok(false)
}

/// The filter in words: `(state failed, queue mail, created more than 2h ago)`.
fn describe(args: &BulkArgs) -> String {
    let mut parts = Vec::new();
    if let Some(state) = args.state {
        parts.push(format!("state {}", state.as_str()));
    }
    if let Some(queue) = &args.queue {
        parts.push(format!("queue {queue}"));
    }
    if let Some(job_type) = &args.job_type {
        parts.push(format!("type {job_type}"));
    }
    if let Some(age) = args.older_than {
        parts.push(format!(
            "created more than {} ago",
            crate::duration::human(age)
        ));
    }
    if parts.is_empty() {
        "(every job)".to_owned()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Writes what the action did: a line, or the outcome as JSON.
fn report(
    ctx: &mut Context<'_>,
    action: BulkAction,
    done: &BulkOutcome,
    json: bool,
) -> Result<(), ConsoleError> {
    let out = ctx.out();
    if json {
        out.json(done)?;
        return Ok(());
    }
    out.line(format!(
        "Matched {} jobs: {} {}, {} skipped.",
        done.matched,
        done.applied,
        action.done(),
        done.skipped
    ))?;
    if done.skipped > 0 {
        out.line(format!("Skipped jobs {}.", skipped_because(action)))?;
    }
    Ok(())
}

/// Why a job `action` matched was left as it was.
fn skipped_because(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Retry => {
            "were neither failed nor cancelled, or another live job holds their unique key"
        }
        BulkAction::Cancel => "were neither pending nor running",
        BulkAction::Delete => "were running",
    }
}

/// `retrying`, `cancelling` or `deleting`, for the spinner.
fn gerund(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Retry => "retrying",
        BulkAction::Cancel => "cancelling",
        BulkAction::Delete => "deleting",
    }
}
