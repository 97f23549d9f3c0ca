//! Connection pools for the database servers.
//!
//! A pool checks a connection before handing it out, so one the server
//! dropped while it sat idle is replaced instead of failing the statement
//! that gets it. sqlx checks with a round trip on every checkout, which
//! under load doubles the round trips of short statements; here a
//! connection used within the last [`TRUSTED_IDLE`] goes out unchecked, as
//! a busy pool's always does.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database};

/// How long a connection may sit idle and still be handed out without a
/// check: less than a server or a network takes to drop it unnoticed.
const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// Pool options that check only connections idle for over [`TRUSTED_IDLE`].
pub(crate) fn options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                // A connection that fails its check is closed, and the pool
                // hands out another.
                Ok(meta.idle_for < TRUSTED_IDLE || conn.ping().await.is_ok())
            })
        })
}
