//! The one source of "now" for everything Hopper writes to the database.
//!
//! Every timestamp Hopper binds (dispatch time, `available_at`, lease expiry,
//! retry times, pruning cut-offs) comes from a [`Clock`], so tests can move
//! time with a [`ManualClock`] instead of waiting.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};

/// A source of the current time.
///
/// ```
/// use hopper::clock::{Clock, SystemClock};
/// let now = SystemClock.now();
/// assert!(now.timestamp() > 0);
/// ```
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Whether this clock moves with the wall clock, so that a worker may
    /// sleep in real time until a job falls due. A clock that moves only
    /// when told to answers `false`, and workers then poll instead.
    ///
    /// ```
    /// use hopper::clock::{Clock, ManualClock, SystemClock};
    /// assert!(SystemClock.moves_by_itself());
    /// assert!(!ManualClock::new().moves_by_itself());
    /// ```
    fn moves_by_itself(&self) -> bool {
        true
    }

    /// The time statements take as the database's now for leases, their
    /// renewal and rescue: `None` (the default) leaves it to the database
    /// server's clock, since hosts' clocks differ; a clock tests move
    /// returns its own time, so that moving it moves leases too.
    ///
    /// ```
    /// use hopper::clock::{Clock, ManualClock, SystemClock};
    /// assert!(SystemClock.database_now().is_none());
    /// let manual = ManualClock::new();
    /// assert_eq!(manual.database_now(), Some(manual.now()));
    /// ```
    fn database_now(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// The real wall clock.
///
/// ```
/// use hopper::clock::{Clock, SystemClock};
/// assert!(SystemClock.now() <= chrono::Utc::now());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_micros(Utc::now())
    }
}

/// The wall clock of a host whose clock runs a fixed time ahead, as a
/// misconfigured machine's does: it moves by itself and stands in for no
/// database, so leases are still measured on the server's clock, while
/// everything Hopper takes from the host (due times it claims by, retry and
/// finish times it writes) is shifted.
///
/// ```
/// use hopper::clock::{Clock, OffsetClock};
/// let clock = OffsetClock::ahead(std::time::Duration::from_secs(60));
/// let ahead = (clock.now() - chrono::Utc::now()).num_milliseconds();
/// assert!((59_000..=60_000).contains(&ahead), "{ahead} ms ahead");
/// assert!(clock.moves_by_itself() && clock.database_now().is_none());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OffsetClock {
    ahead: Duration,
}

impl OffsetClock {
    /// A clock `by` ahead of the real one.
    ///
    /// ```
    /// let clock = hopper::clock::OffsetClock::ahead(std::time::Duration::from_millis(1));
    /// # let _ = clock;
    /// ```
    pub fn ahead(by: Duration) -> Self {
        Self { ahead: by }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        add(SystemClock.now(), self.ahead)
    }
}

/// A clock that only moves when told to: for tests of delays and retries.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use hopper::clock::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!((clock.now() - before).num_seconds(), 90);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A manual clock starting at the current wall-clock time.
    ///
    /// ```
    /// let clock = hopper::clock::ManualClock::new();
    /// # let _ = clock;
    /// ```
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A manual clock starting at `start`.
    ///
    /// ```
    /// use hopper::clock::{Clock, ManualClock};
    /// let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    /// assert_eq!(ManualClock::starting_at(start).now(), start);
    /// ```
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(to_micros(start))),
        }
    }

    /// Moves the clock forward by `by`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hopper::clock::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// let t0 = clock.now();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!((clock.now() - t0).num_milliseconds(), 1500);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.lock();
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        *now = to_micros(*now);
    }

    /// Sets the clock to `to` (which may be in the past).
    ///
    /// ```
    /// use hopper::clock::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// let t = chrono::DateTime::from_timestamp(0, 0).unwrap();
    /// clock.set(t);
    /// assert_eq!(clock.now(), t);
    /// ```
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to_micros(to);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // The guarded value is a plain timestamp; a poisoned lock still holds a valid one.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }

    fn moves_by_itself(&self) -> bool {
        false
    }

    fn database_now(&self) -> Option<DateTime<Utc>> {
        Some(self.now())
    }
}

/// `at` rounded down to whole microseconds, the precision every store keeps.
fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or(at)
}

/// `at + by`, saturating at the end of representable time.
pub(crate) fn add(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - by`, saturating at the start of representable time.
pub(crate) fn sub(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_sub_signed(by))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
