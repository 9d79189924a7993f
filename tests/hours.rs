//! Business hours end to end: a room outside its hours posts one notice per off-hours period, sends to
//! another room, or holds non-critical tickets until its hours start. Receivers are real HTTP servers
//! (wiremock); the clock is the manual one, starting on Sunday 2026-11-22 at 13:00 in Berlin (12:00Z),
//! outside `Mon–Fri 09:00–17:30 Europe/Berlin`; the processor and the outbox are stepped by the test.

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use serde_json::json;
use wiremock::MockServer;

const HOURS: &str =
    "days: [mon, tue, wed, thu, fri], start: \"09:00\", end: \"17:30\", timezone: Europe/Berlin";

/// Monday 2026-11-23 09:00 in Berlin.
const MONDAY_OPENING: &str = "2026-11-23T08:00:00Z";

fn room(name: &str, server: &MockServer, hours: Option<&str>) -> String {
    let hours = hours
        .map(|h| format!("    hours: {h}\n"))
        .unwrap_or_default();
    format!(
        "  {name}:\n    sink: {{kind: webhook, url: \"{}/hook\"}}\n{hours}",
        server.uri()
    )
}

async fn fire(app: &TestApp, title: &str, severity: &str, status: &str) {
    let body =
        json!({"title": title, "status": status, "severity": severity, "labels": {"host": title}});
    assert_eq!(app.hook(body).await.status(), 202);
    app.process().await;
}

/// Moves the manual clock to `at` (which must not be in its past).
fn set_clock(app: &TestApp, at: &str) {
    let at = tocsin::domain::time::Timestamp::parse_optional(at)
        .unwrap()
        .unwrap();
    app.advance(at.since(app.now()));
    assert_eq!(app.now(), at);
}

#[tokio::test]
async fn a_notice_is_posted_once_per_off_hours_period() {
    let ops = receiver().await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        room(
            "ops",
            &ops,
            Some(&format!("{{{HOURS}, off_hours: notice}}"))
        )
    ))
    .await;

    // Sunday: two tickets, delivered as usual, and one notice after the first.
    fire(&app, "db1", "warning", "firing").await;
    fire(&app, "db2", "warning", "firing").await;
    app.deliver().await;
    assert_eq!(
        received(&ops).await,
        ["T-1 opened", "T-1 note", "T-2 opened"]
    );
    let notice = &bodies(&ops).await[1];
    assert_eq!(
        notice["note"],
        "Outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin); the team is back at Mon 2026-11-23 09:00."
    );
    assert_eq!(notice["actor"], "tocsin");
    let off = app.entries_of("T-1", "off_hours").await;
    assert_eq!(off.len(), 1);
    assert!(
        off[0]["text"]
            .as_str()
            .unwrap()
            .contains("posted the off-hours notice"),
        "{off:?}"
    );
    assert!(app.entries_of("T-2", "off_hours").await.is_empty());

    // Monday 10:00 in Berlin: open, no notice.
    set_clock(&app, "2026-11-23T09:00:00Z");
    fire(&app, "db3", "warning", "firing").await;
    app.deliver().await;
    assert_eq!(received(&ops).await.last().unwrap(), "T-3 opened");
    assert_eq!(received(&ops).await.len(), 4);

    // Monday 20:00 in Berlin: a new off-hours period, so a new notice (once again).
    set_clock(&app, "2026-11-23T19:00:00Z");
    fire(&app, "db4", "warning", "firing").await;
    fire(&app, "db5", "warning", "firing").await;
    app.deliver().await;
    assert_eq!(
        received(&ops).await[4..],
        ["T-4 opened", "T-4 note", "T-5 opened"]
    );
    let notice = &bodies(&ops).await[5];
    assert!(
        notice["note"]
            .as_str()
            .unwrap()
            .ends_with("the team is back at Tue 2026-11-24 09:00."),
        "{notice}"
    );
}

#[tokio::test]
async fn off_hours_route_sends_to_the_other_room() {
    let ops = receiver().await;
    let oncall = receiver().await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}{}routes:\n  - rooms: [ops]\n",
        room(
            "ops",
            &ops,
            Some(&format!("{{{HOURS}, off_hours: {{route: ops-oncall}}}}"))
        ),
        room("ops-oncall", &oncall, None),
    ))
    .await;

    fire(&app, "db1", "warning", "firing").await;
    app.deliver().await;
    assert!(received(&ops).await.is_empty());
    assert_eq!(received(&oncall).await, ["T-1 opened"]);
    let off = app.entries_of("T-1", "off_hours").await;
    assert_eq!(off.len(), 1);
    assert_eq!(
        off[0]["text"],
        "Room ops is outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin); sent to ops-oncall."
    );
    assert_eq!(off[0]["data"]["to"], "ops-oncall");

    // Monday 10:00 in Berlin: ops gets its tickets itself.
    set_clock(&app, "2026-11-23T09:00:00Z");
    fire(&app, "db2", "warning", "firing").await;
    app.deliver().await;
    assert_eq!(received(&ops).await, ["T-2 opened"]);
    assert_eq!(received(&oncall).await, ["T-1 opened"]);
    assert!(app.entries_of("T-2", "off_hours").await.is_empty());
}

#[tokio::test]
async fn off_hours_hold_keeps_non_critical_tickets_until_the_hours_start() {
    let ops = receiver().await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        room("ops", &ops, Some(&format!("{{{HOURS}, off_hours: hold}}")))
    ))
    .await;

    // Sunday: a warning is held; a critical one behind it goes out at once.
    fire(&app, "db1", "warning", "firing").await;
    fire(&app, "db2", "critical", "firing").await;
    app.deliver().await;
    assert_eq!(received(&ops).await, ["T-2 opened"]);
    let held = app.entries_of("T-1", "off_hours").await;
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0]["text"],
        format!(
            "Room ops is outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin): held until Mon 2026-11-23 09:00 ({}).",
            MONDAY_OPENING.replace(":00Z", ":00.000Z")
        )
    );
    assert!(app.entries_of("T-2", "off_hours").await.is_empty());

    // During the night the held ticket resolves (held too), another warning opens, and the critical
    // one resolves (sent).
    app.advance(Duration::from_secs(6 * 3600));
    fire(&app, "db1", "warning", "resolved").await;
    fire(&app, "db3", "warning", "firing").await;
    fire(&app, "db2", "critical", "resolved").await;
    app.deliver().await;
    assert_eq!(received(&ops).await, ["T-2 opened", "T-2 resolved"]);

    // A second before the opening, still nothing.
    set_clock(&app, "2026-11-23T07:59:59Z");
    assert_eq!(app.deliver().await, 0);
    assert_eq!(received(&ops).await.len(), 2);

    // At the opening, the held ones go out in their original order.
    set_clock(&app, MONDAY_OPENING);
    assert_eq!(app.deliver().await, 3);
    assert_eq!(
        received(&ops).await,
        [
            "T-2 opened",
            "T-2 resolved",
            "T-1 opened",
            "T-1 resolved",
            "T-3 opened"
        ]
    );
    assert_eq!(app.entries_of("T-1", "delivered").await.len(), 2);
}
