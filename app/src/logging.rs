//! Where the application's `tracing` output goes: human-readable lines on
//! the terminal (stderr), and JSON lines in a daily file under
//! `storage/logs/`, each switched on or off and filtered by the settings in
//! [`LogConfig`].
//!
//! Every job event Hopper logs (dispatched, started, finished, retried,
//! failed, rescued, cancelled) and every event a job's handler logs is
//! inside the job's span, so each JSON line about a job carries
//! `"span":{"id":…,"type":…,"queue":…,"attempt":…}`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context as _;
use tracing::Subscriber;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

/// Default for `LOG_LEVEL`.
pub const DEFAULT_LEVEL: &str = "info";
/// Default for `LOG_DIR`.
pub const DEFAULT_DIR: &str = "storage/logs";
/// Default for `LOG_MAX_FILES`: two weeks of daily files.
pub const DEFAULT_MAX_FILES: usize = 14;
/// The daily files are named `app.YYYY-MM-DD.log`.
pub const FILE_PREFIX: &str = "app";

/// The logging settings (see [`crate::config`] for the variables).
///
/// ```
/// let config = app::config::Config::from_lookup(|_| None).unwrap();
/// assert_eq!(config.log.level, "info");
/// assert!(config.log.terminal && config.log.file);
/// assert_eq!(config.log.dir, std::path::PathBuf::from("storage/logs"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Which events are kept, as a `tracing` filter: `info`, `warn`,
    /// `info,hopper=debug` (`LOG_LEVEL`, or `RUST_LOG` when that is unset).
    pub level: String,
    /// Human-readable lines on stderr (`LOG_TERMINAL`).
    pub terminal: bool,
    /// JSON lines in a daily file under [`LogConfig::dir`] (`LOG_FILE`).
    pub file: bool,
    /// The folder of the daily files (`LOG_DIR`), created when missing.
    pub dir: PathBuf,
    /// How many daily files are kept; older ones are deleted when the file
    /// rolls over (`LOG_MAX_FILES`).
    pub max_files: usize,
    /// The OTLP collector spans are exported to, over HTTP with protobuf
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`); none when unset. Builds without the
    /// `otel` feature export nothing.
    pub otlp_endpoint: Option<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: DEFAULT_LEVEL.to_owned(),
            terminal: true,
            file: true,
            dir: PathBuf::from(DEFAULT_DIR),
            max_files: DEFAULT_MAX_FILES,
            otlp_endpoint: None,
        }
    }
}

/// Keeps the log file's writer running; dropping it writes out what is
/// still buffered. Hold it until the process ends.
#[derive(Debug)]
#[must_use = "dropping the guard stops writing the log file"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
    #[cfg(feature = "otel")]
    _traces: Option<crate::otel::TraceGuard>,
}

/// The subscriber `config` describes, and the guard of its file writer.
/// `with_file: false` leaves the file out whatever the settings say (the
/// console's commands log to the terminal only).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let config = app::logging::LogConfig { dir: dir.path().to_owned(), terminal: false, ..Default::default() };
/// let (subscriber, guard) = app::logging::subscriber(&config, true).unwrap();
/// tracing::subscriber::with_default(subscriber, || tracing::info!(answer = 42, "hello"));
/// drop(guard);
/// let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
/// let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(file).unwrap().lines().next().unwrap()).unwrap();
/// assert_eq!((line["message"].as_str(), line["answer"].as_i64()), (Some("hello"), Some(42)));
/// ```
pub fn subscriber(
    config: &LogConfig,
    with_file: bool,
) -> anyhow::Result<(impl Subscriber + Send + Sync, LogGuard)> {
    let filter = EnvFilter::try_new(&config.level)
        .with_context(|| format!("invalid log level {:?}", config.level))?;
    let terminal = config.terminal.then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    let (file, guard) = if with_file && config.file {
        std::fs::create_dir_all(&config.dir)
            .with_context(|| format!("cannot create the log folder {}", config.dir.display()))?;
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(FILE_PREFIX)
            .filename_suffix("log")
            .max_log_files(config.max_files.max(1))
            .build(&config.dir)
            .with_context(|| format!("cannot open a log file in {}", config.dir.display()))?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer);
        (Some(layer), Some(guard))
    } else {
        (None, None)
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(terminal)
        .with(file);
    #[cfg(feature = "otel")]
    let (subscriber, traces) = {
        let (layer, traces) = crate::otel::layer(config.otlp_endpoint.as_deref())?.unzip();
        (subscriber.with(layer), traces)
    };
    Ok((
        subscriber,
        LogGuard {
            _writer: guard,
            #[cfg(feature = "otel")]
            _traces: traces,
        },
    ))
}

/// Installs [`subscriber`] for the whole process. A subscriber already
/// installed (by a test harness, say) is kept.
pub fn init(config: &LogConfig, with_file: bool) -> anyhow::Result<LogGuard> {
    let (subscriber, guard) = subscriber(config, with_file)?;
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(guard)
}
