//! `/api/silences`: make, list and end silences. Editors and admins make and end them; everyone reads.
//!
//! A silence keeps matching tickets out of chat and email while it is in force; their changes are still
//! recorded (the store applies it, with `domain::silence`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppJson;
use crate::config::Role;
use crate::domain::silence::{
    self, Matcher, Silence, SilenceDraft, SilenceError, SilenceState, MAX_MATCHERS,
};
use crate::domain::time::Timestamp;
use crate::error::ApiError;
use crate::state::{AppState, Member};
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/silences", get(list).post(create))
        .route("/api/silences/{id}", get(show).delete(expire))
        .route("/api/silences/{id}/expire", post(expire))
}

/// A silence as the API shows it: as stored, with its state now and its matchers as written.
#[derive(Debug, Serialize)]
struct SilenceView {
    #[serde(flatten)]
    silence: Silence,
    state: SilenceState,
    /// The matchers in `name=value` form, as `POST` takes them.
    matchers_text: Vec<String>,
}

impl SilenceView {
    fn new(silence: Silence, now: Timestamp) -> SilenceView {
        SilenceView {
            state: silence.state(now),
            matchers_text: silence.matchers.iter().map(Matcher::to_string).collect(),
            silence,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
    #[serde(default)]
    matchers: Vec<String>,
    /// How long from `starts_at`: `30m`, `2h`, `1d`. Either this or `ends_at`.
    #[serde(default)]
    duration: Option<String>,
    /// RFC 3339; now when absent (a start in the past also means now).
    #[serde(default)]
    starts_at: Option<String>,
    /// RFC 3339. Either this or `duration`.
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    comment: String,
}

fn invalid(e: SilenceError) -> ApiError {
    ApiError::bad_request(e.code(), e.to_string())
}

/// An RFC 3339 time from a request field, or 400 naming the field (the Alertmanager API reads
/// its silences' times with it too).
pub(super) fn time_field(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_optional(text)
        .ok()
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_time",
                format!("{name}: `{text}` is not an RFC 3339 time like 2026-11-30T12:00:00Z"),
            )
        })
}

async fn create(
    State(state): State<AppState>,
    member: Member,
    AppJson(body): AppJson<CreateBody>,
) -> Result<Response, ApiError> {
    member.require(Role::Editor)?;
    let now = state.clock.now();
    if body.matchers.is_empty() {
        return Err(invalid(SilenceError::NoMatchers));
    }
    if body.matchers.len() > MAX_MATCHERS {
        return Err(invalid(SilenceError::TooManyMatchers));
    }
    let matchers = body
        .matchers
        .iter()
        .map(|m| Matcher::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let starts_at = match &body.starts_at {
        Some(text) => time_field("starts_at", text)?.max(now),
        None => now,
    };
    let ends_at = match (&body.duration, &body.ends_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_duration",
                "give either duration or ends_at, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_duration",
                "a silence needs a duration (like 2h) or an ends_at",
            ))
        }
        (Some(d), None) => starts_at.plus(silence::parse_duration(d).map_err(invalid)?),
        (None, Some(text)) => time_field("ends_at", text)?,
    };
    let draft = SilenceDraft {
        matchers,
        starts_at,
        ends_at,
        comment: body.comment.trim().to_string(),
        author: member.name.clone(),
    };
    draft.validate(now).map_err(invalid)?;
    let silence = state.store.create_silence(draft, now).await?;
    tracing::info!(silence = silence.id, member = %member.name, "Silence created.");
    Ok((
        StatusCode::CREATED,
        Json(json!({"silence": SilenceView::new(silence, now)})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only silences in force now.
    #[serde(default)]
    active: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    _member: Member,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = super::query(q)?;
    let now = state.clock.now();
    let active_at = q.active.unwrap_or(false).then_some(now);
    let silences: Vec<SilenceView> = state
        .store
        .silences(active_at)
        .await?
        .into_iter()
        .map(|s| SilenceView::new(s, now))
        .collect();
    Ok(Json(json!({"silences": silences})))
}

fn silence_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("invalid_id", format!("`{text}` is not a silence id")))
}

async fn show(
    State(state): State<AppState>,
    _member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = silence_id(&id)?;
    let now = state.clock.now();
    let silence = state
        .store
        .silences(None)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no silence {id}")))?;
    Ok(Json(json!({"silence": SilenceView::new(silence, now)})))
}

/// Ends a silence now (`DELETE /api/silences/{id}` or `POST /api/silences/{id}/expire`), recording who.
async fn expire(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Editor)?;
    let id = silence_id(&id)?;
    let now = state.clock.now();
    let silence = match state.store.expire_silence(id, &member.name, now).await {
        Err(StoreError::NotFound) => return Err(ApiError::NotFound(format!("no silence {id}"))),
        other => other?,
    };
    tracing::info!(silence = id, member = %member.name, "Silence expired.");
    Ok(Json(json!({"silence": SilenceView::new(silence, now)})))
}
