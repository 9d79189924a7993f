//! The Teams Workflows webhook sink against wiremock: the shared conformance suite, then the request
//! contract (the Adaptive Card envelope and mention entities) and the documented errors.

mod common;

use std::time::Duration;

use common::conformance::{self, hostile_message, message, post, Platform};
use serde_json::{json, Value};
use tocsin::domain::alert::Severity;
use tocsin::domain::message::{Change, Content, Digest, DigestItem, Mention};
use tocsin::domain::ticket::TicketState;
use tocsin::domain::time::Timestamp;
use tocsin::sinks::{Action, Capabilities, Outcome, Request};
use wiremock::matchers::{any, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FLOW_PATH: &str = "/workflows/abc/triggers/manual/paths/invoke";

fn config(base: &str) -> String {
    format!(
        "kind: teams\nwebhook_url: \"{base}{FLOW_PATH}?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sig=s3cret\"\ntimeout: 500ms\n"
    )
}

/// The Workflows trigger accepts the request and says nothing more.
fn ok() -> ResponseTemplate {
    ResponseTemplate::new(202)
}

fn invalid_content() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": {
            "code": "InvalidRequestContent",
            "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition.",
        }
    }))
}

#[tokio::test]
async fn conformance() {
    conformance::run(Platform {
        config,
        ok,
        handle: None,
        rate_limited: vec![(
            ResponseTemplate::new(429).insert_header("Retry-After", "5"),
            Duration::from_secs(5),
        )],
        permanent: invalid_content(),
        idempotency_key: None,
        renders_text: true,
        forbidden: &["<script", "<b>", "<img", "<at>"],
    })
    .await;
}

fn body_of(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

fn texts(body: &Value) -> Vec<String> {
    body["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str().map(str::to_string))
        .collect()
}

async fn sent(content: Content) -> (Outcome, Value) {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(ok()).mount(&server).await;
    let sink = conformance::sink(&config(&server.uri()));
    let outcome = sink.send(&post(content, "d-1")).await;
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    (outcome, body)
}

#[tokio::test]
async fn says_what_it_can_do() {
    let sink = conformance::sink(&config("http://127.0.0.1:9"));
    assert_eq!(sink.kind(), "teams");
    assert_eq!(
        sink.capabilities(),
        Capabilities {
            threads: false,
            edits: false,
        }
    );
}

#[tokio::test]
async fn posts_the_adaptive_card_envelope_with_the_mention_entity() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLOW_PATH))
        .and(query_param("sig", "s3cret"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "actions": [{
                        "type": "Action.OpenUrl",
                        "title": "Open T-7",
                        "url": "http://tocsin.test/tickets/T-7",
                    }],
                    "msteams": {
                        "width": "Full",
                        "entities": [{
                            "type": "mention",
                            "text": "<at>alice</at>",
                            "mentioned": {"id": "HANDLE-ALICE", "name": "alice"},
                        }],
                    },
                },
            }],
        })))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    let outcome = sink
        .send(&post(message(Change::Opened, TicketState::Open), "d-1"))
        .await;
    assert_eq!(outcome, Outcome::sent(None));

    let body = body_of(&server.received_requests().await.unwrap()[0]);
    let texts = texts(&body);
    assert_eq!(texts[0], "[FIRING] T-7 Disk full on db1");
    assert!(
        texts.iter().any(|t| t.contains("<at>alice</at>")),
        "the tag its entity names must be in a TextBlock: {texts:?}"
    );
    let entities = &body["attachments"][0]["content"]["msteams"]["entities"];
    assert_eq!(entities.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn header_is_colored_by_severity_and_state() {
    let (_, body) = sent(message(Change::Opened, TicketState::Open)).await;
    assert_eq!(
        body["attachments"][0]["content"]["body"][0]["color"],
        "attention"
    );
    let (_, body) = sent(message(
        Change::Resolved { by: "bob".into() },
        TicketState::Resolved,
    ))
    .await;
    assert_eq!(
        body["attachments"][0]["content"]["body"][0]["color"],
        "good"
    );
    assert!(texts(&body).contains(&"Resolved by bob".to_string()));
}

#[tokio::test]
async fn here_and_all_are_words_not_pings() {
    let Content::Ticket(mut t) = message(Change::Opened, TicketState::Open) else {
        unreachable!("message() builds a ticket")
    };
    t.mentions = vec![
        Mention::Here,
        Mention::All,
        Mention::Member {
            name: "bob".into(),
            handle: None,
        },
    ];
    let (_, body) = sent(Content::Ticket(t)).await;
    let raw = body.to_string();
    assert!(!raw.contains('@'), "{raw}");
    assert!(!raw.contains("<at>"), "no handle, no tag: {raw}");
    let line = texts(&body).last().unwrap().clone();
    assert!(line.contains("everyone") && line.contains("bob"), "{line}");
}

#[tokio::test]
async fn a_thread_or_edit_request_is_posted_as_a_new_card() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLOW_PATH))
        .respond_with(ok())
        .expect(2)
        .mount(&server)
        .await;
    let sink = conformance::sink(&config(&server.uri()));
    for action in [
        Action::Post {
            thread: Some("x".into()),
        },
        Action::Edit { handle: "x".into() },
    ] {
        let request = Request {
            action,
            content: message(Change::Refired, TicketState::Open),
            idempotency_key: "d-1".into(),
        };
        assert_eq!(sink.send(&request).await, Outcome::sent(None));
    }
}

#[tokio::test]
async fn documented_client_errors_are_permanent() {
    let not_found = ResponseTemplate::new(404).set_body_json(json!({
        "error": {"code": "WorkflowNotFound", "message": "The workflow 'abc' could not be found."}
    }));
    let unauthorized = ResponseTemplate::new(401).set_body_json(json!({
        "error": {"code": "DirectApiAuthorizationRequired", "message": "The request must be authenticated."}
    }));
    let forbidden = ResponseTemplate::new(403);
    for answer in [invalid_content(), not_found, unauthorized, forbidden] {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(answer).mount(&server).await;
        let sink = conformance::sink(&config(&server.uri()));
        match sink
            .send(&post(message(Change::Opened, TicketState::Open), "d-1"))
            .await
        {
            Outcome::Permanent { error } => {
                assert!(!error.contains("s3cret"), "the signature leaked: {error}")
            }
            other => panic!("gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn hostile_text_cannot_link_or_tag() {
    let (_, body) = sent(hostile_message()).await;
    let raw = body.to_string();
    assert!(!raw.contains("[click](https"), "{raw}");
    assert!(
        body["attachments"][0]["content"]["msteams"]["entities"]
            .as_array()
            .unwrap()
            .is_empty(),
        "alert text must not create mention entities"
    );
}

#[tokio::test]
async fn a_digest_lists_counts_top_items_and_the_rest() {
    let digest = Digest {
        room: "ops".into(),
        changes: 40,
        firing: 12,
        acked: 3,
        resolved: 25,
        by_severity: vec![(Severity::Critical, 10), (Severity::Warning, 2)],
        top: vec![
            DigestItem {
                number: 3,
                title: "Disk full on db3".into(),
                state: TicketState::Open,
                severity: Severity::Critical,
                link: "http://tocsin.test/tickets/T-3".into(),
            },
            DigestItem {
                number: 4,
                title: "<b>Load</b> high".into(),
                state: TicketState::Acked,
                severity: Severity::Warning,
                link: "http://tocsin.test/tickets/T-4".into(),
            },
        ],
        more: 38,
        link: "http://tocsin.test/tickets".into(),
        mentions: vec![],
        at: Timestamp::from_millis(1_700_000_000_000),
    };
    let (outcome, body) = sent(Content::Digest(digest)).await;
    assert_eq!(outcome, Outcome::sent(None));
    let texts = texts(&body);
    assert!(texts[0].contains("40 changes"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("**12** firing")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("[T-3](http://tocsin.test/tickets/T-3) FIRING critical")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t == "+38 more"), "{texts:?}");
    assert!(!body.to_string().contains("<b>"));
    assert_eq!(
        body["attachments"][0]["content"]["actions"][0]["url"],
        "http://tocsin.test/tickets"
    );
}
