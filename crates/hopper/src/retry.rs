//! Retry delays: exponential backoff with jitter and a cap.

use std::time::Duration;

/// An exponential backoff: `base × factor^(attempt-1)`, plus up to `jitter`
/// of itself at random, never more than `max`.
///
/// The default is the one every job gets: 30 s, doubling, capped at 10 min,
/// with up to 10 % jitter, so attempt 1 waits ~30 s, attempt 2 ~60 s,
/// attempt 3 ~120 s, and from attempt 6 on 10 min.
///
/// ```
/// use std::time::Duration;
/// use hopper::retry::Backoff;
/// let backoff = Backoff::default();
/// let first = backoff.delay(1);
/// assert!(first >= Duration::from_secs(30) && first <= Duration::from_secs(33));
/// assert_eq!(backoff.delay(50), Duration::from_secs(600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay after the first failed attempt, before jitter.
    pub base: Duration,
    /// How much each further attempt multiplies the delay by.
    pub factor: f64,
    /// The longest delay ever returned.
    pub max: Duration,
    /// The largest random share of the delay added to it (0.1 = up to 10 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            factor: 2.0,
            max: Duration::from_secs(600),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// A backoff with no jitter: the same delay every time for an attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hopper::retry::Backoff;
    /// let b = Backoff::exact(Duration::from_secs(1), 3.0, Duration::from_secs(60));
    /// assert_eq!(b.delay(3), Duration::from_secs(9));
    /// ```
    pub fn exact(base: Duration, factor: f64, max: Duration) -> Self {
        Self {
            base,
            factor,
            max,
            jitter: 0.0,
        }
    }

    /// The delay before retrying after failed attempt number `attempt` (1-based).
    ///
    /// Never shorter than the previous attempt's delay before jitter, never
    /// longer than `max`.
    ///
    /// ```
    /// use hopper::retry::Backoff;
    /// let b = Backoff::default();
    /// assert!(b.delay(2) > b.delay(1));
    /// let unbounded = Backoff::exact(std::time::Duration::from_secs(1), 10.0, std::time::Duration::MAX);
    /// assert_eq!(unbounded.delay(1_000), std::time::Duration::MAX);
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1024) as i32;
        let grown = self.base.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        // A zero base times an infinite growth is NaN: zero stays zero.
        let plain = if grown.is_nan() { 0.0 } else { grown };
        let share = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let total = plain + plain * share * fastrand::f64();
        // Past what a Duration holds (a cap of Duration::MAX, say), the cap is the delay.
        Duration::try_from_secs_f64(total).map_or(self.max, |delay| delay.min(self.max))
    }
}
