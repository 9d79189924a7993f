//! `tocsin plugin test`: runs a plugin on one event, or on a folder of YAML cases with expected decisions.
//!
//! A case names an event (every field optional but `title`), optional plugin config, lookup tables, kv
//! contents and a frozen clock, and what it expects: `pass`, `drop`, `{drop: reason}`,
//! `{drop_prefix: text}`, `route`, `{route: SUBSET}` or `error`, plus optionally `expect_kv`. The format
//! is documented in `plugins/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{CallReport, Compiled, Kv, Limits, PluginClock, Settings};
use crate::domain::alert::{labels_fingerprint, Alert, Labels, Routing, Severity, Status};
use crate::domain::plugin::Verdict;
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
    pub expect: Option<serde_yaml::Value>,
    #[serde(default)]
    pub expect_kv: Option<BTreeMap<String, Option<String>>>,
}

fn scalar(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Null => String::new(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// The JSON `tocsin plugin test` prints for one run.
pub fn report_json(report: &CallReport, limits: Limits) -> Value {
    let (decision, error) = match &report.result {
        Ok(v) => (serde_json::to_value(v).unwrap_or(Value::Null), Value::Null),
        Err((kind, message)) => (Value::Null, json!({"kind": kind, "message": message})),
    };
    json!({
        "decision": decision,
        "error": error,
        "fuel_used": report.fuel_used,
        "fuel_limit": limits.fuel,
        "peak_memory_bytes": report.peak_memory,
        "memory_limit_bytes": limits.memory,
        "time_us": report.elapsed.as_micros() as u64,
        "logs": report.logs,
    })
}

/// Runs one case on a fresh plugin instance. Returns the report and the kv contents afterwards.
pub fn run_case(
    compiled: &Compiled,
    case: &Case,
    limits: Limits,
) -> (CallReport, BTreeMap<String, String>) {
    let now = case.now_ms.unwrap_or(DEFAULT_NOW_MS);
    let settings = Settings {
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
    };
    let kv = Arc::new(Mutex::new(Kv::from_pairs(case.kv.clone())));
    let plugin = compiled.plugin("fixture", settings, Arc::clone(&kv));
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
    let actual = match &report.result {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err((kind, message)) => json!({"error": {"kind": kind, "message": message}}),
    };
    let mut problems = Vec::new();
    if let Some(expect) = &case.expect {
        let expect = serde_json::to_value(expect).unwrap_or(Value::Null);
        let ok = match (&expect, &report.result) {
            (Value::String(s), Ok(Verdict::Pass)) => s == "pass",
            (Value::String(s), Ok(Verdict::Drop(_))) => s == "drop",
            (Value::String(s), Ok(Verdict::Route(_))) => s == "route",
            (Value::String(s), Err((crate::domain::plugin::FailureKind::Error, _))) => s == "error",
            (Value::Object(m), Ok(Verdict::Drop(reason))) if m.contains_key("drop_prefix") => m
                ["drop_prefix"]
                .as_str()
                .is_some_and(|p| reason.starts_with(p)),
            (Value::Object(_), Ok(_)) => subset(&expect, &actual),
            _ => false,
        };
        if !ok {
            problems.push(diff(&expect, &actual));
        }
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

/// True if every key in `expected` matches `actual`, recursively; arrays and scalars must be equal.
pub fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| {
            a.get(k).is_some_and(|av| subset(v, av)) || (v.is_null() && a.get(k).is_none())
        }),
        (Value::Number(e), Value::String(a)) => e.to_string() == *a,
        _ => expected == actual,
    }
}

/// A line diff of two pretty-printed JSON values (`-` expected only, `+` actual only).
fn diff(expected: &Value, actual: &Value) -> String {
    let e = serde_json::to_string_pretty(expected).unwrap_or_default();
    let a = serde_json::to_string_pretty(actual).unwrap_or_default();
    let el: Vec<&str> = e.lines().collect();
    let al: Vec<&str> = a.lines().collect();
    // Longest common subsequence table, then walk it.
    let mut lcs = vec![vec![0usize; al.len() + 1]; el.len() + 1];
    for i in (0..el.len()).rev() {
        for j in (0..al.len()).rev() {
            lcs[i][j] = if el[i] == al[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = vec!["--- expected".to_string(), "+++ actual".to_string()];
    while i < el.len() || j < al.len() {
        if i < el.len() && j < al.len() && el[i] == al[j] {
            out.push(format!("  {}", el[i]));
            i += 1;
            j += 1;
        } else if j < al.len() && (i == el.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", al[j]));
            j += 1;
        } else {
            out.push(format!("- {}", el[i]));
            i += 1;
        }
    }
    out.join("\n")
}

/// Reads every `*.yaml` / `*.yml` file in `dir` (sorted), each holding a case or a list of cases.
pub fn load_cases(dir: &Path) -> Result<Vec<(PathBuf, Case)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.yaml fixtures in {}", dir.display()));
    }
    let mut out = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let cases: Vec<Case> = match value {
            serde_yaml::Value::Sequence(_) => serde_yaml::from_value(value),
            other => serde_yaml::from_value(other).map(|c| vec![c]),
        }
        .map_err(|e| format!("{}: {e}", file.display()))?;
        for (i, mut case) in cases.into_iter().enumerate() {
            if case.name.is_empty() {
                case.name = format!("case {}", i + 1);
            }
            out.push((file.clone(), case));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_matching() {
        let actual = json!({"route": {"rooms": ["ops"], "mentions": ["alice"], "ticket": {"title": null, "tags": []}}});
        assert!(subset(&json!({"route": {"rooms": ["ops"]}}), &actual));
        assert!(subset(
            &json!({"route": {"ticket": {"title": null}}}),
            &actual
        ));
        assert!(!subset(
            &json!({"route": {"rooms": ["ops", "dev"]}}),
            &actual
        ));
        assert!(!subset(&json!({"route": {"missing": 1}}), &actual));
    }

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff(&json!({"drop": "a"}), &json!({"drop": "b"}));
        assert!(d.contains("-   \"drop\": \"a\""), "{d}");
        assert!(d.contains("+   \"drop\": \"b\""), "{d}");
    }
}
