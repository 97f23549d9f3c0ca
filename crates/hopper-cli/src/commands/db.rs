//! `db:migrate`, `db:status`, `db:seed`.

use std::time::Instant;

use async_trait::async_trait;
use clap::Args;

use super::{args, time};
use crate::console::{Command, ConsoleError, Context, nearest};
use crate::output::{Cell, Style, Table};
use crate::seeder::SeedContext;

#[derive(Args, Debug)]
struct MigrateArgs {}

pub(crate) struct Migrate;

#[async_trait]
impl Command for Migrate {
    fn definition(&self) -> clap::Command {
        MigrateArgs::augment_args(
            clap::Command::new("db:migrate")
                .about("Create the job tables or bring them up to date"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let _: MigrateArgs = args(matches)?;
        let url = ctx.console().database().to_owned();
        let before = hopper::store::migration_status(&url).await?;
        hopper::store::open(&url).await?;
        let out = ctx.out();
        let pending: Vec<_> = before.iter().filter(|m| m.applied_at.is_none()).collect();
        if pending.is_empty() {
            out.line(format!(
                "Nothing to migrate: {} is up to date ({} migrations).",
                url,
                before.len()
            ))?;
            return Ok(());
        }
        for migration in &pending {
            out.line(format!(
                "{} {} {}",
                out.paint(Style::Green, "Migrated"),
                migration.version,
                migration.description
            ))?;
        }
        out.line(format!("{} migrations applied to {url}.", pending.len()))?;
        Ok(())
    }
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub(crate) struct Status;

#[async_trait]
impl Command for Status {
    fn definition(&self) -> clap::Command {
        StatusArgs::augment_args(
            clap::Command::new("db:status").about("Show which migrations the database has applied"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: StatusArgs = args(matches)?;
        let url = ctx.console().database().to_owned();
        let status = hopper::store::migration_status(&url).await?;
        let out = ctx.out();
        if args.json {
            out.json(&status)?;
            return Ok(());
        }
        let mut table = Table::new(["VERSION", "MIGRATION", "STATUS"]);
        for migration in &status {
            let state = match migration.applied_at {
                Some(at) => Cell::styled(format!("applied {}", time(at)), Style::Green),
                None => Cell::styled("pending", Style::Yellow),
            };
            table.row([
                migration.version.to_string().into(),
                migration.description.clone().into(),
                state,
            ]);
        }
        out.table(&table)?;
        let pending = status.iter().filter(|m| m.applied_at.is_none()).count();
        if pending > 0 {
            out.line(format!("{pending} pending: run db:migrate."))?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct SeedArgs {
    /// Run only these seeders (default: all, in order).
    names: Vec<String>,
}

pub(crate) struct Seed;

#[async_trait]
impl Command for Seed {
    fn definition(&self) -> clap::Command {
        SeedArgs::augment_args(
            clap::Command::new("db:seed")
                .about("Run the application's seeders (all, or those named)"),
        )
    }

    async fn run(
        &self,
        ctx: &mut Context<'_>,
        matches: &clap::ArgMatches,
    ) -> Result<(), ConsoleError> {
        let args: SeedArgs = args(matches)?;
        let all = ctx.console().seeder_list().to_vec();
        let seeders = if args.names.is_empty() {
            all.clone()
        } else {
            let mut chosen = Vec::new();
            for name in &args.names {
                let Some(seeder) = all.iter().find(|s| s.name() == name) else {
                    let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
                    let hint = match nearest(name, names.iter().copied()) {
                        Some(close) => format!("; did you mean {close}?"),
                        None if names.is_empty() => "; the application has no seeders".to_owned(),
                        None => format!("; seeders: {}", names.join(", ")),
                    };
                    return Err(ConsoleError::Failed(format!("no seeder {name}{hint}")));
                };
                chosen.push(seeder.clone());
            }
            chosen
        };
        if seeders.is_empty() {
            ctx.out().line("No seeders to run.")?;
            return Ok(());
        }
        let hopper = ctx.hopper().await?;
        for seeder in seeders {
            let started = Instant::now();
            let progress = ctx.out().progress(None, seeder.name());
            let seed = SeedContext::with_progress(hopper.clone(), progress.clone());
            let result = seeder.run(&seed).await;
            progress.finish();
            result.map_err(|source| ConsoleError::Seed {
                name: seeder.name().to_owned(),
                source,
            })?;
            let out = ctx.out();
            out.line(format!(
                "{} {} ({})",
                out.paint(Style::Green, "Seeded"),
                seeder.name(),
                crate::duration::human(started.elapsed())
            ))?;
        }
        Ok(())
    }
}
