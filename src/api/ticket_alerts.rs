//! `GET /api/tickets/{id}/alerts`: the ticket's alert as a plugin test event, for any member.
//! `format=json` (the default) answers `{"alerts": [event]}`; `format=fixture` a YAML list of cases for
//! `tocsin plugin test --fixtures` (or `--config ... --source ...`), to paste into a test.
//!
//! tocsin keeps no copy of the alert as it arrived once the journal entry is applied: the event is
//! rebuilt from the ticket, so it carries what the plugin chain made of the alert (labels plugins
//! added, a severity or title a plugin set). The YAML header says so.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::query;
use crate::domain::ticket::Ticket;
use crate::error::{ticket_ref, ApiError};
use crate::state::{AppState, Member};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tickets/{id}/alerts", get(alerts))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    format: Option<String>,
}

async fn alerts(
    State(state): State<AppState>,
    _member: Member,
    Path(id): Path<String>,
    q: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let t = state.store.get_ticket(&ticket_ref(&id)?).await?;
    let kind = state
        .config
        .sources
        .get(&t.source)
        .map(|s| s.kind.as_str().to_string());
    let event = fixture_event(&t, kind.as_deref());
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(json!({"alerts": [event]})).into_response()),
        "fixture" => Ok((
            [
                (header::CONTENT_TYPE, "application/yaml; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    &format!("attachment; filename=\"T-{}.yaml\"", t.number),
                ),
            ],
            fixture_yaml(&t, event),
        )
            .into_response()),
        other => Err(ApiError::bad_request(
            "invalid_query",
            format!("format must be json or fixture, not `{other}`"),
        )),
    }
}

/// The ticket's alert in the fixture event format (`plugins/README.md`). Pure.
pub fn fixture_event(t: &Ticket, source_kind: Option<&str>) -> Value {
    let mut e = serde_json::Map::new();
    e.insert("title".into(), json!(t.title));
    e.insert("source".into(), json!(t.source));
    if let Some(kind) = source_kind {
        e.insert("source_kind".into(), json!(kind));
    }
    // A grouped ticket's fingerprint is its group key: the sender's own is kept beside it.
    let fingerprint = t
        .routing
        .original_fingerprint
        .as_ref()
        .unwrap_or(&t.fingerprint);
    e.insert("fingerprint".into(), json!(fingerprint));
    e.insert("severity".into(), json!(t.severity));
    if !t.labels.is_empty() {
        e.insert("labels".into(), json!(t.labels));
    }
    if !t.annotations.is_empty() {
        e.insert("annotations".into(), json!(t.annotations));
    }
    if let Some(d) = &t.description {
        e.insert("description".into(), json!(d));
    }
    if let Some(u) = &t.url {
        e.insert("generator_url".into(), json!(u));
    }
    if let Some(s) = t.starts_at {
        e.insert("starts_at_ms".into(), json!(s.as_millis()));
    }
    Value::Object(e)
}

/// A YAML list with one case for the ticket's alert. The only text outside the serialised YAML is the
/// header, made of the ticket's number and its source (a config name), so nothing a sender wrote can
/// break out of the document.
fn fixture_yaml(t: &Ticket, event: Value) -> String {
    let case = json!([{
        "name": format!("T-{}", t.number),
        "event": event,
    }]);
    let body = serde_yaml::to_string(&case).unwrap_or_default();
    format!(
        "# T-{} from source {}, rebuilt from the ticket: labels, severity and title are what the\n\
         # plugin chain made of the alert. Add `expect:` (pass, drop, route, {{route: ...}}; see\n\
         # plugins/README.md) and save it under your plugin's fixtures/.\n{body}",
        t.number, t.source
    )
}
