//! The storage backends a bench runs on, shared by `benches/ingest.rs` and `benches/delivery.rs`
//! (each includes this file with `#[path = "support/storage.rs"] mod storage;`).
//!
//! `BENCH_STORAGE` is a comma-separated list: `sqlite` is a fresh SQLite file in the run's temp dir,
//! a `postgres://...` (or `postgresql://`) URL names a server on which every run gets a fresh database,
//! dropped afterwards. Unset, the list is `sqlite` and the server named by `TOCSIN_TEST_POSTGRES` or
//! else `postgres://postgres@127.0.0.1:5432/test`, if that accepts a connection (else SQLite alone, and
//! the bench says so). Fresh databases are made as the tests make theirs (`tests/common/pg.rs`, whose
//! naming they share, so a run killed halfway leaves a database the next test run drops).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[allow(dead_code)] // the benches use only the database helpers
#[path = "../../tests/common/pg.rs"]
mod pg;

/// One backend to run a bench on.
pub enum Backend {
    Sqlite,
    /// A server's admin URL (a user that may create databases).
    Postgres(String),
}

impl Backend {
    /// `sqlite`, or `postgres <host:port>` (the URL's authority without user and password).
    pub fn label(&self) -> String {
        match self {
            Backend::Sqlite => "sqlite".into(),
            Backend::Postgres(url) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let authority = rest.split(['/', '?']).next().unwrap_or_default();
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("postgres {host}")
            }
        }
    }

    /// A fresh store for one run: a SQLite file in `dir`, or a new database on the server.
    pub fn fresh(&self, dir: &Path) -> Fresh {
        match self {
            Backend::Sqlite => Fresh {
                url: format!("sqlite://{}/bench.db", dir.display()),
                database: None,
            },
            Backend::Postgres(admin) => {
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                static LEFTOVERS: Once = Once::new();
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let name = format!(
                    "{}{secs}_{}_{}",
                    pg::PREFIX,
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                pg::on_own_thread(|| {
                    let mut client = postgres::Client::connect(admin, postgres::NoTls)
                        .unwrap_or_else(|e| panic!("no PostgreSQL at {admin}: {e}"));
                    LEFTOVERS.call_once(|| {
                        pg::drop_leftover_databases(&mut client);
                    });
                    client
                        .batch_execute(&format!(
                            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
                             LC_COLLATE 'C' LC_CTYPE 'C'"
                        ))
                        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin}: {e}"));
                });
                Fresh {
                    url: pg::with_database(admin, &name),
                    database: Some((admin.clone(), name)),
                }
            }
        }
    }
}

/// A store made for one run; the `storage:` line of the config is [`Fresh::config_line`]. Dropping it
/// drops the database (stop the server first).
pub struct Fresh {
    pub url: String,
    database: Option<(String, String)>,
}

impl Fresh {
    pub fn config_line(&self) -> String {
        format!("storage: '{}'\n", self.url)
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.database {
            let dropped = pg::on_own_thread(|| {
                postgres::Client::connect(admin, postgres::NoTls)?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            });
            if let Err(e) = dropped {
                eprintln!("warning: could not drop bench database {name}: {e}");
            }
        }
    }
}

/// The backends named by `BENCH_STORAGE`, or the default (see the module docs).
pub fn backends() -> Vec<Backend> {
    if let Ok(list) = std::env::var("BENCH_STORAGE") {
        let list: Vec<Backend> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "sqlite" => Backend::Sqlite,
                url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Backend::Postgres(url.to_string())
                }
                other => {
                    panic!("BENCH_STORAGE: {other:?} is neither `sqlite` nor a postgres:// URL")
                }
            })
            .collect();
        assert!(!list.is_empty(), "BENCH_STORAGE names no backend");
        return list;
    }
    let admin = match std::env::var("TOCSIN_TEST_POSTGRES") {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
        _ => pg::DEFAULT_ADMIN_URL.to_string(),
    };
    match reachable(&admin) {
        Ok(()) => vec![Backend::Sqlite, Backend::Postgres(admin)],
        Err(e) => {
            println!(
                "no PostgreSQL at {} ({e}): SQLite alone (BENCH_STORAGE=sqlite,postgres://... to choose)",
                Backend::Postgres(admin.clone()).label()
            );
            vec![Backend::Sqlite]
        }
    }
}

fn reachable(admin: &str) -> Result<(), String> {
    let mut config: postgres::Config = admin.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(2));
    pg::on_own_thread(|| config.connect(postgres::NoTls).map(drop)).map_err(|e| e.to_string())
}

/// One column of the final table.
pub struct Column {
    pub name: &'static str,
    /// Digits after the point.
    pub decimals: usize,
}

/// Prints backend × figures side by side, then each other backend's figures divided by the first
/// backend's (PostgreSQL / SQLite with the default list).
pub fn print_table(title: &str, columns: &[Column], rows: &[(String, Vec<f64>)]) {
    let kind = |label: &str| label.split(' ').next().unwrap_or(label).to_string();
    let mut lines: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|(label, values)| {
            let cells = columns
                .iter()
                .zip(values)
                .map(|(c, v)| format!("{v:.prec$}", prec = c.decimals))
                .collect();
            (label.clone(), cells)
        })
        .collect();
    if let Some((base_label, base)) = rows.first() {
        for (label, values) in &rows[1..] {
            let ratios = values
                .iter()
                .zip(base)
                .map(|(v, b)| format!("{:.2}", v / b));
            lines.push((
                format!("{} / {}", kind(label), kind(base_label)),
                ratios.collect(),
            ));
        }
    }
    let first = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .chain(["backend".len()])
        .max()
        .unwrap_or(0);
    println!("\n{title}");
    print!("{:<first$}", "backend");
    for c in columns {
        print!("  {:>9}", c.name);
    }
    println!();
    for (label, cells) in &lines {
        print!("{label:<first$}");
        for (c, cell) in columns.iter().zip(cells) {
            print!("  {cell:>w$}", w = c.name.chars().count().max(9));
        }
        println!();
    }
}

/// The server's `tocsin_journal_backlog` gauge (accepted alerts not yet applied to tickets), from
/// `/metrics`; `None` while the store cannot answer.
pub async fn journal_backlog(client: &reqwest::Client, addr: &str) -> Option<u64> {
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("tocsin_journal_backlog "))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits until every accepted alert is applied (the backlog gauge reads 0).
pub async fn wait_applied(client: &reqwest::Client, addr: &str) {
    while journal_backlog(client, addr).await != Some(0) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
