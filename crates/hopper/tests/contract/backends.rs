//! The databases the contract runs on. Each test gets a fresh, empty
//! database; a server that cannot be reached fails the test and says which.

use hopper::testing::{TestQueue, TestingError};
use hopper::{Builder, WorkerConfig};

/// A fresh database reserved for one test.
pub struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// Removes a server database when the test ends.
    _guard: Option<Box<dyn Send + Sync>>,
}

impl TestDb {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the database tells a running pool at once of a change made
    /// in another process (PostgreSQL's notifications, SQLite's file
    /// watch); MySQL does not.
    pub fn notifies(&self) -> bool {
        !self.url.starts_with("mysql:")
    }

    /// A test queue with 4 workers on the `default` queue of this database.
    pub async fn start(&self, builder: Builder) -> Result<TestQueue, TestingError> {
        self.start_with(builder, WorkerConfig::new(4)).await
    }

    /// A test queue with `config` on this database.
    pub async fn start_with(
        &self,
        builder: Builder,
        config: WorkerConfig,
    ) -> Result<TestQueue, TestingError> {
        TestQueue::start_on(&self.url, builder, config).await
    }
}

/// A new SQLite file in a temporary folder.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    TestDb {
        url,
        _dir: Some(dir),
        _guard: None,
    }
}

/// A new, uniquely named database on the PostgreSQL server at
/// 127.0.0.1:5432 (user postgres, created through the `test` database),
/// dropped when the test ends.
#[cfg(feature = "postgres")]
pub async fn postgres() -> TestDb {
    let database = crate::common::postgres::database().await;
    TestDb {
        url: database.url.clone(),
        _dir: None,
        _guard: Some(Box::new(database)),
    }
}

/// A new, uniquely named database on the MariaDB/MySQL server at
/// 127.0.0.1:3306 (user root, no password). Databases left by earlier runs
/// are dropped first, once per test binary.
#[cfg(feature = "mysql")]
pub async fn mysql() -> TestDb {
    let database = crate::common::mysql::database().await;
    TestDb {
        url: database.url.clone(),
        _dir: None,
        _guard: Some(Box::new(database)),
    }
}
