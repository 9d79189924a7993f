//! The Mattermost sink, in one of two modes chosen by the room's config.
//!
//! - **Incoming webhook** (`webhook_url`): `POST {text, username}`, answered with a plain `ok` and no
//!   post id, so this mode can neither thread nor edit.
//! - **REST API v4** (`url` + `token` + `channel_id`): `POST /api/v4/posts` answers 201 with the post,
//!   whose `id` is the handle; replies set `root_id` to it and edits go to
//!   `PUT /api/v4/posts/{id}/patch`.
//!
//! Errors are JSON `{id, message, status_code}` with a 4xx. When the server's rate limiter is on, a
//! 429 carries `X-Ratelimit-Reset` (seconds until the bucket refills) and usually `Retry-After`.
//!
//! **Presence** (REST mode only; a webhook cannot ask): the handle is the member's username, the one
//! mentions use. `GET /api/v4/users/username/{username}` finds the user id once (the sink keeps it),
//! then `GET /api/v4/users/{id}/status` answers `online`, `away`, `dnd` or `offline`.

pub mod render;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use super::http::{classify, execute, header_f64, seconds, snippet, Answer, Client};
use super::{Action, Capabilities, Outcome, Request, Sink};
use crate::config::{MattermostSinkConfig, Secret, SinkConfig};
use crate::domain::presence::PresenceState;

/// The name webhook posts show (servers may be set to ignore overrides; then the hook's own name shows).
const USERNAME: &str = "tocsin";

#[derive(Debug)]
enum Mode {
    Webhook {
        url: Secret,
    },
    Api {
        url: String,
        token: Secret,
        channel_id: String,
    },
}

/// `Debug` never shows the token or the webhook URL (a credential in itself): both are [`Secret`]s.
#[derive(Debug)]
pub struct MattermostSink {
    client: reqwest::Client,
    mode: Mode,
    timeout: Duration,
    /// Username → user id, learned by the first presence poll for each member. Ids never change; a
    /// status lookup that no longer finds the user forgets it.
    user_ids: Mutex<HashMap<String, String>>,
}

impl MattermostSink {
    pub fn new(config: &MattermostSinkConfig, client: &Client) -> Result<Self, String> {
        let timeout = SinkConfig::Mattermost(config.clone()).timeout();
        let mode = match (
            &config.webhook_url,
            &config.url,
            &config.token,
            &config.channel_id,
        ) {
            (Some(url), None, None, None) => Mode::Webhook { url: url.clone() },
            (None, Some(url), Some(token), Some(channel_id)) if !channel_id.0.trim().is_empty() => {
                Mode::Api {
                    url: url.0.trim_end_matches('/').to_string(),
                    token: token.clone(),
                    channel_id: channel_id.0.trim().to_string(),
                }
            }
            _ => {
                return Err(
                    "mattermost needs either webhook_url, or url, token and channel_id".into(),
                )
            }
        };
        Ok(MattermostSink {
            client: client.reqwest().clone(),
            mode,
            timeout,
            user_ids: Mutex::new(HashMap::new()),
        })
    }
}

/// The wait a 429 asks for: `Retry-After` first, then `X-Ratelimit-Reset`. Mattermost sends the reset
/// as seconds from now; a value that can only be a Unix time (past 2001) is read as one, so a proxy
/// that sends epoch seconds does not park the room for a day.
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(wait) = super::http::retry_after(headers) {
        return Some(wait);
    }
    let reset = header_f64(headers, "x-ratelimit-reset")?;
    if reset >= 1_000_000_000.0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        return seconds((reset - now).max(0.0));
    }
    seconds(reset)
}

/// Mattermost's error body, `{id, message}`, as one line; else the start of the body.
fn describe(answer: &Answer) -> String {
    let status = answer.status.as_u16();
    match serde_json::from_str::<Value>(&answer.body) {
        Ok(v) if v["message"].is_string() => format!(
            "mattermost: HTTP {status} {}: {}",
            v["id"].as_str().unwrap_or("error"),
            snippet(v["message"].as_str().unwrap_or_default())
        ),
        _ => format!("mattermost: HTTP {status}: {}", snippet(&answer.body)),
    }
}

/// Reads an answer. `api` says whether a post id is expected (REST) or not (webhook `ok`).
pub fn outcome(answer: &Answer, api: bool) -> Outcome {
    match classify(answer) {
        None if api => {
            let id = serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string))
                .filter(|id| !id.is_empty());
            // A 2xx without an id still means the post exists; it just cannot be threaded under.
            Outcome::sent(id)
        }
        None => Outcome::sent(None),
        Some(Outcome::Retry { after, .. }) => {
            let after = if answer.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                rate_limit_wait(&answer.headers)
            } else {
                after
            };
            Outcome::Retry {
                error: describe(answer),
                after,
            }
        }
        Some(Outcome::Permanent { .. }) => Outcome::Permanent {
            error: describe(answer),
        },
        Some(sent @ Outcome::Sent { .. }) => sent,
    }
}

/// Post and user ids are 26 lowercase letters and digits; anything else is not one of our handles (or
/// not an id the server would send) and must not be spliced into a URL path.
fn is_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Usernames are letters, digits, `.`, `-` and `_` (Mattermost's own rule, which mentions rely on too);
/// checking keeps `/`, `?` and `..` out of the lookup's URL path.
fn is_username(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Reads a `GET /api/v4/users/{id}/status` answer's `status`.
pub fn status_answer(body: &str) -> Result<PresenceState, String> {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match body["status"].as_str() {
        Some("online") => Ok(PresenceState::Online),
        Some("away") => Ok(PresenceState::Away),
        Some("dnd") => Ok(PresenceState::Dnd),
        Some("offline") => Ok(PresenceState::Offline),
        other => Err(format!("mattermost: unexpected status {other:?}")),
    }
}

fn bad_handle(handle: &str) -> Outcome {
    Outcome::Permanent {
        error: format!("mattermost: handle {handle:?} is not a post id"),
    }
}

/// A GET for presence: the answer when it is a 2xx, else the error it amounts to.
async fn get(
    client: &reqwest::Client,
    url: String,
    token: &Secret,
    timeout: Duration,
) -> Result<Answer, (Option<reqwest::StatusCode>, String)> {
    let answer = match execute(client.get(url).bearer_auth(token.expose()), timeout).await {
        Ok(answer) => answer,
        Err(Outcome::Retry { error, .. } | Outcome::Permanent { error }) => {
            return Err((None, format!("mattermost: {error}")))
        }
        Err(Outcome::Sent { .. }) => return Err((None, "mattermost: no answer".into())),
    };
    match classify(&answer) {
        None => Ok(answer),
        Some(_) => Err((Some(answer.status), describe(&answer))),
    }
}

impl MattermostSink {
    fn cached_id(&self, username: &str) -> Option<String> {
        let ids = self.user_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(username).cloned()
    }

    /// The user id for a username: from the cache, else from the server (and then cached).
    async fn user_id(&self, url: &str, token: &Secret, username: &str) -> Result<String, String> {
        if let Some(id) = self.cached_id(username) {
            return Ok(id);
        }
        let lookup = format!("{url}/api/v4/users/username/{username}");
        let answer = get(&self.client, lookup, token, self.timeout)
            .await
            .map_err(|(_, e)| format!("looking up user {username:?}: {e}"))?;
        let id = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .filter(|id| is_id(id))
            .ok_or_else(|| {
                format!(
                    "looking up user {username:?}: mattermost: no user id in {}",
                    snippet(&answer.body)
                )
            })?;
        self.user_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(username.to_string(), id.clone());
        Ok(id)
    }

    async fn status(
        &self,
        url: &str,
        token: &Secret,
        username: &str,
    ) -> Result<PresenceState, String> {
        if !is_username(username) {
            return Err(format!(
                "mattermost: handle {username:?} is not a username (letters, digits, . - _)"
            ));
        }
        let id = self.user_id(url, token, username).await?;
        let status_url = format!("{url}/api/v4/users/{id}/status");
        match get(&self.client, status_url, token, self.timeout).await {
            Ok(answer) => status_answer(&answer.body),
            Err((status, error)) => {
                // The user is gone (deleted and maybe recreated): look the name up afresh next time.
                if status == Some(reqwest::StatusCode::NOT_FOUND) {
                    self.user_ids
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(username);
                }
                Err(format!("reading the status of {username:?}: {error}"))
            }
        }
    }

    async fn webhook(&self, url: &Secret, request: &Request) -> Outcome {
        // No post id comes back, so there is nothing to edit; posting anew would duplicate the card.
        if let Action::Edit { .. } = request.action {
            return Outcome::Permanent {
                error: "mattermost: a webhook cannot edit posts (use url, token and channel_id)"
                    .into(),
            };
        }
        // A thread reply goes out as a plain post: the text stands on its own.
        let body = json!({"text": render::render(&request.content), "username": USERNAME});
        match execute(self.client.post(url.expose()).json(&body), self.timeout).await {
            Ok(answer) => outcome(&answer, false),
            Err(outcome) => outcome,
        }
    }

    async fn api(&self, url: &str, token: &Secret, channel_id: &str, request: &Request) -> Outcome {
        let message = render::render(&request.content);
        let builder = match &request.action {
            Action::Post { thread } => {
                let mut body = json!({"channel_id": channel_id, "message": message});
                if let Some(root) = thread {
                    if !is_id(root) {
                        return bad_handle(root);
                    }
                    body["root_id"] = json!(root);
                }
                self.client.post(format!("{url}/api/v4/posts")).json(&body)
            }
            Action::Edit { handle } => {
                if !is_id(handle) {
                    return bad_handle(handle);
                }
                self.client
                    .put(format!("{url}/api/v4/posts/{handle}/patch"))
                    .json(&json!({"message": message}))
            }
        };
        let builder = builder.bearer_auth(token.expose());
        match execute(builder, self.timeout).await {
            Ok(answer) => outcome(&answer, true),
            Err(outcome) => outcome,
        }
    }
}

#[async_trait]
impl Sink for MattermostSink {
    fn kind(&self) -> &'static str {
        "mattermost"
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
                url,
                token,
                channel_id,
            } => self.api(url, token, channel_id, request).await,
        }
    }

    /// The user's status in REST mode; `None` for a webhook, which has no token to ask with.
    async fn presence(&self, handle: &str) -> Option<Result<PresenceState, String>> {
        let Mode::Api { url, token, .. } = &self.mode else {
            return None;
        };
        Some(self.status(url, token, handle).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use reqwest::StatusCode;

    fn answer(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.into(),
        }
    }

    #[test]
    fn created_posts_give_their_id() {
        let a = answer(201, r#"{"id":"ufrbn3tyd3ntdjsd8ngnxp4hhe"}"#, &[]);
        assert_eq!(
            outcome(&a, true),
            Outcome::sent(Some("ufrbn3tyd3ntdjsd8ngnxp4hhe".into()))
        );
        assert_eq!(outcome(&answer(200, "ok", &[]), false), Outcome::sent(None));
    }

    #[test]
    fn retry_after_wins_over_reset() {
        let a = answer(
            429,
            "limit exceeded",
            &[("retry-after", "3"), ("x-ratelimit-reset", "9")],
        );
        assert!(matches!(
            outcome(&a, true),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        let a = answer(429, "limit exceeded", &[("x-ratelimit-reset", "9")]);
        assert!(matches!(
            outcome(&a, true),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(9)
        ));
    }

    #[test]
    fn epoch_resets_are_read_as_times() {
        // Far in the past: now. Far in the future: capped at a day by `seconds`.
        let past = answer(429, "", &[("x-ratelimit-reset", "1500000000")]);
        assert_eq!(rate_limit_wait(&past.headers), Some(Duration::ZERO));
        let future = answer(429, "", &[("x-ratelimit-reset", "4102444800")]);
        assert_eq!(
            rate_limit_wait(&future.headers),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn errors_name_mattermost_id_and_message() {
        let a = answer(
            403,
            r#"{"id":"api.context.permissions.app_error","message":"You do not have the appropriate permissions.","status_code":403}"#,
            &[],
        );
        assert_eq!(
            outcome(&a, true),
            Outcome::Permanent {
                error: "mattermost: HTTP 403 api.context.permissions.app_error: You do not have the appropriate permissions.".into()
            }
        );
        assert!(matches!(
            outcome(&answer(502, "<html>bad gateway</html>", &[]), true),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn only_post_ids_reach_a_url() {
        assert!(is_id("ufrbn3tyd3ntdjsd8ngnxp4hhe"));
        assert!(!is_id("../users/me"));
        assert!(!is_id(""));
    }

    #[test]
    fn only_usernames_reach_the_lookup() {
        assert!(is_username("alice.ops"));
        assert!(is_username("bob_2-x"));
        assert!(!is_username(".."));
        assert!(!is_username(""));
        assert!(!is_username("../users/me"));
        assert!(!is_username("bob?x=1"));
    }

    #[test]
    fn statuses_map_to_states() {
        for (status, state) in [
            ("online", PresenceState::Online),
            ("away", PresenceState::Away),
            ("dnd", PresenceState::Dnd),
            ("offline", PresenceState::Offline),
        ] {
            let body = format!(r#"{{"user_id":"u1","status":"{status}","manual":false}}"#);
            assert_eq!(status_answer(&body), Ok(state), "{status}");
        }
        assert!(status_answer(r#"{"status":"busy"}"#).is_err());
        assert!(status_answer("<html></html>").is_err());
    }

    fn config(yaml: &str) -> MattermostSinkConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn capabilities_follow_the_mode() {
        let client = Client::new();
        let hook =
            MattermostSink::new(&config("webhook_url: https://mm.test/hooks/x"), &client).unwrap();
        assert_eq!(hook.capabilities(), Capabilities::default());
        let api = MattermostSink::new(
            &config("url: https://mm.test/\ntoken: mm-secret-token\nchannel_id: c1"),
            &client,
        )
        .unwrap();
        assert_eq!(
            api.capabilities(),
            Capabilities {
                threads: true,
                edits: true
            }
        );
        assert!(MattermostSink::new(&config("url: https://mm.test\ntoken: t"), &client).is_err());
        let shown = format!("{api:?}");
        assert!(!shown.contains("mm-secret-token"), "{shown}");
    }
}
