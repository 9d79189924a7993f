//! A real Prometheus alerting to three tocsin instances on one database (as it should: Prometheus
//! sends every alert to every Alertmanager it lists): the alert arrives three times over, and must
//! make one ticket, one opening on its timeline and one message in the room.

#[path = "common/chaos.rs"]
mod chaos;
#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use chaos::*;
use cluster::*;
use common::{free_port, monitoring_tool, ChildGuard};

/// A sample of `/metrics` on `node` (the line starting with `series`), 0 when absent.
async fn metric(node: &Node, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", node.base()))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0.0),
    )
}

/// How many alerts node `node` accepted from the prometheus source.
async fn received(node: &Node) -> Option<f64> {
    metric(
        node,
        "tocsin_alerts_received_total{source=\"prom\",outcome=\"accepted\"} ",
    )
    .await
}

#[test]
fn prometheus_listing_three_instances_makes_one_ticket_one_entry_one_message() {
    run(async {
        let rec = Recorder::start().await;
        let sources = "sources:\n  prom: {kind: prometheus, resolve_timeout: 5m}\n";
        let yaml = config(Some(sources), &rec.url, "", "");
        let cluster = Cluster::start(3, &yaml).await;

        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yml");
        std::fs::write(
            &rules,
            "groups:\n- name: chaos\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n    \
             labels: {severity: page}\n    annotations: {summary: Always firing for three}\n",
        )
        .unwrap();
        let targets: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("'{}'", n.addr()))
            .collect();
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(
            &config_file,
            format!(
                "global: {{evaluation_interval: 1s}}\n\
                 rule_files: [{rules}]\n\
                 alerting:\n  alertmanagers:\n  - api_version: v2\n    path_prefix: /ingest/prom\n    \
                 static_configs: [{{targets: [{targets}]}}]\n",
                rules = rules.display(),
                targets = targets.join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let _prometheus = ChildGuard(
            Command::new(monitoring_tool("root/usr/bin/prometheus"))
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--rules.alert.resend-delay=500ms")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );

        // Each node gets the alert, and a resend, on its own (Prometheus hands new targets to its
        // notifier about every 5 s: allow plenty).
        for node in &cluster.nodes {
            wait_until(
                &format!("node {} to receive the alert twice", node.name),
                Duration::from_secs(90),
                || async { received(node).await.is_some_and(|n| n >= 2.0) },
            )
            .await;
        }
        // Everything they took is applied (the journal, shared, is empty) and the room's backlog sent.
        let node = &cluster.nodes[0];
        let tickets = wait_for("the ticket, delivered", Duration::from_secs(30), || async {
            let journal = metric(node, "tocsin_journal_backlog ").await?;
            let idle = journal == 0.0 && cluster.backlog(ROOM).await == Some(0);
            let tickets = node.tickets().await?;
            (idle && !tickets.is_empty() && rec.count() >= 1).then_some(tickets)
        })
        .await;
        assert_eq!(tickets.len(), 1, "one alert, one ticket: {tickets:#?}");
        let key = tickets[0]["key"].as_str().unwrap();
        let timeline = node.timeline(key).await.unwrap();
        let opened = timeline.iter().filter(|e| e["kind"] == "opened").count();
        let fired = timeline
            .iter()
            .filter(|e| e["kind"] == "refired" || e["kind"] == "reopened")
            .count();
        assert_eq!((opened, fired), (1, 0), "timeline: {timeline:#?}");
        let delivered = timeline
            .iter()
            .filter(|e| e["kind"] == "delivered" && e["data"]["room"] == ROOM)
            .count();
        assert_eq!(delivered, 1, "timeline: {timeline:#?}");
        let records = rec.records();
        assert_eq!(records.len(), 1, "one message in the room: {records:#?}");
        assert_eq!(records[0].body["event"], "opened");
        assert_eq!(records[0].body["ticket"]["ref"], key);
    });
}
