//! The Matrix sink: the client-server API as a bot user, one `m.room.message` event per delivery.
//!
//! Sends are `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with the delivery's
//! idempotency key as the transaction id, so a retry after a timeout returns the event the first try
//! made instead of posting twice (Synapse keeps transaction ids per access token). The event id is the
//! handle: threads are `m.thread` relations to it, edits `m.replace` relations.
//!
//! Every event carries `m.mentions` (empty when nobody is pinged), which tells clients that only the
//! listed users (or `room`) are mentioned, so a name or `@room` in an alert's text pings nobody.

mod render;
pub mod sync;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::http::{classify, execute, seconds, Client};
use super::{Action, Capabilities, Outcome, Request, Sink};
use crate::config::{MatrixSinkConfig, Secret, SinkConfig};
use crate::domain::presence::PresenceState;

pub use render::{render, Rendered};

const FORMAT: &str = "org.matrix.custom.html";

#[derive(Debug)]
pub struct MatrixSink {
    client: reqwest::Client,
    /// The homeserver's base URL; API paths are appended to it.
    homeserver: Url,
    access_token: Secret,
    room_id: String,
    timeout: Duration,
}

/// The configured homeserver as a base URL (http or https), or what is wrong with it.
pub(crate) fn homeserver_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let homeserver =
        Url::parse(raw).map_err(|e| format!("homeserver `{raw}` is not a URL: {e}"))?;
    if !matches!(homeserver.scheme(), "http" | "https") || homeserver.cannot_be_a_base() {
        return Err(format!(
            "homeserver `{raw}` must be an http(s) URL like https://matrix.example.org"
        ));
    }
    Ok(homeserver)
}

impl MatrixSink {
    pub fn new(config: &MatrixSinkConfig, client: &Client) -> Result<Self, String> {
        let timeout = SinkConfig::Matrix(config.clone()).timeout();
        let homeserver = homeserver_url(&config.homeserver.0)?;
        let room_id = config.room_id.0.trim().to_string();
        // An alias (`#ops:example.org`) cannot be sent to; it has to be resolved to the room's ID first.
        if !room_id.starts_with('!') {
            return Err(format!(
                "room_id `{room_id}` must be a room ID like !abc123:example.org (aliases like #ops:example.org do not work here)"
            ));
        }
        if config.access_token.expose().trim().is_empty() {
            return Err("access_token is empty".into());
        }
        Ok(MatrixSink {
            client: client.reqwest().clone(),
            homeserver,
            access_token: config.access_token.clone(),
            room_id,
            timeout,
        })
    }

    /// `{homeserver}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`, each segment
    /// percent-encoded (room IDs hold `!` and `:`, and idempotency keys may hold anything).
    fn send_url(&self, txn_id: &str) -> Url {
        let mut url = self.homeserver.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "_matrix",
                "client",
                "v3",
                "rooms",
                &self.room_id,
                "send",
                "m.room.message",
                txn_id,
            ]);
        }
        url
    }
}

/// The event content for a request.
pub fn event(request: &Request) -> Value {
    let r = render(&request.content);
    let msgtype = msgtype(&r);
    let content = json!({
        "msgtype": msgtype,
        "body": r.body,
        "format": FORMAT,
        "formatted_body": r.html,
        "m.mentions": r.mentions,
    });
    match &request.action {
        Action::Post { thread: None } => content,
        Action::Post { thread: Some(root) } => {
            let mut content = content;
            // `is_falling_back` with `m.in_reply_to` makes clients without thread support show a reply
            // to the root instead of a loose message.
            content["m.relates_to"] = json!({
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": true,
                "m.in_reply_to": {"event_id": root},
            });
            content
        }
        // Clients that understand edits show `m.new_content`; the `* ` fallback is for those that do not.
        Action::Edit { handle } => json!({
            "msgtype": msgtype,
            "body": format!("* {}", r.body),
            "format": FORMAT,
            "formatted_body": format!("* {}", r.html),
            "m.new_content": content,
            "m.mentions": r.mentions,
            "m.relates_to": {"rel_type": "m.replace", "event_id": handle},
        }),
    }
}

/// `m.notice` is the bot convention, and clients' default push rules never notify for it (Synapse's
/// `.m.rule.suppress_notices` override runs before the mention rules). A message that routing decided
/// should ping someone is therefore sent as `m.text`; everything else stays a quiet notice.
fn msgtype(r: &Rendered) -> &'static str {
    if r.pings() {
        "m.text"
    } else {
        "m.notice"
    }
}

/// The wait a 429 asks for: Matrix's `retry_after_ms` (in the body) first, else `Retry-After`.
fn rate_limit_wait(body: &Value) -> Option<Duration> {
    let ms = body.get("retry_after_ms")?.as_f64()?;
    seconds(ms / 1000.0)
}

/// `M_FORBIDDEN: You are not in this room` from a Matrix error body, if it is one.
fn matrix_error(body: &Value) -> Option<String> {
    let code = body.get("errcode")?.as_str()?;
    let text = body.get("error").and_then(Value::as_str).unwrap_or("");
    Some(format!("{code}: {}", super::http::snippet(text)))
}

#[async_trait]
impl Sink for MatrixSink {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: true,
            edits: true,
        }
    }

    /// `GET /_matrix/client/v3/presence/{user}/status`: `online`, `unavailable` (idle; away) or
    /// `offline`. Synapse shows it only to users who share a room with them, like the bot.
    async fn presence(&self, handle: &str) -> Option<Result<PresenceState, String>> {
        let mut url = self.homeserver.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["_matrix", "client", "v3", "presence", handle, "status"]);
        }
        let builder = self.client.get(url).bearer_auth(self.access_token.expose());
        let answer = match execute(builder, self.timeout).await {
            Ok(a) => a,
            Err(Outcome::Retry { error, .. }) | Err(Outcome::Permanent { error }) => {
                return Some(Err(error))
            }
            Err(Outcome::Sent { .. }) => return Some(Err("no answer".into())),
        };
        if let Some(Outcome::Retry { error, .. } | Outcome::Permanent { error }) = classify(&answer)
        {
            return Some(Err(error));
        }
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        Some(match body["presence"].as_str() {
            Some("online") => Ok(PresenceState::Online),
            Some("unavailable") => Ok(PresenceState::Away),
            Some("offline") => Ok(PresenceState::Offline),
            other => Err(format!("unexpected presence {other:?}")),
        })
    }

    async fn send(&self, request: &Request) -> Outcome {
        let builder = self
            .client
            .put(self.send_url(&request.idempotency_key))
            .bearer_auth(self.access_token.expose())
            .json(&event(request));
        let answer = match execute(builder, self.timeout).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        match classify(&answer) {
            // The message went out; without an event id (a proxy's odd answer) it cannot be edited or
            // threaded under, but sending it again would not fix that.
            None => Outcome::sent(
                body.get("event_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            Some(Outcome::Retry { error, after }) => {
                let after = if answer.status == StatusCode::TOO_MANY_REQUESTS {
                    rate_limit_wait(&body).or(after)
                } else {
                    after
                };
                let error = match matrix_error(&body) {
                    Some(e) => format!("HTTP {} {e}", answer.status.as_u16()),
                    None => error,
                };
                Outcome::Retry { error, after }
            }
            Some(Outcome::Permanent { error }) => Outcome::Permanent {
                error: match matrix_error(&body) {
                    Some(e) => format!("HTTP {} {e}", answer.status.as_u16()),
                    None => error,
                },
            },
            Some(sent @ Outcome::Sent { .. }) => sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn sink(homeserver: &str, room: &str) -> Result<MatrixSink, String> {
        let config = MatrixSinkConfig {
            homeserver: Env(homeserver.into()),
            access_token: Secret::new("tok"),
            room_id: Env(room.into()),
            timeout: None,
        };
        MatrixSink::new(&config, &Client::new())
    }

    #[test]
    fn paths_are_encoded() {
        let s = sink("https://hs.example/base/", "!abc:hs.example").unwrap();
        assert_eq!(
            s.send_url("d/1 ?#%").as_str(),
            "https://hs.example/base/_matrix/client/v3/rooms/!abc:hs.example/send/m.room.message/d%2F1%20%3F%23%25"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(sink("ftp://hs.example", "!a:b").is_err());
        assert!(sink("not a url", "!a:b").is_err());
        assert!(sink("https://hs.example", "#ops:hs.example").is_err());
    }

    #[test]
    fn rate_limit_body_wins() {
        assert_eq!(
            rate_limit_wait(&json!({"retry_after_ms": 2000})),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            rate_limit_wait(&json!({"errcode": "M_LIMIT_EXCEEDED"})),
            None
        );
    }
}
