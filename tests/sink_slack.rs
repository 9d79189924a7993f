//! The Slack sink against wiremock: the shared conformance suite in both modes (incoming webhook and
//! Web API), then the request contract of the Web API (token, channel, threads, edits, mentions) and of
//! presence (`users.getPresence`).

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tocsin::domain::alert::Severity;
use tocsin::domain::message::{Change, Content, Digest, DigestItem, Mention};
use tocsin::domain::presence::PresenceState;
use tocsin::domain::ticket::TicketState;
use tocsin::domain::time::Timestamp;
use tocsin::sinks::{Action, Capabilities, Outcome, Request};
use wiremock::matchers::{any, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::conformance::{self, message, post, sink, Platform};

const TOKEN: &str = "xoxb-0000-test-token";
const CHANNEL: &str = "C0123ABCD";
const TS: &str = "1503435956.000247";

fn api_config(base: &str) -> String {
    format!(
        "kind: slack\ntoken: {TOKEN}\nchannel: {CHANNEL}\napi_url: {base}/api\ntimeout: 500ms\n"
    )
}

fn webhook_config(base: &str) -> String {
    format!("kind: slack\nwebhook_url: {base}/services/T000/B000/XXXXXXXX\ntimeout: 500ms\n")
}

/// `chat.postMessage`'s documented success answer.
fn api_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "channel": CHANNEL,
        "ts": TS,
        "message": {"type": "message", "subtype": "bot_message", "text": "[FIRING] T-7", "ts": TS},
    }))
}

/// An incoming webhook answers with the bare text `ok`.
fn webhook_ok() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/html")
        .set_body_string("ok")
}

fn rate_limited_429() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", "30")
        .set_body_string("rate_limited")
}

const FORBIDDEN: &[&str] = &["<@U999>", "<script", "<b>"];

#[tokio::test]
async fn conformance_web_api() {
    conformance::run(Platform {
        config: api_config,
        ok: api_ok,
        handle: Some("C0123ABCD:1503435956.000247"),
        rate_limited: vec![
            (rate_limited_429(), Duration::from_secs(30)),
            // Slack also reports a spent budget in the body of a 200, with the wait in the header.
            (
                ResponseTemplate::new(200)
                    .insert_header("Retry-After", "30")
                    .set_body_json(json!({"ok": false, "error": "ratelimited"})),
                Duration::from_secs(30),
            ),
        ],
        permanent: ResponseTemplate::new(200)
            .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
        idempotency_key: None,
        renders_text: true,
        forbidden: FORBIDDEN,
    })
    .await;
}

#[tokio::test]
async fn conformance_incoming_webhook() {
    conformance::run(Platform {
        config: webhook_config,
        ok: webhook_ok,
        handle: None,
        rate_limited: vec![(rate_limited_429(), Duration::from_secs(30))],
        permanent: ResponseTemplate::new(400).set_body_string("invalid_payload"),
        idempotency_key: None,
        renders_text: true,
        forbidden: FORBIDDEN,
    })
    .await;
}

async fn body_of(server: &MockServer, index: usize) -> Value {
    let requests = server.received_requests().await.unwrap();
    serde_json::from_slice(&requests[index].body).unwrap()
}

fn reply(content: Content, thread: &str) -> Request {
    Request {
        action: Action::Post {
            thread: Some(thread.into()),
        },
        content,
        idempotency_key: "reply-1".into(),
    }
}

#[tokio::test]
async fn web_api_post_sends_the_token_and_channel() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(
            json!({"channel": CHANNEL, "unfurl_links": false}),
        ))
        .respond_with(api_ok())
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    assert_eq!(
        s.capabilities(),
        Capabilities {
            threads: true,
            edits: true
        }
    );
    let outcome = s
        .send(&post(message(Change::Opened, TicketState::Open), "d-1"))
        .await;
    assert_eq!(outcome, Outcome::sent(Some(format!("{CHANNEL}:{TS}"))));

    let body = body_of(&server, 0).await;
    assert!(body.get("thread_ts").is_none(), "{body}");
    assert!(
        body["text"].as_str().unwrap().starts_with("[FIRING] T-7"),
        "{body}"
    );
    let headline = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(
        headline,
        "*[FIRING]* <http://tocsin.test/tickets/T-7|T-7> Disk full on db1"
    );
}

#[tokio::test]
async fn a_state_change_reply_is_threaded_and_broadcast() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(body_partial_json(json!({
            "channel": "C0ROOT",
            "thread_ts": TS,
            "reply_broadcast": true,
        })))
        .respond_with(api_ok())
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let acked = message(Change::Acked { by: "bob".into() }, TicketState::Acked);
    let outcome = s.send(&reply(acked, &format!("C0ROOT:{TS}"))).await;
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
    let body = body_of(&server, 0).await;
    let texts = serde_json::to_string(&body["blocks"]).unwrap();
    assert!(texts.contains("Acked by bob"), "{texts}");
}

#[tokio::test]
async fn a_note_reply_stays_in_the_thread() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(body_partial_json(json!({"thread_ts": TS})))
        .respond_with(api_ok())
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let note = message(
        Change::Note {
            author: "bob".into(),
            text: "rebooting db1".into(),
        },
        TicketState::Open,
    );
    s.send(&reply(note, &format!("{CHANNEL}:{TS}"))).await;
    let body = body_of(&server, 0).await;
    assert!(body.get("reply_broadcast").is_none(), "{body}");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("Note by bob: rebooting db1"));
}

#[tokio::test]
async fn an_edit_updates_the_message_the_handle_names() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(json!({"channel": "C0999ZZZ", "ts": TS})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C0999ZZZ", "ts": TS, "text": "[RESOLVED] T-7",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let request = Request {
        action: Action::Edit {
            handle: format!("C0999ZZZ:{TS}"),
        },
        content: message(
            Change::Resolved {
                by: "source:prom".into(),
            },
            TicketState::Resolved,
        ),
        idempotency_key: "edit-1".into(),
    };
    let outcome = s.send(&request).await;
    assert_eq!(outcome, Outcome::sent(Some(format!("C0999ZZZ:{TS}"))));
    let body = body_of(&server, 0).await;
    assert!(body["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with("*[RESOLVED]*"));
}

#[tokio::test]
async fn a_malformed_handle_is_refused_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(api_ok())
        .expect(0)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let request = Request {
        action: Action::Edit {
            handle: "not-a-handle".into(),
        },
        content: message(Change::Opened, TicketState::Open),
        idempotency_key: "edit-2".into(),
    };
    assert!(matches!(s.send(&request).await, Outcome::Permanent { .. }));
}

#[tokio::test]
async fn mentions_ping_members_by_id_and_name_the_rest() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(api_ok())
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let mut content = message(Change::Opened, TicketState::Open);
    if let Content::Ticket(t) = &mut content {
        t.mentions = vec![
            Mention::Member {
                name: "alice".into(),
                handle: Some("U024BE7LH".into()),
            },
            Mention::Member {
                name: "dave".into(),
                handle: None,
            },
            Mention::Here,
        ];
    }
    s.send(&post(content, "d-2")).await;
    let body = body_of(&server, 0).await;
    let blocks = serde_json::to_string(&body["blocks"]).unwrap();
    assert!(blocks.contains("<@U024BE7LH> dave <!here>"), "{blocks}");
    assert!(!blocks.contains("<@dave"), "{blocks}");
    assert!(body["text"].as_str().unwrap().contains("<@U024BE7LH>"));
}

#[tokio::test]
async fn a_digest_lists_the_storm() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(api_ok())
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let digest = Content::Digest(Digest {
        room: "ops".into(),
        changes: 12,
        firing: 9,
        acked: 2,
        resolved: 1,
        by_severity: vec![(Severity::Critical, 9)],
        top: vec![DigestItem {
            number: 3,
            title: "API down".into(),
            state: TicketState::Open,
            severity: Severity::Critical,
            link: "http://tocsin.test/tickets/T-3".into(),
        }],
        more: 11,
        link: "http://tocsin.test/tickets".into(),
        mentions: vec![Mention::All],
        at: Timestamp::from_millis(1_700_000_000_000),
    });
    let outcome = s.send(&post(digest, "d-3")).await;
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
    let body = body_of(&server, 0).await;
    let blocks = serde_json::to_string(&body["blocks"]).unwrap();
    for want in [
        "*Alert storm in #ops*: 12 changes — 9 firing, 2 acked, 1 resolved",
        "<http://tocsin.test/tickets/T-3|T-3> [FIRING] critical API down",
        "<http://tocsin.test/tickets|+11 more>",
        "<!channel>",
    ] {
        assert!(blocks.contains(want), "{want} not in {blocks}");
    }
}

#[tokio::test]
async fn webhook_posts_text_and_blocks_and_cannot_edit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/XXXXXXXX"))
        .and(body_partial_json(json!({"unfurl_links": false})))
        .respond_with(webhook_ok())
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&webhook_config(&server.uri()));
    assert_eq!(s.capabilities(), Capabilities::default());
    let outcome = s
        .send(&post(message(Change::Opened, TicketState::Open), "d-4"))
        .await;
    assert_eq!(outcome, Outcome::sent(None));
    let body = body_of(&server, 0).await;
    assert!(
        body["text"].is_string() && body["blocks"].is_array(),
        "{body}"
    );
    assert!(body.get("channel").is_none(), "{body}");

    // Edits need a handle the webhook never gave: refused without a request (expect(1) above).
    let edit = Request {
        action: Action::Edit {
            handle: format!("{CHANNEL}:{TS}"),
        },
        content: message(Change::Opened, TicketState::Open),
        idempotency_key: "d-5".into(),
    };
    assert!(matches!(s.send(&edit).await, Outcome::Permanent { .. }));
}

#[tokio::test]
async fn webhook_errors_are_permanent() {
    for (status, text) in [
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ] {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(status).set_body_string(text))
            .mount(&server)
            .await;
        let outcome = sink(&webhook_config(&server.uri()))
            .send(&post(message(Change::Opened, TicketState::Open), "d-6"))
            .await;
        match outcome {
            Outcome::Permanent { error } => assert!(error.contains(text), "{error}"),
            other => panic!("{status} gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn web_api_transient_errors_are_retried() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "internal_error"})),
        )
        .mount(&server)
        .await;
    let outcome = sink(&api_config(&server.uri()))
        .send(&post(message(Change::Opened, TicketState::Open), "d-7"))
        .await;
    assert!(
        matches!(outcome, Outcome::Retry { after: None, .. }),
        "{outcome:?}"
    );
}

/// The member's Slack handle: their user ID.
const USER: &str = "U024BE7LH";

/// `users.getPresence`'s documented answer for another user.
fn presence_ok(presence: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "presence": presence,
        "online": presence == "active",
        "auto_away": presence == "away",
        "manual_away": false,
        "connection_count": 1,
        "last_activity": 1_419_027_078,
    }))
}

#[tokio::test]
async fn presence_asks_users_get_presence_with_the_token() {
    for (answer, state) in [
        ("active", PresenceState::Online),
        ("away", PresenceState::Away),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/users.getPresence"))
            .and(query_param("user", USER))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(presence_ok(answer))
            .expect(1)
            .mount(&server)
            .await;
        let s = sink(&api_config(&server.uri()));
        assert_eq!(s.presence(USER).await, Some(Ok(state)), "{answer}");
        server.verify().await;
    }
}

#[tokio::test]
async fn presence_errors_name_what_slack_said() {
    for (answer, want) in [
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "user_not_found"})),
            "user_not_found",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({
                "ok": false, "error": "missing_scope",
                "needed": "users:read", "provided": "chat:write",
            })),
            "missing_scope (needs users:read)",
        ),
        (
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
            "HTTP 429",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "presence": "dnd"})),
            "unexpected presence",
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        match sink(&api_config(&server.uri())).presence(USER).await {
            Some(Err(error)) => {
                assert!(error.contains(want), "{want} not in {error}");
                assert!(!error.contains(TOKEN), "the token leaked: {error}");
            }
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn presence_through_a_webhook_is_unknown() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(presence_ok("active"))
        .expect(0)
        .mount(&server)
        .await;
    let s = sink(&webhook_config(&server.uri()));
    assert_eq!(s.presence(USER).await, None);
    server.verify().await;
}
