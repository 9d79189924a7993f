//! The Matrix bot's reading side: who the bot is (`whoami`), new messages in its rooms (`/sync` with a
//! filter), and plain threaded notices back (the answers to chat commands).
//!
//! Same homeserver, access token and connection pool as the room's [`MatrixSink`](super::MatrixSink):
//! the bot is the account that posts tocsin's messages. Only `chatops::matrix` uses it; it decides what
//! the messages mean, this module only speaks HTTP.

use std::time::Duration;

use reqwest::Url;
use serde_json::{json, Value};

use super::super::http::{classify, execute, seconds, Client};
use super::matrix_error;
use crate::config::{MatrixSinkConfig, Secret, SinkConfig};
use crate::sinks::Outcome;

/// One `m.room.message` from a `/sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    pub room_id: String,
    pub event_id: String,
    /// The sender's user ID (`@alice:example.org`).
    pub sender: String,
    /// The plain text, without a reply fallback (the `> <@user> quoted` lines some clients prepend).
    pub body: String,
    /// The thread's root event, for a message in a thread (`m.relates_to` with `rel_type: m.thread`).
    pub thread_root: Option<String>,
    /// The event replied to (`m.in_reply_to`), in a thread or not.
    pub in_reply_to: Option<String>,
}

/// What one `/sync` brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBatch {
    /// Where the next `/sync` starts (`since`).
    pub next_batch: String,
    /// New text messages in the filtered rooms, in timeline order. Edits, redactions, notices (other
    /// bots, tocsin itself) and media are left out.
    pub messages: Vec<RoomMessage>,
}

/// Why a call failed, with a wait the homeserver asked for (429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotError {
    pub error: String,
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for BotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

impl std::error::Error for BotError {}

impl BotError {
    fn new(error: impl Into<String>) -> BotError {
        BotError {
            error: error.into(),
            retry_after: None,
        }
    }
}

/// The bot's client-server API calls.
#[derive(Debug, Clone)]
pub struct MatrixBotClient {
    client: reqwest::Client,
    homeserver: Url,
    access_token: Secret,
    /// For calls that answer at once; a long poll gets its own wait on top.
    timeout: Duration,
}

/// How many messages one `/sync` brings per room at most. A busier room between two polls loses the
/// older ones (the timeline is `limited`), which for chat commands is better than replaying them.
const TIMELINE_LIMIT: u32 = 50;

impl MatrixBotClient {
    /// For the account of a Matrix room's sink (same checks as the sink).
    pub fn new(config: &MatrixSinkConfig, client: &Client) -> Result<MatrixBotClient, String> {
        let timeout = SinkConfig::Matrix(config.clone()).timeout();
        let homeserver = super::homeserver_url(&config.homeserver.0)?;
        if config.access_token.expose().trim().is_empty() {
            return Err("access_token is empty".into());
        }
        Ok(MatrixBotClient {
            client: client.reqwest().clone(),
            homeserver,
            access_token: config.access_token.clone(),
            timeout,
        })
    }

    /// `{homeserver}/_matrix/client/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.homeserver.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut s) = url.path_segments_mut() {
            s.pop_if_empty()
                .extend(["_matrix", "client"])
                .extend(segments);
        }
        url
    }

    /// Sends and reads a JSON answer; anything but 2xx is an error.
    async fn call(
        &self,
        builder: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, BotError> {
        let builder = builder.bearer_auth(self.access_token.expose());
        let answer = match execute(builder, timeout).await {
            Ok(a) => a,
            Err(Outcome::Retry { error, after }) => {
                return Err(BotError {
                    error,
                    retry_after: after,
                })
            }
            Err(Outcome::Permanent { error }) => return Err(BotError::new(error)),
            Err(Outcome::Sent { .. }) => return Err(BotError::new("no answer")),
        };
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let (error, after) = match classify(&answer) {
            None | Some(Outcome::Sent { .. }) => return Ok(body),
            Some(Outcome::Retry { error, after }) => (error, after),
            Some(Outcome::Permanent { error }) => (error, None),
        };
        // Matrix says how long to wait in the body (`retry_after_ms`), and that wins over the header.
        let after = body
            .get("retry_after_ms")
            .and_then(Value::as_f64)
            .and_then(|ms| seconds(ms / 1000.0))
            .or(after);
        let error = match matrix_error(&body) {
            Some(e) => format!("HTTP {} {e}", answer.status.as_u16()),
            None => error,
        };
        Err(BotError {
            error,
            retry_after: after,
        })
    }

    /// `GET /_matrix/client/v3/account/whoami`: the bot's user ID.
    pub async fn whoami(&self) -> Result<String, BotError> {
        let url = self.url(&["v3", "account", "whoami"]);
        let body = self.call(self.client.get(url), self.timeout).await?;
        body.get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| BotError::new("whoami answered without a user_id"))
    }

    /// `GET /_matrix/client/v3/sync`: what happened in `room_ids` since `since` (everything recent when
    /// `None`), waiting up to `timeout_ms` for something new. Only `m.room.message` events are asked for.
    pub async fn sync(
        &self,
        since: Option<&str>,
        timeout_ms: u64,
        room_ids: &[String],
    ) -> Result<SyncBatch, BotError> {
        let mut url = self.url(&["v3", "sync"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filter", &filter(room_ids).to_string())
                .append_pair("timeout", &timeout_ms.to_string());
            if let Some(since) = since {
                q.append_pair("since", since);
            }
        }
        let wait = self.timeout + Duration::from_millis(timeout_ms);
        let body = self.call(self.client.get(url), wait).await?;
        parse_sync(&body).ok_or_else(|| BotError::new("sync answered without a next_batch"))
    }

    /// `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`: a plain `m.notice` (pinging
    /// nobody), in `thread_root`'s thread when given. Returns the event ID. The same `txn_id` sends once.
    pub async fn send_text(
        &self,
        room_id: &str,
        text: &str,
        thread_root: Option<&str>,
        txn_id: &str,
    ) -> Result<String, BotError> {
        self.send(room_id, &notice(text, thread_root), txn_id).await
    }

    /// Like [`MatrixBotClient::send_text`], as a reply (`m.in_reply_to`) to `event_id` in the room's
    /// main timeline.
    pub async fn send_reply(
        &self,
        room_id: &str,
        text: &str,
        event_id: &str,
        txn_id: &str,
    ) -> Result<String, BotError> {
        let mut content = notice(text, None);
        content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": event_id}});
        self.send(room_id, &content, txn_id).await
    }

    async fn send(&self, room_id: &str, content: &Value, txn_id: &str) -> Result<String, BotError> {
        let url = self.url(&["v3", "rooms", room_id, "send", "m.room.message", txn_id]);
        let body = self
            .call(self.client.put(url).json(content), self.timeout)
            .await?;
        Ok(body
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }
}

/// The sync filter: only the given rooms, only their `m.room.message` timeline events; no presence,
/// account data, receipts, typing or state beyond what the server insists on.
fn filter(room_ids: &[String]) -> Value {
    json!({
        "account_data": {"types": []},
        "presence": {"types": []},
        "room": {
            "rooms": room_ids,
            "timeline": {"types": ["m.room.message"], "limit": TIMELINE_LIMIT},
            "state": {"types": [], "lazy_load_members": true},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
        },
    })
}

/// A bot answer: `m.notice` (clients do not notify for it) with an empty `m.mentions`, so a user ID in
/// the text pings nobody. Threaded like tocsin's own follow-ups (see `event` in the sink).
pub fn notice(text: &str, thread_root: Option<&str>) -> Value {
    let mut content = json!({
        "msgtype": "m.notice",
        "body": text,
        "m.mentions": {},
    });
    if let Some(root) = thread_root {
        content["m.relates_to"] = json!({
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": true,
            "m.in_reply_to": {"event_id": root},
        });
    }
    content
}

/// The text messages of joined rooms in a `/sync` answer.
pub fn parse_sync(body: &Value) -> Option<SyncBatch> {
    let next_batch = body.get("next_batch")?.as_str()?.to_string();
    let mut messages = Vec::new();
    if let Some(rooms) = body.pointer("/rooms/join").and_then(Value::as_object) {
        for (room_id, room) in rooms {
            let events = room
                .pointer("/timeline/events")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            messages.extend(events.iter().filter_map(|e| message(room_id, e)));
        }
    }
    Some(SyncBatch {
        next_batch,
        messages,
    })
}

/// One event as a [`RoomMessage`], if it is a person's new text message.
fn message(room_id: &str, event: &Value) -> Option<RoomMessage> {
    if event.get("type")?.as_str()? != "m.room.message" {
        return None;
    }
    let content = event.get("content")?;
    // Notices are what bots send (tocsin's own messages among them); media bodies are file names.
    if content.get("msgtype")?.as_str()? != "m.text" {
        return None;
    }
    let relates = content.get("m.relates_to");
    let rel_type = relates
        .and_then(|r| r.get("rel_type"))
        .and_then(Value::as_str);
    // An edit is the same message again.
    if rel_type == Some("m.replace") {
        return None;
    }
    let thread_root = match rel_type {
        Some("m.thread") => relates
            .and_then(|r| r.get("event_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let in_reply_to = relates
        .and_then(|r| r.pointer("/m.in_reply_to/event_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let body = content.get("body")?.as_str()?;
    let body = if in_reply_to.is_some() {
        strip_reply_fallback(body)
    } else {
        body
    };
    Some(RoomMessage {
        room_id: room_id.to_string(),
        event_id: event.get("event_id")?.as_str()?.to_string(),
        sender: event.get("sender")?.as_str()?.to_string(),
        body: body.trim().to_string(),
        thread_root,
        in_reply_to,
    })
}

/// Drops the quoted lines (`> <@bob:hs> what they said`) and the blank line older clients put before a
/// reply's text.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    let mut rest = body;
    while rest.starts_with('>') {
        rest = match rest.split_once('\n') {
            Some((_, after)) => after,
            None => "",
        };
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn event(id: &str, sender: &str, content: Value) -> Value {
        json!({"type": "m.room.message", "event_id": id, "sender": sender, "content": content})
    }

    #[test]
    fn sync_answers_become_text_messages() {
        let body = json!({
            "next_batch": "s2",
            "rooms": {"join": {"!r:hs": {"timeline": {"events": [
                event("$1", "@alice:hs", json!({"msgtype": "m.text", "body": "ack T-1"})),
                event("$2", "@alice:hs", json!({"msgtype": "m.text", "body": "disk replaced",
                    "m.relates_to": {"rel_type": "m.thread", "event_id": "$root",
                                     "is_falling_back": true, "m.in_reply_to": {"event_id": "$root"}}})),
                event("$3", "@tocsin:hs", json!({"msgtype": "m.notice", "body": "[ACKED] T-1"})),
                event("$4", "@alice:hs", json!({"msgtype": "m.text", "body": "* ack T-2",
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$1"}})),
                event("$5", "@bob:hs", json!({"msgtype": "m.text",
                    "body": "> <@tocsin:hs> [FIRING] T-1\n> more\n\nlooking",
                    "m.relates_to": {"m.in_reply_to": {"event_id": "$root"}}})),
                json!({"type": "m.room.message", "event_id": "$6", "sender": "@x:hs", "content": {}}),
            ]}}}}
        });
        let batch = parse_sync(&body).unwrap();
        assert_eq!(batch.next_batch, "s2");
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = batch
            .messages
            .iter()
            .map(|m| {
                (
                    m.event_id.as_str(),
                    m.body.as_str(),
                    m.thread_root.as_deref(),
                    m.in_reply_to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("$1", "ack T-1", None, None),
                ("$2", "disk replaced", Some("$root"), Some("$root")),
                ("$5", "looking", None, Some("$root")),
            ]
        );
        assert!(batch.messages.iter().all(|m| m.room_id == "!r:hs"));
        assert_eq!(parse_sync(&json!({"rooms": {}})), None);
        assert_eq!(
            parse_sync(&json!({"next_batch": "s1"})).unwrap().messages,
            vec![]
        );
    }

    #[test]
    fn answers_are_quiet_threaded_notices() {
        let c = notice("T-1 acknowledged by @alice:hs", Some("$root"));
        assert_eq!(c["msgtype"], "m.notice");
        assert_eq!(c["m.mentions"], json!({}));
        assert_eq!(c["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(c["m.relates_to"]["m.in_reply_to"]["event_id"], "$root");
        assert_eq!(c.get("formatted_body"), None);
        assert_eq!(notice("hi", None).get("m.relates_to"), None);
    }

    #[test]
    fn the_filter_names_the_rooms_and_urls_are_encoded() {
        let f = filter(&["!a:hs".to_string()]);
        assert_eq!(f["room"]["rooms"], json!(["!a:hs"]));
        assert_eq!(f["room"]["timeline"]["types"], json!(["m.room.message"]));
        let c = MatrixBotClient::new(
            &MatrixSinkConfig {
                homeserver: Env("https://hs.example/base/".into()),
                access_token: Secret::new("tok"),
                room_id: Env("!a:hs".into()),
                timeout: None,
            },
            &Client::new(),
        )
        .unwrap();
        assert_eq!(
            c.url(&["v3", "rooms", "!a:hs", "send", "m.room.message", "a/b"])
                .as_str(),
            "https://hs.example/base/_matrix/client/v3/rooms/!a:hs/send/m.room.message/a%2Fb"
        );
    }
}
