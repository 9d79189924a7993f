//! Reloading the config's plugins and chains, for `POST /-/reload` and SIGHUP.
//!
//! The config file is read and validated again; plugins are compiled off the hot path and swapped in
//! atomically (a batch in flight finishes on the registry it started with). A plugin that fails to load
//! keeps its previous version running, and the failure is reported. Other config changes (listen
//! address, storage, sources' kinds, auth and rate limits, members, rooms and routes) take effect at the
//! next restart.

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

/// Re-reads the config file and reloads plugins and chains.
pub async fn reload(state: &AppState) -> Result<ReloadReport, ReloadError> {
    let path = state.config_path.clone().ok_or(ReloadError::NoConfigFile)?;
    let config = tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .map_err(|e| crate::store::StoreError::Other(e.to_string()))??;
    let report = state.plugins.reload(&config).await;
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
