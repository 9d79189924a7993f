//! A room's receiving end for tests: a real HTTP server (wiremock) on 127.0.0.1 that takes tocsin's
//! webhook sink posts, and readers for what it got.

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A receiver answering every POST with 200.
pub async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// Every body the server received, in order, as JSON.
pub async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// `T-1 opened`, `T-1 resolved`, ... for ticket messages, `digest` for digests.
pub fn events(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| match b["type"].as_str() {
            Some("ticket") => format!(
                "{} {}",
                b["ticket"]["ref"].as_str().unwrap(),
                b["event"].as_str().unwrap()
            ),
            _ => "digest".to_string(),
        })
        .collect()
}

/// What the server received, as [`events`].
pub async fn received(server: &MockServer) -> Vec<String> {
    events(&bodies(server).await)
}
