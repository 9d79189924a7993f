//! Slack ChatOps: the slash command (`POST /chat/slack/command`) and the buttons on tocsin's messages
//! (`POST /chat/slack/interactive`).
//!
//! Every request is verified with the app's signing secret: `X-Slack-Signature` must be
//! `v0=hex(HMAC-SHA256(secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw body))` (compared in
//! constant time), and the timestamp must be within `chatops.slack.max_age` (five minutes) of tocsin's
//! clock, so a captured request cannot be replayed later. Refusals are 401 with the usual JSON error.
//!
//! The channel a command was typed in is the tocsin room whose Slack sink posts to that channel ID.
//! A slash command is answered in the response (`in_channel` for actions done, `ephemeral` for help,
//! lists and refusals). A button press is answered with an empty 200: the ack or resolve changes the
//! ticket, and tocsin's own delivery edits the message the button is on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{form, ChatOps, Origin};
use crate::config::SlackChatOpsConfig;
use crate::domain::time::Timestamp;
use crate::error::ApiError;

/// Slack's slash-command and interaction bodies are small; this leaves room for large block payloads.
const MAX_BODY: usize = 256 * 1024;

/// How old (or how far ahead) a request's timestamp may be without `max_age`: Slack's advice.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

pub fn router() -> Router<Arc<ChatOps>> {
    Router::new()
        .route("/chat/slack/command", post(command))
        .route("/chat/slack/interactive", post(interactive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

fn unauthorized(detail: impl Into<String>) -> ApiError {
    ApiError::Unauthorized {
        challenge: "Signature",
        detail: detail.into(),
    }
}

/// Checks Slack's request signature and timestamp against `now`; the request's time (Unix seconds)
/// and the decoded signature (what a replay is recognised by: the header's text can be written in
/// other ways, upper-case hex for one, that verify all the same).
pub fn verify(
    config: &SlackChatOpsConfig,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<(i64, Vec<u8>), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ts = header("x-slack-request-timestamp")
        .ok_or_else(|| unauthorized("missing the X-Slack-Request-Timestamp header"))?
        .trim();
    let secs: i64 = ts
        .parse()
        .map_err(|_| unauthorized("X-Slack-Request-Timestamp is not a Unix time"))?;
    let max_age = config.max_age.as_ref().map_or(DEFAULT_MAX_AGE, |d| d.0 .0);
    let skew = (now.as_millis() / 1000).abs_diff(secs);
    if skew > max_age.as_secs() {
        return Err(unauthorized(format!(
            "X-Slack-Request-Timestamp is more than {}s away from now: stale or replayed",
            max_age.as_secs()
        )));
    }
    let given = header("x-slack-signature")
        .ok_or_else(|| unauthorized("missing the X-Slack-Signature header"))?;
    let signature = given
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| unauthorized("X-Slack-Signature is not v0=<hex HMAC-SHA256>"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(config.signing_secret.expose().as_bytes())
        .map_err(|_| unauthorized("the signing secret cannot be used"))?;
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| unauthorized("the signature does not match the body"))?;
    Ok((secs, signature))
}

/// The Slack block, or 404 when Slack ChatOps is not set up; then the verified body.
fn checked(
    chatops: &ChatOps,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let Some(config) = chatops.config.as_ref().and_then(|c| c.slack.as_ref()) else {
        return Err(ApiError::NotFound(
            "Slack ChatOps is not configured (chatops.slack)".into(),
        ));
    };
    let body = super::read_body(body, MAX_BODY)?;
    let now = chatops.clock.now();
    let (sent, signature) = verify(config, headers, &body, now)?;
    let max_age = config.max_age.as_ref().map_or(DEFAULT_MAX_AGE, |d| d.0 .0);
    let forget_at = Timestamp::from_millis(sent.saturating_mul(1000)).plus(max_age);
    chatops
        .replays
        .take_or_refuse("slack", &signature, forget_at, now)?;
    Ok(body)
}

/// The origin of a request from Slack user `user` in channel `channel`.
fn origin(chatops: &ChatOps, user: &str, channel: &str) -> Origin {
    Origin {
        platform: "slack",
        user: user.to_string(),
        room: chatops.room_for("slack", channel).map(str::to_string),
    }
}

/// `POST /chat/slack/command`: a slash command (`/tocsin ack T-42`), form-encoded.
async fn command(
    State(chatops): State<Arc<ChatOps>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = checked(&chatops, &headers, body)?;
    let fields = form(&body);
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    let user = field("user_id");
    if user.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a slash command carries user_id",
        ));
    }
    let origin = origin(&chatops, user, field("channel_id"));
    let answer = chatops.handle(&origin, field("text")).await;
    let kind = if answer.public {
        "in_channel"
    } else {
        "ephemeral"
    };
    Ok(Json(json!({"response_type": kind, "text": answer.text})).into_response())
}

/// `POST /chat/slack/interactive`: a button on one of tocsin's messages (`payload` is the JSON of a
/// `block_actions` interaction). Tocsin's buttons carry `ack:T-42` or `resolve:T-42`.
async fn interactive(
    State(chatops): State<Arc<ChatOps>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = checked(&chatops, &headers, body)?;
    let fields = form(&body);
    let payload: Value = fields
        .get("payload")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_body", "the payload field is missing or not JSON")
        })?;
    if payload["type"].as_str() != Some("block_actions") {
        // Other interactions (shortcuts, view submissions) are not tocsin's: acknowledge, do nothing.
        return Ok(StatusCode::OK.into_response());
    }
    let user = payload["user"]["id"].as_str().unwrap_or_default();
    let channel = payload["channel"]["id"]
        .as_str()
        .or_else(|| payload["container"]["channel_id"].as_str())
        .unwrap_or_default();
    let Some(action) = payload["actions"].as_array().and_then(|a| a.first()) else {
        return Ok(StatusCode::OK.into_response());
    };
    let Some(text) = button_command(
        action["action_id"].as_str().unwrap_or_default(),
        action["value"].as_str().unwrap_or_default(),
    ) else {
        return Ok(StatusCode::OK.into_response());
    };
    let answer = chatops
        .handle(&origin(&chatops, user, channel), &text)
        .await;
    tracing::info!(user, command = %text, answer = %answer.text, "Slack button pressed.");
    Ok(StatusCode::OK.into_response())
}

/// The command a tocsin button stands for: `tocsin_ack` with `ack:T-42` is `ack T-42`. Anything else
/// (another app's button, a value that does not match its action) is not a command.
pub fn button_command(action_id: &str, value: &str) -> Option<String> {
    let (verb, ticket) = value.split_once(':')?;
    let expected = match action_id {
        "tocsin_ack" => "ack",
        "tocsin_resolve" => "resolve",
        _ => return None,
    };
    (verb == expected && !ticket.trim().is_empty() && !ticket.contains(char::is_whitespace))
        .then(|| format!("{verb} {ticket}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use axum::http::HeaderValue;

    const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn config() -> SlackChatOpsConfig {
        SlackChatOpsConfig {
            signing_secret: Secret::new("8f742231b10e8888abcd99yyyzzz85a5"),
            max_age: None,
        }
    }

    fn signed(ts: &str, body: &[u8]) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"8f742231b10e8888abcd99yyyzzz85a5").unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        let mut h = HeaderMap::new();
        h.insert("x-slack-signature", HeaderValue::from_str(&sig).unwrap());
        h.insert(
            "x-slack-request-timestamp",
            HeaderValue::from_str(ts).unwrap(),
        );
        h
    }

    #[test]
    fn signatures_and_timestamps_are_checked() {
        let body = b"token=x&text=ack+T-1";
        assert!(verify(&config(), &signed("1700000000", body), body, NOW).is_ok());
        // Four minutes either way is fine; six is not.
        assert!(verify(&config(), &signed("1699999760", body), body, NOW).is_ok());
        assert!(verify(&config(), &signed("1700000240", body), body, NOW).is_ok());
        assert!(verify(&config(), &signed("1699999640", body), body, NOW).is_err());
        assert!(verify(&config(), &signed("1700000360", body), body, NOW).is_err());
        // The body and the timestamp are both signed.
        assert!(verify(
            &config(),
            &signed("1700000000", body),
            b"text=resolve+T-1",
            NOW
        )
        .is_err());
        let mut moved = signed("1700000000", body);
        moved.insert(
            "x-slack-request-timestamp",
            HeaderValue::from_static("1700000001"),
        );
        assert!(verify(&config(), &moved, body, NOW).is_err());
        assert!(verify(&config(), &HeaderMap::new(), body, NOW).is_err());
        let mut bare = signed("1700000000", body);
        let sig = bare["x-slack-signature"]
            .to_str()
            .unwrap()
            .replace("v0=", "");
        bare.insert("x-slack-signature", HeaderValue::from_str(&sig).unwrap());
        assert!(verify(&config(), &bare, body, NOW).is_err());
    }

    #[test]
    fn buttons_map_to_commands() {
        assert_eq!(
            button_command("tocsin_ack", "ack:T-42"),
            Some("ack T-42".into())
        );
        assert_eq!(
            button_command("tocsin_resolve", "resolve:T-7"),
            Some("resolve T-7".into())
        );
        assert_eq!(button_command("tocsin_ack", "resolve:T-7"), None);
        assert_eq!(button_command("other_app", "ack:T-7"), None);
        assert_eq!(button_command("tocsin_ack", "ack:T-7 ; note"), None);
        assert_eq!(button_command("tocsin_ack", "ack"), None);
    }
}
