//! Where the benchmark's databases live: every workload run gets a fresh
//! database, so runs never see each other's rows. On SQLite that is a file
//! of its own; on PostgreSQL and MySQL/MariaDB a database created on the
//! server for the run and dropped when the workload is done.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hopper::store::Store;
use hopper::store::mysql::MysqlStore;
use hopper::store::postgres::PostgresStore;
use hopper::store::sqlite::SqliteStore;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, MySqlConnection, PgConnection};
use tempfile::TempDir;

/// Every database the benchmark creates on a server starts with this.
const PREFIX: &str = "hopper_bench_";
/// Benchmark databases older than this (seconds) are left from a killed run.
const STALE_SECS: u64 = 6 * 3600;

/// The database a run speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
    /// A MySQL or MariaDB server.
    Mysql,
}

impl Kind {
    /// The database `url` names: `sqlite://<file>`, `postgres://…` or `mysql://…`.
    pub fn of(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Self::Mysql)
        } else if url.starts_with("sqlite://") {
            Ok(Self::Sqlite)
        } else {
            bail!(
                "unsupported database URL {url:?}: expected sqlite://<file>, \
                 postgres://… or mysql://…"
            )
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

/// Where fresh databases are made.
#[derive(Debug)]
pub enum Databases {
    /// Files in one folder, named from one stem.
    ///
    /// With no URL the files go to a new temporary folder, removed at exit.
    /// With `sqlite://dir/bench.db` they go next to it as
    /// `dir/bench.<workload>.db`, each removed when its workload is done.
    Files {
        /// The folder.
        dir: PathBuf,
        /// The name stem.
        stem: String,
        /// The URL's query string (`?…`), kept on every derived URL.
        query: String,
        /// Keeps the temporary folder alive for the whole run.
        _temp: Option<TempDir>,
    },
    /// Databases created on a server, named `hopper_bench_<secs>_<random>_<workload>`.
    Server(Server),
}

/// A PostgreSQL or MySQL server the run creates its databases on.
#[derive(Debug)]
pub struct Server {
    kind: Kind,
    /// The URL given: the connection that creates and drops databases.
    admin_url: String,
    /// The start of every database name of this run.
    run: String,
}

impl Databases {
    /// Reads `--database-url`: `sqlite://<file>`, `postgres://…` or `mysql://…`.
    pub fn new(url: Option<&str>) -> Result<Self> {
        let Some(url) = url else {
            let temp = tempfile::Builder::new()
                .prefix("hopper-bench-")
                .tempdir()
                .context("cannot create a temporary folder for the databases")?;
            return Ok(Self::Files {
                dir: temp.path().to_path_buf(),
                stem: "bench".to_owned(),
                query: String::new(),
                _temp: Some(temp),
            });
        };
        let kind = Kind::of(url)?;
        if kind == Kind::Sqlite {
            return Self::files(url, url.strip_prefix("sqlite://").unwrap_or_default());
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Self::Server(Server {
            kind,
            admin_url: url.replacen("mariadb://", "mysql://", 1),
            run: format!("{PREFIX}{secs}_{:08x}", fastrand::u32(..)),
        }))
    }

    fn files(url: &str, rest: &str) -> Result<Self> {
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, format!("?{query}")),
            None => (rest, String::new()),
        };
        if path.is_empty() || path.contains(":memory:") || query.contains("mode=memory") {
            bail!(
                "database URL {url:?} names no file: each workload needs its own fresh file, \
                 made next to the one given (e.g. sqlite://bench/hopper.db)"
            );
        }
        let path = Path::new(path);
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| !stem.is_empty())
            .with_context(|| format!("database URL {url:?} names no file"))?
            .to_owned();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        Ok(Self::Files {
            dir,
            stem,
            query,
            _temp: None,
        })
    }

    /// The database the run speaks to.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Files { .. } => Kind::Sqlite,
            Self::Server(server) => server.kind,
        }
    }

    /// A human description of where the databases go.
    pub fn describe(&self) -> String {
        match self {
            Self::Files { dir, stem, .. } => format!("{}/{stem}.<workload>.db", dir.display()),
            Self::Server(server) => format!(
                "{} databases {}_<workload> on {}",
                server.kind.name(),
                server.run,
                without_password(&server.admin_url)
            ),
        }
    }

    /// A fresh database for `workload`: any earlier one of that name (left
    /// by an interrupted run) is removed first.
    pub async fn fresh(&self, workload: &str) -> Result<FreshDb> {
        match self {
            Self::Files {
                dir, stem, query, ..
            } => {
                let path = dir.join(format!("{stem}.{workload}.db"));
                remove_files(&path)?;
                Ok(FreshDb {
                    url: format!("sqlite://{}{query}", path.display()),
                    kind: Kind::Sqlite,
                    place: Place::File(path),
                })
            }
            Self::Server(server) => server.create(workload).await,
        }
    }

    /// Drops what this run left on the server (after an error) and
    /// benchmark databases of runs killed long ago.
    pub async fn cleanup(&self) -> Result<()> {
        let Self::Server(server) = self else {
            return Ok(());
        };
        server.cleanup().await
    }
}

impl Server {
    async fn create(&self, workload: &str) -> Result<FreshDb> {
        let name = format!("{}_{}", self.run, workload.replace('-', "_"));
        let url = match self.kind {
            Kind::Postgres => {
                let mut admin = self.postgres().await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .await?;
                let options = PgConnectOptions::from_str(&self.admin_url)?.database(&name);
                options.to_url_lossy().to_string()
            }
            Kind::Mysql | Kind::Sqlite => {
                let mut admin = self.mysql().await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute(&mut admin)
                    .await?;
                sqlx::raw_sql(&format!("CREATE DATABASE `{name}`"))
                    .execute(&mut admin)
                    .await?;
                let options = MySqlConnectOptions::from_str(&self.admin_url)?.database(&name);
                options.to_url_lossy().to_string()
            }
        };
        Ok(FreshDb {
            url,
            kind: self.kind,
            place: Place::Server {
                admin_url: self.admin_url.clone(),
                name,
            },
        })
    }

    async fn postgres(&self) -> Result<PgConnection> {
        PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL at {} is not reachable",
                    without_password(&self.admin_url)
                )
            })
    }

    async fn mysql(&self) -> Result<MySqlConnection> {
        MySqlConnection::connect(&self.admin_url)
            .await
            .with_context(|| {
                format!(
                    "MySQL/MariaDB at {} is not reachable",
                    without_password(&self.admin_url)
                )
            })
    }

    /// Benchmark databases this run left, or older runs left long ago.
    async fn cleanup(&self) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stale = |name: &str| {
            name.starts_with(&self.run)
                || name
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.split('_').next())
                    .and_then(|secs| secs.parse::<u64>().ok())
                    .is_some_and(|secs| secs + STALE_SECS < now)
        };
        match self.kind {
            Kind::Postgres => {
                let mut admin = self.postgres().await?;
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
                )
                .bind(PREFIX)
                .fetch_all(&mut admin)
                .await?;
                for name in names.iter().filter(|name| stale(name)) {
                    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await?;
                }
            }
            Kind::Mysql | Kind::Sqlite => {
                let mut admin = self.mysql().await?;
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
                     WHERE schema_name LIKE 'hopper\\_bench\\_%'",
                )
                .fetch_all(&mut admin)
                .await?;
                for name in names.iter().filter(|name| stale(name)) {
                    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
                        .execute(&mut admin)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// `url` with any password replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

fn remove_files(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot remove {file:?}"));
            }
        }
    }
    Ok(())
}

#[derive(Debug)]
enum Place {
    File(PathBuf),
    Server { admin_url: String, name: String },
}

/// One fresh database. [`FreshDb::finish`] removes it; a file left behind
/// by an error is removed when dropped, a server database by
/// [`Databases::cleanup`].
#[derive(Debug)]
pub struct FreshDb {
    url: String,
    kind: Kind,
    place: Place,
}

impl FreshDb {
    /// The URL Hopper opens it with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens it with Hopper's own store for its database (same pragmas and
    /// pool settings as any Hopper application) and applies Hopper's migrations.
    pub async fn open(&self) -> Result<Bench> {
        Bench::open(self.kind, &self.url).await
    }

    /// Removes the database (the store on it must be closed).
    pub async fn finish(self) -> Result<()> {
        match &self.place {
            Place::File(path) => remove_files(path),
            Place::Server { admin_url, name } => {
                match self.kind {
                    Kind::Postgres => {
                        let mut admin = PgConnection::connect(admin_url).await?;
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut admin)
                            .await?;
                    }
                    Kind::Mysql | Kind::Sqlite => {
                        let mut admin = MySqlConnection::connect(admin_url).await?;
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
                            .execute(&mut admin)
                            .await?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // Best effort: a file left behind is removed by the next run anyway.
        if let Place::File(path) = &self.place {
            let _ = remove_files(path);
        }
    }
}

/// Hopper's store on one benchmark database, of whichever kind.
#[derive(Clone, Debug)]
pub enum Bench {
    /// SQLite.
    Sqlite(Box<SqliteStore>),
    /// PostgreSQL.
    Postgres(Box<PostgresStore>),
    /// MySQL or MariaDB.
    Mysql(Box<MysqlStore>),
}

impl Bench {
    /// Opens `url` with Hopper's store for `kind` and migrates it.
    pub async fn open(kind: Kind, url: &str) -> Result<Self> {
        let bench = match kind {
            Kind::Sqlite => Self::Sqlite(Box::new(SqliteStore::open(url).await?)),
            Kind::Postgres => Self::Postgres(Box::new(PostgresStore::open(url).await?)),
            Kind::Mysql => Self::Mysql(Box::new(MysqlStore::open(url).await?)),
        };
        bench.store().migrate().await?;
        Ok(bench)
    }

    /// The store, for a Hopper handle.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => Arc::new(SqliteStore::clone(store)),
            Self::Postgres(store) => Arc::new(PostgresStore::clone(store)),
            Self::Mysql(store) => Arc::new(MysqlStore::clone(store)),
        }
    }

    /// Rows in state `finished`.
    pub async fn count_finished(&self) -> Result<u64> {
        self.count("SELECT COUNT(*) FROM jobs WHERE state = 'finished'")
            .await
    }

    /// Rows still `pending` or `started`. Counted state by state, so each
    /// count reads only its partial index, however many ended rows the table keeps.
    pub async fn count_live(&self) -> Result<u64> {
        self.count(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'pending') \
                + (SELECT COUNT(*) FROM jobs WHERE state = 'started')",
        )
        .await
    }

    /// The one count `sql` selects.
    async fn count(&self, sql: &str) -> Result<u64> {
        let n: i64 = match self {
            Self::Sqlite(store) => store.reader().await?.query_row(sql, [], |row| row.get(0))?,
            Self::Postgres(store) => sqlx::query_scalar(sql).fetch_one(store.pool()).await?,
            Self::Mysql(store) => sqlx::query_scalar(sql).fetch_one(store.pool()).await?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Updates the planner's statistics of the jobs table, as autovacuum
    /// (PostgreSQL) or InnoDB's automatic statistics would by the time a
    /// table holds that many rows. Nothing to do on SQLite.
    pub async fn analyze(&self) -> Result<()> {
        match self {
            Self::Sqlite(_) => {}
            Self::Postgres(store) => {
                sqlx::raw_sql("VACUUM ANALYZE jobs")
                    .execute(store.pool())
                    .await?;
            }
            Self::Mysql(store) => {
                sqlx::raw_sql("ANALYZE TABLE jobs")
                    .execute(store.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Closes every connection, so the database can be removed.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.pool().close().await,
            Self::Mysql(store) => store.pool().close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_made_beside_the_named_one() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/sub/jobs.db?mode=rwc", dir.path().display());
        let dbs = Databases::new(Some(&url))?;
        let db = dbs.fresh("w2").await?;
        let expected = format!("sqlite://{}/sub/jobs.w2.db?mode=rwc", dir.path().display());
        assert_eq!(db.url(), expected);
        assert!(dir.path().join("sub").is_dir());
        Ok(())
    }

    #[test]
    fn unknown_databases_and_sqlite_without_a_file_are_refused() {
        for url in [
            "oracle://localhost/db",
            "sqlite::memory:",
            "sqlite://",
            "sqlite://x.db?mode=memory",
        ] {
            assert!(Databases::new(Some(url)).is_err(), "{url}");
        }
        for (url, kind) in [
            ("postgres://postgres@127.0.0.1:5432/test", Kind::Postgres),
            ("mysql://root@127.0.0.1:3306", Kind::Mysql),
        ] {
            assert!(Databases::new(Some(url)).is_ok_and(|dbs| dbs.kind() == kind));
        }
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            without_password("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(without_password("mysql://root@h"), "mysql://root@h");
    }

    #[tokio::test]
    async fn a_fresh_file_is_removed_when_finished() -> Result<()> {
        let dbs = Databases::new(None)?;
        let db = dbs.fresh("t").await?;
        let store = db.open().await?;
        store.close().await;
        let Place::File(path) = &db.place else {
            bail!("not a file");
        };
        let path = path.clone();
        assert!(path.exists());
        db.finish().await?;
        assert!(!path.exists());
        Ok(())
    }
}
