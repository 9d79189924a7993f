//! The SQLite backend: one writer thread with group commit, and a few reader connections.
//!
//! Why a writer thread: SQLite allows one writer at a time, so instead of many tasks queueing on a lock,
//! one thread owns the write connection and takes jobs from a channel. Journal appends that queue up
//! while it is busy are committed together in one transaction, one fsync for many requests. That is what
//! lets every 2xx be durable (`synchronous=FULL`) and still take tens of thousands of alerts per second.
//! Readers use their own connections (WAL lets them read while the writer writes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use tokio::sync::oneshot;

mod dead;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod migration_tests;
mod retention;
mod sessions;

use super::{
    Applied, DeadJournal, Delivery, DeliveryResult, DroppedAlert, EmailReply, EmailResult,
    EmailThread, FeedEvent, FeedQuery, JournalBatch, JournalEntry, Mailbox, PendingEmail, Result,
    RoomBacklog, Stats, Store, StoreError, StoreHealth, StoreProblem, TicketFilter, TicketRef,
};
use crate::domain::alert::{Alert, Severity};
use crate::domain::mail::MailReason;
use crate::domain::message::Content;
use crate::domain::plugin::DropInfo;
use crate::domain::presence::{Presence, PresenceState};
use crate::domain::routing::{DeliveryKind, OffHoursAction, Router};
use crate::domain::silence::{self, Silence, SilenceDraft, Silencing};
use crate::domain::ticket::{
    self, Action, Actor, AlertDecision, Policy, Resolution, Ticket, TicketState,
};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryDraft, EntryKind, Visibility};

/// Schema migrations, one `.sql` file each in `sqlite/migrations/`, applied in order; `PRAGMA
/// user_version` records how many ran. Append new files; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/migrations/0001_journal_tickets_timeline.sql"),
    include_str!("sqlite/migrations/0002_routing_and_dropped.sql"),
    include_str!("sqlite/migrations/0003_outbox.sql"),
    include_str!("sqlite/migrations/0004_presence.sql"),
    include_str!("sqlite/migrations/0005_emails.sql"),
    include_str!("sqlite/migrations/0006_feed_rooms_search.sql"),
    include_str!("sqlite/migrations/0007_silences_and_hours.sql"),
    include_str!("sqlite/migrations/0008_dead_journal.sql"),
    include_str!("sqlite/migrations/0009_session_generations.sql"),
    include_str!("sqlite/migrations/0010_inbound_seen.sql"),
    include_str!("sqlite/migrations/0011_retention.sql"),
];

/// How many dropped alerts are kept for inspection.
const KEEP_DROPPED: i64 = 1000;

const TICKET_COLUMNS: &str =
    "id, number, source, fingerprint, title, severity, state, resolution, \
    labels, annotations, description, url, starts_at, ends_at, created_at, updated_at, last_seen, \
    resolved_at, acked_by, firing_count, resend_count, previous_id, last_seq, routing, assignee";

const READERS: usize = 2;

/// How many queued appends one commit may take. Bounds a transaction's size and a request's wait.
const MAX_GROUP: usize = 64;

type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

/// Answers an append with the journal ids it was given.
type AppendReply = oneshot::Sender<Result<Vec<i64>>>;

enum Job {
    Append(Vec<Alert>, AppendReply),
    Run(WriteFn),
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

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    condition: Arc<Condition>,
    router: std::sync::RwLock<Option<Arc<Router>>>,
    /// The latest feed id, sent after each commit that wrote timeline entries.
    feed: Arc<tokio::sync::watch::Sender<i64>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`. Blocking: call it off the
    /// async runtime.
    pub fn open(path: &Path) -> Result<SqliteStore> {
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
        let last_feed = last_feed_id(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(path).map_err(err)?;
            configure(&r)?;
            readers.push(Mutex::new(r));
        }
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
                writer_loop(writer, rx, &writer_condition)
            })
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            condition,
            router: std::sync::RwLock::new(None),
            feed: Arc::new(tokio::sync::watch::Sender::new(last_feed)),
            jobs: Mutex::new(tx),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            path: path.display().to_string(),
        })
    }

    fn router(&self) -> Option<Arc<Router>> {
        self.router.read().ok().and_then(|r| r.clone())
    }

    fn send(&self, job: Job) -> Result<()> {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| StoreError::Other("writer channel poisoned".into()))?;
        jobs.send(job)
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))
    }

    /// Runs `f` in a write transaction on the writer thread.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let feed = Arc::clone(&self.feed);
        let condition = Arc::clone(&self.condition);
        self.send(Job::Run(Box::new(move |conn: &mut Connection| {
            // A panic inside one job (a bug meeting odd data) fails that job alone: the transaction
            // rolls back as it unwinds, the caller gets an error naming it, and the writer goes on.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
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
                if let Ok(last) = last_feed_id(conn) {
                    feed.send_if_modified(|v| std::mem::replace(v, last) != last);
                }
            }
            let _ = tx.send(result);
        })))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))?
    }

    /// Runs `f` on a reader connection, off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T>
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

fn last_feed_id(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM feed")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(err)
}

/// Turns what a person typed into an FTS5 query: each word quoted (so operators and punctuation in it
/// mean nothing) and matched as a prefix; all words must occur. `None` when nothing is left.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn configure(conn: &Connection) -> Result<()> {
    // WAL: readers never block the writer. synchronous=FULL: a commit is on disk before we answer 2xx,
    // so accepted alerts survive a power cut, not only a crash of tocsin. Group commit pays for it.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = ON;",
    )
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

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, condition: &Condition) {
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
    }
}

/// Commits a group of appends in one transaction and answers each caller.
fn commit_appends(
    conn: &mut Connection,
    group: Vec<(Vec<Alert>, AppendReply)>,
    condition: &Condition,
) {
    let result = (|| -> Result<Vec<Vec<i64>>> {
        let t = conn.transaction().map_err(err)?;
        let mut all = Vec::with_capacity(group.len());
        {
            let mut stmt = t
                .prepare_cached("INSERT INTO journal (received_at, alert) VALUES (?1, ?2)")
                .map_err(err)?;
            for (alerts, _) in &group {
                let mut ids = Vec::with_capacity(alerts.len());
                for a in alerts {
                    let json =
                        serde_json::to_string(a).map_err(|e| StoreError::Other(e.to_string()))?;
                    stmt.execute(params![a.received_at.as_millis(), json])
                        .map_err(err)?;
                    ids.push(t.last_insert_rowid());
                }
                all.push(ids);
            }
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

fn ticket_from_row(row: &Row<'_>) -> rusqlite::Result<Ticket> {
    let conv = |i: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let text = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
    let severity: String = row.get(5)?;
    let state: String = row.get(6)?;
    let resolution: Option<String> = row.get(7)?;
    let labels: String = row.get(8)?;
    let annotations: String = row.get(9)?;
    let routing: String = row.get(23)?;
    Ok(Ticket {
        id: row.get(0)?,
        number: row.get(1)?,
        source: row.get(2)?,
        fingerprint: row.get(3)?,
        title: row.get(4)?,
        severity: Severity::from_name(&severity).ok_or_else(|| text(5, "severity"))?,
        state: TicketState::from_name(&state).ok_or_else(|| text(6, "state"))?,
        resolution: resolution
            .map(|r| serde_json::from_str::<Resolution>(&r))
            .transpose()
            .map_err(|e| conv(7, e))?,
        labels: serde_json::from_str(&labels).map_err(|e| conv(8, e))?,
        annotations: serde_json::from_str(&annotations).map_err(|e| conv(9, e))?,
        description: row.get(10)?,
        url: row.get(11)?,
        starts_at: ts(row.get(12)?),
        ends_at: ts(row.get(13)?),
        created_at: Timestamp::from_millis(row.get(14)?),
        updated_at: Timestamp::from_millis(row.get(15)?),
        last_seen: Timestamp::from_millis(row.get(16)?),
        resolved_at: ts(row.get(17)?),
        acked_by: row.get(18)?,
        firing_count: row.get(19)?,
        resend_count: row.get(20)?,
        previous_id: row.get(21)?,
        last_seq: row.get(22)?,
        routing: serde_json::from_str(&routing).map_err(|e| conv(23, e))?,
        assignee: row.get(24)?,
    })
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
    entry_from_row_at(row, 0)
}

/// An entry from `seq, at, kind, visibility, actor, text, data`, starting at column `i`.
fn entry_from_row_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Entry> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let kind: String = row.get(i + 2)?;
    let visibility: String = row.get(i + 3)?;
    let data: String = row.get(i + 6)?;
    Ok(Entry {
        seq: row.get(i)?,
        at: Timestamp::from_millis(row.get(i + 1)?),
        kind: EntryKind::from_name(&kind).ok_or_else(|| bad(i + 2, "entry kind"))?,
        visibility: Visibility::from_name(&visibility).ok_or_else(|| bad(i + 3, "visibility"))?,
        actor: row.get(i + 4)?,
        text: row.get(i + 5)?,
        data: serde_json::from_str(&data).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                i + 6,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })?,
    })
}

fn latest_for_key(t: &Transaction<'_>, source: &str, fingerprint: &str) -> Result<Option<Ticket>> {
    let mut stmt = t
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE source = ?1 AND fingerprint = ?2 AND is_latest = 1"
        ))
        .map_err(err)?;
    stmt.query_row(params![source, fingerprint], ticket_from_row)
        .optional()
        .map_err(err)
}

fn find_ticket(conn: &Connection, r: &TicketRef) -> Result<Option<Ticket>> {
    let (sql, arg): (String, rusqlite::types::Value) = match r {
        TicketRef::Id(id) => (
            format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"),
            id.clone().into(),
        ),
        TicketRef::Number(n) => (
            format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = ?1"),
            (*n).into(),
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
    stmt.query_row([arg], ticket_from_row)
        .optional()
        .map_err(err)
}

fn insert_ticket(t: &Transaction<'_>, ticket: &Ticket) -> Result<()> {
    let mut stmt = t
        .prepare_cached(&format!(
            "INSERT INTO tickets ({TICKET_COLUMNS}, is_latest) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, 1)"
        ))
        .map_err(err)?;
    stmt.execute(params![
        ticket.id,
        ticket.number,
        ticket.source,
        ticket.fingerprint,
        ticket.title,
        ticket.severity.as_str(),
        ticket.state.as_str(),
        resolution_json(ticket)?,
        serde_json::to_string(&ticket.labels).map_err(json_err)?,
        serde_json::to_string(&ticket.annotations).map_err(json_err)?,
        ticket.description,
        ticket.url,
        ticket.starts_at.map(Timestamp::as_millis),
        ticket.ends_at.map(Timestamp::as_millis),
        ticket.created_at.as_millis(),
        ticket.updated_at.as_millis(),
        ticket.last_seen.as_millis(),
        ticket.resolved_at.map(Timestamp::as_millis),
        ticket.acked_by,
        ticket.firing_count,
        ticket.resend_count,
        ticket.previous_id,
        ticket.last_seq,
        serde_json::to_string(&ticket.routing).map_err(json_err)?,
        ticket.assignee,
    ])
    .map_err(err)?;
    // The title's search row is known by minus the ticket number (see `retention`).
    t.prepare_cached(
        "INSERT INTO search (rowid, body, ticket_id, visibility) VALUES (?1, ?2, ?3, 'public')",
    )
    .and_then(|mut s| s.execute(params![-ticket.number, ticket.title, ticket.id]))
    .map_err(err)?;
    Ok(())
}

fn update_ticket(t: &Transaction<'_>, ticket: &Ticket) -> Result<()> {
    let mut stmt = t
        .prepare_cached(
            "UPDATE tickets SET title = ?2, severity = ?3, state = ?4, resolution = ?5, labels = ?6, \
             annotations = ?7, description = ?8, url = ?9, starts_at = ?10, ends_at = ?11, \
             updated_at = ?12, last_seen = ?13, resolved_at = ?14, acked_by = ?15, firing_count = ?16, \
             resend_count = ?17, last_seq = ?18, routing = ?19, assignee = ?20 WHERE id = ?1",
        )
        .map_err(err)?;
    stmt.execute(params![
        ticket.id,
        ticket.title,
        ticket.severity.as_str(),
        ticket.state.as_str(),
        resolution_json(ticket)?,
        serde_json::to_string(&ticket.labels).map_err(json_err)?,
        serde_json::to_string(&ticket.annotations).map_err(json_err)?,
        ticket.description,
        ticket.url,
        ticket.starts_at.map(Timestamp::as_millis),
        ticket.ends_at.map(Timestamp::as_millis),
        ticket.updated_at.as_millis(),
        ticket.last_seen.as_millis(),
        ticket.resolved_at.map(Timestamp::as_millis),
        ticket.acked_by,
        ticket.firing_count,
        ticket.resend_count,
        ticket.last_seq,
        serde_json::to_string(&ticket.routing).map_err(json_err)?,
        ticket.assignee,
    ])
    .map_err(err)?;
    Ok(())
}

fn resolution_json(ticket: &Ticket) -> Result<Option<String>> {
    ticket
        .resolution
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)
}

/// Appends an entry with the ticket's next `seq`, bumping `last_seq` on the ticket value.
fn append_entry(t: &Transaction<'_>, ticket: &mut Ticket, draft: EntryDraft) -> Result<Entry> {
    ticket.last_seq += 1;
    let entry = draft.with_seq(ticket.last_seq);
    insert_entry(t, &ticket.id, &entry)?;
    Ok(entry)
}

fn insert_entry(t: &Transaction<'_>, ticket_id: &str, entry: &Entry) -> Result<()> {
    let mut stmt = t
        .prepare_cached(
            "INSERT INTO timeline (ticket_id, seq, at, kind, visibility, actor, text, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(err)?;
    stmt.execute(params![
        ticket_id,
        entry.seq,
        entry.at.as_millis(),
        entry.kind.as_str(),
        entry.visibility.as_str(),
        entry.actor,
        entry.text,
        serde_json::to_string(&entry.data).map_err(json_err)?,
    ])
    .map_err(err)?;
    t.prepare_cached("INSERT INTO feed (ticket_id, seq) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![ticket_id, entry.seq]))
        .map_err(err)?;
    // An entry's search row is known by its feed id (see `retention`).
    let feed_id = t.last_insert_rowid();
    t.prepare_cached(
        "INSERT INTO search (rowid, body, ticket_id, visibility) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            feed_id,
            entry.text,
            ticket_id,
            entry.visibility.as_str()
        ])
    })
    .map_err(err)?;
    Ok(())
}

fn apply_one(
    t: &Transaction<'_>,
    entry: &JournalEntry,
    policy: &Policy,
    router: Option<&Router>,
) -> Result<Applied> {
    let alert = &entry.alert;
    let current = latest_for_key(t, &alert.source, &alert.fingerprint)?;
    let decision = ticket::decide(current.as_ref(), alert, policy);
    let outcome = decision.outcome();
    let ticket_id = match decision {
        AlertDecision::Ignore { .. } => current.map(|c| c.id),
        AlertDecision::Open { .. } => {
            if let Some(prev) = &current {
                t.prepare_cached("UPDATE tickets SET is_latest = 0 WHERE id = ?1")
                    .and_then(|mut s| s.execute([&prev.id]))
                    .map_err(err)?;
            }
            let number: i64 = t
                .prepare_cached(retention::NEXT_NUMBER)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(err)?;
            let id = uuid::Uuid::now_v7().to_string();
            let (mut new, draft) = ticket::open(id, number, alert, current.as_ref());
            new.last_seq = 1;
            insert_ticket(t, &new)?;
            let opened = draft.with_seq(1);
            insert_entry(t, &new.id, &opened)?;
            enqueue(t, router, &mut new, &opened, entry.silences.as_deref())?;
            record_failures(t, &mut new, entry)?;
            if new.last_seq > 1 {
                update_ticket(t, &new)?;
            }
            Some(new.id)
        }
        d => {
            let mut cur =
                current.ok_or_else(|| StoreError::Other("decision without ticket".into()))?;
            if let Some(draft) = ticket::apply_alert(&mut cur, &d, alert) {
                let e = append_entry(t, &mut cur, draft)?;
                enqueue(t, router, &mut cur, &e, entry.silences.as_deref())?;
                record_failures(t, &mut cur, entry)?;
            }
            update_ticket(t, &cur)?;
            Some(cur.id)
        }
    };
    Ok(Applied {
        journal_id: entry.id,
        ticket_id,
        outcome,
    })
}

/// Plugin failures go on the timeline only when the alert changed the ticket (opened, refired, reopened,
/// resolved): a failing plugin must not add an entry for every heartbeat.
fn record_failures(t: &Transaction<'_>, ticket: &mut Ticket, entry: &JournalEntry) -> Result<()> {
    for f in &entry.failures {
        let draft = EntryDraft::system(
            entry.alert.received_at,
            EntryKind::PluginFailed,
            format!("plugin:{}", f.plugin),
            format!(
                "Plugin {} failed ({}): {}. The alert went on without its decision.",
                f.plugin,
                f.kind.as_str(),
                f.message
            ),
            serde_json::json!({"plugin": f.plugin, "kind": f.kind, "message": f.message}),
        );
        append_entry(t, ticket, draft)?;
    }
    Ok(())
}

fn record_drop(t: &Transaction<'_>, e: &JournalEntry, drop: &DropInfo) -> Result<()> {
    t.prepare_cached("INSERT INTO dropped (at, plugin, reason, alert) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| {
            s.execute(params![
                e.alert.received_at.as_millis(),
                drop.plugin,
                drop.reason,
                serde_json::to_string(&e.alert).unwrap_or_default(),
            ])
        })
        .map_err(err)?;
    // Keep the list bounded: every 100 inserts, forget all but the newest KEEP_DROPPED.
    let id = t.last_insert_rowid();
    if id % 100 == 0 {
        t.prepare_cached("DELETE FROM dropped WHERE id <= ?1")
            .and_then(|mut s| s.execute([id - KEEP_DROPPED]))
            .map_err(err)?;
    }
    Ok(())
}

/// Writes the deliveries routing plans for a new timeline entry, due at the entry's time, and
/// schedules the emails it calls for (with a timeline entry each, so the caller must save `ticket`).
///
/// Silences apply here: when one in force at the entry's time matches the ticket, the change is
/// recorded but nothing goes to chat or email, except a resolution to the rooms that were told about the
/// firing (`domain::silence::keep_deliveries`); a silenced firing gets a `silenced` entry.
fn enqueue(
    t: &Transaction<'_>,
    router: Option<&Router>,
    ticket: &mut Ticket,
    entry: &Entry,
    candidates: Option<&[Silence]>,
) -> Result<()> {
    let Some(router) = router else {
        return Ok(());
    };
    if matches!(entry.kind, EntryKind::Opened | EntryKind::Reopened) {
        for room in router.targets(ticket).0 {
            t.prepare_cached(
                "INSERT OR IGNORE INTO ticket_rooms (room, ticket_id) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![room, ticket.id]))
            .map_err(err)?;
        }
    }
    let plan = router.plan_full(ticket, entry);
    let mut planned = plan.deliveries;
    // One off-hours notice per room and off-hours period.
    for ev in &plan.off_hours {
        if let OffHoursAction::Noticed { period_start, .. } = ev.action {
            if notice_posted(t, &ev.room, period_start)? {
                planned.retain(|d| !(d.kind == DeliveryKind::Notice && d.room == ev.room));
            }
        }
    }
    let firing = silence::is_firing(entry.kind);
    let wants_mail = !router.mail.members.is_empty()
        && matches!(entry.kind, EntryKind::Opened | EntryKind::Reopened);
    let silenced_by = if firing || wants_mail || !planned.is_empty() {
        match candidates {
            // Found by the processor off this writer: only these few are checked again here.
            Some(candidates) => silence::silencing(candidates, ticket, entry.at).cloned(),
            None => {
                let active = active_silences(t, entry.at)?;
                silence::silencing(&active, ticket, entry.at).cloned()
            }
        }
    } else {
        None
    };
    let silencing = match &silenced_by {
        Some(_) => Silencing::Active,
        None if !firing && !planned.is_empty() && latest_firing_silenced(t, &ticket.id)? => {
            Silencing::Ended
        }
        None => Silencing::Off,
    };
    let fired = if silencing == Silencing::Off {
        BTreeSet::new()
    } else {
        fired_rooms(t, &ticket.id)?
    };
    let kept = silence::keep_deliveries(planned, entry.kind, silencing, &fired);
    for d in &kept {
        insert_delivery(
            t,
            &d.room,
            Some(&ticket.id),
            d.kind,
            &d.content,
            entry.at,
            d.hold_until,
        )?;
        if firing {
            t.prepare_cached("INSERT OR IGNORE INTO fired_rooms (ticket_id, room) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![ticket.id, d.room]))
                .map_err(err)?;
        }
    }
    // What business hours did, for the rooms that still get something.
    for ev in plan.off_hours {
        let happened = match &ev.action {
            OffHoursAction::Noticed { .. } => kept
                .iter()
                .any(|d| d.kind == DeliveryKind::Notice && d.room == ev.room),
            OffHoursAction::Held { .. } => kept.iter().any(|d| d.room == ev.room),
            OffHoursAction::Routed { to } => kept.iter().any(|d| &d.room == to),
        };
        if !happened {
            continue;
        }
        if let OffHoursAction::Noticed { period_start, .. } = ev.action {
            t.prepare_cached(
                "INSERT INTO off_hours_notices (room, period_start, posted_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (room) DO UPDATE SET period_start = ?2, posted_at = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![ev.room, period_start.as_millis(), entry.at.as_millis()])
            })
            .map_err(err)?;
        }
        let draft = EntryDraft::system(
            entry.at,
            EntryKind::OffHours,
            format!("room:{}", ev.room),
            ev.text.clone(),
            ev.data(),
        );
        append_entry(t, ticket, draft)?;
    }
    if let (Some(s), true) = (&silenced_by, firing) {
        let draft = EntryDraft::system(
            entry.at,
            EntryKind::Silenced,
            format!("member:{}", s.author),
            silence::silenced_text(s),
            serde_json::json!({"silence": s.id, "author": s.author, "ends_at": s.ends_at}),
        );
        append_entry(t, ticket, draft)?;
    }
    if !wants_mail || !silence::may_email(silencing) {
        return Ok(());
    }
    let presence = effective_presence(t)?;
    let unsubscribed = unsubscribed_members(t)?;
    for d in router.plan_mail(ticket, entry, &presence, &unsubscribed) {
        // One pending email per member and ticket: a reopening before the first went out adds nothing.
        let waiting: bool = t
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM emails WHERE member = ?1 AND ticket_id = ?2 AND state = 'pending')",
            )
            .and_then(|mut s| s.query_row(params![d.member, ticket.id], |r| r.get(0)))
            .map_err(err)?;
        if waiting {
            continue;
        }
        t.prepare_cached(
            "INSERT INTO emails (member, ticket_id, reason, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                d.member,
                ticket.id,
                serde_json::to_string(&d.reason).unwrap_or_default(),
                entry.at.as_millis(),
                d.due.as_millis(),
            ])
        })
        .map_err(err)?;
        let id = t.last_insert_rowid();
        let draft = EntryDraft::system(
            entry.at,
            EntryKind::EmailScheduled,
            "system".into(),
            format!(
                "Email to {} due at {} unless they show up first ({}, {}).",
                d.member,
                d.due.to_rfc3339(),
                d.presence.as_str(),
                d.reason.describe()
            ),
            serde_json::json!({"email": id, "member": d.member, "due": d.due, "presence": d.presence, "reason": d.reason}),
        );
        append_entry(t, ticket, draft)?;
    }
    Ok(())
}

/// Silences in force at `at`, oldest first. There are few: they are matched in Rust.
fn active_silences(c: &Connection, at: Timestamp) -> Result<Vec<Silence>> {
    silences_in_force(c, at, at)
}

/// Silences in force at some moment from `from` to `to` (both included), oldest first.
fn silences_in_force(c: &Connection, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>> {
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE starts_at <= ?2 AND ends_at > ?1 ORDER BY id"
        ))
        .map_err(err)?;
    let rows = stmt
        .query_map(params![from.as_millis(), to.as_millis()], silence_from_row)
        .map_err(err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(err)
}

const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at, ends_at, comment, author, created_at, expired_by";

fn silence_from_row(row: &Row<'_>) -> rusqlite::Result<Silence> {
    let matchers: String = row.get(1)?;
    Ok(Silence {
        id: row.get(0)?,
        matchers: serde_json::from_str(&matchers).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?,
        starts_at: Timestamp::from_millis(row.get(2)?),
        ends_at: Timestamp::from_millis(row.get(3)?),
        comment: row.get(4)?,
        author: row.get(5)?,
        created_at: Timestamp::from_millis(row.get(6)?),
        expired_by: row.get(7)?,
    })
}

fn find_silence(c: &Connection, id: i64) -> Result<Option<Silence>> {
    c.prepare_cached(&format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], silence_from_row).optional())
    .map_err(err)
}

/// Whether the room's off-hours notice was already posted for the period starting at `period_start`.
fn notice_posted(c: &Connection, room: &str, period_start: Timestamp) -> Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM off_hours_notices WHERE room = ?1 AND period_start = ?2)",
    )
    .and_then(|mut s| s.query_row(params![room, period_start.as_millis()], |r| r.get(0)))
    .map_err(err)
}

/// Whether the ticket's latest firing (opening, refire or reopening) was silenced.
fn latest_firing_silenced(c: &Connection, ticket_id: &str) -> Result<bool> {
    let kind: Option<String> = c
        .prepare_cached(
            "SELECT kind FROM timeline WHERE ticket_id = ?1 \
             AND kind IN ('opened', 'refired', 'reopened', 'silenced') ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut s| s.query_row([ticket_id], |r| r.get(0)).optional())
        .map_err(err)?;
    Ok(kind.as_deref() == Some(EntryKind::Silenced.as_str()))
}

/// The rooms a ticket's firing was delivered to or queued for: its thread roots, and the rooms its
/// openings, refires and reopenings were written to the outbox for.
fn fired_rooms(c: &Connection, ticket_id: &str) -> Result<BTreeSet<String>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT room FROM fired_rooms WHERE ticket_id = ?1 \
             UNION SELECT room FROM threads WHERE ticket_id = ?1 \
             UNION SELECT room FROM outbox WHERE ticket_id = ?1 AND kind = 'root' AND state = 'pending'",
        )
        .map_err(err)?;
    let rows = stmt.query_map([ticket_id], |r| r.get(0)).map_err(err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(err)
}

/// Every member's presence, added up over sources.
fn effective_presence(c: &Connection) -> Result<BTreeMap<String, Presence>> {
    let mut by_member: BTreeMap<String, Vec<Presence>> = BTreeMap::new();
    for (member, p) in presence_rows(c)? {
        by_member.entry(member).or_default().push(p);
    }
    Ok(by_member
        .into_iter()
        .map(|(m, reports)| (m, crate::domain::presence::effective(&reports)))
        .collect())
}

fn presence_rows(c: &Connection) -> Result<Vec<(String, Presence)>> {
    let mut stmt = c
        .prepare_cached("SELECT member, source, state, since FROM presence ORDER BY member")
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
            let state: String = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                Presence {
                    state: PresenceState::from_name(&state).unwrap_or(PresenceState::Offline),
                    since: Timestamp::from_millis(r.get(3)?),
                    source: r.get(1)?,
                },
            ))
        })
        .map_err(err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(err)
}

fn unsubscribed_members(c: &Connection) -> Result<BTreeSet<String>> {
    let mut stmt = c
        .prepare_cached("SELECT member FROM unsubscribed")
        .map_err(err)?;
    let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(err)
}

/// `Store::take_email_reply` inside its transaction: forget expired Message-IDs, then per reply
/// remember it (skipping it when it was taken before) and apply its actions.
fn take_email_reply(
    t: &Transaction<'_>,
    router: Option<&Router>,
    message_id: &str,
    replies: Vec<EmailReply>,
    until: Timestamp,
    now: Timestamp,
) -> Result<usize> {
    t.execute(
        "DELETE FROM inbound_seen WHERE until <= ?1",
        [now.as_millis()],
    )
    .map_err(err)?;
    let mut taken = 0;
    for reply in replies {
        let ticket = find_ticket(t, &reply.ticket)?.ok_or(StoreError::NotFound)?;
        let new = t
            .execute(
                "INSERT OR IGNORE INTO inbound_seen (message_id, ticket_id, member, until) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![message_id, ticket.id, reply.actor.member, until.as_millis()],
            )
            .map_err(err)?;
        if new == 0 {
            continue;
        }
        for step in &reply.actions {
            // Read again: the previous action changed the ticket.
            let mut tk = find_ticket(t, &reply.ticket)?.ok_or(StoreError::NotFound)?;
            match ticket::act(&mut tk, &step.action, &reply.actor, now) {
                Ok(draft) => {
                    let entry = append_entry(t, &mut tk, draft)?;
                    enqueue(t, router, &mut tk, &entry, None)?;
                    update_ticket(t, &tk)?;
                }
                Err(_) if step.optional => {}
                Err(e) => return Err(e.into()),
            }
        }
        taken += 1;
    }
    Ok(taken)
}

/// The timeline entry for what happened to one email, on its ticket.
fn email_entry(
    member: &str,
    result: &EmailResult,
    covers: usize,
    now: Timestamp,
) -> Option<EntryDraft> {
    let (kind, text) = match result {
        EmailResult::Deferred { .. } => return None,
        EmailResult::Sent { message_id, .. } => (
            EntryKind::Emailed,
            if covers > 1 {
                format!("Emailed {member} in a digest of {covers} tickets (<{message_id}>).")
            } else {
                format!("Emailed {member} (<{message_id}>).")
            },
        ),
        EmailResult::Cancelled { reason, .. } => (
            EntryKind::EmailCancelled,
            format!("Email to {member} not sent: {reason}."),
        ),
        EmailResult::Failed { error, next_at, .. } => (
            EntryKind::EmailFailed,
            format!(
                "Email to {member} failed: {error}. Trying again at {}.",
                next_at.to_rfc3339()
            ),
        ),
        EmailResult::GaveUp { error, .. } => (
            EntryKind::EmailFailed,
            format!("Email to {member} given up: {error}."),
        ),
    };
    let data = match result {
        EmailResult::Sent { message_id, .. } => {
            serde_json::json!({"member": member, "message_id": message_id, "tickets": covers})
        }
        EmailResult::Failed { error, next_at, .. } => {
            serde_json::json!({"member": member, "error": error, "next_at": next_at})
        }
        EmailResult::GaveUp { error, .. } => {
            serde_json::json!({"member": member, "error": error, "final": true})
        }
        EmailResult::Cancelled { reason, .. } => {
            serde_json::json!({"member": member, "reason": reason})
        }
        EmailResult::Deferred { .. } => serde_json::Value::Null,
    };
    Some(EntryDraft::system(now, kind, "system".into(), text, data))
}

fn insert_delivery(
    t: &Transaction<'_>,
    room: &str,
    ticket_id: Option<&str>,
    kind: DeliveryKind,
    content: &Content,
    at: Timestamp,
    held_until: Option<Timestamp>,
) -> Result<i64> {
    t.prepare_cached(
        "INSERT INTO outbox (room, ticket_id, kind, content, created_at, next_at, held_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            room,
            ticket_id,
            kind.as_str(),
            serde_json::to_string(content).unwrap_or_default(),
            at.as_millis(),
            held_until.map(Timestamp::as_millis),
        ])
    })
    .map_err(err)?;
    Ok(t.last_insert_rowid())
}

/// Appends a system entry to a ticket by id, taking the next `seq` in the database itself.
fn append_system_entry(t: &Transaction<'_>, ticket_id: &str, draft: EntryDraft) -> Result<()> {
    let seq: Option<i64> = t
        .prepare_cached(
            "UPDATE tickets SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )
        .and_then(|mut s| s.query_row([ticket_id], |r| r.get(0)).optional())
        .map_err(err)?;
    match seq {
        Some(seq) => insert_entry(t, ticket_id, &draft.with_seq(seq)),
        None => Ok(()),
    }
}

const DELIVERY_COLUMNS: &str =
    "o.id, o.room, o.ticket_id, o.kind, o.content, o.state, o.attempts, \
    o.created_at, o.next_at, o.last_error, th.handle";

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = row.get(3)?;
    let content: String = row.get(4)?;
    let bad = |i, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(Delivery {
        id: row.get(0)?,
        room: row.get(1)?,
        ticket_id: row.get(2)?,
        kind: DeliveryKind::from_name(&kind).ok_or_else(|| bad(3, format!("kind {kind}")))?,
        content: serde_json::from_str(&content).map_err(|e| bad(4, e.to_string()))?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        created_at: Timestamp::from_millis(row.get(7)?),
        next_at: Timestamp::from_millis(row.get(8)?),
        last_error: row.get(9)?,
        root: row.get(10)?,
    })
}

fn find_delivery(c: &Connection, id: i64) -> Result<Option<Delivery>> {
    c.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM outbox o \
         LEFT JOIN threads th ON th.ticket_id = o.ticket_id AND th.room = o.room WHERE o.id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], delivery_from_row).optional())
    .map_err(err)
}

/// The timeline entry for one delivery attempt.
fn delivery_entry(d: &Delivery, result: &DeliveryResult, now: Timestamp) -> Option<EntryDraft> {
    let what = match d.kind {
        DeliveryKind::Root => "message",
        DeliveryKind::Reply => "update",
        DeliveryKind::EditRoot => "edit of the first message",
        DeliveryKind::Digest => "digest",
        DeliveryKind::Notice => "off-hours notice",
    };
    let room = &d.room;
    let attempt = d.attempts + 1;
    let (kind, text, error) = match result {
        DeliveryResult::Sent { .. } => (
            EntryKind::Delivered,
            format!("Delivered the {what} to room {room}."),
            None,
        ),
        DeliveryResult::Failed { error, next_at, .. } => (
            EntryKind::DeliveryFailed,
            format!(
                "Delivering the {what} to room {room} failed (attempt {attempt}): {error}. Retrying at {}.",
                next_at.to_rfc3339()
            ),
            Some(error),
        ),
        DeliveryResult::Dead { error, .. } => (
            EntryKind::DeliveryDead,
            format!("Gave up delivering the {what} to room {room} after {attempt} attempts: {error}."),
            Some(error),
        ),
        DeliveryResult::Skipped { .. } => return None,
    };
    Some(EntryDraft::system(
        now,
        kind,
        format!("room:{room}"),
        text,
        serde_json::json!({"room": room, "delivery": d.id, "kind": d.kind.as_str(), "attempt": attempt, "error": error}),
    ))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(err))
            .await
    }

    async fn append_journal(&self, alerts: &[Alert]) -> Result<Vec<i64>> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Job::Append(alerts.to_vec(), tx))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))?
    }

    async fn pending_journal(&self, limit: usize) -> Result<JournalBatch> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT id, alert FROM journal ORDER BY id LIMIT ?1")
                .map_err(err)?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(err)?;
            let mut out = JournalBatch::default();
            for row in rows {
                let (id, json) = row.map_err(err)?;
                // A row that does not decode is reported apart: it must not hold up the others.
                match serde_json::from_str(&json) {
                    Ok(alert) => out.entries.push(JournalEntry::new(id, alert)),
                    Err(e) => out
                        .unreadable
                        .push((id, format!("the stored alert cannot be read: {e}"))),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn bury_journal(&self, journal_id: i64, reason: &str, now: Timestamp) -> Result<bool> {
        let reason = reason.to_string();
        self.write(move |t| dead::bury(t, journal_id, &reason, now))
            .await
    }

    async fn dead_journal(&self, limit: usize) -> Result<Vec<DeadJournal>> {
        self.read(move |c| dead::list(c, limit)).await
    }

    async fn retry_dead_journal(&self, id: i64, member: &str, now: Timestamp) -> Result<i64> {
        let member = member.to_string();
        self.write(move |t| dead::release(t, id, true, &member, now))
            .await?
            .ok_or_else(|| StoreError::Other("the retried row got no journal id".into()))
    }

    async fn delete_dead_journal(&self, id: i64, member: &str, now: Timestamp) -> Result<()> {
        let member = member.to_string();
        self.write(move |t| dead::release(t, id, false, &member, now))
            .await
            .map(|_| ())
    }

    async fn purge_tickets(&self, resolved_before: Timestamp, limit: usize) -> Result<usize> {
        self.write(move |t| retention::purge(t, resolved_before, limit))
            .await
    }

    async fn health(&self) -> Result<StoreHealth> {
        let problem = self.condition.problem();
        let mut health = self
            .read(|c| {
                let oldest: Option<i64> = c
                    .query_row(
                        "SELECT received_at FROM journal ORDER BY id LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?;
                Ok(StoreHealth {
                    oldest_pending: oldest.map(Timestamp::from_millis),
                    dead_journal: dead::count(c)?,
                    problem: None,
                })
            })
            .await?;
        health.problem = problem;
        Ok(health)
    }

    async fn apply_journal(
        &self,
        entries: Arc<[JournalEntry]>,
        policy: &Policy,
    ) -> Result<Vec<Applied>> {
        let policy = *policy;
        let router = self.router();
        self.write(move |t| {
            let mut out = Vec::with_capacity(entries.len());
            for e in entries.iter() {
                // Deleting first tells us whether this entry is still pending: if another worker (or an
                // earlier run that crashed after committing) applied it, the row is gone and we skip it.
                let pending = t
                    .prepare_cached("DELETE FROM journal WHERE id = ?1")
                    .and_then(|mut s| s.execute([e.id]))
                    .map_err(err)?;
                if pending != 1 {
                    continue;
                }
                match &e.dropped {
                    Some(drop) => {
                        record_drop(t, e, drop)?;
                        out.push(Applied {
                            journal_id: e.id,
                            ticket_id: None,
                            outcome: "dropped",
                        });
                    }
                    None => out.push(apply_one(t, e, &policy, router.as_deref())?),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn dropped(&self, limit: usize) -> Result<Vec<DroppedAlert>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, at, plugin, reason, alert FROM dropped ORDER BY id DESC LIMIT ?1",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([limit.min(KEEP_DROPPED as usize) as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, at, plugin, reason, alert) = row.map_err(err)?;
                out.push(DroppedAlert {
                    id,
                    at: Timestamp::from_millis(at),
                    plugin,
                    reason,
                    alert: serde_json::from_str(&alert).map_err(json_err)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        let router = self.router();
        self.write(move |t| {
            let due: Vec<Ticket> = {
                let mut stmt = t
                    .prepare_cached(&format!(
                        "SELECT {TICKET_COLUMNS} FROM tickets WHERE state <> 'resolved' \
                         AND ends_at IS NOT NULL AND ends_at <= ?1 ORDER BY ends_at LIMIT ?2"
                    ))
                    .map_err(err)?;
                let rows = stmt
                    .query_map(params![now.as_millis(), limit as i64], ticket_from_row)
                    .map_err(err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(err)?
            };
            let mut ids = Vec::new();
            for mut tk in due {
                if let Some(draft) = ticket::expire(&mut tk, now) {
                    let e = append_entry(t, &mut tk, draft)?;
                    enqueue(t, router.as_deref(), &mut tk, &e, None)?;
                    update_ticket(t, &tk)?;
                    ids.push(tk.id);
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn act(
        &self,
        r: &TicketRef,
        action: Action,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Ticket, Entry)> {
        let r = r.clone();
        let actor = actor.clone();
        let router = self.router();
        self.write(move |t| {
            let mut tk = find_ticket(t, &r)?.ok_or(StoreError::NotFound)?;
            let draft = ticket::act(&mut tk, &action, &actor, now)?;
            let entry = append_entry(t, &mut tk, draft)?;
            enqueue(t, router.as_deref(), &mut tk, &entry, None)?;
            update_ticket(t, &tk)?;
            Ok((tk, entry))
        })
        .await
    }

    async fn feed(&self, q: &FeedQuery) -> Result<Vec<FeedEvent>> {
        let q = q.clone();
        self.read(move |c| {
            let mut sql = String::from(
                "SELECT f.id, f.ticket_id, tk.number, tk.title, \
                 tl.seq, tl.at, tl.kind, tl.visibility, tl.actor, tl.text, tl.data \
                 FROM feed f JOIN timeline tl ON tl.ticket_id = f.ticket_id AND tl.seq = f.seq \
                 JOIN tickets tk ON tk.id = f.ticket_id WHERE f.id > ?1",
            );
            let mut args: Vec<rusqlite::types::Value> = vec![q.after.into()];
            if let Some(id) = &q.ticket_id {
                args.push(id.clone().into());
                sql.push_str(&format!(" AND f.ticket_id = ?{}", args.len()));
            }
            if let Some(room) = &q.room {
                args.push(room.clone().into());
                sql.push_str(&format!(
                    " AND f.ticket_id IN (SELECT ticket_id FROM ticket_rooms WHERE room = ?{})",
                    args.len()
                ));
            }
            sql.push_str(&in_list(
                " AND tl.visibility",
                &mut args,
                q.visible.iter().map(|v| v.as_str()),
            ));
            args.push((q.limit.max(1) as i64).into());
            sql.push_str(&format!(" ORDER BY f.id LIMIT ?{}", args.len()));
            let mut stmt = c.prepare_cached(&sql).map_err(err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    let number: i64 = r.get(2)?;
                    Ok(FeedEvent {
                        id: r.get(0)?,
                        ticket_id: r.get(1)?,
                        ticket: format!("T-{number}"),
                        title: r.get(3)?,
                        entry: entry_from_row_at(r, 4)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    fn feed_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.feed.subscribe()
    }

    async fn ticket_root(&self, ticket_id: &str, room: &str) -> Result<Option<String>> {
        let (ticket_id, room) = (ticket_id.to_string(), room.to_string());
        self.read(move |c| {
            c.prepare_cached("SELECT handle FROM threads WHERE ticket_id = ?1 AND room = ?2")
                .and_then(|mut s| {
                    s.query_row(params![ticket_id, room], |r| r.get(0))
                        .optional()
                })
                .map_err(err)
        })
        .await
    }

    async fn ticket_by_root(&self, room: &str, handle: &str) -> Result<Option<Ticket>> {
        let (room, handle) = (room.to_string(), handle.to_string());
        self.read(move |c| {
            let id: Option<String> = c
                .prepare_cached("SELECT ticket_id FROM threads WHERE room = ?1 AND handle = ?2")
                .and_then(|mut s| s.query_row(params![room, handle], |r| r.get(0)).optional())
                .map_err(err)?;
            match id {
                Some(id) => find_ticket(c, &TicketRef::Id(id)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn create_silence(&self, draft: SilenceDraft, now: Timestamp) -> Result<Silence> {
        self.write(move |t| {
            let current: usize = t
                .query_row(
                    "SELECT COUNT(*) FROM silences WHERE ends_at > ?1",
                    [now.as_millis()],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if current >= silence::MAX_SILENCES {
                return Err(StoreError::Full(format!(
                    "{current} silences are in force or upcoming, the most there may be; expire some first"
                )));
            }
            let matchers = serde_json::to_string(&draft.matchers).map_err(json_err)?;
            t.prepare_cached(
                "INSERT INTO silences (matchers, starts_at, ends_at, comment, author, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    matchers,
                    draft.starts_at.as_millis(),
                    draft.ends_at.as_millis(),
                    draft.comment,
                    draft.author,
                    now.as_millis(),
                ])
            })
            .map_err(err)?;
            find_silence(t, t.last_insert_rowid())?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn silences(&self, active_at: Option<Timestamp>) -> Result<Vec<Silence>> {
        self.read(move |c| match active_at {
            Some(at) => {
                let mut all = active_silences(c, at)?;
                all.reverse();
                Ok(all)
            }
            None => {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id DESC"
                    ))
                    .map_err(err)?;
                let rows = stmt.query_map([], silence_from_row).map_err(err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(err)
            }
        })
        .await
    }

    async fn silences_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>> {
        self.read(move |c| silences_in_force(c, from, to)).await
    }

    async fn expire_silence(&self, id: i64, member: &str, now: Timestamp) -> Result<Silence> {
        let member = member.to_string();
        self.write(move |t| {
            let current = find_silence(t, id)?.ok_or(StoreError::NotFound)?;
            if current.ends_at <= now {
                return Ok(current);
            }
            // A silence that has not started yet ends before it ever applied.
            t.prepare_cached(
                "UPDATE silences SET ends_at = ?2, starts_at = MIN(starts_at, ?2), expired_by = ?3 \
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, now.as_millis(), member]))
            .map_err(err)?;
            find_silence(t, id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn get_ticket(&self, r: &TicketRef) -> Result<Ticket> {
        let r = r.clone();
        self.read(move |c| find_ticket(c, &r)?.ok_or(StoreError::NotFound))
            .await
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let filter = filter.clone();
        self.read(move |c| {
            let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            sql.push_str(&in_list(
                " AND state",
                &mut args,
                filter.states.iter().map(|v| v.as_str()),
            ));
            sql.push_str(&in_list(
                " AND severity",
                &mut args,
                filter.severities.iter().map(|v| v.as_str()),
            ));
            if let Some(source) = &filter.source {
                args.push(source.clone().into());
                sql.push_str(&format!(" AND source = ?{}", args.len()));
            }
            if let Some(room) = &filter.room {
                args.push(room.clone().into());
                sql.push_str(&format!(
                    " AND id IN (SELECT ticket_id FROM ticket_rooms WHERE room = ?{})",
                    args.len()
                ));
            }
            if let Some(q) = filter.text.as_deref().and_then(fts_query) {
                args.push(q.into());
                let mut sub = format!(
                    "SELECT ticket_id FROM search WHERE search MATCH ?{}",
                    args.len()
                );
                sub.push_str(&in_list(
                    " AND visibility",
                    &mut args,
                    filter.visible.iter().map(|v| v.as_str()),
                ));
                sql.push_str(&format!(" AND id IN ({sub})"));
            }
            if let Some(before) = filter.before_number {
                args.push(before.into());
                sql.push_str(&format!(" AND number < ?{}", args.len()));
            }
            args.push((filter.limit as i64).into());
            sql.push_str(&format!(" ORDER BY number DESC LIMIT ?{}", args.len()));
            let mut stmt = c.prepare_cached(&sql).map_err(err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), ticket_from_row)
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn timeline(&self, ticket_id: &str, after: i64, limit: usize) -> Result<Vec<Entry>> {
        let id = ticket_id.to_string();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, at, kind, visibility, actor, text, data FROM timeline \
                     WHERE ticket_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map(params![id, after, limit as i64], entry_from_row)
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn stats(&self) -> Result<Stats> {
        self.read(|c| {
            let mut stats = Stats::default();
            let mut stmt = c
                // Kept by triggers: O(1) in the number of tickets.
                .prepare_cached("SELECT state, n FROM ticket_counts")
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
                .map_err(err)?;
            for row in rows {
                let (state, n) = row.map_err(err)?;
                match TicketState::from_name(&state) {
                    Some(TicketState::Open) => stats.open = n,
                    Some(TicketState::Acked) => stats.acked = n,
                    Some(TicketState::Resolved) => stats.resolved = n,
                    None => {}
                }
            }
            (stats.journal_backlog, stats.journal_bytes) = c
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(length(alert)), 0) FROM journal",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(err)?;
            Ok(stats)
        })
        .await
    }

    fn set_router(&self, router: Arc<Router>) {
        if let Ok(mut r) = self.router.write() {
            *r = Some(router);
        }
    }

    async fn outbox_backlog(&self, now: Timestamp) -> Result<Vec<RoomBacklog>> {
        self.read(move |c| {
            // Rows held until a room's hours start are not there yet: they neither count nor block.
            let mut stmt = c
                .prepare_cached(
                    "SELECT o.room, COUNT(*), \
                     (SELECT h.next_at FROM outbox h WHERE h.room = o.room AND h.state = 'pending' \
                      AND (h.held_until IS NULL OR h.held_until <= ?1) ORDER BY h.id LIMIT 1) \
                     FROM outbox o WHERE o.state = 'pending' \
                     AND (o.held_until IS NULL OR o.held_until <= ?1) GROUP BY o.room",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([now.as_millis()], |r| {
                    Ok(RoomBacklog {
                        room: r.get(0)?,
                        pending: r.get::<_, i64>(1)? as u64,
                        head_next_at: Timestamp::from_millis(r.get(2)?),
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn outbox_pending(
        &self,
        room: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let room = room.to_string();
        let (good, bad) = self
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {DELIVERY_COLUMNS} FROM outbox o \
                     LEFT JOIN threads th ON th.ticket_id = o.ticket_id AND th.room = o.room \
                     WHERE o.room = ?1 AND o.state = 'pending' \
                     AND (o.held_until IS NULL OR o.held_until <= ?2) ORDER BY o.id LIMIT ?3"
                    ))
                    .map_err(err)?;
                let rows = stmt
                    .query_map(params![room, now.as_millis(), limit as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, delivery_from_row(r)))
                    })
                    .map_err(err)?;
                // A row that cannot be read is set aside, not allowed to hold up its room.
                let mut good = Vec::new();
                let mut bad = Vec::new();
                for row in rows {
                    match row.map_err(err)? {
                        (_, Ok(d)) => good.push(d),
                        (id, Err(e)) => bad.push((id, e.to_string())),
                    }
                }
                Ok((good, bad))
            })
            .await?;
        if !bad.is_empty() {
            self.write(move |t| {
                for (id, e) in &bad {
                    tracing::error!(delivery = id, error = %e, "An outbox row cannot be read; it goes dead alone.");
                    t.prepare_cached(
                        "UPDATE outbox SET state = 'dead', last_error = ?2 WHERE id = ?1 AND state = 'pending'",
                    )
                    .and_then(|mut s| {
                        s.execute(params![id, format!("the stored delivery cannot be read: {e}")])
                    })
                    .map_err(err)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(good)
    }

    async fn outbox_complete(&self, results: Vec<DeliveryResult>, now: Timestamp) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        self.write(move |t| {
            for result in &results {
                let id = match result {
                    DeliveryResult::Sent { id, .. }
                    | DeliveryResult::Failed { id, .. }
                    | DeliveryResult::Dead { id, .. }
                    | DeliveryResult::Skipped { id, .. } => *id,
                };
                let Some(d) = find_delivery(t, id)? else {
                    continue;
                };
                match result {
                    DeliveryResult::Sent { handle, .. } => {
                        if let (DeliveryKind::Root, Some(h), Some(ticket)) =
                            (d.kind, handle, &d.ticket_id)
                        {
                            t.prepare_cached(
                                "INSERT OR REPLACE INTO threads (ticket_id, room, handle) VALUES (?1, ?2, ?3)",
                            )
                            .and_then(|mut s| s.execute(params![ticket, d.room, h]))
                            .map_err(err)?;
                        }
                        t.prepare_cached("DELETE FROM outbox WHERE id = ?1")
                            .and_then(|mut s| s.execute([id]))
                            .map_err(err)?;
                    }
                    DeliveryResult::Skipped { .. } => {
                        t.prepare_cached("DELETE FROM outbox WHERE id = ?1")
                            .and_then(|mut s| s.execute([id]))
                            .map_err(err)?;
                    }
                    DeliveryResult::Failed { error, next_at, .. } => {
                        t.prepare_cached(
                            "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                        )
                        .and_then(|mut s| s.execute(params![id, next_at.as_millis(), error]))
                        .map_err(err)?;
                    }
                    DeliveryResult::Dead { error, .. } => {
                        t.prepare_cached(
                            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                        )
                        .and_then(|mut s| s.execute(params![id, error]))
                        .map_err(err)?;
                    }
                }
                if let (Some(ticket), Some(draft)) = (&d.ticket_id, delivery_entry(&d, result, now)) {
                    append_system_entry(t, ticket, draft)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn outbox_digest(
        &self,
        room: &str,
        covered: Vec<i64>,
        digest: Content,
        now: Timestamp,
    ) -> Result<i64> {
        let room = room.to_string();
        self.write(move |t| {
            let id = insert_delivery(t, &room, None, DeliveryKind::Digest, &digest, now, None)?;
            for c in covered {
                let ticket: Option<Option<String>> = t
                    .prepare_cached(
                        "DELETE FROM outbox WHERE id = ?1 AND state = 'pending' RETURNING ticket_id",
                    )
                    .and_then(|mut s| s.query_row([c], |r| r.get(0)).optional())
                    .map_err(err)?;
                if let Some(Some(ticket)) = ticket {
                    let draft = EntryDraft::system(
                        now,
                        EntryKind::Digested,
                        format!("room:{room}"),
                        format!("Room {room} is in a storm: this change went into its digest instead of a message of its own."),
                        serde_json::json!({"room": room, "delivery": c, "digest": id}),
                    );
                    append_system_entry(t, &ticket, draft)?;
                }
            }
            Ok(id)
        })
        .await
    }

    async fn outbox_dead(&self, limit: usize) -> Result<Vec<Delivery>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox o \
                     LEFT JOIN threads th ON th.ticket_id = o.ticket_id AND th.room = o.room \
                     WHERE o.state = 'dead' ORDER BY o.id DESC LIMIT ?1"
                ))
                .map_err(err)?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, delivery_from_row(r)))
                })
                .map_err(err)?;
            // Rows that cannot be read are left out of the list (their ids are logged), so one
            // cannot hide all the others from the admin page.
            let mut out = Vec::new();
            for row in rows {
                match row.map_err(err)? {
                    (_, Ok(d)) => out.push(d),
                    (id, Err(e)) => {
                        tracing::warn!(delivery = id, error = %e, "A dead outbox row cannot be read.")
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn set_presence(&self, member: &str, presence: Presence) -> Result<()> {
        let member = member.to_string();
        self.write(move |t| {
            t.prepare_cached(
                "INSERT INTO presence (member, source, state, since) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (member, source) DO UPDATE SET state = ?3, since = ?4",
            )
            .and_then(|mut s| {
                s.execute(params![
                    member,
                    presence.source,
                    presence.state.as_str(),
                    presence.since.as_millis()
                ])
            })
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn presence(&self) -> Result<Vec<(String, Presence)>> {
        self.read(presence_rows).await
    }

    async fn outbox_retry(&self, id: i64, member: &str, now: Timestamp) -> Result<Delivery> {
        let member = member.to_string();
        self.write(move |t| {
            let n = t
                .prepare_cached(
                    "UPDATE outbox SET state = 'pending', attempts = 0, created_at = ?2, next_at = ?2 \
                     WHERE id = ?1 AND state = 'dead'",
                )
                .and_then(|mut s| s.execute(params![id, now.as_millis()]))
                .map_err(err)?;
            if n != 1 {
                return Err(StoreError::NotFound);
            }
            let d = find_delivery(t, id)?.ok_or(StoreError::NotFound)?;
            if let Some(ticket) = &d.ticket_id {
                let draft = EntryDraft::system(
                    now,
                    EntryKind::DeliveryFailed,
                    format!("member:{member}"),
                    format!("{member} put the dead delivery to room {} back in line.", d.room),
                    serde_json::json!({"room": d.room, "delivery": d.id, "kind": d.kind.as_str(), "retried_by": member}),
                );
                append_system_entry(t, ticket, draft)?;
            }
            Ok(d)
        })
        .await
    }

    async fn emails_due(&self, now: Timestamp, limit: usize) -> Result<Vec<PendingEmail>> {
        let (out, bad) = self.read(move |c| {
            let rows: Vec<(i64, String, String, String, i64, u32)> = {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT id, member, ticket_id, reason, created_at, attempts FROM emails \
                         WHERE state = 'pending' AND next_at <= ?1 ORDER BY member, next_at, id LIMIT ?2",
                    )
                    .map_err(err)?;
                let rows = stmt
                    .query_map(params![now.as_millis(), limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                    })
                    .map_err(err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(err)?
            };
            let mut out = Vec::with_capacity(rows.len());
            let mut bad = Vec::new();
            for (id, member, ticket_id, reason, created_at, attempts) in rows {
                // An email whose ticket is gone or cannot be read fails alone; left pending, it
                // would come back first every time and hold up the member's other emails.
                let ticket = match find_ticket(c, &TicketRef::Id(ticket_id)) {
                    Ok(Some(ticket)) => ticket,
                    Ok(None) => {
                        bad.push((id, "its ticket no longer exists".to_string()));
                        continue;
                    }
                    Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                    Err(e) => {
                        bad.push((id, format!("its ticket cannot be read: {e}")));
                        continue;
                    }
                };
                out.push(PendingEmail {
                    id,
                    member,
                    ticket,
                    reason: serde_json::from_str::<MailReason>(&reason).unwrap_or(MailReason::Member),
                    created_at: Timestamp::from_millis(created_at),
                    attempts,
                });
            }
            Ok((out, bad))
        })
        .await?;
        if !bad.is_empty() {
            self.write(move |t| {
                for (id, e) in &bad {
                    tracing::error!(email = id, error = %e, "An email row cannot be sent; it fails alone.");
                    t.prepare_cached(
                        "UPDATE emails SET state = 'failed', last_error = ?2 WHERE id = ?1 AND state = 'pending'",
                    )
                    .and_then(|mut s| s.execute(params![id, e]))
                    .map_err(err)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    async fn mailbox(&self, member: &str) -> Result<Mailbox> {
        let member = member.to_string();
        self.read(move |c| {
            let last_sent: Option<i64> = c
                .prepare_cached("SELECT MAX(sent_at) FROM emails WHERE member = ?1")
                .and_then(|mut s| s.query_row([&member], |r| r.get(0)))
                .map_err(err)?;
            let unsubscribed: bool = c
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM unsubscribed WHERE member = ?1)")
                .and_then(|mut s| s.query_row([&member], |r| r.get(0)))
                .map_err(err)?;
            Ok(Mailbox {
                last_sent: last_sent.map(Timestamp::from_millis),
                unsubscribed,
            })
        })
        .await
    }

    async fn email_thread(&self, member: &str, ticket_id: &str) -> Result<Option<EmailThread>> {
        let (member, ticket_id) = (member.to_string(), ticket_id.to_string());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT root, last FROM email_threads WHERE member = ?1 AND ticket_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![member, ticket_id], |r| {
                    Ok(EmailThread {
                        root: r.get(0)?,
                        last: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(err)
        })
        .await
    }

    async fn emails_complete(&self, results: Vec<EmailResult>, now: Timestamp) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        self.write(move |t| {
            for result in &results {
                let ids: Vec<i64> = match result {
                    EmailResult::Sent { ids, .. }
                    | EmailResult::Deferred { ids, .. }
                    | EmailResult::Failed { ids, .. }
                    | EmailResult::GaveUp { ids, .. } => ids.clone(),
                    EmailResult::Cancelled { id, .. } => vec![*id],
                };
                // Only emails still pending: a result for one already settled (a second worker, a
                // replay after a crash) must not write twice.
                let mut rows: Vec<(i64, String, String)> = Vec::new();
                for id in &ids {
                    let row = t
                        .prepare_cached("SELECT member, ticket_id FROM emails WHERE id = ?1 AND state = 'pending'")
                        .and_then(|mut s| {
                            s.query_row([id], |r| Ok((*id, r.get(0)?, r.get(1)?)))
                                .optional()
                        })
                        .map_err(err)?;
                    rows.extend(row);
                }
                let tickets: BTreeSet<&str> = rows.iter().map(|(_, _, tk)| tk.as_str()).collect();
                let covers = tickets.len();
                for (id, member, ticket_id) in &rows {
                    let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
                        t.prepare_cached(sql)
                            .and_then(|mut s| s.execute(p))
                            .map_err(err)
                    };
                    match result {
                        EmailResult::Sent { message_id, .. } => run(
                            "UPDATE emails SET state = 'sent', sent_at = ?2, message_id = ?3, \
                             attempts = attempts + 1 WHERE id = ?1",
                            params![id, now.as_millis(), message_id],
                        )?,
                        EmailResult::Deferred { until, .. } => run(
                            "UPDATE emails SET next_at = ?2 WHERE id = ?1",
                            params![id, until.as_millis()],
                        )?,
                        EmailResult::Cancelled { reason, .. } => run(
                            "UPDATE emails SET state = 'cancelled', last_error = ?2 WHERE id = ?1",
                            params![id, reason],
                        )?,
                        EmailResult::Failed { error, next_at, .. } => run(
                            "UPDATE emails SET attempts = attempts + 1, next_at = ?2, last_error = ?3 \
                             WHERE id = ?1",
                            params![id, next_at.as_millis(), error],
                        )?,
                        EmailResult::GaveUp { error, .. } => run(
                            "UPDATE emails SET state = 'failed', attempts = attempts + 1, last_error = ?2 \
                             WHERE id = ?1",
                            params![id, error],
                        )?,
                    };
                    if let (EmailResult::Sent { message_id, .. }, 1) = (result, covers) {
                        t.prepare_cached(
                            "INSERT INTO email_threads (member, ticket_id, root, last) VALUES (?1, ?2, ?3, ?3) \
                             ON CONFLICT (member, ticket_id) DO UPDATE SET last = ?3",
                        )
                        .and_then(|mut s| s.execute(params![member, ticket_id, message_id]))
                        .map_err(err)?;
                    }
                }
                // One timeline entry per ticket, even when a digest covered two mentions of it.
                let mut seen = BTreeSet::new();
                for (_, member, ticket_id) in &rows {
                    if seen.insert(ticket_id.as_str()) {
                        if let Some(draft) = email_entry(member, result, covers, now) {
                            append_system_entry(t, ticket_id, draft)?;
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn set_unsubscribed(
        &self,
        member: &str,
        unsubscribed: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let member = member.to_string();
        self.write(move |t| {
            let n = if unsubscribed {
                t.prepare_cached("INSERT OR IGNORE INTO unsubscribed (member, at) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![member, now.as_millis()]))
            } else {
                t.prepare_cached("DELETE FROM unsubscribed WHERE member = ?1")
                    .and_then(|mut s| s.execute([&member]))
            }
            .map_err(err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn unsubscribed(&self) -> Result<BTreeSet<String>> {
        self.read(unsubscribed_members).await
    }

    async fn session_generation(&self, member: &str) -> Result<i64> {
        let member = member.to_string();
        self.read(move |c| sessions::generation(c, &member)).await
    }

    async fn end_sessions(&self, member: &str) -> Result<i64> {
        let member = member.to_string();
        self.write(move |t| sessions::bump(t, &member)).await
    }

    async fn take_email_reply(
        &self,
        message_id: &str,
        replies: Vec<EmailReply>,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<usize> {
        let message_id = message_id.to_string();
        let router = self.router();
        self.write(move |t| {
            take_email_reply(t, router.as_deref(), &message_id, replies, until, now)
        })
        .await
    }
}
