//! Fresh PostgreSQL databases for tests: each one is created on the server
//! at 127.0.0.1:5432 (through its `test` database) and dropped when its
//! handle drops. A server that cannot be reached fails the test.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// The database tests connect through to create and drop their own.
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Every test database's name starts with this.
const PREFIX: &str = "hopper_t_";
/// Test databases older than this are left over from a run that was killed.
const STALE_SECS: u64 = 3600;

/// One test's own database, dropped with this handle.
pub struct Database {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside an async runtime: do the work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut admin = admin().await;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}

/// A connection to the `test` database, or a panic naming the server.
pub async fn admin() -> PgConnection {
    PgConnection::connect(ADMIN_URL)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at 127.0.0.1:5432 is not reachable: {e}"))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates a new, empty database for one test, after dropping test
/// databases that runs killed before their cleanup left behind.
pub async fn database() -> Database {
    let mut admin = admin().await;
    let now = unix_secs();
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for name in existing {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs + STALE_SECS < now) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    let name = format!("{PREFIX}{now}_{:016x}", fastrand::u64(..));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    Database { url, name }
}
