//! A real Prometheus 2.42 (Debian's package) with an always-firing rule, alerting to tocsin through
//! `path_prefix: /ingest/prom`: one open ticket; when the rule stops firing, the ticket resolves.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn rules(expr: &str) -> String {
    // Same group, alert name and labels in both versions: Prometheus carries the alert's state across the
    // reload and sends its resolution (deleting the rule would make it vanish silently).
    format!(
        "groups:\n- name: tocsin-test\n  rules:\n  - alert: AlwaysFiring\n    expr: {expr}\n    \
         labels: {{severity: page, team: infra}}\n    annotations: {{summary: Always firing test alert}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alert_opens_and_resolves_a_ticket() {
    let app = spawn_app_real_clock().await;
    let dir = tempfile::tempdir().unwrap();
    let tocsin = app.base.trim_start_matches("http://").to_string();
    let rules_file = dir.path().join("rules.yml");
    std::fs::write(&rules_file, rules("vector(1)")).unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{evaluation_interval: 1s, external_labels: {{cluster: lab1}}}}\n\
             rule_files: [{rules}]\n\
             alerting:\n  alertmanagers:\n  - api_version: v2\n    path_prefix: /ingest/prom\n    \
             static_configs: [{{targets: ['{tocsin}']}}]\n",
            rules = rules_file.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = ChildGuard(
        Command::new(monitoring_tool("root/usr/bin/prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .arg("--rules.alert.resend-delay=500ms")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Prometheus hands new alertmanager targets to its notifier about every 5 s: allow plenty.
    let tickets = app
        .wait_for(
            "an open ticket from Prometheus",
            Duration::from_secs(60),
            |t| t.len() == 1 && t[0]["state"] == "open",
        )
        .await;
    let t = &tickets[0];
    assert_eq!(t["title"], "Always firing test alert");
    assert_eq!(t["severity"], "critical");
    assert_eq!(t["labels"]["cluster"], "lab1");
    assert_eq!(t["source"], "prom");
    assert!(t["source_url"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr="));

    // The rule stops firing: rewrite it and reload (the endpoint answers once the reload is applied).
    std::fs::write(&rules_file, rules("vector(1) < 0")).unwrap();
    let r = app
        .client
        .post(format!("http://127.0.0.1:{port}/-/reload"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "reload failed: {}",
        r.text().await.unwrap()
    );

    app.wait_for("the ticket to resolve", Duration::from_secs(60), |t| {
        t.len() == 1 && t[0]["state"] == "resolved"
    })
    .await;
    let kinds = app.timeline_kinds("T-1").await;
    assert_eq!(kinds.first().map(String::as_str), Some("opened"));
    assert_eq!(kinds.last().map(String::as_str), Some("resolved"));
    assert_eq!(kinds.len(), 2, "resends must not add entries: {kinds:?}");
}
