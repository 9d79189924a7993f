//! Plugins end to end: the examples' fixtures, chains that enrich and route, plugins that misbehave,
//! switching a failing plugin off, reloading under load, and `tocsin plugin new`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use common::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

#[test]
fn example_fixtures_pass_through_plugin_test() {
    let root = env!("CARGO_MANIFEST_DIR");
    for example in [
        "severity-router",
        "enrich",
        "suppress-noise",
        "python-tagger",
        "js-team-router",
    ] {
        let out = Command::new(BIN)
            .args(["plugin", "test", &dist(example), "--fixtures"])
            .arg(format!("{root}/plugins/examples/{example}/fixtures"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{example}:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" passed, 0 failed"), "{example}: {stdout}");
        assert!(
            !stdout.contains("\n0 passed"),
            "{example} ran no cases: {stdout}"
        );
    }
}

#[test]
fn plugin_test_reports_decision_costs_and_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"title": "Disk full", "labels": {"alertname": "DiskFull", "service": "checkout"}}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist("enrich"), "--event"])
        .arg(&event)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "pass", "no tables configured: {v}");
    assert!(v["fuel_used"].as_u64().unwrap() > 0);
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0);
    assert!(v.get("time_us").is_some() && v.get("logs").is_some());

    // A wrong expectation fails with a diff and exit code 1.
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    std::fs::write(
        fixtures.join("wrong.yaml"),
        "name: expects a room that never comes\nevent: {title: x, labels: {alertname: DiskFull}}\n\
         tables: {runbooks: {DiskFull: 'https://rb'}}\nexpect: {route: {rooms: [nowhere]}}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist("enrich"), "--fixtures"])
        .arg(&fixtures)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL wrong.yaml"), "{stdout}");
    assert!(
        stdout.contains("route.rooms: expected [\"nowhere\"], got []"),
        "{stdout}"
    );
}

fn chain_sources() -> String {
    "sources:\n  prom: {kind: prometheus, plugins: [suppress, enrich, route]}\n".to_string()
}

fn chain_plugins() -> String {
    format!(
        "plugins:\n  \
           suppress: {{path: '{}', config: {{drop: 'alertname=\"Watchdog\"', hold_for: '0'}}}}\n  \
           enrich: {{path: '{}', tables: {{owners: {{checkout: payments}}, runbooks: {{DiskFull: 'https://runbooks.example/disk'}}}}}}\n  \
           route: {{path: '{}', config: {{default_room: ops}}, tables: {{team_rooms: {{payments: payments-oncall}}, oncall: {{payments: alice}}}}}}\n",
        dist("suppress-noise"),
        dist("enrich"),
        dist("severity-router")
    )
}

#[tokio::test]
async fn a_chain_drops_enriches_and_routes() {
    let app = spawn_app_sources(&chain_sources(), &chain_plugins()).await;
    let alerts = json!([
        {"labels": {"alertname": "DiskFull", "service": "checkout", "severity": "critical"},
         "annotations": {"summary": "Disk full on checkout-db"}},
        {"labels": {"alertname": "Watchdog", "severity": "none"}},
        {"labels": {"alertname": "SlowQueries", "service": "search", "severity": "warning"}},
    ]);
    expect(app.prom(alerts).await, 200).await;
    assert_eq!(app.process().await, 3);

    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 2, "the Watchdog is dropped: {tickets:#?}");
    let disk = tickets
        .iter()
        .find(|t| t["labels"]["alertname"] == "DiskFull")
        .unwrap();
    assert_eq!(
        disk["labels"]["team"], "payments",
        "enriched from the owners table"
    );
    assert_eq!(
        disk["labels"]["runbook_url"],
        "https://runbooks.example/disk"
    );
    assert!(disk["body"]
        .as_str()
        .unwrap()
        .contains("https://runbooks.example/disk"));
    assert_eq!(disk["rooms"], json!(["payments-oncall"]), "routed by team");
    assert_eq!(
        disk["mentions"],
        json!(["alice"]),
        "critical pages the team's on-call"
    );
    let slow = tickets
        .iter()
        .find(|t| t["labels"]["alertname"] == "SlowQueries")
        .unwrap();
    assert_eq!(
        slow["rooms"],
        json!(["ops"]),
        "no team room: the default room"
    );
    assert_eq!(slow["mentions"], json!([]), "warnings mention nobody");

    let dropped = expect(app.api_get("/api/dropped", VIEWER).await, 200).await;
    let d = &dropped["dropped"][0];
    assert_eq!(d["plugin"], "suppress");
    assert!(d["reason"].as_str().unwrap().contains("Watchdog"), "{d}");
    assert_eq!(d["alert"]["labels"]["alertname"], "Watchdog");

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tocsin_plugin_dropped_total{plugin=\"suppress\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("tocsin_plugin_calls_total{plugin=\"route\",outcome=\"route\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tocsin_alerts_processed_total{outcome=\"dropped\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn misbehaving_plugins_are_stopped_and_alerts_still_become_tickets() {
    let sources = "sources:\n  \
        spin: {kind: generic, plugins: [spin]}\n  \
        burn: {kind: generic, plugins: [burn]}\n  \
        hog: {kind: generic, plugins: [hog]}\n  \
        crash: {kind: generic, plugins: [crash]}\n  \
        refuse: {kind: generic, plugins: [refuse]}\n  \
        plain: {kind: generic}\n";
    let plugins = format!(
        "plugins:\n  \
           spin: {{path: '{loop_}', limits: {{fuel: 1000000000000, timeout: 50ms}}}}\n  \
           burn: {{path: '{loop_}'}}\n  \
           hog: {{path: '{alloc}', limits: {{memory: 16MiB}}}}\n  \
           crash: {{path: '{trap}'}}\n  \
           refuse: {{path: '{err}'}}\n",
        loop_ = dist("loop-forever"),
        alloc = dist("alloc-forever"),
        trap = dist("trap"),
        err = dist("returns-err"),
    );
    let app = Arc::new(spawn_app_sources(sources, &plugins).await);
    for source in ["spin", "burn", "hog", "crash", "refuse", "plain"] {
        let r = app
            .post(
                &format!("/ingest/{source}"),
                &json!({"title": format!("via {source}"), "status": "firing"}),
                &[],
            )
            .await;
        expect(r, 202).await;
    }
    // Ingest keeps answering while the processor works through the plugins.
    let worker = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.process().await })
    };
    expect(
        app.post(
            "/ingest/plain",
            &json!({"title": "during", "status": "firing"}),
            &[],
        )
        .await,
        202,
    )
    .await;
    worker.await.unwrap();
    app.process().await;

    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 7, "every alert made a ticket: {tickets:#?}");
    let expected = [
        ("spin", "deadline"),
        ("burn", "out_of_fuel"),
        ("hog", "memory_limit"),
        ("crash", "trap"),
        ("refuse", "error"),
    ];
    for (source, kind) in expected {
        let t = tickets.iter().find(|t| t["source"] == source).unwrap();
        let entries = app.timeline(t["key"].as_str().unwrap()).await;
        let failed = entries.iter().find(|e| e["kind"] == "plugin_failed");
        let failed =
            failed.unwrap_or_else(|| panic!("{source}: no plugin_failed entry in {entries:#?}"));
        assert_eq!(failed["data"]["plugin"], source);
        assert_eq!(failed["data"]["kind"], kind, "{source}: {failed}");
        assert!(failed["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Plugin {source} failed")));
    }
    let plain = tickets.iter().filter(|t| t["source"] == "plain").count();
    assert_eq!(plain, 2);
}

#[tokio::test]
async fn a_plugin_that_keeps_failing_is_switched_off_until_reload() {
    let sources = "sources:\n  hooks: {kind: generic, plugins: [refuse]}\n";
    let plugins = format!(
        "plugins:\n  refuse: {{path: '{}', disable_after: 3}}\n",
        dist("returns-err")
    );
    let app = spawn_app_sources(sources, &plugins).await;
    for i in 0..4 {
        app.post(
            "/ingest/hooks",
            &json!({"title": format!("alert {i}"), "status": "firing"}),
            &[],
        )
        .await;
    }
    app.process().await;
    app.process().await; // the system ticket appended during the first pass

    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    assert_eq!(status["plugins"][0]["disabled"], true, "{status}");
    let tickets = app.tickets().await;
    let system = tickets
        .iter()
        .find(|t| t["source"] == "tocsin")
        .expect("a system ticket");
    assert_eq!(system["state"], "open");
    assert!(
        system["title"].as_str().unwrap().contains("refuse"),
        "{system}"
    );
    let fourth = tickets.iter().find(|t| t["title"] == "alert 3").unwrap();
    let entries = app.timeline(fourth["key"].as_str().unwrap()).await;
    assert!(
        entries.iter().any(|e| e["data"]["kind"] == "disabled"),
        "{entries:#?}"
    );

    // Viewers may not reload; admins may, which switches it back on and resolves the system ticket.
    expect(app.api_post("/-/reload", VIEWER, None).await, 403).await;
    let report = expect(app.api_post("/-/reload", ADMIN, None).await, 200).await;
    assert_eq!(report["re_enabled"], json!(["refuse"]));
    app.process().await;
    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    assert_eq!(status["plugins"][0]["disabled"], false);
    let system = app
        .tickets()
        .await
        .into_iter()
        .find(|t| t["source"] == "tocsin")
        .unwrap();
    assert_eq!(system["state"], "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing_and_a_broken_plugin_keeps_the_old_one() {
    let sources = "sources:\n  hooks: {kind: generic, plugins: [route]}\n";
    let route = |room: &str, path: &str| {
        // Both rooms exist: severity-router's manifest types `default_room` as a room.
        format!(
            "plugins:\n  route: {{path: '{path}', config: {{default_room: {room}}}}}\n\
             rooms:\n  before: {{sink: {{kind: webhook, url: 'http://127.0.0.1:9/before'}}}}\n  \
             after: {{sink: {{kind: webhook, url: 'http://127.0.0.1:9/after'}}}}\n"
        )
    };
    let router = dist("severity-router");
    let app = Arc::new(spawn_app_sources(sources, &route("before", &router)).await);
    let original = std::fs::read_to_string(app.config_path()).unwrap();

    // Steady load: a sender posting alerts one after another while we process and reload.
    const N: usize = 400;
    let sender = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut accepted = BTreeSet::new();
            for i in 0..N {
                let fp = format!("load-{i:04}");
                let body = json!({"title": format!("load {i}"), "status": "firing", "severity": "warning", "fingerprint": fp});
                if app.post("/ingest/hooks", &body, &[]).await.status() == 202 {
                    accepted.insert(fp);
                }
            }
            accepted
        })
    };
    // Three reloads while the sender runs, processing between them.
    let mut last_room = "before";
    for room in ["after", "before", "after"] {
        app.process().await;
        std::fs::write(
            app.config_path(),
            original.replace(&route("before", &router), &route(room, &router)),
        )
        .unwrap();
        let r = expect(app.api_post("/-/reload", ADMIN, None).await, 200).await;
        assert_eq!(r["loaded"], json!(["route"]), "{r}");
        last_room = room;
    }
    while !sender.is_finished() {
        app.process().await;
        tokio::task::yield_now().await;
    }
    let accepted = sender.await.unwrap();
    app.process().await;
    assert_eq!(accepted.len(), N);
    let tickets = app.tickets().await;
    let made: BTreeSet<String> = tickets
        .iter()
        .map(|t| t["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(made, accepted, "every accepted alert has its ticket");
    assert!(tickets
        .iter()
        .all(|t| t["rooms"] == json!(["before"]) || t["rooms"] == json!(["after"])));

    // A broken plugin file: the reload reports it and the previous version keeps routing.
    let broken = app.dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm definitely not a component").unwrap();
    std::fs::write(
        app.config_path(),
        original.replace(
            &route("before", &router),
            &route("broken", &broken.display().to_string()),
        ),
    )
    .unwrap();
    let r = expect(app.api_post("/-/reload", ADMIN, None).await, 422).await;
    assert_eq!(r["error"], "plugin_load_failed");
    assert_eq!(r["failed"][0]["plugin"], "route");
    expect(
        app.post(
            "/ingest/hooks",
            &json!({"title": "after broken reload", "status": "firing", "severity": "warning"}),
            &[],
        )
        .await,
        202,
    )
    .await;
    app.process().await;
    let t = app
        .tickets()
        .await
        .into_iter()
        .find(|t| t["title"] == "after broken reload")
        .unwrap();
    assert_eq!(
        t["rooms"],
        json!([last_room]),
        "the last good version still routes"
    );
}

#[test]
fn plugin_new_builds_anywhere_and_passes_its_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "new", "demo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = dir.path().join("demo");
    let build = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        .current_dir(&project)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let out = Command::new(BIN)
        .args([
            "plugin",
            "test",
            "target/wasm32-wasip2/release/demo.wasm",
            "--fixtures",
            "fixtures",
        ])
        .current_dir(&project)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    // Refuses to overwrite, and refuses names that are not crate names.
    let again = Command::new(BIN)
        .args(["plugin", "new", "demo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let bad = Command::new(BIN)
        .args(["plugin", "new", "Bad Name"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[tokio::test]
async fn raw_json_reaches_only_plugins_that_ask_for_it() {
    let sources = "sources:\n  \
        hooks: {kind: generic, plugins: [echo_raw]}\n  \
        prom: {kind: prometheus, plugins: [echo_plain]}\n";
    let plugins = format!(
        "plugins:\n  echo_raw: {{path: '{p}', raw: true}}\n  echo_plain: {{path: '{p}'}}\n",
        p = dist("echo-raw")
    );
    let app = spawn_app_sources(sources, &plugins).await;
    let sent = r#"{"title":"Backup failed","status":"firing","labels":{"host":"db1"}}"#;
    expect(
        app.post_raw("/ingest/hooks", Some("application/json"), sent, &[])
            .await,
        202,
    )
    .await;
    expect(app.prom(json!([{"labels": {"alertname": "X"}}])).await, 200).await;
    app.process().await;
    let tickets = app.tickets().await;
    let hook = tickets.iter().find(|t| t["source"] == "hooks").unwrap();
    let body = hook["body"].as_str().unwrap();
    let raw: Value = serde_json::from_str(body.strip_prefix("raw: ").unwrap()).unwrap();
    assert_eq!(
        raw,
        serde_json::from_str::<Value>(sent).unwrap(),
        "the sender's own JSON"
    );
    let prom = tickets.iter().find(|t| t["source"] == "prom").unwrap();
    assert_eq!(
        prom["body"], "raw: none",
        "not asked for, not given (nor kept)"
    );
}
