//! The store behind a transaction pooler (PgBouncer's `pool_mode =
//! transaction`, and the poolers that work like it), which hands each
//! transaction, and each statement outside one, to whichever server
//! connection is free.
//!
//! Nothing of a session survives from one transaction to the next there,
//! and sqlx's PostgreSQL driver leans on the session for every statement
//! with parameters: it prepares it under a name (`sqlx_s_1`, `sqlx_s_2`, …,
//! counted per client connection, so two clients reuse the same names),
//! waits for the server's answer, then binds it in a second exchange. With
//! its statement cache off it still names each statement, and never closes
//! it. Outside a transaction the pooler may run the two exchanges on two
//! server connections (the statement "does not exist"), and a name another
//! client left on a server collides with the next client's ("already
//! exists"), or worse, binds that client's statement.
//!
//! So, when the store's URL says `pooler=transaction`, [`Db`] runs every
//! statement in a transaction of its own, which the pooler keeps on one
//! server connection, begun by deallocating the named statements anyone
//! left there and ended by deallocating its own; statements are not cached.
//! The pool's transactions are begun and ended the same way. Sessions stay
//! out of the way otherwise: migrations lock with a transaction-level
//! advisory lock ([`migrate`]), and LISTEN needs a direct connection (see
//! `PostgresStore::open_with_listen_url`).

use std::ops::{Deref, DerefMut};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPool, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, Postgres, Transaction};

use crate::store::StoreError;

/// Begins a transaction on a pooled server connection, clearing the named
/// statements left on it (by aborted transactions, or by other clients).
const BEGIN: &str = "BEGIN; DEALLOCATE ALL";
/// Begins [`Db::begin_snapshot`]'s transaction on a pooled server
/// connection: the isolation level is set in `BEGIN`, since no `SET
/// TRANSACTION` may follow the `DEALLOCATE`.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; DEALLOCATE ALL";
/// Run before a pooled transaction commits: the server connection goes
/// back to the pooler without this transaction's named statements.
const END: &str = "DEALLOCATE ALL";

/// The store's connection pool, as the statements see it: in the usual
/// case the pool itself; behind a transaction pooler, each statement in a
/// transaction of its own (see the module's documentation).
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pool: PgPool,
    pooled: bool,
}

impl Db {
    /// Statements on `pool`, which connects through a transaction pooler if `pooled`.
    pub(super) fn new(pool: PgPool, pooled: bool) -> Self {
        Self { pool, pooled }
    }

    /// The pool.
    pub(super) fn raw(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the pool connects through a transaction pooler.
    pub(super) fn pooled(&self) -> bool {
        self.pooled
    }

    /// Begins a transaction.
    pub(super) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let tx = if self.pooled {
            self.pool.begin_with(BEGIN).await?
        } else {
            self.pool.begin().await?
        };
        Ok(Tx {
            tx,
            pooled: self.pooled,
        })
    }

    /// Begins a read-only transaction whose reads all see one snapshot.
    pub(super) async fn begin_snapshot(&self) -> Result<Tx, sqlx::Error> {
        if self.pooled {
            return Ok(Tx {
                tx: self.pool.begin_with(BEGIN_SNAPSHOT).await?,
                pooled: true,
            });
        }
        let mut tx = self.begin().await?;
        sqlx::query(super::sql::SNAPSHOT).execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// A transaction begun by [`Db::begin`]: commit it with [`Tx::commit`];
/// dropped, it rolls back.
pub(crate) struct Tx {
    tx: Transaction<'static, Postgres>,
    pooled: bool,
}

impl Tx {
    /// Commits the transaction.
    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.pooled {
            self.tx.execute(END).await?;
        }
        self.tx.commit().await
    }
}

impl Deref for Tx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return self.pool.fetch_many(query);
        }
        // The results are read to the end before the commit, which must
        // come before the caller is told the statement is done.
        stream::once(async move {
            let mut tx = self.begin().await?;
            let results: Vec<_> = (&mut *tx).fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(stream::iter(results.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return self.pool.fetch_optional(query);
        }
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}

/// Applies `migrator`'s pending migrations through the pooler, in one
/// transaction that holds a transaction-level advisory lock: the session
/// lock sqlx's migrator takes would stay with whichever server connection
/// ran it, held after the migrator is gone. The lock's key is the one sqlx
/// takes, so instances migrating directly at the same time wait on it too.
/// (A migration marked `-- no-transaction` could not run here; none is.)
pub(super) async fn migrate(db: &Db, mut migrator: Migrator) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(migration_lock(&database))
        .execute(&mut *tx)
        .await?;
    migrator.set_locking(false);
    // Each migration runs in a savepoint of this transaction.
    migrator.run_direct(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The advisory lock key sqlx's PostgreSQL migrator takes for `database`
/// (its `generate_lock_id`, which sqlx keeps private).
fn migration_lock(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32(database.as_bytes()))
}

/// CRC-32 (ISO HDLC, as zlib's), the checksum sqlx's lock key is made of.
fn crc32(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_crc32() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_lock_key_is_the_one_sqlx_takes() {
        // sqlx: 0x3d32ad9e * (the CRC-32 of the database's name, as i64).
        assert_eq!(crc32(b"test"), 0xd87f_7e0c);
        assert_eq!(migration_lock("test"), 0x3d32_ad9e * 0xd87f_7e0c);
    }
}
