//! A real Alertmanager 0.25 (Debian's package) with a webhook receiver pointed at tocsin: one ticket per
//! alert (keyed by Alertmanager's own fingerprint), and its resolved notification resolves them.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use tocsin::domain::alert::{labels_fingerprint, Labels};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_makes_and_resolves_tickets() {
    let app = spawn_app_real_clock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("am.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{resolve_timeout: 1h}}\n\
             route: {{receiver: tocsin, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\n\
             receivers:\n- name: tocsin\n  webhook_configs:\n  - url: {base}/ingest/am\n    send_resolved: true\n    \
             http_config: {{authorization: {{type: Bearer, credentials: {AM_TOKEN}}}}}\n",
            base = app.base
        ),
    )
    .unwrap();
    let port = free_port();
    // The launcher runs Debian's binary with its default template available (see fetch-monitoring.sh).
    let _alertmanager = ChildGuard(
        Command::new(monitoring_tool("bin/prometheus-alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let am = format!("http://127.0.0.1:{port}");
    wait_http_ok(
        &app.client,
        &format!("{am}/-/ready"),
        Duration::from_secs(30),
    )
    .await;

    let labels = |n: &str| json!({"alertname": "DiskFull", "instance": format!("db{n}"), "severity": "warning"});
    let post = |ends: Option<String>| {
        let alerts: Vec<_> = ["1", "2"]
            .iter()
            .map(|n| {
                let mut a = json!({"labels": labels(n), "annotations": {"summary": format!("disk full on db{n}")}});
                if let Some(e) = &ends {
                    a["endsAt"] = json!(e);
                }
                a
            })
            .collect();
        app.client
            .post(format!("{am}/api/v2/alerts"))
            .json(&alerts)
            .send()
    };
    assert!(post(None).await.unwrap().status().is_success());

    let tickets = app
        .wait_for(
            "two open tickets from Alertmanager",
            Duration::from_secs(30),
            |t| t.len() == 2 && t.iter().all(|t| t["state"] == "open"),
        )
        .await;
    for n in ["1", "2"] {
        let l: Labels = serde_json::from_value(labels(n)).unwrap();
        let fp = labels_fingerprint(&l);
        let t = tickets.iter().find(|t| t["fingerprint"] == fp.as_str());
        let t = t.unwrap_or_else(|| {
            panic!("no ticket keyed by Alertmanager's fingerprint {fp}: {tickets:#?}")
        });
        assert_eq!(t["title"], format!("disk full on db{n}"));
        assert_eq!(t["source"], "am");
    }

    // Resolve both at Alertmanager: it sends the resolved notification at the next group_interval tick.
    let now = tocsin::clock::Clock::now(&tocsin::clock::SystemClock).to_rfc3339();
    assert!(post(Some(now)).await.unwrap().status().is_success());
    app.wait_for("both tickets to resolve", Duration::from_secs(30), |t| {
        t.len() == 2
            && t.iter()
                .all(|t| t["state"] == "resolved" && t["resolution"]["by"] == "source")
    })
    .await;
    for key in ["T-1", "T-2"] {
        assert_eq!(app.timeline_kinds(key).await, ["opened", "resolved"]);
    }
}
