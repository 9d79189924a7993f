//! `GET /api/replay?source=S&since=24h`: the alerts a source brought in since a time, each as a
//! fixture event with what tocsin did with it then, for `tocsin plugin test --replay`. Any member.
//!
//! Built from what tocsin keeps: tickets whose alert was last seen since then (the alert as the ticket
//! holds it, after its chain ran: labels plugins added are in it; `then` is the ticket's title,
//! severity, labels, rooms, mentions and tags) and alerts plugins dropped since then (the alert as the
//! dropping plugin saw it; `then` is who dropped it and why). The alert as the sender sent it is not
//! kept once applied, so a replay shows changes in decisions, not in what earlier plugins add.
//! At most [`MAX_ALERTS`] of each, newest first.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::query;
use crate::config::HumanDuration;
use crate::error::{check_text, ApiError, MAX_PARAM};
use crate::state::{AppState, Member};
use crate::store::TicketFilter;

/// The most tickets and the most dropped alerts one answer carries.
pub const MAX_ALERTS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/replay", get(replay))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    source: String,
    since: Option<String>,
}

async fn replay(
    State(state): State<AppState>,
    member: Member,
    q: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    check_text("source", &q.source, MAX_PARAM)?;
    let Some(source) = state.config.sources.get(&q.source) else {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("no source `{}`", q.source),
        ));
    };
    let since: HumanDuration = q
        .since
        .as_deref()
        .unwrap_or("24h")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_query", format!("since: {e}")))?;
    let now = state.clock.now();
    // Saturating: a `since` longer than time itself means "everything", not an overflow.
    let back = i64::try_from(since.0.as_millis()).unwrap_or(i64::MAX);
    let from = now.as_millis().saturating_sub(back);
    let kind = source.kind.as_str();

    let filter = TicketFilter {
        states: Vec::new(),
        severities: Vec::new(),
        source: Some(q.source.clone()),
        room: None,
        text: None,
        visible: member.visible(),
        limit: MAX_ALERTS,
        before_number: None,
    };
    let tickets = state.store.list_tickets(&filter).await?;
    let mut alerts: Vec<Value> = tickets
        .iter()
        .filter(|t| t.last_seen.as_millis() >= from)
        .map(|t| {
            json!({
                "ticket": t.reference(),
                "at": t.last_seen,
                "event": super::ticket_alerts::fixture_event(t, Some(kind)),
                "then": {
                    "dropped": null,
                    "title": t.title,
                    "severity": t.severity,
                    "labels": t.labels,
                    "rooms": t.routing.rooms,
                    "mentions": t.routing.mentions,
                    "tags": t.routing.tags,
                },
            })
        })
        .collect();
    let dropped = state.store.dropped(MAX_ALERTS).await?;
    alerts.extend(
        dropped
            .iter()
            .filter(|d| d.alert.source == q.source && d.at.as_millis() >= from)
            .map(|d| {
                let mut event = crate::domain::plugin_event::event_of(&d.alert);
                event["source_kind"] = json!(kind);
                json!({
                    "ticket": null,
                    "at": d.at,
                    "event": event,
                    "then": {"dropped": {"plugin": d.plugin, "reason": d.reason}},
                })
            }),
    );
    Ok(Json(json!({
        "source": q.source,
        "since": crate::domain::time::Timestamp::from_millis(from),
        "alerts": alerts,
    })))
}
