//! The console kernel: the commands an application mounts, how a command
//! line reaches one, and how failures become messages and exit codes.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use hopper::alerts::Alerts;
use hopper::schedule::Schedules;
use hopper::services::Services;
use hopper::{Builder, DispatchError, Hopper, StoreError, WorkerConfig, WorkerError};

use crate::generate::GenerateError;
use crate::output::{Output, OutputError};
use crate::package::PackageError;
use crate::seeder::{SeedError, Seeder};

/// An error from the application's own code (its builder, its commands).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a command failed. Every variant exits non-zero: 2 for a command line
/// that does not fit, 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The command line names no command or does not fit the command.
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// The command ran and could not do what was asked.
    #[error("{0}")]
    Failed(String),
    /// The application's builder failed, or the database could not be opened.
    #[error("cannot open the job database {url}: {source}")]
    Connect {
        /// The database URL.
        url: String,
        /// Why.
        source: BoxError,
    },
    /// A database operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dispatch was refused.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// A schedule could not be listed or run.
    #[error(transparent)]
    Schedule(#[from] hopper::schedule::ScheduleError),
    /// The workers could not start or stop.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A generator refused or failed; nothing was written.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// A seeder failed.
    #[error("seeder {name} failed: {source}")]
    Seed {
        /// The seeder's name.
        name: String,
        /// Its error.
        source: SeedError,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// No `--source` was given and the working directory is in no package.
    #[error(
        "cannot tell where the application's src folder is: {0}; run the console inside \
         the application's package or name its src folder with --source DIR (or HOPPER_SOURCE_DIR)"
    )]
    SourceDir(#[source] PackageError),
    /// The alert rules `queue:work` checks could not be loaded.
    #[error("cannot load the alert rules: {0}")]
    Alerts(BoxError),
}

impl ConsoleError {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise.
    ///
    /// ```
    /// let err = hopper_cli::ConsoleError::Failed("no job 4".into());
    /// assert_eq!(err.exit_code(), 1);
    /// ```
    pub fn exit_code(&self) -> u8 {
        match self {
            ConsoleError::Usage(err) if !err.use_stderr() => 0,
            ConsoleError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// One console command. The built-in ones implement it too; an application
/// adds its own with [`Console::command`].
///
/// ```
/// use hopper_cli::{Command, ConsoleError, Context};
///
/// struct Hello;
///
/// #[hopper_cli::async_trait]
/// impl Command for Hello {
///     fn definition(&self) -> clap::Command {
///         clap::Command::new("app:hello").about("Says hello").arg(clap::Arg::new("name").required(true))
///     }
///     async fn run(&self, ctx: &mut Context<'_>, args: &clap::ArgMatches) -> Result<(), ConsoleError> {
///         let name = args.get_one::<String>("name").map_or("", String::as_str);
///         ctx.out().line(format!("hello, {name}"))?;
///         Ok(())
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let console = hopper_cli::Console::new("app console", || Ok(hopper::Hopper::builder())).command(Hello);
/// let mut out = hopper_cli::output::Output::buffer();
/// console.execute(["app:hello", "ada"], &mut out).await.unwrap();
/// assert_eq!(out.text(), "hello, ada\n");
/// # });
/// ```
#[async_trait]
pub trait Command: Send + Sync + 'static {
    /// The command's name (`group:name`), one-line description and arguments.
    fn definition(&self) -> clap::Command;

    /// Runs the command with its parsed arguments.
    async fn run(&self, ctx: &mut Context<'_>, args: &clap::ArgMatches)
    -> Result<(), ConsoleError>;
}

type BuilderFn = dyn Fn() -> Result<Builder, BoxError> + Send + Sync;
type ShutdownFn = dyn Fn() -> BoxFuture<'static, ()> + Send + Sync;
type AlertsFn = dyn Fn() -> Result<Option<Alerts>, BoxError> + Send + Sync;

/// The console an application mounts: its job queue, seeders, schedules,
/// source folder and extra commands, plus every built-in command.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let console = hopper_cli::Console::new("app console", || Ok(hopper::Hopper::builder()))
///     .database_url(format!("sqlite://{}", dir.path().join("jobs.db").display()));
/// let mut out = hopper_cli::output::Output::buffer();
/// console.execute(["list"], &mut out).await.unwrap();
/// assert!(out.text().contains("make:job"));
/// # });
/// ```
#[derive(Clone)]
pub struct Console {
    name: String,
    builder: Arc<BuilderFn>,
    database_url: String,
    worker_config: WorkerConfig,
    source_dir: Option<PathBuf>,
    seeders: Vec<Arc<dyn Seeder>>,
    schedules: Schedules,
    alerts: Option<Arc<AlertsFn>>,
    commands: Vec<Arc<dyn Command>>,
    shutdown: Option<Arc<ShutdownFn>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("name", &self.name)
            .field("database_url", &self.database_url)
            .field("source_dir", &self.source_dir)
            .field("commands", &self.commands.len())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console called `name` in usage lines (`app console`), whose job
    /// queue `builder` builds (every job registered, state shared; `?` turns
    /// a registry error into the boxed error it returns).
    ///
    /// ```
    /// let console = hopper_cli::Console::new("app console", || Ok(hopper::Hopper::builder()));
    /// assert_eq!(console.name(), "app console");
    /// ```
    pub fn new<F>(name: impl Into<String>, builder: F) -> Self
    where
        F: Fn() -> Result<Builder, BoxError> + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            builder: Arc::new(builder),
            database_url: hopper::database_url(),
            worker_config: WorkerConfig::default(),
            source_dir: None,
            seeders: Vec::new(),
            schedules: Schedules::new(),
            alerts: None,
            commands: crate::commands::built_in(),
            shutdown: None,
        }
    }

    /// The job database (default: `DATABASE_URL` or [`hopper::DEFAULT_DATABASE_URL`]).
    ///
    /// ```
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder())).database_url("sqlite::memory:");
    /// # let _ = console;
    /// ```
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = url.into();
        self
    }

    /// How `queue:work` runs workers unless its flags say otherwise.
    ///
    /// ```
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder()))
    ///     .worker_config(hopper::WorkerConfig::new(4));
    /// # let _ = console;
    /// ```
    pub fn worker_config(mut self, config: WorkerConfig) -> Self {
        self.worker_config = config;
        self
    }

    /// The application's source folder (holding `jobs/`, `cron/`,
    /// `seeders/`), where generators write unless `--source` says otherwise.
    /// Default: the `src` folder of the package around the working
    /// directory (see [`crate::package`]), found when a generator runs.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder()))
    ///     .source_dir(dir.path().join("src"));
    /// # let _ = console;
    /// ```
    pub fn source_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.source_dir = Some(dir.into());
        self
    }

    /// Adds the seeders `db:seed` runs, in order.
    ///
    /// ```
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder())).seeders(Vec::new());
    /// # let _ = console;
    /// ```
    pub fn seeders(mut self, seeders: impl IntoIterator<Item = Box<dyn Seeder>>) -> Self {
        self.seeders
            .extend(seeders.into_iter().map(Arc::<dyn Seeder>::from));
        self
    }

    /// Uses the application's schedules for `schedule:list` and `schedule:run`.
    ///
    /// ```
    /// use hopper::schedule::{Schedule, Schedules};
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let mut schedules = Schedules::new();
    /// schedules.add(Schedule::new::<Ping>("ping_task", "0 * * * *", ()).unwrap()).unwrap();
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder())).schedules(schedules);
    /// # let _ = console;
    /// ```
    pub fn schedules(mut self, schedules: Schedules) -> Self {
        self.schedules = schedules;
        self
    }

    /// The alert rules `queue:work` checks while it runs, loaded when it
    /// starts (`None`: no rules); a failure to load them fails `queue:work`
    /// and no other command.
    ///
    /// ```
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder()))
    ///     .alerts(|| Ok(Some(hopper::alerts::Alerts::from_json(r#"{"backlog": {"kind": "queue_depth", "above": 100}}"#)?)));
    /// # let _ = console;
    /// ```
    pub fn alerts<F>(mut self, alerts: F) -> Self
    where
        F: Fn() -> Result<Option<Alerts>, BoxError> + Send + Sync + 'static,
    {
        self.alerts = Some(Arc::new(alerts));
        self
    }

    /// Adds an application command (see [`Command`]).
    ///
    /// ```
    /// # struct Noop;
    /// # #[hopper_cli::async_trait]
    /// # impl hopper_cli::Command for Noop {
    /// #     fn definition(&self) -> clap::Command { clap::Command::new("app:noop") }
    /// #     async fn run(&self, _: &mut hopper_cli::Context<'_>, _: &clap::ArgMatches) -> Result<(), hopper_cli::ConsoleError> { Ok(()) }
    /// # }
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder())).command(Noop);
    /// # let _ = console;
    /// ```
    pub fn command(mut self, command: impl Command) -> Self {
        self.commands.push(Arc::new(command));
        self
    }

    /// What `queue:work` waits for before stopping gracefully (default:
    /// Ctrl-C or SIGTERM).
    ///
    /// ```
    /// let console = hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder()))
    ///     .shutdown(|| Box::pin(tokio::time::sleep(std::time::Duration::from_secs(1))));
    /// # let _ = console;
    /// ```
    pub fn shutdown<F, Fut>(mut self, signal: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.shutdown = Some(Arc::new(move || Box::pin(signal())));
        self
    }

    /// The name shown in usage lines.
    ///
    /// ```
    /// assert_eq!(hopper_cli::Console::new("c", || Ok(hopper::Hopper::builder())).name(), "c");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the command line `args` (without the program name), writing to
    /// standard output and errors to standard error; returns the exit code.
    pub async fn run<I, S>(&self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = Output::stdout();
        match self.execute(args, &mut out).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(ConsoleError::Usage(err)) => {
                let code = if err.use_stderr() { 2 } else { 0 };
                let _ = err.print();
                ExitCode::from(code)
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(err.exit_code())
            }
        }
    }

    /// Runs the command line `args` (without the program name), writing to
    /// `out`. `--help` is written to `out` and succeeds.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let console = hopper_cli::Console::new("app console", || Ok(hopper::Hopper::builder()));
    /// let mut out = hopper_cli::output::Output::buffer();
    /// let err = console.execute(["make:jbo"], &mut out).await.unwrap_err();
    /// assert!(err.to_string().contains("make:job"), "{err}");
    /// assert_eq!(err.exit_code(), 2);
    /// # });
    /// ```
    pub async fn execute<I, S>(&self, args: I, out: &mut Output) -> Result<(), ConsoleError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args: Vec<String> = args.into_iter().map(Into::into).collect();
        if args.is_empty() {
            args.push("list".to_owned());
        }
        let matches = match self.clap().try_get_matches_from(&args) {
            Ok(matches) => matches,
            Err(err) if !err.use_stderr() => {
                out.line(err.render().to_string().trim_end())?;
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        let Some((name, sub)) = matches.subcommand() else {
            return Err(ConsoleError::Failed("no command given".into()));
        };
        let command = self
            .commands
            .iter()
            .find(|c| c.definition().get_name() == name)
            .cloned()
            .ok_or_else(|| ConsoleError::Failed(format!("no command {name}")))?;
        let mut ctx = Context {
            console: self,
            out,
            hopper: None,
        };
        command.run(&mut ctx, sub).await
    }

    fn clap(&self) -> clap::Command {
        let mut root = clap::Command::new("console")
            .bin_name(self.name.clone())
            .no_binary_name(true)
            .disable_help_subcommand(true)
            .disable_version_flag(true)
            .about("Generators, database and queue commands. `list` shows them all.")
            .subcommand_value_name("COMMAND");
        for command in &self.commands {
            root = root.subcommand(command.definition());
        }
        root
    }

    pub(crate) fn definitions(&self) -> Vec<clap::Command> {
        self.commands.iter().map(|c| c.definition()).collect()
    }

    /// Where generators write: `flag` (`--source`), else the folder the
    /// application set, else the `src` folder of the package around the
    /// working directory.
    pub(crate) fn source(&self, flag: Option<PathBuf>) -> Result<PathBuf, ConsoleError> {
        match flag.or_else(|| self.source_dir.clone()) {
            Some(dir) => Ok(dir),
            None => crate::package::current_source_dir().map_err(ConsoleError::SourceDir),
        }
    }

    pub(crate) fn seeder_list(&self) -> &[Arc<dyn Seeder>] {
        &self.seeders
    }

    pub(crate) fn schedule_list(&self) -> &Schedules {
        &self.schedules
    }

    pub(crate) fn base_worker_config(&self) -> &WorkerConfig {
        &self.worker_config
    }

    /// The services `queue:work` runs: workers as `workers` says, with the
    /// console's schedules and alert rules.
    pub(crate) fn services(&self, workers: WorkerConfig) -> Result<Services, ConsoleError> {
        let mut services = Services::new(workers).schedules(self.schedules.clone());
        if let Some(load) = &self.alerts {
            if let Some(alerts) = load().map_err(ConsoleError::Alerts)? {
                services = services.alerts(alerts);
            }
        }
        Ok(services)
    }

    pub(crate) fn database(&self) -> &str {
        &self.database_url
    }

    pub(crate) async fn wait_for_shutdown(&self) {
        match &self.shutdown {
            Some(signal) => signal().await,
            None => default_shutdown().await,
        }
    }
}

async fn default_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What a running command works with: the output, the console's settings
/// and (opened on first use) the job queue.
pub struct Context<'a> {
    console: &'a Console,
    out: &'a mut Output,
    hopper: Option<Hopper>,
}

impl Context<'_> {
    /// Where to write.
    pub fn out(&mut self) -> &mut Output {
        self.out
    }

    /// The console running the command.
    pub fn console(&self) -> &Console {
        self.console
    }

    /// The job queue, opened (and its database migrated) on first use.
    pub async fn hopper(&mut self) -> Result<Hopper, ConsoleError> {
        if let Some(hopper) = &self.hopper {
            return Ok(hopper.clone());
        }
        let url = self.console.database_url.clone();
        let builder = (self.console.builder)().map_err(|source| ConsoleError::Connect {
            url: url.clone(),
            source,
        })?;
        let hopper = builder
            .connect(&url)
            .await
            .map_err(|source| ConsoleError::Connect {
                url: url.clone(),
                source: source.into(),
            })?;
        self.hopper = Some(hopper.clone());
        Ok(hopper)
    }
}

/// The candidate closest to `wanted` by edit distance, if it is close
/// enough to be a likely typo.
///
/// ```
/// let names = ["example_jobs", "users"];
/// assert_eq!(hopper_cli::console::nearest("exmple_jobs", names), Some("example_jobs"));
/// assert_eq!(hopper_cli::console::nearest("zzz", names), None);
/// ```
pub fn nearest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(wanted, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(wanted.len()) / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}
