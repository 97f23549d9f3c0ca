//! The schema's migrations, kept in the `_sqlx_migrations` table in the
//! same form as PostgreSQL's and MariaDB's, so `migrate:status` reads one
//! history everywhere.

use rusqlite::Connection;
use sqlx::migrate::Migrator;

use super::{StoreError, sql};
use crate::store::MigrateError;

/// Every migration this build carries.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// One row of the table.
pub(super) struct Applied {
    pub(super) version: i64,
    pub(super) installed_on: String,
    pub(super) success: bool,
    checksum: Vec<u8>,
}

/// The migrations this database has applied (none without the table).
pub(super) fn applied(conn: &Connection) -> Result<Vec<Applied>, StoreError> {
    let has_table: bool = conn.query_row(sql::HAS_MIGRATIONS_TABLE, [], |row| row.get(0))?;
    if !has_table {
        return Ok(Vec::new());
    }
    super::all(conn, sql::APPLIED_MIGRATIONS, [], |row| {
        Ok(Applied {
            version: row.get(0)?,
            installed_on: row.get(1)?,
            success: row.get(2)?,
            checksum: row.get(3)?,
        })
    })
}

/// Applies every pending migration on `conn`, which is in a transaction
/// holding the write lock, after checking the applied ones are this
/// build's, unchanged and complete.
pub(super) fn apply(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(sql::CREATE_MIGRATIONS_TABLE)?;
    let applied = applied(conn)?;
    for done in &applied {
        if !done.success {
            return Err(MigrateError::Dirty(done.version).into());
        }
        match MIGRATOR.iter().find(|m| m.version == done.version) {
            None => return Err(MigrateError::VersionMissing(done.version).into()),
            Some(m) if *m.checksum != *done.checksum => {
                return Err(MigrateError::VersionMismatch(done.version).into());
            }
            Some(_) => {}
        }
    }
    for migration in MIGRATOR.iter() {
        if migration.migration_type.is_down_migration()
            || applied.iter().any(|done| done.version == migration.version)
        {
            continue;
        }
        let start = std::time::Instant::now();
        conn.execute_batch(&migration.sql)?;
        let nanos = i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        conn.execute(
            sql::RECORD_MIGRATION,
            rusqlite::params![
                migration.version,
                &*migration.description,
                &*migration.checksum,
                nanos
            ],
        )?;
    }
    Ok(())
}
