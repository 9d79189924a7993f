//! The Slack sink, in one of two modes chosen by the room's config.
//!
//! - **Incoming webhook** (`webhook_url`): `POST {text, blocks}`, answered with a plain `ok`. Slack gives
//!   no message id back, so this mode can neither thread nor edit.
//! - **Web API** (`token` + `channel`): `chat.postMessage` and `chat.update` under `api_url`. The answer
//!   carries the channel ID and the message `ts`; the handle is `"<channel>:<ts>"` because replies
//!   (`thread_ts`) and `chat.update` both need the ts *and* the channel ID it lives in.
//!
//! Slack's Web API reports most failures as HTTP 200 with `{"ok": false, "error": "..."}`, so the body
//! is read even on success statuses; see [`api_outcome`].
//!
//! **Presence** (Web API mode only; a webhook cannot ask): `GET users.getPresence?user=<handle>`, where
//! the handle is the member's user ID (`U024BE7LH`) and the token needs the `users:read` scope. Slack
//! answers `active` (online) or `away` (including its automatic away after 10 minutes idle); see
//! [`presence_answer`]. It is a Tier 3 method (about 50 calls a minute per workspace), one call per user.

pub mod render;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::http::{classify, execute, retry_after, snippet, Answer, Client};
use super::{Action, Capabilities, Outcome, Request, Sink};
use crate::config::{Secret, SinkConfig, SlackSinkConfig};
use crate::domain::message::{Change, Content};
use crate::domain::presence::PresenceState;

/// `ok: false` errors that describe Slack's side having a bad moment rather than a bad request:
/// trying again later can succeed, so they are retried like a 5xx.
const TRANSIENT_ERRORS: [&str; 5] = [
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

#[derive(Debug)]
enum Mode {
    Webhook {
        url: Secret,
    },
    Api {
        token: Secret,
        channel: String,
        api_url: String,
    },
}

/// `Debug` shows the mode but never the token or the webhook URL (which is itself a credential):
/// both are [`Secret`]s.
#[derive(Debug)]
pub struct SlackSink {
    client: reqwest::Client,
    mode: Mode,
    timeout: Duration,
}

impl SlackSink {
    pub fn new(config: &SlackSinkConfig, client: &Client) -> Result<Self, String> {
        let timeout = SinkConfig::Slack(config.clone()).timeout();
        let mode = match (&config.webhook_url, &config.token, &config.channel) {
            (Some(url), None, None) => Mode::Webhook { url: url.clone() },
            (None, Some(token), Some(channel)) if !channel.0.trim().is_empty() => Mode::Api {
                token: token.clone(),
                channel: channel.0.trim().to_string(),
                api_url: config.api_url.0.trim_end_matches('/').to_string(),
            },
            _ => {
                return Err(
                    "slack needs either webhook_url, or token and channel (a channel ID)".into(),
                )
            }
        };
        Ok(SlackSink {
            client: client.reqwest().clone(),
            mode,
            timeout,
        })
    }
}

/// Splits a handle from [`Outcome::Sent`] back into (channel ID, ts).
pub fn split_handle(handle: &str) -> Option<(&str, &str)> {
    let (channel, ts) = handle.split_once(':')?;
    (!channel.is_empty() && !ts.is_empty() && !ts.contains(':')).then_some((channel, ts))
}

/// Whether a reply in the thread should also show in the channel: state changes are news for
/// everyone watching the room, notes are conversation for the thread.
fn broadcast(content: &Content) -> bool {
    matches!(
        content,
        Content::Ticket(t) if matches!(
            t.change,
            Change::Acked { .. } | Change::Resolved { .. } | Change::Reopened
        )
    )
}

/// Reads a Web API answer. `channel` is the one the request named, used if Slack leaves it out.
pub fn api_outcome(answer: &Answer, channel: &str) -> Outcome {
    // Real HTTP failures (429 with Retry-After, 5xx, a proxy's 403) follow the shared rules.
    if let Some(outcome) = classify(answer) {
        return outcome;
    }
    let body: Value = match serde_json::from_str(&answer.body) {
        Ok(v @ Value::Object(_)) => v,
        // A 2xx that is not Slack's JSON means api_url points at something else: retrying will not
        // change that, and the message may not have been posted at all.
        _ => {
            return Outcome::Permanent {
                error: format!(
                    "slack: unreadable answer (HTTP {}): {}",
                    answer.status.as_u16(),
                    snippet(&answer.body)
                ),
            }
        }
    };
    if body["ok"].as_bool() == Some(true) {
        let channel = body["channel"].as_str().unwrap_or(channel);
        let handle = body["ts"].as_str().map(|ts| format!("{channel}:{ts}"));
        return Outcome::sent(handle);
    }
    let code = body["error"].as_str().unwrap_or("unknown_error");
    let mut error = format!("slack: {code}");
    // `invalid_blocks` and friends explain themselves here; worth keeping for whoever reads the log.
    if let Some(messages) = body["response_metadata"]["messages"].as_array() {
        let details: Vec<&str> = messages.iter().filter_map(Value::as_str).collect();
        if !details.is_empty() {
            error = format!("{error} ({})", snippet(&details.join("; ")));
        }
    }
    if code == "ratelimited" || code == "rate_limited" || TRANSIENT_ERRORS.contains(&code) {
        Outcome::Retry {
            error,
            after: retry_after(&answer.headers),
        }
    } else {
        Outcome::Permanent { error }
    }
}

/// Reads a `users.getPresence` answer: `{"ok": true, "presence": "active"|"away", ...}`. HTTP
/// failures (a 429 when the method's tier is spent) and `ok: false` (`user_not_found`, `missing_scope`,
/// `ratelimited`, ...) are errors naming what Slack said.
pub fn presence_answer(answer: &Answer) -> Result<PresenceState, String> {
    if let Some(Outcome::Retry { error, .. } | Outcome::Permanent { error }) = classify(answer) {
        return Err(format!("slack: users.getPresence: {error}"));
    }
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    if body["ok"].as_bool() != Some(true) {
        let Some(code) = body["error"].as_str() else {
            return Err(format!(
                "slack: users.getPresence: unreadable answer (HTTP {}): {}",
                answer.status.as_u16(),
                snippet(&answer.body)
            ));
        };
        let mut error = format!("slack: users.getPresence: {code}");
        // `missing_scope` names the scope the token lacks (`users:read`).
        if let Some(needed) = body["needed"].as_str() {
            error = format!("{error} (needs {needed})");
        }
        return Err(error);
    }
    match body["presence"].as_str() {
        Some("active") => Ok(PresenceState::Online),
        Some("away") => Ok(PresenceState::Away),
        other => Err(format!(
            "slack: users.getPresence: unexpected presence {other:?}"
        )),
    }
}

impl SlackSink {
    async fn webhook(&self, url: &Secret, request: &Request) -> Outcome {
        // A webhook gives no handle, so there is nothing to edit; routing does not ask for edits when
        // capabilities say so, and a new message instead would duplicate the ticket's card.
        if let Action::Edit { .. } = request.action {
            return Outcome::Permanent {
                error: "slack: a webhook cannot edit messages (use token and channel)".into(),
            };
        }
        // A thread reply (which routing does not plan either) goes out as a plain message: the text
        // stands on its own, and losing a note or a resolve would be worse than losing its thread.
        let r = render::render(&request.content);
        let body = json!({"text": r.text, "blocks": r.blocks, "unfurl_links": false});
        let builder = self.client.post(url.expose()).json(&body);
        match execute(builder, self.timeout).await {
            Ok(answer) => classify(&answer).unwrap_or(Outcome::sent(None)),
            Err(outcome) => outcome,
        }
    }

    async fn api(
        &self,
        token: &Secret,
        channel: &str,
        api_url: &str,
        request: &Request,
    ) -> Outcome {
        // The root message (posted on opening, edited on each state change) carries the ack and
        // resolve buttons; replies do not. Webhook messages get none: they cannot be edited, so their
        // buttons would outlive the state they offer.
        let root = match (&request.action, &request.content) {
            (Action::Edit { .. }, _) => true,
            (Action::Post { thread: None }, Content::Ticket(t)) => t.change == Change::Opened,
            _ => false,
        };
        let r = if root {
            render::render_root(&request.content)
        } else {
            render::render(&request.content)
        };
        let (method, body) = match &request.action {
            Action::Post { thread: None } => (
                "chat.postMessage",
                json!({"channel": channel, "text": r.text, "blocks": r.blocks, "unfurl_links": false}),
            ),
            Action::Post {
                thread: Some(handle),
            } => {
                let Some((root_channel, ts)) = split_handle(handle) else {
                    return bad_handle(handle);
                };
                // The reply goes where the root is, even if the room's channel changed since.
                let mut body = json!({
                    "channel": root_channel, "text": r.text, "blocks": r.blocks,
                    "unfurl_links": false, "thread_ts": ts,
                });
                if broadcast(&request.content) {
                    body["reply_broadcast"] = json!(true);
                }
                ("chat.postMessage", body)
            }
            Action::Edit { handle } => {
                let Some((root_channel, ts)) = split_handle(handle) else {
                    return bad_handle(handle);
                };
                (
                    "chat.update",
                    json!({"channel": root_channel, "ts": ts, "text": r.text, "blocks": r.blocks}),
                )
            }
        };
        let requested = body["channel"].as_str().unwrap_or(channel).to_string();
        let builder = self
            .client
            .post(format!("{api_url}/{method}"))
            .bearer_auth(token.expose())
            // Without the charset Slack answers with a `missing_charset` warning.
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_string());
        match execute(builder, self.timeout).await {
            Ok(answer) => api_outcome(&answer, &requested),
            Err(outcome) => outcome,
        }
    }
}

fn bad_handle(handle: &str) -> Outcome {
    Outcome::Permanent {
        error: format!("slack: handle {handle:?} is not channel:ts"),
    }
}

#[async_trait]
impl Sink for SlackSink {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn capabilities(&self) -> Capabilities {
        let api = matches!(self.mode, Mode::Api { .. });
        Capabilities {
            threads: api,
            edits: api,
        }
    }

    async fn send(&self, request: &Request) -> Outcome {
        match &self.mode {
            Mode::Webhook { url } => self.webhook(url, request).await,
            Mode::Api {
                token,
                channel,
                api_url,
            } => self.api(token, channel, api_url, request).await,
        }
    }

    /// `users.getPresence` in Web API mode; `None` for a webhook, which has no token to ask with.
    async fn presence(&self, handle: &str) -> Option<Result<PresenceState, String>> {
        let Mode::Api { token, api_url, .. } = &self.mode else {
            return None;
        };
        let mut url = match reqwest::Url::parse(&format!("{api_url}/users.getPresence")) {
            Ok(url) => url,
            Err(e) => return Some(Err(format!("slack: api_url is not a URL: {e}"))),
        };
        // As a query pair the handle is encoded, whatever it holds.
        url.query_pairs_mut().append_pair("user", handle);
        let builder = self.client.get(url).bearer_auth(token.expose());
        Some(match execute(builder, self.timeout).await {
            Ok(answer) => presence_answer(&answer),
            Err(Outcome::Retry { error, .. } | Outcome::Permanent { error }) => {
                Err(format!("slack: users.getPresence: {error}"))
            }
            Err(Outcome::Sent { .. }) => Err("slack: users.getPresence: no answer".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;

    fn answer(status: u16, body: &str, retry: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(r).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.into(),
        }
    }

    #[test]
    fn ok_answers_give_channel_ts_handles() {
        let a = answer(200, r#"{"ok":true,"channel":"C1","ts":"17.0001"}"#, None);
        assert_eq!(
            api_outcome(&a, "C9"),
            Outcome::sent(Some("C1:17.0001".into()))
        );
        // Without a channel in the answer, the requested one is used.
        let a = answer(200, r#"{"ok":true,"ts":"17.0001"}"#, None);
        assert_eq!(
            api_outcome(&a, "C9"),
            Outcome::sent(Some("C9:17.0001".into()))
        );
    }

    #[test]
    fn ok_false_is_read_from_the_body() {
        let a = answer(200, r#"{"ok":false,"error":"channel_not_found"}"#, None);
        assert_eq!(
            api_outcome(&a, "C1"),
            Outcome::Permanent {
                error: "slack: channel_not_found".into()
            }
        );
        let a = answer(200, r#"{"ok":false,"error":"ratelimited"}"#, Some("12"));
        assert!(matches!(
            api_outcome(&a, "C1"),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(12)
        ));
        for code in TRANSIENT_ERRORS {
            let a = answer(200, &format!(r#"{{"ok":false,"error":"{code}"}}"#), None);
            assert!(
                matches!(api_outcome(&a, "C1"), Outcome::Retry { after: None, .. }),
                "{code}"
            );
        }
        let a = answer(
            200,
            r#"{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 3001 characters"]}}"#,
            None,
        );
        match api_outcome(&a, "C1") {
            Outcome::Permanent { error } => assert!(error.contains("3001"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_json_success_is_permanent() {
        let a = answer(200, "<html>login</html>", None);
        assert!(matches!(api_outcome(&a, "C1"), Outcome::Permanent { .. }));
    }

    #[test]
    fn http_failures_follow_the_shared_rules() {
        assert!(matches!(
            api_outcome(&answer(429, "", Some("30")), "C1"),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(30)
        ));
        assert!(matches!(
            api_outcome(&answer(503, "", None), "C1"),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            api_outcome(&answer(404, "", None), "C1"),
            Outcome::Permanent { .. }
        ));
    }

    #[test]
    fn handles_split_at_the_colon() {
        assert_eq!(split_handle("C1:17.0001"), Some(("C1", "17.0001")));
        assert_eq!(split_handle("17.0001"), None);
        assert_eq!(split_handle(":17.0001"), None);
        assert_eq!(split_handle("C1:"), None);
        assert_eq!(split_handle("C1:1:2"), None);
    }

    #[test]
    fn presence_answers_map_to_states_or_errors() {
        let read = |status, body: &str| presence_answer(&answer(status, body, None));
        assert_eq!(
            read(200, r#"{"ok":true,"presence":"active"}"#),
            Ok(PresenceState::Online)
        );
        assert_eq!(
            read(200, r#"{"ok":true,"presence":"away","online":false}"#),
            Ok(PresenceState::Away)
        );
        assert_eq!(
            read(
                200,
                r#"{"ok":false,"error":"missing_scope","needed":"users:read","provided":"chat:write"}"#
            ),
            Err("slack: users.getPresence: missing_scope (needs users:read)".into())
        );
        assert!(read(200, r#"{"ok":true,"presence":"dnd"}"#).is_err());
        assert!(read(200, "<html>login</html>").is_err());
        let limited = read(429, "");
        assert!(limited.unwrap_err().contains("HTTP 429"));
    }

    fn config(yaml: &str) -> SlackSinkConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn capabilities_follow_the_mode() {
        let client = Client::new();
        let hook = SlackSink::new(&config("webhook_url: https://hooks.test/x"), &client).unwrap();
        assert_eq!(hook.capabilities(), Capabilities::default());
        let api = SlackSink::new(&config("token: xoxb-1\nchannel: C1"), &client).unwrap();
        assert_eq!(
            api.capabilities(),
            Capabilities {
                threads: true,
                edits: true
            }
        );
        assert!(SlackSink::new(&config("token: xoxb-1"), &client).is_err());
        let both = "webhook_url: https://hooks.test/x\ntoken: xoxb-1\nchannel: C1";
        assert!(SlackSink::new(&config(both), &client).is_err());
    }

    #[test]
    fn debug_hides_credentials() {
        let client = Client::new();
        let sink = SlackSink::new(
            &config("token: xoxb-secret\nchannel: C1\napi_url: https://slack.test/api/"),
            &client,
        )
        .unwrap();
        let shown = format!("{sink:?}");
        assert!(!shown.contains("xoxb-secret"), "{shown}");
        let hook = SlackSink::new(
            &config("webhook_url: https://hooks.test/T/B/secret"),
            &client,
        )
        .unwrap();
        assert!(!format!("{hook:?}").contains("hooks.test"));
    }
}
