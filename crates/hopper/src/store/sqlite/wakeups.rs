//! Wake-ups across processes for an SQLite file.
//!
//! SQLite has no `NOTIFY`, but every commit writes to the file's
//! write-ahead log, and the operating system reports changes to a file
//! (inotify on Linux, kqueue or FSEvents elsewhere). A pool watching the
//! log learns of another process's dispatch at once, so its idle queues
//! sleep until their next job is due instead of polling.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::store::Wakeup;

/// While changes keep coming (a busy process writing), at most one wake-up
/// per this long: an idle pool answers each with one empty claim per queue.
const SETTLE: Duration = Duration::from_millis(50);

/// Wake-ups whenever the database at `path`, or its write-ahead log,
/// changes, for as long as the receiver is kept; `None` where the file
/// cannot be watched (then workers poll).
pub(super) fn watch(path: &Path) -> Option<mpsc::Receiver<Wakeup>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let [name, log] = watched_names(path)?;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let (changed, mut changes) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let relevant = match &event {
            Ok(event) => {
                matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_))
                    && event.paths.iter().any(|changed| {
                        changed
                            .file_name()
                            .is_some_and(|changed| changed == name || changed == log)
                    })
            }
            // The watcher lost events (its queue overflowed): one may have
            // been a change.
            Err(_) => true,
        };
        if relevant {
            // A full channel already holds a change not yet passed on.
            let _ = changed.try_send(());
        }
    })
    .ok()?;
    watcher.watch(folder, RecursiveMode::NonRecursive).ok()?;
    let (wakeups, receiver) = mpsc::channel(1);
    runtime.spawn(async move {
        // Watching lasts as long as this task: until the receiver is dropped.
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = wakeups.closed() => break,
                change = changes.recv() => if change.is_none() { break },
            }
            if wakeups.send(Wakeup::All).await.is_err() {
                break;
            }
            tokio::time::sleep(SETTLE).await;
        }
    });
    Some(receiver)
}

/// The file names a watch of `path` reacts to: the database's and its log's.
fn watched_names(path: &Path) -> Option<[OsString; 2]> {
    let name = path.file_name()?.to_owned();
    let mut log = name.clone();
    log.push("-wal");
    Some([name, log])
}
