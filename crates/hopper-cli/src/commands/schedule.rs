//! `schedule:list` and `schedule:run`: the application's schedules, when each
//! fires next and how its latest runs went; one run on demand.

use async_trait::async_trait;
use clap::Args;
use hopper::JobState;
use hopper::store::ScheduleRun;

use super::{args, time};
use crate::console::{Command, ConsoleError, Context};
use crate::output::{Cell, Style, Table};

#[derive(Args, Debug)]
struct ListArgs {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub(crate) struct List;

#[async_trait]
impl Command for List {
    fn definition(&self) -> clap::Command {
        ListArgs::augment_args(
            clap::Command::new("schedule:list")
                .about(
                    "List the schedules: expression, time zone, next three runs, last run and outcome, recent runs",
                )
                .long_about(
                    "List the schedules: expression, time zone, next three runs, last run and outcome, \
                     and the outcomes of the latest five runs, newest first \
                     (ok: finished; gone: the job was pruned or deleted). \
                     --json prints each schedule's `recent` runs with their tick, job id and state.",
                ),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: ListArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let infos = ctx.console().schedule_list().list(&hopper).await?;
        let out = ctx.out();
        if args.json {
            out.json(&infos)?;
            return Ok(());
        }
        if infos.is_empty() {
            out.line("No schedules: create one with make:cron.")?;
            return Ok(());
        }
        let mut table = Table::new([
            "SCHEDULE",
            "EXPRESSION",
            "ZONE",
            "NEXT RUNS (UTC)",
            "LAST RUN (UTC)",
            "OUTCOME",
            "RECENT (NEWEST FIRST)",
        ]);
        for info in &infos {
            let next = info
                .next
                .iter()
                .map(|at| time(*at))
                .collect::<Vec<_>>()
                .join(", ");
            let outcome = match info.last_job {
                Some((id, state)) => {
                    let style = match state {
                        JobState::Finished => Style::Green,
                        JobState::Failed => Style::Red,
                        _ => Style::Plain,
                    };
                    Cell::styled(format!("{state} (job {id})"), style)
                }
                None => "-".into(),
            };
            table.row([
                Cell::styled(info.name.clone(), Style::Bold),
                info.expression.clone().into(),
                info.zone.clone().into(),
                next.into(),
                info.last_fire_at
                    .map_or_else(|| "never".to_owned(), time)
                    .into(),
                outcome,
                recent(&info.recent),
            ]);
        }
        out.table(&table)?;
        Ok(())
    }
}

/// A run's outcome in one short word: its state, `ok` when it finished,
/// `gone` once the job is pruned or deleted.
fn run_word(state: Option<JobState>) -> &'static str {
    match state {
        Some(JobState::Finished) => "ok",
        Some(state) => state.as_str(),
        None => "gone",
    }
}

/// The latest runs' outcomes, newest first, one word each: red when one
/// of them failed, green when all finished, `-` when there is none yet.
fn recent(runs: &[ScheduleRun]) -> Cell {
    if runs.is_empty() {
        return "-".into();
    }
    let text = runs
        .iter()
        .map(|run| run_word(run.state))
        .collect::<Vec<_>>()
        .join(" ");
    let style = if runs.iter().any(|run| run.state == Some(JobState::Failed)) {
        Style::Red
    } else if runs.iter().all(|run| run.state == Some(JobState::Finished)) {
        Style::Green
    } else {
        Style::Plain
    };
    Cell::styled(text, style)
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The schedule to run once now.
    name: String,
}

pub(crate) struct Run;

#[async_trait]
impl Command for Run {
    fn definition(&self) -> clap::Command {
        RunArgs::augment_args(
            clap::Command::new("schedule:run").about("Dispatch one run of a schedule now"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: RunArgs = args(matches)?;
        let hopper = ctx.hopper().await?;
        let id = ctx
            .console()
            .schedule_list()
            .run_now(&hopper, &args.name)
            .await?;
        ctx.out()
            .line(format!("Dispatched job {id} for schedule {}.", args.name))?;
        Ok(())
    }
}
