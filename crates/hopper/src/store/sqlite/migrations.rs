//! The schema's migrations, kept in the `_sqlx_migrations` table in the
//! same form as PostgreSQL's and MariaDB's, so `migrate:status` reads one
//! history everywhere.
//!
//! The migration files are embedded at build time (see the crate's
//! `build.rs`); each one's version, description and checksum (the SHA-384
//! of its text) are recorded exactly as sqlx's migrator records them, so
//! databases migrated by either read the same.

use rusqlite::Connection;
use sha2::{Digest, Sha384};

use super::{StoreError, sql};
use crate::store::MigrateError;

/// One migration this build carries: a file of `migrations/sqlite`.
pub(super) struct Migration {
    /// The number its file name starts with.
    pub(super) version: i64,
    /// The rest of its file name, `_`s as spaces, without `.sql`.
    pub(super) description: &'static str,
    /// Its statements.
    sql: &'static str,
}

impl Migration {
    /// The checksum `_sqlx_migrations` records: the SHA-384 of its text.
    fn checksum(&self) -> Vec<u8> {
        Sha384::digest(self.sql.as_bytes()).to_vec()
    }
}

/// Every migration this build carries, oldest first.
pub(super) static MIGRATIONS: &[Migration] =
    include!(concat!(env!("OUT_DIR"), "/sqlite_migrations.rs"));

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
        match MIGRATIONS.iter().find(|m| m.version == done.version) {
            None => return Err(MigrateError::VersionMissing(done.version).into()),
            Some(m) if m.checksum() != done.checksum => {
                return Err(MigrateError::VersionMismatch(done.version).into());
            }
            Some(_) => {}
        }
    }
    for migration in MIGRATIONS {
        if applied.iter().any(|done| done.version == migration.version) {
            continue;
        }
        let start = std::time::Instant::now();
        conn.execute_batch(migration.sql)?;
        let nanos = i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        conn.execute(
            sql::RECORD_MIGRATION,
            rusqlite::params![
                migration.version,
                migration.description,
                migration.checksum(),
                nanos
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration released so far, as `_sqlx_migrations` records it:
    /// version, description and checksum (hex). A database migrated by an
    /// earlier build holds these rows; changing any breaks it.
    const RELEASED: &[(i64, &str, &str)] = &[
        (
            20261129000001,
            "jobs",
            "7b22ac42a7f0b27060f0ed53947f47ae48ac567e2321874915aae094c6cc13b1967d7bf1afd3f42b9fb398fbc3de095c",
        ),
        (
            20261129000002,
            "unique queues leases",
            "61ce5f9fd1325efd0343586957fd191f4f02f71af811766ab3867fde73216d2c15c17da847f40956f44d3976d285c47e",
        ),
        (
            20261129000003,
            "schedules",
            "16c692a3bcba83dfbf1039b7b6604345121107defcd1482c4fd051b75d66cc3dfdc0eb5b5741f7c46e1c818caadb9c0f",
        ),
        (
            20261129000020,
            "alerts",
            "91a344b46b1fb4d3c7405964d6a68f0f05a4c5cddfaaaa9634989a4a752b1e87c854992001e3e97902efc005edda2773",
        ),
        (
            20261129000040,
            "worker concurrency",
            "04a91c2916a27137474dceb20ed0252c03423ca344b5a8cb360c2ec856e340f376f25b9567d0441ec67acd0ae5000ee8",
        ),
        (
            20261206000001,
            "claim tokens",
            "b1ebe40a7649461b380007c0a73722de4de54f0e7017f63e06f84a45aaf03094cd7f5cf43dbddbddabe0a7dd2fb25eb8",
        ),
        (
            20261206000003,
            "cancel requested",
            "09579464b775d4bc251709d465091011132d96f9cbd03bf8ca374a2670bd8b7dc6dbe6dc95f85c7d83a40c88f2a64c95",
        ),
        (
            20261206000004,
            "queue limits",
            "912711806a6bb3ab7c9ceb5a5842fa8dbf27b01ace7db499b55b2fbd289481e5d9fbc0a8d65475872c056a5a93e78fca",
        ),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn released_migrations_keep_their_version_description_and_checksum() {
        for &(version, description, checksum) in RELEASED {
            let Some(m) = MIGRATIONS.iter().find(|m| m.version == version) else {
                panic!("released migration {version} is missing");
            };
            assert_eq!(m.description, description, "migration {version}");
            assert_eq!(hex(&m.checksum()), checksum, "migration {version}");
        }
    }

    #[test]
    fn every_file_of_the_folder_is_carried_oldest_first() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let carried: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}_{}.sql", m.version, m.description.replace(' ', "_")))
            .collect();
        assert_eq!(carried, files);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        for m in MIGRATIONS {
            let path = format!(
                "{}/migrations/sqlite/{}_{}.sql",
                env!("CARGO_MANIFEST_DIR"),
                m.version,
                m.description.replace(' ', "_")
            );
            assert_eq!(m.sql, std::fs::read_to_string(path).unwrap());
        }
    }
}
