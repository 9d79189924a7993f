//! The Matrix sink: the shared conformance suite against wiremock, then the real thing against a Synapse
//! homeserver (installed by `scripts/fetch-synapse.sh`): mentions that really ping, threads, edits,
//! idempotent retries and hostile alert text, read back through a person's client API.

mod common;
use common::synapse;

use std::time::Duration;

use common::conformance::{self, hostile_message, Platform};
use serde_json::{json, Value};
use synapse::{Synapse, User};
use tocsin::domain::alert::{Labels, Severity};
use tocsin::domain::message::{Change, Content, Mention, TicketMessage};
use tocsin::domain::ticket::TicketState;
use tocsin::domain::time::Timestamp;
use tocsin::sinks::{Action, Outcome, Request, Sink};
use wiremock::ResponseTemplate;

#[tokio::test]
async fn conformance() {
    conformance::run(Platform {
        config: |base| {
            format!(
                "{{kind: matrix, homeserver: \"{base}\", access_token: tok, room_id: \"!room:localhost\", timeout: 500ms}}"
            )
        },
        ok: || ResponseTemplate::new(200).set_body_json(json!({"event_id": "$abc:localhost"})),
        handle: Some("$abc:localhost"),
        rate_limited: vec![
            // Synapse sends both; the body's milliseconds are the precise figure.
            (
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "3")
                    .set_body_json(json!({
                        "errcode": "M_LIMIT_EXCEEDED",
                        "error": "Too Many Requests",
                        "retry_after_ms": 2000,
                    })),
                Duration::from_secs(2),
            ),
            (
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "5")
                    .set_body_json(json!({
                        "errcode": "M_LIMIT_EXCEEDED",
                        "error": "Too Many Requests",
                    })),
                Duration::from_secs(5),
            ),
        ],
        permanent: ResponseTemplate::new(403).set_body_json(json!({
            "errcode": "M_FORBIDDEN",
            "error": "User @bot:localhost not in room !room:localhost",
        })),
        // The transaction id is the last path segment.
        idempotency_key: Some(|r| {
            r.url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_string()
        }),
        renders_text: true,
        forbidden: &["<script", "<b>", "<img"],
    })
    .await;
}

/// A bot and alice in a private room the bot made, and a sink posting there as the bot.
struct Room {
    synapse: Synapse,
    bot: User,
    alice: User,
    room_id: String,
    sink: std::sync::Arc<dyn Sink>,
}

async fn room() -> Room {
    let synapse = Synapse::start().await;
    let bot = synapse.register("tocsin-bot", "bot-password", false).await;
    let alice = synapse.register("alice", "alice-password", false).await;
    let room_id = synapse.create_room(&bot, &[&alice]).await;
    synapse.join(&alice, &room_id).await;
    // JSON is YAML; it quotes the `!` of the room ID, which YAML would read as a tag.
    let config = json!({
        "kind": "matrix",
        "homeserver": synapse.homeserver_url(),
        "access_token": bot.access_token,
        "room_id": room_id,
        "timeout": "30s",
    });
    let sink = conformance::sink(&config.to_string());
    Room {
        synapse,
        bot,
        alice,
        room_id,
        sink,
    }
}

fn ticket(change: Change, state: TicketState, mentions: Vec<Mention>) -> Content {
    Content::Ticket(TicketMessage {
        ticket_id: "0190f0c4-aaaa-7bbb-8ccc-000000000007".into(),
        number: 7,
        title: "Disk full on db1".into(),
        state,
        severity: Severity::Critical,
        source: "prom".into(),
        labels: Labels::from([("alertname".into(), "DiskFull".into())]),
        summary: Some("/var is at 97%".into()),
        link: "http://tocsin.test/tickets/T-7".into(),
        change,
        mentions,
        at: Timestamp::from_millis(1_700_000_000_000),
    })
}

async fn send(sink: &dyn Sink, action: Action, content: Content, key: &str) -> String {
    let request = Request {
        action,
        content,
        idempotency_key: key.into(),
    };
    match sink.send(&request).await {
        Outcome::Sent {
            handle: Some(h), ..
        } => h,
        other => panic!("send {key} gave {other:?}"),
    }
}

fn find<'a>(events: &'a [Value], event_id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event_id"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} not among {events:#?}"))
}

#[tokio::test]
async fn synapse_mentions_threads_and_edits() {
    let r = room().await;
    let s = &r.synapse;
    let alice_mention = Mention::Member {
        name: "alice".into(),
        handle: Some(r.alice.user_id.clone()),
    };

    // The first message mentions alice: a pill, her id in m.mentions, and a real notification for her.
    let root = send(
        &*r.sink,
        Action::Post { thread: None },
        ticket(Change::Opened, TicketState::Open, vec![alice_mention]),
        "t7-opened",
    )
    .await;
    let messages = s.messages(&r.alice, &r.room_id).await;
    let event = find(&messages, &root);
    assert_eq!(event["sender"], r.bot.user_id.as_str());
    let content = &event["content"];
    assert_eq!(
        content["m.mentions"],
        json!({"user_ids": [r.alice.user_id]})
    );
    assert_eq!(content["format"], "org.matrix.custom.html");
    let html = content["formatted_body"].as_str().unwrap();
    assert!(
        html.starts_with(
            "<strong>[FIRING]</strong> <a href=\"http://tocsin.test/tickets/T-7\">T-7</a> Disk full on db1"
        ),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://matrix.to/#/@alice:localhost\">alice</a>"),
        "{html}"
    );
    let body = content["body"].as_str().unwrap();
    assert!(
        body.starts_with("[FIRING] T-7 Disk full on db1\n"),
        "{body}"
    );
    assert!(body.contains("@alice:localhost"), "{body}");
    let pinged: Vec<Value> = s
        .notifications(&r.alice)
        .await
        .iter()
        .map(|n| n["event"]["event_id"].clone())
        .collect();
    assert!(
        pinged.iter().any(|id| *id == root.as_str()),
        "alice was not notified of {root}: {pinged:?}"
    );

    // A note goes into the thread under the first message.
    let note = send(
        &*r.sink,
        Action::Post {
            thread: Some(root.clone()),
        },
        ticket(
            Change::Note {
                author: "bob".into(),
                text: "rotating logs now".into(),
            },
            TicketState::Open,
            vec![],
        ),
        "t7-note-1",
    )
    .await;
    let thread = s.thread(&r.alice, &r.room_id, &root).await;
    let reply = find(&thread, &note);
    assert_eq!(reply["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(reply["content"]["m.relates_to"]["event_id"], root.as_str());
    assert_eq!(reply["content"]["m.mentions"], json!({}));
    assert_eq!(reply["content"]["msgtype"], "m.notice");
    let html = reply["content"]["formatted_body"].as_str().unwrap();
    assert!(
        html.contains("<i>note by bob:</i> rotating logs now"),
        "{html}"
    );

    // The ack edits the first message in place.
    let edit = send(
        &*r.sink,
        Action::Edit {
            handle: root.clone(),
        },
        ticket(
            Change::Acked { by: "bob".into() },
            TicketState::Acked,
            vec![],
        ),
        "t7-edit-acked",
    )
    .await;
    let messages = s.messages(&r.alice, &r.room_id).await;
    let replacement = &find(&messages, &edit)["content"];
    assert_eq!(
        replacement["m.relates_to"],
        json!({"rel_type": "m.replace", "event_id": root})
    );
    assert!(
        replacement["m.new_content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("[ACKED] T-7"),
        "{replacement}"
    );
    assert!(replacement["body"]
        .as_str()
        .unwrap()
        .starts_with("* [ACKED]"));
    // The server links the edit to the original, which is what clients display.
    let original = s
        .call(
            Some(&r.alice),
            reqwest::Method::GET,
            &synapse::url_path(&[
                "_matrix", "client", "v3", "rooms", &r.room_id, "event", &root,
            ]),
            None,
        )
        .await;
    assert_eq!(
        original["unsigned"]["m.relations"]["m.replace"]["event_id"],
        edit.as_str(),
        "{original}"
    );
}

#[tokio::test]
async fn synapse_retries_are_idempotent_and_alert_text_is_inert() {
    let r = room().await;
    let s = &r.synapse;

    // A retry of one delivery (same key) gets the first try's event back and posts nothing new.
    let content = ticket(Change::Opened, TicketState::Open, vec![]);
    let first = send(
        &*r.sink,
        Action::Post { thread: None },
        content.clone(),
        "t7-opened",
    )
    .await;
    let again = send(
        &*r.sink,
        Action::Post { thread: None },
        content,
        "t7-opened",
    )
    .await;
    assert_eq!(first, again);
    assert_eq!(s.messages(&r.alice, &r.room_id).await.len(), 1);

    // An alert that tries to ping the room and inject markup.
    let hostile = send(
        &*r.sink,
        Action::Post { thread: None },
        hostile_message(),
        "t42-opened",
    )
    .await;
    let messages = s.messages(&r.alice, &r.room_id).await;
    assert_eq!(messages.len(), 2);
    let content = &find(&messages, &hostile)["content"];
    assert_eq!(content["m.mentions"], json!({}), "{content}");
    let html = content["formatted_body"].as_str().unwrap();
    let body = content["body"].as_str().unwrap();
    for raw in [
        "<script",
        "<b>disk",
        "<img",
        "<!channel>",
        "<!here",
        "<@U999>",
    ] {
        assert!(!html.contains(raw), "formatted_body has {raw}: {html}");
        assert!(!body.contains(raw), "body has {raw}: {body}");
    }
    for ping in ["@room", "@here", "@everyone", "@channel", "@all"] {
        assert!(!html.contains(ping) && !body.contains(ping), "{content}");
    }
    assert!(
        html.contains("&lt;script&gt;x()&lt;/script&gt;"),
        "alert text is shown, escaped: {html}"
    );
    // And alice, a member of the room, was not pinged by it.
    let notified = s.notifications(&r.alice).await;
    assert!(
        notified
            .iter()
            .all(|n| n["event"]["event_id"] != hostile.as_str()),
        "{notified:#?}"
    );
}
