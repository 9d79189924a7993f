//! The SQLite backend: one writer thread with group commit, and a few reader connections.
//!
//! Why a writer thread: SQLite allows one writer at a time, so instead of many tasks queueing on a lock,
//! one thread owns the write connection and takes jobs from a channel. Journal appends that queue up
//! while it is busy are committed together in one transaction, one fsync for many requests. That is what
//! lets every 2xx be durable (`synchronous=FULL`) and still take tens of thousands of alerts per second.
//! Readers use their own connections (WAL lets them read while the writer writes).
//!
//! The SQL is split by concern, one file per [`Tx`] part: `journal.rs`, `tickets.rs`, `feed.rs` (lists,
//! search, the feed, counts), `outbox.rs`, `emails.rs`, `members.rs`, `silences.rs`, `leases.rs`,
//! `plugin_kv.rs` (plugins' key-value stores), `changes.rs` (change events), `retention.rs`; row
//! decoding in `rows.rs`; migrations are `.sql` files in `migrations/`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

mod changes;
#[cfg(test)]
mod durability_tests;
mod emails;
mod feed;
#[cfg(test)]
mod health_tests;
mod journal;
mod leases;
mod members;
#[cfg(test)]
mod migration_tests;
mod outbox;
#[cfg(test)]
mod plan_tests;
mod plugin_kv;
mod retention;
mod rows;
#[cfg(test)]
mod search_tests;
mod silences;
mod tickets;

use super::engine::{Backend, Durability, Engine};
use super::tx::Tx;
use super::{Result, StoreError, StoreProblem};
use crate::domain::alert::Alert;

/// Schema migrations, one `.sql` file each in `sqlite/migrations/`, applied in order; `PRAGMA
/// user_version` records how many ran. Append new files; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_journal_tickets_timeline.sql"),
    include_str!("migrations/0002_routing_and_dropped.sql"),
    include_str!("migrations/0003_outbox.sql"),
    include_str!("migrations/0004_presence.sql"),
    include_str!("migrations/0005_emails.sql"),
    include_str!("migrations/0006_feed_rooms_search.sql"),
    include_str!("migrations/0007_silences_and_hours.sql"),
    include_str!("migrations/0008_dead_journal.sql"),
    include_str!("migrations/0009_session_generations.sql"),
    include_str!("migrations/0010_inbound_seen.sql"),
    include_str!("migrations/0011_retention.sql"),
    include_str!("migrations/0012_leases.sql"),
    include_str!("migrations/0013_instances.sql"),
    include_str!("migrations/0014_plugin_kv.sql"),
    include_str!("migrations/0015_changes.sql"),
    include_str!("migrations/0016_ticket_count_on_insert.sql"),
];

const READERS: usize = 2;

/// `cache_size` of the connections that only read (readers, the checkpointer), in KiB; the writer keeps
/// SQLite's default (2 MiB). Why small: in WAL mode a connection drops its whole page cache when it
/// starts a read after any commit (`pager_reset`), so under writes a reader's cache lives for one read,
/// yet each connection filled its default 2 MiB in a storm and kept it (the memory figure of
/// `benches/versus.rs`). 512 KiB still holds a batch of journal rows or a page of the ticket list.
const READER_CACHE_KIB: u32 = 512;

/// How many queued appends one commit may take. Bounds a transaction's size and a request's wait.
const MAX_GROUP: usize = 64;

type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

/// Answers an append with the journal ids it was given.
type AppendReply = oneshot::Sender<Result<Vec<i64>>>;

enum Job {
    Append(journal::Encoded, AppendReply),
    Run(WriteFn),
}

/// A transaction (or a reader's view) as the orchestration sees it.
pub struct SqliteTx<'a> {
    c: &'a Connection,
    /// Search rows not written yet: they are written together just before the commit, or before a
    /// statement that reads or deletes search rows ([`SqliteTx::flush_search`]).
    ///
    /// Why: FTS5 keeps the rows it is given in memory, and writes them to disk as a new segment
    /// (which it later merges with others) when the transaction ends, when a statement opens a
    /// savepoint (any statement that may have to roll back alone: one that fires a trigger, say),
    /// or when a row comes whose rowid is below the last one's. Titles' rowids fall as entries'
    /// rise, so writing search rows as they came wrote a segment per new ticket: applying new
    /// alerts, a fifth of the writer's time went to those flushes and merges (perf). Kept and
    /// written in rowid order, a transaction writes one.
    search: Vec<SearchRow>,
}

/// A search row kept by [`SqliteTx`] until its transaction writes them.
struct SearchRow {
    /// A title's row is known by minus its ticket's number, an entry's by its feed id (`retention`).
    rowid: i64,
    body: String,
    ticket_id: String,
    visibility: &'static str,
}

impl<'a> SqliteTx<'a> {
    fn new(c: &'a Connection) -> SqliteTx<'a> {
        SqliteTx {
            c,
            search: Vec::new(),
        }
    }

    /// Keeps a search row to write before the commit.
    fn add_search(&mut self, rowid: i64, body: &str, ticket_id: &str, visibility: &'static str) {
        self.search.push(SearchRow {
            rowid,
            body: body.to_owned(),
            ticket_id: ticket_id.to_owned(),
            visibility,
        });
    }

    /// Writes the search rows kept so far.
    fn flush_search(&mut self) -> Result<()> {
        if self.search.is_empty() {
            return Ok(());
        }
        self.search.sort_unstable_by_key(|row| row.rowid);
        let mut stmt = self
            .c
            .prepare_cached(
                "INSERT INTO search (rowid, body, ticket_id, visibility) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(err)?;
        for row in self.search.drain(..) {
            stmt.execute(params![row.rowid, row.body, row.ticket_id, row.visibility])
                .map_err(err)?;
        }
        Ok(())
    }
}

/// What the store knows is wrong with it, for readiness: kept by the writer as it works.
#[derive(Debug, Default)]
struct Condition {
    /// Set when the writer thread has ended (it never should while the store lives).
    writer_gone: std::sync::atomic::AtomicBool,
    /// The last write's failure while writes keep failing for a reason that is not the data's (disk
    /// full, IO errors); cleared by the next write that commits.
    failing: Mutex<Option<String>>,
    /// What `PRAGMA quick_check` found at start, when it was not `ok`.
    corrupt: Option<String>,
}

impl Condition {
    fn record<T>(&self, result: &Result<T>) {
        let now_failing = match result {
            Err(StoreError::Unavailable(e)) => Some(e.clone()),
            _ => None,
        };
        if let Ok(mut f) = self.failing.lock() {
            *f = now_failing;
        }
    }

    fn problem(&self) -> Option<StoreProblem> {
        if self.writer_gone.load(Ordering::Relaxed) {
            return Some(StoreProblem::WriterStopped);
        }
        if let Some(c) = &self.corrupt {
            return Some(StoreProblem::Corrupt(c.clone()));
        }
        self.failing
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .map(StoreProblem::WritesFailing)
    }
}

/// Marks the writer gone when its thread ends, however it ends.
struct WriterGone(Arc<Condition>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.0.writer_gone.store(true, Ordering::Relaxed);
    }
}

/// The SQLite [`Backend`].
pub struct SqliteBackend {
    condition: Arc<Condition>,
    /// The latest feed id, sent after each commit that wrote timeline entries.
    feed: Arc<tokio::sync::watch::Sender<i64>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    path: String,
}

/// The [`super::Store`] on SQLite.
pub type SqliteStore = Engine<SqliteBackend>;

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish()
    }
}

impl Engine<SqliteBackend> {
    /// Opens (creating if needed) and migrates the database at `path`. Blocking: call it off the
    /// async runtime.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteBackend::open(path).map(Engine::new)
    }
}

impl SqliteBackend {
    fn open(path: &Path) -> Result<SqliteBackend> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Other(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let mut writer = Connection::open(path).map_err(err)?;
        configure(&writer)?;
        let corrupt = quick_check(&writer);
        if let Some(c) = &corrupt {
            tracing::error!(path = %path.display(), problem = %c, "The database failed its quick_check; tocsin is not ready until it is repaired.");
        }
        migrate(&mut writer)?;
        let last_feed = feed::last_id(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(path).map_err(err)?;
            configure(&r)?;
            limit_cache(&r)?;
            readers.push(Mutex::new(r));
        }
        let checkpoints = start_checkpointer(path)?;
        let (tx, rx) = mpsc::channel();
        let condition = Arc::new(Condition {
            corrupt,
            ..Condition::default()
        });
        let gone = WriterGone(Arc::clone(&condition));
        let writer_condition = Arc::clone(&condition);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let _gone = gone;
                writer_loop(writer, rx, &writer_condition, &checkpoints)
            })
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteBackend {
            condition,
            feed: Arc::new(tokio::sync::watch::Sender::new(last_feed)),
            jobs: Mutex::new(tx),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            path: path.display().to_string(),
        })
    }

    fn send(&self, job: Job) -> Result<()> {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| StoreError::Other("writer channel poisoned".into()))?;
        jobs.send(job)
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))
    }

    /// Runs `f` in a write transaction on the writer thread, committed with `durability`.
    async fn on_writer<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let feed = Arc::clone(&self.feed);
        let condition = Arc::clone(&self.condition);
        self.send(Job::Run(Box::new(move |conn: &mut Connection| {
            // A panic inside one job (a bug meeting odd data) fails that job alone: the transaction
            // rolls back as it unwinds, the caller gets an error naming it, and the writer goes on.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                set_synchronous(conn, durability)?;
                let t = conn.transaction().map_err(err)?;
                let out = f(&t)?;
                t.commit().map_err(err)?;
                Ok(out)
            }))
            .unwrap_or_else(|panic| {
                Err(StoreError::Other(format!(
                    "a write panicked: {}",
                    panic_text(&panic)
                )))
            });
            condition.record(&result);
            if result.is_ok() {
                // Wake live readers only when the commit wrote entries.
                if let Ok(last) = feed::last_id(conn) {
                    feed.send_if_modified(|v| std::mem::replace(v, last) != last);
                }
            }
            let _ = tx.send(result);
        })))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))?
    }

    /// Runs `f` on a reader connection, off the async runtime.
    async fn on_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            // Take a free reader if there is one, else wait for ours.
            for i in 0..readers.len() {
                if let Ok(conn) = readers[(start + i) % readers.len()].try_lock() {
                    return f(&conn);
                }
            }
            let conn = readers[start % readers.len()]
                .lock()
                .map_err(|_| StoreError::Other("reader poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }
}

impl Backend for SqliteBackend {
    async fn write<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.on_writer(durability, move |c| {
            let mut tx = SqliteTx::new(c);
            let out = f(&mut tx)?;
            tx.flush_search()?;
            Ok(out)
        })
        .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.on_reader(move |c| f(&mut SqliteTx::new(c))).await
    }

    async fn append_journal(&self, alerts: &[Alert]) -> Result<Vec<i64>> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Append(journal::encode(alerts)?, tx))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))?
    }

    async fn ping(&self) -> Result<()> {
        self.on_reader(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(err))
            .await
    }

    fn feed_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.feed.subscribe()
    }

    fn problem(&self) -> Option<StoreProblem> {
        self.condition.problem()
    }
}

/// `<prefix> IN (?n, ...)` with the values pushed onto `args`, or nothing when there are none (no
/// filter).
fn in_list<'a>(
    prefix: &str,
    args: &mut Vec<rusqlite::types::Value>,
    values: impl Iterator<Item = &'a str>,
) -> String {
    let marks: Vec<String> = values
        .map(|v| {
            args.push(v.to_string().into());
            format!("?{}", args.len())
        })
        .collect();
    if marks.is_empty() {
        String::new()
    } else {
        format!("{prefix} IN ({})", marks.join(", "))
    }
}

/// Prepared statements kept per connection: more than the store has (about 120 distinct texts, some
/// built per shape of an `IN` list), so none is prepared twice.
const STATEMENT_CACHE: usize = 256;

fn configure(conn: &Connection) -> Result<()> {
    // WAL: readers never block the writer. synchronous=FULL: a commit is on disk before we answer 2xx,
    // so accepted alerts survive a power cut, not only a crash of tocsin. Group commit pays for it.
    //
    // temp_store=MEMORY: statement journals (SQLite writes one for each statement that may have to
    // roll back alone, e.g. an update that fires the ticket-count trigger) stay in memory. On disk they
    // were a temp file written page by page: a fifth of the writer's time applying new alerts (perf).
    // They live for one statement, so the memory is bounded by the largest statement.
    //
    // The statement cache holds every statement the store prepares: rusqlite's default of 16 is fewer
    // than one apply uses, so each statement was parsed and planned again every time (perf, one alert
    // at a time: a quarter of the writer's time).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(err)
}

/// Sets a read-only connection's page cache to [`READER_CACHE_KIB`].
fn limit_cache(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "cache_size", -i64::from(READER_CACHE_KIB))
        .map_err(err)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let done: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if done > MIGRATIONS.len() {
        return Err(StoreError::Other(format!(
            "the database was written by a newer tocsin (schema {done}, this build knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let t = conn.transaction().map_err(err)?;
        t.execute_batch(sql).map_err(err)?;
        t.pragma_update(None, "user_version", i + 1).map_err(err)?;
        t.commit().map_err(err)?;
    }
    Ok(())
}

/// `PRAGMA quick_check` at start: `None` when the database is sound, else what it found (first lines).
fn quick_check(conn: &Connection) -> Option<String> {
    let found: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect());
    match found {
        Ok(lines) if lines == ["ok"] => None,
        Ok(lines) => Some(lines.join("; ")),
        Err(e) => Some(e.to_string()),
    }
}

/// What a caught panic said, for the error that replaces it.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Pages in the WAL past which the writer checkpoints by itself: a backstop for when the checkpointer
/// thread falls behind. SQLite's default, 1,000 pages, made the writer copy pages into the database
/// every few commits in a storm (perf: a twelfth of its time).
const WRITER_CHECKPOINT_PAGES: u32 = 20_000;

/// The shortest time between two checkpoints by the checkpointer thread: each copies what the WAL
/// gained since the last, so pages written again and again in a storm are copied once per period.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts the thread that copies the WAL into the database (a PASSIVE checkpoint: it never blocks
/// the writer or readers) after commits, at most every [`CHECKPOINT_EVERY`]. Returns what wakes it.
///
/// Why a thread of its own: SQLite checkpoints on the committing connection by default, so the one
/// writer, which every commit waits for, did it; here another core does.
fn start_checkpointer(path: &Path) -> Result<mpsc::SyncSender<()>> {
    let conn = Connection::open(path).map_err(err)?;
    configure(&conn)?;
    limit_cache(&conn)?;
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Ends when the writer does (the sender is dropped with it).
            while rx.recv().is_ok() {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "A WAL checkpoint failed; the next commit tries again.");
                }
                std::thread::sleep(CHECKPOINT_EVERY);
            }
        })
        .map_err(|e| StoreError::Other(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(tx)
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Job>,
    condition: &Condition,
    checkpoints: &mpsc::SyncSender<()>,
) {
    if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES) {
        tracing::warn!(error = %e, "Cannot move checkpoints off the writer; it checkpoints itself.");
    }
    let mut held: Option<Job> = None;
    loop {
        let job = match held.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return, // the store was dropped
            },
        };
        match job {
            Job::Run(f) => f(&mut conn),
            Job::Append(alerts, reply) => {
                let mut group = vec![(alerts, reply)];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Job::Append(a, r)) => group.push((a, r)),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_appends(&mut conn, group, condition);
            }
        }
        // Full: a wake-up is already pending, which covers this commit too.
        let _ = checkpoints.try_send(());
    }
}

/// Sets how the writer's next commit meets the disk.
///
/// `Deferred` is `synchronous=NORMAL`: in WAL mode a commit is then written to the WAL but not
/// fsynced, so a crash of tocsin loses nothing (the OS holds the pages) and a power cut may undo the
/// last such commits, never a part of one. The WAL is written in order and each fsync covers all of
/// it, so the next durable commit (an append, before its 2xx) puts every earlier commit on disk too.
/// Why: an apply's fsync was the longest step between an alert's 2xx and its webhook (0.55 ms of 2.3
/// at 100 alerts/s, measured per step), on the thread every append waits for.
///
/// Set before every transaction on the writer (a cached statement, microseconds), so a write can never
/// inherit the previous one's setting; when it cannot be set, the write fails instead.
fn set_synchronous(conn: &Connection, durability: Durability) -> Result<()> {
    let sql = match durability {
        Durability::Now => "PRAGMA synchronous = FULL",
        Durability::Deferred => "PRAGMA synchronous = NORMAL",
    };
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(err)
}

/// Commits a group of appends in one transaction and answers each caller.
fn commit_appends(
    conn: &mut Connection,
    group: Vec<(journal::Encoded, AppendReply)>,
    condition: &Condition,
) {
    let result = (|| -> Result<Vec<Vec<i64>>> {
        set_synchronous(conn, Durability::Now)?;
        let t = conn.transaction().map_err(err)?;
        let mut all = Vec::with_capacity(group.len());
        for (alerts, _) in &group {
            all.push(journal::append(&t, alerts)?);
        }
        t.commit().map_err(err)?;
        Ok(all)
    })();
    condition.record(&result);
    match result {
        Ok(all) => {
            for ((_, reply), ids) in group.into_iter().zip(all) {
                let _ = reply.send(Ok(ids));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for (_, reply) in group {
                let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
            }
        }
    }
}

fn err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::CannotOpen
                    | ErrorCode::SystemIoFailure
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("corrupt stored JSON: {e}"))
}

/// Runs one cached statement with `args`, returning the rows it changed.
fn exec(c: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<usize> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(args))
        .map_err(err)
}
