//! Wiring: builds the store, state, router and processor from a config, and runs them until shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::response::IntoResponse;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use std::path::PathBuf;

use crate::chatops::ChatOps;
use crate::clock::Clock;
use crate::cluster::{Cluster, Mode};
use crate::config::{Config, StorageUrl};
use crate::error::ApiError;
use crate::inbound::Inbound;
use crate::mailer::{MailSettings, MailWorker, Tokens};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::pipeline::{Journal, Processor};
use crate::plugin::Plugins;
use crate::presence::PresencePoller;
use crate::state::{AppState, Services};
use crate::store::{self, Store, StoreError};

/// Why tocsin could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot open storage: {0}")]
    Store(#[from] StoreError),
    #[error("plugins: {0}")]
    Plugins(String),
    #[error("{0}")]
    Rooms(String),
    #[error("email: {0}")]
    Email(String),
}

/// A built tocsin: everything it needs, not yet serving.
#[derive(Debug, Clone)]
pub struct App {
    pub state: AppState,
    pub processor: Processor,
    pub outbox: Arc<Outbox>,
    pub presence: Arc<PresencePoller>,
    /// Sends email to members who are not online (with an `email:` block).
    pub mailer: Option<Arc<MailWorker>>,
    /// Takes replies by email (with `email.inbound`).
    pub inbound: Option<Arc<Inbound>>,
    /// What only the ingest routes keep: SNS certificates, replay memories.
    pub ingest: Arc<crate::ingest::Ingest>,
    /// Runs commands typed in chat: the Slack and Mattermost routes and the Matrix bots share it.
    pub chatops: Arc<ChatOps>,
    /// Matrix bots reading `chatops.matrix.rooms` (one per account); tests drive their `step`.
    pub matrix_bots: Vec<Arc<crate::chatops::matrix::MatrixBot>>,
    /// This instance among those sharing the database: heartbeat and leases. The workers' loops run
    /// only the work whose lease it holds (tests driving `step` directly bypass it).
    pub cluster: Arc<Cluster>,
}

impl App {
    /// Opens the store named in the config, loads the plugins and prepares everything. Does not bind
    /// or spawn. `config_path` is the file the config came from, re-read on reload.
    pub async fn build(
        config: Config,
        config_path: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<App, BuildError> {
        let url = StorageUrl::parse(&config.storage.0).map_err(StoreError::Other)?;
        let store = store::open(&url).await?;
        Self::with_store(config, config_path, store, clock).await
    }

    /// Like [`App::build`] with a store the caller opened.
    pub async fn with_store(
        config: Config,
        config_path: Option<PathBuf>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<App, BuildError> {
        // Every connection is a descriptor: take all the system allows before sizing the caps on it.
        let nofile = crate::listen::raise_nofile_limit();
        tracing::info!(
            open_files = nofile.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
            max_connections = config.http.max_connections(nofile),
            "Open-file limit."
        );
        let plugins = load_plugins(&config).await?;
        let stats = store.stats().await?;
        let journal = Arc::new(Journal::new(stats.journal_backlog, stats.journal_bytes));
        let metrics = Arc::new(Metrics::default());
        let outbox = Arc::new(
            Outbox::new(
                &config,
                Arc::clone(&store),
                Arc::clone(&clock),
                Arc::clone(&metrics),
                Arc::new(Notify::new()),
            )
            .map_err(BuildError::Rooms)?,
        );
        let presence = Arc::new(PresencePoller::new(
            &config,
            outbox.sinks(),
            Arc::clone(&store),
            Arc::clone(&clock),
        ));
        let mailer = mail_worker(&config, &store, &clock, &metrics)?;
        let inbound = Inbound::from_config(&config, Arc::clone(&store), Arc::clone(&clock));
        let processor = Processor::new(
            Arc::clone(&store),
            config.policy(),
            Arc::clone(&metrics),
            Arc::clone(&journal),
            Arc::clone(&clock),
            Arc::clone(&plugins),
            Arc::clone(&outbox),
        )
        .with_retention(config.tickets.retention());
        let mode = match StorageUrl::parse(&config.storage.0) {
            Ok(StorageUrl::Postgres(_)) => Mode::Shared,
            _ => Mode::Solo,
        };
        let cluster = Arc::new(Cluster::new(
            mode,
            config.cluster.lease_ttl(),
            Arc::clone(&store),
        ));
        let services = Services {
            store,
            clock,
            metrics,
            journal,
            plugins,
            outbox: Arc::clone(&outbox),
            cluster: Arc::clone(&cluster),
        };
        let state = AppState::new(config, services, config_path);
        let chatops = Arc::new(ChatOps::new(
            &state.config,
            Arc::clone(&state.store),
            Arc::clone(&state.clock),
            Arc::clone(&state.outbox),
            Arc::clone(&state.members),
        ));
        let matrix_bots = crate::chatops::matrix::MatrixBot::from_config(
            &state.config,
            &chatops,
            &state.store,
            &state.clock,
            &state.outbox,
        )
        .map_err(BuildError::Rooms)?;
        want_leases(
            &cluster,
            &state.config,
            &matrix_bots,
            mailer.is_some(),
            presence.polls(),
        );
        Ok(App {
            cluster,
            state,
            processor,
            outbox,
            presence,
            mailer,
            inbound,
            ingest: Arc::default(),
            chatops,
            matrix_bots,
        })
    }

    /// Reloads plugins and chains from the config file (as `POST /-/reload` and SIGHUP do).
    pub async fn reload(&self) -> Result<crate::plugin::ReloadReport, crate::reload::ReloadError> {
        crate::reload::reload(&self.state).await
    }

    /// All HTTP routes.
    pub fn router(&self) -> Router {
        let request_timeout = self.state.config.http.request_timeout();
        Router::new()
            .merge(crate::ingest::router(
                self.state.clone(),
                Arc::clone(&self.ingest),
            ))
            .merge(crate::api::router())
            .merge(crate::ops::router())
            .merge(crate::chatops::router().with_state(Arc::clone(&self.chatops)))
            .merge(crate::web::router())
            .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
            .method_not_allowed_fallback(|method: axum::http::Method| async move {
                ApiError::MethodNotAllowed(format!("this endpoint does not take {method}"))
            })
            // Until the response starts: bounds slowly sent bodies (a live stream's body is not
            // covered: it ends with its client, the idle timeout or shutdown).
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                    match tokio::time::timeout(request_timeout, next.run(req)).await {
                        Ok(response) => response,
                        Err(_) => ApiError::Timeout(format!(
                            "the request was not complete within {} (http.request_timeout)",
                            humantime::format_duration(request_timeout)
                        ))
                        .into_response(),
                    }
                },
            ))
            // Handlers log their own failures (ApiError), once; the trace layer's own line for every 5xx
            // would double each of them, and flood the log with 503s while the database is away.
            .layer(
                TraceLayer::new_for_http()
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .with_state(self.state.clone())
    }

    /// The listener's limits, from the config and the open-file limit.
    pub fn limits(&self) -> crate::listen::Limits {
        crate::listen::Limits::from_config(&self.state.config, crate::listen::nofile_limit())
    }

    /// Serves on `listener` (within [`App::limits`]) and runs the processor until `shutdown`
    /// completes. Then stops accepting, lets in-flight requests finish, lets the processor finish
    /// the journal, and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let cluster = Arc::clone(&self.cluster);
        if cluster.address().is_empty() {
            cluster.set_address(listener.local_addr()?.to_string());
        }
        // The leases are let go only once the workers below have stopped (`work_done`).
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        tracing::info!(
            instance = %cluster.id,
            mode = ?cluster.mode,
            lease_ttl = ?cluster.ttl,
            "Joining the cluster."
        );
        let keeper = tokio::spawn(Arc::clone(&cluster).run(stop_rx.clone(), async move {
            let _ = done_rx.await;
        }));
        let worker = tokio::spawn(
            self.processor
                .clone()
                .run(Arc::clone(&cluster), stop_rx.clone()),
        );
        let sender =
            tokio::spawn(Arc::clone(&self.outbox).run(Arc::clone(&cluster), stop_rx.clone()));
        let poller =
            tokio::spawn(Arc::clone(&self.presence).run(Arc::clone(&cluster), stop_rx.clone()));
        for bot in &self.matrix_bots {
            tokio::spawn(Arc::clone(bot).run(Arc::clone(&cluster), stop_rx.clone()));
        }
        let mailer = self
            .mailer
            .clone()
            .map(|m| tokio::spawn(m.run(Arc::clone(&cluster), stop_rx.clone())));
        if let (Some(inbound), Some(listen)) = (
            self.inbound.clone(),
            self.state
                .config
                .email
                .as_ref()
                .and_then(|e| e.inbound.as_ref())
                .map(|i| i.listen.0),
        ) {
            let smtp = TcpListener::bind(listen).await?;
            tracing::info!(addr = %smtp.local_addr()?, "Taking replies by email.");
            tokio::spawn(inbound.serve(smtp, stop_rx));
        }
        let router = self.router();
        let limits = self.limits();
        tracing::info!(
            max_connections = limits.max_connections,
            header_timeout = ?limits.header_timeout,
            idle_timeout = ?limits.idle_timeout,
            "HTTP limits."
        );
        let closing = self.state.closing.clone();
        let shutdown = async move {
            shutdown.await;
            // Live streams end now; the browser reconnects (to another instance, or after the restart).
            closing.send_replace(true);
        };
        let served = crate::listen::serve(listener, router, limits, shutdown).await;
        tracing::info!("Stopped accepting requests; finishing in-flight work.");
        let _ = stop_tx.send(true);
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "The processor task failed.");
        }
        poller.abort();
        if let Some(m) = mailer {
            let _ = m.await;
        }
        if let Err(e) = sender.await {
            tracing::error!(error = %e, "The outbox task failed.");
        }
        // Work stopped: let the leases go so the other instances take over at once.
        let _ = done_tx.send(());
        let _ = keeper.await;
        served
    }
}

/// The leases of the work this instance's config gives it.
fn want_leases(
    cluster: &Cluster,
    config: &Config,
    bots: &[Arc<crate::chatops::matrix::MatrixBot>],
    mails: bool,
    polls: bool,
) {
    if let Some(a) = &config.cluster.advertise {
        cluster.set_address(a.0.clone());
    }
    let mut wanted = vec![
        crate::cluster::JOURNAL.to_string(),
        crate::cluster::SWEEPS.to_string(),
    ];
    wanted.extend(config.rooms.keys().map(|r| crate::cluster::outbox_lease(r)));
    if mails {
        wanted.push(crate::cluster::MAILER.to_string());
    }
    if polls {
        wanted.push(crate::cluster::PRESENCE.to_string());
    }
    wanted.extend(bots.iter().map(|b| b.lease()));
    cluster.want(wanted);
}

/// The mailer, if the config has an `email:` block.
fn mail_worker(
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> Result<Option<Arc<MailWorker>>, BuildError> {
    let (Some(email), Some(settings)) = (&config.email, MailSettings::from_config(config)) else {
        return Ok(None);
    };
    let transport = crate::sinks::email::SmtpMailer::new(&crate::sinks::email::SmtpSettings {
        url: email.smtp.0.clone(),
        username: email.username.as_ref().map(|u| u.0.clone()),
        password: email.password.as_ref().map(|p| p.expose().to_string()),
        from: email.from.0.clone(),
        timeout: email.timeout.0 .0,
        pool_size: 4,
    })
    .map_err(BuildError::Email)?;
    Ok(Some(Arc::new(MailWorker::new(
        settings,
        Tokens::new(email.secret.expose()),
        Arc::new(transport),
        Arc::clone(store),
        Arc::clone(clock),
        Arc::clone(metrics),
    ))))
}

/// Starts the plugin engine and loads the config's plugins. At startup a plugin that fails to load is an
/// error (there is no previous version to keep running); `tocsin check` reports the same problem.
async fn load_plugins(config: &Config) -> Result<Arc<Plugins>, BuildError> {
    let cache = PathBuf::from(&config.plugin_cache.0);
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = std::fs::create_dir_all(&cache) {
            tracing::warn!(dir = %cache.display(), error = %e, "Cannot create the plugin cache; compiling without it.");
        }
        // wasmtime wants an absolute cache directory.
        let cache = std::fs::canonicalize(&cache).ok();
        let plugins =
            Plugins::new(cache.as_deref()).map_err(|e| BuildError::Plugins(e.to_string()))?;
        let report = plugins.reload_blocking(&config);
        if let Some((name, error)) = report.failed.first() {
            return Err(BuildError::Plugins(format!("{name}: {error}")));
        }
        Ok(Arc::new(plugins))
    })
    .await
    .map_err(|e| BuildError::Plugins(e.to_string()))?
}
