//! The Microsoft Teams sink: an Adaptive Card posted to a Power Automate Workflows webhook (the old
//! Office 365 connectors are retired).
//!
//! The Workflows trigger answers `202 Accepted` with no message id, so there is nothing to thread under
//! or edit: the sink says so in its capabilities and every send is a new message.

pub mod render;

use std::time::Duration;

use async_trait::async_trait;

use super::http::{classify, execute, Client};
use super::{Capabilities, Outcome, Request, Sink};
use crate::config::{SinkConfig, TeamsSinkConfig};

#[derive(Debug)]
pub struct TeamsSink {
    client: reqwest::Client,
    /// Carries the flow's `sig=` signature: a secret, so it never appears in errors or logs.
    url: reqwest::Url,
    timeout: Duration,
}

impl TeamsSink {
    pub fn new(config: &TeamsSinkConfig, client: &Client) -> Result<Self, String> {
        let timeout = SinkConfig::Teams(config.clone()).timeout();
        // The error must not echo the URL: it is the secret.
        let url = reqwest::Url::parse(config.webhook_url.expose())
            .map_err(|e| format!("teams webhook_url is not a valid URL: {e}"))?;
        Ok(TeamsSink {
            client: client.reqwest().clone(),
            url,
            timeout,
        })
    }
}

#[async_trait]
impl Sink for TeamsSink {
    fn kind(&self) -> &'static str {
        "teams"
    }

    fn capabilities(&self) -> Capabilities {
        // 202 with no id: no handle to thread under or to edit.
        Capabilities {
            threads: false,
            edits: false,
        }
    }

    async fn send(&self, request: &Request) -> Outcome {
        // Every action is a new post. Threads: the webhook has none. Edits: routing never plans one for
        // a sink without edits, but a room whose sink changed kind on reload can still have one queued;
        // posting the new content keeps the news flowing, where refusing it would drop an update.
        let body = render::message(&request.content);
        let builder = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = match execute(builder, self.timeout).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        // 429 carries Retry-After in seconds; a 400 `InvalidRequestContent` (a card the flow rejects)
        // and 401/403/404 (a deleted or disabled flow) can only fail again, so they are permanent.
        classify(&answer).unwrap_or(Outcome::sent(None))
    }
}
