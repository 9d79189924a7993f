//! `tocsin plugin ...`: the plugin author's tools (`test`, `test --watch` and `new`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{ByteSize, HumanDuration};
use crate::plugin::fixtures::{self, Case};
use crate::plugin::profile::Profile;
use crate::plugin::Limits;

use crate::config::plugin_manifest::manifest_path;

use super::plugin_lang::{self, Lang};
use super::plugin_test::{self, TestOptions};
use super::plugin_watch;

/// Files of a new plugin project: the template, then the SDK and the WIT, embedded at build time so
/// `tocsin plugin new` works anywhere, from an installed binary.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../plugins/template/Cargo.toml"),
    ),
    (
        "Cargo.lock",
        include_str!("../../plugins/template/Cargo.lock"),
    ),
    (
        "README.md",
        include_str!("../../plugins/template/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../plugins/template/.gitignore"),
    ),
    (
        "src/lib.rs",
        include_str!("../../plugins/template/src/lib.rs"),
    ),
    (
        "fixtures/basic.yaml",
        include_str!("../../plugins/template/fixtures/basic.yaml"),
    ),
    plugin_lang::MANIFEST,
    (
        "sdk/Cargo.toml",
        include_str!("../../plugins/sdk/Cargo.toml"),
    ),
    (
        "sdk/src/lib.rs",
        include_str!("../../plugins/sdk/src/lib.rs"),
    ),
    (
        "sdk/src/decision.rs",
        include_str!("../../plugins/sdk/src/decision.rs"),
    ),
    (
        "sdk/src/duration.rs",
        include_str!("../../plugins/sdk/src/duration.rs"),
    ),
    (
        "sdk/src/event.rs",
        include_str!("../../plugins/sdk/src/event.rs"),
    ),
    (
        "sdk/src/host.rs",
        include_str!("../../plugins/sdk/src/host.rs"),
    ),
    (
        "sdk/src/matcher.rs",
        include_str!("../../plugins/sdk/src/matcher.rs"),
    ),
    (
        "sdk/src/regex.rs",
        include_str!("../../plugins/sdk/src/regex.rs"),
    ),
    (
        "sdk/wit/tocsin-plugin.wit",
        include_str!("../../plugins/wit/tocsin-plugin.wit"),
    ),
];

// `Test` carries every flag of `plugin test` and `New` two: the command is parsed once per process, so
// the size difference costs nothing worth boxing clap's fields for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Run a plugin on one event (`--event`) or on a folder of YAML cases (`--fixtures`, and with
    /// `--watch` again on every save).
    Test {
        /// The plugin component (`.wasm`); not with `--config`, which tests the source's whole chain.
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        plugin: Option<PathBuf>,
        /// A JSON (or YAML) event, or a case with `event`, `config`, `tables`, `kv`, `now_ms`.
        #[arg(long, conflicts_with = "fixtures")]
        event: Option<PathBuf>,
        /// A folder of `*.yaml` cases; prints a diff for each mismatch and exits 1 if any fails.
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Fuel per call (default 20000000).
        #[arg(long)]
        fuel: Option<u64>,
        /// Wall-clock limit per call (default 50ms).
        #[arg(long)]
        timeout: Option<HumanDuration>,
        /// Memory limit (default 16MiB, at most 256MiB as in the config).
        #[arg(long)]
        memory: Option<ByteSize>,
        /// Test a source's whole chain as the server runs it from this config file (with `--source`
        /// and `--fixtures`: chain cases, see plugins/README.md).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The source whose chain `--config` tests, or whose alerts `--replay` reads.
        #[arg(long)]
        source: Option<String>,
        /// Replay what the server received (its base URL, with TOCSIN_TOKEN, or a saved
        /// `/api/replay` answer) through the plugin, or the chain with `--config`; shows what would change.
        #[arg(long, conflicts_with_all = ["event", "fixtures"])]
        replay: Option<String>,
        /// How far back `--replay` reads from a server (default 24h).
        #[arg(long, requires = "replay", default_value = "24h")]
        since: String,
        /// With `--fixtures`: after the run, watch the project's files and run again on every save,
        /// rebuilding the plugin first when a source changed (Ctrl-C stops).
        #[arg(long, requires = "fixtures")]
        watch: bool,
        /// The project `--watch` watches and builds (default: the current directory).
        #[arg(long, requires = "watch", value_name = "DIR")]
        project: Option<PathBuf>,
        /// How `--watch` builds the plugin, run with `sh -c` in the project, instead of the build
        /// found there (Cargo.toml: cargo; package.json: npm run build; app.py: componentize-py).
        #[arg(long, requires = "watch", value_name = "CMD")]
        build: Option<String>,
        #[command(flatten)]
        options: TestOptions,
    },
    /// Create `./NAME`, a plugin project in Rust (`--lang` for Python or JavaScript) that passes its
    /// own fixtures once built; it prints how to build it.
    New {
        /// The plugin's name: the new directory and the crate's name (lowercase letters, digits,
        /// `-` and `_`, starting with a letter; the component is NAME with `-` as `_`, `.wasm`).
        name: String,
        /// The language of the project: rust (with the SDK), python (componentize-py) or js
        /// (componentize-js).
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
    },
}

pub fn run(cmd: PluginCommand) -> ExitCode {
    match cmd {
        PluginCommand::New { name, lang } => new(&name, lang),
        PluginCommand::Test {
            watch: true,
            fixtures: Some(dir),
            plugin,
            config,
            source,
            fuel,
            timeout,
            memory,
            options,
            project,
            build,
            ..
        } => {
            let project = project.unwrap_or_else(|| PathBuf::from("."));
            match (plugin, config, source) {
                (Some(plugin), None, _) => {
                    let limits = match plugin_test::limits(fuel, timeout, memory) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(2);
                        }
                    };
                    let cache = plugin_test::cache_dir(&options, |k| std::env::var(k).ok());
                    let files = WatchFiles {
                        inputs: Vec::new(),
                        components: vec![plugin.clone()],
                        cache,
                    };
                    let setup = watch_setup(&project, &dir, files, build);
                    plugin_watch::watch(setup, &mut || {
                        plugin_test::run_fixtures(&plugin, &dir, limits, &options);
                    })
                }
                (None, Some(config), Some(source)) => {
                    let (components, cache) = super::plugin_chain::chain_files(&config, &source);
                    let mut inputs = vec![config.clone()];
                    inputs.extend(components.iter().map(|c| manifest_path(c)));
                    let files = WatchFiles {
                        inputs,
                        components,
                        cache,
                    };
                    let setup = watch_setup(&project, &dir, files, build);
                    plugin_watch::watch(setup, &mut || {
                        super::plugin_chain::test_chain(&config, &source, &dir);
                    })
                }
                _ => {
                    eprintln!("give a plugin, or --config FILE --source S, with --fixtures DIR");
                    ExitCode::from(2)
                }
            }
        }
        PluginCommand::Test {
            replay: Some(from),
            plugin,
            config,
            source,
            since,
            ..
        } => super::replay::run(super::replay::Replay {
            from,
            plugin,
            config,
            source,
            since,
        }),
        PluginCommand::Test {
            config: Some(config),
            source: Some(source),
            fixtures: Some(dir),
            ..
        } => super::plugin_chain::test_chain(&config, &source, &dir),
        PluginCommand::Test {
            plugin: Some(plugin),
            event,
            fixtures,
            fuel,
            timeout,
            memory,
            options,
            ..
        } => {
            let limits = match plugin_test::limits(fuel, timeout, memory) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match (event, fixtures) {
                (Some(e), None) => test_event(&plugin, &e, limits, &options),
                (None, Some(dir)) => plugin_test::run_fixtures(&plugin, &dir, limits, &options),
                _ => {
                    eprintln!("give --event FILE or --fixtures DIR");
                    ExitCode::from(2)
                }
            }
        }
        PluginCommand::Test { .. } => {
            eprintln!("give a plugin, or --config FILE --source S with --fixtures DIR or --replay");
            ExitCode::from(2)
        }
    }
}

/// The files a watched run reads besides the fixtures, and the compile cache it writes.
struct WatchFiles {
    /// Re-run when they change: a chain's config and manifests.
    inputs: Vec<PathBuf>,
    /// The plugin components.
    components: Vec<PathBuf>,
    cache: Option<PathBuf>,
}

/// What `--watch` watches and how it builds: `--build`, else the project's own build (a Python
/// project's component is the first of the components inside it).
fn watch_setup(
    project: &Path,
    fixtures: &Path,
    files: WatchFiles,
    build: Option<String>,
) -> plugin_watch::Setup {
    let project = plugin_watch::resolve(project);
    let outputs: Vec<PathBuf> = files
        .components
        .iter()
        .map(|c| plugin_watch::resolve(c))
        .collect();
    let build = build
        .map(|cmd| plugin_watch::Build::shell(&cmd))
        .or_else(|| {
            let output = outputs
                .iter()
                .find_map(|o| o.strip_prefix(&project).ok())
                .map(|o| o.display().to_string());
            plugin_watch::detect_build(&|p| project.join(p).exists(), output.as_deref())
        });
    plugin_watch::Setup {
        watched: plugin_watch::Watched {
            fixtures: plugin_watch::resolve(fixtures),
            inputs: files
                .inputs
                .iter()
                .map(|i| plugin_watch::resolve(i))
                .collect(),
            // The runs write there: it must not look like a saved source.
            written: files
                .cache
                .iter()
                .map(|c| plugin_watch::resolve(c))
                .collect(),
            outputs,
            building: build.is_some(),
            project,
        },
        build,
    }
}

/// Runs one event and prints the report; exit 1 when the plugin failed (the report still says how).
/// With `--profile`, runs it once more profiled and prints where the fuel went after the report.
fn test_event(plugin: &Path, event: &Path, limits: Limits, options: &TestOptions) -> ExitCode {
    type Profiled = Option<(Profile, Option<String>)>;
    let run = || -> Result<(serde_json::Value, bool, Profiled), String> {
        let compiled = plugin_test::compile(plugin, options)?;
        let text =
            std::fs::read_to_string(event).map_err(|e| format!("{}: {e}", event.display()))?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", event.display()))?;
        // An /api/dropped entry or a stored alert becomes an event.
        let value = super::event_input::normalise(value)
            .map_err(|e| format!("{}: {e}", event.display()))?;
        // Either a whole case or just its event.
        let case: Case = if value.get("event").is_some() {
            serde_yaml::from_value(value)
        } else {
            serde_yaml::from_value(value).map(|event| Case {
                name: String::new(),
                event,
                config: Default::default(),
                tables: Default::default(),
                kv: Default::default(),
                now_ms: None,
                expect: None,
                expect_kv: None,
            })
        }
        .map_err(|e| format!("{}: {e}", event.display()))?;
        let mut case = case;
        let refused = plugin_test::fit(&mut case, plugin_test::manifest(plugin, options)?.as_ref());
        for note in refused {
            eprintln!("note: {note}");
        }
        let (report, _) = fixtures::run_case(&compiled, &case, limits);
        let profiled = options
            .profile
            .then(|| plugin_test::profile_case(&compiled, &case, limits, &report));
        Ok((
            fixtures::report_json(&report, limits),
            report.result.is_ok(),
            profiled,
        ))
    };
    match run() {
        Ok((json, ok, profiled)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            if let Some((profile, note)) = profiled {
                if let Some(note) = note {
                    println!("note: {note}");
                }
                if let Err(e) = plugin_test::print_profile(&profile, "the event", options) {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn new(name: &str, lang: Lang) -> ExitCode {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        eprintln!("error: `{name}` is not a valid plugin name (lowercase letters, digits, - and _; starts with a letter)");
        return ExitCode::FAILURE;
    }
    let root = PathBuf::from(name);
    if root.exists() {
        eprintln!("error: {} already exists", root.display());
        return ExitCode::FAILURE;
    }
    let underscored = name.replace('-', "_");
    for (path, text) in plugin_lang::files(lang).unwrap_or(TEMPLATE) {
        let target = root.join(path);
        let text = text
            .replace("{{name_underscored}}", &underscored)
            .replace("{{name}}", name);
        let written = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&target, text));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", target.display());
            return ExitCode::FAILURE;
        }
    }
    println!("Created {name}/. Next:");
    println!("  cd {name}");
    for step in plugin_lang::next_steps(lang, name) {
        println!("  {step}");
    }
    ExitCode::SUCCESS
}
