//! Mattermost ChatOps: `POST /chat/mattermost` takes both slash commands (form-encoded, with
//! `command`) and outgoing webhooks (form or JSON, with `trigger_word`, which is stripped from the text).
//!
//! Mattermost sends the integration's `token` in every request; it must equal one of
//! `chatops.mattermost.tokens` (compared in constant time), else the answer is 401. The chat user is
//! looked up by `user_id` only, in `members.<name>.handles.mattermost_id`: a user name can be changed
//! by its owner (or reused after a rename), so it never says who someone is. The channel is the
//! tocsin room whose Mattermost sink has that `channel_id`.
//!
//! Slash commands get `{"response_type": "in_channel" | "ephemeral", "text"}`; outgoing webhooks,
//! whose answer is always posted to the channel, get `{"text"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{form, secrets_match, ChatOps, Origin};
use crate::config::MattermostChatOpsConfig;
use crate::error::ApiError;

const MAX_BODY: usize = 64 * 1024;

pub fn router() -> Router<Arc<ChatOps>> {
    Router::new()
        .route("/chat/mattermost", post(mattermost))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Whether `given` is one of the configured tokens. Every token is compared (in constant time), so the
/// time taken does not tell which one, or how much of one, matched.
pub fn token_ok(config: &MattermostChatOpsConfig, given: &str) -> bool {
    !given.is_empty()
        && config.tokens.iter().fold(false, |acc, t| {
            acc | secrets_match(given.as_bytes(), t.expose().as_bytes())
        })
}

/// The request's fields, from a form or a JSON object (values that are not strings are skipped).
fn fields(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !json {
        return Ok(form(body));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

/// The text after the trigger word (`tocsin ack T-1` → `ack T-1`; also `tocsin: ack T-1`).
pub fn strip_trigger<'a>(text: &'a str, trigger: &str) -> &'a str {
    let text = text.trim_start();
    let trigger = trigger.trim();
    if trigger.is_empty() {
        return text.trim();
    }
    match text.get(..trigger.len()) {
        Some(head) if head.eq_ignore_ascii_case(trigger) => {
            let rest = &text[trigger.len()..];
            rest.strip_prefix(':').unwrap_or(rest).trim()
        }
        _ => text.trim(),
    }
}

async fn mattermost(
    State(chatops): State<Arc<ChatOps>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(config) = chatops.config.as_ref().and_then(|c| c.mattermost.as_ref()) else {
        return Err(ApiError::NotFound(
            "Mattermost ChatOps is not configured (chatops.mattermost)".into(),
        ));
    };
    let body = super::read_body(body, MAX_BODY)?;
    let fields = fields(&headers, &body)?;
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    if !token_ok(config, field("token")) {
        return Err(ApiError::Unauthorized {
            challenge: "Token",
            detail: "the token is not one of chatops.mattermost.tokens".into(),
        });
    }
    let trigger = field("trigger_word");
    let outgoing = !trigger.is_empty() || !fields.contains_key("command");
    let text = if outgoing {
        strip_trigger(field("text"), trigger)
    } else {
        field("text").trim()
    };
    // Only the immutable user ID identifies someone (`handles.mattermost_id`).
    let origin = Origin {
        platform: "mattermost",
        user: field("user_id").trim().to_string(),
        room: chatops
            .room_for("mattermost", field("channel_id"))
            .map(str::to_string),
    };
    let answer = chatops.handle(&origin, text).await;
    let body = if outgoing {
        json!({"text": answer.text})
    } else {
        let kind = if answer.public {
            "in_channel"
        } else {
            "ephemeral"
        };
        json!({"response_type": kind, "text": answer.text})
    };
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn trigger_words_are_stripped() {
        assert_eq!(strip_trigger("tocsin ack T-1", "tocsin"), "ack T-1");
        assert_eq!(strip_trigger("  Tocsin: ack T-1 ", "tocsin"), "ack T-1");
        assert_eq!(strip_trigger("@tocsin status", "@tocsin"), "status");
        assert_eq!(strip_trigger("ack T-1", "tocsin"), "ack T-1");
        assert_eq!(strip_trigger("é", "tocsin"), "é");
        assert_eq!(strip_trigger("ack T-1", ""), "ack T-1");
    }

    #[test]
    fn any_configured_token_is_accepted() {
        let config = MattermostChatOpsConfig {
            tokens: vec![Secret::new("slash-token"), Secret::new("hook-token")],
        };
        assert!(token_ok(&config, "slash-token"));
        assert!(token_ok(&config, "hook-token"));
        assert!(!token_ok(&config, "hook-toke"));
        assert!(!token_ok(&config, ""));
    }
}
