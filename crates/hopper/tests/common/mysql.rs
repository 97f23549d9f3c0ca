//! Fresh databases on the MariaDB/MySQL server the tests use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, MySqlConnection};

/// The server: 127.0.0.1:3306, user root, no password.
pub const SERVER: &str = "mysql://root@127.0.0.1:3306";

/// Databases this old (seconds) are left from runs that did not clean up.
const STALE_AFTER: u64 = 3600;

static SWEPT: AtomicBool = AtomicBool::new(false);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A connection to the server with no database selected.
pub async fn admin() -> MySqlConnection {
    MySqlConnection::connect(SERVER)
        .await
        .unwrap_or_else(|e| panic!("MariaDB/MySQL at 127.0.0.1:3306 is not reachable: {e}"))
}

/// A new, empty database named `hopper_t_<unix seconds>_<random>`, dropped
/// when the returned guard is. The first call in a process drops such
/// databases older than an hour.
pub async fn database() -> Database {
    let mut conn = admin().await;
    if !SWEPT.swap(true, Ordering::SeqCst) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'hopper\\_t\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for name in names {
            let born = name
                .split('_')
                .nth(2)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            if born + STALE_AFTER < unix_now() {
                conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                    .await
                    .unwrap();
            }
        }
    }
    let name = format!("hopper_t_{}_{:016x}", unix_now(), fastrand::u64(..));
    conn.execute(format!("CREATE DATABASE `{name}`").as_str())
        .await
        .unwrap();
    Database {
        url: format!("{SERVER}/{name}"),
        name,
    }
}

/// A test database; dropping this drops it on the server.
pub struct Database {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread of its own: this may run inside a runtime, which must not block on itself.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = MySqlConnection::connect(SERVER).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}
