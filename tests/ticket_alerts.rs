//! `GET /api/tickets/{id}/alerts` (JSON and `format=fixture`) and `plugin test --event` with an
//! `/api/dropped` entry: what the server saw becomes a plugin test case.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn config() -> (String, String) {
    (
        "sources:\n  prom: {kind: prometheus, plugins: [suppress, enrich]}\n".to_string(),
        format!(
            "plugins:\n  \
               suppress: {{path: '{}', config: {{drop: 'alertname=\"Watchdog\"'}}}}\n  \
               enrich: {{path: '{}', tables: {{owners: {{checkout: payments}}}}}}\n",
            dist("suppress-noise"),
            dist("enrich"),
        ),
    )
}

#[tokio::test]
async fn a_tickets_alert_comes_back_as_a_fixture_that_plugin_test_runs() {
    let (sources, plugins) = config();
    let app = spawn_app_sources(&sources, &plugins).await;
    let alerts = json!([
        {"labels": {"alertname": "DiskFull", "service": "checkout", "severity": "critical"},
         "annotations": {"summary": "Disk full\n# not: a comment\"'"}},
        {"labels": {"alertname": "Watchdog", "severity": "none"}},
    ]);
    expect(app.prom(alerts).await, 200).await;
    assert_eq!(app.process().await, 2);

    let json = expect(app.api_get("/api/tickets/T-1/alerts", VIEWER).await, 200).await;
    let event = &json["alerts"][0];
    assert_eq!(event["source"], "prom");
    assert_eq!(event["source_kind"], "prometheus");
    assert_eq!(event["labels"]["service"], "checkout");
    assert_eq!(event["severity"], "critical");

    let resp = app
        .api_get("/api/tickets/T-1/alerts?format=fixture", VIEWER)
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/yaml"));
    let yaml = resp.text().await.unwrap();
    assert!(yaml.starts_with("# T-1 from source prom"), "{yaml}");
    // The annotation's newline and quotes stay inside the YAML value.
    let cases: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(
        cases[0]["event"]["annotations"]["summary"],
        "Disk full\n# not: a comment\"'"
    );

    // Pasted into fixtures with an expectation, the plugin test runs it.
    let dir = tempfile::tempdir().unwrap();
    let with_expect = yaml.replace("  event:", "  expect: pass\n  event:");
    std::fs::write(dir.path().join("t1.yaml"), with_expect).unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist("enrich"), "--fixtures"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok   t1.yaml: T-1"), "{stdout}");

    // The dropped Watchdog, saved from /api/dropped, is an --event.
    let dropped = expect(app.api_get("/api/dropped", VIEWER).await, 200).await;
    let file = dir.path().join("dropped.json");
    std::fs::write(&file, dropped["dropped"][0].to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist("suppress-noise"), "--event"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // No config given: nothing to drop by, so the plugin passes what it dropped with its config.
    assert_eq!(v["decision"], "pass", "{v}");
    assert_eq!(v["error"], Value::Null, "{v}");
    // The whole answer, holding one entry, is taken too.
    std::fs::write(&file, dropped.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist("suppress-noise"), "--event"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn ticket_alerts_need_a_member_and_a_known_format() {
    let (sources, plugins) = config();
    let app = spawn_app_sources(&sources, &plugins).await;
    expect(app.prom(json!([{"labels": {"alertname": "A"}}])).await, 200).await;
    app.process().await;
    let resp = app
        .client
        .get(format!("{}/api/tickets/T-1/alerts", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body = expect(
        app.api_get("/api/tickets/T-1/alerts?format=xml", VIEWER)
            .await,
        400,
    )
    .await;
    assert!(
        body.to_string().contains("format must be json or fixture"),
        "{body}"
    );
    expect(app.api_get("/api/tickets/T-99/alerts", VIEWER).await, 404).await;
}

/// `/api/replay` gives what a source received with what happened then; `plugin test --replay` runs a
/// changed chain over it (from a saved answer and straight from the server) and shows the difference.
#[tokio::test]
async fn replay_shows_what_a_changed_chain_would_do_differently() {
    let (sources, plugins) = config();
    let app = spawn_app_sources(&sources, &plugins).await;
    let alerts = json!([
        {"labels": {"alertname": "DiskFull", "service": "checkout", "severity": "critical"}},
        {"labels": {"alertname": "Watchdog", "severity": "none"}},
    ]);
    expect(app.prom(alerts).await, 200).await;
    assert_eq!(app.process().await, 2);

    let answer = expect(
        app.api_get("/api/replay?source=prom&since=1h", VIEWER)
            .await,
        200,
    )
    .await;
    let got = answer["alerts"].as_array().unwrap();
    assert_eq!(got.len(), 2, "{answer:#}");
    assert_eq!(got[0]["ticket"], "T-1");
    assert_eq!(got[0]["then"]["labels"]["team"], "payments");
    assert_eq!(got[1]["then"]["dropped"]["plugin"], "suppress");
    assert_eq!(got[1]["event"]["labels"]["alertname"], "Watchdog");
    let body = expect(app.api_get("/api/replay?source=nope", VIEWER).await, 400).await;
    assert!(body.to_string().contains("no source `nope`"), "{body}");
    expect(
        app.api_get("/api/replay?source=prom&since=soon", VIEWER)
            .await,
        400,
    )
    .await;
    let all = expect(
        app.api_get("/api/replay?source=prom&since=500000000y", VIEWER)
            .await,
        200,
    )
    .await;
    assert_eq!(all["alerts"].as_array().unwrap().len(), 2, "{all}");

    // The new chain drops nothing and owns checkout for another team.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yaml");
    std::fs::write(
        &cfg,
        format!(
            "storage: sqlite://{}\nplugin_cache: {}\n\
             sources:\n  prom: {{kind: prometheus, plugins: [suppress, enrich]}}\n\
             plugins:\n  suppress: {{path: '{}'}}\n  \
             enrich: {{path: '{}', tables: {{owners: {{checkout: shop}}}}}}\n",
            dir.path().join("t.db").display(),
            dir.path().join("cache").display(),
            dist("suppress-noise"),
            dist("enrich"),
        ),
    )
    .unwrap();
    let saved = dir.path().join("replay.json");
    std::fs::write(&saved, answer.to_string()).unwrap();
    let run = |from: String, token: &'static str| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args([
                    "plugin", "test", "--replay", &from, "--source", "prom", "--config",
                ])
                .arg(&cfg)
                .env("TOCSIN_TOKEN", token)
                .output()
                .unwrap()
        })
    };
    for from in [saved.display().to_string(), app.base.clone()] {
        let out = run(from.clone(), VIEWER).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{from}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The ticket's labels were enriched then: enrich keeps a team the alert already has, so
        // only the drop changes.
        assert!(
            stdout.contains("dropped alert \"Watchdog\""),
            "{from}: {stdout}"
        );
        assert!(
            stdout.contains("dropped: {\"plugin\":\"suppress\""),
            "{stdout}"
        );
        assert!(stdout.contains("→ null"), "{stdout}");
        assert!(
            stdout.contains("2 alerts replayed: 1 would change"),
            "{stdout}"
        );
    }
    // A wrong token is refused, by the server, and said so.
    let out = run(app.base.clone(), "nobody-token-0000000").await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
