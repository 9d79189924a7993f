//! `tocsin migrate`: bring a database's schema up to date without serving (`--config FILE`), or move an
//! install from SQLite to PostgreSQL (`--from sqlite://old.db --to postgres://...`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, StorageUrl};

pub fn run(config: Option<PathBuf>, from: Option<String>, to: Option<String>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (config, from, to) {
        (Some(path), None, None) => runtime.block_on(schema(path)),
        (None, Some(from), Some(to)) => runtime.block_on(copy(&from, &to)),
        _ => Err(
            "use either `--config FILE` or both `--from sqlite://PATH --to postgres://...`".into(),
        ),
    };
    match result {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn schema(path: PathBuf) -> Result<String, String> {
    let config = config::load(&path).map_err(|e| e.to_string())?;
    let url = StorageUrl::parse(&config.storage.0)?;
    crate::store::open(&url).await.map_err(|e| e.to_string())?;
    Ok(format!("{}: the schema is up to date.", url.shown()))
}

async fn copy(from: &str, to: &str) -> Result<String, String> {
    let StorageUrl::Sqlite(path) = StorageUrl::parse(from)? else {
        return Err("--from must be a sqlite:// URL".into());
    };
    let StorageUrl::Postgres(url) = StorageUrl::parse(to)? else {
        return Err("--to must be a postgres:// URL".into());
    };
    let copied = crate::store::postgres::import::from_sqlite(&path, &url)
        .await
        .map_err(|e| e.to_string())?;
    let mut said = format!(
        "Copied {} into {}:",
        path.display(),
        crate::store::postgres::redact(&url)
    );
    for (table, n) in copied {
        said.push_str(&format!("\n  {table}: {n}"));
    }
    Ok(said)
}
