//! Wiring: builds the store, state, router and processor from a config, and runs them until shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::{Config, StorageUrl};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pipeline::{Journal, Processor};
use crate::state::AppState;
use crate::store::{self, Store, StoreError};

/// A built tocsin: everything it needs, not yet serving.
#[derive(Debug, Clone)]
pub struct App {
    pub state: AppState,
    pub processor: Processor,
}

impl App {
    /// Opens the store named in the config and prepares everything. Does not bind or spawn.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<App, StoreError> {
        let url = StorageUrl::parse(&config.storage.0).map_err(StoreError::Other)?;
        let store = store::open(&url).await?;
        Self::with_store(config, store, clock).await
    }

    /// Like [`App::build`] with a store the caller opened (tests share one between restarts).
    pub async fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StoreError> {
        let backlog = store.stats().await?.journal_backlog;
        let journal = Arc::new(Journal::new(backlog));
        let metrics = Arc::new(Metrics::default());
        let processor = Processor::new(
            Arc::clone(&store),
            config.policy(),
            Arc::clone(&metrics),
            Arc::clone(&journal),
            Arc::clone(&clock),
        );
        let state = AppState::new(config, store, clock, metrics, journal);
        Ok(App { state, processor })
    }

    /// All HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(crate::ingest::router())
            .merge(crate::api::router())
            .merge(crate::ops::router())
            .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
            .layer(TraceLayer::new_for_http())
            .with_state(self.state.clone())
    }

    /// Serves on `listener` and runs the processor until `shutdown` completes. Then stops accepting,
    /// lets in-flight requests finish, lets the processor finish the journal, and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(self.processor.clone().run(stop_rx));
        let router = self.router();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        tracing::info!("Stopped accepting requests; finishing in-flight work.");
        let _ = stop_tx.send(true);
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "The processor task failed.");
        }
        served
    }
}
