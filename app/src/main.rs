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
    let config = match app::config::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let _log = match app::init_logging(&config, &cli.command) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };

    match start(cli, config).await {
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

async fn start(cli: app::Cli, config: app::config::Config) -> anyhow::Result<()> {
    // Listening first, so a signal that comes while the app starts is not lost.
    let signals = hopper::signals::Signals::install()?;
    app::run(cli.command, config, signals.shutdown()).await
}
