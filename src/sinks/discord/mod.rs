//! The Discord sink: a channel webhook. Posts with `?wait=true` so Discord answers with the message
//! object, whose `id` is the handle for later edits (`PATCH {webhook}/messages/{id}`).
//!
//! Discord webhooks cannot reply under a message without a thread channel, so follow-ups are messages
//! of their own (`threads: false`); edits work (`edits: true`).

pub mod render;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::http::{classify, execute, header_f64, retry_after, seconds, Answer, Client};
use super::{Action, Capabilities, Outcome, Request, Sink};
use crate::config::{DiscordSinkConfig, SinkConfig};

/// `retry_after` above this many "seconds" is taken to be milliseconds: Discord has sent milliseconds
/// in that field (discord-api-docs#4722), and no real bucket waits an hour.
const RETRY_AFTER_MS_THRESHOLD: f64 = 3600.0;

#[derive(Debug)]
pub struct DiscordSink {
    client: reqwest::Client,
    /// The webhook URL (`…/webhooks/{id}/{token}`, maybe with `?thread_id=`). Holds the token: a
    /// secret, so it never appears in errors.
    webhook: Url,
    timeout: Duration,
}

impl DiscordSink {
    pub fn new(config: &DiscordSinkConfig, client: &Client) -> Result<Self, String> {
        let timeout = SinkConfig::Discord(config.clone()).timeout();
        // The error must not echo the URL: it holds the webhook token.
        let webhook = Url::parse(config.webhook_url.expose())
            .map_err(|e| format!("discord webhook_url is not a valid URL: {e}"))?;
        if webhook.cannot_be_a_base() {
            return Err("discord webhook_url must be an http(s) URL".into());
        }
        Ok(DiscordSink {
            client: client.reqwest().clone(),
            webhook,
            timeout,
        })
    }

    /// The webhook URL with `wait=true` added to whatever query it has (a `thread_id`, say).
    pub fn post_url(&self) -> Url {
        let mut url = self.webhook.clone();
        set_query(&mut url, Some(("wait", "true")));
        url
    }

    /// `{webhook}/messages/{id}`, keeping a `thread_id` so edits reach messages inside a thread.
    pub fn message_url(&self, id: &str) -> Url {
        let mut url = self.webhook.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            // The handle is pushed as one segment, so a `/` or `?` in it is encoded, never followed.
            segments.pop_if_empty().push("messages").push(id);
        }
        set_query(&mut url, None);
        url
    }
}

/// Replaces any `wait` in the query with `extra`, keeping the other pairs in order.
fn set_query(url: &mut Url, extra: Option<(&str, &str)>) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "wait")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() && extra.is_none() {
        url.set_query(None);
        return;
    }
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (k, v) in &kept {
        pairs.append_pair(k, v);
    }
    if let Some((k, v)) = extra {
        pairs.append_pair(k, v);
    }
}

/// How long a 429 asks us to wait: the body's `retry_after` (seconds, with fractions) is the precise
/// one; `Retry-After` is rounded up to whole seconds; `X-RateLimit-Reset-After` is the last resort.
pub fn rate_limit_wait(answer: &Answer) -> Option<Duration> {
    let from_body = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("retry_after")?.as_f64())
        .and_then(|secs| {
            if secs > RETRY_AFTER_MS_THRESHOLD {
                seconds(secs / 1000.0)
            } else {
                seconds(secs)
            }
        });
    from_body
        .or_else(|| retry_after(&answer.headers))
        .or_else(|| header_f64(&answer.headers, "x-ratelimit-reset-after").and_then(seconds))
}

/// After a success: when the bucket is spent (`X-RateLimit-Remaining: 0`), how long until it refills.
pub fn bucket_pause(answer: &Answer) -> Option<Duration> {
    let remaining = header_f64(&answer.headers, "x-ratelimit-remaining")?;
    if remaining > 0.0 {
        return None;
    }
    if let Some(wait) = header_f64(&answer.headers, "x-ratelimit-reset-after").and_then(seconds) {
        return Some(wait);
    }
    // Only the absolute reset time (Unix seconds) was given.
    let reset = header_f64(&answer.headers, "x-ratelimit-reset")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    seconds((reset - now).max(0.0))
}

/// Reads an answer: the message id on success, the right wait on 429, and the generic rules otherwise
/// (404 Unknown Webhook, 400 Invalid Form Body, 401/403 are permanent; 5xx retry).
pub fn outcome(answer: &Answer, edited: Option<&str>) -> Outcome {
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        let error = match classify(answer) {
            Some(Outcome::Retry { error, .. }) => error,
            _ => "HTTP 429".to_string(),
        };
        return Outcome::Retry {
            error,
            after: rate_limit_wait(answer),
        };
    }
    if let Some(failed) = classify(answer) {
        return failed;
    }
    let id = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("id")?.as_str().map(str::to_string))
        .or_else(|| edited.map(str::to_string));
    Outcome::Sent {
        handle: id,
        pause: bucket_pause(answer),
    }
}

#[async_trait]
impl Sink for DiscordSink {
    fn kind(&self) -> &'static str {
        "discord"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: false,
            edits: true,
        }
    }

    async fn send(&self, request: &Request) -> Outcome {
        let body = render::message(&request.content).to_string();
        // A thread handle is ignored: without threads, a follow-up is a message of its own.
        let (method, url, edited) = match &request.action {
            Action::Post { .. } => (Method::POST, self.post_url(), None),
            Action::Edit { handle } if handle.is_empty() => {
                return Outcome::Permanent {
                    error: "no Discord message id to edit".into(),
                }
            }
            Action::Edit { handle } => (Method::PATCH, self.message_url(handle), Some(handle)),
        };
        let builder = self
            .client
            .request(method, url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        match execute(builder, self.timeout).await {
            Ok(answer) => outcome(&answer, edited.map(String::as_str)),
            Err(outcome) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    fn sink(url: &str) -> DiscordSink {
        let config = DiscordSinkConfig {
            webhook_url: Secret::new(url),
            timeout: None,
        };
        DiscordSink::new(&config, &Client::new()).unwrap()
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.into(),
        }
    }

    #[test]
    fn post_waits_for_the_message_object() {
        let s = sink("https://discord.test/api/webhooks/1/tok");
        assert_eq!(
            s.post_url().as_str(),
            "https://discord.test/api/webhooks/1/tok?wait=true"
        );
        let s = sink("https://discord.test/api/webhooks/1/tok?thread_id=9&wait=false");
        assert_eq!(
            s.post_url().as_str(),
            "https://discord.test/api/webhooks/1/tok?thread_id=9&wait=true"
        );
    }

    #[test]
    fn edits_go_to_the_message_under_the_webhook() {
        let s = sink("https://discord.test/api/webhooks/1/tok/");
        assert_eq!(
            s.message_url("77").as_str(),
            "https://discord.test/api/webhooks/1/tok/messages/77"
        );
        let s = sink("https://discord.test/api/webhooks/1/tok?thread_id=9");
        assert_eq!(
            s.message_url("77").as_str(),
            "https://discord.test/api/webhooks/1/tok/messages/77?thread_id=9"
        );
        assert_eq!(
            s.message_url("../x?y").path(),
            "/api/webhooks/1/tok/messages/..%2Fx%3Fy"
        );
    }

    #[test]
    fn rate_limit_prefers_the_body_and_catches_milliseconds() {
        let body = r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;
        assert_eq!(
            rate_limit_wait(&answer(429, &[("retry-after", "2")], body)),
            Some(Duration::from_millis(1500))
        );
        let ms = r#"{"retry_after":5000,"global":false}"#;
        assert_eq!(
            rate_limit_wait(&answer(429, &[], ms)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            rate_limit_wait(&answer(429, &[("retry-after", "3")], "")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(&answer(429, &[("x-ratelimit-reset-after", "0.25")], "")),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn success_reads_the_id_and_a_spent_bucket() {
        let spent = answer(
            200,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "2.5"),
            ],
            r#"{"id":"1100000000000000042","channel_id":"1"}"#,
        );
        assert_eq!(
            outcome(&spent, None),
            Outcome::Sent {
                handle: Some("1100000000000000042".into()),
                pause: Some(Duration::from_millis(2500)),
            }
        );
        let fresh = answer(200, &[("x-ratelimit-remaining", "4")], "{}");
        assert_eq!(
            outcome(&fresh, Some("77")),
            Outcome::Sent {
                handle: Some("77".into()),
                pause: None,
            }
        );
    }

    #[test]
    fn documented_errors_are_permanent() {
        for (status, body) in [
            (404, r#"{"message":"Unknown Webhook","code":10015}"#),
            (
                400,
                r#"{"code":50035,"message":"Invalid Form Body","errors":{}}"#,
            ),
            (401, r#"{"message":"401: Unauthorized","code":0}"#),
        ] {
            assert!(matches!(
                outcome(&answer(status, &[], body), None),
                Outcome::Permanent { .. }
            ));
        }
        assert!(matches!(
            outcome(&answer(502, &[], ""), None),
            Outcome::Retry { .. }
        ));
    }
}
