//! `schedule:list`: the application's schedules and when each fires next.

use std::str::FromStr;

use async_trait::async_trait;
use clap::Args;
use serde::Serialize;

use super::{args, time};
use crate::console::{Command, ConsoleError, Context};
use crate::output::{Cell, Style, Table};

#[derive(Args, Debug)]
struct ListArgs {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    schedule: String,
    next_run: Option<chrono::DateTime<chrono::Utc>>,
    error: Option<String>,
}

pub(crate) struct List;

#[async_trait]
impl Command for List {
    fn definition(&self) -> clap::Command {
        ListArgs::augment_args(
            clap::Command::new("schedule:list")
                .about("List the scheduled tasks, their cron expressions and next run (UTC)"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: ListArgs = args(matches)?;
        let now = chrono::Utc::now();
        let entries: Vec<Entry> = ctx
            .console()
            .schedule_list()
            .iter()
            .map(|(name, schedule)| {
                let next = croner::Cron::from_str(schedule)
                    .map_err(|e| e.to_string())
                    .and_then(|cron| {
                        cron.find_next_occurrence(&now, false)
                            .map_err(|e| e.to_string())
                    });
                let (next_run, error) = match next {
                    Ok(at) => (Some(at), None),
                    Err(e) => (None, Some(e)),
                };
                Entry {
                    name: name.clone(),
                    schedule: schedule.clone(),
                    next_run,
                    error,
                }
            })
            .collect();
        let out = ctx.out();
        if args.json {
            out.json(&entries)?;
            return Ok(());
        }
        if entries.is_empty() {
            out.line("No scheduled tasks: create one with make:cron.")?;
            return Ok(());
        }
        let mut table = Table::new(["TASK", "SCHEDULE", "NEXT RUN (UTC)"]);
        for entry in &entries {
            table.row([
                Cell::styled(entry.name.clone(), Style::Bold),
                entry.schedule.clone().into(),
                match (&entry.next_run, &entry.error) {
                    (Some(at), _) => time(*at).into(),
                    (None, Some(e)) => Cell::styled(format!("invalid: {e}"), Style::Red),
                    (None, None) => "-".into(),
                },
            ]);
        }
        out.table(&table)?;
        Ok(())
    }
}
