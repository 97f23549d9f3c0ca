//! The package around a folder, found the way cargo finds the package it
//! builds: the nearest folder at or above it whose `Cargo.toml` is a
//! package (has a `[package]` table). A manifest that only declares a
//! workspace is passed over, so from a member's folder the member is found.
//!
//! Generators write to the found package's `src` folder unless `--source`
//! names another, so the console works from anywhere inside the
//! application, wherever it was built.

use std::path::{Path, PathBuf};

/// Why no package was found.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The working directory (or the absolute form of the start folder)
    /// cannot be read.
    #[error("cannot read the working directory: {0}")]
    WorkingDirectory(#[source] std::io::Error),
    /// No folder at or above `start` holds a package's `Cargo.toml`.
    #[error(
        "no Cargo.toml with a [package] table in {} or any folder above it",
        start.display()
    )]
    NotFound {
        /// Where the search started.
        start: PathBuf,
    },
    /// A `Cargo.toml` on the way cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `Cargo.toml` on the way is not TOML.
    #[error("{} is not valid TOML: {message}", path.display())]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// The root folder of the package around `start`: the nearest folder at or
/// above it whose `Cargo.toml` has a `[package]` table.
///
/// ```
/// use hopper_cli::package::package_root;
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = [\"shop\"]\n").unwrap();
/// let shop = dir.path().join("shop");
/// std::fs::create_dir_all(shop.join("src/jobs")).unwrap();
/// std::fs::write(shop.join("Cargo.toml"), "[package]\nname = \"shop\"\n").unwrap();
/// assert_eq!(package_root(&shop.join("src/jobs")).unwrap(), shop);
/// ```
pub fn package_root(start: &Path) -> Result<PathBuf, PackageError> {
    let start = std::path::absolute(start).map_err(PackageError::WorkingDirectory)?;
    nearest_package(&start, start.ancestors())
}

/// The `src` folder of the package around the working directory; from a
/// folder in no package (a workspace's root, say), the package `cargo run`
/// runs, which cargo names in `CARGO_MANIFEST_DIR` at run time.
///
/// ```
/// // Tests run in their package's folder.
/// let src = hopper_cli::package::current_source_dir().unwrap();
/// assert!(src.join("lib.rs").exists());
/// ```
pub fn current_source_dir() -> Result<PathBuf, PackageError> {
    let cwd = std::env::current_dir().map_err(PackageError::WorkingDirectory)?;
    match package_root(&cwd) {
        Err(PackageError::NotFound { start }) => match std::env::var_os("CARGO_MANIFEST_DIR") {
            Some(run_by_cargo) => Ok(PathBuf::from(run_by_cargo).join("src")),
            None => Err(PackageError::NotFound { start }),
        },
        found => Ok(found?.join("src")),
    }
}

/// The first of `folders` holding a package's `Cargo.toml`.
fn nearest_package<'a>(
    start: &Path,
    folders: impl IntoIterator<Item = &'a Path>,
) -> Result<PathBuf, PackageError> {
    for folder in folders {
        let manifest = folder.join("Cargo.toml");
        if manifest.is_file() && is_package(&manifest)? {
            return Ok(folder.to_path_buf());
        }
    }
    Err(PackageError::NotFound {
        start: start.to_path_buf(),
    })
}

/// Whether the manifest at `path` declares a package.
fn is_package(path: &Path) -> Result<bool, PackageError> {
    let text = std::fs::read_to_string(path).map_err(|source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let manifest = toml_edit::Document::parse(text).map_err(|err| PackageError::Parse {
        path: path.to_path_buf(),
        message: err.to_string().trim_end().to_owned(),
    })?;
    Ok(manifest.as_table().contains_key("package"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A search from `start` that stops at `root`, so what lies above the
    /// temporary folder cannot change the outcome.
    fn within(root: &Path, start: &Path) -> Result<PathBuf, PackageError> {
        nearest_package(start, start.ancestors().take_while(|f| f.starts_with(root)))
    }

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_nearest_package_is_found_and_workspaces_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"app\"]\n",
        );
        write(
            &root.join("app/Cargo.toml"),
            "# the application\n[ package ]\nname = \"app\"\n",
        );
        write(&root.join("app/src/jobs/mod.rs"), "");
        // A folder with no manifest of its own.
        std::fs::create_dir_all(root.join("app/src/jobs/deep")).unwrap();

        for start in ["app", "app/src", "app/src/jobs", "app/src/jobs/deep"] {
            assert_eq!(within(root, &root.join(start)).unwrap(), root.join("app"));
        }

        // The workspace root is no package, and nothing above it (within
        // the tree) is one either.
        let err = within(root, root).unwrap_err();
        assert!(matches!(err, PackageError::NotFound { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "no Cargo.toml with a [package] table in {} or any folder above it",
                root.display()
            )
        );
        let err = within(root, &root.join("docs/guide")).unwrap_err();
        assert!(matches!(err, PackageError::NotFound { .. }), "{err}");
    }

    #[test]
    fn a_package_that_is_also_a_workspace_root_and_dotted_keys_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"tools\"]\n\n[package]\nname = \"shop\"\n",
        );
        write(&root.join("tools/Cargo.toml"), "package.name = \"tools\"\n");
        assert_eq!(within(root, &root.join("src")).unwrap(), root);
        assert_eq!(
            within(root, &root.join("tools/src")).unwrap(),
            root.join("tools")
        );
    }

    #[test]
    fn a_broken_manifest_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("app/Cargo.toml"), "[package\nname = \"app\"\n");
        let err = within(root, &root.join("app/src")).unwrap_err();
        assert!(matches!(err, PackageError::Parse { .. }), "{err}");
        assert!(
            err.to_string().starts_with(&format!(
                "{} is not valid TOML",
                root.join("app/Cargo.toml").display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_relative_start_is_taken_from_the_working_directory() {
        // Tests run in the package's folder, crates/hopper-cli.
        let root = package_root(Path::new("src")).unwrap();
        assert_eq!(root, std::path::absolute(".").unwrap());
        assert!(current_source_dir().unwrap().ends_with("hopper-cli/src"));
    }
}
