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

/// Compiled plugins under `dir`. Not wasmtime's bookkeeping beside them: usage statistics
/// (`*.stats`) and cleanup markers (`.cleanup.wip-<pid>`), which its cache worker writes in the
/// background, so a run may or may not leave one before it exits (a second run that compiled
/// nothing was counted as compiling again).
fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else if name.ends_with(".stats") || name.contains(".wip-") {
                        0
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
    for lang in ["rust", "python", "js"] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["plugin", "new", "--lang", lang, "demo-rule"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{lang}");
        let project = dir.path().join("demo-rule");
        if lang == "rust" {
            assert!(
                project.join("Cargo.lock").exists(),
                "the template has a Cargo.lock"
            );
        }
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        let install = readme.split("## Install").nth(1).unwrap();
        let snippet = install
            .split("```yaml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .unwrap();
        // Installed as the README says: the component where `path:` points, any real component
        // standing in for the built plugin, and the project's manifest beside it, so `check` also
        // holds the snippet's config against the manifest.
        let path = snippet
            .lines()
            .find_map(|l| l.trim().strip_prefix("path: "))
            .unwrap();
        let installed = dir.path().join(path);
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        std::fs::copy(dist("returns-err"), &installed).unwrap();
        std::fs::copy(
            project.join("plugin.yaml"),
            installed.with_extension("yaml"),
        )
        .unwrap();
        // The snippet routes to a room its config must declare for the manifest's `type: room`.
        let config = format!(
            "{snippet}rooms:\n  ops: {{sink: {{kind: webhook, url: \"http://127.0.0.1:9/\"}}}}\n"
        );
        std::fs::write(dir.path().join("tocsin.yaml"), &config).unwrap();
        let out = Command::new(BIN)
            .args(["check", "--config", "tocsin.yaml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{lang}: {config}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

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

/// Single-plugin fixtures run with what the server would give the plugin: the manifest's defaults
/// filled in, and a config the server would refuse noted beside the case, naming the key.
#[test]
fn fixtures_are_fitted_to_the_plugins_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.yaml");
    std::fs::write(
        &manifest,
        "config:\n  default_room: {type: room, default: ops}\n  \
         mention_here_on_critical: {type: bool, default: false}\n",
    )
    .unwrap();
    let defaulted = "- name: no config, the manifest's default room
  event: {title: Queue backlog, severity: error, labels: {team: payments}}
  expect: {route: {rooms: [ops]}}
";
    let with = ["--manifest", manifest.to_str().unwrap()];
    let (code, out) = fixtures("severity-router", defaulted, &with);
    assert_eq!(code, Some(0), "{out}");
    // Without the manifest the same case passes unrouted: the default came from the manifest.
    let bare = dir.path().join("bare.yaml");
    std::fs::write(&bare, "config:\n  default_room: {type: room}\n").unwrap();
    let (code, out) = fixtures(
        "severity-router",
        defaulted,
        &["--manifest", bare.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{out}");

    // A typo in a case's key: the case fails (the key never reaches the plugin) and the note says
    // why; the same note comes without --manifest, from the manifest installed beside the component.
    let typo = "- name: a typo in a key
  event: {title: x}
  config: {default_rom: db}
  expect: {route: {rooms: [db]}}
";
    let (code, out) = fixtures("severity-router", typo, &with);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("note: config.default_rom: unknown key; did you mean default_room?"),
        "{out}"
    );
    // The manifest installed beside the component (plugins/dist) is found without --manifest.
    let (code, out) = fixtures("severity-router", typo, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("did you mean default_room?"), "{out}");
    // A case may test a config the server would refuse: it passes on its expectation, with the note.
    let refused = "- name: a flag that is not true or false
  event: {title: x}
  config: {default_room: ops, mention_here_on_critical: maybe}
  expect: {route: {rooms: [ops]}}
";
    let (code, out) = fixtures("severity-router", refused, &with);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("note: config.mention_here_on_critical:"),
        "{out}"
    );
}
