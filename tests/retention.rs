//! Retention: resolved tickets older than `tickets.retention` go, with their timelines, live feed and
//! search rows, in small batches; open ones stay; ticket numbers are never reused; `/metrics` counts
//! what went and reads its gauges without counting every ticket.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn alert(title: &str, status: &str) -> serde_json::Value {
    json!({"title": title, "status": status, "labels": {"host": title}})
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("{line_start} missing:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn resolved_tickets_past_retention_go_with_everything_they_had() {
    let app = spawn_app_with("").await;
    expect(app.hook(alert("still-open", "firing")).await, 202).await;
    expect(app.hook(alert("quartzite", "firing")).await, 202).await;
    app.process().await;
    expect(app.hook(alert("quartzite", "resolved")).await, 202).await;
    app.process().await;
    let old = app.tickets().await;
    assert_eq!(old.len(), 2);
    let gone = old.iter().find(|t| t["state"] == "resolved").unwrap();
    let gone_ref = format!("T-{}", gone["number"]);
    assert_eq!(gone_ref, "T-2");

    // 89 days later nothing goes; past 90 the resolved one does.
    app.advance(Duration::from_secs(89 * 24 * 3600));
    assert_eq!(app.app.processor.retain().await.unwrap(), 0);
    app.advance(Duration::from_secs(2 * 24 * 3600));
    assert_eq!(app.app.processor.retain().await.unwrap(), 1);

    let left = app.tickets().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["state"], "open");
    expect(
        app.api_get(&format!("/api/tickets/{gone_ref}"), ADMIN)
            .await,
        404,
    )
    .await;
    let found = expect(app.api_get("/api/tickets?q=quartzite", ADMIN).await, 200).await;
    assert_eq!(found["tickets"], json!([]), "search rows went too");

    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "tocsin_tickets_purged_total "), 1.0);
    assert_eq!(metric(&metrics, "tocsin_tickets{state=\"resolved\"} "), 0.0);
    assert_eq!(metric(&metrics, "tocsin_tickets{state=\"open\"} "), 1.0);

    // The highest number went; it is not given out again.
    expect(app.hook(alert("newcomer", "firing")).await, 202).await;
    app.process().await;
    let newest = app.tickets().await;
    let numbers: Vec<i64> = newest
        .iter()
        .map(|t| t["number"].as_i64().unwrap())
        .collect();
    assert!(numbers.contains(&3), "{numbers:?}");
}

#[test]
fn retention_zero_keeps_tickets_for_ever() {
    let cfg = tocsin::config::Config::from_yaml(
        "tickets: {retention: 0s}\n",
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    assert_eq!(cfg.tickets.retention(), None);
}
