//! Wake-ups across processes for an SQLite file.
//!
//! SQLite has no `NOTIFY`, but every commit writes to the file's
//! write-ahead log, and the operating system reports changes to a file
//! (inotify on Linux, kqueue or FSEvents elsewhere). A pool watching the
//! log learns of another process's dispatch at once, so its idle queues
//! sleep until their next job is due instead of polling, and of another
//! process's cancel of a job it runs within a quarter second, instead of at
//! its next lease renewal.
//!
//! A change says nothing of what changed, so it is sent as
//! [`Wakeup::All`]: idle queues claim, and a pool holding claims reads
//! whether any of their jobs was cancelled, at most every 200 ms (see
//! `worker::heartbeat::LOOK_GAP`). That read is cheaper than telling cancels
//! apart in the file (a counter the cancel bumps would still be one read per
//! look), and it never writes, so it cannot wake the watch again.
//!
//! The report comes for every write, which a busy file makes by the
//! thousand each second, so the watch lasts only while the file is quiet:
//! at the first change it stops, the pool is woken, and from then on the
//! files' sizes and times are compared every [`SETTLE`] until they stop
//! changing; then the watch starts again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::store::Wakeup;

/// While the file keeps changing, it is looked at, and the pool woken, once
/// per this long: an idle pool answers each wake-up with one empty claim
/// per queue.
const SETTLE: Duration = Duration::from_millis(50);

/// The database file and its write-ahead log.
#[derive(Clone, Debug)]
struct Files {
    /// The folder holding both, which is what is watched: the log comes and
    /// goes with the connections.
    folder: PathBuf,
    /// The database's file name.
    name: OsString,
    /// The log's file name.
    log: OsString,
}

impl Files {
    fn of(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_owned();
        let mut log = name.clone();
        log.push("-wal");
        let folder = match path.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder,
            _ => Path::new("."),
        };
        // Absolute, so watching again later finds the same folder whatever
        // the working directory has become.
        let folder = std::path::absolute(folder).ok()?;
        Some(Self { folder, name, log })
    }

    /// Whether `event` may be a commit to the database.
    fn changed_by(&self, event: &notify::Result<Event>) -> bool {
        match event {
            Ok(event) => {
                matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_))
                    && event.paths.iter().any(|changed| {
                        changed
                            .file_name()
                            .is_some_and(|changed| changed == self.name || changed == self.log)
                    })
            }
            // The watch lost events (its queue overflowed): one may have
            // been a commit.
            Err(_) => true,
        }
    }

    /// The size and modification time of both files, which every commit changes.
    fn stamp(&self) -> [Option<(u64, SystemTime)>; 2] {
        [&self.name, &self.log].map(|file| {
            let meta = std::fs::metadata(self.folder.join(file)).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        })
    }
}

/// Wake-ups whenever the database at `path`, or its write-ahead log,
/// changes, for as long as the receiver is kept; `None` where the file
/// cannot be watched (then workers poll).
pub(super) fn watch(path: &Path) -> Option<mpsc::Receiver<Wakeup>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let files = Files::of(path)?;
    let (changed, mut changes) = mpsc::channel::<()>(1);
    let watched = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if watched.changed_by(&event) {
            // A full channel already holds a change not yet passed on.
            let _ = changed.try_send(());
        }
    })
    .ok()?;
    watcher
        .watch(&files.folder, RecursiveMode::NonRecursive)
        .ok()?;
    let (wakeups, receiver) = mpsc::channel(1);
    runtime.spawn(async move {
        // Quiet: wait for the watch to report a change.
        while tokio::select! {
            () = wakeups.closed() => false,
            change = changes.recv() => change.is_some(),
        } {
            // Busy: compare stamps instead, until a look finds no change.
            loop {
                let before = files.stamp();
                if watcher.unwatch(&files.folder).is_err() {
                    return;
                }
                while changes.try_recv().is_ok() {}
                if wakeups.send(Wakeup::All).await.is_err() {
                    return;
                }
                tokio::time::sleep(SETTLE).await;
                if watcher
                    .watch(&files.folder, RecursiveMode::NonRecursive)
                    .is_err()
                {
                    return;
                }
                // Watching again before this look: a change after it is reported.
                if files.stamp() == before {
                    break;
                }
            }
        }
    });
    Some(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_reacts_to_the_database_and_its_log_only() {
        let here = std::env::current_dir().unwrap();
        let files = Files::of(Path::new("storage/hopper.db")).unwrap();
        assert_eq!(files.folder, here.join("storage"));
        let change = |file: &str| {
            let modify = EventKind::Modify(notify::event::ModifyKind::Any);
            Ok(Event::new(modify).add_path(here.join("storage").join(file)))
        };
        assert!(files.changed_by(&change("hopper.db")));
        assert!(files.changed_by(&change("hopper.db-wal")));
        assert!(!files.changed_by(&change("hopper.db-shm")));
        assert!(!files.changed_by(&change("mail.log")));
        let read = EventKind::Access(notify::event::AccessKind::Any);
        let read = Event::new(read).add_path(here.join("storage/hopper.db"));
        assert!(!files.changed_by(&Ok(read)));
        assert!(files.changed_by(&Err(notify::Error::generic("overflow"))));
        assert_eq!(Files::of(Path::new("jobs.db")).unwrap().folder, here);
    }
}
