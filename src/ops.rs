//! Operations endpoints: `/healthz` (the process answers), `/readyz` (tocsin can do its work), `/metrics`.
//! Alertmanager's names for the first two, `/-/healthy` and `/-/ready` (bare and under
//! `/ingest/<source>`), answer the same, for clients that check an Alertmanager's health.
//!
//! `/readyz` is for load balancers and orchestrators, and anyone who reaches the port may ask it, so it
//! says only ready or not and a fixed reason: the detail (errors, ages) is in `/metrics` and the log.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::ingest::secrets_match;
use crate::state::AppState;
use crate::store::StoreHealth;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/-/healthy", get(healthz))
        .route("/-/ready", get(readyz))
        .route("/ingest/{source}/-/healthy", get(healthz))
        .route("/ingest/{source}/-/ready", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Whether tocsin can do its work, with the store's health when it answered. The reason is one of a
/// few fixed phrases, safe to show anyone.
pub async fn readiness(state: &AppState) -> (Result<(), &'static str>, Option<StoreHealth>) {
    let health = match state.store.health().await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(error = %e, "Not ready: the store does not answer.");
            let reason = match e {
                crate::store::StoreError::Unavailable(_) => "the database cannot be reached",
                _ => "the store does not answer",
            };
            return (Err(reason), None);
        }
    };
    let verdict = if let Some(problem) = &health.problem {
        tracing::debug!(%problem, "Not ready.");
        Err(problem.reason())
    } else if !state.cluster.in_contact() {
        Err("the database did not answer a heartbeat within cluster.lease_ttl")
    } else if health
        .oldest_pending
        .is_some_and(|t| state.clock.now().since(t) > state.config.ingest.stall_after.0 .0)
    {
        Err("processing is stalled: the oldest accepted alert waits longer than ingest.stall_after")
    } else {
        Ok(())
    };
    (verdict, Some(health))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match readiness(&state).await.0 {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "not_ready", "detail": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(secret) = &state.config.metrics.bearer {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !secrets_match(given.trim().as_bytes(), secret.expose().as_bytes()) {
            return ApiError::Unauthorized {
                challenge: "Bearer",
                detail: "/metrics needs Authorization: Bearer <metrics.bearer>".into(),
            }
            .into_response();
        }
    }
    // A store that cannot answer still lets the process metrics out; the gauges are then missing.
    let stats = state.store.stats().await.ok();
    let (ready, health) = readiness(&state).await;
    let mut text = state.metrics.render(stats.as_ref());
    crate::metrics::render_health(&mut text, ready.is_ok(), health.as_ref(), state.clock.now());
    let cluster = &state.cluster;
    crate::metrics::render_cluster(
        &mut text,
        cluster.live(),
        &cluster.wanted(),
        &cluster.held(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
