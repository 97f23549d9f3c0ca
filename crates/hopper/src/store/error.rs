//! What can go wrong talking to the database, in one shape whichever
//! databases the build enables: a driver's error is classified when it is
//! converted, and kept only as a boxed source.

use crate::job::JobId;

/// A boxed error from a database driver or the migrator.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no database this build supports.
    #[error("unsupported database URL {0:?}: expected sqlite://…, postgres://… or mysql://… (enabled databases: {enabled})", enabled = super::ENABLED.join(", "))]
    UnsupportedUrl(String),
    /// The database could not be opened or created.
    #[error("cannot open database {url}: {source}")]
    Open {
        /// The URL that was opened.
        url: String,
        /// Why.
        source: BoxError,
    },
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] MigrateError),
    /// A statement failed (the database went away, the disk is full, a
    /// unique key is taken, …).
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Flow settings no claim could honour (a limit of 0, a rate with no
    /// period).
    #[error("invalid flow settings: {0}")]
    InvalidFlow(String),
    /// The transaction a dispatch shared with other callers' dispatches
    /// (group commit, see [`Builder::group_commit`](crate::client::Builder::group_commit))
    /// failed: none of its jobs was stored.
    #[error("the transaction storing this job and {others} other callers' jobs failed: {source}", others = .jobs - 1)]
    SharedCommit {
        /// Jobs the transaction held, this caller's among them.
        jobs: usize,
        /// Why it failed, the same error for every caller.
        source: std::sync::Arc<StoreError>,
    },
    /// The store was closed; nothing more goes through it.
    #[error("the database store is closed")]
    Closed,
    /// A unique key's holder kept changing under every attempt to insert or find it.
    #[error(
        "unique key {0:?} stayed contended: every insert met a live job holding it, every look-up found none"
    )]
    Contended(String),
    /// A failed or cancelled job cannot go back to pending while another
    /// live job holds its unique key.
    #[error(
        "job {id} cannot be retried: another pending or started job holds its unique key {key:?}"
    )]
    UniqueKeyHeld {
        /// The job that was to be retried.
        id: JobId,
        /// Its unique key.
        key: String,
    },
    /// A row held a value Hopper cannot read.
    #[error("corrupt job row {id}: {reason}")]
    Corrupt {
        /// The row's id.
        id: JobId,
        /// What was wrong.
        reason: String,
    },
    /// A job listing asked for a page size of 0 or above
    /// [`MAX_PAGE_SIZE`](super::MAX_PAGE_SIZE).
    #[error("a page of jobs holds 1 to {max} jobs, not {limit}", max = super::MAX_PAGE_SIZE)]
    PageSize {
        /// The page size asked for.
        limit: u32,
    },
    /// No batch has this id.
    #[error("no batch {0}")]
    NoSuchBatch(i64),
    /// The batch completed (sealed, every job ended): it takes no more jobs.
    #[error("batch {0} completed: it takes no more jobs")]
    BatchComplete(i64),
    /// A batch's stored row cannot be read back.
    #[error("corrupt batch row {id}: {reason}")]
    CorruptBatch {
        /// The batch's id.
        id: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// A workflow's steps do not form one: what is wrong.
    #[error("invalid workflow: {0}")]
    InvalidWorkflow(String),
    /// A job cannot join the sequence it names: what is wrong.
    #[error("invalid sequence: {0}")]
    InvalidSequence(String),
    /// Hopper broke one of its own rules (a bug): what happened.
    #[error("internal error: {0}")]
    Internal(String),
    /// A name holds a NUL character, which no database stores as text.
    #[error("a {field} cannot contain a NUL character: {name:?}")]
    NulCharacter {
        /// Which name it was, e.g. `queue name`.
        field: &'static str,
        /// The name given.
        name: String,
    },
}

impl StoreError {
    /// Whether the database refused a write because a unique index already
    /// holds its key.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
    /// let twice = store
    ///     .transaction(|tx| {
    ///         tx.execute_batch("CREATE TABLE t (k TEXT UNIQUE); INSERT INTO t VALUES ('a'), ('a')")?;
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert!(twice.unwrap_err().is_unique_violation());
    /// # });
    /// ```
    pub fn is_unique_violation(&self) -> bool {
        self.database_kind() == Some(DatabaseErrorKind::UniqueViolation)
    }

    /// Whether SQLite refused a statement because another process holds
    /// the lock it needs.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn is_busy(&self) -> bool {
        self.database_kind() == Some(DatabaseErrorKind::Busy)
    }

    /// Whether the server rolled the transaction back to break a deadlock.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn is_deadlock(&self) -> bool {
        self.database_kind() == Some(DatabaseErrorKind::Deadlock)
    }

    /// The kind of database failure this is, if it is one.
    fn database_kind(&self) -> Option<DatabaseErrorKind> {
        match self {
            Self::Database(error) => Some(error.kind()),
            _ => None,
        }
    }
}

/// A statement the database refused or could not run: what kind of
/// failure it was, and the driver's own error as its
/// [`source`](std::error::Error::source).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::error::Error;
/// use hopper::store::{DatabaseErrorKind, StoreError};
/// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
/// let twice = store
///     .transaction(|tx| Ok(tx.execute_batch("CREATE TABLE t (k TEXT UNIQUE); INSERT INTO t VALUES ('a'), ('a')")?))
///     .await;
/// let Err(StoreError::Database(error)) = twice else { panic!("a database error") };
/// assert_eq!(error.kind(), DatabaseErrorKind::UniqueViolation);
/// assert!(error.to_string().starts_with("database error: "));
/// assert!(error.source().unwrap().downcast_ref::<rusqlite::Error>().is_some());
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[error("database error: {source}")]
pub struct DatabaseError {
    kind: DatabaseErrorKind,
    source: BoxError,
}

impl DatabaseError {
    /// A failure of `kind`, caused by `source` (a driver's error, or a
    /// message): for stores outside this crate, and for tests.
    ///
    /// ```
    /// use hopper::store::{DatabaseError, DatabaseErrorKind};
    /// let error = DatabaseError::new(DatabaseErrorKind::Busy, "database is locked");
    /// assert_eq!(error.to_string(), "database error: database is locked");
    /// ```
    pub fn new(kind: DatabaseErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// What kind of failure it was.
    ///
    /// ```
    /// use hopper::store::{DatabaseError, DatabaseErrorKind};
    /// let error = DatabaseError::new(DatabaseErrorKind::Connection, "pool timed out");
    /// assert_eq!(error.kind(), DatabaseErrorKind::Connection);
    /// ```
    pub fn kind(&self) -> DatabaseErrorKind {
        self.kind
    }

    /// The driver's error, to inspect beyond its kind (downcast it to
    /// `rusqlite::Error` on SQLite, `sqlx::Error` on PostgreSQL or MySQL).
    ///
    /// ```
    /// use hopper::store::{DatabaseError, DatabaseErrorKind};
    /// let error = DatabaseError::new(DatabaseErrorKind::Other, "disk full");
    /// assert_eq!(error.into_source().to_string(), "disk full");
    /// ```
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

/// What kind of failure a [`DatabaseError`] is. More kinds may come.
///
/// ```
/// use hopper::store::{DatabaseError, DatabaseErrorKind};
/// let error = DatabaseError::new(DatabaseErrorKind::Deadlock, "deadlock found");
/// assert_ne!(error.kind(), DatabaseErrorKind::Other);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatabaseErrorKind {
    /// A unique index already holds the key being written.
    UniqueViolation,
    /// SQLite: another connection or process holds the lock the statement
    /// needs ("database is locked").
    Busy,
    /// MySQL or MariaDB: the server rolled the transaction back to break a
    /// deadlock; running it again is safe.
    Deadlock,
    /// No connection to the database: the pool is closed or timed out, or
    /// the connection failed.
    Connection,
    /// Any other failure.
    Other,
}

/// Why applying the schema migrations failed.
///
/// ```
/// use hopper::store::MigrateError;
/// let error = MigrateError::Dirty(20240101000000);
/// assert!(error.to_string().contains("partially applied"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A migration the database applied was changed since: its checksum
    /// is not this build's.
    #[error("migration {0} was previously applied but has been modified")]
    VersionMismatch(i64),
    /// A migration failed part way and is recorded as not applied in full.
    #[error("migration {0} is partially applied; fix and remove row from `_sqlx_migrations` table")]
    Dirty(i64),
    /// The database applied a migration this build does not carry (a newer
    /// build migrated it).
    #[error("migration {0} was previously applied but is missing in the resolved migrations")]
    VersionMissing(i64),
    /// Anything else: the migrator's own error.
    #[error(transparent)]
    Other(BoxError),
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let kind = match &error {
            sqlx::Error::Database(e) if e.is_unique_violation() => {
                DatabaseErrorKind::UniqueViolation
            }
            #[cfg(feature = "mysql")]
            sqlx::Error::Database(e) if is_mysql_deadlock(e.as_ref()) => {
                DatabaseErrorKind::Deadlock
            }
            sqlx::Error::PoolClosed
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => DatabaseErrorKind::Connection,
            _ => DatabaseErrorKind::Other,
        };
        Self::Database(DatabaseError::new(kind, error))
    }
}

/// Whether MySQL or MariaDB rolled the transaction back to break a
/// deadlock (error 1213, SQLSTATE 40001).
#[cfg(feature = "mysql")]
fn is_mysql_deadlock(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| e.number() == 1213)
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as Sqlx;
        Self::Migrate(match error {
            Sqlx::VersionMismatch(version) => MigrateError::VersionMismatch(version),
            Sqlx::Dirty(version) => MigrateError::Dirty(version),
            Sqlx::VersionMissing(version) => MigrateError::VersionMissing(version),
            other => MigrateError::Other(Box::new(other)),
        })
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
        let kind = match &error {
            rusqlite::Error::SqliteFailure(e, _) if e.extended_code == SQLITE_CONSTRAINT_UNIQUE => {
                DatabaseErrorKind::UniqueViolation
            }
            e if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                DatabaseErrorKind::Busy
            }
            _ => DatabaseErrorKind::Other,
        };
        Self::Database(DatabaseError::new(kind, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    #[test]
    fn a_lost_connection_is_its_own_kind_and_reads_as_a_database_error() {
        let error = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(
            &error,
            StoreError::Database(e) if e.kind() == DatabaseErrorKind::Connection
        ));
        assert_eq!(
            error.to_string(),
            format!("database error: {}", sqlx::Error::PoolTimedOut)
        );
        assert!(!error.is_unique_violation() && !error.is_busy() && !error.is_deadlock());
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    #[test]
    fn migration_errors_keep_their_case_and_the_rest_their_source() {
        use sqlx::migrate::MigrateError as Sqlx;
        let dirty = StoreError::from(Sqlx::Dirty(3));
        assert!(matches!(dirty, StoreError::Migrate(MigrateError::Dirty(3))));
        assert_eq!(
            dirty.to_string(),
            format!("database migration failed: {}", Sqlx::Dirty(3))
        );
        let other = StoreError::from(Sqlx::Execute(sqlx::Error::PoolClosed));
        let StoreError::Migrate(MigrateError::Other(source)) = &other else {
            panic!("not an other migration error: {other:?}");
        };
        assert!(source.downcast_ref::<Sqlx>().is_some());
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_failures_are_classified_by_their_result_code() {
        use rusqlite::ffi;
        let failure =
            |code| StoreError::from(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
        assert!(failure(ffi::SQLITE_BUSY).is_busy());
        assert!(failure(ffi::SQLITE_CONSTRAINT_UNIQUE).is_unique_violation());
        let full = failure(ffi::SQLITE_FULL);
        assert!(!full.is_busy() && !full.is_unique_violation());
    }
}
