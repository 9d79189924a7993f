//! `tocsin plugin test --config FILE --source S --fixtures DIR`: runs a source's whole plugin chain as
//! the server would (the config as `tocsin check` and `serve` load it, manifests' defaults filled in,
//! each plugin's limits, tables and `raw`, [`Registry::run`]) over chain cases, and fails a case whose
//! result names a room, member or group the config does not have.
//!
//! Each case gets fresh plugin instances and fresh kv stores (seeded from the case), so cases do not
//! see each other's state; the chain's compiled components are shared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config;
use crate::config::plugin_manifest::Names;
use crate::domain::alert::Alert;
use crate::domain::time::Timestamp;
use crate::plugin::fixtures::{self, FixtureEvent, DEFAULT_NOW_MS};
use crate::plugin::{Compiled, Engine, Kv, PluginClock, Registry, Settings};

/// One chain case: an event, kv contents per plugin, and what the chain should make of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainCase {
    #[serde(default)]
    pub name: String,
    pub event: FixtureEvent,
    /// `plugin name → {key: value}`: what each plugin's kv holds before the run.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, String>>,
    /// The time the plugins read (`now-ms`) and the alert's arrival, unless the event gives one
    /// (default: the fixtures' fixed time, so cases that hold or expire things are repeatable).
    #[serde(default)]
    pub now_ms: Option<u64>,
    /// `dropped`, `kept`, or a subset of the outcome (see [`outcome_json`]).
    #[serde(default)]
    pub expect: Option<serde_yaml::Value>,
}

/// A source's chain, compiled once, from a config loaded as the server loads it.
pub struct Chain {
    /// The source whose chain this is; `None` for one plugin on its own (`--replay` without
    /// `--config`), which sees each alert's own source.
    pub source: Option<String>,
    kind: String,
    plugins: Vec<(String, Compiled, Settings)>,
    /// The config's rooms and members; `None` for one plugin on its own (nothing to check against).
    pub names: Option<Names>,
}

impl Chain {
    /// Loads `config_path` (manifests checked, defaults filled in) and compiles `source`'s chain.
    pub fn load(config_path: &Path, source: &str) -> Result<Chain, String> {
        let config = config::load(config_path).map_err(|e| e.to_string())?;
        let Some(src) = config.sources.get(source) else {
            let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
            return Err(format!(
                "{}: no source `{source}` (sources: {})",
                config_path.display(),
                known.join(", ")
            ));
        };
        // The server's compile cache, so a chain test after a start (or another test) is quick.
        let cache = PathBuf::from(&config.plugin_cache.0);
        let engine = Engine::new(Some(&cache)).map_err(|e| e.to_string())?;
        let mut plugins = Vec::new();
        for name in &src.plugins {
            let pc = config
                .plugins
                .get(name)
                .ok_or_else(|| format!("sources.{source}.plugins: `{name}` is not declared"))?;
            let compiled = engine
                .compile(Path::new(&pc.path.0))
                .map_err(|e| format!("plugins.{name}.path: {e}"))?;
            plugins.push((name.clone(), compiled, Settings::from_config(pc)));
        }
        Ok(Chain {
            names: Some(Names::of(&config)),
            kind: src.kind.as_str().to_string(),
            source: Some(source.to_string()),
            plugins,
        })
    }

    /// One plugin on its own, with no config (as `plugin test --event` runs it).
    pub fn single(plugin: &Path) -> Result<Chain, String> {
        let engine = Engine::new(None).map_err(|e| e.to_string())?;
        let compiled = engine.compile(plugin).map_err(|e| e.to_string())?;
        let settings = Settings {
            disable_after: u32::MAX,
            raw: true,
            ..Settings::default()
        };
        Ok(Chain {
            source: None,
            kind: String::new(),
            plugins: vec![("plugin".into(), compiled, settings)],
            names: None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Runs the chain on `alert` at `now` with fresh instances and kv stores (seeded from `kv`),
    /// through the server's [`Registry::run_at`].
    pub fn run(
        &self,
        mut alert: Alert,
        kind: Option<&str>,
        id: &str,
        kv: &BTreeMap<String, BTreeMap<String, String>>,
        now: Timestamp,
    ) -> Outcome {
        if let Some(source) = &self.source {
            alert.source = source.clone();
        }
        let kind = match kind {
            Some(k) if self.source.is_none() => k.to_string(),
            _ if self.kind.is_empty() => "generic".to_string(),
            _ => self.kind.clone(),
        };
        let mut registry = Registry::default();
        for (name, compiled, settings) in &self.plugins {
            let seed = kv.get(name).cloned().unwrap_or_default();
            let store = Arc::new(Mutex::new(Kv::from_pairs(seed)));
            registry.plugins.insert(
                name.clone(),
                Arc::new(compiled.plugin(name, settings.clone(), store)),
            );
        }
        registry.chains.insert(
            alert.source.clone(),
            self.plugins.iter().map(|(n, _, _)| n.clone()).collect(),
        );
        registry.kinds.insert(alert.source.clone(), kind);
        let clock = PluginClock::Frozen(u64::try_from(now.as_millis()).unwrap_or(0));
        let result = registry.run_at(&mut alert, id, now, clock);
        let json = outcome_json(&alert, &result.dropped, &result.failures);
        let unknown = if result.dropped.is_some() {
            Vec::new()
        } else {
            self.unknown_names(&alert)
        };
        Outcome { json, unknown }
    }

    /// Rooms and mentions the chain decided that this config does not have. Schedules do not exist in
    /// tocsin yet; when they do, a decision naming one is checked here too.
    fn unknown_names(&self, alert: &Alert) -> Vec<String> {
        let Some(names) = &self.names else {
            return Vec::new();
        };
        let rooms = alert
            .routing
            .rooms
            .iter()
            .filter_map(|r| names.room_problem(r).map(|p| format!("room: {p}")));
        let mentions = alert
            .routing
            .mentions
            .iter()
            .filter_map(|m| names.mention_problem(m).map(|p| format!("mention: {p}")));
        rooms.chain(mentions).collect()
    }
}

/// The components of `source`'s chain in the config at `config_path`, as [`Chain::load`] opens them,
/// and the compile cache it writes to (nothing when the config does not load: `plugin test --watch`
/// then watches the config alone).
pub fn chain_files(config_path: &Path, source: &str) -> (Vec<PathBuf>, Option<PathBuf>) {
    let Ok(config) = config::load(config_path) else {
        return (Vec::new(), None);
    };
    let chain = config.sources.get(source).map(|s| s.plugins.clone());
    let components = chain
        .unwrap_or_default()
        .iter()
        .filter_map(|name| config.plugins.get(name))
        .map(|pc| PathBuf::from(&pc.path.0))
        .collect();
    (components, Some(PathBuf::from(&config.plugin_cache.0)))
}

/// What a chain made of one alert.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub json: Value,
    /// Rooms and mentions the config does not have.
    pub unknown: Vec<String>,
}

/// The outcome as cases and replay compare it: `dropped` (`{plugin, reason}` or null), the ticket's
/// `title` and `severity`, `labels`, `rooms`, `mentions`, `tags`, `body`, `group_key`, and the
/// plugins' `failures` (`[{plugin, kind, message}]`).
pub fn outcome_json(
    alert: &Alert,
    dropped: &Option<crate::domain::plugin::DropInfo>,
    failures: &[crate::domain::plugin::PluginFailure],
) -> Value {
    let r = &alert.routing;
    json!({
        "dropped": dropped,
        "title": alert.title,
        "severity": alert.severity,
        "labels": alert.labels,
        "rooms": r.rooms,
        "mentions": r.mentions,
        "tags": r.tags,
        "body": r.body,
        "group_key": r.group_key,
        "failures": failures,
    })
}

/// Checks a case's expectation against an outcome: `Ok(())` or what is wrong. A plugin failure fails
/// the case unless the expectation says something about `failures`.
pub fn check(case: &ChainCase, outcome: &Outcome) -> Result<(), String> {
    let mut problems: Vec<String> = outcome.unknown.clone();
    let expect = case
        .expect
        .as_ref()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null));
    let about_failures = expect.as_ref().is_some_and(|e| e.get("failures").is_some());
    if !about_failures {
        if let Some(fs) = outcome.json["failures"].as_array() {
            for f in fs {
                problems.push(format!(
                    "plugin {} failed ({}): {}",
                    f["plugin"].as_str().unwrap_or("?"),
                    f["kind"].as_str().unwrap_or("?"),
                    f["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    let dropped = !outcome.json["dropped"].is_null();
    let wrong = match &expect {
        None => None,
        Some(Value::String(s)) if s == "dropped" => {
            (!dropped).then(|| "expected the alert dropped; it was kept".to_string())
        }
        Some(Value::String(s)) if s == "kept" => dropped.then(|| {
            format!(
                "expected the alert kept; dropped by {}",
                outcome.json["dropped"]
            )
        }),
        Some(e @ Value::Object(_)) => {
            // The same key-path rule single-plugin fixtures use (`{}` means empty).
            let mut diffs = Vec::new();
            fixtures::paths(e, &outcome.json, "", &mut diffs);
            (!diffs.is_empty()).then(|| diffs.join("\n"))
        }
        Some(other) => Some(format!(
            "expect must be `dropped`, `kept` or a map, not {other}"
        )),
    };
    problems.extend(wrong);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Reads the `*.yaml` chain cases of `dir` (sorted), each file a case or a list of cases.
pub fn load_cases(dir: &Path) -> Result<Vec<(String, ChainCase)>, String> {
    let mut out = Vec::new();
    for file in fixtures::yaml_files(dir, "cases")? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let cases: Vec<ChainCase> = match value {
            serde_yaml::Value::Sequence(_) => serde_yaml::from_value(value),
            other => serde_yaml::from_value(other).map(|c| vec![c]),
        }
        .map_err(|e| format!("{}: {e}", file.display()))?;
        let short = file
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        for (i, mut case) in cases.into_iter().enumerate() {
            if case.name.is_empty() {
                case.name = format!("case {}", i + 1);
            }
            out.push((short.clone(), case));
        }
    }
    Ok(out)
}

/// `tocsin plugin test --config FILE --source S --fixtures DIR`.
pub fn test_chain(config_path: &Path, source: &str, dir: &Path) -> ExitCode {
    let run = || -> Result<usize, String> {
        let chain = Chain::load(config_path, source)?;
        let cases = load_cases(dir)?;
        if chain.is_empty() {
            println!("note: source `{source}` has no plugins; cases see the alert as it came");
        }
        let mut failed = 0;
        for (file, case) in &cases {
            let now = case.now_ms.unwrap_or(DEFAULT_NOW_MS);
            let alert = case.event.to_alert(now);
            let id = case.event.id.clone().unwrap_or_else(|| "1".into());
            let at = Timestamp::from_millis(i64::try_from(now).unwrap_or(i64::MAX));
            let outcome = chain.run(alert, None, &id, &case.kv, at);
            match check(case, &outcome) {
                Ok(()) => println!("ok   {file}: {}", case.name),
                Err(why) => {
                    failed += 1;
                    println!("FAIL {file}: {}", case.name);
                    for line in why.lines() {
                        println!("     {line}");
                    }
                }
            }
        }
        println!("{} passed, {failed} failed", cases.len() - failed);
        Ok(failed)
    };
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
