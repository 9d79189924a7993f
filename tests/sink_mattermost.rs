//! The Mattermost sink against wiremock: the shared conformance suite in both modes (incoming webhook
//! and REST API v4), then the request contract of each (token, channel, root_id, patch, mentions) and of
//! presence (username lookup once, then the user's status).

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tocsin::domain::message::{Change, Content, Mention};
use tocsin::domain::presence::PresenceState;
use tocsin::domain::ticket::TicketState;
use tocsin::sinks::{Action, Capabilities, Outcome, Request};
use wiremock::matchers::{any, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::conformance::{self, message, post, sink, Platform};

const TOKEN: &str = "mm-test-token-0001";
const CHANNEL_ID: &str = "4xp9fdt77pncbef59f4k1qe83o";
const POST_ID: &str = "ufrbn3tyd3ntdjsd8ngnxp4hhe";
const ROOT_ID: &str = "8h9sbk1b3inffjd57ouq4xd5sa";

fn api_config(base: &str) -> String {
    format!(
        "kind: mattermost\nurl: {base}\ntoken: {TOKEN}\nchannel_id: {CHANNEL_ID}\ntimeout: 500ms\n"
    )
}

fn webhook_config(base: &str) -> String {
    format!(
        "kind: mattermost\nwebhook_url: {base}/hooks/xmd1qzr7fjbq8n5u3kx4w6yyhe\ntimeout: 500ms\n"
    )
}

/// `POST /api/v4/posts` answers 201 with the created post.
fn api_ok() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": POST_ID,
        "create_at": 1_700_000_000_000i64,
        "update_at": 1_700_000_000_000i64,
        "user_id": "w9c1wbd5fbr9zrxryk1qqwkyja",
        "channel_id": CHANNEL_ID,
        "root_id": "",
        "message": "**[FIRING]** [T-7](http://tocsin.test/tickets/T-7) Disk full on db1",
        "type": "",
        "props": {},
    }))
}

/// An incoming webhook answers with the bare text `ok`.
fn webhook_ok() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/plain")
        .set_body_string("ok")
}

/// The server's limiter (when enabled) answers with both headers, and the reset alone on some setups.
fn rate_limited() -> Vec<(ResponseTemplate, Duration)> {
    vec![
        (
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .insert_header("X-Ratelimit-Limit", "10")
                .insert_header("X-Ratelimit-Remaining", "0")
                .insert_header("X-Ratelimit-Reset", "30")
                .set_body_string("limit exceeded\n"),
            Duration::from_secs(30),
        ),
        (
            ResponseTemplate::new(429)
                .insert_header("X-Ratelimit-Limit", "10")
                .insert_header("X-Ratelimit-Remaining", "0")
                .insert_header("X-Ratelimit-Reset", "12")
                .set_body_string("limit exceeded\n"),
            Duration::from_secs(12),
        ),
    ]
}

fn forbidden_403() -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_json(json!({
        "id": "api.context.permissions.app_error",
        "message": "You do not have the appropriate permissions.",
        "detailed_error": "",
        "request_id": "xkq3tcbzb7dyjm1q8mdn7kbqpe",
        "status_code": 403,
    }))
}

const FORBIDDEN: &[&str] = &["<script", "<b>", "<img"];

#[tokio::test]
async fn conformance_rest_api() {
    conformance::run(Platform {
        config: api_config,
        ok: api_ok,
        handle: Some(POST_ID),
        rate_limited: rate_limited(),
        permanent: forbidden_403(),
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
        rate_limited: rate_limited(),
        permanent: forbidden_403(),
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

#[tokio::test]
async fn rest_post_sends_the_token_and_channel() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/posts"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(json!({"channel_id": CHANNEL_ID})))
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
    assert_eq!(outcome, Outcome::sent(Some(POST_ID.into())));
    let body = body_of(&server, 0).await;
    assert!(body.get("root_id").is_none(), "{body}");
    let text = body["message"].as_str().unwrap();
    assert!(
        text.starts_with("**[FIRING]** [T-7](http://tocsin.test/tickets/T-7) Disk full on db1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_reply_carries_root_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/posts"))
        .and(body_partial_json(
            json!({"channel_id": CHANNEL_ID, "root_id": ROOT_ID}),
        ))
        .respond_with(api_ok())
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let request = Request {
        action: Action::Post {
            thread: Some(ROOT_ID.into()),
        },
        content: message(Change::Acked { by: "bob".into() }, TicketState::Acked),
        idempotency_key: "reply-1".into(),
    };
    let outcome = s.send(&request).await;
    assert_eq!(outcome, Outcome::sent(Some(POST_ID.into())));
    let body = body_of(&server, 0).await;
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("\nAcked by bob\n"));
}

#[tokio::test]
async fn an_edit_patches_the_post() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(format!("/api/v4/posts/{ROOT_ID}/patch")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": ROOT_ID, "channel_id": CHANNEL_ID, "message": "**[RESOLVED]**",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let request = Request {
        action: Action::Edit {
            handle: ROOT_ID.into(),
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
    assert_eq!(outcome, Outcome::sent(Some(ROOT_ID.into())));
    let body = body_of(&server, 0).await;
    // A patch names only what changes: the message.
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["message"]);
    let text = body["message"].as_str().unwrap();
    assert!(text.starts_with("**[RESOLVED]**"), "{text}");
    assert!(text.contains("Resolved by source\\:prom"), "{text}");
}

#[tokio::test]
async fn a_handle_that_is_not_a_post_id_never_reaches_a_url() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(api_ok())
        .expect(0)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    let request = Request {
        action: Action::Edit {
            handle: "../users/me".into(),
        },
        content: message(Change::Opened, TicketState::Open),
        idempotency_key: "edit-2".into(),
    };
    assert!(matches!(s.send(&request).await, Outcome::Permanent { .. }));
}

#[tokio::test]
async fn mentions_use_usernames_and_name_the_rest() {
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
                handle: Some("alice.ops".into()),
            },
            Mention::Member {
                name: "dave".into(),
                handle: None,
            },
            Mention::Here,
            Mention::All,
        ];
    }
    s.send(&post(content, "d-2")).await;
    let body = body_of(&server, 0).await;
    let text = body["message"].as_str().unwrap();
    assert!(text.ends_with("\n@alice.ops dave @here @channel"), "{text}");
}

#[tokio::test]
async fn webhook_posts_text_as_tocsin_and_cannot_edit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/xmd1qzr7fjbq8n5u3kx4w6yyhe"))
        .and(body_partial_json(json!({"username": "tocsin"})))
        .respond_with(webhook_ok())
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&webhook_config(&server.uri()));
    assert_eq!(s.capabilities(), Capabilities::default());
    let outcome = s
        .send(&post(message(Change::Opened, TicketState::Open), "d-3"))
        .await;
    assert_eq!(outcome, Outcome::sent(None));
    let body = body_of(&server, 0).await;
    assert!(body["text"]
        .as_str()
        .unwrap()
        .starts_with("**[FIRING]** [T-7]"));
    assert!(body.get("channel_id").is_none(), "{body}");

    let edit = Request {
        action: Action::Edit {
            handle: POST_ID.into(),
        },
        content: message(Change::Opened, TicketState::Open),
        idempotency_key: "d-4".into(),
    };
    assert!(matches!(s.send(&edit).await, Outcome::Permanent { .. }));
}

#[tokio::test]
async fn an_invalid_webhook_is_permanent_and_says_why() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "id": "web.incoming_webhook.invalid.app_error",
            "message": "Invalid webhook.",
            "status_code": 400,
        })))
        .mount(&server)
        .await;
    let outcome = sink(&webhook_config(&server.uri()))
        .send(&post(message(Change::Opened, TicketState::Open), "d-5"))
        .await;
    match outcome {
        Outcome::Permanent { error } => {
            assert!(error.contains("Invalid webhook."), "{error}");
            assert!(!error.contains("xmd1qzr7"), "the hook key leaked: {error}");
        }
        other => panic!("{other:?}"),
    }
}

/// The member's Mattermost handle (their username) and the id the server knows them by.
const USERNAME: &str = "alice.ops";
const USER_ID: &str = "w9c1wbd5fbr9zrxryk1qqwkyja";

fn bearer() -> wiremock::matchers::HeaderExactMatcher {
    header("authorization", format!("Bearer {TOKEN}").as_str())
}

/// `GET /api/v4/users/username/{username}` answers with the user (sanitised: no email, no auth data).
fn user_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": USER_ID,
        "create_at": 1_700_000_000_000i64,
        "update_at": 1_700_000_000_000i64,
        "delete_at": 0,
        "username": USERNAME,
        "first_name": "Alice",
        "last_name": "",
        "nickname": "",
        "position": "",
        "roles": "system_user",
        "locale": "en",
    }))
}

fn status_ok(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "user_id": USER_ID,
        "status": status,
        "manual": false,
        "last_activity_at": 1_700_000_000_000i64,
    }))
}

fn not_found(id: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "id": id,
        "message": message,
        "detailed_error": "",
        "request_id": "b5aqxh1ypbdkme5ndpa8ywst1e",
        "status_code": 404,
    }))
}

async fn mount_lookup(server: &MockServer, times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v4/users/username/{USERNAME}")))
        .and(bearer())
        .respond_with(user_ok())
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn presence_reads_each_status_with_the_token() {
    for (answer, state) in [
        ("online", PresenceState::Online),
        ("away", PresenceState::Away),
        ("offline", PresenceState::Offline),
        ("dnd", PresenceState::Dnd),
    ] {
        let server = MockServer::start().await;
        mount_lookup(&server, 1).await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v4/users/{USER_ID}/status")))
            .and(bearer())
            .respond_with(status_ok(answer))
            .expect(1)
            .mount(&server)
            .await;
        let s = sink(&api_config(&server.uri()));
        assert_eq!(s.presence(USERNAME).await, Some(Ok(state)), "{answer}");
        server.verify().await;
    }
}

#[tokio::test]
async fn the_user_id_is_looked_up_once_for_two_polls() {
    let server = MockServer::start().await;
    mount_lookup(&server, 1).await;
    // The first poll sees online, the second dnd: the second answer is read, not remembered.
    Mock::given(method("GET"))
        .and(path(format!("/api/v4/users/{USER_ID}/status")))
        .respond_with(status_ok("online"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v4/users/{USER_ID}/status")))
        .respond_with(status_ok("dnd"))
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    assert_eq!(s.presence(USERNAME).await, Some(Ok(PresenceState::Online)));
    assert_eq!(s.presence(USERNAME).await, Some(Ok(PresenceState::Dnd)));
    server.verify().await;
}

#[tokio::test]
async fn an_unknown_username_is_an_error_and_is_asked_again_next_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/users/username/nobody"))
        .respond_with(not_found(
            "app.user.missing_account.const",
            "Unable to find the user.",
        ))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(format!("/api/v4/users/{USER_ID}/status")))
        .respond_with(status_ok("online"))
        .expect(0)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    for _ in 0..2 {
        match s.presence("nobody").await {
            Some(Err(error)) => {
                assert!(error.contains("Unable to find the user."), "{error}");
                assert!(!error.contains(TOKEN), "the token leaked: {error}");
            }
            other => panic!("{other:?}"),
        }
    }
    server.verify().await;
}

#[tokio::test]
async fn a_status_error_is_an_error_and_a_gone_user_is_looked_up_again() {
    let server = MockServer::start().await;
    mount_lookup(&server, 2).await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v4/users/{USER_ID}/status")))
        .respond_with(not_found(
            "app.status.get.missing.app_error",
            "We couldn't find the status.",
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v4/users/{USER_ID}/status")))
        .respond_with(status_ok("away"))
        .expect(1)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    match s.presence(USERNAME).await {
        Some(Err(error)) => assert!(error.contains("find the status"), "{error}"),
        other => panic!("{other:?}"),
    }
    // The 404 made the sink forget the id, so this poll looks the username up again.
    assert_eq!(s.presence(USERNAME).await, Some(Ok(PresenceState::Away)));
    server.verify().await;
}

#[tokio::test]
async fn a_handle_that_is_not_a_username_never_reaches_a_url() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(user_ok())
        .expect(0)
        .mount(&server)
        .await;
    let s = sink(&api_config(&server.uri()));
    for handle in ["../users/me", "..", "", "bob?x=1"] {
        assert!(
            matches!(s.presence(handle).await, Some(Err(_))),
            "{handle:?}"
        );
    }
    server.verify().await;
}

#[tokio::test]
async fn presence_through_a_webhook_is_unknown() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(user_ok())
        .expect(0)
        .mount(&server)
        .await;
    let s = sink(&webhook_config(&server.uri()));
    assert_eq!(s.presence(USERNAME).await, None);
    server.verify().await;
}
