//! Reloading the config's plugins, chains and members' credentials, for `POST /-/reload` and SIGHUP.
//!
//! The config file is read and validated again; plugins are compiled off the hot path and swapped in
//! atomically (a batch in flight finishes on the registry it started with). A plugin that fails to load
//! keeps its previous version running, and the failure is reported. Members' tokens and roles are
//! swapped in too ([`crate::state::Members`]), so a removed member or a changed token is refused at
//! once, by the API, browser sessions and ChatOps. Other config changes (listen address, storage,
//! sources' kinds, auth and rate limits, members' emails, handles and notify settings, rooms and
//! routes) take effect at the next restart; [`MEMBERS_NOTE`] says so in the answer.

use crate::config;
use crate::pipeline::plugin_alert;
use crate::plugin::ReloadReport;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("tocsin was started without a config file, so there is nothing to reload")]
    NoConfigFile,
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// What a reload does with `members:`, for the answer to `POST /-/reload`.
pub const MEMBERS_NOTE: &str =
    "tokens and roles reloaded (removed members and old tokens are refused now); \
     emails, handles and notify settings take effect at the next restart";

/// Re-reads the config file and reloads plugins, chains and members' tokens and roles.
pub async fn reload(state: &AppState) -> Result<ReloadReport, ReloadError> {
    let path = state.config_path.clone().ok_or(ReloadError::NoConfigFile)?;
    let config = tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .map_err(|e| crate::store::StoreError::Other(e.to_string()))??;
    let report = state.plugins.reload(&config).await;
    let members = state.members.replace(&config);
    tracing::info!(members, "Reloaded members' tokens and roles.");
    // Plugins switched back on: resolve their system tickets.
    let now = state.clock.now();
    let resolved: Vec<_> = report
        .re_enabled
        .iter()
        .map(|p| plugin_alert(p, false, "reloaded", now))
        .collect();
    if !resolved.is_empty() {
        state.store.append_journal(&resolved).await?;
        state.journal.appended(resolved.len() as u64);
    }
    tracing::info!(
        loaded = ?report.loaded,
        unchanged = ?report.unchanged,
        failed = ?report.failed,
        "Reloaded plugins."
    );
    Ok(report)
}
