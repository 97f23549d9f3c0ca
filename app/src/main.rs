//! `app serve` / `app work`: see the crate documentation of `app`.

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
