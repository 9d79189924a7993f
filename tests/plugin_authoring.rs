//! `tocsin plugin test` and `plugin new` as a plugin author meets them: expectations for every
//! failure kind, key-path diffs, state leaking between cases, the compile cache, honest fuel, exit
//! codes, limits refused, fixture errors with lines, and a template whose install snippet checks.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::dist;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

/// Runs `tocsin plugin test PLUGIN --fixtures DIR EXTRA...` on a fixtures folder holding `yaml`.
fn fixtures(plugin: &str, yaml: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cases.yaml"), yaml).unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist(plugin), "--no-cache", "--fixtures"])
        .arg(dir.path())
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn event(plugin: &str, extra: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, r#"{"title": "x"}"#).unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist(plugin), "--no-cache", "--event"])
        .arg(&ev)
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, v)
}

#[test]
fn expect_error_matches_every_failure_kind_and_can_name_it() {
    let runs = [
        ("returns-err", "error", "refusing", &[][..]),
        ("trap", "trap", "unreachable", &[][..]),
        ("loop-forever", "fuel", "fuel", &[][..]),
        ("alloc-forever", "memory", "bytes of memory", &[][..]),
        // So much fuel that only the deadline can stop it.
        (
            "loop-forever",
            "deadline",
            "deadline",
            &["--fuel", "1000000000000", "--timeout", "20ms"][..],
        ),
    ];
    for (plugin, kind, text, extra) in runs {
        let yaml = format!(
            "- name: any failure\n  event: {{title: x}}\n  expect: error\n\
             - name: this kind\n  event: {{title: x}}\n  expect: {{error: {kind}}}\n\
             - name: kind and message\n  event: {{title: x}}\n  \
               expect: {{error: {{kind: {kind}, message_contains: '{text}'}}}}\n"
        );
        let (code, out) = fixtures(plugin, &yaml, extra);
        assert_eq!(code, Some(0), "{plugin} ({kind}):\n{out}");
        assert!(out.contains("3 passed, 0 failed"), "{out}");
    }
    // The wrong kind or message fails, naming what differs.
    let (code, out) = fixtures(
        "loop-forever",
        "name: wrong\nevent: {title: x}\nexpect: {error: {kind: deadline, message: nope}}\n",
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error kind: expected deadline, got out_of_fuel"),
        "{out}"
    );
    assert!(out.contains("error message: expected \"nope\", got \"used all of its"));
}

#[test]
fn route_mismatches_name_the_key_path_and_empty_labels_mean_none() {
    let yaml =
        "- name: wrong room\n  event: {title: x}\n  expect: {route: {add_labels: {calls: '1'}}}\n\
                - name: no labels\n  event: {title: x}\n  expect: {route: {add_labels: {}}}\n\
                - name: misspelt key\n  event: {title: x}\n  expect: {route: {room: [ops]}}\n";
    let (code, out) = fixtures("global-counter", yaml, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("route.add_labels.calls: expected \"1\", got \"0\""),
        "{out}"
    );
    assert!(
        out.contains("route.add_labels: expected {}, got {\"calls\":\"0\"}"),
        "{out}"
    );
    assert!(
        out.contains("route.room: expected [\"ops\"], got nothing"),
        "{out}"
    );
    assert!(out.contains("0 passed, 3 failed"), "{out}");
}

#[test]
fn state_kept_in_globals_fails_the_case_it_leaks_into() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/testdata/global-counter/fixtures");
    let out = Command::new(BIN)
        .args([
            "plugin",
            "test",
            &dist("global-counter"),
            "--no-cache",
            "--fixtures",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ok   counter.yaml: first alert"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL counter.yaml: second alert"),
        "{stdout}"
    );
    assert!(
        stdout.contains("state leaked from earlier cases: on a fresh instance: route {\"add_labels\":{\"calls\":\"0\"}"),
        "{stdout}"
    );
    assert!(stdout.contains("\"calls\":\"1\""), "{stdout}");
}

#[test]
fn event_runs_exit_non_zero_on_failure_and_fuel_is_honest() {
    let (out, v) = event("returns-err", &[]);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["error"]["kind"], "error");

    let (out, v) = event(
        "loop-forever",
        &["--fuel", "1000000000000", "--timeout", "20ms"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["error"]["kind"], "deadline");
    assert!(v["fuel_used"].is_null(), "not counted past a trap: {v}");
    assert!(v["fuel_used_at_least"].is_u64(), "{v}");

    let (out, v) = event("loop-forever", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["fuel_used"], v["fuel_limit"], "{v}");
}

#[test]
fn memory_beyond_the_configs_cap_is_refused() {
    let (out, _) = event("returns-err", &["--memory", "1GiB"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("256 MiB"), "{err}");
}

#[test]
fn fixture_errors_name_the_line() {
    let yaml = "- name: fine\n  event: {title: x}\n  expect: route\n\
                - name: typo\n  event: {title: x}\n  expct: route\n";
    let (code, out) = fixtures("global-counter", yaml, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cases.yaml: ") && out.contains("line 6"),
        "{out}"
    );
    let (code, out) = fixtures(
        "global-counter",
        "name: a\nevent: {title: x}\nexpect: {error: {kind: slow}}\n",
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("line 3") && out.contains("unknown error kind `slow`"),
        "{out}"
    );
}

#[test]
fn compiled_plugins_are_cached_between_runs() {
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(BIN)
            .args(["plugin", "test", &dist("global-counter"), "--cache"])
            .arg(cache.path())
            .arg("--fixtures")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("plugins/testdata/global-counter/fixtures"),
            )
            .output()
            .unwrap()
    };
    let files = || walk(cache.path());
    assert_eq!(files(), 0);
    run();
    let after_first = files();
    assert!(after_first > 0, "nothing cached");
    run();
    assert_eq!(files(), after_first, "the second run compiled again");
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn the_templates_install_snippet_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "new", "demo-rule"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let project = dir.path().join("demo-rule");
    assert!(
        project.join("Cargo.lock").exists(),
        "the template has a Cargo.lock"
    );
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let install = readme.split("## Install").nth(1).unwrap();
    let snippet = install
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    std::fs::write(dir.path().join("tocsin.yaml"), snippet).unwrap();
    // Any real component stands in for the built plugin.
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::copy(
        dist("returns-err"),
        dir.path().join("plugins/demo_rule.wasm"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", "tocsin.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{snippet}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let help = Command::new(BIN)
        .args(["plugin", "new", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("lowercase letters"),
        "<NAME> explained: {help}"
    );
}

/// What the guide says about instance lifetime, shown on the server's own chain runner: one warm
/// instance per configured plugin, shared by every source whose chain lists it, kept across alerts,
/// replaced after a trap (not after an `err` return).
#[test]
fn the_server_reuses_one_warm_instance_per_plugin_across_sources() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use tocsin::domain::alert::{Alert, Labels, Severity, Status};
    use tocsin::domain::time::Timestamp;
    use tocsin::plugin::{Engine, Kv, Registry, Settings};

    let engine = Engine::new(None).unwrap();
    let compiled = engine.compile(Path::new(&dist("global-counter"))).unwrap();
    let settings = Settings {
        limits: Default::default(),
        disable_after: 10,
        ..Settings::default()
    };
    let plugin = compiled.plugin("counter", settings, Arc::new(Mutex::new(Kv::default())));
    let registry = Registry {
        plugins: BTreeMap::from([("counter".to_string(), Arc::new(plugin))]),
        chains: BTreeMap::from([
            ("prom".to_string(), vec!["counter".to_string()]),
            ("hooks".to_string(), vec!["counter".to_string()]),
        ]),
        kinds: BTreeMap::new(),
    };
    let mut seen = Vec::new();
    for source in ["prom", "hooks", "prom", "hooks"] {
        let mut alert = Alert {
            source: source.into(),
            fingerprint: "f".into(),
            status: Status::Firing,
            title: "t".into(),
            severity: Severity::Warning,
            labels: Labels::new(),
            annotations: Labels::new(),
            description: None,
            url: None,
            starts_at: None,
            ends_at: None,
            received_at: Timestamp::from_millis(0),
            routing: Default::default(),
            raw: None,
        };
        let result = registry.run(&mut alert, "1");
        assert!(result.failures.is_empty(), "{:?}", result.failures);
        seen.push(alert.labels["calls"].clone());
    }
    assert_eq!(
        seen,
        ["0", "1", "2", "3"],
        "globals survive across alerts and sources"
    );
}
