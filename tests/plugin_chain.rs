//! The real `tocsin` binary with real plugins from plugins/dist: typed plugin config in `tocsin check`
//! (manifest beside the component) and whole-chain tests against a real config file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Copies an example plugin's component into `dir` as `<name>.wasm`, with its manifest as
/// `<name>.yaml` when `manifest` (from its project, so the test does not depend on build-plugins
/// having installed it).
fn plugin(dir: &Path, example: &str, name: &str, manifest: bool) -> PathBuf {
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::copy(
        root().join("plugins/dist").join(format!("{example}.wasm")),
        &wasm,
    )
    .expect("plugins/dist is built (scripts/build-plugins)");
    if manifest {
        std::fs::copy(
            root()
                .join("plugins/examples")
                .join(example)
                .join("plugin.yaml"),
            dir.join(format!("{name}.yaml")),
        )
        .unwrap();
    }
    wasm
}

fn config(dir: &Path, route: &str) -> PathBuf {
    let router = dir.join("router.wasm");
    let enrich = dir.join("enrich.wasm");
    let text = format!(
        "listen: 127.0.0.1:9077\nstorage: sqlite://{db}\nplugin_cache: {cache}\n\
         sources:\n  prom: {{kind: prometheus, plugins: [enrich, route]}}\n\
         rooms:\n  db: {{sink: {{kind: webhook, url: \"http://x.test/hook\"}}}}\n\
         members:\n  alice: {{role: admin, token: \"a1b2c3d4e5f6a7b8c9d0-alice\"}}\n\
         groups:\n  dba: [alice]\n\
         plugins:\n  enrich:\n    path: {enrich}\n    tables:\n      owners: {{postgres: db}}\n\
         \x20 route:\n    path: {router}\n{route}",
        db = dir.join("t.db").display(),
        cache = dir.join("cache").display(),
        enrich = enrich.display(),
        router = router.display(),
    );
    let p = dir.join("tocsin.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn tocsin(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// `tocsin plugin test --config CONFIG --source SOURCE --fixtures CASES`.
fn chain_test(config: &str, source: &str, cases: &str) -> Output {
    tocsin(&[
        "plugin",
        "test",
        "--config",
        config,
        "--source",
        source,
        "--fixtures",
        cases,
    ])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_refuses_a_plugin_config_that_does_not_fit_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "severity-router", "router", true);
    plugin(dir.path(), "enrich", "enrich", true);
    let cfg = config(
        dir.path(),
        "    config: {default-room: db, mention_here_on_critical: maybe}\n    tables:\n      team_rooms: {db: dbx}\n      oncall: {db: bob}\n",
    );
    let out = tocsin(&["check", "--config", cfg.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    for want in [
        "plugins.route.config.default-room: unknown key; did you mean default_room?",
        "plugins.route.config.mention_here_on_critical: `maybe` is not true or false",
        "plugins.route.tables.team_rooms.db: `dbx` is not declared under rooms:; did you mean db?",
        "plugins.route.tables.oncall.db: `bob` is neither a member, a group, `here` nor `all`",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }

    // Fixed, it passes; without a manifest the plugin is not checked at all.
    let cfg = config(
        dir.path(),
        "    config: {default_room: db}\n    tables:\n      team_rooms: {db: db}\n      oncall: {db: dba}\n",
    );
    let out = tocsin(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

fn case(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::write(cases.join(name), yaml).unwrap();
    cases
}

const CRITICAL_DB: &str = "\
- name: a critical postgres alert goes to the db room and pages the dba group
  event:
    title: replication lag
    severity: critical
    labels: {alertname: ReplicationLag, service: postgres}
  expect:
    rooms: [db]
    mentions: [dba]
    labels: {team: db}
    dropped: null
- name: an info alert passes the router
  event: {title: fyi, severity: info, labels: {service: postgres}}
  expect: kept
";

#[test]
fn a_chain_test_runs_the_sources_chain_with_the_configs_tables() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "severity-router", "router", true);
    plugin(dir.path(), "enrich", "enrich", true);
    // enrich adds team=db from `owners`, then the router reads team_rooms and oncall for team db.
    let cfg = config(
        dir.path(),
        "    tables:\n      team_rooms: {db: db}\n      oncall: {db: dba}\n",
    );
    let cases = case(dir.path(), "db.yaml", CRITICAL_DB);
    let out = chain_test(cfg.to_str().unwrap(), "prom", cases.to_str().unwrap());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("2 passed, 0 failed"), "{all}");

    // The same cases against a config whose table names the wrong team: the first case fails.
    let cfg = config(
        dir.path(),
        "    tables:\n      team_rooms: {web: db}\n      oncall: {db: dba}\n",
    );
    let out = chain_test(cfg.to_str().unwrap(), "prom", cases.to_str().unwrap());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("FAIL db.yaml: a critical postgres alert"),
        "{all}"
    );
    assert!(all.contains("1 passed, 1 failed"), "{all}");
}

#[test]
fn a_chain_test_fails_on_rooms_and_members_the_config_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    // No manifest: `tocsin check` cannot know the tables name rooms, the chain test still sees it.
    plugin(dir.path(), "severity-router", "router", false);
    plugin(dir.path(), "enrich", "enrich", true);
    let cfg = config(
        dir.path(),
        "    tables:\n      team_rooms: {db: dbx}\n      oncall: {db: bobby}\n",
    );
    let out = tocsin(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let cases = case(
        dir.path(),
        "db.yaml",
        "name: critical db\nevent: {title: lag, severity: critical, labels: {service: postgres}}\n",
    );
    let out = chain_test(cfg.to_str().unwrap(), "prom", cases.to_str().unwrap());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("room: `dbx` is not declared under rooms:; did you mean db?"),
        "{all}"
    );
    assert!(
        all.contains("mention: `bobby` is neither a member, a group, `here` nor `all`"),
        "{all}"
    );

    // With the manifest the same config does not even load: the chain test names the key.
    plugin(dir.path(), "severity-router", "router", true);
    let out = chain_test(cfg.to_str().unwrap(), "prom", cases.to_str().unwrap());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("plugins.route.tables.team_rooms.db: `dbx`"),
        "{all}"
    );
}

#[test]
fn a_chain_test_names_an_unknown_source() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "severity-router", "router", true);
    plugin(dir.path(), "enrich", "enrich", true);
    let cfg = config(dir.path(), "");
    let cases = case(dir.path(), "x.yaml", "event: {title: x}\n");
    let out = chain_test(cfg.to_str().unwrap(), "promm", cases.to_str().unwrap());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("no source `promm` (sources: prom)"), "{all}");
}

/// A chain case runs at its `now_ms` (the plugins' `now-ms`), so a hold is repeatable: the same kv
/// state is still held 200 s in and let through at 5 minutes.
#[test]
fn a_chain_case_runs_at_its_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let hold = plugin(dir.path(), "suppress-noise", "hold", true);
    let cfg = dir.path().join("tocsin.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:9077\nstorage: sqlite://{db}\nplugin_cache: {cache}\n\
             sources:\n  prom: {{kind: prometheus, plugins: [hold]}}\n\
             plugins:\n  hold: {{path: {hold}, config: {{hold_for: 5m}}}}\n",
            db = dir.path().join("t.db").display(),
            cache = dir.path().join("cache").display(),
            hold = hold.display(),
        ),
    )
    .unwrap();
    let cases = case(
        dir.path(),
        "hold.yaml",
        "\
- name: first seen 200 s ago, still held
  event: {title: Link flapping, fingerprint: abc, labels: {alertname: LinkDown}}
  kv: {hold: {\"hold:prom/abc\": \"pending:1789999800000\"}}
  now_ms: 1790000000000
  expect: {dropped: {plugin: hold, reason: \"held: firing for 200s of hold_for 300s\"}}
- name: the same state at 5 minutes is let through
  event: {title: Link flapping, fingerprint: abc, labels: {alertname: LinkDown}}
  kv: {hold: {\"hold:prom/abc\": \"pending:1789999800000\"}}
  now_ms: 1790000100000
  expect: kept
",
    );
    let out = chain_test(cfg.to_str().unwrap(), "prom", cases.to_str().unwrap());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("2 passed, 0 failed"), "{all}");
}
