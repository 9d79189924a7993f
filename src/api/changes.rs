//! `GET /api/changes`: change events (PagerDuty's Change Events API, `domain::change`), newest first,
//! for any member. `source` filters by tocsin source; `limit` (1 to 500, default 50) and `cursor` page
//! like the ticket list (`next_cursor` is null on the last page).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::query;
use crate::error::{check_text, ApiError, MAX_PARAM};
use crate::state::{AppState, Member};
use crate::store::ChangeFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/changes", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    source: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

const MAX_PAGE: usize = 500;

fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("c:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave out")
        })
}

async fn list(
    State(state): State<AppState>,
    _member: Member,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = query(q)?;
    for (name, value) in [("source", &q.source), ("cursor", &q.cursor)] {
        if let Some(v) = value {
            check_text(name, v, MAX_PARAM)?;
        }
    }
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = ChangeFilter {
        source: q.source.filter(|s| !s.is_empty()),
        // One extra row tells whether there is a next page.
        limit: limit + 1,
        before_id: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let mut changes = state.store.changes(&filter).await?;
    let next_cursor = if changes.len() > limit {
        changes.truncate(limit);
        changes.last().map(|c| encode_cursor(c.id))
    } else {
        None
    };
    Ok(Json(
        json!({"changes": changes, "next_cursor": next_cursor}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(
            decode_cursor("bjo0Mg").is_err(),
            "a ticket cursor is not a change cursor"
        );
        assert!(decode_cursor("!!").is_err());
    }
}
