//! Live updates for the dashboard: `GET /admin/queue/live` is a stream of
//! server-sent events, one `change` event whenever what the pages show may
//! have changed. A page subscribes with `EventSource`, fetches a fresh copy
//! of itself on each event and swaps its content in without a reload.
//!
//! One watcher per [`Web`] serves every open stream: while at
//! least one stream is open it reads a small change marker once a second
//! (the job counts per queue and state, the newest job's id, the alerts
//! firing and the latest resolved) and tells every stream when the marker
//! moved. It also announces a change every [`REFRESH_EVERY`] even when the
//! marker stayed, so what the marker does not see (a running job's
//! progress, a queue paused elsewhere, the ages shown) still comes up to
//! date. With no stream open it stops reading.
//!
//! A stream stays open for as long as the page does, so a server shutting
//! down gracefully would wait for it: call
//! [`Web::close_live_streams`](crate::Web::close_live_streams) as the
//! shutdown starts, and the streams end (the pages reconnect to whichever
//! instance answers next).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use hopper::store::{AlertRecord, StateCount, StoreError};
use hopper::{Hopper, JobFilter, JobId};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::Web;
use crate::auth::Caller;

/// How often the watcher reads the change marker while a stream is open.
///
/// ```
/// assert_eq!(hopper_web::live::POLL_EVERY, std::time::Duration::from_secs(1));
/// ```
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// The longest the streams go without a `change` event while open.
///
/// ```
/// assert!(hopper_web::live::REFRESH_EVERY > hopper_web::live::POLL_EVERY);
/// ```
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// The name of the event a stream sends when the pages may have changed.
///
/// ```
/// assert_eq!(hopper_web::live::CHANGE_EVENT, "change");
/// ```
pub const CHANGE_EVENT: &str = "change";

/// What can go wrong reading the change marker (the watcher logs it and
/// tries again at its next read).
///
/// ```
/// let error = hopper_web::live::LiveError::from(hopper::StoreError::Closed);
/// assert!(error.to_string().starts_with("reading the dashboard's change marker failed"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The database failed.
    #[error("reading the dashboard's change marker failed: {0}")]
    Store(#[from] StoreError),
}

/// What the watcher compares from one read to the next.
#[derive(Debug, PartialEq)]
struct Marker {
    counts: Vec<StateCount>,
    newest_job: Option<JobId>,
    alerts: Vec<AlertRecord>,
}

impl Marker {
    /// Three reads: the counts per queue and state (the read the overview
    /// makes), the newest job's id (one row by the primary key), and the
    /// alerts firing with the latest resolved one (a handful of rows).
    async fn read(hopper: &Hopper) -> Result<Self, LiveError> {
        let store = hopper.store();
        let counts = store.counts().await?;
        let newest = JobFilter {
            limit: Some(1),
            ..JobFilter::default()
        };
        let newest_job = store.list(&newest).await?.jobs.first().map(|job| job.id);
        let alerts = store.alerts(1).await?;
        Ok(Self {
            counts,
            newest_job,
            alerts,
        })
    }
}

/// The watcher one [`Web`](crate::Web) shares between its streams.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// The number of changes seen so far; each stream follows it.
    changes: watch::Sender<u64>,
    /// Set once the streams are to end ([`Watcher::close`]).
    closed: watch::Sender<bool>,
    /// Whether a task is reading the marker; set and cleared under the
    /// lock, so a stream that subscribes as the last one closes either is
    /// seen by the task or starts a new one.
    running: Mutex<bool>,
}

impl Default for Watcher {
    fn default() -> Self {
        Self {
            changes: watch::Sender::new(0),
            closed: watch::Sender::new(false),
            running: Mutex::new(false),
        }
    }
}

impl Watcher {
    /// A receiver of the change count, starting the reading task if none runs.
    fn subscribe(self: &Arc<Self>, hopper: &Hopper) -> watch::Receiver<u64> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let receiver = self.changes.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(Arc::clone(self).watch(hopper.clone()));
        }
        receiver
    }

    /// Ends every open stream and each one opened from now on.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`Watcher::close`] was called.
    fn closing(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut closed = self.closed.subscribe();
        async move {
            // An error means the watcher is gone, and its streams with it.
            let _ = closed.wait_for(|closed| *closed).await;
        }
    }

    /// Reads the marker every [`POLL_EVERY`] until no stream is left.
    async fn watch(self: Arc<Self>, hopper: Hopper) {
        let mut last: Option<Marker> = None;
        let mut announced = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            {
                let mut running = self
                    .running
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                if self.changes.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
            let marker = match Marker::read(&hopper).await {
                Ok(marker) => Some(marker),
                Err(error) => {
                    tracing::warn!(%error, "dashboard live updates");
                    None
                }
            };
            let moved = marker.is_some() && last.is_some() && marker != last;
            if marker.is_some() {
                last = marker;
            }
            if moved || announced.elapsed() >= REFRESH_EVERY {
                self.changes.send_modify(|count| *count += 1);
                announced = tokio::time::Instant::now();
            }
        }
    }
}

/// `GET /admin/queue/live`: a `change` event (its data the number of
/// changes seen) each time the pages may have changed, and a comment every
/// 15 seconds that keeps idle connections open; it ends when
/// [`Web::close_live_streams`](crate::Web::close_live_streams) is called.
pub(crate) async fn stream(
    State(web): State<Web>,
    _caller: Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let live = &web.inner.live;
    let changes = live.subscribe(web.hopper());
    let events = WatchStream::from_changes(changes)
        .take_until(live.closing())
        .map(|count| Ok(Event::default().event(CHANGE_EVENT).data(count.to_string())));
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(watcher: &Watcher) -> bool {
        *watcher.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[tokio::test]
    async fn one_task_serves_every_stream_and_stops_with_the_last() {
        let hopper = Hopper::builder().connect("sqlite::memory:").await.unwrap();
        let watcher = Arc::new(Watcher::default());
        assert!(!running(&watcher), "nothing runs before a stream opens");
        let first = watcher.subscribe(&hopper);
        let second = watcher.subscribe(&hopper);
        assert!(running(&watcher));
        assert_eq!(watcher.changes.receiver_count(), 2);
        drop((first, second));
        let deadline = tokio::time::Instant::now() + POLL_EVERY * 5;
        while running(&watcher) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!running(&watcher), "the task stopped with the last stream");
        let _third = watcher.subscribe(&hopper);
        assert!(running(&watcher), "a new stream starts it again");
    }

    #[tokio::test]
    async fn closing_ends_the_streams() {
        let watcher = Watcher::default();
        let closing = watcher.closing();
        watcher.close();
        tokio::time::timeout(Duration::from_secs(1), closing)
            .await
            .expect("closing resolves once closed");
        tokio::time::timeout(Duration::from_secs(1), watcher.closing())
            .await
            .expect("and at once for a stream opened after");
    }
}
