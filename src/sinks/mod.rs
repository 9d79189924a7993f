//! Sinks: one folder per chat platform, each turning a [`Content`] into that platform's message and
//! sending it. Only `sinks/` names reqwest.
//!
//! Every sink implements [`Sink`] and passes the same conformance suite (`tests/sink_conformance.rs`):
//! success, 429 with each retry header, 5xx, timeout, permanent 4xx, and idempotency where the platform
//! offers it. A sink never retries by itself and never sleeps: it classifies the answer as an
//! [`Outcome`] and the outbox (`outbox/`) decides when to try again, which keeps the retry rules in one
//! pure place (`domain::delivery`).

pub mod discord;
pub mod email;
pub mod http;
pub mod matrix;
pub mod mattermost;
pub mod slack;
pub mod teams;
pub mod text;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{MemberConfig, SinkConfig};
pub use crate::domain::message::Capabilities;
use crate::domain::message::Content;
use crate::domain::presence::PresenceState;

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A new message; in the thread under `thread` when given (a handle from an earlier [`Outcome::Sent`]).
    Post { thread: Option<String> },
    /// Replace the content of an earlier message.
    Edit { handle: String },
}

/// One send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub action: Action,
    pub content: Content,
    /// Stable across retries of the same delivery: platforms with idempotent sends (Matrix transaction
    /// ids) use it so a retry after a timeout never posts twice.
    pub idempotency_key: String,
}

/// How a send went. Classification rules: 2xx (and the platform's own "ok") is `Sent`; 429, 5xx,
/// timeouts and connection errors are `Retry`; other 4xx are `Permanent`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        /// The platform's id for the message (Slack `channel:ts`, Matrix event id, ...), kept so later
        /// changes can thread under it or edit it. `None` when the platform does not return one.
        handle: Option<String>,
        /// The platform says its budget is spent (Discord `X-RateLimit-Remaining: 0`): wait this long
        /// before the next send to this destination.
        pause: Option<Duration>,
    },
    Retry {
        error: String,
        /// From `Retry-After` or the platform's own field: the destination is on cooldown this long.
        after: Option<Duration>,
    },
    Permanent {
        error: String,
    },
}

impl Outcome {
    pub fn sent(handle: Option<String>) -> Outcome {
        Outcome::Sent {
            handle,
            pause: None,
        }
    }
}

/// A chat platform.
#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug + 'static {
    /// `slack`, `matrix`, ...
    fn kind(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    async fn send(&self, request: &Request) -> Outcome;

    /// Where the platform tells: the presence of the user with this handle. `None` for platforms with
    /// no presence API for this kind of access (webhooks, Discord, Teams without Graph).
    async fn presence(&self, _handle: &str) -> Option<Result<PresenceState, String>> {
        None
    }
}

/// The handle a member has on a platform (`members.<name>.handles.<kind>`).
pub fn handle_for(member: &MemberConfig, kind: &str) -> Option<String> {
    member.handles.get(kind).map(|h| h.0.clone())
}

/// Builds the sink a room's config names. `timeout` bounds each request.
pub fn build(config: &SinkConfig, client: &http::Client) -> Result<Arc<dyn Sink>, String> {
    Ok(match config {
        SinkConfig::Webhook(c) => Arc::new(webhook::WebhookSink::new(c, client)?),
        SinkConfig::Slack(c) => Arc::new(slack::SlackSink::new(c, client)?),
        SinkConfig::Mattermost(c) => Arc::new(mattermost::MattermostSink::new(c, client)?),
        SinkConfig::Teams(c) => Arc::new(teams::TeamsSink::new(c, client)?),
        SinkConfig::Discord(c) => Arc::new(discord::DiscordSink::new(c, client)?),
        SinkConfig::Matrix(c) => Arc::new(matrix::MatrixSink::new(c, client)?),
    })
}
