//! `tocsin plugin test`: runs a plugin on one event, or on a folder of YAML cases with expected decisions.
//!
//! A case names an event (every field optional but `title`), optional plugin config, lookup tables, kv
//! contents and a frozen clock, and what it expects (see [`expect`]), plus optionally `expect_kv`. The
//! format is documented in `plugins/README.md`.
//!
//! Cases run twice: each on a fresh instance, and all in order on warm instances as the server runs
//! them ([`WarmRunner`]), so a plugin whose globals carry state from one alert to the next fails.

mod expect;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

pub use expect::{describe, paths, Expect, Outcome};

use super::{CallReport, Compiled, Kv, Limits, Plugin, PluginClock, Settings};
use crate::config::plugin_manifest::scalar;
use crate::domain::alert::{labels_fingerprint, Alert, Labels, Routing, Severity, Status};
use crate::domain::time::Timestamp;

/// The clock fixtures see unless they set `now_ms`.
pub const DEFAULT_NOW_MS: u64 = 1_790_000_000_000;

/// An event as fixtures and `--event` files write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureEvent {
    pub title: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "firing")]
    pub status: Status,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub source_kind: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default)]
    pub starts_at_ms: Option<i64>,
    #[serde(default)]
    pub ends_at_ms: Option<i64>,
    #[serde(default)]
    pub received_at_ms: Option<i64>,
    #[serde(default)]
    pub generator_url: Option<String>,
    /// The sender's raw JSON, as a string, for plugins that read `raw-json`.
    #[serde(default)]
    pub raw_json: Option<String>,
}

fn firing() -> Status {
    Status::Firing
}

impl FixtureEvent {
    pub fn to_alert(&self, now_ms: u64) -> Alert {
        let severity = self.severity.unwrap_or_else(|| {
            self.labels
                .get("severity")
                .map_or(Severity::None, |s| Severity::parse_lenient(s))
        });
        Alert {
            source: self.source.clone().unwrap_or_else(|| "test".into()),
            fingerprint: self
                .fingerprint
                .clone()
                .unwrap_or_else(|| labels_fingerprint(&self.labels)),
            status: self.status,
            title: self.title.clone(),
            severity,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            description: self.description.clone(),
            url: self.generator_url.clone(),
            starts_at: self.starts_at_ms.map(Timestamp::from_millis),
            ends_at: self.ends_at_ms.map(Timestamp::from_millis),
            received_at: Timestamp::from_millis(self.received_at_ms.unwrap_or(now_ms as i64)),
            routing: Routing::default(),
            raw: self.raw_json.clone(),
        }
    }
}

/// One test case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub name: String,
    pub event: FixtureEvent,
    #[serde(default)]
    pub config: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub tables: BTreeMap<String, BTreeMap<String, serde_yaml::Value>>,
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    #[serde(default)]
    pub now_ms: Option<u64>,
    #[serde(default)]
    pub expect: Option<Expect>,
    #[serde(default)]
    pub expect_kv: Option<BTreeMap<String, Option<String>>>,
}

/// The JSON `tocsin plugin test` prints for one run.
pub fn report_json(report: &CallReport, limits: Limits) -> Value {
    let (decision, error) = match &report.result {
        Ok(v) => (serde_json::to_value(v).unwrap_or(Value::Null), Value::Null),
        Err((kind, message)) => (Value::Null, json!({"kind": kind, "message": message})),
    };
    let (fuel_used, at_least) = fuel_counted(report);
    json!({
        "decision": decision,
        "error": error,
        "fuel_used": fuel_used,
        "fuel_used_at_least": at_least,
        "fuel_limit": limits.fuel,
        "peak_memory_bytes": report.peak_memory,
        "memory_limit_bytes": limits.memory,
        "time_us": report.elapsed.as_micros() as u64,
        "logs": report.logs,
    })
}

/// The fuel a call used, when it is known: `(Some(exact), None)`, or `(None, Some(lower bound))`.
///
/// Why: wasmtime keeps the fuel count in a register while wasm runs and writes it back only at calls
/// and returns, so a call stopped by a trap (the deadline, a panic, the memory limit) reports only the
/// fuel counted up to its last write-back: a loop stopped after 50 ms showed 1,667. Running out of
/// fuel is exact (the whole budget).
pub fn fuel_counted(report: &CallReport) -> (Option<u64>, Option<u64>) {
    match &report.result {
        Ok(_) | Err((crate::domain::plugin::FailureKind::Error, _)) => {
            (Some(report.fuel_used), None)
        }
        Err((crate::domain::plugin::FailureKind::OutOfFuel, _)) => (Some(report.fuel_used), None),
        Err(_) => (None, Some(report.fuel_used)),
    }
}

/// A case's plugin settings.
fn settings(case: &Case, limits: Limits) -> Settings {
    Settings {
        config: case
            .config
            .iter()
            .map(|(k, v)| (k.clone(), scalar(v)))
            .collect(),
        tables: case
            .tables
            .iter()
            .map(|(t, m)| {
                (
                    t.clone(),
                    m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
                )
            })
            .collect(),
        limits,
        disable_after: u32::MAX,
        // A fixture's event carries raw JSON only when the case gives it.
        raw: true,
        profile: false,
    }
}

/// Runs one case on a fresh plugin instance. Returns the report and the kv contents afterwards.
pub fn run_case(
    compiled: &Compiled,
    case: &Case,
    limits: Limits,
) -> (CallReport, BTreeMap<String, String>) {
    let kv = Arc::new(Mutex::new(Kv::default()));
    let plugin = compiled.plugin("fixture", settings(case, limits), kv);
    call(&plugin, case)
}

/// Like [`run_case`] with the profiler on: the report's `profile` says where the fuel went.
pub fn run_case_profiled(
    compiled: &Compiled,
    case: &Case,
    limits: Limits,
) -> (CallReport, BTreeMap<String, String>) {
    let kv = Arc::new(Mutex::new(Kv::default()));
    let settings = Settings {
        profile: true,
        ..settings(case, limits)
    };
    call(&compiled.plugin("fixture", settings, kv), case)
}

/// Runs cases in order on warm instances, the way the server does: one instance per plugin
/// configuration (a server has one per configured plugin), reused from call to call, thrown away
/// only after a trap. Each case still starts from its own `kv:`.
pub struct WarmRunner<'a> {
    compiled: &'a Compiled,
    limits: Limits,
    plugins: Vec<(Settings, Plugin)>,
}

impl<'a> WarmRunner<'a> {
    pub fn new(compiled: &'a Compiled, limits: Limits) -> Self {
        WarmRunner {
            compiled,
            limits,
            plugins: Vec::new(),
        }
    }

    /// Runs the next case on the warm instance for its configuration.
    pub fn run(&mut self, case: &Case) -> (CallReport, BTreeMap<String, String>) {
        let wanted = settings(case, self.limits);
        let same = |s: &Settings| s.config == wanted.config && s.tables == wanted.tables;
        let index = match self.plugins.iter().position(|(s, _)| same(s)) {
            Some(i) => i,
            None => {
                let kv = Arc::new(Mutex::new(Kv::default()));
                let plugin = self.compiled.plugin("fixture", wanted.clone(), kv);
                self.plugins.push((wanted, plugin));
                self.plugins.len() - 1
            }
        };
        call(&self.plugins[index].1, case)
    }
}

/// Why a warm run differs from a fresh one, if it does: the plugin kept state in its globals.
pub fn leak(
    fresh: &(CallReport, BTreeMap<String, String>),
    warm: &(CallReport, BTreeMap<String, String>),
) -> Option<String> {
    let same_result = match (&fresh.0.result, &warm.0.result) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    };
    if same_result && fresh.1 == warm.1 {
        return None;
    }
    let mut out = format!(
        "state leaked from earlier cases: on a fresh instance: {}
           after the earlier cases on the same warm instance (as the server runs them): {}",
        describe(&fresh.0.result),
        describe(&warm.0.result)
    );
    if fresh.1 != warm.1 {
        out.push_str(&format!(
            "
  kv afterwards: fresh {:?}, warm {:?}",
            fresh.1, warm.1
        ));
    }
    out.push_str(
        "
  (keep state in the kv store, not in globals: the server reuses instances)",
    );
    Some(out)
}

/// Calls `plugin` with the case's event, kv contents and clock.
fn call(plugin: &Plugin, case: &Case) -> (CallReport, BTreeMap<String, String>) {
    let now = case.now_ms.unwrap_or(DEFAULT_NOW_MS);
    let kv = plugin.kv();
    if let Ok(mut k) = kv.lock() {
        *k = Kv::from_pairs(case.kv.clone());
    }
    let alert = case.event.to_alert(now);
    let kind = case
        .event
        .source_kind
        .clone()
        .unwrap_or_else(|| "generic".into());
    let id = case.event.id.clone().unwrap_or_else(|| "1".into());
    let report = plugin.call(&alert, &kind, &id, PluginClock::Frozen(now));
    let after = kv
        .lock()
        .map(|k| k.snapshot(now).into_iter().collect())
        .unwrap_or_default();
    (report, after)
}

/// Checks a case's expectations. `Ok(())` or a human-readable diff.
pub fn check(
    case: &Case,
    report: &CallReport,
    kv_after: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Some(expect) = &case.expect {
        problems.extend(expect.mismatches(&report.result));
    }
    if let Some(expect_kv) = &case.expect_kv {
        for (k, want) in expect_kv {
            let got = kv_after.get(k);
            if got != want.as_ref() {
                problems.push(format!(
                    "kv `{k}`: expected {}, got {}",
                    want.as_deref()
                        .map_or("(absent)".to_string(), |v| format!("{v:?}")),
                    got.map_or("(absent)".to_string(), |v| format!("{v:?}")),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted; an error naming `what` (fixtures, cases) when
/// there are none. Single-plugin fixtures and chain cases are found the same way.
pub fn yaml_files(dir: &Path, what: &str) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.yaml {what} in {}", dir.display()));
    }
    Ok(files)
}

/// Reads every `*.yaml` / `*.yml` file in `dir` (sorted), each holding a case or a list of cases.
pub fn load_cases(dir: &Path) -> Result<Vec<(PathBuf, Case)>, String> {
    let mut out = Vec::new();
    for file in yaml_files(dir, "fixtures")? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let cases = parse_cases(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        for (i, mut case) in cases.into_iter().enumerate() {
            if case.name.is_empty() {
                case.name = format!("case {}", i + 1);
            }
            out.push((file.clone(), case));
        }
    }
    Ok(out)
}

/// Parses a fixture file: one case or a list. Parsed straight from the text (not through a
/// `Value`) so that errors keep their line and column.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, serde_yaml::Error> {
    let value: serde_yaml::Value = serde_yaml::from_str(text)?;
    if value.is_sequence() {
        serde_yaml::from_str(text)
    } else {
        serde_yaml::from_str(text).map(|c| vec![c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plugin::Verdict;

    #[test]
    fn parse_errors_name_the_line() {
        let text = "- name: ok\n  event: {title: a}\n  expect: pass\n\
                    - name: typo\n  event: {title: b}\n  expct: pass\n";
        let e = parse_cases(text).unwrap_err().to_string();
        assert!(e.contains("line 6"), "{e}");
        assert!(e.contains("expct"), "{e}");
        let text = "name: bad expectation\nevent: {title: a}\nexpect: {error: {kind: slow}}\n";
        let e = parse_cases(text).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("unknown error kind `slow`"),
            "{e}"
        );
        assert_eq!(
            parse_cases("name: a\nevent: {title: a}\n").unwrap().len(),
            1
        );
    }

    #[test]
    fn fuel_is_a_lower_bound_after_a_trap_but_exact_otherwise() {
        let report = |result| CallReport {
            result,
            fuel_used: 1667,
            peak_memory: 0,
            elapsed: std::time::Duration::ZERO,
            logs: vec![],
            profile: None,
        };
        use crate::domain::plugin::FailureKind as K;
        assert_eq!(fuel_counted(&report(Ok(Verdict::Pass))), (Some(1667), None));
        assert_eq!(
            fuel_counted(&report(Err((K::Error, String::new())))),
            (Some(1667), None)
        );
        for k in [K::Deadline, K::Trap, K::MemoryLimit] {
            assert_eq!(
                fuel_counted(&report(Err((k, String::new())))),
                (None, Some(1667))
            );
        }
    }
}
