//! `tocsin plugin test --watch` as an author uses it: the real binary watching a temp project, edited
//! the way editors save (write a scratch file, rename it over the original). Each edit is made only
//! after the previous run printed its "watching for changes" line, and each run is numbered, so a
//! run too many or too few shows up as a wrong header. No sleeps: the test reads the child's output
//! line by line with an overall deadline.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::dist;

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

/// The longest the whole of one test may wait for output.
const DEADLINE: Duration = Duration::from_secs(90);

/// The plugins' deadline per call, well above the default 50 ms: a loaded machine running a debug
/// tocsin must not turn a case's result into a deadline failure (limits are not under test here).
const PLUGIN_TIMEOUT: &str = "10s";

/// The watching tocsin: killed when the test ends, passing or failing.
struct Watching {
    child: Child,
    lines: Receiver<String>,
    deadline: Instant,
    /// Everything read so far, for failure messages.
    seen: Vec<String>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watching {
    fn start(project: &Path, args: &[&str]) -> Watching {
        Watching::start_with(project, args, &[])
    }

    fn start_with(project: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Watching {
        let mut child = Command::new(BIN)
            .args(["plugin", "test"])
            .args(args)
            .args(["--no-cache", "--watch"])
            .current_dir(project)
            .env_remove("RUSTFLAGS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Watching {
            child,
            lines,
            deadline: Instant::now() + DEADLINE,
            seen: Vec::new(),
        }
    }

    /// The lines of the next run, up to and with its "watching for changes" line.
    fn next_run(&mut self) -> Vec<String> {
        let mut run = Vec::new();
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!(
                    "no \"watching for changes\" line ({e:?}); output so far:\n{}\n{}",
                    self.seen.join("\n"),
                    run.join("\n")
                ),
            };
            let done = line.starts_with("── watching for changes");
            run.push(line);
            if done {
                self.seen.extend(run.iter().cloned());
                return run;
            }
        }
    }
}

/// Saves `text` to `path` as editors do: a scratch file renamed over the original, so the watch sees
/// one change and never a half-written file.
fn save(path: &Path, text: &str) {
    let scratch = path.with_extension("tmp");
    std::fs::write(&scratch, text).unwrap();
    std::fs::rename(&scratch, path).unwrap();
}

fn has(run: &[String], text: &str) -> bool {
    run.iter().any(|l| l.contains(text))
}

fn case(expect: &str) -> String {
    format!("- name: the verdict\n  event: {{title: x}}\n  expect: {expect}\n")
}

#[test]
fn watch_reruns_on_fixture_saves_and_rebuilds_on_source_saves() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::create_dir_all(project.join("fixtures")).unwrap();
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("fixtures/cases.yaml"), case("error")).unwrap();
    // The "source" names the component the build copies into place: a cheap, deterministic build.
    let which = project.join("src/which");
    std::fs::write(&which, dist("returns-err")).unwrap();
    let build = r#"cp "$(cat src/which)" plugin.wasm"#;
    let mut w = Watching::start(
        project,
        &[
            "plugin.wasm",
            "--fixtures",
            "fixtures",
            "--build",
            build,
            "--timeout",
            PLUGIN_TIMEOUT,
        ],
    );

    // Run 1 builds (there is no plugin.wasm yet), then passes.
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 1 · start · rebuilding: {build} ──"),
        "{run:#?}"
    );
    assert!(has(&run, "built in"), "{run:#?}");
    assert!(has(&run, "ok   cases.yaml: the verdict"), "{run:#?}");
    assert!(has(&run, "1 passed, 0 failed"), "{run:#?}");

    // A fixture that now expects something else: re-run without a build, and the case fails.
    save(&project.join("fixtures/cases.yaml"), &case("pass"));
    let run = w.next_run();
    assert_eq!(
        run[0], "── run 2 · change: fixtures/cases.yaml · re-running ──",
        "{run:#?}"
    );
    assert!(!has(&run, "built in"), "{run:#?}");
    assert!(has(&run, "FAIL cases.yaml: the verdict"), "{run:#?}");
    assert!(has(&run, "0 passed, 1 failed"), "{run:#?}");

    // Back as it was: passes again.
    save(&project.join("fixtures/cases.yaml"), &case("error"));
    let run = w.next_run();
    assert_eq!(
        run[0], "── run 3 · change: fixtures/cases.yaml · re-running ──",
        "{run:#?}"
    );
    assert!(has(&run, "1 passed, 0 failed"), "{run:#?}");

    // A source change rebuilds, and the run uses the new component (echo-raw routes: no error).
    save(&which, &dist("echo-raw"));
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 4 · change: src/which · rebuilding: {build} ──"),
        "{run:#?}"
    );
    assert!(has(&run, "built in"), "{run:#?}");
    assert!(has(&run, "FAIL cases.yaml: the verdict"), "{run:#?}");
    assert!(has(&run, "decision: expected error"), "{run:#?}");

    // A failed build shows its output and waits for the next save (the build's write of
    // plugin.wasm in run 4 did not start a run: this is run 5).
    save(&which, "/nonexistent/plugin.wasm");
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 5 · change: src/which · rebuilding: {build} ──"),
        "{run:#?}"
    );
    assert!(
        has(&run, "/nonexistent/plugin.wasm"),
        "cp's own message: {run:#?}"
    );
    assert!(has(&run, "build failed (exit status: 1)"), "{run:#?}");
    assert!(has(&run, "the fixtures were not run"), "{run:#?}");
    assert!(!has(&run, "passed,"), "{run:#?}");

    // Fixed: builds and passes.
    save(&which, &dist("returns-err"));
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 6 · change: src/which · rebuilding: {build} ──"),
        "{run:#?}"
    );
    assert!(has(&run, "1 passed, 0 failed"), "{run:#?}");
}

#[test]
fn without_a_build_watch_reruns_when_the_plugin_or_fixtures_change_and_ignores_sources() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::create_dir_all(project.join("fixtures")).unwrap();
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/rule.txt"), "v1").unwrap();
    std::fs::write(project.join("fixtures/cases.yaml"), case("error")).unwrap();
    std::fs::copy(dist("returns-err"), project.join("plugin.wasm")).unwrap();
    let mut w = Watching::start(
        project,
        &[
            "plugin.wasm",
            "--fixtures",
            "fixtures",
            "--timeout",
            PLUGIN_TIMEOUT,
        ],
    );

    let run = w.next_run();
    assert!(
        run[0].starts_with("no build found in ")
            && run[0].ends_with(
                "and no --build: re-running the fixtures when they or the plugin change"
            ),
        "{run:#?}"
    );
    assert_eq!(run[1], "── run 1 · start · re-running ──", "{run:#?}");
    assert!(has(&run, "1 passed, 0 failed"), "{run:#?}");

    // A source edit has nothing to build, so it does not run; the plugin built elsewhere does.
    save(&project.join("src/rule.txt"), "v2");
    let swapped = project.join("plugin.wasm.new");
    std::fs::copy(dist("echo-raw"), &swapped).unwrap();
    std::fs::rename(&swapped, project.join("plugin.wasm")).unwrap();
    let run = w.next_run();
    assert_eq!(
        run[0], "── run 2 · change: plugin.wasm · re-running ──",
        "{run:#?}"
    );
    assert!(has(&run, "0 passed, 1 failed"), "{run:#?}");
}

#[test]
fn watch_needs_fixtures() {
    let out = Command::new(BIN)
        .args(["plugin", "test", "x.wasm", "--watch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fixtures"), "{err}");
}

#[test]
fn a_watched_chain_test_runs_again_when_its_config_changes() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::copy(dist("echo-raw"), project.join("echo.wasm")).unwrap();
    std::fs::copy(dist("returns-err"), project.join("err.wasm")).unwrap();
    let config = |component: &str| {
        format!(
            "listen: 127.0.0.1:9077\nstorage: sqlite://{db}\nplugin_cache: {cache}\n\
             sources:\n  prom: {{kind: prometheus, plugins: [p]}}\n\
             members:\n  alice: {{role: admin, token: \"a1b2c3d4e5f6a7b8c9d0-alice\"}}\n\
             plugins:\n  p: {{path: {path}, limits: {{timeout: {PLUGIN_TIMEOUT}}}}}\n",
            db = project.join("t.db").display(),
            cache = project.join("cache").display(),
            path = project.join(component).display(),
        )
    };
    std::fs::write(project.join("tocsin.yaml"), config("echo.wasm")).unwrap();
    std::fs::create_dir_all(project.join("cases")).unwrap();
    std::fs::write(
        project.join("cases/kept.yaml"),
        "name: kept\nevent: {title: x}\nexpect: kept\n",
    )
    .unwrap();
    let mut w = Watching::start(
        project,
        &[
            "--config",
            "tocsin.yaml",
            "--source",
            "prom",
            "--fixtures",
            "cases",
        ],
    );
    let run = w.next_run();
    assert!(has(&run, "── run 1 · start · re-running ──"), "{run:#?}");
    assert!(has(&run, "1 passed, 0 failed"), "{run:#?}");

    // The config now runs a plugin that fails: the case fails, naming it.
    save(&project.join("tocsin.yaml"), &config("err.wasm"));
    let run = w.next_run();
    assert_eq!(
        run[0], "── run 2 · change: tocsin.yaml · re-running ──",
        "{run:#?}"
    );
    assert!(has(&run, "plugin p failed (error)"), "{run:#?}");
    assert!(has(&run, "0 passed, 1 failed"), "{run:#?}");
}

/// The Rust template with its own build (`cargo build --release --target wasm32-wasip2 --locked`,
/// found from its Cargo.toml), in plugins/target so the SDK's dependencies scripts/build-plugins
/// compiled are reused: a rebuild takes seconds.
#[test]
fn watch_rebuilds_the_rust_template_with_cargo_on_each_save() {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target");
    assert!(
        target.exists(),
        "{} is missing: run scripts/build-plugins (scripts/test does it)",
        target.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "new", "watched"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let project = dir.path().join("watched");
    let wasm = target.join("wasm32-wasip2/release/watched.wasm");
    let mut w = Watching::start_with(
        &project,
        &[
            wasm.to_str().unwrap(),
            "--fixtures",
            "fixtures",
            "--timeout",
            PLUGIN_TIMEOUT,
        ],
        &[("CARGO_TARGET_DIR", target.as_os_str())],
    );
    let cargo = "cargo build --release --target wasm32-wasip2 --locked";
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 1 · start · rebuilding: {cargo} ──"),
        "{run:#?}"
    );
    assert!(has(&run, "4 passed, 0 failed"), "{run:#?}");

    // Another drop reason: the case that expects the old one fails.
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    save(
        &lib,
        &source.replace("\"watchdog heartbeat\"", "\"heartbeat\""),
    );
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 2 · change: src/lib.rs · rebuilding: {cargo} ──"),
        "{run:#?}"
    );
    assert!(
        has(
            &run,
            "drop reason: expected \"watchdog heartbeat\", got \"heartbeat\""
        ),
        "{run:#?}"
    );
    assert!(has(&run, "3 passed, 1 failed"), "{run:#?}");

    // A compile error: cargo's message, no run, still watching.
    save(
        &lib,
        &source.replace("\"watchdog heartbeat\"", "watchdog heartbeat"),
    );
    let run = w.next_run();
    assert!(has(&run, "error"), "{run:#?}");
    assert!(has(&run, "the fixtures were not run"), "{run:#?}");

    save(&lib, &source);
    let run = w.next_run();
    assert_eq!(
        run[0],
        format!("── run 4 · change: src/lib.rs · rebuilding: {cargo} ──"),
        "{run:#?}"
    );
    assert!(has(&run, "4 passed, 0 failed"), "{run:#?}");
}
