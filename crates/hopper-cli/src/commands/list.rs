//! `list`: every command with its description, grouped.

use async_trait::async_trait;
use clap::Args;
use serde::Serialize;

use super::args;
use crate::console::{Command, ConsoleError, Context};
use crate::output::{Style, Table};

#[derive(Args, Debug)]
struct ListArgs {
    /// Only this group's commands (make, db, queue, batch, schedule, …).
    group: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    group: String,
    description: String,
}

pub(crate) struct List;

#[async_trait]
impl Command for List {
    fn definition(&self) -> clap::Command {
        ListArgs::augment_args(clap::Command::new("list").about("List every command, grouped"))
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: ListArgs = args(matches)?;
        let entries: Vec<Entry> = ctx
            .console()
            .definitions()
            .into_iter()
            .map(|def| {
                let name = def.get_name().to_owned();
                let group = name
                    .split_once(':')
                    .map(|(group, _)| group.to_owned())
                    .unwrap_or_default();
                let description = def.get_about().map(|a| a.to_string()).unwrap_or_default();
                Entry {
                    name,
                    group,
                    description,
                }
            })
            .filter(|entry| args.group.as_ref().is_none_or(|g| *g == entry.group))
            .collect();
        if let Some(group) = &args.group {
            if entries.is_empty() {
                return Err(ConsoleError::Failed(format!("no command group {group}")));
            }
        }
        if args.json {
            ctx.out().json(&entries)?;
            return Ok(());
        }
        let usage = format!(
            "Usage: {} <command> [arguments] [--help]",
            ctx.console().name()
        );
        let out = ctx.out();
        out.line(usage)?;
        let mut groups: Vec<&str> = Vec::new();
        for entry in &entries {
            if !groups.contains(&entry.group.as_str()) {
                groups.push(&entry.group);
            }
        }
        let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
        for group in groups {
            out.line("")?;
            let title = if group.is_empty() { "general" } else { group };
            out.line(out.paint(Style::Yellow, title))?;
            let mut table = Table::default();
            for entry in entries.iter().filter(|e| e.group == group) {
                let name = format!("  {:width$}", entry.name);
                table.row([
                    crate::output::Cell::styled(name, Style::Green),
                    entry.description.clone().into(),
                ]);
            }
            out.table(&table)?;
        }
        Ok(())
    }
}
