//! ChatOps from Slack and Mattermost against a real tocsin: signed slash commands and buttons, tokens,
//! the member each chat user is, what viewers may do, `status` per room, and the timeline entries that
//! name the member and the channel.

mod common;

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use common::{expect, spawn_app_with_yaml, TestApp, ADMIN, EDITOR, HOOK_TOKEN, VIEWER};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const MM_SLASH: &str = "mm-slash-token-1";
const MM_HOOK: &str = "mm-hook-token-1";

/// Slack room `ops` (channel COPS) and Mattermost room `db` (channel mmdb); tickets labelled `team`
/// go to the room of that name. alice is an admin, bob an editor, carol a viewer; each has a Slack
/// user ID, a Mattermost user name (for mentions) and a Mattermost user ID (`uid-<name>`, which
/// ChatOps goes by).
fn yaml(db: &std::path::Path, slack_api: &str, chatops: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         public_url: http://tocsin.test\n\
         storage: {storage}\n\
         plugin_cache: {cache}\n\
         sources:\n  \
           hooks: {{kind: generic, auth: {{token: {HOOK_TOKEN}}}}}\n\
         members:\n  \
           alice: {{role: admin, token: {ADMIN}, handles: {{slack: UALICE, mattermost: alice, mattermost_id: uid-alice}}}}\n  \
           bob: {{role: editor, token: {EDITOR}, handles: {{slack: UBOB, mattermost: bob, mattermost_id: uid-bob}}}}\n  \
           carol: {{role: viewer, token: {VIEWER}, handles: {{slack: UCAROL, mattermost: carol, mattermost_id: uid-carol}}}}\n\
         rooms:\n  \
           ops: {{sink: {{kind: slack, token: xoxb-test, channel: COPS, api_url: '{slack_api}'}}}}\n  \
           db: {{sink: {{kind: mattermost, url: 'http://mm.test', token: mm-bot, channel_id: mmdb}}}}\n\
         routes:\n  \
           - match: {{team: ops}}\n    rooms: [ops]\n  \
           - match: {{team: db}}\n    rooms: [db]\n\
         {chatops}",
        storage = common::storage::storage_url(db),
        cache = db.with_file_name("plugin-cache").display(),
    )
}

const CHATOPS: &str = "chatops:\n  \
    slack: {signing_secret: 8f742231b10e8888abcd99yyyzzz85a5}\n  \
    mattermost: {tokens: [mm-slash-token-1, mm-hook-token-1]}\n";

async fn spawn(chatops: &str) -> TestApp {
    // Nothing is delivered unless a test calls `deliver`, so no Slack is needed here.
    spawn_with_slack("http://127.0.0.1:9/api", chatops).await
}

async fn spawn_with_slack(slack_api: &str, chatops: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml(&dir.path().join("tocsin.db"), slack_api, chatops);
    spawn_app_with_yaml(dir, yaml).await
}

/// An app with tickets: T-1 in `ops` (Slack) titled "Disk full on db1".
async fn app_with_ticket() -> TestApp {
    let app = spawn(CHATOPS).await;
    alert(&app, "Disk full on db1", "ops").await;
    app
}

async fn alert(app: &TestApp, title: &str, team: &str) {
    let body = json!({"title": title, "status": "firing", "severity": "critical", "labels": {"team": team, "alertname": title}});
    expect(app.hook(body).await, 202).await;
    app.process().await;
}

/// `application/x-www-form-urlencoded`, the way Slack and Mattermost send it.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn sign(ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn now_secs(app: &TestApp) -> i64 {
    app.now().as_millis() / 1000
}

/// POSTs a signed Slack request with the given timestamp (Unix seconds).
async fn slack_at(app: &TestApp, path: &str, body: &str, ts: i64) -> reqwest::Response {
    let ts = ts.to_string();
    let sig = sign(&ts, body);
    app.post_raw(
        path,
        Some("application/x-www-form-urlencoded"),
        body.to_string(),
        &[
            ("x-slack-request-timestamp", &ts),
            ("x-slack-signature", &sig),
        ],
    )
    .await
}

/// Slack gives every invocation its own `trigger_id`, so no two real requests are alike.
fn trigger_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "13345224609.738474920.{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn slash_body(user: &str, channel: &str, text: &str) -> String {
    let trigger = trigger_id();
    form(&[
        ("token", "deprecated-verification-token"),
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("channel_id", channel),
        ("channel_name", "ops"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/tocsin"),
        ("text", text),
        ("api_app_id", "A123456"),
        ("response_url", "https://hooks.slack.com/commands/1234/5678"),
        ("trigger_id", &trigger),
    ])
}

/// A slash command typed by `user` in `channel`, answered 200: (response_type, text).
async fn slash(app: &TestApp, user: &str, channel: &str, text: &str) -> (String, String) {
    let body = slash_body(user, channel, text);
    let v = expect(
        slack_at(app, "/chat/slack/command", &body, now_secs(app)).await,
        200,
    )
    .await;
    (
        v["response_type"].as_str().unwrap().to_string(),
        v["text"].as_str().unwrap().to_string(),
    )
}

async fn ticket(app: &TestApp, r: &str) -> Value {
    expect(app.api_get(&format!("/api/tickets/{r}"), ADMIN).await, 200).await
}

async fn last_entry(app: &TestApp, r: &str) -> Value {
    app.timeline(r).await.last().unwrap().clone()
}

fn assert_unauthorized(v: &Value) {
    assert_eq!(v["error"], "unauthorized", "{v}");
    assert!(v["detail"].is_string(), "{v}");
}

#[tokio::test]
async fn slack_slash_commands_ack_and_resolve_as_the_member_via_slack() {
    let app = app_with_ticket().await;
    let (kind, text) = slash(&app, "UBOB", "COPS", "ack T-1").await;
    assert_eq!(
        (kind.as_str(), text.as_str()),
        ("in_channel", "T-1 acknowledged by bob.")
    );
    let t = ticket(&app, "T-1").await;
    assert_eq!(t["state"], "acked");
    assert_eq!(t["acked_by"], "bob");
    let e = last_entry(&app, "T-1").await;
    assert_eq!(e["kind"], "acked");
    assert_eq!(e["actor"], "member:bob");
    assert_eq!(e["text"], "Acknowledged by bob (via slack).");
    assert_eq!(e["data"]["via"], "slack");
    assert_eq!(e["data"]["room"], "ops");

    // Acking again is refused privately; resolving works in any spelling.
    let (kind, text) = slash(&app, "UBOB", "COPS", "ACK t-1").await;
    assert_eq!(
        (kind.as_str(), text.as_str()),
        ("ephemeral", "T-1 is already acknowledged.")
    );
    let (kind, text) = slash(&app, "UALICE", "COPS", "  resolve #1 ").await;
    assert_eq!(
        (kind.as_str(), text.as_str()),
        ("in_channel", "T-1 resolved by alice.")
    );
    assert_eq!(ticket(&app, "T-1").await["state"], "resolved");
    let e = last_entry(&app, "T-1").await;
    assert_eq!(e["text"], "Resolved by alice (via slack).");

    // Mistakes get the usage, and unknown tickets are named.
    let (kind, text) = slash(&app, "UBOB", "COPS", "ack").await;
    assert_eq!(kind, "ephemeral");
    assert!(text.contains("Usage: `ack T-42`"), "{text}");
    let (_, text) = slash(&app, "UBOB", "COPS", "resolve T-99").await;
    assert_eq!(text, "There is no ticket T-99.");
}

#[tokio::test]
async fn notes_and_assignment_from_slack() {
    let app = app_with_ticket().await;
    let (kind, text) = slash(&app, "UBOB", "COPS", "note T-1 swapping the disk now").await;
    assert_eq!(
        (kind.as_str(), text.as_str()),
        ("in_channel", "Note added to T-1 by bob.")
    );
    let e = last_entry(&app, "T-1").await;
    assert_eq!(e["kind"], "note");
    assert_eq!(e["visibility"], "public");
    assert_eq!(e["text"], "swapping the disk now");
    assert_eq!(e["data"]["via"], "slack");

    // Slack escapes mentions in slash commands as <@ID|name>: the ID is alice's handle.
    let (_, text) = slash(&app, "UBOB", "COPS", "assign T-1 <@UALICE|alice>").await;
    assert_eq!(text, "T-1 assigned to alice by bob.");
    assert_eq!(ticket(&app, "T-1").await["assignee"], "alice");
    let (_, text) = slash(&app, "UBOB", "COPS", "assign T-1 me").await;
    assert_eq!(text, "bob took T-1.");
    let (_, text) = slash(&app, "UBOB", "COPS", "assign T-1 @bob").await;
    assert_eq!(text, "T-1 is already assigned to bob.");
    let (_, text) = slash(&app, "UBOB", "COPS", "assign T-1 @mallory").await;
    assert!(text.contains("is not a tocsin member"), "{text}");
    let (kind, text) = slash(&app, "UBOB", "COPS", "unassign T-1").await;
    assert_eq!(
        (kind.as_str(), text.as_str()),
        ("in_channel", "T-1 unassigned by bob.")
    );
    assert!(ticket(&app, "T-1").await["assignee"].is_null());
}

#[tokio::test]
async fn bad_signatures_and_stale_or_replayed_requests_are_refused() {
    let app = app_with_ticket().await;
    let body = slash_body("UBOB", "COPS", "ack T-1");
    let ts = now_secs(&app).to_string();
    let send = |sig: String, ts: String, body: String| {
        let app = &app;
        async move {
            app.post_raw(
                "/chat/slack/command",
                Some("application/x-www-form-urlencoded"),
                body,
                &[
                    ("x-slack-request-timestamp", &ts),
                    ("x-slack-signature", &sig),
                ],
            )
            .await
        }
    };
    // Signed with another secret, a signed body that was changed, no signature at all.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"not-the-secret").unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let wrong = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let r = send(wrong, ts.clone(), body.clone()).await;
    assert_eq!(r.headers()["www-authenticate"], "Signature");
    assert_unauthorized(&expect(r, 401).await);
    let tampered = slash_body("UALICE", "COPS", "ack T-1");
    assert_unauthorized(&expect(send(sign(&ts, &body), ts.clone(), tampered).await, 401).await);
    let r = app
        .post_raw(
            "/chat/slack/command",
            Some("application/x-www-form-urlencoded"),
            body.clone(),
            &[],
        )
        .await;
    assert_unauthorized(&expect(r, 401).await);

    // Correctly signed, but six minutes old (or six minutes ahead).
    let old = now_secs(&app) - 360;
    assert_unauthorized(
        &expect(slack_at(&app, "/chat/slack/command", &body, old).await, 401).await,
    );
    let ahead = now_secs(&app) + 360;
    assert_unauthorized(
        &expect(
            slack_at(&app, "/chat/slack/command", &body, ahead).await,
            401,
        )
        .await,
    );
    assert_eq!(ticket(&app, "T-1").await["state"], "open");

    // A good request, captured and sent again at once (inside the window), then six minutes later.
    let r = send(sign(&ts, &body), ts.clone(), body.clone()).await;
    assert_eq!(expect(r, 200).await["text"], "T-1 acknowledged by bob.");
    let r = send(sign(&ts, &body), ts.clone(), body.clone()).await;
    let refused = expect(r, 401).await;
    assert_unauthorized(&refused);
    assert!(
        refused["detail"].as_str().unwrap().contains("replay"),
        "{refused}"
    );
    // The same signature written another way (hex is case-blind, spaces are trimmed) is the same
    // request: refused too, not taken twice more.
    let hex = sign(&ts, &body).trim_start_matches("v0=").to_string();
    for again in [
        format!("v0={}", hex.to_uppercase()),
        format!(" v0={hex} "),
        format!("v0={}{}", &hex[..32].to_uppercase(), &hex[32..]),
    ] {
        let refused = expect(send(again.clone(), ts.clone(), body.clone()).await, 401).await;
        assert!(
            refused["detail"].as_str().unwrap().contains("replay"),
            "{again}: {refused}"
        );
    }
    app.advance(Duration::from_secs(360));
    let r = send(sign(&ts, &body), ts.clone(), body.clone()).await;
    assert_unauthorized(&expect(r, 401).await);
    assert_eq!(app.timeline_kinds("T-1").await, ["opened", "acked"]);

    // A note: each replay would have added one.
    let note = slash_body("UBOB", "COPS", "note T-1 checking");
    let ts = now_secs(&app).to_string();
    let r = send(sign(&ts, &note), ts.clone(), note.clone()).await;
    expect(r, 200).await;
    let upper = format!("v0={}", sign(&ts, &note)[3..].to_uppercase());
    expect(send(upper, ts.clone(), note.clone()).await, 401).await;
    assert_eq!(app.entries_of("T-1", "note").await.len(), 1);
}

#[tokio::test]
async fn unknown_users_and_viewers_are_refused_politely() {
    let app = app_with_ticket().await;
    let before = app.timeline("T-1").await;
    let (kind, text) = slash(&app, "UNOBODY", "COPS", "ack T-1").await;
    assert_eq!(kind, "ephemeral");
    assert!(
        text.starts_with("Sorry, I do not know who you are"),
        "{text}"
    );
    assert!(text.contains("slack handle"), "{text}");

    let (kind, text) = slash(&app, "UCAROL", "COPS", "ack T-1").await;
    assert_eq!(kind, "ephemeral");
    assert!(text.contains("carol"), "{text}");
    assert!(text.contains("viewer"), "{text}");
    let (_, text) = slash(&app, "UCAROL", "COPS", "note T-1 hello").await;
    assert!(text.contains("viewer"), "{text}");
    assert_eq!(ticket(&app, "T-1").await["state"], "open");
    assert_eq!(app.timeline("T-1").await, before);

    // Viewers may look.
    let (_, text) = slash(&app, "UCAROL", "COPS", "status").await;
    assert!(
        text.contains("T-1 [critical] Disk full on db1 (open, unassigned)"),
        "{text}"
    );
    let (kind, text) = slash(&app, "UCAROL", "COPS", "help").await;
    assert_eq!(kind, "ephemeral");
    assert!(text.contains("`ack T-42`"), "{text}");
}

#[tokio::test]
async fn buttons_ack_and_resolve() {
    let app = app_with_ticket().await;
    let press = |action_id: &str, value: &str, user: &str| {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": "bob", "team_id": "T0001"},
            "api_app_id": "A123456",
            "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "COPS"},
            "channel": {"id": "COPS", "name": "ops"},
            "response_url": "https://hooks.slack.com/actions/T0001/123/abc",
            "actions": [{
                "action_id": action_id, "block_id": "tocsin_actions", "value": value,
                "type": "button", "action_ts": "1548426417.840180",
                "text": {"type": "plain_text", "text": "Acknowledge"},
            }],
        });
        form(&[("payload", &payload.to_string())])
    };
    let ts = now_secs(&app);
    let r = slack_at(
        &app,
        "/chat/slack/interactive",
        &press("tocsin_ack", "ack:T-1", "UBOB"),
        ts,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty());
    assert_eq!(ticket(&app, "T-1").await["state"], "acked");
    let e = last_entry(&app, "T-1").await;
    assert_eq!(e["text"], "Acknowledged by bob (via slack).");

    // A button of another app, and an unknown user's press, change nothing.
    let other = press("someone_else", "ack:T-1", "UBOB");
    expect(
        slack_at(&app, "/chat/slack/interactive", &other, ts).await,
        200,
    )
    .await;
    let stranger = press("tocsin_resolve", "resolve:T-1", "UNOBODY");
    expect(
        slack_at(&app, "/chat/slack/interactive", &stranger, ts).await,
        200,
    )
    .await;
    assert_eq!(ticket(&app, "T-1").await["state"], "acked");

    let resolve = press("tocsin_resolve", "resolve:T-1", "UALICE");
    expect(
        slack_at(&app, "/chat/slack/interactive", &resolve, ts).await,
        200,
    )
    .await;
    assert_eq!(ticket(&app, "T-1").await["state"], "resolved");

    // Buttons are signed like commands.
    let r = slack_at(&app, "/chat/slack/interactive", &resolve, ts - 600).await;
    assert_unauthorized(&expect(r, 401).await);
}

#[tokio::test]
async fn status_lists_the_rooms_open_tickets_newest_first() {
    let app = app_with_ticket().await;
    alert(&app, "Replication lag", "db").await;
    alert(&app, "<!channel> @here *load* high", "ops").await;
    alert(&app, "Cert expires", "ops").await;
    expect(
        app.api_post("/api/tickets/T-4/resolve", EDITOR, None).await,
        200,
    )
    .await;
    let (_, text) = slash(&app, "UBOB", "COPS", "ack T-3").await;
    assert_eq!(text, "T-3 acknowledged by bob.");

    let (kind, text) = slash(&app, "UBOB", "COPS", "status").await;
    assert_eq!(kind, "ephemeral");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2 open tickets in ops:", "{text}");
    assert!(lines[1].starts_with("T-3 [critical] "), "{text}");
    assert!(
        lines[1].ends_with(" (acked, unassigned) http://tocsin.test/tickets/T-3"),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "T-1 [critical] Disk full on db1 (open, unassigned) http://tocsin.test/tickets/T-1"
    );
    assert_eq!(lines.len(), 3, "{text}");
    // The alert's title cannot ping the channel or format the answer.
    for bad in ["<!channel>", "@here", "*load*"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }

    // From a channel that is no tocsin room: every room's.
    let (_, text) = slash(&app, "UBOB", "CELSEWHERE", "status").await;
    assert!(text.starts_with("3 open tickets anywhere:"), "{text}");
    assert!(text.contains("T-2 [critical] Replication lag"), "{text}");

    let (_, text) = slash(&app, "UBOB", "COPS", "resolve T-1").await;
    assert_eq!(text, "T-1 resolved by bob.");
    let (_, text) = slash(&app, "UBOB", "COPS", "resolve T-3").await;
    assert_eq!(text, "T-3 resolved by bob.");
    let (_, text) = slash(&app, "UBOB", "COPS", "status").await;
    assert_eq!(text, "No open tickets in ops.");
}

#[tokio::test]
async fn silences_from_chat() {
    let app = app_with_ticket().await;
    let (kind, text) = slash(
        &app,
        "UBOB",
        "COPS",
        "silence alertname=DiskFull instance=~\"db.*\" 2h disk swap",
    )
    .await;
    assert_eq!(kind, "in_channel", "{text}");
    // Slack mrkdwn: `~` and `*` are disarmed with a zero-width space.
    let until = app.now().plus(Duration::from_secs(7200)).to_rfc3339();
    assert_eq!(
        text,
        format!(
            "Silence 1 by bob until {until}: alertname=\"DiskFull\" instance=~\u{200B}\"db.*\u{200B}\" (disk swap)."
        )
    );
    let v = expect(app.api_get("/api/silences", ADMIN).await, 200).await;
    let s = &v["silences"][0];
    assert_eq!(s["author"], "bob");
    assert_eq!(s["comment"], "disk swap");
    assert_eq!(s["ends_at"], until.as_str());
    assert_eq!(
        s["matchers_text"],
        json!(["alertname=\"DiskFull\"", "instance=~\"db.*\""])
    );
    let (kind, text) = slash(&app, "UBOB", "COPS", "silence job=~\".*\" 2h everything").await;
    assert_eq!(kind, "ephemeral");
    assert!(text.contains("cannot be made"), "{text}");
    let (_, text) = slash(&app, "UBOB", "COPS", "silence alertname=X").await;
    assert!(text.contains("Usage: `silence "), "{text}");
    let (_, text) = slash(&app, "UCAROL", "COPS", "silence alertname=X 1h").await;
    assert!(text.contains("viewer"), "{text}");
}

/// The `action_id`s of the buttons in a Slack request body.
fn buttons(body: &Value) -> Vec<String> {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| e["action_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_root_message_offers_the_buttons_that_still_apply() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let slack = MockServer::start().await;
    let ok = |ts: &str| {
        ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "COPS", "ts": ts}))
    };
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok("1700000000.000100"))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .respond_with(ok("1700000000.000100"))
        .mount(&slack)
        .await;
    let app = spawn_with_slack(&format!("{}/api", slack.uri()), CHATOPS).await;
    alert(&app, "Disk full on db1", "ops").await;
    app.deliver().await;
    let sent = |i: usize| {
        let slack = &slack;
        async move {
            let requests = slack.received_requests().await.unwrap();
            let r = &requests[i];
            (
                r.url.path().to_string(),
                serde_json::from_slice::<Value>(&r.body).unwrap(),
            )
        }
    };
    let (p, root) = sent(0).await;
    assert_eq!(p, "/api/chat.postMessage");
    assert_eq!(buttons(&root), ["tocsin_ack", "tocsin_resolve"]);

    // Acked from chat: the reply in the thread has no buttons, the edited root only Resolve.
    let (_, text) = slash(&app, "UBOB", "COPS", "ack T-1").await;
    assert_eq!(text, "T-1 acknowledged by bob.");
    app.deliver().await;
    let requests = slack.received_requests().await.unwrap();
    let mut seen = Vec::new();
    for i in 1..requests.len() {
        let (p, body) = sent(i).await;
        seen.push((p, body.get("thread_ts").is_some(), buttons(&body)));
    }
    assert!(
        seen.contains(&(
            "/api/chat.update".into(),
            false,
            vec!["tocsin_resolve".into()]
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("/api/chat.postMessage".into(), true, vec![])),
        "{seen:?}"
    );

    let (_, text) = slash(&app, "UBOB", "COPS", "resolve T-1").await;
    assert_eq!(text, "T-1 resolved by bob.");
    app.deliver().await;
    let requests = slack.received_requests().await.unwrap();
    let (p, last_edit) = {
        let mut found = None;
        for i in 0..requests.len() {
            let (p, body) = sent(i).await;
            if p == "/api/chat.update" {
                found = Some((p, body));
            }
        }
        found.unwrap()
    };
    assert_eq!(p, "/api/chat.update");
    assert!(buttons(&last_edit).is_empty(), "{last_edit}");
    assert!(last_edit["text"]
        .as_str()
        .unwrap()
        .starts_with("[RESOLVED] T-1"));
}

async fn mattermost(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    app.post_raw(
        "/chat/mattermost",
        Some("application/x-www-form-urlencoded"),
        form(fields),
        &[],
    )
    .await
}

#[tokio::test]
async fn mattermost_slash_commands_with_the_right_token() {
    let app = spawn(CHATOPS).await;
    alert(&app, "Replication lag", "db").await;
    let command = |token: &'static str, user: &'static str, text: &'static str| {
        vec![
            ("token", token),
            ("team_domain", "example"),
            ("channel_id", "mmdb"),
            ("channel_name", "db"),
            ("command", "/tocsin"),
            ("text", text),
            (
                "user_id",
                match user {
                    "alice" => "uid-alice",
                    "bob" => "uid-bob",
                    "carol" => "uid-carol",
                    _ => "rrhbi5u7tfbo3ybhg9xpjhgsyh",
                },
            ),
            ("user_name", user),
            ("response_url", "http://mm.test/hooks/commands/x"),
        ]
    };
    let v = expect(
        mattermost(&app, &command(MM_SLASH, "bob", "note T-1 looking into it")).await,
        200,
    )
    .await;
    assert_eq!(
        v,
        json!({"response_type": "in_channel", "text": "Note added to T-1 by bob."})
    );
    let e = last_entry(&app, "T-1").await;
    assert_eq!(
        (e["kind"].as_str(), e["text"].as_str()),
        (Some("note"), Some("looking into it"))
    );
    assert_eq!(e["data"]["via"], "mattermost");
    assert_eq!(e["data"]["room"], "db");

    let v = expect(
        mattermost(&app, &command(MM_SLASH, "bob", "ack T-1")).await,
        200,
    )
    .await;
    assert_eq!(v["text"], "T-1 acknowledged by bob.");
    assert_eq!(
        last_entry(&app, "T-1").await["text"],
        "Acknowledged by bob (via mattermost)."
    );

    let v = expect(
        mattermost(&app, &command(MM_SLASH, "carol", "resolve T-1")).await,
        200,
    )
    .await;
    assert_eq!(v["response_type"], "ephemeral");
    assert!(v["text"].as_str().unwrap().contains("viewer"), "{v}");
    let v = expect(
        mattermost(&app, &command(MM_SLASH, "bob", "status")).await,
        200,
    )
    .await;
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("1 open ticket in db:"),
        "{v}"
    );

    // A wrong or missing token is refused, and nothing changes.
    let r = mattermost(&app, &command("mm-slash-token-2", "bob", "resolve T-1")).await;
    assert_eq!(r.headers()["www-authenticate"], "Token");
    assert_unauthorized(&expect(r, 401).await);
    let mut no_token = command(MM_SLASH, "bob", "resolve T-1");
    no_token.remove(0);
    assert_unauthorized(&expect(mattermost(&app, &no_token).await, 401).await);
    assert_eq!(ticket(&app, "T-1").await["state"], "acked");
}

#[tokio::test]
async fn mattermost_outgoing_webhooks_strip_the_trigger_word() {
    let app = spawn(CHATOPS).await;
    alert(&app, "Replication lag", "db").await;
    let hook = |text: &str| {
        json!({
            "token": MM_HOOK, "team_id": "t1", "team_domain": "example", "channel_id": "mmdb",
            "channel_name": "db", "timestamp": 1_700_000_000_000u64, "user_id": "uid-alice",
            "user_name": "alice", "post_id": "p1", "text": text, "trigger_word": "tocsin",
            "file_ids": "",
        })
    };
    let v = expect(
        app.post("/chat/mattermost", &hook("tocsin ack T-1"), &[])
            .await,
        200,
    )
    .await;
    assert_eq!(v, json!({"text": "T-1 acknowledged by alice."}));
    let v = expect(
        app.post("/chat/mattermost", &hook("Tocsin: resolve T-1"), &[])
            .await,
        200,
    )
    .await;
    assert_eq!(v, json!({"text": "T-1 resolved by alice."}));
    assert_eq!(
        last_entry(&app, "T-1").await["text"],
        "Resolved by alice (via mattermost)."
    );

    // Form-encoded works too.
    let r = mattermost(
        &app,
        &[
            ("token", MM_HOOK),
            ("channel_id", "mmdb"),
            ("user_id", "uid-bob"),
            ("user_name", "bob"),
            ("text", "tocsin status"),
            ("trigger_word", "tocsin"),
        ],
    )
    .await;
    assert_eq!(
        expect(r, 200).await,
        json!({"text": "No open tickets in db."})
    );

    let mut bad = hook("tocsin ack T-1");
    bad["token"] = json!("nope");
    let r = app.post("/chat/mattermost", &bad, &[]).await;
    assert_unauthorized(&expect(r, 401).await);
}

#[tokio::test]
async fn without_a_chatops_block_the_routes_are_not_there() {
    let app = spawn("").await;
    let body = slash_body("UBOB", "COPS", "help");
    for path in ["/chat/slack/command", "/chat/slack/interactive"] {
        let v = expect(slack_at(&app, path, &body, now_secs(&app)).await, 404).await;
        assert_eq!(v["error"], "not_found", "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains("chatops.slack"),
            "{v}"
        );
    }
    let r = mattermost(&app, &[("token", MM_SLASH), ("text", "help")]).await;
    let v = expect(r, 404).await;
    assert!(
        v["detail"].as_str().unwrap().contains("chatops.mattermost"),
        "{v}"
    );
}

#[tokio::test]
async fn mattermost_users_are_known_by_their_user_id_never_by_their_user_name() {
    let app = spawn(CHATOPS).await;
    alert(&app, "Replication lag", "db").await;
    let hook = |user_id: &'static str, user_name: &'static str, text: &'static str| {
        vec![
            ("token", MM_HOOK),
            ("channel_id", "mmdb"),
            ("user_id", user_id),
            ("user_name", user_name),
            ("text", text),
            ("trigger_word", "tocsin"),
        ]
    };
    // Someone renamed themselves `alice` (user names can be changed by their owner).
    let v = expect(
        mattermost(&app, &hook("uid-mallory", "alice", "tocsin ack T-1")).await,
        200,
    )
    .await;
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("Sorry, I do not know who you are"),
        "{v}"
    );
    // Nor does a user name in the user_id field pass: IDs only.
    let v = expect(
        mattermost(&app, &hook("alice", "alice", "tocsin ack T-1")).await,
        200,
    )
    .await;
    assert!(v["text"].as_str().unwrap().starts_with("Sorry"), "{v}");
    assert_eq!(app.timeline_kinds("T-1").await, ["opened"]);
    // The real alice, whatever her user name is today.
    let v = expect(
        mattermost(&app, &hook("uid-alice", "alice-renamed", "tocsin ack T-1")).await,
        200,
    )
    .await;
    assert_eq!(v["text"], "T-1 acknowledged by alice.");
    // `assign` still takes a Mattermost user name for whom to assign.
    let v = expect(
        mattermost(&app, &hook("uid-alice", "alice", "tocsin assign T-1 @bob")).await,
        200,
    )
    .await;
    assert_eq!(v["text"], "T-1 assigned to bob by alice.");
}

#[tokio::test]
async fn text_typed_in_chat_is_echoed_back_escaped_and_defused() {
    let app = spawn(CHATOPS).await;
    alert(&app, "Replication lag", "db").await;
    // An outgoing webhook answer is posted to the channel: an echoed `@channel` would ping everyone.
    for typed in [
        "tocsin @channel",
        "tocsin @here please",
        "tocsin <!channel>",
        "tocsin **@all**",
        "tocsin silence @channel 1h",
        "tocsin assign T-1 @channel",
    ] {
        let v = expect(
            mattermost(
                &app,
                &[
                    ("token", MM_HOOK),
                    ("channel_id", "mmdb"),
                    ("user_id", "uid-bob"),
                    ("text", typed),
                    ("trigger_word", "tocsin"),
                ],
            )
            .await,
            200,
        )
        .await;
        let text = v["text"].as_str().unwrap();
        for ping in ["@channel", "@here", "@all", "<!channel>"] {
            assert!(!text.contains(ping), "{typed} → {text}");
        }
    }
    // Slack too: the unknown verb comes back without live mentions or markup.
    let (_, text) = slash(&app, "UBOB", "COPS", "<!channel> <@U123>").await;
    assert!(
        !text.contains("<!channel>") && !text.contains("<@U123>"),
        "{text}"
    );
}
