//! Settings, read from the environment (and an optional `.env` file that
//! `main` loads first).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://storage/hopper.db` | the job database |
//! | `APP_HOST` | `127.0.0.1` | address the HTTP server listens on |
//! | `APP_PORT` | `8080` | port the HTTP server listens on |
//! | `HOPPER_WORKERS` | `10` | jobs run at the same time (the most, when scaling) |
//! | `HOPPER_MIN_WORKERS` | `HOPPER_WORKERS` | the fewest jobs run at once when idle; lower than `HOPPER_WORKERS`, the pool scales between them |
//! | `NOTIFY_EMAIL` | `admin@example.com` | where a notice goes when a job fails for good |
//! | `HOPPER_SHUTDOWN_TIMEOUT` | `30` | seconds running jobs get to finish at shutdown |
//! | `MAIL_LOG` | `storage/mail.log` | file the [`Mailer`](crate::mailer::Mailer) appends sent emails to |
//! | `ADMIN_TOKEN` | generated at start | the token that opens `/admin/queue`, `/api` and `/metrics` |
//! | `LOG_LEVEL` | `RUST_LOG`, else `info` | which log events are kept, e.g. `warn` or `info,hopper=debug` |
//! | `LOG_TERMINAL` | `true` | human-readable log lines on stderr |
//! | `LOG_FILE` | `true` | JSON log lines in a daily file under `LOG_DIR` (`serve` and `work`) |
//! | `LOG_DIR` | `storage/logs` | the folder of the daily log files |
//! | `LOG_MAX_FILES` | `14` | daily log files kept; older ones are deleted |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | none | an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`, spans are exported to (see [`LogConfig::otlp_endpoint`]); none when unset |
//! | `HOPPER_ALERT_RULES` | none | a JSON file of alert rules (see [`hopper::alerts`]); no alerts when unset |
//! | `HOPPER_ALERT_WEBHOOK` | none | an `http://` or `https://` URL every alert firing and resolving is POSTed to |
//! | `HOPPER_ALERT_INTERVAL` | `30` | seconds between checks of the alert rules |

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::logging::LogConfig;

/// Default for `APP_HOST`.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default for `APP_PORT`.
pub const DEFAULT_PORT: u16 = 8080;
/// Default for `HOPPER_WORKERS`.
pub const DEFAULT_WORKERS: usize = 10;
/// Default for `HOPPER_SHUTDOWN_TIMEOUT`, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// Default for `NOTIFY_EMAIL`.
pub const DEFAULT_NOTIFY_EMAIL: &str = "admin@example.com";
/// Default for `MAIL_LOG`.
pub const DEFAULT_MAIL_LOG: &str = "storage/mail.log";
/// Default for `HOPPER_ALERT_INTERVAL`, in seconds.
pub const DEFAULT_ALERT_INTERVAL_SECS: u64 = 30;

/// A setting that is present but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// The value it had.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

/// Everything the application needs to start.
///
/// ```
/// let config = app::config::Config::from_lookup(|_| None).unwrap();
/// assert_eq!(config.port, 8080);
/// assert_eq!(config.database_url, "sqlite://storage/hopper.db");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where jobs are stored (`DATABASE_URL`).
    pub database_url: String,
    /// The HTTP server's address (`APP_HOST`).
    pub host: String,
    /// The HTTP server's port (`APP_PORT`; 0 picks a free one).
    pub port: u16,
    /// How many jobs run at the same time at most (`HOPPER_WORKERS`).
    pub workers: usize,
    /// How few jobs run at once when the queue is idle (`HOPPER_MIN_WORKERS`,
    /// default `workers`: a fixed pool).
    pub min_workers: usize,
    /// Where a notice goes when a job fails for good (`NOTIFY_EMAIL`).
    pub notify_email: String,
    /// How long running jobs get to finish at shutdown (`HOPPER_SHUTDOWN_TIMEOUT`, seconds).
    pub shutdown_timeout: Duration,
    /// The file sent emails are appended to (`MAIL_LOG`).
    pub mail_log: PathBuf,
    /// The token that opens the dashboard, the jobs API and the metrics
    /// (`ADMIN_TOKEN`); when unset, `serve` makes one up and prints it.
    pub admin_token: Option<String>,
    /// Where logs go (`LOG_*`).
    pub log: LogConfig,
    /// The JSON file of alert rules (`HOPPER_ALERT_RULES`).
    pub alert_rules: Option<PathBuf>,
    /// Where alert changes are POSTed (`HOPPER_ALERT_WEBHOOK`).
    pub alert_webhook: Option<String>,
    /// How often the alert rules are checked (`HOPPER_ALERT_INTERVAL`, seconds).
    pub alert_interval: Duration,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (variable name → value). Unset
    /// and blank variables take their defaults; values that do not parse
    /// are errors, never silently replaced.
    ///
    /// ```
    /// use app::config::Config;
    /// let config = Config::from_lookup(|name| match name {
    ///     "APP_PORT" => Some("9000".into()),
    ///     "HOPPER_WORKERS" => Some("2".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!((config.port, config.workers), (9000, 2));
    ///
    /// let err = Config::from_lookup(|name| (name == "APP_PORT").then(|| "http".into())).unwrap_err();
    /// assert!(err.to_string().contains("APP_PORT"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let workers: usize = parse(&get, "HOPPER_WORKERS", DEFAULT_WORKERS)?;
        if workers == 0 {
            return Err(ConfigError {
                name: "HOPPER_WORKERS",
                value: "0".into(),
                reason: "at least one worker is needed".into(),
            });
        }
        let min_workers: usize = parse(&get, "HOPPER_MIN_WORKERS", workers)?;
        if min_workers > workers {
            return Err(ConfigError {
                name: "HOPPER_MIN_WORKERS",
                value: min_workers.to_string(),
                reason: format!("above HOPPER_WORKERS ({workers})"),
            });
        }
        Ok(Self {
            database_url: get("DATABASE_URL")
                .unwrap_or_else(|| hopper::DEFAULT_DATABASE_URL.to_owned()),
            host: get("APP_HOST").unwrap_or_else(|| DEFAULT_HOST.to_owned()),
            port: parse(&get, "APP_PORT", DEFAULT_PORT)?,
            workers,
            min_workers,
            notify_email: get("NOTIFY_EMAIL").unwrap_or_else(|| DEFAULT_NOTIFY_EMAIL.to_owned()),
            shutdown_timeout: Duration::from_secs(parse(
                &get,
                "HOPPER_SHUTDOWN_TIMEOUT",
                DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            )?),
            mail_log: get("MAIL_LOG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MAIL_LOG)),
            admin_token: get("ADMIN_TOKEN"),
            log: LogConfig {
                level: get("LOG_LEVEL")
                    .or_else(|| get("RUST_LOG"))
                    .unwrap_or_else(|| crate::logging::DEFAULT_LEVEL.to_owned()),
                terminal: flag(&get, "LOG_TERMINAL", true)?,
                file: flag(&get, "LOG_FILE", true)?,
                dir: get("LOG_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(crate::logging::DEFAULT_DIR)),
                max_files: parse(&get, "LOG_MAX_FILES", crate::logging::DEFAULT_MAX_FILES)?,
                otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .filter(|url| !url.trim().is_empty()),
            },
            alert_rules: get("HOPPER_ALERT_RULES").map(PathBuf::from),
            alert_webhook: get("HOPPER_ALERT_WEBHOOK"),
            alert_interval: Duration::from_secs(parse(
                &get,
                "HOPPER_ALERT_INTERVAL",
                DEFAULT_ALERT_INTERVAL_SECS,
            )?),
        })
    }

    /// The `host:port` the HTTP server binds.
    ///
    /// ```
    /// let config = app::config::Config::from_lookup(|_| None).unwrap();
    /// assert_eq!(config.address(), "127.0.0.1:8080");
    /// ```
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            // A bare IPv6 address needs brackets before the port.
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn parse<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|err: T::Err| ConfigError {
            name,
            reason: err.to_string(),
            value,
        }),
    }
}

/// A switch: `true`/`false`, `1`/`0`, `on`/`off` or `yes`/`no`.
fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|value| value.to_ascii_lowercase()) {
        None => Ok(default),
        Some(value) => match value.as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(ConfigError {
                name,
                value,
                reason: "expected true or false".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config(&[]).unwrap();
        assert_eq!(config.database_url, "sqlite://storage/hopper.db");
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.port, 8080);
        assert_eq!((config.workers, config.min_workers), (10, 10));
        assert_eq!(config.notify_email, "admin@example.com");
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(config.mail_log, PathBuf::from("storage/mail.log"));
        assert_eq!(config.admin_token, None);
        assert_eq!(config.log, LogConfig::default());
        assert_eq!((config.alert_rules, config.alert_webhook), (None, None));
        assert_eq!(config.alert_interval, Duration::from_secs(30));
    }

    #[test]
    fn log_settings_are_read_and_checked() {
        let read = config(&[
            ("RUST_LOG", "debug"),
            ("LOG_TERMINAL", "off"),
            ("LOG_FILE", "0"),
            ("LOG_DIR", "/var/log/app"),
            ("LOG_MAX_FILES", "3"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ])
        .unwrap();
        assert_eq!(
            read.log,
            LogConfig {
                level: "debug".into(),
                terminal: false,
                file: false,
                dir: PathBuf::from("/var/log/app"),
                max_files: 3,
                otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            }
        );
        let both = config(&[("RUST_LOG", "debug"), ("LOG_LEVEL", "warn")]).unwrap();
        assert_eq!(both.log.level, "warn");
        assert_eq!(
            config(&[("LOG_FILE", "maybe")]).unwrap_err().name,
            "LOG_FILE"
        );
    }

    #[test]
    fn blank_values_take_defaults() {
        let config = config(&[("DATABASE_URL", "  "), ("APP_PORT", "")]).unwrap();
        assert_eq!(config.database_url, "sqlite://storage/hopper.db");
        assert_eq!(config.port, 8080);
    }

    #[test]
    fn every_setting_is_read() {
        let config = config(&[
            ("DATABASE_URL", "sqlite:///tmp/x.db"),
            ("APP_HOST", "0.0.0.0"),
            ("APP_PORT", "3000"),
            ("HOPPER_WORKERS", "4"),
            ("HOPPER_SHUTDOWN_TIMEOUT", "5"),
            ("MAIL_LOG", "/tmp/mail.log"),
            ("ADMIN_TOKEN", "open-sesame"),
            ("HOPPER_ALERT_RULES", "config/alerts.json"),
            ("HOPPER_ALERT_WEBHOOK", "http://127.0.0.1:9000/alerts"),
            ("HOPPER_ALERT_INTERVAL", "10"),
        ])
        .unwrap();
        assert_eq!(config.database_url, "sqlite:///tmp/x.db");
        assert_eq!(config.address(), "0.0.0.0:3000");
        assert_eq!(config.workers, 4);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.mail_log, PathBuf::from("/tmp/mail.log"));
        assert_eq!(config.admin_token.as_deref(), Some("open-sesame"));
        assert_eq!(
            config.alert_rules,
            Some(PathBuf::from("config/alerts.json"))
        );
        assert_eq!(
            config.alert_webhook.as_deref(),
            Some("http://127.0.0.1:9000/alerts")
        );
        assert_eq!(config.alert_interval, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_are_errors_that_name_the_variable() {
        let err = config(&[("HOPPER_WORKERS", "many")]).unwrap_err();
        assert_eq!(err.name, "HOPPER_WORKERS");
        assert!(err.to_string().contains("\"many\""), "{err}");
        assert!(config(&[("HOPPER_WORKERS", "0")]).is_err());
        assert!(config(&[("HOPPER_WORKERS", "2"), ("HOPPER_MIN_WORKERS", "3")]).is_err());
        assert!(config(&[("APP_PORT", "70000")]).is_err());
        assert!(config(&[("HOPPER_SHUTDOWN_TIMEOUT", "-1")]).is_err());
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        let config = config(&[("APP_HOST", "::1")]).unwrap();
        assert_eq!(config.address(), "[::1]:8080");
    }
}
