//! The PostgreSQL backend: a pool of connections, migrations recorded in the database, live readers
//! woken through LISTEN/NOTIFY, and the same orchestration as SQLite over [`PgTx`].
//!
//! Driver: `tokio-postgres`, through its synchronous face `postgres` for the orchestration in
//! `store/ops/` (synchronous, see `store/tx.rs`): a transaction runs on its connection's own thread,
//! whose client drives the connection itself, so each statement is one socket round trip with no hop
//! between threads (`pool.rs` keeps the connections, their threads and their prepared statements).
//! Migrations, the LISTEN connection and `tocsin migrate --from` use `tokio-postgres` directly. The SQL is split by concern like SQLite's.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

mod changes;
mod emails;
mod feed;
pub mod import;
mod journal;
mod leases;
mod listen;
mod members;
mod openings;
#[cfg(test)]
mod order_tests;
mod outbox;
mod plugin_kv;
mod pool;
mod rows;
pub(crate) mod search;
mod silences;
mod tickets;
mod tls;
#[cfg(test)]
mod tuning_tests;

use super::engine::{Backend, Durability, Engine};
use super::tx::Tx;
use super::{Result, StoreError, StoreProblem};
use crate::domain::alert::Alert;

/// Migrations, one `.sql` file each in `postgres/migrations/`, applied in order; the table
/// `schema_migrations` records which ran. Append new files; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_leases.sql"),
    include_str!("migrations/0003_instances.sql"),
    include_str!("migrations/0004_plugin_kv.sql"),
    include_str!("migrations/0005_changes.sql"),
    include_str!("migrations/0006_tickets_fillfactor.sql"),
    include_str!("migrations/0007_ticket_counts_per_statement.sql"),
];

/// Connections in the pool.
const POOL_SIZE: usize = 8;

/// How long a request waits for a connection, or for one to be made, before it fails as unavailable
/// (ingest answers 503 then, which senders retry).
const WAIT: Duration = Duration::from_secs(5);

/// The channel commits that wrote timeline entries notify, with the highest feed id as payload.
const FEED_CHANNEL: &str = "tocsin_feed";

/// Longest a session may sit inside a transaction without a statement (see [`Target::parse`]).
const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(5);

/// The advisory lock key that orders feed ids by commit (see `tickets.rs`).
const FEED_LOCK: i64 = 0x7463_7369_6e66_6564; // "tcsinfed"

/// The PostgreSQL [`Backend`].
pub struct PgBackend {
    pool: pool::Pool,
    target: Arc<Target>,
    feed: Arc<tokio::sync::watch::Sender<i64>>,
    failing: Arc<Mutex<Option<String>>>,
    /// The URL without its password, for messages.
    shown: String,
    _listener: listen::Listener,
}

/// The [`super::Store`] on PostgreSQL.
pub type PgStore = Engine<PgBackend>;

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend")
            .field("url", &self.shown)
            .finish()
    }
}

/// A `postgres://` URL parsed into a driver config, its TLS setup, and how to show it.
pub(crate) struct Target {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub shown: String,
}

pub use crate::config::redact_url as redact;

impl Target {
    /// Parses the URL; the password comes from it (after `${VAR}` expansion in the config) or else
    /// from `PGPASSWORD`, as with libpq.
    pub fn parse(url: &str) -> Result<Target> {
        let shown = redact(url);
        let (url, tls) = tls::split(url).map_err(|e| StoreError::Other(format!("{shown}: {e}")))?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::Other(format!("{shown} is not a PostgreSQL URL: {e}")))?;
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(WAIT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tocsin");
        }
        // A client stopped inside a transaction (SIGSTOP, a frozen VM, a cut network) would hold its
        // row locks, the feed lock and its lease's fence until it wakes; the server ends such a session
        // instead. tocsin's transactions never wait on anything between statements.
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={}",
            config.get_options().unwrap_or(""),
            IDLE_IN_TRANSACTION.as_millis()
        );
        config.options(options.trim());
        config.ssl_mode(tls.mode);
        Ok(Target {
            config,
            tls: tls.connector,
            shown,
        })
    }
}

impl Engine<PgBackend> {
    /// Connects, migrates, and starts listening for other commits' notifications. Fails with one
    /// error naming the URL (without its password) when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<PgStore> {
        PgBackend::connect(url).await.map(Engine::new)
    }
}

impl PgBackend {
    async fn connect(url: &str) -> Result<PgBackend> {
        let target = Arc::new(Target::parse(url)?);
        let shown = target.shown.clone();
        let last = setup(&target).await.map_err(|e| match e {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("{shown}: {m}")),
            StoreError::Other(m) => StoreError::Other(format!("{shown}: {m}")),
            other => other,
        })?;
        let feed = Arc::new(tokio::sync::watch::Sender::new(last));
        let listener = listen::Listener::start(Arc::clone(&target), Arc::clone(&feed));
        Ok(PgBackend {
            pool: pool::Pool::new(Arc::clone(&target)),
            target,
            feed,
            failing: Arc::default(),
            shown,
            _listener: listener,
        })
    }

    fn record<T>(&self, result: &Result<T>) {
        let now_failing = match result {
            Err(StoreError::Unavailable(e)) => Some(e.clone()),
            _ => None,
        };
        if let Ok(mut f) = self.failing.lock() {
            *f = now_failing;
        }
    }

    async fn run<T, F>(&self, write: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        let result = self
            .pool
            .run(move |conn| {
                if !write {
                    // No BEGIN or COMMIT around a read: see [`Session::Auto`].
                    let mut tx = PgTx::new(Session::Auto(&mut conn.client), &mut conn.stmts, true);
                    return Ok((f(&mut tx)?, None));
                }
                let t = conn.client.transaction().map_err(err)?;
                let mut tx = PgTx::new(Session::Tx(t), &mut conn.stmts, false);
                let out = f(&mut tx)?;
                // The feed rows' statement also notifies the feed's listeners (on commit).
                tx.flush_feed()?;
                let last = tx.last_feed;
                tx.t.commit()?;
                Ok((out, last))
            })
            .await;
        // Reads count too: once one succeeds the database is back, even when nothing was written
        // since (readiness asks through a read).
        self.record(&result);
        let (out, last) = result?;
        if let Some(last) = last {
            listen::advance(&self.feed, last);
        }
        Ok(out)
    }
}

impl Backend for PgBackend {
    /// Every commit is durable here, whatever `durability` says: relaxing one transaction would take
    /// a statement of its own (a round trip), and with `synchronous_commit=off` for the whole role the
    /// outbox at 1,000 alerts/s was no faster (the round trips bound it, not the server's WAL flush).
    async fn write<T, F>(&self, _durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.run(true, f).await
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.run(false, f).await
    }

    async fn append_journal(&self, alerts: &[Alert]) -> Result<Vec<i64>> {
        let encoded = journal::encode(alerts)?;
        let result = self
            .pool
            .run(move |conn| journal::append(conn, &encoded))
            .await;
        self.record(&result);
        result
    }

    async fn ping(&self) -> Result<()> {
        self.pool
            .run(|conn| conn.client.simple_query("SELECT 1").map(drop).map_err(err))
            .await
    }

    fn feed_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.feed.subscribe()
    }

    fn problem(&self) -> Option<StoreProblem> {
        self.failing
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .map(StoreProblem::WritesFailing)
    }
}

/// A connection of its own, driven on the async runtime until dropped (migrations, LISTEN, imports).
async fn connect_async(target: &Target) -> Result<tokio_postgres::Client> {
    let (client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect: {}", describe(&e))))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Applies the migrations not yet recorded, in one transaction, under an advisory lock so instances
/// starting together do not race; returns the feed's head.
async fn setup(target: &Target) -> Result<i64> {
    let mut client = connect_async(target).await?;
    let t = client.transaction().await.map_err(err)?;
    t.batch_execute(
        "SELECT pg_advisory_xact_lock(7463736900); \
         CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(err)?;
    let done: i64 = t
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(err)?
        .get(0);
    if done as usize > MIGRATIONS.len() {
        return Err(StoreError::Other(format!(
            "the database was written by a newer tocsin (schema {done}, this build knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        t.batch_execute(sql).await.map_err(err)?;
        t.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(err)?;
    }
    t.commit().await.map_err(err)?;
    Ok(client
        .query_one("SELECT COALESCE(MAX(id), 0) FROM feed", &[])
        .await
        .map_err(err)?
        .get(0))
}

/// Runs the migrations alone (`tocsin migrate --config FILE`); returns how many the database has.
pub async fn migrate_only(url: &str) -> Result<usize> {
    let store = PgBackend::connect(url).await?;
    drop(store);
    Ok(MIGRATIONS.len())
}

/// A driver error with what the server said (the driver's own text is only "db error" then) or the
/// underlying cause.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Driver errors: what retrying may fix (connection lost, server shutting down or starting, too many
/// connections, serialization failures, deadlocks) is `Unavailable`; the rest is `Other`.
fn err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let retry = code.starts_with("08")
            || code.starts_with("57P")
            || code.starts_with("53")
            || code == "40001"
            || code == "40P01";
        return if retry {
            StoreError::Unavailable(db.to_string())
        } else {
            StoreError::Other(db.to_string())
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io || e.to_string().contains("timeout") {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Other(describe(&e))
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("corrupt stored JSON: {e}"))
}

/// Where a [`PgTx`]'s statements run.
enum Session<'a> {
    /// A write: one transaction, committed by [`PgBackend::run`] (dropped, so rolled back, on error).
    Tx(postgres::Transaction<'a>),
    /// A read: each statement on its own, with no BEGIN or COMMIT around them. The same as a
    /// read-only transaction at READ COMMITTED, where every statement takes a snapshot of its own
    /// anyway, and two round trips fewer: a read of one statement was three (the outbox's backlog
    /// and its pending rows, the journal's next batch, on every alert's way to its webhook). Only
    /// statements that start with SELECT run here (see [`Session::check`]), as only they ran in the
    /// read-only transaction before.
    Auto(&'a mut postgres::Client),
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

impl Session<'_> {
    /// Refuses anything but a SELECT in a read, as a read-only transaction did.
    fn check(&self, sql: &str) -> Result<()> {
        match self {
            Session::Auto(_) if !sql.trim_start().starts_with("SELECT") => {
                Err(StoreError::Other(format!(
                    "a write in a read: {}",
                    sql.chars().take(60).collect::<String>()
                )))
            }
            _ => Ok(()),
        }
    }

    fn prepare(&mut self, sql: &str) -> PgResult<Statement> {
        match self {
            Session::Tx(t) => t.prepare(sql),
            Session::Auto(c) => c.prepare(sql),
        }
    }

    fn query(&mut self, s: &Statement, params: Params<'_>) -> PgResult<Vec<Row>> {
        match self {
            Session::Tx(t) => t.query(s, params),
            Session::Auto(c) => c.query(s, params),
        }
    }

    fn query_opt(&mut self, s: &Statement, params: Params<'_>) -> PgResult<Option<Row>> {
        match self {
            Session::Tx(t) => t.query_opt(s, params),
            Session::Auto(c) => c.query_opt(s, params),
        }
    }

    fn query_one(&mut self, s: &Statement, params: Params<'_>) -> PgResult<Row> {
        match self {
            Session::Tx(t) => t.query_one(s, params),
            Session::Auto(c) => c.query_one(s, params),
        }
    }

    fn query_typed(&mut self, sql: &str, params: TypedParams<'_>) -> PgResult<Vec<Row>> {
        match self {
            Session::Tx(t) => t.query_typed(sql, params),
            Session::Auto(c) => c.query_typed(sql, params),
        }
    }

    fn execute(&mut self, s: &Statement, params: Params<'_>) -> PgResult<u64> {
        match self {
            Session::Tx(t) => t.execute(s, params),
            Session::Auto(c) => c.execute(s, params),
        }
    }

    fn commit(self) -> Result<()> {
        match self {
            Session::Tx(t) => t.commit().map_err(err),
            Session::Auto(_) => Ok(()),
        }
    }
}

/// One transaction as the orchestration sees it (or, for a read, its statements: [`Session`]), each
/// statement prepared once per connection.
pub struct PgTx<'a> {
    t: Session<'a>,
    stmts: &'a mut HashMap<String, Statement>,
    /// A read (no row locks, no writes; see [`Session::Auto`]).
    read_only: bool,
    /// Whether this transaction holds the feed lock (taken before its first feed row).
    feed_locked: bool,
    /// The highest feed id this transaction wrote.
    last_feed: Option<i64>,
    /// Ticket numbers taken ahead (`reserve_ticket_numbers`), lowest first.
    numbers: std::collections::VecDeque<i64>,
    /// New tickets and entries not written yet (see openings.rs): flushed before the next statement
    /// or the commit.
    pending: openings::Pending,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];
/// Parameters with their types, for a statement not prepared ahead ([`PgTx::query_planned`]).
type TypedParams<'p> = &'p [(&'p (dyn ToSql + Sync), tokio_postgres::types::Type)];

/// A statement from the connection's cache, prepared on first use.
fn prepared(
    stmts: &mut HashMap<String, Statement>,
    prepare: impl FnOnce() -> Result<Statement, tokio_postgres::Error>,
    sql: &str,
) -> Result<Statement> {
    if let Some(s) = stmts.get(sql) {
        return Ok(s.clone());
    }
    let s = prepare().map_err(err)?;
    stmts.insert(sql.to_string(), s.clone());
    Ok(s)
}

impl<'a> PgTx<'a> {
    fn new(t: Session<'a>, stmts: &'a mut HashMap<String, Statement>, read_only: bool) -> Self {
        PgTx {
            t,
            stmts,
            read_only,
            feed_locked: false,
            last_feed: None,
            numbers: std::collections::VecDeque::new(),
            pending: openings::Pending::default(),
        }
    }

    /// Writes what the transaction kept (openings.rs) before `sql`: the tickets and entries always,
    /// their feed rows when `sql` names the feed or search tables (else they wait for the commit).
    fn before(&mut self, sql: &str) -> Result<()> {
        if sql.contains("feed") || sql.contains("search") {
            self.flush_feed()
        } else {
            self.flush_pending()
        }
    }

    fn stmt(&mut self, sql: &str) -> Result<Statement> {
        self.t.check(sql)?;
        let t = &mut self.t;
        prepared(self.stmts, || t.prepare(sql), sql)
    }

    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.before(sql)?;
        let s = self.stmt(sql)?;
        self.t.query(&s, params).map_err(err)
    }

    /// `sql` planned for these very parameters each time it runs (PostgreSQL's unnamed statement: parse,
    /// bind and execute in one round trip), where a prepared statement would keep one plan.
    ///
    /// Why: PostgreSQL keeps a prepared statement's generic plan from its sixth run on, costed on the
    /// table as it was then, until the table is analyzed again (autovacuum looks once a minute). On a
    /// fresh or small `tickets` that plan reads the whole table, so as a storm grew it from nothing to
    /// thousands of tickets the batches' key lookups scanned all of them (`auto_explain`; at 1,000
    /// new alerts/s, 292 such scans in about 6 s). Planning each time costs the server a little CPU.
    fn query_planned(&mut self, sql: &str, params: TypedParams<'_>) -> Result<Vec<Row>> {
        self.before(sql)?;
        self.t.check(sql)?;
        self.t.query_typed(sql, params).map_err(err)
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        self.before(sql)?;
        let s = self.stmt(sql)?;
        self.t.query_opt(&s, params).map_err(err)
    }

    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        self.before(sql)?;
        let s = self.stmt(sql)?;
        self.t.query_one(&s, params).map_err(err)
    }

    fn exec(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        self.before(sql)?;
        let s = self.stmt(sql)?;
        self.t.execute(&s, params).map_err(err)
    }
}

/// A column, or an error naming what could not be read.
fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Other(format!("column {i} cannot be read: {e}")))
}
