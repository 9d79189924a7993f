//! The dead journal, for admins: accepted alerts that could not be decoded or applied and were moved
//! aside so the rest went on. `GET /api/journal/dead` lists them verbatim with why;
//! `POST /api/journal/dead/{id}/retry` puts one back at the end of the journal (after an upgrade or a
//! fix); `DELETE /api/journal/dead/{id}` drops it. Both resolve the system ticket that named it.

use axum::extract::{Path, Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::query;
use crate::config::Role;
use crate::error::ApiError;
use crate::state::{AppState, Member};
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/journal/dead", get(list))
        .route("/api/journal/dead/{id}/retry", post(retry))
        .route("/api/journal/dead/{id}", delete(remove))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    member: Member,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Admin)?;
    let limit = query(q)?.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state.store.dead_journal(limit).await?;
    Ok(Json(json!({"dead": rows})))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::bad_request("invalid_id", format!("`{id}` is not a dead journal id"))
    })
}

fn not_found(id: i64) -> impl FnOnce(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no dead journal row {id}")),
        other => other.into(),
    }
}

async fn retry(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Admin)?;
    let id = parse_id(&id)?;
    let journal_id = state
        .store
        .retry_dead_journal(id, &member.name, state.clock.now())
        .await
        .map_err(not_found(id))?;
    tracing::info!(dead = id, journal_id, member = %member.name, "Dead journal row put back in the journal.");
    // The row and the notice resolving its ticket.
    state.journal.appended(2);
    Ok(Json(json!({"retried": id, "journal_id": journal_id})))
}

async fn remove(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Admin)?;
    let id = parse_id(&id)?;
    state
        .store
        .delete_dead_journal(id, &member.name, state.clock.now())
        .await
        .map_err(not_found(id))?;
    tracing::info!(dead = id, member = %member.name, "Dead journal row deleted.");
    state.journal.appended(1);
    Ok(Json(json!({"deleted": id})))
}
