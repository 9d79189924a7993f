//! Silences end to end: made through the API, applied to ticket changes by the store. A silenced ticket
//! is still opened, updated and resolved with its timeline, but nothing reaches the room (a real HTTP
//! receiver, wiremock) and no email is scheduled; a resolution still reaches the rooms that saw the
//! firing. Time is the manual clock; the processor and the outbox are stepped by the test.

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use serde_json::{json, Value};
use wiremock::MockServer;

/// Members alice (admin), bob (editor) and carol (viewer), alice and bob with addresses; room `ops` is
/// a webhook on `server` and gets every ticket, mentioning alice (who is offline, so she would be
/// emailed). The SMTP server is never contacted: the mailer is not stepped.
async fn spawn(server: &MockServer) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\n\
         public_url: http://tocsin.test\n\
         storage: sqlite://{db}\n\
         plugin_cache: {cache}\n\
         {DEFAULT_SOURCES}\
         members:\n  \
           alice: {{role: admin, token: {ADMIN}, email: alice@example.test}}\n  \
           bob: {{role: editor, token: {EDITOR}, email: bob@example.test}}\n  \
           carol: {{role: viewer, token: {VIEWER}}}\n\
         tickets: {{reopen_window: 1h}}\n\
         rooms:\n  ops:\n    sink: {{kind: webhook, url: \"{uri}/hook\"}}\n    members: [alice, bob]\n\
         routes:\n  - {{rooms: [ops], mention: [alice]}}\n\
         email:\n  \
           smtp: smtp://127.0.0.1:9\n  \
           from: \"tocsin <alerts@tocsin.test>\"\n  \
           secret: a-test-secret-of-32-characters!!\n  \
           delay: 2m\n",
        db = dir.path().join("tocsin.db").display(),
        cache = dir.path().join("plugin-cache").display(),
        uri = server.uri(),
    );
    spawn_app_with_yaml(dir, yaml).await
}

/// A generic alert through the `hooks` source, labelled `host`.
fn alert(title: &str, host: &str, status: &str) -> Value {
    json!({"title": title, "status": status, "severity": "error", "labels": {"host": host}})
}

async fn send(app: &TestApp, body: Value) {
    assert_eq!(app.hook(body).await.status(), 202);
    app.process().await;
}

async fn silence(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.api_post("/api/silences", token, Some(body)).await
}

#[tokio::test]
async fn a_silenced_alert_opens_its_ticket_but_nothing_reaches_chat_or_email() {
    let server = receiver().await;
    let app = spawn(&server).await;
    let made = expect(
        silence(
            &app,
            EDITOR,
            json!({"matchers": ["host=~db.*", "severity=error"], "duration": "2h", "comment": "disk swap"}),
        )
        .await,
        201,
    )
    .await;
    let s = &made["silence"];
    let id = s["id"].as_i64().unwrap();
    assert_eq!(s["author"], "bob");
    assert_eq!(s["state"], "active");
    assert_eq!(s["comment"], "disk swap");
    assert_eq!(
        s["ends_at"],
        app.now().plus(Duration::from_secs(7200)).to_rfc3339()
    );
    assert_eq!(
        s["matchers_text"],
        json!(["host=~\"db.*\"", "severity=\"error\""])
    );

    send(&app, alert("Disk full on db1", "db1", "firing")).await;
    send(&app, alert("Disk full on web1", "web1", "firing")).await;
    app.deliver().await;

    // Only the unsilenced ticket reached the room.
    assert_eq!(received(&server).await, ["T-2 opened"]);
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 2, "the silenced alert still made its ticket");

    let silenced = app.entries_of("T-1", "silenced").await;
    assert_eq!(silenced.len(), 1);
    let text = silenced[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Silenced by bob until "), "{text}");
    assert!(text.contains("\"disk swap\""), "{text}");
    assert!(
        text.ends_with(&format!("(silence {id}); nothing sent to chat or email.")),
        "{text}"
    );
    assert_eq!(silenced[0]["data"]["silence"], id);
    assert_eq!(silenced[0]["data"]["author"], "bob");
    assert_eq!(silenced[0]["data"]["ends_at"], s["ends_at"]);

    // alice is mentioned and offline: the unsilenced ticket schedules her email, the silenced one not.
    assert!(app.entries_of("T-1", "email_scheduled").await.is_empty());
    assert_eq!(app.entries_of("T-2", "email_scheduled").await.len(), 1);
    assert!(app.entries_of("T-1", "delivered").await.is_empty());
}

#[tokio::test]
async fn a_resolution_reaches_the_rooms_that_saw_the_firing_and_no_others() {
    let server = receiver().await;
    let app = spawn(&server).await;

    // db1 fires before any silence and is delivered.
    send(&app, alert("Disk full on db1", "db1", "firing")).await;
    app.deliver().await;
    assert_eq!(received(&server).await, ["T-1 opened"]);

    expect(
        silence(
            &app,
            EDITOR,
            json!({"matchers": ["host=~\"db[0-9]+\""], "duration": "1h", "comment": "disk swap"}),
        )
        .await,
        201,
    )
    .await;

    // db2 fires while silenced: nothing is sent.
    send(&app, alert("Disk full on db2", "db2", "firing")).await;
    app.deliver().await;
    assert_eq!(received(&server).await, ["T-1 opened"]);

    // Both resolve while the silence is in force. The room saw db1 fire, so it hears db1 end; it never
    // heard of db2, so it hears nothing about it.
    app.advance(Duration::from_secs(600));
    send(&app, alert("Disk full on db1", "db1", "resolved")).await;
    send(&app, alert("Disk full on db2", "db2", "resolved")).await;
    app.deliver().await;
    assert_eq!(received(&server).await, ["T-1 opened", "T-1 resolved"]);

    // db2's resolution is recorded all the same.
    let t2 = app.timeline_kinds("T-2").await;
    assert_eq!(t2, ["opened", "silenced", "resolved"]);
    let tickets = app.tickets().await;
    assert!(
        tickets.iter().all(|t| t["state"] == "resolved"),
        "{tickets:#?}"
    );
    // db1 fired before the silence: its timeline has no silenced entry.
    assert!(app.entries_of("T-1", "silenced").await.is_empty());
}

#[tokio::test]
async fn expiring_a_silence_lets_the_next_firing_through_and_records_who_ended_it() {
    let server = receiver().await;
    let app = spawn(&server).await;
    let made = expect(
        silence(
            &app,
            ADMIN,
            json!({"matchers": ["alertname=DiskFull"], "duration": "1d", "comment": "maintenance"}),
        )
        .await,
        201,
    )
    .await;
    let id = made["silence"]["id"].as_i64().unwrap();

    let t0 = app.now();
    let mut disk = prom_alert("DiskFull", Some(t0), None);
    disk["labels"]["instance"] = json!("db1");
    assert_eq!(app.prom(json!([disk])).await.status(), 200);
    app.process().await;
    app.deliver().await;
    assert!(received(&server).await.is_empty());
    assert_eq!(app.entries_of("T-1", "silenced").await.len(), 1);

    // bob ends it early.
    app.advance(Duration::from_secs(300));
    let ended = expect(
        app.client
            .delete(format!("{}/api/silences/{id}", app.base))
            .bearer_auth(EDITOR)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(ended["silence"]["state"], "expired");
    assert_eq!(ended["silence"]["expired_by"], "bob");
    assert_eq!(ended["silence"]["ends_at"], app.now().to_rfc3339());

    // The same alert firing again (a later start: a refire) and a new one are delivered.
    app.advance(Duration::from_secs(60));
    let mut again = prom_alert("DiskFull", Some(app.now()), None);
    again["labels"]["instance"] = json!("db1");
    let mut other = prom_alert("DiskFull", Some(app.now()), None);
    other["labels"]["instance"] = json!("db2");
    assert_eq!(app.prom(json!([again, other])).await.status(), 200);
    app.process().await;
    app.deliver().await;
    assert_eq!(received(&server).await, ["T-1 refired", "T-2 opened"]);
    assert_eq!(app.entries_of("T-1", "silenced").await.len(), 1);

    // The list shows it ended, and by whom; nothing is in force any more.
    let all = expect(app.api_get("/api/silences", VIEWER).await, 200).await;
    let listed = all["silences"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["state"], "expired");
    assert_eq!(listed[0]["expired_by"], "bob");
    assert_eq!(listed[0]["author"], "alice");
    let active = expect(app.api_get("/api/silences?active=true", VIEWER).await, 200).await;
    assert_eq!(active["silences"], json!([]));

    // Expiring it again changes nothing; an unknown one is 404.
    let again = expect(
        app.api_post(&format!("/api/silences/{id}/expire"), ADMIN, None)
            .await,
        200,
    )
    .await;
    assert_eq!(again["silence"]["expired_by"], "bob");
    expect(
        app.api_post("/api/silences/999/expire", ADMIN, None).await,
        404,
    )
    .await;
}

#[tokio::test]
async fn a_ticket_opened_while_silenced_stays_quiet_when_it_resolves_after_the_silence() {
    let server = receiver().await;
    let app = spawn(&server).await;
    expect(
        silence(
            &app,
            EDITOR,
            json!({"matchers": ["host=db1"], "duration": "30m", "comment": "reboot"}),
        )
        .await,
        201,
    )
    .await;
    send(&app, alert("Disk full on db1", "db1", "firing")).await;
    // The silence runs out; the ticket is acked and resolves afterwards. The room never heard of it,
    // so it hears none of this.
    app.advance(Duration::from_secs(3600));
    expect(
        app.api_post("/api/tickets/T-1/ack", EDITOR, None).await,
        200,
    )
    .await;
    send(&app, alert("Disk full on db1", "db1", "resolved")).await;
    app.deliver().await;
    assert!(received(&server).await.is_empty());
    assert_eq!(
        app.timeline_kinds("T-1").await,
        ["opened", "silenced", "acked", "resolved"]
    );
    // It fires again (a reopening): news again, delivered.
    send(&app, alert("Disk full on db1", "db1", "firing")).await;
    app.deliver().await;
    assert_eq!(received(&server).await, ["T-1 reopened"]);
}

#[tokio::test]
async fn bad_silences_are_refused_with_the_problem_named() {
    let server = receiver().await;
    let app = spawn(&server).await;
    let cases = [
        (
            json!({"matchers": [], "duration": "1h", "comment": "x"}),
            "no_matchers",
            "at least one matcher",
        ),
        (
            json!({"duration": "1h", "comment": "x"}),
            "no_matchers",
            "at least one matcher",
        ),
        (
            json!({"matchers": ["instance=~db[0-9"], "duration": "1h", "comment": "x"}),
            "invalid_matcher",
            "not a valid regex",
        ),
        (
            json!({"matchers": ["instance"], "duration": "1h", "comment": "x"}),
            "invalid_matcher",
            "needs an operator",
        ),
        // A pattern whose compiled program would be huge is refused, not built on every check.
        (
            json!({"matchers": ["instance=~(a{1000}){1000}", "host=db1"], "duration": "1h", "comment": "x"}),
            "invalid_matcher",
            "size limit",
        ),
        // Every ticket has a source: a matcher taking any source silences everything.
        (
            json!({"matchers": ["source=~.+"], "duration": "1h", "comment": "x"}),
            "matches_everything",
            "silence nearly everything",
        ),
        (
            json!({"matchers": ["job=~.*"], "duration": "1h", "comment": "x"}),
            "matches_everything",
            "must not match an empty",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "0m", "comment": "x"}),
            "invalid_duration",
            "zero",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "-2h", "comment": "x"}),
            "invalid_duration",
            "negative",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "91d", "comment": "x"}),
            "invalid_duration",
            "90 days",
        ),
        (
            json!({"matchers": ["a=b"], "comment": "x"}),
            "invalid_duration",
            "needs a duration",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h", "ends_at": "2026-11-23T00:00:00Z", "comment": "x"}),
            "invalid_duration",
            "not both",
        ),
        (
            json!({"matchers": ["a=b"], "ends_at": "2026-11-22T11:00:00Z", "comment": "x"}),
            "invalid_duration",
            "end after it starts",
        ),
        (
            json!({"matchers": ["a=b"], "ends_at": "tomorrow", "comment": "x"}),
            "invalid_time",
            "ends_at",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h"}),
            "missing_comment",
            "comment",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h", "comment": "   "}),
            "missing_comment",
            "comment",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h", "comment": "x", "creator": "eve"}),
            "invalid_json",
            "creator",
        ),
    ];
    for (body, code, words) in cases {
        let got = expect(silence(&app, EDITOR, body.clone()).await, 400).await;
        assert_eq!(got["error"], code, "{body}: {got}");
        let detail = got["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{body}: {detail}");
    }

    // Viewers read but cannot make or end silences.
    let ok = json!({"matchers": ["a=b"], "duration": "1h", "comment": "x"});
    let refused = expect(silence(&app, VIEWER, ok.clone()).await, 403).await;
    assert_eq!(refused["error"], "forbidden");
    let made = expect(silence(&app, EDITOR, ok).await, 201).await;
    let id = made["silence"]["id"].as_i64().unwrap();
    expect(
        app.api_post(&format!("/api/silences/{id}/expire"), VIEWER, None)
            .await,
        403,
    )
    .await;
    expect(app.api_get("/api/silences?active=true", VIEWER).await, 200).await;
    expect(app.api_get("/api/silences", "nobody").await, 401).await;
}
