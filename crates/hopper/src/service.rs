//! Periodic background services: a step run every interval until a token
//! fires, optionally only while holding a named lease, with one backoff
//! after failed steps.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::core::Hopper;
use crate::lease::Lease;
use crate::retry::Backoff;

/// The waits after consecutive database errors: 200 ms after the first,
/// doubling, at most 5 s.
pub(crate) const DATABASE_ERRORS: Backoff = Backoff {
    base: Duration::from_millis(200),
    factor: 2.0,
    max: Duration::from_secs(5),
    jitter: 0.0,
};

/// Sleeps for `duration` unless `stop` fires first; returns false if it fired.
pub(crate) async fn pause(stop: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

/// A step run every interval until its stop token fires.
///
/// A step answers `Ok(None)` to wait the interval, `Ok(Some(wait))` to wait
/// `wait` instead, or an error, which is logged as "`what` failed"; after
/// errors the service waits by its backoff (if it has one) or the interval.
/// Stopping never interrupts a step, only a wait.
#[derive(Debug)]
pub(crate) struct Periodic {
    /// What a step does, for the log.
    what: &'static str,
    /// The wait between steps.
    interval: Duration,
    /// Whether the first step waits one interval.
    wait_first: bool,
    /// The waits after consecutive failed steps; `None`: the interval.
    backoff: Option<Backoff>,
    /// The lease a step needs, and the handle it is taken through.
    lease: Option<(Lease, Hopper)>,
}

impl Periodic {
    /// A service running a step that does `what`, every `interval`,
    /// starting at once.
    pub(crate) fn new(what: &'static str, interval: Duration) -> Self {
        Self {
            what,
            interval,
            wait_first: false,
            backoff: None,
            lease: None,
        }
    }

    /// Waits one interval before the first step.
    pub(crate) fn wait_first(mut self) -> Self {
        self.wait_first = true;
        self
    }

    /// After a failed step, waits `backoff.delay(failures in a row)`.
    pub(crate) fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Runs a step only while `lease` is held: it is taken or renewed before
    /// every step, and given up when the service stops. A failure to take it
    /// is logged and counts as not holding it.
    pub(crate) fn leased(mut self, lease: Lease, hopper: Hopper) -> Self {
        self.lease = Some((lease, hopper));
        self
    }

    /// Whether this holder may run a step now.
    async fn may_run(&self) -> bool {
        let Some((lease, hopper)) = &self.lease else {
            return true;
        };
        match lease.take(hopper).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, "checking the {} lease failed", lease.name());
                false
            }
        }
    }

    /// Runs `step` until `stop` fires, then gives up the lease, if any.
    pub(crate) async fn run<F, Fut, E>(self, stop: CancellationToken, mut step: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Duration>, E>>,
        E: Display,
    {
        let mut failures = 0u32;
        let mut running = !self.wait_first || pause(&stop, self.interval).await;
        while running {
            let wait = if self.may_run().await {
                match step().await {
                    Ok(next) => {
                        failures = 0;
                        next.unwrap_or(self.interval)
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        let wait = self
                            .backoff
                            .map_or(self.interval, |backoff| backoff.delay(failures));
                        tracing::warn!(%error, retry_in = ?wait, "{} failed", self.what);
                        wait
                    }
                }
            } else {
                self.interval
            };
            running = pause(&stop, wait).await;
        }
        if let Some((lease, hopper)) = &self.lease {
            lease.give_up(hopper).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn database_errors_wait_200_ms_doubling_to_5_s() {
        let waits: Vec<u64> = (1..=8)
            .map(|failures| DATABASE_ERRORS.delay(failures).as_millis() as u64)
            .collect();
        assert_eq!(waits, [200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]);
    }

    #[tokio::test]
    async fn steps_run_until_stopped_and_failures_back_off() {
        let stop = CancellationToken::new();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let service = Periodic::new("counting", Duration::from_secs(3600)).backoff(Backoff::exact(
            Duration::from_millis(1),
            1.0,
            Duration::from_millis(1),
        ));
        let task = tokio::spawn(service.run(stop.clone(), move || {
            let calls = counted.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                // Two failures retry quickly; then an explicit short wait, then the interval.
                match n {
                    1 | 2 => Err("boom"),
                    3 => Ok(Some(Duration::from_millis(1))),
                    _ => Ok(None),
                }
            }
        }));
        tokio::time::timeout(Duration::from_secs(5), async {
            while calls.load(Ordering::SeqCst) < 4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "the interval was not waited"
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_leased_step_runs_only_on_the_holder_and_the_lease_is_given_up_at_stop() {
        let hopper = Hopper::builder().connect("sqlite::memory:").await.unwrap();
        let interval = Duration::from_millis(5);
        let hold_for = Duration::from_secs(60);
        assert!(
            Lease::new("test", "other", hold_for)
                .take(&hopper)
                .await
                .unwrap()
        );
        let stop = CancellationToken::new();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let service = Periodic::new("leased", interval)
            .leased(Lease::new("test", "me", hold_for), hopper.clone());
        let task = tokio::spawn(service.run(stop.clone(), move || {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(None)
            }
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "ran without the lease");
        Lease::new("test", "other", hold_for).give_up(&hopper).await;
        tokio::time::timeout(Duration::from_secs(5), async {
            while calls.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
        assert!(
            !Lease::new("test", "other", hold_for)
                .take(&hopper)
                .await
                .unwrap()
        );
        stop.cancel();
        task.await.unwrap();
        assert!(
            Lease::new("test", "other", hold_for)
                .take(&hopper)
                .await
                .unwrap()
        );
    }
}
