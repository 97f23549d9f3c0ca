//! `batch:status`: one batch's counts, whether it is sealed and complete,
//! and its callbacks with the jobs they became.

use async_trait::async_trait;
use clap::Args;
use hopper::JobState;
use hopper::store::{BatchCallback, BatchCounts, BatchId, BatchRecord};

use super::{args, count_cell, state_style, time};
use crate::console::{Command, ConsoleError, Context};
use crate::output::{Cell, Output, OutputError, Style, Table};

#[derive(Args, Debug)]
struct StatusArgs {
    /// The batch's id.
    id: BatchId,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub(crate) struct Status;

#[async_trait]
impl Command for Status {
    fn definition(&self) -> clap::Command {
        StatusArgs::augment_args(clap::Command::new("batch:status").about(
            "Show one batch: its jobs per outcome, whether it is sealed and complete, and its callbacks",
        ))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: StatusArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let batch = hopper
            .batch_status(args.id)
            .await?
            .ok_or_else(|| ConsoleError::Failed(format!("no batch {}", args.id)))?;
        let out = ctx.out();
        if args.json {
            out.json(&batch)?;
            return Ok(());
        }
        out.table(&summary_table(&batch))?;
        out.line("")?;
        out.table(&counts_table(&batch.counts))?;
        out.line("")?;
        print_callbacks(out, &batch.callbacks)?;
        Ok(())
    }
}

/// The batch's id, name, creation, seal, completion and progress, one per row.
fn summary_table(batch: &BatchRecord) -> Table {
    let yes_no = |yes: bool| if yes { "yes" } else { "no" };
    let counts = &batch.counts;
    let ended = counts.ended();
    let progress = match counts.total {
        0 => "no jobs".to_owned(),
        total => format!("{ended} of {total} ended ({}%)", ended * 100 / total),
    };
    let complete = if batch.is_complete() {
        Cell::styled("yes", Style::Green)
    } else {
        Cell::from("no")
    };
    let mut table = Table::default();
    let mut field = |name: &str, value: Cell| {
        table.row([Cell::styled(name, Style::Bold), value]);
    };
    field("id", batch.id.to_string().into());
    field("name", batch.name.clone().into());
    field("created", time(batch.created_at).into());
    field("sealed", yes_no(batch.sealed).into());
    field("complete", complete);
    field("progress", progress.into());
    table
}

/// The batch's jobs: all of them, pending, and each way of ending.
fn counts_table(counts: &BatchCounts) -> Table {
    let mut table = Table::new(["TOTAL", "PENDING", "FINISHED", "FAILED", "CANCELLED"]);
    table.row([
        Cell::styled(counts.total.to_string(), Style::Bold),
        count_cell(counts.pending(), state_style(JobState::Pending)),
        count_cell(counts.finished, state_style(JobState::Finished)),
        count_cell(counts.failed, state_style(JobState::Failed)),
        count_cell(counts.cancelled, state_style(JobState::Cancelled)),
    ]);
    table
}

/// Each callback, with the job it became once fired.
fn print_callbacks(out: &mut Output, callbacks: &[BatchCallback]) -> Result<(), OutputError> {
    if callbacks.is_empty() {
        return out.line(format!("{}: none", out.paint(Style::Bold, "callbacks")));
    }
    let mut table = Table::new(["CALLBACK", "TYPE", "JOB"]);
    for callback in callbacks {
        let job = match callback.job_id {
            Some(id) => Cell::styled(id.to_string(), Style::Cyan),
            None => Cell::styled("not fired", Style::Dim),
        };
        table.row([
            Cell::styled(callback.event.to_string(), Style::Bold),
            callback.job_type.clone().into(),
            job,
        ]);
    }
    out.table(&table)
}
