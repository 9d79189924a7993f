//! The Discord webhook sink against wiremock: the shared conformance suite, then the request contract
//! (`wait=true`, `allowed_mentions`, edits by PATCH) and the rate-limit headers.

mod common;

use std::time::Duration;

use common::conformance::{self, hostile_message, message, post, Platform};
use serde_json::{json, Value};
use tocsin::domain::message::{Change, Content, Mention};
use tocsin::domain::ticket::TicketState;
use tocsin::sinks::{Action, Capabilities, Outcome, Request};
use wiremock::matchers::{any, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WEBHOOK_PATH: &str = "/api/webhooks/123/tok";
const MESSAGE_ID: &str = "1100000000000000042";
const ALICE_ID: &str = "123456789012345678";

fn config(base: &str) -> String {
    format!("kind: discord\nwebhook_url: {base}{WEBHOOK_PATH}\ntimeout: 500ms\n")
}

/// The message object Discord returns for `?wait=true` (trimmed to the fields that matter here).
fn message_object() -> Value {
    json!({
        "id": MESSAGE_ID,
        "type": 0,
        "channel_id": "1100000000000000001",
        "webhook_id": "123",
        "content": "",
        "embeds": [],
        "timestamp": "2023-11-14T22:13:20.000000+00:00",
    })
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(message_object())
}

fn rate_limited_body() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .set_body_json(json!({
            "message": "You are being rate limited.",
            "retry_after": 1.5,
            "global": false,
        }))
        .insert_header("Retry-After", "2")
        .insert_header("X-RateLimit-Limit", "5")
        .insert_header("X-RateLimit-Remaining", "0")
        .insert_header("X-RateLimit-Reset-After", "1.5")
        .insert_header("X-RateLimit-Scope", "user")
}

fn rate_limited_header_only() -> ResponseTemplate {
    ResponseTemplate::new(429).insert_header("Retry-After", "3")
}

fn unknown_webhook() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({"message": "Unknown Webhook", "code": 10015}))
}

#[tokio::test]
async fn conformance() {
    conformance::run(Platform {
        config,
        ok,
        handle: Some(MESSAGE_ID),
        rate_limited: vec![
            (rate_limited_body(), Duration::from_millis(1500)),
            (rate_limited_header_only(), Duration::from_secs(3)),
        ],
        permanent: unknown_webhook(),
        idempotency_key: None,
        renders_text: true,
        forbidden: &["<@U999>", "<script", "<b>", "<img"],
    })
    .await;
}

fn alice_message() -> Content {
    let Content::Ticket(mut t) = message(Change::Opened, TicketState::Open) else {
        unreachable!("message() builds a ticket")
    };
    t.mentions = vec![Mention::Member {
        name: "alice".into(),
        handle: Some(ALICE_ID.into()),
    }];
    Content::Ticket(t)
}

fn body_of(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn says_what_it_can_do() {
    let sink = conformance::sink(&config("http://127.0.0.1:9"));
    assert_eq!(sink.kind(), "discord");
    assert_eq!(
        sink.capabilities(),
        Capabilities {
            threads: false,
            edits: true,
        }
    );
}

#[tokio::test]
async fn posts_with_wait_and_pings_only_the_routed_member() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .and(query_param("wait", "true"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "content": format!("<@{ALICE_ID}>"),
            "allowed_mentions": {"users": [ALICE_ID]},
            "embeds": [{
                "title": "[FIRING] T-7 Disk full on db1",
                "url": "http://tocsin.test/tickets/T-7",
                "timestamp": "2023-11-14T22:13:20.000Z",
            }],
        })))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    let outcome = sink.send(&post(alice_message(), "d-1")).await;
    assert_eq!(outcome, Outcome::sent(Some(MESSAGE_ID.into())));

    // `body_partial_json` accepts any array for `[]`, so the empty `parse` is checked exactly here.
    let requests = server.received_requests().await.unwrap();
    let body = body_of(&requests[0]);
    assert_eq!(
        body["allowed_mentions"],
        json!({"parse": [], "users": [ALICE_ID]})
    );
}

#[tokio::test]
async fn allowed_mentions_is_sent_even_without_pings() {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(ok()).mount(&server).await;
    let sink = conformance::sink(&config(&server.uri()));
    sink.send(&post(hostile_message(), "d-1")).await;
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(body["allowed_mentions"], json!({"parse": [], "users": []}));
    assert_eq!(body["content"], "");
}

#[tokio::test]
async fn here_and_all_open_parse_only_when_routed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({
            "content": "@here @everyone",
            "allowed_mentions": {"parse": ["everyone"]},
        })))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let Content::Ticket(mut t) = message(Change::Opened, TicketState::Open) else {
        unreachable!()
    };
    t.mentions = vec![Mention::Here, Mention::All];
    let sink = conformance::sink(&config(&server.uri()));
    let outcome = sink.send(&post(Content::Ticket(t), "d-1")).await;
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
}

#[tokio::test]
async fn an_edit_patches_the_message() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("{WEBHOOK_PATH}/messages/{MESSAGE_ID}")))
        .and(body_partial_json(json!({
            "allowed_mentions": {"parse": []},
            "embeds": [{"title": "[ACKED] T-7 Disk full on db1"}],
        })))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    let request = Request {
        action: Action::Edit {
            handle: MESSAGE_ID.into(),
        },
        content: message(Change::Acked { by: "bob".into() }, TicketState::Acked),
        idempotency_key: "d-2".into(),
    };
    let outcome = sink.send(&request).await;
    assert_eq!(outcome, Outcome::sent(Some(MESSAGE_ID.into())));
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    assert!(body["allowed_mentions"].is_object(), "{body}");
    assert!(body["content"].is_string(), "an edit replaces the content");
}

#[tokio::test]
async fn a_thread_handle_still_posts_a_new_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .and(query_param("wait", "true"))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    let request = Request {
        action: Action::Post {
            thread: Some(MESSAGE_ID.into()),
        },
        content: message(Change::Refired, TicketState::Open),
        idempotency_key: "d-3".into(),
    };
    assert!(matches!(sink.send(&request).await, Outcome::Sent { .. }));
}

#[tokio::test]
async fn a_webhook_url_with_a_query_keeps_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .and(query_param("thread_id", "55"))
        .and(query_param("wait", "true"))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let cfg = format!(
        "kind: discord\nwebhook_url: {}{WEBHOOK_PATH}?thread_id=55\ntimeout: 500ms\n",
        server.uri()
    );
    let sink = conformance::sink(&cfg);
    let outcome = sink.send(&post(alice_message(), "d-1")).await;
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_spent_bucket_asks_for_a_pause() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ok().insert_header("X-RateLimit-Limit", "5")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset-After", "2.5")
                .insert_header("X-RateLimit-Bucket", "abcd"),
        )
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    let outcome = sink.send(&post(alice_message(), "d-1")).await;
    assert_eq!(
        outcome,
        Outcome::Sent {
            handle: Some(MESSAGE_ID.into()),
            pause: Some(Duration::from_millis(2500)),
        }
    );
}

#[tokio::test]
async fn a_bucket_with_room_left_needs_no_pause() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ok().insert_header("X-RateLimit-Remaining", "4")
                .insert_header("X-RateLimit-Reset-After", "2.5"),
        )
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    let outcome = sink.send(&post(alice_message(), "d-1")).await;
    assert_eq!(outcome, Outcome::sent(Some(MESSAGE_ID.into())));
}

#[tokio::test]
async fn retry_after_in_milliseconds_is_read_as_such() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "message": "You are being rate limited.",
            "retry_after": 4000,
            "global": true,
        })))
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    match sink.send(&post(alice_message(), "d-1")).await {
        Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(4))),
        other => panic!("429 gave {other:?}"),
    }
}

#[tokio::test]
async fn documented_client_errors_are_permanent() {
    let invalid_form = ResponseTemplate::new(400).set_body_json(json!({
        "code": 50035,
        "message": "Invalid Form Body",
        "errors": {"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]}}}},
    }));
    let unauthorized = ResponseTemplate::new(401)
        .set_body_json(json!({"message": "401: Unauthorized", "code": 0}));
    for answer in [unknown_webhook(), invalid_form, unauthorized] {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(answer).mount(&server).await;
        let sink = conformance::sink(&config(&server.uri()));
        let outcome = sink.send(&post(alice_message(), "d-1")).await;
        match outcome {
            Outcome::Permanent { error } => {
                assert!(!error.contains("/tok"), "the token leaked: {error}")
            }
            other => panic!("gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn hostile_text_reaches_discord_escaped() {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(ok()).mount(&server).await;
    let sink = conformance::sink(&config(&server.uri()));
    sink.send(&post(hostile_message(), "d-1")).await;
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    let description = body["embeds"][0]["description"].as_str().unwrap();
    // The Markdown link is shown as text, not made into a link.
    assert!(!description.contains("[click](https"), "{description}");
    assert!(description.contains("click"), "{description}");
}
