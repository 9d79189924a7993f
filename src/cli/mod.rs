//! Command-line interface: `tocsin serve`, `tocsin check` and `tocsin plugin ...`.

mod plugin;

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
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
        Command::Plugin(cmd) => plugin::run(cmd),
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
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

fn serve(path: &Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    crate::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_async(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tocsin stopped with an error.");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_async(config: config::Config) -> Result<(), String> {
    let listen = config.listen.0;
    let app = App::build(config, Arc::new(SystemClock))
        .await
        .map_err(|e| format!("cannot open storage: {e}"))?;
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
