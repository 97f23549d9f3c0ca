//! `app serve` / `app work` / `app console`: see the crate documentation of `app`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // Settings may come from a `.env` file; a missing one is fine.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("error: cannot read .env: {err}");
            return ExitCode::FAILURE;
        }
    }
    let cli = app::Cli::parse();
    app::init_tracing();

    match start(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // The console has reported its failure already.
        Err(err) if err.is::<app::ConsoleFailed>() => err
            .downcast::<app::ConsoleFailed>()
            .map_or(ExitCode::FAILURE, |failed| failed.0),
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: app::Cli) -> anyhow::Result<()> {
    let signals = app::Signals::install()?;
    let config = app::config::Config::from_env()?;
    app::run(cli.command, config, signals.shutdown()).await
}
