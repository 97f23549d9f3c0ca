//! Generators: write a new job, scheduled task or seeder into an
//! application's source tree and register it in its module's delimited
//! blocks, all or nothing.
//!
//! A module file (`jobs/mod.rs`, `cron/mod.rs`, `seeders/mod.rs`) holds
//! blocks like
//!
//! ```text
//! // hopper:job-modules:begin
//! pub mod email_job;
//! // hopper:job-modules:end
//! ```
//!
//! and a generator adds one line to each, keeping every block sorted the way
//! rustfmt sorts modules and imports.

mod templates;

use std::cmp::Ordering;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use heck::ToSnakeCase;

/// What can stop a generator. Nothing is written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The name is not a Rust type name a generated file can use.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file to write is already there.
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Another job already uses the type name the new one would get.
    #[error("job type {job_type:?} is already used in {}; choose another name", path.display())]
    DuplicateType {
        /// The type name.
        job_type: String,
        /// The file that uses it.
        path: PathBuf,
    },
    /// The module file to register in is missing.
    #[error("{} not found: is {} the application's src folder? (set it with --source)", path.display(), root.display())]
    MissingModule {
        /// The module file.
        path: PathBuf,
        /// The source folder searched.
        root: PathBuf,
    },
    /// The module file has no block to register in.
    #[error("{} has no `// hopper:{block}:begin` … `// hopper:{block}:end` block to register in", path.display())]
    MissingBlock {
        /// The module file.
        path: PathBuf,
        /// The block's name.
        block: String,
    },
    /// A schedule expression the scheduler refuses.
    #[error("invalid schedule {expression:?}: {reason}")]
    InvalidSchedule {
        /// The expression given.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// A queue name that cannot be used.
    #[error("invalid queue name {0:?}: use letters, digits, '_', '-', '.' or ':'")]
    InvalidQueue(String),
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError {
    let path = path.to_path_buf();
    move |source| GenerateError::Io {
        action,
        path,
        source,
    }
}

/// Names Rust reserves, which cannot be module names.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield", "tests",
];

/// Names the generated files and module files already use.
const TAKEN: &[&str] = &[
    "Self",
    "Job",
    "JobContext",
    "JobError",
    "JobResult",
    "Registry",
    "RegistryError",
    "Duration",
    "Serialize",
    "Deserialize",
    "Seeder",
    "SeedContext",
    "SeedError",
    "Box",
    "Vec",
    "String",
    "Option",
    "Result",
    "Some",
    "None",
    "Ok",
    "Err",
];

/// A checked UpperCamelCase type name and the snake-case name of its file.
///
/// ```
/// use hopper_cli::generate::TypeName;
/// let name = TypeName::parse("ProcessPaymentJob").unwrap();
/// assert_eq!(name.snake(), "process_payment_job");
/// assert!(TypeName::parse("process-payment").is_err());
/// assert!(TypeName::parse("Type").is_err()); // its file would be `type.rs`
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeName {
    name: String,
    snake: String,
}

impl TypeName {
    /// Checks `input`: an UpperCamelCase Rust identifier (letters and
    /// digits, starting with a capital), not all capitals, whose snake-case
    /// form is not a Rust keyword.
    ///
    /// ```
    /// let err = hopper_cli::generate::TypeName::parse("emailJob").unwrap_err();
    /// assert!(err.to_string().contains("uppercase letter"), "{err}");
    /// ```
    pub fn parse(input: &str) -> Result<Self, GenerateError> {
        let invalid = |reason: &str| GenerateError::InvalidName {
            name: input.to_owned(),
            reason: reason.to_owned(),
        };
        let Some(first) = input.chars().next() else {
            return Err(invalid("a name is needed, like ProcessPaymentJob"));
        };
        if !first.is_ascii_uppercase() {
            return Err(invalid(
                "a Rust type name starts with an uppercase letter (UpperCamelCase, like ProcessPaymentJob)",
            ));
        }
        if let Some(bad) = input.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(invalid(&format!(
                "{bad:?} is not allowed: use only ASCII letters and digits (UpperCamelCase, like ProcessPaymentJob)"
            )));
        }
        if !input.chars().any(|c| c.is_ascii_lowercase()) {
            return Err(invalid(
                "all capitals is not UpperCamelCase: write PdfJob, not PDFJOB",
            ));
        }
        if TAKEN.contains(&input) {
            return Err(invalid(
                "the generated code already uses this name; choose a more specific one",
            ));
        }
        let snake = input.to_snake_case();
        if KEYWORDS.contains(&snake.as_str()) {
            return Err(invalid(&format!(
                "its file would be `{snake}.rs`, and `{snake}` is reserved in Rust"
            )));
        }
        Ok(Self {
            name: input.to_owned(),
            snake,
        })
    }

    /// The type name, e.g. `ProcessPaymentJob`.
    ///
    /// ```
    /// assert_eq!(hopper_cli::generate::TypeName::parse("PingTask").unwrap().name(), "PingTask");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The snake-case name of its file and job type, e.g. `process_payment_job`.
    ///
    /// ```
    /// assert_eq!(hopper_cli::generate::TypeName::parse("PingTask").unwrap().snake(), "ping_task");
    /// ```
    pub fn snake(&self) -> &str {
        &self.snake
    }

    /// The name of a job's payload struct: `EmailJob` → `EmailPayload`.
    ///
    /// ```
    /// let name = hopper_cli::generate::TypeName::parse("EmailJob").unwrap();
    /// assert_eq!(name.payload(), "EmailPayload");
    /// ```
    pub fn payload(&self) -> String {
        let stem = self
            .name
            .strip_suffix("Job")
            .filter(|stem| !stem.is_empty())
            .unwrap_or(&self.name);
        format!("{stem}Payload")
    }
}

/// Checks a queue name for use in generated code.
///
/// ```
/// assert!(hopper_cli::generate::check_queue("mail").is_ok());
/// assert!(hopper_cli::generate::check_queue("bad\"queue").is_err());
/// ```
pub fn check_queue(queue: &str) -> Result<(), GenerateError> {
    let ok = !queue.is_empty()
        && queue
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(GenerateError::InvalidQueue(queue.to_owned()))
    }
}

/// Checks a schedule expression with the scheduler's own parser
/// ([`hopper::schedule::check_expression`], which [`Schedule::new`] uses),
/// so a generated task runs on anything the scheduler accepts; the error
/// carries the parser's message.
///
/// [`Schedule::new`]: hopper::schedule::Schedule::new
///
/// ```
/// use hopper_cli::generate::check_schedule;
/// assert!(check_schedule("*/5 * * * *").is_ok());
/// assert!(check_schedule("0 0 * * * *").is_ok());
/// assert!(check_schedule("@every 30s").is_ok());
/// let err = check_schedule("61 * * * *").unwrap_err();
/// assert!(err.to_string().starts_with("invalid schedule \"61 * * * *\": "), "{err}");
/// assert!(check_schedule("0 0 30 2 *").is_err()); // never fires
/// ```
pub fn check_schedule(expression: &str) -> Result<(), GenerateError> {
    hopper::schedule::check_expression(expression).map_err(|err| GenerateError::InvalidSchedule {
        expression: err.expression,
        reason: err.message,
    })
}

/// What `make:job` writes.
///
/// ```
/// let spec = hopper_cli::generate::JobSpec::new(hopper_cli::generate::TypeName::parse("PingJob").unwrap());
/// assert_eq!(spec.max_attempts, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The job's type name.
    pub name: TypeName,
    /// The queue it runs on.
    pub queue: String,
    /// How many times it runs before failing for good.
    pub max_attempts: u32,
    /// How long it waits before running again after a failed attempt.
    pub retry_delay: Duration,
}

impl JobSpec {
    /// A job on the `default` queue with 3 attempts, 30 seconds apart.
    ///
    /// ```
    /// let spec = hopper_cli::generate::JobSpec::new(hopper_cli::generate::TypeName::parse("PingJob").unwrap());
    /// assert_eq!(spec.queue, "default");
    /// ```
    pub fn new(name: TypeName) -> Self {
        Self {
            name,
            queue: hopper::DEFAULT_QUEUE.to_owned(),
            max_attempts: 3,
            retry_delay: Duration::from_secs(30),
        }
    }
}

/// The files a generator wrote.
///
/// ```
/// let g = hopper_cli::generate::Generated { created: "src/jobs/a.rs".into(), updated: vec![] , job_type: None };
/// assert!(g.updated.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The new file.
    pub created: PathBuf,
    /// The module files it was registered in (unchanged ones left out).
    pub updated: Vec<PathBuf>,
    /// The job type name, for jobs and scheduled tasks.
    pub job_type: Option<String>,
}

/// An application's source folder (the one holding `lib.rs`), where
/// generators write.
///
/// ```
/// let tree = hopper_cli::generate::SourceTree::new("app/src");
/// assert!(tree.root().ends_with("src"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceTree {
    root: PathBuf,
}

impl SourceTree {
    /// The source folder at `root`.
    ///
    /// ```
    /// let tree = hopper_cli::generate::SourceTree::new("/tmp/app/src");
    /// # let _ = tree;
    /// ```
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    ///
    /// ```
    /// assert_eq!(hopper_cli::generate::SourceTree::new("src").root(), std::path::Path::new("src"));
    /// ```
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `jobs/<snake>.rs` for `spec` and registers it in `jobs/mod.rs`.
    /// `console` is how the generated docs name the console (`app console`).
    ///
    /// ```
    /// use hopper_cli::generate::{JobSpec, SourceTree, TypeName};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::create_dir(dir.path().join("jobs")).unwrap();
    /// std::fs::write(dir.path().join("jobs/mod.rs"), hopper_cli::generate::EMPTY_JOBS_MODULE).unwrap();
    /// let tree = SourceTree::new(dir.path());
    /// let spec = JobSpec::new(TypeName::parse("ProcessPaymentJob").unwrap());
    /// let generated = tree.make_job(&spec, false, "app console").unwrap();
    /// assert!(generated.created.ends_with("jobs/process_payment_job.rs"));
    /// let module = std::fs::read_to_string(dir.path().join("jobs/mod.rs")).unwrap();
    /// assert!(module.contains("registry.register(ProcessPaymentJob)?;"));
    /// // Generating it again is refused.
    /// assert!(tree.make_job(&spec, false, "app console").is_err());
    /// ```
    pub fn make_job(
        &self,
        spec: &JobSpec,
        force: bool,
        console: &str,
    ) -> Result<Generated, GenerateError> {
        check_queue(&spec.queue)?;
        let name = &spec.name;
        let file = self.root.join("jobs").join(format!("{}.rs", name.snake()));
        let module = self.root.join("jobs").join("mod.rs");
        self.check_free_type(name.snake(), &file)?;
        let text = templates::job(spec, console);
        let entries = [
            ("job-modules", format!("pub mod {};", name.snake())),
            (
                "job-exports",
                format!("pub use {}::{};", name.snake(), name.name()),
            ),
            (
                "job-registrations",
                format!("registry.register({})?;", name.name()),
            ),
        ];
        self.write(
            &file,
            text,
            force,
            &module,
            &entries,
            Some(name.snake().to_owned()),
        )
    }

    /// Writes `cron/<snake>.rs`, a job type run on `schedule`, and registers
    /// it in `cron/mod.rs`. `schedule` is checked with the scheduler's own
    /// parser (see [`check_schedule`]).
    ///
    /// ```
    /// use hopper_cli::generate::{SourceTree, TypeName};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::create_dir(dir.path().join("cron")).unwrap();
    /// std::fs::write(dir.path().join("cron/mod.rs"), hopper_cli::generate::EMPTY_CRON_MODULE).unwrap();
    /// let tree = SourceTree::new(dir.path());
    /// let name = TypeName::parse("PingTask").unwrap();
    /// tree.make_cron(&name, "*/5 * * * *", false).unwrap();
    /// let task = std::fs::read_to_string(dir.path().join("cron/ping_task.rs")).unwrap();
    /// assert!(task.contains(r#"pub const SCHEDULE: &str = "*/5 * * * *";"#));
    /// tree.make_cron(&name, "@every 30s", true).unwrap();
    /// assert!(tree.make_cron(&name, "every tuesday", true).is_err());
    /// ```
    pub fn make_cron(
        &self,
        name: &TypeName,
        schedule: &str,
        force: bool,
    ) -> Result<Generated, GenerateError> {
        check_schedule(schedule)?;
        let schedule = schedule.trim();
        let file = self.root.join("cron").join(format!("{}.rs", name.snake()));
        let module = self.root.join("cron").join("mod.rs");
        self.check_free_type(name.snake(), &file)?;
        let text = templates::cron(name, schedule);
        let entries = [
            ("cron-modules", format!("pub mod {};", name.snake())),
            (
                "cron-exports",
                format!("pub use {}::{};", name.snake(), name.name()),
            ),
            // A call rustfmt keeps on one line however long the name is.
            ("cron-schedules", format!("{}::schedule(),", name.snake())),
            (
                "cron-registrations",
                format!("registry.register({})?;", name.name()),
            ),
        ];
        self.write(
            &file,
            text,
            force,
            &module,
            &entries,
            Some(name.snake().to_owned()),
        )
    }

    /// Writes `seeders/<snake>.rs` and registers it in `seeders/mod.rs`.
    ///
    /// ```
    /// use hopper_cli::generate::{SourceTree, TypeName};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::create_dir(dir.path().join("seeders")).unwrap();
    /// std::fs::write(dir.path().join("seeders/mod.rs"), hopper_cli::generate::EMPTY_SEEDERS_MODULE).unwrap();
    /// let tree = SourceTree::new(dir.path());
    /// tree.make_seeder(&TypeName::parse("UserSeeder").unwrap(), false).unwrap();
    /// let module = std::fs::read_to_string(dir.path().join("seeders/mod.rs")).unwrap();
    /// assert!(module.contains("Box::new(UserSeeder),"));
    /// ```
    pub fn make_seeder(&self, name: &TypeName, force: bool) -> Result<Generated, GenerateError> {
        let file = self
            .root
            .join("seeders")
            .join(format!("{}.rs", name.snake()));
        let module = self.root.join("seeders").join("mod.rs");
        let text = templates::seeder(name);
        let entries = [
            ("seeder-modules", format!("pub mod {};", name.snake())),
            (
                "seeder-exports",
                format!("pub use {}::{};", name.snake(), name.name()),
            ),
            ("seeder-list", format!("Box::new({}),", name.name())),
        ];
        self.write(&file, text, force, &module, &entries, None)
    }

    /// Refuses a job type name another job or task in the tree already uses
    /// (`file`, about to be overwritten, aside).
    fn check_free_type(&self, job_type: &str, file: &Path) -> Result<(), GenerateError> {
        let patterns = [
            format!("TYPE: &'static str = \"{job_type}\";"),
            format!("TYPE: &str = \"{job_type}\";"),
        ];
        for folder in ["jobs", "cron"] {
            let Ok(entries) = std::fs::read_dir(self.root.join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path == file || path.extension().is_none_or(|ext| ext != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if patterns.iter().any(|p| text.contains(p.as_str())) {
                    return Err(GenerateError::DuplicateType {
                        job_type: job_type.to_owned(),
                        path,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes `file` and the updated `module`, or neither.
    fn write(
        &self,
        file: &Path,
        text: String,
        force: bool,
        module: &Path,
        entries: &[(&str, String)],
        job_type: Option<String>,
    ) -> Result<Generated, GenerateError> {
        if !module.exists() {
            return Err(GenerateError::MissingModule {
                path: module.to_path_buf(),
                root: self.root.clone(),
            });
        }
        if file.exists() && !force {
            return Err(GenerateError::Exists {
                path: file.to_path_buf(),
            });
        }
        let original = std::fs::read_to_string(module).map_err(io_error("read", module))?;
        let mut updated = original.clone();
        for (block, entry) in entries {
            updated = add_to_block(&updated, block, entry).ok_or_else(|| {
                GenerateError::MissingBlock {
                    path: module.to_path_buf(),
                    block: (*block).to_owned(),
                }
            })?;
        }
        let previous = if file.exists() {
            Some(std::fs::read(file).map_err(io_error("read", file))?)
        } else {
            None
        };
        write_atomically(file, &rustfmt(&text), !force)?;
        if updated != original {
            if let Err(err) = write_atomically(module, &updated, false) {
                // Put the new file back the way it was.
                let _ = match previous {
                    Some(bytes) => std::fs::write(file, bytes),
                    None => std::fs::remove_file(file),
                };
                return Err(err);
            }
        }
        Ok(Generated {
            created: file.to_path_buf(),
            updated: if updated == original {
                Vec::new()
            } else {
                vec![module.to_path_buf()]
            },
            job_type,
        })
    }
}

/// A `jobs/mod.rs` with empty blocks, for a new application or a test.
pub const EMPTY_JOBS_MODULE: &str = templates::EMPTY_JOBS_MODULE;
/// A `cron/mod.rs` with empty blocks.
pub const EMPTY_CRON_MODULE: &str = templates::EMPTY_CRON_MODULE;
/// A `seeders/mod.rs` with empty blocks.
pub const EMPTY_SEEDERS_MODULE: &str = templates::EMPTY_SEEDERS_MODULE;

/// Writes `text` to `path` through a temporary file in the same folder, so
/// the file is either whole or untouched. With `new_only`, refuses to
/// replace an existing file.
fn write_atomically(path: &Path, text: &str, new_only: bool) -> Result<(), GenerateError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(folder).map_err(io_error("write", path))?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.flush())
        .map_err(io_error("write", path))?;
    if new_only {
        temp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                GenerateError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                GenerateError::Io {
                    action: "write",
                    path: path.to_path_buf(),
                    source: e.error,
                }
            }
        })?;
    } else {
        temp.persist(path).map_err(|e| GenerateError::Io {
            action: "write",
            path: path.to_path_buf(),
            source: e.error,
        })?;
    }
    Ok(())
}

/// `text` formatted by rustfmt when it is installed; as it is otherwise.
fn rustfmt(text: &str) -> String {
    let program = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let child = std::process::Command::new(program)
        .args(["--edition", "2024", "--emit", "stdout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return text.to_owned();
    };
    if let Some(mut stdin) = child.stdin.take() {
        if stdin.write_all(text.as_bytes()).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return text.to_owned();
        }
    }
    match child.wait_with_output() {
        Ok(output) if output.status.success() && !output.stdout.is_empty() => {
            String::from_utf8(output.stdout).unwrap_or_else(|_| text.to_owned())
        }
        _ => text.to_owned(),
    }
}

/// `text` with `entry` added to the block `block`, sorted; unchanged if the
/// entry is there already; `None` if there is no such block.
///
/// ```
/// let text = "// hopper:m:begin\npub mod b;\n// hopper:m:end\n";
/// let out = hopper_cli::generate::add_to_block(text, "m", "pub mod a;").unwrap();
/// assert_eq!(out, "// hopper:m:begin\npub mod a;\npub mod b;\n// hopper:m:end\n");
/// assert_eq!(hopper_cli::generate::add_to_block(&out, "m", "pub mod a;").unwrap(), out);
/// assert!(hopper_cli::generate::add_to_block(text, "other", "x").is_none());
/// ```
pub fn add_to_block(text: &str, block: &str, entry: &str) -> Option<String> {
    let begin_marker = format!("// hopper:{block}:begin");
    let end_marker = format!("// hopper:{block}:end");
    let lines: Vec<&str> = text.lines().collect();
    let begin = lines.iter().position(|l| l.trim() == begin_marker)?;
    let end = begin + lines[begin..].iter().position(|l| l.trim() == end_marker)?;
    let indent: String = lines[begin]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let mut entries: Vec<String> = lines[begin + 1..end]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (*l).to_owned())
        .collect();
    if entries.iter().any(|l| l.trim() == entry) {
        return Some(text.to_owned());
    }
    entries.push(format!("{indent}{entry}"));
    entries.sort_by(|a, b| compare_entries(a.trim(), b.trim()));
    let mut out: Vec<String> = lines[..=begin].iter().map(|l| (*l).to_owned()).collect();
    out.extend(entries);
    out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Some(joined)
}

/// Orders block lines as rustfmt's 2024 style orders `mod` and `use`
/// items: by path, segment by segment, each segment in version order.
fn compare_entries(a: &str, b: &str) -> Ordering {
    fn key(line: &str) -> Vec<&str> {
        let item = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub use "))
            .map(|rest| rest.trim_end_matches(';'));
        match item {
            Some(path) => path.split("::").collect(),
            None => vec![line],
        }
    }
    let (a, b) = (key(a), key(b));
    a.iter()
        .zip(&b)
        .map(|(a, b)| version_order(a, b))
        .find(|order| order.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// The 2024 style's version order of two names: runs of digits compare as
/// numbers, `_` comes before every other character, and the rest compare
/// as characters (`email_job` < `email2_job`, `a9` < `a10` < `ab`).
fn version_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.chars().peekable(), b.chars().peekable());
    loop {
        let (x, y) = match (a.peek().copied(), b.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => (x, y),
        };
        let order = if x.is_ascii_digit() && y.is_ascii_digit() {
            let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
                let mut digits = String::new();
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    digits.push(digit);
                }
                digits.trim_start_matches('0').to_owned()
            };
            let (m, n) = (number(&mut a), number(&mut b));
            m.len().cmp(&n.len()).then_with(|| m.cmp(&n))
        } else {
            a.next();
            b.next();
            match (x == '_', y == '_') {
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => x.cmp(&y),
            }
        };
        if order.is_ne() {
            return order;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            TypeName::parse("HTMLParserJob").unwrap().snake(),
            "html_parser_job"
        );
        assert_eq!(TypeName::parse("Job2").unwrap().snake(), "job2");
        for bad in [
            "", "1Job", "my_job", "My_Job", "Émail", "JOB", "Job", "Mod", "Self",
        ] {
            assert!(TypeName::parse(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(TypeName::parse("Job2").unwrap().payload(), "Job2Payload");
        assert_eq!(
            TypeName::parse("PingTask").unwrap().payload(),
            "PingTaskPayload"
        );
    }

    #[test]
    fn blocks_sort_like_rustfmt() {
        let text =
            "x\n    // hopper:m:begin\n    pub mod a_b;\n    pub mod ab;\n    // hopper:m:end\ny";
        let out = add_to_block(text, "m", "pub mod a;").unwrap();
        let out = add_to_block(&out, "m", "pub mod a9;").unwrap();
        let out = add_to_block(&out, "m", "pub mod a10;").unwrap();
        assert_eq!(
            out,
            "x\n    // hopper:m:begin\n    pub mod a;\n    pub mod a_b;\n    pub mod a9;\n    pub mod a10;\n    pub mod ab;\n    // hopper:m:end\ny"
        );
        // As rustfmt 2024 orders them: `_` first, numbers as numbers.
        let jobs = "// hopper:j:begin\npub mod email_job;\n// hopper:j:end\n";
        let out = add_to_block(jobs, "j", "pub mod email2_job;").unwrap();
        assert!(out.find("email_job").unwrap() < out.find("email2_job").unwrap());
        let uses = "// hopper:u:begin\npub use ab::Ab;\n// hopper:u:end\n";
        let out = add_to_block(uses, "u", "pub use a::A;").unwrap();
        assert!(out.find("a::A").unwrap() < out.find("ab::Ab").unwrap());
    }

    #[test]
    fn empty_blocks_take_an_entry() {
        let out = add_to_block(EMPTY_JOBS_MODULE, "job-modules", "pub mod x_job;").unwrap();
        assert!(
            out.contains("// hopper:job-modules:begin\npub mod x_job;\n// hopper:job-modules:end")
        );
    }
}
