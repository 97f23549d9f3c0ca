//! Stopping on the operating system's stop signals: SIGINT (Ctrl-C) and
//! SIGTERM (what `kill`, systemd and container runtimes send), so a
//! process's workers stop gracefully instead of being cut off.

use crate::services::RunningServices;
use crate::worker::{WorkerError, WorkerPool};

/// The signals that stop a process: SIGINT (Ctrl-C) and SIGTERM; Ctrl-C
/// only where there is no SIGTERM.
///
/// Install it first thing, so that a signal arriving while the process
/// starts is not lost.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let signals = hopper::signals::Signals::install().unwrap();
/// # let _ = signals;
/// # });
/// ```
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening for the stop signals (inside a Tokio runtime).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert!(hopper::signals::Signals::install().is_ok());
    /// # });
    /// ```
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for the next stop signal and returns its name.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut signals = hopper::signals::Signals::install().unwrap();
    /// println!("{} received", signals.recv().await);
    /// # });
    /// ```
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// A future that completes at the first stop signal, to start a
    /// graceful stop with. A second signal while that stop runs ends the
    /// process at once (exit code 130): the leases of its running jobs then
    /// run out and the jobs run again elsewhere.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let shutdown = hopper::signals::Signals::install().unwrap().shutdown();
    /// shutdown.await; // returns at Ctrl-C or SIGTERM
    /// # });
    /// ```
    pub async fn shutdown(mut self) {
        let signal = self.recv().await;
        tracing::info!(
            signal,
            "stop signal received: stopping gracefully (send it again to exit at once)"
        );
        tokio::spawn(async move {
            let signal = self.recv().await;
            tracing::warn!(signal, "second stop signal: exiting without waiting");
            std::process::exit(130);
        });
    }
}

impl WorkerPool {
    /// Runs the pool until SIGINT (Ctrl-C) or SIGTERM, then stops it
    /// gracefully (see [`WorkerPool::stop`]); a second signal exits at once.
    /// Returns how many unfinished jobs were handed back.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite://storage/jobs.db").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(4)).unwrap();
    /// pool.run_until_signal().await.unwrap();
    /// # });
    /// ```
    pub async fn run_until_signal(self) -> Result<u64, WorkerError> {
        after_a_stop_signal(self.stop()).await
    }
}

impl RunningServices {
    /// Runs the workers, schedules and alerts until SIGINT (Ctrl-C) or
    /// SIGTERM, then stops them gracefully (see [`RunningServices::stop`]);
    /// a second signal exits at once. Returns how many unfinished jobs were
    /// handed back.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite://storage/jobs.db").await.unwrap();
    /// let running = hopper::services::Services::new(hopper::WorkerConfig::new(4)).start(&hopper).unwrap();
    /// running.run_until_signal().await.unwrap();
    /// # });
    /// ```
    pub async fn run_until_signal(self) -> Result<u64, WorkerError> {
        after_a_stop_signal(self.stop()).await
    }
}

/// Waits for a stop signal, then runs `stop` (a future does nothing until
/// it is awaited).
async fn after_a_stop_signal(
    stop: impl std::future::Future<Output = Result<u64, WorkerError>>,
) -> Result<u64, WorkerError> {
    Signals::install()
        .map_err(WorkerError::Signals)?
        .shutdown()
        .await;
    stop.await
}
