//! Lists the SQLite migrations for the crate to embed.
//!
//! With the `sqlite` feature, writes `$OUT_DIR/sqlite_migrations.rs`: one
//! entry per `migrations/sqlite/<VERSION>_<DESCRIPTION>.sql` file, oldest
//! first, each embedding its file with `include_str!`. The version and
//! description are read from the file name as the `_sqlx_migrations` table
//! has always recorded them (the description's `_`s become spaces), so a
//! database migrated by any earlier build keeps its history.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=migrations");
    if env::var_os("CARGO_FEATURE_SQLITE").is_some() {
        let dir = Path::new(&env::var("CARGO_MANIFEST_DIR")?).join("migrations/sqlite");
        let out = Path::new(&env::var("OUT_DIR")?).join("sqlite_migrations.rs");
        fs::write(out, sqlite_migrations(&dir)?)?;
    }
    Ok(())
}

/// The Rust slice expression listing every migration in `dir`.
fn sqlite_migrations(dir: &Path) -> Result<String, Box<dyn Error>> {
    let mut found: Vec<(i64, String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(format!("migration file name is not UTF-8: {}", path.display()).into());
        };
        // <VERSION>_<DESCRIPTION>.sql; anything else is not a migration.
        let Some((version, rest)) = name.split_once('_') else {
            continue;
        };
        let Some(description) = rest.strip_suffix(".sql") else {
            continue;
        };
        if description.ends_with(".up") || description.ends_with(".down") {
            return Err(format!("{name}: reversible migrations are not supported").into());
        }
        let version: i64 = version
            .parse()
            .map_err(|_| format!("{name}: expected an integer version before the first `_`"))?;
        if let Some((_, _, other)) = found.iter().find(|(v, _, _)| *v == version) {
            return Err(format!("{name} and {} share version {version}", other.display()).into());
        }
        found.push((version, description.replace('_', " "), path));
    }
    found.sort_by_key(|(version, _, _)| *version);
    let mut code = String::from("&[\n");
    for (version, description, path) in found {
        let path = path
            .to_str()
            .ok_or_else(|| format!("migration path is not UTF-8: {}", path.display()))?;
        code.push_str(&format!(
            "    Migration {{ version: {version}, description: {description:?}, sql: include_str!({path:?}) }},\n"
        ));
    }
    code.push_str("]\n");
    Ok(code)
}
