//! The store's connections: opening the file, the one writing connection
//! and the read-only ones, waiting for another process's write lock, and
//! stepping off the async runtime for long work.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::SqliteStore;
use crate::store::StoreError;

/// How long a write waits for another process's write lock before it fails
/// with SQLite's "database is locked".
///
/// ```
/// assert_eq!(hopper::store::sqlite::BUSY_TIMEOUT.as_secs(), 10);
/// ```
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read-only connections kept open between reads.
const IDLE_READERS: usize = 4;

/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 64;

/// Runs `work`, which may take a while, where it does not hold up the async
/// runtime's other tasks: [`tokio::task::block_in_place`] on a
/// multi-threaded runtime, in place on any other (which has no thread to
/// spare).
pub(super) fn long<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// How far a commit reaches before it returns (`?synchronous=` in the URL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Synchronous {
    /// The write-ahead log is written, not flushed, at each commit (the
    /// default): a crash of the process loses nothing, but an operating
    /// system crash or power loss can undo the last commits.
    #[default]
    Normal,
    /// Every commit is flushed to disk before it returns: nothing
    /// acknowledged is lost, at the cost of a disk flush per commit.
    Full,
}

impl Synchronous {
    /// The `synchronous` pragma's value.
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Where a URL puts the database.
#[derive(Debug, PartialEq)]
enum Location {
    /// In this process's memory, gone when the store closes.
    Memory,
    /// In a file, opened with `flags`.
    File { path: PathBuf, flags: OpenFlags },
}

impl Location {
    /// Reads `sqlite::memory:`, `sqlite://<path>` or `sqlite:<path>`, with an
    /// optional `?mode=rwc` (the default: create if missing), `?mode=rw`
    /// (the file must exist), `?mode=ro` (read only) or `?mode=memory`, and
    /// `synchronous=normal` (the default) or `synchronous=full`.
    fn parse(url: &str) -> Result<(Self, Synchronous), String> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or("an SQLite URL starts with sqlite:")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let read_write = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut flags = read_write | OpenFlags::SQLITE_OPEN_CREATE;
        let mut memory = path == ":memory:";
        let mut synchronous = Synchronous::Normal;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair {
                "mode=rwc" => flags = read_write | OpenFlags::SQLITE_OPEN_CREATE,
                "mode=rw" => flags = read_write,
                "mode=ro" => {
                    flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                }
                "mode=memory" => memory = true,
                "synchronous=normal" => synchronous = Synchronous::Normal,
                "synchronous=full" => synchronous = Synchronous::Full,
                other => {
                    return Err(format!(
                        "unsupported parameter {other:?} (supported: mode=rwc, mode=rw, mode=ro, \
                         mode=memory, synchronous=normal, synchronous=full)"
                    ));
                }
            }
        }
        if memory {
            return Ok((Self::Memory, synchronous));
        }
        if path.is_empty() {
            return Err("no file named (sqlite://<path> or sqlite::memory:)".into());
        }
        let file = Self::File {
            path: PathBuf::from(path),
            flags,
        };
        Ok((file, synchronous))
    }
}

/// Sets up the writing connection: WAL, `synchronous` as the URL says
/// (NORMAL unless told), and no busy timeout, since the store waits for
/// another process's lock itself ([`retry_busy`]).
fn configure(conn: &Connection, synchronous: Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Runs `attempt` again, after a pause, while SQLite answers "database is
/// locked" (another process holds the write lock), until [`BUSY_TIMEOUT`].
async fn retry_busy<T>(
    mut attempt: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt() {
            Err(e) if e.is_busy() && Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

/// The read-only connections of a file's store.
#[derive(Debug)]
pub(super) struct Readers {
    /// The file they read.
    path: PathBuf,
    /// Connections between reads; `None` once the store is closed.
    idle: SyncMutex<Option<Vec<Connection>>>,
}

impl Readers {
    /// An idle connection, or a new one.
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .ok_or(StoreError::Closed)?
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags)?;
                // A reader waits in SQLite's busy handler: in WAL only a
                // crash's recovery makes it wait at all.
                conn.busy_timeout(BUSY_TIMEOUT)?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(conn)
            }
        }
    }

    /// Keeps `conn` for the next read, unless enough are kept or the store closed.
    fn give_back(&self, conn: Connection) {
        // A connection still inside a read transaction (a statement left
        // unfinished) would answer every later read from its old snapshot:
        // it is closed instead of kept.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(idle) = idle.as_mut() {
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// The store's writing connection, locked: every other write through the
/// store (and, in memory, every read) waits until it is dropped.
///
/// It derefs to [`rusqlite::Connection`]. The connection has no busy
/// timeout: while another process holds the file's write lock, a write on it
/// fails at once with "database is locked". [`SqliteStore::transaction`]
/// waits for the lock instead, and is how to write through it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
/// let conn = store.writer().await.unwrap();
/// conn.execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Writer<'a>(MappedMutexGuard<'a, Connection>);

impl Deref for Writer<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0
    }
}

/// A connection to read with: a read-only one for a file, the locked
/// writing connection in memory (where it is the only one).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
/// let conn = store.reader().await.unwrap();
/// let one: i64 = conn.query_row("SELECT 1", [], |row| row.get(0)).unwrap();
/// assert_eq!(one, 1);
/// # });
/// ```
#[derive(Debug)]
pub struct Reader<'a>(ReadFrom<'a>);

/// Where a [`Reader`]'s connection comes from.
#[derive(Debug)]
enum ReadFrom<'a> {
    /// A read-only connection, given back on drop.
    File(&'a Readers, Option<Connection>),
    /// The store's one connection, in memory.
    Writer(Writer<'a>),
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match &self.0 {
            // Present until the reader drops.
            ReadFrom::File(_, Some(conn)) => conn,
            ReadFrom::File(_, None) => unreachable!("a reader's connection is kept until drop"),
            ReadFrom::Writer(conn) => conn,
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let ReadFrom::File(readers, conn) = &mut self.0 {
            if let Some(conn) = conn.take() {
                readers.give_back(conn);
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating it and its folder if missing) the database at `url`:
    /// `sqlite://storage/hopper.db` (a relative path), `sqlite:///var/lib/jobs.db`
    /// (an absolute one) or `sqlite::memory:`. `?mode=rw` refuses to create a
    /// missing file; `?mode=ro` opens one read-only. `?synchronous=full`
    /// flushes every commit to disk before it returns; the default
    /// (`normal`) loses nothing when the process crashes, but an operating
    /// system crash or power loss can undo the last commits.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::sqlite::SqliteStore;
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}/nested/jobs.db", dir.path().display());
    /// SqliteStore::open(&url).await.unwrap();
    /// assert!(dir.path().join("nested/jobs.db").exists());
    /// assert!(SqliteStore::open("sqlite://x.db?cache=shared").await.is_err());
    /// # });
    /// ```
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let (location, synchronous) = Location::parse(url).map_err(|e| open_error(e.into()))?;
        let (writer, readers, path) = match location {
            Location::Memory => {
                let conn = Connection::open_in_memory().map_err(|e| open_error(e.into()))?;
                configure(&conn, synchronous).map_err(|e| open_error(e.into()))?;
                (conn, None, PathBuf::new())
            }
            Location::File { path, flags } => {
                if flags.contains(OpenFlags::SQLITE_OPEN_CREATE) {
                    if let Some(folder) = path.parent() {
                        if !folder.as_os_str().is_empty() && !folder.exists() {
                            std::fs::create_dir_all(folder).map_err(|e| open_error(e.into()))?;
                        }
                    }
                }
                // A new file's switch to WAL takes a lock no busy timeout
                // waits for, so processes opening one file at once meet it.
                let conn = retry_busy(|| {
                    let conn = Connection::open_with_flags(&path, flags)?;
                    configure(&conn, synchronous)?;
                    Ok(conn)
                })
                .await
                .map_err(|e| open_error(e.into()))?;
                let readers = Readers {
                    path: path.clone(),
                    idle: SyncMutex::new(Some(Vec::new())),
                };
                (conn, Some(Arc::new(readers)), path)
            }
        };
        Ok(Self {
            writer: Arc::new(Mutex::new(Some(writer))),
            readers,
            path: path.into(),
            flow_queues: Default::default(),
        })
    }

    /// Locks the writing connection, waiting for the store's writes (and
    /// other holders) before it. [`SqliteStore::transaction`] is the way to
    /// write through it; this is for what a transaction cannot do.
    ///
    /// Drop it soon: until then every write through the store waits, and in
    /// memory every read too.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
    /// let conn = store.writer().await.unwrap();
    /// assert!(conn.is_autocommit());
    /// # });
    /// ```
    pub async fn writer(&self) -> Result<Writer<'_>, StoreError> {
        MutexGuard::try_map(self.writer.lock().await, Option::as_mut)
            .map(Writer)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `work` in a transaction on the writing connection and commits
    /// it, or rolls it back if `work` fails: dispatch jobs in it with
    /// [`Hopper::sqlite_transaction`](crate::Hopper::sqlite_transaction), and
    /// they exist if and only if the application's own writes commit.
    ///
    /// The transaction begins `IMMEDIATE`, holding the file's write lock.
    /// While another process holds it, the store sleeps and tries to begin
    /// again for up to [`BUSY_TIMEOUT`]; `work` runs once, on the calling
    /// thread, with the lock held, so keep it short.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::sqlite::SqliteStore;
    /// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    /// let signups = store
    ///     .transaction(|tx| {
    ///         tx.execute_batch("CREATE TABLE signups (email TEXT)")?;
    ///         tx.execute("INSERT INTO signups VALUES (?1)", ["ada@example.com"])?;
    ///         Ok(tx.query_row("SELECT count(*) FROM signups", [], |row| row.get::<_, i64>(0))?)
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(signups, 1);
    /// # });
    /// ```
    pub async fn transaction<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction_with(work).await
    }

    /// [`SqliteStore::transaction`] for work that fails with an error of
    /// its own.
    pub(crate) async fn transaction_with<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = self.writer().await?;
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        let tx = loop {
            let error = match Transaction::new_unchecked(&conn, TransactionBehavior::Immediate) {
                Ok(tx) => break tx,
                Err(error) => StoreError::from(error),
            };
            if !error.is_busy() || Instant::now() >= deadline {
                return Err(error.into());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let value = work(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    /// Runs `work` on the writing connection, again after a pause while
    /// another process holds the write lock (see [`retry_busy`]). `work`
    /// either fails before it changes anything (one statement) or runs in a
    /// transaction, so running it again is safe.
    pub(super) async fn write<T>(
        &self,
        mut work: impl FnMut(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer().await?;
        retry_busy(|| work(&mut conn)).await
    }

    /// Runs `work`, which makes `statements` statements, on the writing
    /// connection: one statement on its own, as it commits alone without
    /// BEGIN and COMMIT, and more in a transaction, so they commit once.
    pub(super) async fn write_all<T>(
        &self,
        statements: usize,
        work: impl Fn(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if statements <= 1 {
            self.write(|conn| work(conn)).await
        } else {
            self.transaction(|tx| work(tx)).await
        }
    }

    /// A connection to read with (for checks and ad-hoc queries): a
    /// read-only one, or in memory the locked writing connection.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    /// let store = hopper::store::sqlite::SqliteStore::open(&url).await.unwrap();
    /// let conn = store.reader().await.unwrap();
    /// let writes = conn.execute_batch("CREATE TABLE notes (body TEXT)");
    /// assert!(writes.unwrap_err().to_string().contains("readonly"));
    /// # });
    /// ```
    pub async fn reader(&self) -> Result<Reader<'_>, StoreError> {
        Ok(Reader(match &self.readers {
            Some(readers) => ReadFrom::File(readers, Some(readers.take()?)),
            None => ReadFrom::Writer(self.writer().await?),
        }))
    }

    /// Runs `work` on a connection to read with.
    pub(super) async fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        work(&*self.reader().await?)
    }

    /// Closes the writing connection (after the writes queued before it)
    /// and the read connections; every later use of the store, or of a
    /// clone, fails with [`StoreError::Closed`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::{Store, StoreError, sqlite::SqliteStore};
    /// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    /// store.close().await;
    /// assert!(matches!(store.migrate().await, Err(StoreError::Closed)));
    /// # });
    /// ```
    pub async fn close(&self) {
        // Dropping a connection closes it; one that fails to close is
        // already broken, which leaves nothing to close.
        drop(self.writer.lock().await.take());
        if let Some(readers) = &self.readers {
            drop(
                readers
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(),
            );
        }
    }

    /// The file behind this store, unless it is in memory.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = dir.path().join("jobs.db");
    /// let url = format!("sqlite://{}", file.display());
    /// let store = hopper::store::sqlite::SqliteStore::open(&url).await.unwrap();
    /// assert_eq!(store.path(), file);
    /// # });
    /// ```
    pub fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::OpenFlags;

    use super::{Location, Synchronous};

    #[test]
    fn urls_name_a_file_or_memory() {
        let read_write = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let file = |path: &str, flags| {
            (
                Location::File {
                    path: path.into(),
                    flags,
                },
                Synchronous::Normal,
            )
        };
        let create = read_write | OpenFlags::SQLITE_OPEN_CREATE;
        let memory = (Location::Memory, Synchronous::Normal);
        assert_eq!(Location::parse("sqlite::memory:"), Ok(memory));
        let memory = (Location::Memory, Synchronous::Normal);
        assert_eq!(Location::parse("sqlite://x.db?mode=memory"), Ok(memory));
        assert_eq!(
            Location::parse("sqlite://storage/hopper.db"),
            Ok(file("storage/hopper.db", create))
        );
        assert_eq!(
            Location::parse("sqlite:///tmp/x.db?mode=rw"),
            Ok(file("/tmp/x.db", read_write))
        );
        assert_eq!(
            Location::parse("sqlite:jobs.db"),
            Ok(file("jobs.db", create))
        );
        assert_eq!(
            Location::parse("sqlite:jobs.db?mode=ro"),
            Ok(file(
                "jobs.db",
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
            ))
        );
        let (_, full) = Location::parse("sqlite:jobs.db?mode=rwc&synchronous=full").unwrap();
        assert_eq!(full, Synchronous::Full);
        assert!(Location::parse("sqlite://").is_err());
        assert!(Location::parse("sqlite://x.db?cache=shared").is_err());
        assert!(Location::parse("sqlite://x.db?synchronous=off").is_err());
        assert!(Location::parse("postgres://x").is_err());
    }
}
