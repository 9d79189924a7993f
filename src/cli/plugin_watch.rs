//! `tocsin plugin test --fixtures DIR --watch`: runs the fixtures, then again after every save,
//! rebuilding the plugin first when one of its sources changed. The decisions (which build a project
//! has, which paths matter, whether a change needs a build, what to watch) are pure functions with
//! unit tests; the loop around them is the only code in tocsin that names `notify`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{Event, EventKind, EventKindMask, RecursiveMode, Watcher};

/// How long a burst of file events must go quiet before a run starts: editors write several times
/// on one save (a backup, the file, its metadata).
const QUIET: Duration = Duration::from_millis(200);
/// The longest a burst is waited on, so a file written without pause still gets runs.
const MAX_BURST: Duration = Duration::from_secs(2);

/// Folder names whose contents are never sources: build outputs, dependencies, VCS and editor state.
const IGNORED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    ".idea",
    ".vscode",
];

/// The command that builds the plugin, run in the project folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub program: String,
    pub args: Vec<String>,
    /// The command as the run's header shows it.
    pub shown: String,
}

impl Build {
    /// `--build CMD`: run through `sh -c`.
    pub fn shell(cmd: &str) -> Build {
        Build {
            program: "sh".into(),
            args: vec!["-c".into(), cmd.into()],
            shown: cmd.into(),
        }
    }

    fn words(words: &[&str]) -> Build {
        Build {
            program: words[0].into(),
            args: words[1..].iter().map(|w| w.to_string()).collect(),
            shown: words.join(" "),
        }
    }
}

/// The build of a project folder, as its template's README gives it: `Cargo.toml` → cargo for
/// wasm32-wasip2; `package.json` → `npm run build` (componentize-js); `app.py` → componentize-py
/// (from the project's `.venv` if it has one) writing `output`, the plugin's path as seen from the
/// project. `exists` tells whether a path relative to the project exists (a parameter so the rule
/// is testable).
pub fn detect_build(exists: &dyn Fn(&str) -> bool, output: Option<&str>) -> Option<Build> {
    if exists("Cargo.toml") {
        return Some(Build::words(&[
            "cargo",
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--locked",
        ]));
    }
    if exists("package.json") {
        return Some(Build::words(&["npm", "run", "build"]));
    }
    if exists("app.py") {
        let output = output?;
        let tool = if exists(".venv/bin/componentize-py") {
            ".venv/bin/componentize-py"
        } else {
            "componentize-py"
        };
        return Some(Build::words(&[
            tool,
            "-d",
            "wit",
            "-w",
            "plugin",
            "componentize",
            "app",
            "-o",
            output,
        ]));
    }
    None
}

/// What a changed path asks for. Ordered: a burst of changes does the most any of them asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Ignore,
    /// Run the fixtures again.
    Rerun,
    /// Build the plugin, then run the fixtures.
    Rebuild,
}

/// What a watch looks at. Paths are absolute.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The plugin's project: its files are the sources.
    pub project: PathBuf,
    pub fixtures: PathBuf,
    /// Files each run reads besides the fixtures (a chain's config and manifests): a change re-runs.
    pub inputs: Vec<PathBuf>,
    /// The plugin components. Without a build their change re-runs (something else built them);
    /// with one it is ignored, since the build wrote them.
    pub outputs: Vec<PathBuf>,
    /// Folders the runs themselves write to (the compile cache): never a change.
    pub written: Vec<PathBuf>,
    /// Whether there is a build command.
    pub building: bool,
}

/// Editors' backup, swap and lock files, and other files that are never sources.
fn scratch_file(name: &str) -> bool {
    name.ends_with('~')
        || name.starts_with(".#")
        || name == "4913"
        || name == ".DS_Store"
        || [".swp", ".swo", ".swx", ".tmp", ".bak"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// Whether `rel`, a path inside a watched folder, is in an ignored folder or is a scratch file.
fn ignored(rel: &Path) -> bool {
    let mut parts = rel.iter().map(|p| p.to_string_lossy()).peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if IGNORED_DIRS.contains(&part.as_ref()) || (last && scratch_file(&part)) {
            return true;
        }
    }
    false
}

impl Watched {
    /// What a change to `path` asks for.
    pub fn classify(&self, path: &Path) -> Change {
        if self.written.iter().any(|w| path.starts_with(w)) {
            return Change::Ignore;
        }
        if self.inputs.iter().any(|p| p == path) {
            return Change::Rerun;
        }
        // A component is never a source, so a build does not trigger itself.
        if path.extension().is_some_and(|e| e == "wasm") {
            let ours = self.outputs.iter().any(|p| p == path);
            return if ours && !self.building {
                Change::Rerun
            } else {
                Change::Ignore
            };
        }
        if let Ok(rel) = path.strip_prefix(&self.fixtures) {
            let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            return if yaml && !ignored(rel) {
                Change::Rerun
            } else {
                Change::Ignore
            };
        }
        match path.strip_prefix(&self.project) {
            Ok(rel) if self.building && !ignored(rel) => Change::Rebuild,
            _ => Change::Ignore,
        }
    }

    /// The folders to watch, `true` for recursively: the project itself (its files), each of its
    /// folders not ignored (`dirs`, its subfolders now), the fixtures and the parents of the inputs
    /// and outputs unless one of these already covers them. Ignored folders are not watched at all:
    /// a `target/` or `node_modules/` can hold thousands of folders.
    pub fn plan(&self, dirs: &[PathBuf]) -> Vec<(PathBuf, bool)> {
        let mut plan = vec![(self.project.clone(), false)];
        for d in dirs {
            let rel = d.strip_prefix(&self.project).unwrap_or(d);
            if !ignored(rel) {
                plan.push((d.clone(), true));
            }
        }
        let covered = |plan: &[(PathBuf, bool)], dir: &Path| {
            plan.iter()
                .any(|(p, rec)| p == dir || (*rec && dir.starts_with(p)))
        };
        if !covered(&plan, &self.fixtures) {
            plan.push((self.fixtures.clone(), true));
        }
        let files = self.inputs.iter().chain(if self.building {
            &[][..]
        } else {
            &self.outputs[..]
        });
        for f in files {
            if let Some(parent) = f.parent() {
                if !covered(&plan, parent) {
                    plan.push((parent.to_path_buf(), false));
                }
            }
        }
        plan
    }
}

/// Whether an event can mean a file changed: creating, writing, renaming, removing, closing after a
/// write. Opening and reading are not changes (each run reads the fixtures).
fn changes_files(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write)) => {
            true
        }
        EventKind::Access(_) | EventKind::Other => false,
    }
}

/// `path` as the header shows it: from the project, else as given.
fn shown(path: &Path, project: &Path) -> String {
    path.strip_prefix(project)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The changed paths as a header lists them: the first three, then how many more.
pub fn list_changes(paths: &[String]) -> String {
    let mut out = paths.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > 3 {
        out.push_str(&format!(" and {} more", paths.len() - 3));
    }
    out
}

/// An absolute path with symlinks resolved where it exists (event paths are reported that way), so
/// comparisons with event paths hold; a missing file gets its folder resolved.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(real) = abs.canonicalize() {
        return real;
    }
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map_or_else(|_| abs.clone(), |d| d.join(name)),
        _ => abs,
    }
}

/// Runs the build in `dir`; `Err` carries what it printed (stdout and stderr as interleaved).
fn run_build(build: &Build, dir: &Path) -> Result<(), String> {
    // `sh` points the build's stderr at its stdout, one pipe: the output reads as in a terminal,
    // and a single pipe cannot fill up while another is being read.
    let spawned = Command::new("sh")
        .args(["-c", r#"exec "$0" "$@" 2>&1"#])
        .arg(&build.program)
        .args(&build.args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = spawned.map_err(|e| format!("cannot run sh: {e}"))?;
    let mut out = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        // A read error only loses the build's output; its exit status still decides.
        let _ = pipe.read_to_end(&mut out);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out);
        Err(format!("{text}build failed ({status})"))
    }
}

/// How a watch is set up: what it looks at and the build, if any.
pub struct Setup {
    pub watched: Watched,
    pub build: Option<Build>,
}

/// The folders directly in `dir`.
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for the next burst of changes that matter: path → what it asks for. `None` when the
/// watcher is gone. Folders created directly in the project are added to the watch.
fn next_burst(
    rx: &Receiver<notify::Result<Event>>,
    watcher: &mut impl Watcher,
    watched: &Watched,
) -> Option<BTreeMap<PathBuf, Change>> {
    let mut changes = BTreeMap::new();
    let mut take = |event: notify::Result<Event>, changes: &mut BTreeMap<PathBuf, Change>| {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                println!("watch error: {e}");
                return;
            }
        };
        if !changes_files(&event.kind) {
            return;
        }
        for path in event.paths {
            let new_folder = matches!(event.kind, EventKind::Create(_))
                && path.parent() == Some(watched.project.as_path())
                && path.is_dir();
            if new_folder {
                let rel = path.strip_prefix(&watched.project).unwrap_or(&path);
                if !ignored(rel) {
                    let _ = watcher.watch(&path, RecursiveMode::Recursive);
                }
            }
            let change = watched.classify(&path);
            if change != Change::Ignore {
                let was = changes.entry(path).or_insert(change);
                *was = (*was).max(change);
            }
        }
    };
    while changes.is_empty() {
        let event = rx.recv().ok()?;
        take(event, &mut changes);
    }
    let deadline = Instant::now() + MAX_BURST;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(QUIET.min(left)) {
            Ok(event) => take(event, &mut changes),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
        }
        if left.is_zero() {
            break;
        }
    }
    Some(changes)
}

/// What a file looked like: its size and modification time, `None` when it does not exist.
pub type Stamp = Option<(u64, Option<std::time::SystemTime>)>;

fn stamp_of(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

/// The stamp of each path as the last run saw it. One save can reach the watch as several events
/// (a rename is reported three ways) that a busy machine may deliver apart; a path whose stamp has
/// not moved since the last run does not start another.
#[derive(Debug, Default)]
pub struct Stamps(BTreeMap<PathBuf, Stamp>);

impl Stamps {
    /// Drops from `changes` the paths whose stamp (from `stat`) is the one already recorded; records
    /// the others'.
    pub fn keep_changed(
        &mut self,
        changes: &mut BTreeMap<PathBuf, Change>,
        stat: impl Fn(&Path) -> Stamp,
    ) {
        changes.retain(|path, _| {
            let now = stat(path);
            self.0.insert(path.clone(), now) != Some(now)
        });
    }
}

/// Builds (when asked and there is a build), then runs; prints the header first and the waiting
/// line after.
fn one_run(n: u32, reason: &str, rebuild: bool, setup: &Setup, run: &mut dyn FnMut()) {
    let build = setup.build.as_ref().filter(|_| rebuild);
    match build {
        Some(b) => println!("── run {n} · {reason} · rebuilding: {} ──", b.shown),
        None => println!("── run {n} · {reason} · re-running ──"),
    }
    let built = match build {
        None => true,
        Some(b) => {
            let started = Instant::now();
            match run_build(b, &setup.watched.project) {
                Ok(()) => {
                    println!("built in {:.1} s", started.elapsed().as_secs_f64());
                    true
                }
                Err(output) => {
                    print!("{output}");
                    println!();
                    println!("the fixtures were not run: fix the build and save again");
                    false
                }
            }
        }
    };
    if built {
        run();
    }
    println!(
        "── watching for changes in {} (Ctrl-C stops) ──",
        setup.watched.project.display()
    );
}

/// Runs `run` (one pass over the fixtures, printing its results), then again after every change
/// that matters, building first when a source changed. Returns only if watching fails.
pub fn watch(setup: Setup, run: &mut dyn FnMut()) -> ExitCode {
    let watched = &setup.watched;
    if setup.build.is_none() {
        println!(
            "no build found in {} (Cargo.toml, package.json or app.py) and no --build: re-running the \
             fixtures when they or the plugin change",
            watched.project.display()
        );
    }
    let (tx, rx) = mpsc::channel();
    let config = notify::Config::default()
        .with_event_kinds(EventKindMask::CORE | EventKindMask::ACCESS_CLOSE);
    let mut watcher = match notify::RecommendedWatcher::new(tx, config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot watch files: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (dir, recursive) in watched.plan(&subfolders(&watched.project)) {
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(e) = watcher.watch(&dir, mode) {
            eprintln!("error: cannot watch {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    one_run(1, "start", true, &setup, run);
    let mut n = 1;
    let mut stamps = Stamps::default();
    while let Some(mut changes) = next_burst(&rx, &mut watcher, watched) {
        stamps.keep_changed(&mut changes, stamp_of);
        if changes.is_empty() {
            continue;
        }
        n += 1;
        let rebuild = changes.values().any(|c| *c == Change::Rebuild);
        let paths: Vec<String> = changes.keys().map(|p| shown(p, &watched.project)).collect();
        let reason = format!("change: {}", list_changes(&paths));
        one_run(n, &reason, rebuild, &setup, run);
    }
    eprintln!("error: the file watcher stopped");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists_in(files: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |p: &str| files.contains(&p)
    }

    #[test]
    fn the_build_is_the_one_each_templates_readme_gives() {
        let rust = detect_build(&exists_in(&["Cargo.toml", "src/lib.rs"]), Some("x.wasm")).unwrap();
        assert_eq!(
            rust.shown,
            "cargo build --release --target wasm32-wasip2 --locked"
        );
        assert_eq!(rust.program, "cargo");
        let js = detect_build(&exists_in(&["package.json", "plugin.js"]), Some("x.wasm")).unwrap();
        assert_eq!(js.shown, "npm run build");
        let py = detect_build(&exists_in(&["app.py"]), Some("demo.wasm")).unwrap();
        assert_eq!(
            py.shown,
            "componentize-py -d wit -w plugin componentize app -o demo.wasm"
        );
        let venv = detect_build(
            &exists_in(&["app.py", ".venv/bin/componentize-py"]),
            Some("demo.wasm"),
        )
        .unwrap();
        assert_eq!(venv.program, ".venv/bin/componentize-py");
        // Without knowing where the component goes, componentize-py cannot be run.
        assert_eq!(detect_build(&exists_in(&["app.py"]), None), None);
        assert_eq!(detect_build(&exists_in(&["README.md"]), Some("x")), None);
        let shell = Build::shell("make plugin && cp out.wasm p.wasm");
        assert_eq!(shell.program, "sh");
        assert_eq!(shell.args, ["-c", "make plugin && cp out.wasm p.wasm"]);
    }

    fn watched(building: bool) -> Watched {
        Watched {
            project: "/p".into(),
            fixtures: "/p/fixtures".into(),
            inputs: vec!["/etc/tocsin.yaml".into(), "/dist/enrich.yaml".into()],
            outputs: vec!["/p/demo.wasm".into()],
            written: vec!["/p/.cache".into()],
            building,
        }
    }

    #[test]
    fn sources_rebuild_fixtures_rerun_and_outputs_never_trigger_a_build() {
        let w = watched(true);
        let c = |p: &str| w.classify(Path::new(p));
        assert_eq!(c("/p/src/lib.rs"), Change::Rebuild);
        assert_eq!(c("/p/Cargo.toml"), Change::Rebuild);
        assert_eq!(c("/p/app.py"), Change::Rebuild);
        assert_eq!(c("/p/fixtures/basic.yaml"), Change::Rerun);
        assert_eq!(c("/p/fixtures/more/cases.yml"), Change::Rerun);
        assert_eq!(c("/etc/tocsin.yaml"), Change::Rerun);
        assert_eq!(c("/dist/enrich.yaml"), Change::Rerun);
        // The build writes the component: it must not start another build.
        assert_eq!(c("/p/demo.wasm"), Change::Ignore);
        assert_eq!(c("/p/other.wasm"), Change::Ignore);
        for ignored in [
            "/p/target/wasm32-wasip2/release/demo.wasm",
            "/p/target/release/.fingerprint/x",
            "/p/node_modules/a/index.js",
            "/p/.git/index",
            "/p/.venv/lib/site.py",
            "/p/__pycache__/app.cpython-313.pyc",
            "/p/src/lib.rs~",
            "/p/src/.lib.rs.swp",
            "/p/src/.#lib.rs",
            "/p/src/4913",
            "/p/fixtures/notes.txt",
            "/p/.cache/modules/abc",
            "/p/fixtures/.basic.yaml.swp",
            "/elsewhere/file.rs",
        ] {
            assert_eq!(c(ignored), Change::Ignore, "{ignored}");
        }
    }

    #[test]
    fn without_a_build_only_fixtures_inputs_and_the_plugin_rerun() {
        let w = watched(false);
        let c = |p: &str| w.classify(Path::new(p));
        assert_eq!(c("/p/src/lib.rs"), Change::Ignore);
        assert_eq!(c("/p/demo.wasm"), Change::Rerun);
        assert_eq!(c("/p/other.wasm"), Change::Ignore);
        assert_eq!(c("/p/fixtures/basic.yaml"), Change::Rerun);
        assert_eq!(c("/etc/tocsin.yaml"), Change::Rerun);
    }

    #[test]
    fn the_plan_skips_ignored_folders_and_covers_each_file_once() {
        let w = watched(false);
        let dirs: Vec<PathBuf> = [
            "/p/src",
            "/p/fixtures",
            "/p/target",
            "/p/node_modules",
            "/p/.git",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let plan = w.plan(&dirs);
        let want: Vec<(PathBuf, bool)> = vec![
            ("/p".into(), false),
            ("/p/src".into(), true),
            ("/p/fixtures".into(), true),
            ("/etc".into(), false),
            ("/dist".into(), false),
        ];
        assert_eq!(plan, want);
        // Fixtures outside the project are watched on their own; outputs in an ignored folder get
        // their folder watched when nothing builds them.
        let outside = Watched {
            fixtures: "/f".into(),
            inputs: vec![],
            outputs: vec!["/p/target/wasm32-wasip2/release/demo.wasm".into()],
            ..watched(false)
        };
        assert_eq!(
            outside.plan(&[]),
            vec![
                ("/p".into(), false),
                ("/f".into(), true),
                ("/p/target/wasm32-wasip2/release".into(), false),
            ]
        );
        // With a build, the outputs are not watched.
        let building = Watched {
            inputs: vec![],
            ..outside.clone()
        };
        let building = Watched {
            building: true,
            ..building
        };
        assert_eq!(building.plan(&[]).len(), 2);
    }

    #[test]
    fn reading_is_not_a_change_and_headers_list_three_paths() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
        assert!(changes_files(&EventKind::Create(CreateKind::File)));
        assert!(changes_files(&EventKind::Modify(ModifyKind::Any)));
        assert!(changes_files(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!changes_files(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes_files(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        let paths: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(list_changes(&paths[..1]), "a");
        assert_eq!(list_changes(&paths), "a, b, c and 2 more");
    }

    #[test]
    fn a_save_reported_twice_runs_once_and_each_new_save_runs() {
        use std::time::{Duration, SystemTime};
        let at = |s: u64| Some((10, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s))));
        let mut stamps = Stamps::default();
        let burst = |paths: &[&str]| -> BTreeMap<PathBuf, Change> {
            paths
                .iter()
                .map(|p| (PathBuf::from(p), Change::Rerun))
                .collect()
        };
        let mut first = burst(&["/p/a.yaml", "/p/b.yaml"]);
        stamps.keep_changed(&mut first, |_| at(1));
        assert_eq!(first.len(), 2, "never seen: both count");
        let mut again = burst(&["/p/a.yaml"]);
        stamps.keep_changed(&mut again, |_| at(1));
        assert!(again.is_empty(), "the same save reported late");
        let mut saved = burst(&["/p/a.yaml"]);
        stamps.keep_changed(&mut saved, |_| at(2));
        assert_eq!(saved.len(), 1);
        let mut removed = burst(&["/p/a.yaml"]);
        stamps.keep_changed(&mut removed, |_| None);
        assert_eq!(removed.len(), 1);
        let mut removed_again = burst(&["/p/a.yaml"]);
        stamps.keep_changed(&mut removed_again, |_| None);
        assert!(removed_again.is_empty());
    }

    #[test]
    fn a_failed_build_returns_what_it_printed_on_both_streams() {
        let dir = std::env::temp_dir();
        let err = run_build(&Build::shell("echo out; echo err >&2; exit 3"), &dir).unwrap_err();
        assert!(err.contains("out\n") && err.contains("err\n"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert_eq!(run_build(&Build::shell("true"), &dir), Ok(()));
        // A tool that is not installed fails like any build, with the shell's message.
        let missing = run_build(&Build::words(&["/nonexistent/tool"]), &dir).unwrap_err();
        assert!(
            missing.contains("/nonexistent/tool") && missing.contains("not found"),
            "{missing}"
        );
        assert!(missing.contains("exit status: 127"), "{missing}");
    }
}
