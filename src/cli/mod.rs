//! Command-line interface: `tocsin serve`, `tocsin check` and `tocsin plugin ...`.

mod event_input;
mod migrate;
mod plugin;
mod plugin_chain;
mod plugin_lang;
mod plugin_test;
mod plugin_watch;
mod replay;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config;

#[derive(Debug, Parser)]
#[command(
    name = "tocsin",
    version,
    about = "Routes monitoring alerts to people."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file.
        #[arg(long, env = "TOCSIN_CONFIG", default_value = "config/tocsin.yaml")]
        config: PathBuf,
    },
    /// Validate a config file and print every problem with its key path; exits 1 if there are any.
    Check {
        #[arg(long, env = "TOCSIN_CONFIG", default_value = "config/tocsin.yaml")]
        config: PathBuf,
    },
    /// Tools for plugin authors.
    // Boxed: `plugin test` has many flags, so the variant is much larger than the others.
    #[command(subcommand)]
    Plugin(Box<plugin::PluginCommand>),
    /// Bring the database's schema up to date and exit (`--config`), or copy a SQLite install into an
    /// empty PostgreSQL database (`--from sqlite://PATH --to postgres://...`).
    Migrate {
        /// Config file whose `storage` to migrate.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        config: Option<PathBuf>,
        /// The SQLite database to copy from.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// The empty PostgreSQL database to copy into (its password from the URL or PGPASSWORD).
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(config),
        Command::Plugin(cmd) => plugin::run(*cmd),
        Command::Migrate { config, from, to } => migrate::run(config, from, to),
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            // Plugins must compile and match tocsin's interface, or `serve` would refuse to start.
            if !c.plugins.is_empty() {
                let engine = match crate::plugin::Engine::new(None) {
                    Ok(e) => e,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                };
                let mut bad = 0;
                for (name, p) in &c.plugins {
                    if let Err(e) = engine.compile(Path::new(&p.path.0)) {
                        eprintln!("plugins.{name}.path: {e}");
                        bad += 1;
                    }
                }
                if bad > 0 {
                    return ExitCode::FAILURE;
                }
            }
            // A config can be valid and still unsafe to deploy: secrets from examples or for
            // development, or too short to resist guessing.
            let weak = config::weak_secrets(path);
            if !weak.is_empty() {
                for w in &weak {
                    eprintln!("{}: {}", path.display(), w.problem());
                }
                return ExitCode::FAILURE;
            }
            println!(
                "{}: ok ({} sources, {} members)",
                path.display(),
                c.sources.len(),
                c.members.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: PathBuf) -> ExitCode {
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    crate::telemetry::init(&config.log);
    if !guard_secrets(&config, &path) {
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_async(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tocsin stopped with an error.");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Development and example credentials are for this machine only: refused unless tocsin listens on
/// loopback, and then said in the first log line. Short secrets and passwords written into the storage
/// URL are logged as a warning (`tocsin check` refuses them).
fn guard_secrets(config: &config::Config, path: &std::path::Path) -> bool {
    use config::secrets::Weakness;
    let weak = config::weak_secrets(path);
    let public: Vec<&str> = weak
        .iter()
        .filter(|w| matches!(w.weakness, Weakness::Development | Weakness::Example))
        .map(|w| w.path.as_str())
        .collect();
    if !public.is_empty() {
        let keys = public.join(", ");
        if !config::secrets::is_loopback(&config.listen.0) {
            tracing::error!(%keys, listen = %config.listen.0, "Development or example credentials are in use and tocsin would listen beyond this machine; refusing to start. Set real secrets from the environment.");
            eprintln!("error: development or example credentials ({keys}) may only be used with a loopback `listen`; set real secrets from the environment");
            return false;
        }
        tracing::warn!(%keys, "DEVELOPMENT CREDENTIALS in use: listening on loopback only. Set real secrets from the environment before exposing tocsin.");
    }
    for w in weak
        .iter()
        .filter(|w| matches!(w.weakness, Weakness::Short(_) | Weakness::Written))
    {
        tracing::warn!(key = %w.path, "{}", w.problem().message);
    }
    true
}

async fn serve_async(config: config::Config, path: PathBuf) -> Result<(), String> {
    let listen = config.listen.0;
    let app = App::build(config, Some(path), Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    reload_on_sighup(app.clone()).map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    // Register the signal handlers before announcing that we listen: a SIGTERM sent right after the
    // announcement must reach our handler, not the default action (which kills the process).
    let shutdown = shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "tocsin is listening.");
    app.run(listener, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("tocsin stopped cleanly.");
    Ok(())
}

/// SIGHUP reloads plugins and chains from the config file, as `POST /-/reload` does.
#[cfg(unix)]
fn reload_on_sighup(app: App) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading plugins.");
            match app.reload().await {
                Ok(r) if r.failed.is_empty() => {}
                Ok(r) => {
                    tracing::error!(failed = ?r.failed, "Some plugins failed to load; their previous versions keep running.")
                }
                Err(e) => tracing::error!(error = %e, "Reload failed; nothing changed."),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(_app: App) -> std::io::Result<()> {
    Ok(())
}

/// Installs SIGINT and SIGTERM handlers now; the returned future completes when either arrives.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("Shutdown signal received.");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Shutdown signal received.");
    })
}
