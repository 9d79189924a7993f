//! PagerDuty as a drop-in target, through HTTP, with PagerDuty's own documented payloads
//! (examples/payloads/pagerduty, origins in ORIGIN.md): Change Events stored, listed and shown on the
//! tickets of the same system in both directions; Events API v1 with v1's answers; PagerDuty-shaped
//! errors on every PagerDuty path (and only there).

mod common;

use std::time::Duration;

use common::signin::{no_redirects, session};
use common::*;
use serde_json::{json, Value};

const SOURCES: &str = "sources:\n  \
    pd: {kind: pagerduty, changes: {window: 30m}}\n  \
    pd-keyed: {kind: pagerduty, auth: {token: e93facc04764012d7bfb002500d5d1a6}, max_body: 2KiB, rate_limit: {per_second: 0.001, burst: 3}}\n  \
    pd-v1: {kind: pagerduty, auth: {token: e93facc04764012d7bfb002500d5d1a6}}\n  \
    hooks: {kind: generic, auth: {token: hook-token-0001}}\n";

fn payload(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/payloads/pagerduty")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

async fn post(app: &TestApp, path: &str, event: &Value) -> (u16, Value) {
    let r = app.post(path, event, &[]).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// A v2 trigger about system `system` (its `payload.source`).
fn trigger(key: &str, system: &str) -> Value {
    json!({"routing_key": "e93facc04764012d7bfb002500d5d1a6", "event_action": "trigger",
           "dedup_key": key,
           "payload": {"summary": format!("{key} is down"), "source": system, "severity": "critical"}})
}

async fn changes_on(app: &TestApp, ticket: &str) -> Vec<String> {
    app.entries_of(ticket, "change")
        .await
        .iter()
        .map(|e| e["data"]["summary"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn change_events_are_accepted_listed_and_shown_on_tickets_of_their_system() {
    let app = spawn_app_sources(SOURCES, "").await;
    let docs = payload("change.json");
    let system = docs["payload"]["source"].as_str().unwrap().to_string();

    // A ticket of that system is open when the change arrives: it is shown the change at once.
    assert_eq!(
        post(&app, "/ingest/pd/v2/enqueue", &trigger("a", &system))
            .await
            .0,
        202
    );
    assert_eq!(
        post(&app, "/ingest/pd/v2/enqueue", &trigger("other", "db-9"))
            .await
            .0,
        202
    );
    app.process().await;
    let (status, body) = post(&app, "/ingest/pd/v2/change/enqueue", &docs).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Change event processed"})
    );
    assert_eq!(
        changes_on(&app, "T-1").await,
        ["Build Success: Increase snapshot create timeout to 30 seconds"]
    );
    assert!(changes_on(&app, "T-2").await.is_empty(), "another system");

    // A ticket of that system opening within the window after it is shown it too; after, not.
    app.advance(Duration::from_secs(20 * 60));
    post(&app, "/ingest/pd/v2/enqueue", &trigger("b", &system)).await;
    app.process().await;
    assert_eq!(changes_on(&app, "T-3").await.len(), 1);
    app.advance(Duration::from_secs(11 * 60));
    post(&app, "/ingest/pd/v2/enqueue", &trigger("c", &system)).await;
    app.process().await;
    assert!(
        changes_on(&app, "T-4").await.is_empty(),
        "past the 30m window"
    );

    // The Go client's capture, with a field PagerDuty does not document, is taken too.
    let go = payload("change_go_pagerduty.json");
    assert_eq!(post(&app, "/ingest/pd/v2/change/enqueue", &go).await.0, 202);

    // GET /api/changes: newest first, paged, for any member; not without one.
    let r = app.api_get("/api/changes?limit=1", VIEWER).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["changes"][0]["summary"], "Summary can't be blank");
    assert_eq!(page["changes"][0]["payload_source"], "Test runner");
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page: Value = app
        .api_get(&format!("/api/changes?limit=1&cursor={cursor}"), VIEWER)
        .await
        .json()
        .await
        .unwrap();
    let first = &page["changes"][0];
    assert_eq!(first["source"], "pd");
    assert_eq!(first["payload_source"], system.as_str());
    assert_eq!(first["details"]["build_state"], "passed");
    assert_eq!(
        first["links"][0]["href"],
        "https://acme.pagerduty.dev/build/2"
    );
    assert!(first.get("routing_key").is_none());
    assert!(page["next_cursor"].is_null());
    let none: Value = app
        .api_get("/api/changes?source=hooks", VIEWER)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["changes"], json!([]));
    assert_eq!(app.api_get("/api/changes", "nope").await.status(), 401);
    let bad = app.api_get("/api/changes?cursor=zzz", VIEWER).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        app.api_get("/api/changes?color=red", VIEWER).await.status(),
        400
    );

    // Invalid change events: 400 in PagerDuty's shape.
    let (status, body) = post(
        &app,
        "/ingest/pd/v2/change/enqueue",
        &json!({"routing_key": "k", "payload": {"source": "x"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "invalid event");
    assert_eq!(
        body["errors"],
        json!(["'payload.summary' is missing or blank"])
    );

    // The ticket page lists the change under "Recent changes", escaped.
    let mut evil = docs.clone();
    evil["payload"]["summary"] = json!("<script>alert(1)</script>");
    evil["links"] = json!([{"href": "javascript:alert(1)", "text": "x"}]);
    assert_eq!(
        post(&app, "/ingest/pd/v2/change/enqueue", &evil).await.0,
        202
    );
    let browser = no_redirects();
    let cookie = session(&browser, &app.base, VIEWER).await;
    let html = browser
        .get(format!("{}/tickets/T-1", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Recent changes"), "{html}");
    assert!(html.contains("Increase snapshot create timeout"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>alert(1)") && !html.contains("javascript:"));
}

#[tokio::test]
async fn events_api_v1_with_v1_answers_and_the_service_key_as_token() {
    let app = spawn_app_sources(SOURCES, "").await;
    let path = "/ingest/pd-v1/generic/2010-04-15/create_event.json";
    let trigger = payload("v1_trigger.json");
    let mut keyed = trigger.clone();
    keyed["incident_key"] = json!("srv01/HTTP");

    let (status, body) = post(&app, path, &keyed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "incident_key": "srv01/HTTP"})
    );
    app.process().await;
    let t = &app.tickets().await[0];
    assert_eq!(t["state"], "open");
    assert_eq!(t["title"], trigger["description"]);
    assert_eq!(t["severity"], "error");

    let (status, body) = post(&app, path, &payload("v1_acknowledge.json")).await;
    assert_eq!(
        (status, body["incident_key"].as_str()),
        (200, Some("srv01/HTTP"))
    );
    app.process().await;
    assert_eq!(app.tickets().await[0]["state"], "acked");
    // A v2 resolve under the same integration key closes what v1 opened, as in PagerDuty.
    let v2 = json!({"routing_key": "e93facc04764012d7bfb002500d5d1a6", "event_action": "resolve", "dedup_key": "srv01/HTTP"});
    assert_eq!(post(&app, "/ingest/pd-v1/v2/enqueue", &v2).await.0, 202);
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["state"], "resolved");

    // Without an incident_key, the answer carries the one made; v1's refusals in v1's words.
    let (status, body) = post(&app, path, &trigger).await;
    assert_eq!(status, 200);
    assert!(!body["incident_key"].as_str().unwrap().is_empty());
    let mut bad = payload("v1_resolve.json");
    bad["event_type"] = json!("explode");
    let (status, body) = post(&app, path, &bad).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"status": "invalid event", "message": "Event object is invalid",
               "errors": ["event_type is invalid (must be one of: trigger acknowledge resolve)"]})
    );
    // With `auth: {token}`, v1's service_key is the key.
    let mut wrong = payload("v1_resolve.json");
    wrong["service_key"] = json!("f".repeat(32));
    let (status, body) = post(&app, path, &wrong).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"], json!(["Invalid service key"]));
}

#[tokio::test]
async fn every_refusal_on_a_pagerduty_path_is_pagerduty_shaped() {
    let app = spawn_app_sources(SOURCES, "").await;
    let check = |status: u16, body: &Value, want: u16| {
        assert_eq!(status, want, "{body}");
        assert!(body["status"].is_string(), "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert!(
            body["errors"][0].is_string(),
            "Zabbix reads errors[0]: {body}"
        );
        assert!(
            body.get("error").is_none(),
            "not tocsin's own shape: {body}"
        );
    };
    let ev = trigger("k", "web-1");
    for path in [
        "/ingest/nope/v2/enqueue",
        "/ingest/nope/v2/change/enqueue",
        "/ingest/nope/generic/2010-04-15/create_event.json",
        "/ingest/hooks/v2/change/enqueue",
    ] {
        let (status, body) = post(&app, path, &ev).await;
        check(status, &body, 404);
    }
    // 415: not JSON.
    let r = app
        .post_raw("/ingest/pd/v2/enqueue", Some("text/plain"), "x", &[])
        .await;
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 415);
    // 413: over the source's max_body, on its own path too.
    let big = json!({"routing_key": "x", "pad": "x".repeat(4096)});
    for path in ["/ingest/pd-keyed", "/ingest/pd-keyed/v2/change/enqueue"] {
        let (status, body) = post(&app, path, &big).await;
        check(status, &body, 413);
    }
    // 429 with Retry-After once over the rate limit (burst 3, then nothing for a long while).
    let keyed = json!({"routing_key": "e93facc04764012d7bfb002500d5d1a6", "event_action": "resolve", "dedup_key": "k"});
    for _ in 0..3 {
        assert_eq!(
            post(&app, "/ingest/pd-keyed/v2/enqueue", &keyed).await.0,
            202
        );
    }
    let r = app.post("/ingest/pd-keyed/v2/enqueue", &keyed, &[]).await;
    assert!(r.headers().contains_key("retry-after"));
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 429);
    // v1 says the same with 403, which its senders retry.
    let v1 = payload("v1_resolve.json");
    let r = app
        .post(
            "/ingest/pd-keyed/generic/2010-04-15/create_event.json",
            &v1,
            &[],
        )
        .await;
    assert!(r.headers().contains_key("retry-after"));
    let status = r.status().as_u16();
    check(status, &r.json().await.unwrap(), 403);

    // Other sources keep tocsin's own error JSON.
    let r = app
        .post_raw(
            "/ingest/hooks",
            Some("text/plain"),
            "x",
            &[("x-tocsin-token", HOOK_TOKEN)],
        )
        .await;
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_media_type");
}
