//! PagerDuty's paths, for senders whose PagerDuty integration takes a base URL or a full URL:
//! - `POST /ingest/{source}/v2/enqueue`: Events API v2 (also `POST /ingest/{source}` of a pagerduty
//!   source), answered 202 `{status, message, dedup_key}`;
//! - `POST /ingest/{source}/v2/change/enqueue`: Change Events, stored and shown on tickets
//!   (`domain::change`), answered 202 `{"status": "success", "message": "Change event processed"}`;
//! - `POST /ingest/{source}/generic/2010-04-15/create_event.json`: Events API v1 (Alertmanager's
//!   `service_key`), answered 200 `{status, message, incident_key}`; throttling (429 elsewhere) is 403
//!   here, as v1 documents it.
//!
//! Every answer on these paths is PagerDuty-shaped: refusals of the event itself are 400
//! `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`, and every other
//! refusal (404, 401, 403, 413, 415, 429, 503...) keeps its status and headers but carries
//! `{"status", "message", "errors": [message]}` (the `Error` response of PagerDuty's Events API v2
//! OpenAPI) instead of tocsin's `{"error", "detail"}`, so senders that read `errors[0]` (Zabbix's
//! PagerDuty media type) or `message` show why.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{auth, check_rate, find, native_as, parse, Client, IngestState};
use crate::config::{AuthConfig, SourceKind};
use crate::error::ApiError;
use crate::state::Source;

/// Which of PagerDuty's APIs a request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Api {
    /// Events API v2 (`/v2/enqueue`, and the source's own path).
    #[default]
    Events,
    /// Change Events (`/v2/change/enqueue`).
    Change,
    /// Events API v1 (`/generic/2010-04-15/create_event.json`).
    V1,
}

impl Api {
    /// The body field that carries the integration key.
    fn key_field(self) -> &'static str {
        match self {
            Api::Events | Api::Change => "routing_key",
            Api::V1 => "service_key",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Api::Events => "/v2/enqueue",
            Api::Change => "/v2/change/enqueue",
            Api::V1 => "/generic/2010-04-15/create_event.json",
        }
    }
}

pub(super) fn routes() -> Router<IngestState> {
    Router::new()
        .route("/ingest/{source}/v2/enqueue", post(events))
        .route("/ingest/{source}/v2/change/enqueue", post(change))
        .route(
            "/ingest/{source}/generic/2010-04-15/create_event.json",
            post(v1),
        )
}

async fn events(
    state: State<IngestState>,
    client: Client,
    source: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    route(state, client, source, query, headers, body, Api::Events).await
}

async fn change(
    state: State<IngestState>,
    client: Client,
    source: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    route(state, client, source, query, headers, body, Api::Change).await
}

async fn v1(
    state: State<IngestState>,
    client: Client,
    source: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    route(state, client, source, query, headers, body, Api::V1).await
}

async fn route(
    State(state): State<IngestState>,
    client: Client,
    Path(source): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
    api: Api,
) -> Response {
    if find(&state, &source).is_ok_and(|src| src.kind != SourceKind::Pagerduty) {
        let e = ApiError::NotFound(format!(
            "source `{source}` is not a pagerduty source; {} is PagerDuty's path",
            api.path()
        ));
        return shaped(e.into_response()).await;
    }
    let mut response = native_as(&state, client, &source, query, headers, body, api).await;
    // v1 says "slow down" with 403, and its senders retry 403, not 429 (Alertmanager's v1 notifier
    // retries only 403 and 5xx): a 429 there would lose the event.
    if api == Api::V1 && response.status() == StatusCode::TOO_MANY_REQUESTS {
        *response.status_mut() = StatusCode::FORBIDDEN;
    }
    shaped(response).await
}

/// A pagerduty source's request, once its body is read: the key in the body checked (with
/// `auth: {token}`), the rate charged, then the event taken as `api` says.
pub(super) async fn handle(
    state: &IngestState,
    src: &Source,
    bytes: &[u8],
    cx: &parse::Context<'_>,
    guesser: &str,
    api: Api,
) -> Result<Response, ApiError> {
    if let Some(AuthConfig::Token(secret)) = &src.auth {
        let field = api.key_field();
        let given = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get(field).and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        if !auth::secrets_match(given.as_bytes(), secret.expose().as_bytes()) {
            state.metrics.alerts_received(&src.name, "unauthorized", 1);
            state.ingest_failures.record(guesser, state.clock.now());
            let what = if api == Api::V1 {
                "Invalid service key"
            } else {
                "Invalid routing key"
            };
            return Ok(invalid(&crate::ingest::kinds::pagerduty::Invalid::new(
                vec![what.into()],
            )));
        }
    }
    check_rate(src)?;
    match api {
        Api::Events | Api::V1 => {
            let parsed = if api == Api::V1 {
                crate::ingest::kinds::pagerduty_v1::parse(bytes, cx)
            } else {
                crate::ingest::kinds::pagerduty::parse(bytes, cx)
            };
            let event = match parsed {
                Ok(e) => e,
                Err(e) => {
                    state.metrics.alerts_received(&src.name, "invalid", 1);
                    return Ok(invalid(&e));
                }
            };
            state
                .store
                .append_journal(std::slice::from_ref(&event.alert))
                .await?;
            state.journal.accepted(std::slice::from_ref(&event.alert));
            state.metrics.alerts_received(&src.name, "accepted", 1);
            Ok(if api == Api::V1 {
                (
                    StatusCode::OK,
                    Json(json!({"status": "success", "message": "Event processed", "incident_key": event.dedup_key})),
                )
                    .into_response()
            } else {
                (
                    StatusCode::ACCEPTED,
                    Json(json!({"status": "success", "message": "Event processed", "dedup_key": event.dedup_key})),
                )
                    .into_response()
            })
        }
        Api::Change => {
            let draft = match crate::ingest::kinds::pagerduty_change::parse(
                bytes,
                &src.name,
                cx.now,
                src.change_window,
            ) {
                Ok(d) => d,
                Err(e) => return Ok(invalid(&e)),
            };
            // Straight to the store, not the journal: a change opens no ticket and runs no plugin;
            // it is durable (and on the open tickets' timelines) before the answer.
            let (change, tickets) = state.store.record_change(draft, cx.now).await?;
            tracing::debug!(source = %src.name, change = change.id, tickets = tickets.len(), "Change event stored.");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"status": "success", "message": "Change event processed"})),
            )
                .into_response())
        }
    }
}

/// 400 as PagerDuty answers an invalid event.
fn invalid(e: &crate::ingest::kinds::pagerduty::Invalid) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "invalid event", "message": e.message, "errors": e.errors})),
    )
        .into_response()
}

/// Rewrites tocsin's error body (`{"error", "detail"}`) in PagerDuty's shape (`{"status", "message",
/// "errors"}`), keeping the status and headers (`Retry-After`, `WWW-Authenticate`). Answers already in
/// PagerDuty's shape, and successes, pass as they are.
pub(super) async fn shaped(resp: Response) -> Response {
    if resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // tocsin's error bodies are a few hundred bytes; anything larger is not one of them.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let reshaped = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
        let code = v.get("error")?.as_str()?;
        let detail = v.get("detail")?.as_str()?;
        Some(json!({"status": code.replace('_', " "), "message": detail, "errors": [detail]}))
    });
    match reshaped {
        Some(v) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Response::from_parts(parts, Body::from(v.to_string()))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (StatusCode, HeaderMap, Value) {
        let (parts, b) = r.into_parts();
        let bytes = axum::body::to_bytes(b, 1 << 20).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn tocsin_errors_become_pagerduty_errors_with_their_status_and_headers() {
        let e = ApiError::Overloaded {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_secs: 7,
            detail: "slow down".into(),
        };
        let (status, headers, v) = body(shaped(e.into_response()).await).await;
        assert_eq!(status, 429);
        assert_eq!(headers[header::RETRY_AFTER], "7");
        assert_eq!(
            v,
            json!({"status": "overloaded", "message": "slow down", "errors": ["slow down"]})
        );
        let (status, _, v) =
            body(shaped(ApiError::PayloadTooLarge { limit: 10 }.into_response()).await).await;
        assert_eq!(status, 413);
        assert_eq!(v["status"], "payload too large");
        assert!(v["errors"][0].as_str().unwrap().contains("10 bytes"));
    }

    #[tokio::test]
    async fn pagerduty_answers_pass_unchanged() {
        let e = crate::ingest::kinds::pagerduty::Invalid::new(vec!["x".into()]);
        let (status, _, v) = body(shaped(invalid(&e)).await).await;
        assert_eq!(status, 400);
        assert_eq!(
            v,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]})
        );
        let ok = (StatusCode::ACCEPTED, Json(json!({"status": "success"}))).into_response();
        assert_eq!(body(shaped(ok).await).await.2["status"], "success");
    }
}
