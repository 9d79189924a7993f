//! The plain webhook sink against wiremock: the shared conformance suite (it offers idempotency through
//! `X-Tocsin-Delivery`), then its documented body, signature and extra headers.

mod common;

use std::time::Duration;

use common::conformance::{self, message, post, sink, Platform};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use tocsin::domain::message::Change;
use tocsin::domain::ticket::TicketState;
use tocsin::sinks::Outcome;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(base: &str) -> String {
    format!("kind: webhook\nurl: \"{base}/hook\"\ntimeout: 500ms\n")
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(204)
}

fn delivery_key(r: &wiremock::Request) -> String {
    r.headers
        .get("x-tocsin-delivery")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn conformance() {
    conformance::run(Platform {
        config,
        ok,
        handle: None,
        rate_limited: vec![
            (
                ResponseTemplate::new(429).insert_header("Retry-After", "30"),
                Duration::from_secs(30),
            ),
            (
                ResponseTemplate::new(503).insert_header("Retry-After", "2.5"),
                Duration::from_millis(2500),
            ),
        ],
        permanent: ResponseTemplate::new(410).set_body_string("gone"),
        idempotency_key: Some(delivery_key),
        // A program receives this body: data passes through unescaped (the README says so).
        renders_text: false,
        forbidden: &[],
    })
    .await;
}

#[tokio::test]
async fn the_body_is_the_documented_one_signed_with_extra_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header("authorization", "Bearer receiver-token"))
        .and(header("content-type", "application/json"))
        .respond_with(ok())
        .mount(&server)
        .await;
    let s = sink(&format!(
        "kind: webhook\nurl: \"{}/hook\"\nsecret: hook-secret\nheaders: {{Authorization: Bearer receiver-token}}\n",
        server.uri()
    ));
    let outcome = s
        .send(&post(
            message(
                Change::Resolved {
                    by: "member:bob".into(),
                },
                TicketState::Resolved,
            ),
            "delivery-9",
        ))
        .await;
    assert_eq!(outcome, Outcome::sent(None));
    let req = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(body["type"], "ticket");
    assert_eq!(body["event"], "resolved");
    assert_eq!(body["actor"], "member:bob");
    assert_eq!(body["delivery"], "delivery-9");
    assert_eq!(body["ticket"]["ref"], "T-7");
    assert_eq!(body["ticket"]["state"], "resolved");
    assert_eq!(body["ticket"]["severity"], "critical");
    assert_eq!(body["ticket"]["labels"], json!({"alertname": "DiskFull"}));
    assert_eq!(body["ticket"]["link"], "http://tocsin.test/tickets/T-7");
    assert_eq!(
        body["mentions"],
        json!([{"member": "alice", "handle": "HANDLE-ALICE"}])
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(&req.body);
    assert_eq!(
        req.headers["x-tocsin-signature"].to_str().unwrap(),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
}
