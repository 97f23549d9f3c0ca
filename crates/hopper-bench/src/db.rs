//! Where the benchmark's databases live: every workload run gets a fresh
//! SQLite file, so runs never see each other's rows.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hopper::store::sqlite::SqliteStore;
use hopper::store::Store;
use tempfile::TempDir;

/// The folder and name stem fresh database files are made from.
///
/// With no URL the files go to a new temporary folder, removed at exit.
/// With `sqlite://dir/bench.db` they go next to it as
/// `dir/bench.<workload>.db`, each removed when its workload is done.
#[derive(Debug)]
pub struct Databases {
    dir: PathBuf,
    stem: String,
    /// The URL's query string (`?…`), kept on every derived URL.
    query: String,
    /// Keeps the temporary folder alive for the whole run.
    _temp: Option<TempDir>,
}

impl Databases {
    /// Reads `--database-url`; only `sqlite://<file>` is supported.
    pub fn new(url: Option<&str>) -> Result<Self> {
        let Some(url) = url else {
            let temp = tempfile::Builder::new()
                .prefix("hopper-bench-")
                .tempdir()
                .context("cannot create a temporary folder for the databases")?;
            return Ok(Self {
                dir: temp.path().to_path_buf(),
                stem: "bench".to_owned(),
                query: String::new(),
                _temp: Some(temp),
            });
        };
        let Some(rest) = url.strip_prefix("sqlite://") else {
            bail!("unsupported database URL {url:?}: only sqlite://<file> is supported for now");
        };
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
        Ok(Self {
            dir,
            stem,
            query,
            _temp: None,
        })
    }

    /// A human description of where the files go.
    pub fn describe(&self) -> String {
        format!("{}/{}.<workload>.db", self.dir.display(), self.stem)
    }

    /// A fresh database file for `workload`: any earlier file of that name
    /// (left by an interrupted run) is removed first.
    pub fn fresh(&self, workload: &str) -> Result<FreshDb> {
        let db = FreshDb {
            path: self.dir.join(format!("{}.{workload}.db", self.stem)),
            query: self.query.clone(),
        };
        db.remove()?;
        Ok(db)
    }
}

/// One fresh database file, deleted (with its WAL files) when dropped.
#[derive(Debug)]
pub struct FreshDb {
    path: PathBuf,
    query: String,
}

impl FreshDb {
    /// The `sqlite://` URL of this file.
    pub fn url(&self) -> String {
        format!("sqlite://{}{}", self.path.display(), self.query)
    }

    /// Opens this file with Hopper's own SQLite store (same pragmas: WAL,
    /// `synchronous = NORMAL`, busy timeout) and applies Hopper's migration.
    pub async fn open(&self) -> Result<SqliteStore> {
        let url = self.url();
        let store = SqliteStore::open(&url).await?;
        store.migrate().await?;
        Ok(store)
    }

    fn remove(&self) -> Result<()> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = self.path.clone().into_os_string();
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
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // Best effort: a file left behind is removed by the next run anyway.
        let _ = self.remove();
    }
}

/// Closes both pools of `store`, so its files can be removed cleanly.
pub async fn close(store: &SqliteStore) {
    store.writer().close().await;
    store.reader().close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_made_beside_the_named_one() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/sub/jobs.db?mode=rwc", dir.path().display());
        let dbs = Databases::new(Some(&url))?;
        let db = dbs.fresh("w2")?;
        let expected = format!("sqlite://{}/sub/jobs.w2.db?mode=rwc", dir.path().display());
        assert_eq!(db.url(), expected);
        assert!(dir.path().join("sub").is_dir());
        Ok(())
    }

    #[test]
    fn only_sqlite_files_are_accepted() {
        for url in [
            "postgres://localhost/db",
            "sqlite::memory:",
            "sqlite://",
            "sqlite://x.db?mode=memory",
        ] {
            assert!(Databases::new(Some(url)).is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn a_fresh_file_is_removed_when_dropped() -> Result<()> {
        let dbs = Databases::new(None)?;
        let db = dbs.fresh("t")?;
        let store = db.open().await?;
        close(&store).await;
        let path = db.path.clone();
        assert!(path.exists());
        drop(db);
        assert!(!path.exists());
        Ok(())
    }
}
