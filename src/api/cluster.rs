//! `GET /api/cluster`, for admins: the instances sharing the database (live or gone), who holds which
//! lease, and each room's backlog (`cluster::ClusterView`; the web UI's admin page shows the same).

use crate::cluster::ClusterView;
use crate::config::Role;
use crate::error::ApiError;
use crate::state::{AppState, Member};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/cluster", get(show))
}

async fn show(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<ClusterView>, ApiError> {
    member.require(Role::Admin)?;
    Ok(Json(state.cluster.view().await?))
}
