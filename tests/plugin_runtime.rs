//! What a plugin did and how it fails, in the server: the per-key breaker, `disable_after: 0`, the
//! switch-off ticket's room, `plugin_decided` entries, plugin logs on failures, unknown rooms, and
//! failed reloads. Uses plugins/testdata/chaos (see its doc comment).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const SOURCES: &str = "sources:\n  hooks: {kind: generic, plugins: [chaos]}\n";
const ROOMS: &str = "rooms:\n  \
    ops: {sink: {kind: webhook, url: \"http://127.0.0.1:9/ops\"}}\n  \
    db: {sink: {kind: webhook, url: \"http://127.0.0.1:9/db\"}}\n";

fn chaos(extra: &str) -> String {
    format!(
        "{ROOMS}plugins:\n  chaos: {{path: '{}', config: {{default_room: ops}}{extra}}}\n",
        dist("chaos")
    )
}

fn alert(fp: &str, labels: Value) -> Value {
    json!({"title": format!("alert {fp}"), "status": "firing", "severity": "warning",
           "fingerprint": fp, "labels": labels})
}

async fn send(app: &TestApp, body: Value) {
    expect(app.post("/ingest/hooks", &body, &[]).await, 202).await;
}

async fn ticket(app: &TestApp, fp: &str) -> Value {
    app.tickets()
        .await
        .into_iter()
        .find(|t| t["fingerprint"] == fp)
        .unwrap_or_else(|| panic!("no ticket for {fp}"))
}

async fn failures(app: &TestApp, fp: &str) -> Vec<Value> {
    let t = ticket(app, fp).await;
    app.entries_of(t["key"].as_str().unwrap(), "plugin_failed")
        .await
}

#[tokio::test]
async fn one_looping_alert_is_skipped_for_a_while_and_the_others_keep_their_routing() {
    let app = spawn_app_sources(
        SOURCES,
        &chaos(", limits: {fuel: 2000000}, breaker: {after: 3, cooldown: 10m}"),
    )
    .await;
    // The same looping alert, resent twelve times (more than the default `disable_after: 10`).
    for _ in 0..12 {
        send(&app, alert("loop", json!({"chaos": "loop"}))).await;
        app.process().await;
    }
    send(&app, alert("staging", json!({"env": "staging"}))).await;
    app.process().await;

    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    let p = &status["plugins"][0];
    assert_eq!(
        p["disabled"], false,
        "one bad key does not switch it off: {p}"
    );
    assert_eq!(p["skipped_keys"][0]["key"], "hooks/loop", "{p}");
    assert_eq!(
        ticket(&app, "staging").await["rooms"],
        json!(["ops"]),
        "other alerts are still routed"
    );
    let calls = app.metrics().await;
    assert!(
        calls.contains("tocsin_plugin_calls_total{plugin=\"chaos\",outcome=\"skipped\"} 9"),
        "three calls failed, the nine after were skipped: {calls}"
    );
    assert!(!app.tickets().await.iter().any(|t| t["source"] == "tocsin"));
    // The timeline says it failed on opening, and that it skips the key from the third failure on
    // (a resend: recorded anyway, once), and nothing for the other resends.
    let f = failures(&app, "loop").await;
    let kinds: Vec<&str> = f
        .iter()
        .map(|e| e["data"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["out_of_fuel", "breaker_open"], "{f:#?}");
    assert!(f[1]["text"]
        .as_str()
        .unwrap()
        .contains("skips them until 2026-11-22T12:10:00"));

    // After the cooldown the key is tried again (and fails again); a success closes it.
    app.advance(Duration::from_secs(601));
    send(&app, alert("loop", json!({"chaos": "loop"}))).await;
    app.process().await;
    let calls = app.metrics().await;
    assert!(
        calls.contains("tocsin_plugin_calls_total{plugin=\"chaos\",outcome=\"out_of_fuel\"} 4"),
        "{calls}"
    );
    app.advance(Duration::from_secs(601));
    send(&app, alert("loop", json!({}))).await;
    app.process().await;
    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    assert_eq!(status["plugins"][0]["skipped_keys"], json!([]), "{status}");
}

#[tokio::test]
async fn many_failing_keys_switch_it_off_to_its_alert_room_and_zero_means_never() {
    let app = spawn_app_sources(SOURCES, &chaos(", disable_after: 3, alert_room: db")).await;
    for i in 0..3 {
        send(&app, alert(&format!("e{i}"), json!({"chaos": "err"}))).await;
    }
    app.process().await;
    app.process().await; // the system ticket appended during the first pass
    let system = app
        .tickets()
        .await
        .into_iter()
        .find(|t| t["source"] == "tocsin")
        .expect("a system ticket");
    assert_eq!(system["rooms"], json!(["db"]), "{system}");

    let never = spawn_app_sources(SOURCES, &chaos(", disable_after: 0")).await;
    for i in 0..30 {
        send(&never, alert(&format!("e{i}"), json!({"chaos": "err"}))).await;
    }
    never.process().await;
    let status = expect(never.api_get("/api/plugins", VIEWER).await, 200).await;
    assert_eq!(status["plugins"][0]["disabled"], false, "{status}");
    assert!(!never
        .tickets()
        .await
        .iter()
        .any(|t| t["source"] == "tocsin"));
}

#[tokio::test]
async fn each_change_a_plugin_made_is_on_the_timeline_once() {
    let app = spawn_app_sources(SOURCES, &chaos("")).await;
    send(
        &app,
        alert("db1", json!({"raise": "critical", "room": "db"})),
    )
    .await;
    app.process().await;
    let t = ticket(&app, "db1").await;
    let key = t["key"].as_str().unwrap().to_string();
    let decided = app.entries_of(&key, "plugin_decided").await;
    let fields: Vec<(&str, &str, &str)> = decided
        .iter()
        .map(|e| {
            (
                e["data"]["field"].as_str().unwrap(),
                e["data"]["before"].as_str().unwrap_or("-"),
                e["data"]["after"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("severity", "warning", "critical"),
            ("room", "-", "db"),
            ("tag", "-", "chaos-checked")
        ]
    );
    assert_eq!(decided[0]["data"]["plugin"], "chaos");
    assert_eq!(
        decided[0]["text"],
        "Plugin chaos changed the severity from warning to critical."
    );
    // Resends the plugin decides about the same way add nothing; a new decision is news.
    for _ in 0..3 {
        send(
            &app,
            alert("db1", json!({"raise": "critical", "room": "db"})),
        )
        .await;
        app.process().await;
    }
    assert_eq!(app.entries_of(&key, "plugin_decided").await.len(), 3);
    send(
        &app,
        alert("db1", json!({"raise": "critical", "room": "ops"})),
    )
    .await;
    app.process().await;
    let decided = app.entries_of(&key, "plugin_decided").await;
    assert_eq!(decided.len(), 4, "{decided:#?}");
    assert_eq!(decided[3]["data"]["after"], "ops");
}

#[tokio::test]
async fn a_failure_carries_the_plugins_last_log_lines() {
    let app = spawn_app_sources(SOURCES, &chaos("")).await;
    send(&app, alert("e1", json!({"chaos": "err"}))).await;
    app.process().await;
    let f = &failures(&app, "e1").await[0];
    assert_eq!(
        f["data"]["logs"],
        json!([
            "debug: looking at \"alert e1\"",
            "info: chaos=err: about to fail",
            "warn: this alert asked for an error"
        ]),
        "{f}"
    );
}

#[tokio::test]
async fn a_room_that_does_not_exist_is_said_once_per_ticket() {
    let app = spawn_app_sources(SOURCES, &chaos("")).await;
    for _ in 0..3 {
        send(&app, alert("x1", json!({"room": "dbx"}))).await;
        app.process().await;
    }
    let t = ticket(&app, "x1").await;
    let unknown = app
        .entries_of(t["key"].as_str().unwrap(), "unknown_room")
        .await;
    assert_eq!(unknown.len(), 1, "{unknown:#?}");
    assert_eq!(unknown[0]["data"]["room"], "dbx");
    assert_eq!(unknown[0]["data"]["plugin"], "chaos");
    assert!(unknown[0]["text"]
        .as_str()
        .unwrap()
        .contains("room dbx, which is not configured"));
}

#[tokio::test]
async fn a_bad_file_on_reload_is_a_422_naming_it_and_the_old_one_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chaos.wasm");
    std::fs::copy(dist("chaos"), &file).unwrap();
    let app = spawn_app_sources(
        SOURCES,
        &format!(
            "{ROOMS}plugins:\n  chaos: {{path: '{}', config: {{default_room: ops}}}}\n",
            file.display()
        ),
    )
    .await;
    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    assert_eq!(status["plugins"][0]["changed_on_disk"], false, "{status}");

    // The file is overwritten with something that is not a component (the source, say).
    std::fs::write(
        &file,
        "//! chaos: a routing plugin\nuse tocsin_plugin_sdk::prelude::*;\n",
    )
    .unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let r = expect(app.api_post("/-/reload", ADMIN, None).await, 422).await;
    assert_eq!(r["error"], "plugin_load_failed");
    assert_eq!(r["failed"][0]["plugin"], "chaos");
    let reason = r["failed"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("looks like text"), "{reason}");
    assert!(
        !reason.contains("0x") && !reason.contains('\n'),
        "no byte dump: {reason}"
    );

    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    let p = &status["plugins"][0];
    assert_eq!(p["changed_on_disk"], true, "{p}");
    assert!(p["last_reload_failure"]["reason"]
        .as_str()
        .unwrap()
        .contains("looks like text"));
    assert!(p["file_modified"].as_str().is_some(), "{p}");
    assert_eq!(
        status["reload_failures"]["chaos"]["reason"],
        p["last_reload_failure"]["reason"]
    );

    send(&app, alert("after", json!({}))).await;
    app.process().await;
    assert_eq!(
        ticket(&app, "after").await["rooms"],
        json!(["ops"]),
        "the old version routes"
    );

    // Fixed: the failure is gone.
    std::fs::copy(dist("chaos"), &file).unwrap();
    expect(app.api_post("/-/reload", ADMIN, None).await, 200).await;
    let status = expect(app.api_get("/api/plugins", VIEWER).await, 200).await;
    assert_eq!(status["plugins"][0]["last_reload_failure"], Value::Null);
    assert_eq!(status["reload_failures"], json!({}));
    assert_eq!(
        status["plugins"][0]["changed_on_disk"], false,
        "the same bytes again"
    );
}

#[test]
fn the_config_takes_disable_after_zero_and_checks_alert_room() {
    let config = |extra: &str| {
        let yaml = config_yaml_with(
            std::path::Path::new("/tmp/x.db"),
            SOURCES,
            &format!("{ROOMS}plugins:\n  chaos: {{path: chaos.wasm{extra}}}\n"),
        );
        tocsin::config::Config::from_yaml(&yaml, std::path::Path::new("t.yaml"))
    };
    let ok =
        config(", disable_after: 0, alert_room: ops, breaker: {after: 5, cooldown: 1h}").unwrap();
    assert_eq!(ok.plugins["chaos"].disable_after, 0);
    let bad = config(", alert_room: dbx, breaker: {cooldown: 0s}").unwrap_err();
    let problems: Vec<String> = bad
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("plugins.chaos.alert_room: `dbx` is not a room")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("plugins.chaos.breaker.cooldown")),
        "{problems:?}"
    );
}
