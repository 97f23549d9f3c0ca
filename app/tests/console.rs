//! `app console …` as a person runs it: the real binary, a real database, and
//! generated code that must build, pass clippy and pass its tests as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `app console <args>` in `dir` with the database and mail log there.
fn console(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_app"))
        .arg("console")
        .args(args)
        .current_dir(dir)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("jobs.db").display()),
        )
        .env("MAIL_LOG", dir.join("mail.log"))
        .env("RUST_LOG", "warn")
        .env_remove("HOPPER_SOURCE_DIR")
        // As a person runs it, not as cargo does: no package named for it.
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .expect("the app binary runs")
}

/// How many jobs of `job_type` the database in `dir` holds.
fn count_of_type(dir: &Path, job_type: &str) -> u64 {
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    let filter = hopper::JobFilter {
        job_type: Some(job_type.to_owned()),
        ..hopper::JobFilter::default()
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let hopper = hopper::Hopper::builder().connect(&url).await.unwrap();
        hopper.count_jobs(&filter).await.unwrap()
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn list_unknown_commands_and_failures_exit_as_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let list = console(dir.path(), &["list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(text.starts_with("Usage: app console <command>"), "{text}");
    assert!(text.contains("make:job") && text.contains("queue:work") && text.contains("db:seed"));
    assert!(
        !text.contains('\x1b'),
        "no colour codes when not on a terminal"
    );

    let typo = console(dir.path(), &["make:jbo", "EmailJob"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        stderr(&typo).contains("similar subcommand"),
        "{}",
        stderr(&typo)
    );
    assert!(stderr(&typo).contains("'make:job'"), "{}", stderr(&typo));

    let missing = console(dir.path(), &["queue:show", "99"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing).trim(), "error: no job 99");

    let help = console(dir.path(), &["queue:work", "--help"]);
    assert!(help.status.success());
    assert!(
        stdout(&help).contains("--stop-when-empty"),
        "{}",
        stdout(&help)
    );
}

#[test]
fn seed_then_work_sends_the_example_emails() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = console(dir.path(), &["db:seed", "example_jobs"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    assert!(stdout(&seeded).contains("Seeded example_jobs"));

    let worked = console(
        dir.path(),
        &["queue:work", "--stop-when-empty", "--workers", "2"],
    );
    assert!(worked.status.success(), "{}", stderr(&worked));

    // The worker also runs the schedules: the hourly heartbeat finishes
    // beside the seeded jobs if the work spans the top of an hour.
    let heartbeats = count_of_type(dir.path(), "heartbeat_task");
    let status = console(dir.path(), &["queue:status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["queues"][0]["finished"], 5 + heartbeats, "{status}");
    assert_eq!(status["finished_last_minute"], 5 + heartbeats, "{status}");
    let mail = std::fs::read_to_string(dir.path().join("mail.log")).unwrap();
    assert_eq!(mail.lines().count(), 3, "{mail}");

    let dispatched = console(
        dir.path(),
        &["queue:dispatch", "heartbeat_task", "null", "--json"],
    );
    assert!(dispatched.status.success(), "{}", stderr(&dispatched));
}

/// Without `--source`, a generator writes to the `src` folder of the package
/// around the working directory (the nearest folder at or above it whose
/// Cargo.toml is a package), wherever the console was built.
#[test]
fn generators_write_to_the_package_around_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    // A workspace manifest is not a package: generators skip it.
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"shop\"]\n",
    )
    .unwrap();
    let shop = dir.path().join("shop");
    std::fs::create_dir_all(shop.join("src/jobs")).unwrap();
    std::fs::write(
        shop.join("Cargo.toml"),
        "[package]\nname = \"shop\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        shop.join("src/jobs/mod.rs"),
        hopper_cli::generate::EMPTY_JOBS_MODULE,
    )
    .unwrap();

    let made = console(&shop.join("src/jobs"), &["make:job", "ShopLocatedJob"]);
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(shop.join("src/jobs/shop_located_job.rs").exists());
    let module = std::fs::read_to_string(shop.join("src/jobs/mod.rs")).unwrap();
    assert!(
        module.contains("registry.register(ShopLocatedJob)?;"),
        "{module}"
    );

    // From the workspace's root, which is no package, as `cargo run -p shop`
    // runs it: cargo names the package it runs.
    let mut from_root = Command::new(env!("CARGO_BIN_EXE_app"));
    from_root
        .args(["console", "make:job", "RootLocatedJob"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("HOPPER_SOURCE_DIR")
        .env("CARGO_MANIFEST_DIR", &shop);
    let made = from_root.output().unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(shop.join("src/jobs/root_located_job.rs").exists());

    // Neither in a package nor run by cargo: refused, nothing written.
    let refused = console(dir.path(), &["make:job", "NowhereJob"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no Cargo.toml with a [package] table"),
        "{}",
        stderr(&refused)
    );
}

/// The workspace root: the folder above this crate.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the starter app in its own workspace, depending on the real
/// library crates by absolute path.
fn copy_of_app(into: &Path) -> PathBuf {
    let root = workspace();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut copied = String::new();
    for line in manifest.lines() {
        if line.trim_start().starts_with("members") {
            copied.push_str("members = [\"app\"]\n");
        } else {
            let crates = format!("path = \"{}/crates/", root.display());
            copied.push_str(&line.replace("path = \"crates/", &crates));
            copied.push('\n');
        }
    }
    std::fs::write(into.join("Cargo.toml"), copied).unwrap();
    std::fs::copy(root.join("Cargo.lock"), into.join("Cargo.lock")).unwrap();
    let app = into.join("app");
    std::fs::create_dir_all(&app).unwrap();
    copy_dir(&root.join("app/src"), &app.join("src"));
    // Another package and binary name (the library keeps its own), so the
    // copy's build products never take the real app's in the shared target folder.
    let app_manifest = std::fs::read_to_string(root.join("app/Cargo.toml"))
        .unwrap()
        .replacen("name = \"app\"\n", "name = \"app-generated\"\n", 1)
        .replace(
            "[[bin]]\nname = \"app\"",
            "[lib]\nname = \"app\"\npath = \"src/lib.rs\"\n\n[[bin]]\nname = \"app-generated\"",
        );
    assert!(
        app_manifest.contains("[[bin]]\nname = \"app-generated\""),
        "the [[bin]] section moved:\n{app_manifest}"
    );
    std::fs::write(app.join("Cargo.toml"), app_manifest).unwrap();
    app
}

/// Runs cargo in `dir` with the workspace's target folder, so only the copy
/// itself is compiled.
fn cargo(dir: &Path, args: &[&str]) -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(output.status.success(), "cargo {args:?} failed:\n{text}");
    text
}

/// Every file name and text under `dir`, lowercased, one after another.
fn all_text(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        into.push_str(&entry.file_name().to_string_lossy().to_lowercase());
        into.push('\n');
        if entry.file_type().unwrap().is_dir() {
            all_text(&entry.path(), into);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            into.push_str(&String::from_utf8_lossy(&bytes).to_lowercase());
            into.push('\n');
        }
    }
}

/// A capitalised word of random letters (`Qkxmfbtwa`) that appears nowhere
/// in `src`, in any case: a type, file, module or job type name holding it
/// cannot clash with anything the application already has.
fn unused_word(src: &Path) -> String {
    use std::hash::BuildHasher as _;
    let mut text = String::new();
    all_text(src, &mut text);
    (0u64..)
        .map(|attempt| {
            let mut bits = std::hash::RandomState::new().hash_one(attempt);
            let mut word = String::from("Q");
            for _ in 0..8 {
                word.push(char::from(b'a' + (bits % 26) as u8));
                bits /= 26;
            }
            word
        })
        .find(|word| !text.contains(&word.to_lowercase()))
        .unwrap()
}

/// Generates into a copy of the application's own source tree, so the
/// generated code is checked next to everything the application has, under
/// names built around a word the tree does not hold: whatever jobs, tasks
/// and seeders the application has grown, nothing generated here clashes.
#[test]
fn generated_code_builds_passes_clippy_and_its_tests_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let app = copy_of_app(dir.path());
    let src = app.join("src");
    let src_arg = src.to_str().unwrap();
    // The check below is about generated code, not the application's own formatting.
    cargo(dir.path(), &["fmt", "-p", "app-generated"]);

    let word = unused_word(&src);
    let name = |pattern: &str| {
        let name = pattern.replace("{}", &word);
        hopper_cli::generate::TypeName::parse(&name).unwrap_or_else(|e| panic!("{e}"))
    };
    let payment = name("ProcessPayment{}Job");
    let flagged = name("A{}Job");
    let task = name("Ping{}Task");
    let seeder = name("User{}Seeder");
    for args in [
        &["make:job", payment.name(), "--source", src_arg][..],
        &[
            "make:job",
            flagged.name(),
            "--attempts",
            "1",
            "--retry-delay",
            "1500ms",
            "--queue",
            "payments",
            "--source",
            src_arg,
        ],
        &[
            "make:cron",
            task.name(),
            "--schedule",
            "@every 30s",
            "--source",
            src_arg,
        ],
        &["make:seeder", seeder.name(), "--source", src_arg],
    ] {
        let made = console(dir.path(), args);
        assert!(made.status.success(), "{args:?}: {}", stderr(&made));
    }
    assert!(src.join(format!("jobs/{}.rs", payment.snake())).exists());

    cargo(dir.path(), &["fmt", "-p", "app-generated", "--", "--check"]);
    cargo(
        dir.path(),
        &[
            "clippy",
            "--offline",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
    let tests = cargo(dir.path(), &["test", "--offline", "--lib"]);
    for test in [
        format!("jobs::{}::tests::handle_succeeds ... ok", payment.snake()),
        format!("jobs::{}::tests::settings ... ok", payment.snake()),
        format!("jobs::{}::tests::settings ... ok", flagged.snake()),
        format!("cron::{}::tests::handle_succeeds ... ok", task.snake()),
        format!("cron::{}::tests::settings ... ok", task.snake()),
        format!(
            "seeders::{}::tests::runs_on_an_empty_database ... ok",
            seeder.snake()
        ),
    ] {
        assert!(tests.contains(&test), "{test} missing from:\n{tests}");
    }
}

/// Runs `app console <args>` at a terminal (a pseudo-terminal from
/// util-linux's `script`), typing `input`.
fn console_at_terminal(dir: &Path, args: &str, input: &str) -> Output {
    use std::io::Write as _;
    let command = format!("{} console {args}", env!("CARGO_BIN_EXE_app"));
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("jobs.db").display()),
        )
        .env("RUST_LOG", "warn")
        .env_remove("HOPPER_SOURCE_DIR")
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (it provides the terminal for this test)");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

#[test]
fn make_job_asks_at_a_terminal_only_without_flags() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("jobs")).unwrap();
    std::fs::write(
        src.join("jobs/mod.rs"),
        hopper_cli::generate::EMPTY_JOBS_MODULE,
    )
    .unwrap();
    let source = format!("--source {}", src.display());

    let asked = console_at_terminal(
        dir.path(),
        &format!("make:job {source}"),
        "PingJob\n5\n1m\nmail\n",
    );
    let screen = stdout(&asked);
    assert!(asked.status.success(), "{screen}");
    for prompt in [
        "Job name",
        "Max attempts [3]",
        "Retry delay [30s]",
        "Queue [default]",
    ] {
        assert!(screen.contains(prompt), "{prompt} not asked:\n{screen}");
    }
    let job = std::fs::read_to_string(src.join("jobs/ping_job.rs")).unwrap();
    assert!(job.contains("const MAX_ATTEMPTS: u32 = 5;"), "{job}");
    assert!(job.contains("Duration::from_secs(60)"), "{job}");
    assert!(
        job.contains("const QUEUE: &'static str = \"mail\";"),
        "{job}"
    );

    // With a flag, nothing is asked: the defaults fill the rest.
    let told = console_at_terminal(
        dir.path(),
        &format!("make:job PongJob --attempts 2 {source}"),
        "",
    );
    assert!(told.status.success(), "{}", stdout(&told));
    assert!(
        !stdout(&told).contains("Retry delay ["),
        "{}",
        stdout(&told)
    );
    let job = std::fs::read_to_string(src.join("jobs/pong_job.rs")).unwrap();
    assert!(job.contains("const MAX_ATTEMPTS: u32 = 2;") && job.contains("from_secs(30)"));
}
