//! Alerts in through HTTP, tickets and timelines out through the API: heartbeats, re-firing, the reopen
//! window, lease expiry, amtool's zero timestamps, member actions and roles.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn heartbeats_update_last_seen_without_timeline_entries() {
    let app = spawn_app().await;
    let start = app.now();
    for i in 0..5u32 {
        let ends = app.now().plus(4 * MIN);
        expect(
            app.prom(json!([prom_alert("DiskFull", Some(start), Some(ends))]))
                .await,
            200,
        )
        .await;
        app.process().await;
        if i < 4 {
            app.advance(MIN);
        }
    }
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0];
    assert_eq!(t["state"], "open");
    assert_eq!(t["key"], "T-1");
    assert_eq!(t["severity"], "critical");
    assert_eq!(t["title"], "DiskFull is happening");
    assert_eq!(t["resend_count"], 4);
    assert_eq!(t["firing_count"], 1);
    assert_eq!(t["last_seen"], app.now().to_rfc3339());
    assert_eq!(t["ends_at"], app.now().plus(4 * MIN).to_rfc3339());
    assert_eq!(app.timeline_kinds("T-1").await, ["opened"]);
}

#[tokio::test]
async fn refiring_and_the_reopen_window() {
    let app = spawn_app().await;
    let first = app.now();
    app.prom(json!([prom_alert(
        "CpuHot",
        Some(first),
        Some(first.plus(4 * MIN))
    )]))
    .await;
    app.process().await;

    // Resolved by the sender (endsAt in the past).
    app.advance(2 * MIN);
    app.prom(json!([prom_alert("CpuHot", Some(first), Some(app.now()))]))
        .await;
    app.process().await;
    assert_eq!(app.tickets().await[0]["state"], "resolved");

    // A new firing 10 minutes later: inside the 1h window, so the same ticket reopens.
    app.advance(10 * MIN);
    let second = app.now();
    app.prom(json!([prom_alert(
        "CpuHot",
        Some(second),
        Some(second.plus(4 * MIN))
    )]))
    .await;
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["state"], "open");
    assert_eq!(tickets[0]["firing_count"], 2);
    assert_eq!(
        app.timeline_kinds("T-1").await,
        ["opened", "resolved", "reopened"]
    );

    // While open, a new startsAt (the rule flapped between our resends) is a refire.
    app.advance(MIN);
    let third = app.now();
    app.prom(json!([prom_alert(
        "CpuHot",
        Some(third),
        Some(third.plus(4 * MIN))
    )]))
    .await;
    app.process().await;
    assert_eq!(
        app.timeline_kinds("T-1").await,
        ["opened", "resolved", "reopened", "refired"]
    );

    // Resolved, then firing again two hours later: a new ticket that links the old one.
    app.prom(json!([prom_alert("CpuHot", Some(third), Some(app.now()))]))
        .await;
    app.process().await;
    app.advance(120 * MIN);
    let fourth = app.now();
    app.prom(json!([prom_alert(
        "CpuHot",
        Some(fourth),
        Some(fourth.plus(4 * MIN))
    )]))
    .await;
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 2);
    assert_eq!(tickets[0]["key"], "T-2");
    assert_eq!(tickets[0]["state"], "open");
    assert_eq!(tickets[0]["previous_id"], tickets[1]["id"]);
    let opened = &app.timeline("T-2").await[0];
    assert_eq!(opened["data"]["follows"]["ref"], "T-1");
}

#[tokio::test]
async fn lease_expiry_resolves_without_a_resend() {
    let app = spawn_app().await;
    let start = app.now();
    app.prom(json!([prom_alert(
        "Heartbeat",
        Some(start),
        Some(start.plus(4 * MIN))
    )]))
    .await;
    app.process().await;

    app.advance(3 * MIN);
    assert_eq!(app.sweep().await, 0);
    assert_eq!(app.tickets().await[0]["state"], "open");

    app.advance(2 * MIN);
    assert_eq!(app.sweep().await, 1);
    let t = &app.tickets().await[0];
    assert_eq!(t["state"], "resolved");
    assert_eq!(t["resolution"]["by"], "expired");
    assert_eq!(t["resolved_at"], start.plus(4 * MIN).to_rfc3339());
    let entries = app.timeline("T-1").await;
    assert_eq!(entries[1]["kind"], "resolved");
    assert_eq!(entries[1]["data"]["by"], "expired");

    // The sender was only late: the same firing arriving again reopens the ticket.
    app.prom(json!([prom_alert(
        "Heartbeat",
        Some(start),
        Some(app.now().plus(4 * MIN))
    )]))
    .await;
    app.process().await;
    assert_eq!(app.tickets().await[0]["state"], "open");
    assert_eq!(
        app.timeline_kinds("T-1").await,
        ["opened", "resolved", "reopened"]
    );
}

#[tokio::test]
async fn amtool_zero_timestamps_lease_for_resolve_timeout() {
    let app = spawn_app().await;
    let zero = "0001-01-01T00:00:00.000Z";
    let alert = json!([{
        "labels": {"alertname": "DiskFull", "instance": "db1"},
        "annotations": {"summary": "disk 95% full"},
        "startsAt": zero, "endsAt": zero, "generatorURL": "",
    }]);
    // amtool reads the status first (with a member's credentials; without, it just posts).
    let status = expect(app.api_get("/api/v2/status", VIEWER).await, 200).await;
    assert_eq!(status["cluster"]["status"], "disabled");
    expect(app.post("/api/v2/alerts", &alert, &[]).await, 200).await;
    app.process().await;
    let t = &app.tickets().await[0];
    assert_eq!(t["state"], "open");
    assert_eq!(t["starts_at"], serde_json::Value::Null);
    assert_eq!(t["ends_at"], app.now().plus(5 * MIN).to_rfc3339());

    // amtool resends every minute with zero timestamps: heartbeats, not new firings.
    for _ in 0..3 {
        app.advance(MIN);
        expect(app.post("/api/v2/alerts", &alert, &[]).await, 200).await;
        app.process().await;
    }
    assert_eq!(app.timeline_kinds("T-1").await, ["opened"]);

    // It stops resending: resolve_timeout (5m) after the last one, the ticket resolves.
    app.advance(4 * MIN);
    assert_eq!(app.sweep().await, 0);
    app.advance(MIN);
    assert_eq!(app.sweep().await, 1);
    assert_eq!(app.tickets().await[0]["state"], "resolved");
}

#[tokio::test]
async fn alertmanager_webhook_is_keyed_per_alert_and_resolves() {
    let app = spawn_app().await;
    let body = |status: &str, ends: &str| {
        json!({
            "version": "4", "status": status, "receiver": "tocsin", "groupKey": "{}:{alertname=\"Bulk\"}",
            "groupLabels": {"alertname": "Bulk"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am.example:9093", "truncatedAlerts": 0,
            "alerts": [
                {"status": status, "labels": {"alertname": "Bulk", "n": "1"}, "annotations": {},
                 "startsAt": "2026-11-22T11:59:00Z", "endsAt": ends, "generatorURL": "", "fingerprint": "aaaa000000000001"},
                {"status": status, "labels": {"alertname": "Bulk", "n": "2"}, "annotations": {},
                 "startsAt": "2026-11-22T11:59:00Z", "endsAt": ends, "generatorURL": "", "fingerprint": "aaaa000000000002"},
            ]
        })
    };
    let auth = [("authorization", &*format!("Bearer {AM_TOKEN}"))];
    let r = expect(
        app.post("/ingest/am", &body("firing", "0001-01-01T00:00:00Z"), &auth)
            .await,
        200,
    )
    .await;
    assert_eq!(r["accepted"], 2);
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 2);
    assert!(tickets
        .iter()
        .all(|t| t["state"] == "open" && t["ends_at"].is_null()));

    // Firing webhook alerts carry no lease: time passing does not resolve them.
    app.advance(60 * MIN);
    assert_eq!(app.sweep().await, 0);

    expect(
        app.post(
            "/ingest/am",
            &body("resolved", "2026-11-22T12:30:00Z"),
            &auth,
        )
        .await,
        200,
    )
    .await;
    app.process().await;
    let tickets = app.tickets().await;
    assert!(
        tickets.iter().all(|t| t["state"] == "resolved"),
        "{tickets:?}"
    );
}

#[tokio::test]
async fn generic_source_and_member_actions() {
    let app = spawn_app().await;
    let r = expect(
        app.hook(json!({"title": "Backup failed", "status": "firing", "severity": "error",
                        "labels": {"host": "db1"}, "description": "exit code 2", "url": "https://ci.example/42"}))
            .await,
        202,
    )
    .await;
    let fp = r["fingerprints"][0].as_str().unwrap().to_string();
    app.process().await;
    let t = expect(app.api_get("/api/tickets/T-1", VIEWER).await, 200).await;
    assert_eq!(t["fingerprint"], fp.as_str());
    assert_eq!(t["source_url"], "https://ci.example/42");
    assert_eq!(t["link"], "http://tocsin.test/tickets/T-1");
    let by_id = expect(
        app.api_get(
            &format!("/api/tickets/{}", t["id"].as_str().unwrap()),
            VIEWER,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(by_id["key"], "T-1");

    // Viewers read but may not write; no token is 401.
    expect(
        app.api_post("/api/tickets/T-1/ack", VIEWER, None).await,
        403,
    )
    .await;
    expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            VIEWER,
            Some(json!({"text": "hi"})),
        )
        .await,
        403,
    )
    .await;
    expect(
        app.api_post("/api/tickets/T-1/resolve", VIEWER, None).await,
        403,
    )
    .await;
    let r = expect(
        app.client
            .get(format!("{}/api/tickets", app.base))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(r["error"], "unauthorized");
    expect(app.api_get("/api/tickets", "not-a-member-token").await, 401).await;

    let note = expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            EDITOR,
            Some(json!({"text": "looking", "visibility": "internal"})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(note["seq"], 2);
    assert_eq!(note["actor"], "member:bob");
    let acked = expect(
        app.api_post("/api/tickets/T-1/ack", EDITOR, None).await,
        200,
    )
    .await;
    assert_eq!(acked["ticket"]["state"], "acked");
    assert_eq!(acked["ticket"]["acked_by"], "bob");
    expect(
        app.api_post("/api/tickets/T-1/ack", EDITOR, None).await,
        409,
    )
    .await;

    // A resend while acked keeps it acked and adds nothing.
    app.hook(json!({"title": "Backup failed", "status": "firing", "labels": {"host": "db1"}}))
        .await;
    app.process().await;
    assert_eq!(app.tickets().await[0]["state"], "acked");

    let resolved = expect(
        app.api_post("/api/tickets/T-1/resolve", ADMIN, None).await,
        200,
    )
    .await;
    assert_eq!(
        resolved["ticket"]["resolution"],
        json!({"by": "member", "name": "alice"})
    );
    let entries = app.timeline("T-1").await;
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "note", "acked", "resolved"]);
    let seqs: Vec<_> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(entries[1]["visibility"], "internal");
    assert_eq!(entries[0]["visibility"], "system");
    for e in &entries {
        for field in ["seq", "at", "kind", "visibility", "actor", "text", "data"] {
            assert!(e.get(field).is_some(), "entry lacks {field}: {e}");
        }
    }

    // The sender resolving it afterwards changes nothing.
    app.hook(json!({"title": "Backup failed", "status": "resolved", "labels": {"host": "db1"}}))
        .await;
    app.process().await;
    assert_eq!(app.timeline("T-1").await.len(), 4);

    // Bad note bodies get the app's JSON errors.
    let r = expect(
        app.api_post("/api/tickets/T-1/notes", EDITOR, Some(json!({"text": " "})))
            .await,
        400,
    )
    .await;
    assert_eq!(r["error"], "empty_note");
    let r = expect(
        app.api_post(
            "/api/tickets/T-1/notes",
            EDITOR,
            Some(json!({"text": "x", "visibility": "system"})),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(r["error"], "invalid_visibility");
    let r = expect(
        app.api_post("/api/tickets/T-1/notes", EDITOR, Some(json!({"txt": "x"})))
            .await,
        400,
    )
    .await;
    assert_eq!(r["error"], "invalid_json");
    expect(app.api_get("/api/tickets/T-99", VIEWER).await, 404).await;
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let app = spawn_app().await;
    let alerts: Vec<_> = (0..25)
        .map(|i| json!({"title": format!("job {i} failed"), "status": "firing", "labels": {"i": i.to_string()}}))
        .collect();
    expect(app.hook(json!(alerts)).await, 202).await;
    app.prom(json!([prom_alert("One", Some(app.now()), None)]))
        .await;
    app.process().await;
    app.api_post("/api/tickets/T-3/ack", EDITOR, None).await;

    let mut seen = Vec::new();
    let mut path = "/api/tickets?source=hooks&limit=10".to_string();
    loop {
        let page = expect(app.api_get(&path, VIEWER).await, 200).await;
        let tickets = page["tickets"].as_array().unwrap();
        assert!(tickets.len() <= 10);
        for t in tickets {
            assert_eq!(t["source"], "hooks");
            for f in [
                "id",
                "number",
                "title",
                "state",
                "severity",
                "source",
                "labels",
                "created_at",
                "updated_at",
            ] {
                assert!(t.get(f).is_some(), "ticket lacks {f}");
            }
            seen.push(t["number"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/tickets?source=hooks&limit=10&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<i64> = (1..=25).rev().collect();
    assert_eq!(seen, expected, "every ticket once, newest first");

    let acked = expect(app.api_get("/api/tickets?state=acked", VIEWER).await, 200).await;
    assert_eq!(acked["tickets"].as_array().unwrap().len(), 1);
    let prom = expect(
        app.api_get("/api/tickets?source=prom&state=open,acked", VIEWER)
            .await,
        200,
    )
    .await;
    assert_eq!(prom["tickets"][0]["title"], "One is happening");
    let r = expect(
        app.api_get("/api/tickets?state=sideways", VIEWER).await,
        400,
    )
    .await;
    assert!(r["detail"].as_str().unwrap().contains("sideways"));
    expect(
        app.api_get("/api/tickets?cursor=garbage", VIEWER).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn control_characters_and_overlong_values_in_the_url_get_400_naming_the_parameter() {
    let app = spawn_app().await;
    expect(
        app.hook(json!({"title": "Disk full", "status": "firing"}))
            .await,
        202,
    )
    .await;
    app.process().await;
    let long = "a".repeat(501);
    for (path, param) in [
        ("/api/tickets?q=%00".to_string(), "q"),
        ("/api/tickets?q=disk%00full".to_string(), "q"),
        ("/api/tickets?q=%1B%5B31m".to_string(), "q"),
        (format!("/api/tickets?q={long}"), "q"),
        ("/api/tickets?source=%00".to_string(), "source"),
        ("/api/tickets?room=a%0Ab".to_string(), "room"),
        ("/api/tickets?cursor=%00".to_string(), "cursor"),
        ("/api/tickets/T-1%00".to_string(), "id"),
        ("/api/tickets/%00/timeline".to_string(), "id"),
    ] {
        let v = expect(app.api_get(&path, VIEWER).await, 400).await;
        assert_eq!(v["error"], "invalid_query", "{path}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("`{param}`")),
            "{path}: {v}"
        );
    }
    // Writes too.
    let v = expect(
        app.api_post("/api/tickets/T-1%00/ack", EDITOR, None).await,
        400,
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("`id`"), "{v}");
    // Ordinary searches still work, up to the limit.
    let v = expect(app.api_get("/api/tickets?q=disk", VIEWER).await, 200).await;
    assert_eq!(v["tickets"].as_array().unwrap().len(), 1);
    let v = expect(
        app.api_get(&format!("/api/tickets?q={}", "a".repeat(500)), VIEWER)
            .await,
        200,
    )
    .await;
    assert_eq!(v["tickets"].as_array().unwrap().len(), 0);
}
