//! The Hopper starter application: an axum HTTP server that dispatches
//! background jobs, and the worker pool that runs them, on SQLite by default.
//!
//! `app serve` runs both; `app work` runs only the workers. Both stop
//! gracefully on SIGINT or SIGTERM. `app console <command>` runs the
//! console: generators (`make:job`, …), `db:*` and `queue:*` commands
//! (`app console list` shows them all).

#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod controllers;
pub mod cron;
pub mod hooks;
pub mod jobs;
pub mod logging;
pub mod mailer;
#[cfg(feature = "otel")]
pub mod otel;
pub mod routes;
pub mod seeders;

use std::future::Future;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hopper::services::{RunningServices, Services};
use hopper::{Hopper, WorkerConfig};

use crate::config::Config;
use crate::mailer::Mailer;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "app",
    version,
    about = "The Hopper starter application",
    after_help = "Settings come from the environment or a .env file: DATABASE_URL, APP_HOST, \
                  APP_PORT, HOPPER_WORKERS, HOPPER_SHUTDOWN_TIMEOUT, MAIL_LOG, ADMIN_TOKEN, LOG_LEVEL, \
                  LOG_TERMINAL, LOG_FILE, LOG_DIR, LOG_MAX_FILES, HOPPER_ALERT_RULES, \
                  HOPPER_ALERT_WEBHOOK, HOPPER_ALERT_INTERVAL, OTEL_EXPORTER_OTLP_ENDPOINT."
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands `app` understands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the worker pool.
    Serve,
    /// Run only the worker pool.
    Work,
    /// Run a console command: `app console list` shows them all.
    #[command(disable_help_flag = true)]
    Console {
        /// The console command and its arguments.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        args: Vec<String>,
    },
}

/// What every HTTP handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The job queue handlers dispatch to.
    pub hopper: Hopper,
}

/// A Hopper builder with every job of the application registered and
/// `mailer` shared with them.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let builder = app::hopper_builder(app::mailer::Mailer::new(dir.path().join("mail.log"))).unwrap();
/// let hopper = builder.connect("sqlite::memory:").await.unwrap();
/// assert!(hopper.registry().contains("send_email"));
/// # });
/// ```
pub fn hopper_builder(mailer: Mailer) -> Result<hopper::Builder, hopper::RegistryError> {
    Ok(Hopper::builder().registry(registry()?).state(mailer))
}

/// A registry holding every job and scheduled task of the application.
///
/// ```
/// let registry = app::registry().unwrap();
/// assert!(registry.contains("send_email"));
/// assert!(registry.contains("heartbeat_task"));
/// ```
pub fn registry() -> Result<hopper::Registry, hopper::RegistryError> {
    let mut registry = jobs::registry()?;
    cron::register(&mut registry)?;
    Ok(registry)
}

/// The console `app console` runs: every job registered, the seeders and
/// the schedules. Generators write to the `src` folder of the package around
/// the working directory (override with `--source` or `HOPPER_SOURCE_DIR`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let config = app::config::Config::from_lookup(|_| None).unwrap();
/// let mut out = hopper_cli::output::Output::buffer();
/// app::console(&config).unwrap().execute(["list", "make"], &mut out).await.unwrap();
/// assert!(out.text().contains("make:job"));
/// # });
/// ```
pub fn console(config: &Config) -> anyhow::Result<hopper_cli::Console> {
    let mail_log = config.mail_log.clone();
    Ok(hopper_cli::Console::new("app console", move || {
        Ok(hopper_builder(Mailer::new(&mail_log))?)
    })
    .database_url(config.database_url.clone())
    .worker_config(worker_config(config))
    .seeders(seeders::all())
    .schedules(cron::schedules()?)
    .alerts({
        let config = config.clone();
        move || Ok(alerts(&config)?)
    }))
}

/// Opens the job database `config` names (creating it if missing) with
/// every job registered.
pub async fn connect(config: &Config) -> anyhow::Result<Hopper> {
    let builder = hopper_builder(Mailer::new(&config.mail_log))?;
    builder
        .connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the job database {}", config.database_url))
}

/// The worker configuration `config` asks for: the `default` queue with
/// `HOPPER_WORKERS` concurrent jobs (scaling between `HOPPER_MIN_WORKERS`
/// and that when the minimum is lower), and the [`hooks::FailureNotice`] hook.
///
/// ```
/// let config = app::config::Config::from_lookup(|name| match name {
///     "HOPPER_WORKERS" => Some("8".into()),
///     "HOPPER_MIN_WORKERS" => Some("2".into()),
///     _ => None,
/// })
/// .unwrap();
/// let workers = app::worker_config(&config);
/// assert_eq!(workers.concurrency("default"), Some(hopper::Concurrency { min: 2, max: 8 }));
/// ```
/// The alert rules `config` names (`HOPPER_ALERT_RULES`), delivered to its
/// webhook (`HOPPER_ALERT_WEBHOOK`) if one is set; `None` without rules. A
/// webhook without rules is an error: it would never be called.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let rules = dir.path().join("alerts.json");
/// std::fs::write(&rules, r#"{"backlog": {"kind": "queue_depth", "above": 1000}}"#).unwrap();
/// let mut config = app::config::Config::from_lookup(|_| None).unwrap();
/// assert!(app::alerts(&config).unwrap().is_none());
/// config.alert_rules = Some(rules);
/// config.alert_webhook = Some("http://127.0.0.1:9000/alerts".into());
/// assert_eq!(app::alerts(&config).unwrap().unwrap().rules().count(), 1);
/// ```
pub fn alerts(config: &Config) -> anyhow::Result<Option<hopper::alerts::Alerts>> {
    let Some(path) = &config.alert_rules else {
        anyhow::ensure!(
            config.alert_webhook.is_none(),
            "HOPPER_ALERT_WEBHOOK is set but HOPPER_ALERT_RULES is not: name a file of alert rules"
        );
        return Ok(None);
    };
    let mut alerts = hopper::alerts::Alerts::load(path)?.interval(config.alert_interval);
    if let Some(url) = &config.alert_webhook {
        alerts = alerts.webhook(hopper::alerts::Webhook::new(url)?);
    }
    Ok(Some(alerts))
}

/// What `serve` and `work` run besides the HTTP server: the worker pool
/// [`worker_config`] describes (plus every queue a registered job names,
/// sized like the `default` queue), every schedule of [`cron`], and the
/// alert rules `config` names.
///
/// ```
/// let config = app::config::Config::from_lookup(|_| None).unwrap();
/// let services = app::services(&config).unwrap();
/// # let _ = services;
/// ```
pub fn services(config: &Config) -> anyhow::Result<Services> {
    let mut services = Services::new(worker_config(config)).schedules(cron::schedules()?);
    if let Some(alerts) = alerts(config)? {
        services = services.alerts(alerts);
    }
    Ok(services)
}

/// The worker configuration `config` asks for.
pub fn worker_config(config: &Config) -> WorkerConfig {
    WorkerConfig::new(config.workers)
        .queue_scaled(hopper::DEFAULT_QUEUE, config.min_workers, config.workers)
        .shutdown_timeout(config.shutdown_timeout)
        .hooks(hooks::FailureNotice::new(&config.notify_email))
}

/// Runs `command` until `shutdown` completes, then stops gracefully.
pub async fn run(
    command: Command,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config, shutdown).await,
        Command::Work => work(config, shutdown).await,
        Command::Console { args } => match console(&config)?.run(args).await {
            code if code == std::process::ExitCode::SUCCESS => Ok(()),
            code => Err(ConsoleFailed(code).into()),
        },
    }
}

/// Runs the HTTP server and the worker pool until `shutdown` completes;
/// then stops the server (letting open requests finish, for at most the
/// shutdown timeout) and then the workers.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hopper = connect(&config).await?;
    let address = config.address();
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let schedules = cron::schedules()?;
    let running = services(&config)?
        .start(&hopper)
        .context("cannot start the workers")?;
    let admin = admin::Admin::new(&hopper, &config)?.schedules(schedules);
    tracing::info!(database = %config.database_url, "listening on http://{local}");
    admin.announce(local);

    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let router = routes::router(AppState { hopper }).merge(admin.router());
    let close_live_streams = admin.live_closer();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new HTTP requests accepted");
        // Open dashboard pages hold their live streams open; end them.
        close_live_streams();
        let _ = stopping_tx.send(true);
    });
    let drain_limit = config.shutdown_timeout;
    let served = tokio::select! {
        result = server => result.context("the HTTP server failed"),
        () = async {
            // Resolves only once shutdown started and requests overran the limit.
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(drain_limit).await;
        } => {
            tracing::warn!(limit = ?drain_limit, "open HTTP requests did not finish in time; closing them");
            Ok(())
        }
    };
    let stopped = stop(running).await;
    served?;
    stopped?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Runs only the worker pool until `shutdown` completes, then stops it.
pub async fn work(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hopper = connect(&config).await?;
    let running = services(&config)?
        .start(&hopper)
        .context("cannot start the workers")?;
    tracing::info!(database = %config.database_url, "working; no HTTP server in this mode");
    shutdown.await;
    stop(running).await?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// A console command failed; it has already said why.
#[derive(Debug, thiserror::Error)]
#[error("the console command failed")]
pub struct ConsoleFailed(pub std::process::ExitCode);

async fn stop(running: RunningServices) -> anyhow::Result<()> {
    running
        .stop()
        .await
        .context("the workers did not stop cleanly")?;
    Ok(())
}

/// Starts logging as `config` says: to the terminal, and for `serve` and
/// `work` also to the daily JSON file (see [`logging`]). Keep the guard
/// until the process ends.
pub fn init_logging(config: &Config, command: &Command) -> anyhow::Result<logging::LogGuard> {
    let with_file = matches!(command, Command::Serve | Command::Work);
    logging::init(&config.log, with_file)
}
