//! `schedule:list` and `schedule:run`: the application's schedules, when each
//! fires next and how its latest run went; one run on demand.

use async_trait::async_trait;
use clap::Args;

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
        ListArgs::augment_args(clap::Command::new("schedule:list").about(
            "List the schedules: expression, time zone, next three runs, last run and outcome",
        ))
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
                        hopper::JobState::Finished => Style::Green,
                        hopper::JobState::Failed => Style::Red,
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
            ]);
        }
        out.table(&table)?;
        Ok(())
    }
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
