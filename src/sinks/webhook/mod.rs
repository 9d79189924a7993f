//! The plain webhook sink: tocsin's own JSON body (documented in the README, "Webhook sink"), for
//! receivers that are programs rather than people. Data passes through unescaped: it is JSON for a
//! machine, not text for a chat client.

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::http::{classify, execute, Client};
use super::{Action, Capabilities, Outcome, Request, Sink};
use crate::config::{SinkConfig, WebhookSinkConfig};
use crate::domain::message::{Change, Content, Mention};

/// Header with `sha256=<hex of HMAC-SHA256(secret, body)>`, when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Tocsin-Signature";
/// Header with the delivery's idempotency key: the same on every retry of one delivery.
pub const DELIVERY_HEADER: &str = "X-Tocsin-Delivery";

#[derive(Debug)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
    secret: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl WebhookSink {
    pub fn new(config: &WebhookSinkConfig, client: &Client) -> Result<Self, String> {
        let timeout = SinkConfig::Webhook(config.clone()).timeout();
        Ok(WebhookSink {
            client: client.reqwest().clone(),
            url: config.url.0.clone(),
            secret: config
                .secret
                .as_ref()
                .map(|s| s.expose().as_bytes().to_vec()),
            headers: config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            timeout,
        })
    }
}

/// The body for one delivery. Version 1; fields are only ever added.
pub fn body(request: &Request) -> Value {
    let mentions: Vec<Value> = request
        .content
        .mentions()
        .iter()
        .map(|m| match m {
            Mention::Member { name, handle } => json!({"member": name, "handle": handle}),
            Mention::Here => json!("here"),
            Mention::All => json!("all"),
        })
        .collect();
    let replaces = match &request.action {
        Action::Edit { handle } => Some(handle.clone()),
        Action::Post { .. } => None,
    };
    match &request.content {
        Content::Ticket(t) => {
            let (actor, note) = match &t.change {
                Change::Acked { by } | Change::Resolved { by } => (Some(by.clone()), None),
                Change::Note { author, text } => (Some(author.clone()), Some(text.clone())),
                _ => (None, None),
            };
            json!({
                "version": 1,
                "type": "ticket",
                "event": t.change.as_str(),
                "delivery": request.idempotency_key,
                "at": t.at.to_rfc3339(),
                "ticket": {
                    "id": t.ticket_id,
                    "number": t.number,
                    "ref": t.reference(),
                    "title": t.title,
                    "state": t.state.as_str(),
                    "severity": t.severity.as_str(),
                    "source": t.source,
                    "labels": t.labels,
                    "summary": t.summary,
                    "link": t.link,
                },
                "actor": actor,
                "note": note,
                "mentions": mentions,
                "replaces": replaces,
            })
        }
        Content::Digest(d) => json!({
            "version": 1,
            "type": "digest",
            "event": "digest",
            "delivery": request.idempotency_key,
            "at": d.at.to_rfc3339(),
            "digest": {
                "room": d.room,
                "changes": d.changes,
                "firing": d.firing,
                "acked": d.acked,
                "resolved": d.resolved,
                "by_severity": d.by_severity.iter().map(|(s, n)| json!({"severity": s.as_str(), "count": n})).collect::<Vec<_>>(),
                "top": d.top.iter().map(|i| json!({
                    "number": i.number, "ref": format!("T-{}", i.number), "title": i.title,
                    "state": i.state.as_str(), "severity": i.severity.as_str(), "link": i.link,
                })).collect::<Vec<_>>(),
                "more": d.more,
                "link": d.link,
            },
            "mentions": mentions,
            "replaces": replaces,
        }),
    }
}

/// `sha256=<hex>` over the exact body bytes.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Sink for WebhookSink {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: false,
            edits: false,
        }
    }

    async fn send(&self, request: &Request) -> Outcome {
        let bytes = serde_json::to_vec(&body(request)).unwrap_or_default();
        let mut builder = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &request.idempotency_key);
        if let Some(secret) = &self.secret {
            builder = builder.header(SIGNATURE_HEADER, signature(secret, &bytes));
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let answer = match execute(builder.body(bytes), self.timeout).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        classify(&answer).unwrap_or(Outcome::sent(None))
    }
}
