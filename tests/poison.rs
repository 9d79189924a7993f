//! One bad alert must never stop alerting: times ingest cannot store are refused or read as absent, a
//! journal row that cannot be decoded or applied is moved aside (dead journal, a system ticket, admin
//! API) while the rows behind it go on, and `/readyz` tells when processing stalls or the database is
//! unwell.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(app.db_path()).unwrap()
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
        .parse()
        .unwrap()
}

async fn dead(app: &TestApp) -> Vec<Value> {
    let v = expect(app.api_get("/api/journal/dead", ADMIN).await, 200).await;
    v["dead"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_year_one_alert_is_taken_and_does_not_block_the_alerts_behind_it() {
    let app = spawn_app_sources(
        "sources:\n  prom: {kind: prometheus, resolve_timeout: 5m}\n  pd: {kind: pagerduty}\n",
        "",
    )
    .await;
    // Year 2 locally is year 1 in UTC: Go's "unset", so the firing has no start time of its own.
    let mut poison = prom_alert("Poison", None, None);
    poison["startsAt"] = json!("0002-01-01T00:00:00+01:00");
    expect(app.prom(json!([poison])).await, 200).await;
    let mut event: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/payloads/pagerduty/trigger.json"),
        )
        .unwrap(),
    )
    .unwrap();
    event["payload"]["timestamp"] = json!("0002-01-01T00:00:00+01:00");
    expect(app.post("/ingest/pd/v2/enqueue", &event, &[]).await, 202).await;
    expect(
        app.prom(json!([prom_alert("Behind", None, None)])).await,
        200,
    )
    .await;

    app.process().await;
    let mut titles: Vec<String> = app
        .tickets()
        .await
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(titles.contains(&"Poison is happening".to_string()));
    assert!(titles.contains(&"Behind is happening".to_string()));
    assert!(dead(&app).await.is_empty());
    assert_eq!(readyz(&app).await.0, 200);
}

#[tokio::test]
async fn times_that_cannot_be_stored_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    for (field, time) in [
        ("startsAt", "1969-12-31T23:59:59Z"),
        ("startsAt", "9999-12-31T23:59:59-01:00"),
        ("endsAt", "0500-01-01T00:00:00Z"),
    ] {
        let mut a = prom_alert("Odd", None, None);
        a[field] = json!(time);
        let body = expect(app.prom(json!([a])).await, 400).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{detail}");
    }
    app.process().await;
    assert!(app.tickets().await.is_empty());
}

#[tokio::test]
async fn an_unreadable_journal_row_is_moved_aside_with_a_system_ticket_and_can_be_retried() {
    let app = spawn_app().await;
    for name in ["First", "Broken", "Third"] {
        expect(app.prom(json!([prom_alert(name, None, None)])).await, 200).await;
    }
    // What a row written by a buggy or older version could hold.
    let stored: String = db(&app)
        .query_row("SELECT alert FROM journal WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    db(&app)
        .execute(
            "UPDATE journal SET alert = '{\"source\": \"prom\", \"title\": 7' WHERE id = 2",
            [],
        )
        .unwrap();

    app.process().await;
    let tickets = app.tickets().await;
    let titles: Vec<&str> = tickets
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"First is happening"), "{titles:?}");
    assert!(titles.contains(&"Third is happening"), "{titles:?}");
    let system = tickets
        .iter()
        .find(|t| t["source"] == "tocsin")
        .expect("a system ticket names the row");
    assert_eq!(system["state"], "open");
    assert!(system["title"].as_str().unwrap().contains("journal row 2"));

    let rows = dead(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["journal_id"], 2);
    assert!(rows[0]["reason"]
        .as_str()
        .unwrap()
        .contains("cannot be read"));
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "tocsin_journal_dead"), 1.0);
    assert_eq!(
        readyz(&app).await.0,
        200,
        "a dead row does not stall processing"
    );

    // Viewers and editors cannot touch it.
    let id = rows[0]["id"].as_i64().unwrap();
    expect(app.api_get("/api/journal/dead", VIEWER).await, 403).await;
    expect(
        app.api_post(&format!("/api/journal/dead/{id}/retry"), EDITOR, None)
            .await,
        403,
    )
    .await;

    // After the fix (here: the row as it was first stored), an admin retries it.
    db(&app)
        .execute(
            "UPDATE dead_journal SET alert = ?1 WHERE id = ?2",
            rusqlite::params![stored, id],
        )
        .unwrap();
    expect(
        app.api_post(&format!("/api/journal/dead/{id}/retry"), ADMIN, None)
            .await,
        200,
    )
    .await;
    app.process().await;
    let tickets = app.tickets().await;
    assert!(tickets.iter().any(|t| t["title"] == "Broken is happening"));
    let system = tickets.iter().find(|t| t["source"] == "tocsin").unwrap();
    assert_eq!(system["state"], "resolved");
    assert!(dead(&app).await.is_empty());
    expect(
        app.api_post(&format!("/api/journal/dead/{id}/retry"), ADMIN, None)
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn a_row_that_fails_to_apply_goes_dead_alone_and_can_be_deleted() {
    let app = spawn_app().await;
    // A real SQLite failure for one alert's ticket, whatever else is in its batch.
    db(&app)
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON tickets WHEN NEW.title = 'Poison is happening' \
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
        )
        .unwrap();
    let alerts: Vec<Value> = ["Before", "Poison", "After"]
        .iter()
        .map(|n| prom_alert(n, None, None))
        .collect();
    expect(app.prom(Value::Array(alerts)).await, 200).await;
    app.process().await;

    let tickets = app.tickets().await;
    let titles: Vec<&str> = tickets
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Before is happening"), "{titles:?}");
    assert!(titles.contains(&"After is happening"), "{titles:?}");
    assert!(!titles.contains(&"Poison is happening"), "{titles:?}");
    let rows = dead(&app).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("poisoned row"),
        "{rows:?}"
    );
    let id = rows[0]["id"].as_i64().unwrap();
    let r = app
        .client
        .delete(format!("{}/api/journal/dead/{id}", app.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    expect(r, 200).await;
    app.process().await;
    assert!(dead(&app).await.is_empty());
    let system = app
        .tickets()
        .await
        .into_iter()
        .find(|t| t["source"] == "tocsin")
        .unwrap();
    assert_eq!(system["state"], "resolved");
}

#[tokio::test]
async fn readyz_says_not_ready_while_processing_is_stalled() {
    let app = spawn_app().await;
    assert_eq!(readyz(&app).await, (200, json!({"status": "ready"})));
    expect(
        app.prom(json!([prom_alert("Waiting", None, None)])).await,
        200,
    )
    .await;
    app.advance(Duration::from_secs(29));
    assert_eq!(readyz(&app).await.0, 200);
    app.advance(Duration::from_secs(2));
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503);
    assert!(
        body["detail"].as_str().unwrap().contains("stalled"),
        "{body}"
    );
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "tocsin_ready"), 0.0);
    assert_eq!(metric(&metrics, "tocsin_journal_oldest_age_seconds"), 31.0);

    app.process().await;
    assert_eq!(readyz(&app).await.0, 200);
    assert_eq!(metric(&app.metrics().await, "tocsin_ready"), 1.0);
}

#[tokio::test]
async fn a_corrupt_database_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tocsin.db");
    {
        // Pages of a table tocsin never reads, so it starts, and quick_check is what finds them.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE filler (x BLOB);").unwrap();
        for _ in 0..200 {
            c.execute("INSERT INTO filler VALUES (zeroblob(3000))", [])
                .unwrap();
        }
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    for p in [pages / 2, pages / 2 + 1, pages - 3] {
        bytes[p * page..(p + 1) * page].fill(0xA5);
    }
    std::fs::write(&path, bytes).unwrap();

    let yaml = config_yaml(&path, "");
    let app = spawn_app_with_yaml(dir, yaml).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("corrupt"),
        "{body}"
    );
    assert_eq!(metric(&app.metrics().await, "tocsin_store_problem"), 1.0);
}

#[tokio::test]
async fn the_backlog_is_bounded_by_bytes_as_well_as_by_count() {
    let app = spawn_app_with("ingest: {max_backlog_bytes: 20KiB}\n").await;
    let big = |i: usize| json!({"title": format!("big {i}"), "status": "firing", "labels": {"i": i.to_string()}, "description": "x".repeat(8 * 1024)});
    for i in 0..3 {
        expect(app.hook(big(i)).await, 202).await;
    }
    let refused = expect(app.hook(big(3)).await, 429).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("bytes"),
        "{refused}"
    );
    app.process().await;
    expect(app.hook(big(3)).await, 202).await;
}
