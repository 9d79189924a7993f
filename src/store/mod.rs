//! Storage: one object-safe [`Store`] trait, with SQLite as the embedded backend.
//!
//! Only `store/` names a database crate. The trait speaks in domain operations ("append these alerts to
//! the journal", "apply this batch"), never SQL, so PostgreSQL can implement it without callers changing.
//! Backends do the transaction; the decisions inside it come from `domain::ticket`, so every backend
//! follows the same rules. `tests/store_story.rs` is the behaviour every backend must pass.

mod engine;
mod ops;
pub mod postgres;
mod sqlite;
pub mod tx;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::StorageUrl;
use crate::domain::alert::Alert;
use crate::domain::alert::Severity;
use crate::domain::change::{Change, ChangeDraft};
use crate::domain::decision::PluginDecision;
use crate::domain::lease::Lease;
use crate::domain::mail::MailReason;
use crate::domain::message::Content;
use crate::domain::plugin::{DropInfo, PluginFailure};
use crate::domain::presence::Presence;
use crate::domain::routing::{DeliveryKind, Router};
use crate::domain::silence::{Silence, SilenceDraft};
use crate::domain::ticket::{Action, ActionError, Actor, Policy, Ticket, TicketState};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, Visibility};

pub use engine::{current_fence, fenced, Backend, Durability, Engine};
pub use postgres::{PgBackend, PgStore};
pub use sqlite::{SqliteBackend, SqliteStore};

/// How many dropped alerts are kept for inspection.
pub const KEEP_DROPPED: usize = 1000;

/// Errors a store can return. Callers decide what to do from the variant.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The action is not allowed in the ticket's current state.
    #[error(transparent)]
    Rejected(#[from] ActionError),
    /// The database cannot be reached or is busy; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bounded collection is full (silences in force, ...): the caller must make room first.
    #[error("{0}")]
    Full(String),
    /// A write under a lease (see [`fenced`]) that another instance has taken over since: refused, so
    /// an instance that was paused or cut off cannot act as the owner.
    #[error("lease lost: {0}")]
    Fenced(String),
    #[error("storage error: {0}")]
    Other(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A tocsin instance sharing the database, as it last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    /// Where it serves HTTP.
    pub address: String,
    pub version: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
}

/// An alert accepted into the journal and not yet applied to tickets.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Journal position; entries are applied in this order.
    pub id: i64,
    /// The alert; after the plugin chain ran, with its changes applied.
    pub alert: Alert,
    /// Plugins that failed on this alert (recorded on the ticket's timeline).
    pub failures: Vec<PluginFailure>,
    /// What the plugins changed, change by change (recorded on the timeline when it is news).
    pub decisions: Vec<PluginDecision>,
    /// Set if a plugin dropped the alert: it makes no ticket and is kept in the dropped list instead.
    pub dropped: Option<DropInfo>,
    /// The silences that may apply to this alert's ticket changes ([`Silence::may_silence`]), found by
    /// the processor before the batch is applied, so the store's writer does not evaluate every
    /// silence's matchers itself. `None`: not looked at; the store checks all silences in force.
    pub silences: Option<Vec<Silence>>,
}

impl JournalEntry {
    pub fn new(id: i64, alert: Alert) -> Self {
        JournalEntry {
            id,
            alert,
            failures: Vec::new(),
            decisions: Vec::new(),
            dropped: None,
            silences: None,
        }
    }
}

/// The oldest unapplied journal rows: those that decode, and those that do not (which the processor
/// moves aside with [`Store::bury_journal`] so they never hold up the rows behind them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalBatch {
    pub entries: Vec<JournalEntry>,
    /// `(journal id, why it cannot be read)`.
    pub unreadable: Vec<(i64, String)>,
}

impl JournalBatch {
    /// Rows in this batch, readable or not.
    pub fn len(&self) -> usize {
        self.entries.len() + self.unreadable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A journal row that could not be decoded or applied, moved aside: kept as it was stored, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadJournal {
    pub id: i64,
    /// Its position in the journal when it was moved aside (its system ticket names it).
    pub journal_id: i64,
    pub received_at: Timestamp,
    pub buried_at: Timestamp,
    pub reason: String,
    /// The stored alert, verbatim (JSON when it was written by this version).
    pub alert: String,
}

/// What readiness needs from the store, cheap to read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreHealth {
    /// When the oldest unapplied journal row was received.
    pub oldest_pending: Option<Timestamp>,
    /// Rows in the dead journal.
    pub dead_journal: u64,
    /// Why the store cannot work now.
    pub problem: Option<StoreProblem>,
}

/// What keeps the store from working, with the backend's own words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StoreProblem {
    /// The one writer has stopped: nothing can be written until a restart.
    WriterStopped,
    /// Writes keep failing for a reason that is not the data's (disk full, IO errors).
    WritesFailing(String),
    /// The database failed its integrity check at start.
    Corrupt(String),
}

impl StoreProblem {
    /// A fixed phrase, safe to show anyone (`/readyz`).
    pub fn reason(&self) -> &'static str {
        match self {
            StoreProblem::WriterStopped => "the database writer has stopped",
            StoreProblem::WritesFailing(_) => "database writes are failing",
            StoreProblem::Corrupt(_) => "the database is corrupt",
        }
    }
}

impl std::fmt::Display for StoreProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreProblem::WriterStopped => f.write_str(self.reason()),
            StoreProblem::WritesFailing(e) => write!(f, "writes are failing: {e}"),
            StoreProblem::Corrupt(e) => write!(f, "the database is corrupt (quick_check: {e})"),
        }
    }
}

/// An alert a plugin dropped, as kept for people to inspect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DroppedAlert {
    pub id: i64,
    pub at: Timestamp,
    pub plugin: String,
    pub reason: String,
    pub alert: Alert,
}

/// What applying one journal entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub journal_id: i64,
    pub ticket_id: Option<String>,
    /// `opened`, `resent`, `refired`, `reopened`, `resolved` or `ignored`.
    pub outcome: &'static str,
}

/// How a ticket is named in a request: its id or its `T-42` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketRef {
    Id(String),
    Number(i64),
}

impl TicketRef {
    /// `T-42`, `t-42` and `42` are numbers; anything else is an id.
    pub fn parse(text: &str) -> TicketRef {
        let digits = text
            .strip_prefix("T-")
            .or_else(|| text.strip_prefix("t-"))
            .unwrap_or(text);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 => TicketRef::Number(n),
            _ => TicketRef::Id(text.to_string()),
        }
    }
}

/// Filter and page for ticket lists, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub states: Vec<TicketState>,
    pub severities: Vec<Severity>,
    pub source: Option<String>,
    /// Only tickets routing sent to this room.
    pub room: Option<String>,
    /// Full-text search over titles and timeline texts (words; each must occur, as a word prefix).
    pub text: Option<String>,
    /// Which entries the text search may look at (the viewer's visibility); empty means all.
    pub visible: Vec<Visibility>,
    pub limit: usize,
    /// Only tickets with a number below this (the cursor).
    pub before_number: Option<i64>,
}

/// Filter and page for change lists, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only changes that came through this tocsin source.
    pub source: Option<String>,
    pub limit: usize,
    /// Only changes with an id below this (the cursor).
    pub before_id: Option<i64>,
}

/// The most tickets one change is put on when it arrives (the newest open ones of its system).
pub const MAX_CHANGE_TICKETS: usize = 500;

/// Where a live reader resumes, and what it wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedQuery {
    /// Only events with a larger id (the `Last-Event-ID` a client saw last).
    pub after: i64,
    pub ticket_id: Option<String>,
    /// Only tickets routing sent to this room.
    pub room: Option<String>,
    /// Only entries with these visibilities; empty means all.
    pub visible: Vec<Visibility>,
    pub limit: usize,
}

/// One timeline entry in the global feed, in commit order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedEvent {
    /// Increases with every entry written, across tickets: what `Last-Event-ID` resumes from.
    pub id: i64,
    pub ticket_id: String,
    /// `T-42`.
    pub ticket: String,
    pub title: String,
    pub entry: Entry,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub open: u64,
    pub acked: u64,
    pub resolved: u64,
    pub journal_backlog: u64,
    /// Bytes of the unapplied alerts as stored.
    pub journal_bytes: u64,
}

/// A message in the outbox: pending (waiting for its turn or its retry) or dead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub room: String,
    /// `None` for storm digests.
    pub ticket_id: Option<String>,
    pub kind: DeliveryKind,
    pub content: Content,
    /// `pending` or `dead`.
    pub state: String,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub next_at: Timestamp,
    pub last_error: Option<String>,
    /// The platform handle of the ticket's root message in this room, once it was delivered.
    pub root: Option<String>,
}

/// A room's pending deliveries, for the outbox worker's scheduling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomBacklog {
    pub room: String,
    pub pending: u64,
    /// When the oldest pending delivery may be tried (later ones wait behind it: order per room).
    pub head_next_at: Timestamp,
}

/// How one attempt at a delivery ended, as the worker reports it to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryResult {
    /// Delivered: removed from the outbox. A root message's handle becomes the ticket's thread.
    Sent { id: i64, handle: Option<String> },
    /// Failed for now: tried again at `next_at`.
    Failed {
        id: i64,
        error: String,
        next_at: Timestamp,
    },
    /// Given up on: kept as dead for admins to see and retry.
    Dead { id: i64, error: String },
    /// Nothing to send (an edit of a root message that was never delivered): removed.
    Skipped { id: i64, reason: String },
}

impl DeliveryResult {
    /// The delivery this is the result of.
    pub fn id(&self) -> i64 {
        match self {
            DeliveryResult::Sent { id, .. }
            | DeliveryResult::Failed { id, .. }
            | DeliveryResult::Dead { id, .. }
            | DeliveryResult::Skipped { id, .. } => *id,
        }
    }
}

/// A scheduled email that is due, with its ticket as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEmail {
    pub id: i64,
    pub member: String,
    pub ticket: Ticket,
    pub reason: MailReason,
    /// When the member was mentioned.
    pub created_at: Timestamp,
    pub attempts: u32,
}

/// What the mailer needs to know about a member's mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// When the member was last emailed (batching counts its window from here).
    pub last_sent: Option<Timestamp>,
    pub unsubscribed: bool,
}

/// The emails a member already got about a ticket: the first one's Message-ID and the latest one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailThread {
    pub root: String,
    pub last: String,
}

/// One member's reply by email to one ticket (see [`Store::take_email_reply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailReply {
    pub ticket: TicketRef,
    pub actor: Actor,
    /// Applied in order.
    pub actions: Vec<ReplyAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplyAction {
    pub action: Action,
    /// When the ticket's state refuses it (an `ack` of an acked ticket), skip it instead of
    /// refusing the whole reply.
    pub optional: bool,
}

/// How the mailer dealt with due emails, as it reports it to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum EmailResult {
    /// Sent as one email (a digest when `ids` cover several tickets).
    Sent { ids: Vec<i64>, message_id: String },
    /// Waiting for the member's batch window or rate limit: not tried, no timeline entry.
    Deferred { ids: Vec<i64>, until: Timestamp },
    /// No longer wanted (the member came online, the ticket was acked, ...).
    Cancelled { id: i64, reason: String },
    /// Failed for now; tried again at `next_at`.
    Failed {
        ids: Vec<i64>,
        error: String,
        next_at: Timestamp,
    },
    /// Refused for good, or too old to keep trying.
    GaveUp { ids: Vec<i64>, error: String },
}

/// One live entry of a plugin's key-value store, as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: String,
    /// When it stops counting; `None` keeps it until it is overwritten or deleted.
    pub expires_at: Option<Timestamp>,
}

/// A change to a plugin's saved key-value store (see [`Store::write_plugin_kv`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvChange {
    /// Inserts the entry or replaces the one with its key.
    Put(KvEntry),
    /// Deletes the key, if it is there.
    Delete(String),
}

/// Everything tocsin keeps. Object-safe: held as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Cheap round trip to check the backend is reachable.
    async fn ping(&self) -> Result<()>;

    /// Durably appends alerts to the journal. When this returns `Ok`, the alerts survive a crash.
    async fn append_journal(&self, alerts: &[Alert]) -> Result<Vec<i64>>;

    /// The oldest unapplied journal rows, in order; rows that cannot be decoded come back apart.
    async fn pending_journal(&self, limit: usize) -> Result<JournalBatch> {
        self.pending_journal_after(0, limit).await
    }

    /// The oldest unapplied journal rows with ids above `after`, in order: the processor reads the
    /// next batch with it while the one before, up to `after`, is still being applied.
    async fn pending_journal_after(&self, after: i64, limit: usize) -> Result<JournalBatch>;

    /// Moves journal row `journal_id` to the dead journal with `reason`, and in the same transaction
    /// appends a system alert naming it (unless the row is itself such a notice). `false` if the row was
    /// no longer in the journal.
    async fn bury_journal(&self, journal_id: i64, reason: &str, now: Timestamp) -> Result<bool>;

    /// The dead journal, newest first.
    async fn dead_journal(&self, limit: usize) -> Result<Vec<DeadJournal>>;

    /// Puts dead row `id` back at the end of the journal as it was stored, and resolves its system
    /// ticket. Returns its new journal id.
    async fn retry_dead_journal(&self, id: i64, member: &str, now: Timestamp) -> Result<i64>;

    /// Deletes dead row `id` for good and resolves its system ticket.
    async fn delete_dead_journal(&self, id: i64, member: &str, now: Timestamp) -> Result<()>;

    /// Deletes up to `limit` tickets resolved before `resolved_before`, oldest first, with their
    /// timelines, feed, search, room, outbox and email rows, in one transaction. Returns how many;
    /// callers repeat until fewer than `limit`. Ticket numbers are never reused.
    async fn purge_tickets(&self, resolved_before: Timestamp, limit: usize) -> Result<usize>;

    /// The oldest pending journal row, the dead journal's size, and any problem the backend knows of.
    async fn health(&self) -> Result<StoreHealth>;

    /// Applies journal entries to tickets and timelines and removes them from the journal, all in one
    /// transaction, so each entry takes effect exactly once even across crashes. Entries already applied
    /// (no longer in the journal) are skipped.
    async fn apply_journal(
        &self,
        entries: Arc<[JournalEntry]>,
        policy: &Policy,
    ) -> Result<Vec<Applied>>;

    /// The most recently dropped alerts, newest first. The store keeps the last 1,000.
    async fn dropped(&self, limit: usize) -> Result<Vec<DroppedAlert>>;

    /// Resolves active tickets whose lease ended at or before `now`. Returns the ids it resolved.
    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>>;

    /// A member's action on a ticket, with the entry it appended.
    async fn act(
        &self,
        ticket: &TicketRef,
        action: Action,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Ticket, Entry)>;

    /// Timeline entries across tickets in the order they were written, after `query.after`.
    async fn feed(&self, query: &FeedQuery) -> Result<Vec<FeedEvent>>;

    /// The id of the latest feed event, updated after every commit that wrote entries: live readers
    /// wait on it instead of polling.
    fn feed_watch(&self) -> tokio::sync::watch::Receiver<i64>;

    /// The ticket whose root message in `room` has this platform handle (chat replies in its thread).
    async fn ticket_by_root(&self, room: &str, handle: &str) -> Result<Option<Ticket>>;

    /// The handle of the ticket's root message in `room`, if it was delivered there (the other way
    /// round from [`Store::ticket_by_root`]).
    async fn ticket_root(&self, ticket_id: &str, room: &str) -> Result<Option<String>>;

    /// Stores a silence.
    async fn create_silence(&self, draft: SilenceDraft, now: Timestamp) -> Result<Silence>;

    /// Silences, newest first; only those still in force at `active_at` when it is given.
    async fn silences(&self, active_at: Option<Timestamp>) -> Result<Vec<Silence>>;

    /// Silences in force at some moment from `from` to `to` (both included), oldest first: what may
    /// apply to a batch of alerts received in that span.
    async fn silences_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>>;

    /// Ends a silence now. `NotFound` for an unknown id; an already ended one is returned unchanged.
    async fn expire_silence(&self, id: i64, member: &str, now: Timestamp) -> Result<Silence>;

    async fn get_ticket(&self, ticket: &TicketRef) -> Result<Ticket>;

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>>;

    /// Entries with `seq > after`, in order, at most `limit`.
    async fn timeline(&self, ticket_id: &str, after: i64, limit: usize) -> Result<Vec<Entry>>;

    async fn stats(&self) -> Result<Stats>;

    /// Routing for the deliveries ticket changes cause: from now on every change that routing sends
    /// somewhere is written to the outbox in the same transaction. Without a router, none are.
    fn set_router(&self, router: Arc<Router>);

    /// Rooms with pending deliveries at `now`. Deliveries held until later (a room outside its business
    /// hours) are not counted and hold nothing up.
    async fn outbox_backlog(&self, now: Timestamp) -> Result<Vec<RoomBacklog>>;

    /// A room's oldest pending deliveries at `now`, in order, at most `limit`, leaving out those held
    /// until later.
    async fn outbox_pending(
        &self,
        room: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>>;

    /// Records attempts, with a timeline entry on each ticket, in one transaction.
    async fn outbox_complete(&self, results: Vec<DeliveryResult>, now: Timestamp) -> Result<()>;

    /// Replaces pending deliveries of a room by one digest delivery, recording on each ticket's timeline
    /// that its change went into the digest. Returns the digest's delivery id.
    async fn outbox_digest(
        &self,
        room: &str,
        covered: Vec<i64>,
        digest: Content,
        now: Timestamp,
    ) -> Result<i64>;

    /// Dead deliveries, newest first.
    async fn outbox_dead(&self, limit: usize) -> Result<Vec<Delivery>>;

    /// Records what one source says about a member's presence (replacing its earlier report).
    async fn set_presence(&self, member: &str, presence: Presence) -> Result<()>;

    /// Every member's latest report per source.
    async fn presence(&self) -> Result<Vec<(String, Presence)>>;

    /// Puts a dead delivery back in line, due now, with a fresh age, and records on the ticket's timeline
    /// who did. `NotFound` unless it is dead.
    async fn outbox_retry(&self, id: i64, member: &str, now: Timestamp) -> Result<Delivery>;

    /// Scheduled emails due at `now`, grouped by member (members in name order, then by due time).
    async fn emails_due(&self, now: Timestamp, limit: usize) -> Result<Vec<PendingEmail>>;

    async fn mailbox(&self, member: &str) -> Result<Mailbox>;

    /// The thread of emails a member got about a ticket, if any.
    async fn email_thread(&self, member: &str, ticket_id: &str) -> Result<Option<EmailThread>>;

    /// Records what the mailer did, with timeline entries on each ticket, in one transaction.
    async fn emails_complete(&self, results: Vec<EmailResult>, now: Timestamp) -> Result<()>;

    /// Turns a member's email off (or back on). Returns whether anything changed.
    async fn set_unsubscribed(
        &self,
        member: &str,
        unsubscribed: bool,
        now: Timestamp,
    ) -> Result<bool>;

    /// Members who turned email off.
    async fn unsubscribed(&self) -> Result<BTreeSet<String>>;

    /// A member's browser-session generation: session cookies name the one they were issued in.
    async fn session_generation(&self, member: &str) -> Result<i64>;

    /// Ends every session of a member (signing out): bumps their generation, returns the new one.
    async fn end_sessions(&self, member: &str) -> Result<i64>;

    /// Takes one email's replies (one per ticket and member it was addressed to) in one transaction:
    /// all are stored or none. A reply whose `(message_id, ticket, member)` was taken before is
    /// skipped, so a replayed message or an MTA's retry after a lost answer adds nothing; taken ones
    /// are remembered until `until` (when their reply address expires), and expired ones forgotten.
    /// Any failure but an optional action's refusal rolls all back. Returns how many were new.
    async fn take_email_reply(
        &self,
        message_id: &str,
        replies: Vec<EmailReply>,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<usize>;

    /// Takes or renews lease `name` for `holder` until `now + ttl`: the lease (its `token` grows only
    /// when it changes hands) while `holder` holds it, `None` while another instance does.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>>;

    /// Lets lease `name` go if `holder` holds it, so another instance can take it at once.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Every lease there is, by name.
    async fn leases(&self) -> Result<Vec<Lease>>;

    /// Records that `instance` is alive (inserting it, or moving its heartbeat to `heartbeat_at`).
    async fn heartbeat(&self, instance: &Instance) -> Result<()>;

    /// Every instance that heartbeated and was not forgotten, by id.
    async fn instances(&self) -> Result<Vec<Instance>>;

    /// Forgets instances whose last heartbeat is older than `before`. Returns how many.
    async fn forget_instances(&self, before: Timestamp) -> Result<usize>;

    /// Plugin `plugin`'s saved key-value store: the entries not expired at `now` (expired ones
    /// never come back), by key.
    async fn plugin_kv(&self, plugin: &str, now: Timestamp) -> Result<Vec<KvEntry>>;

    /// Saves changes to plugin `plugin`'s key-value store, in order, in one transaction, and deletes
    /// its entries expired at `now`. Fenced like every write made under a lease, so an instance that
    /// lost the journal cannot overwrite the state its successor keeps.
    async fn write_plugin_kv(
        &self,
        plugin: &str,
        changes: Vec<KvChange>,
        now: Timestamp,
    ) -> Result<()>;

    /// Stores a change event and, in the same transaction, puts it on the timelines of the open or
    /// acked tickets it concerns (see `domain::change`; at most [`MAX_CHANGE_TICKETS`], newest
    /// first), at `now`. Tickets opened later find it when they open ([`Store::apply_journal`]).
    /// Returns the stored change and the ids of the tickets it was put on.
    async fn record_change(
        &self,
        draft: ChangeDraft,
        now: Timestamp,
    ) -> Result<(Change, Vec<String>)>;

    /// Changes, newest first, filtered and paged.
    async fn changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>>;
}

/// Opens the backend named by a storage URL, creating and migrating it as needed.
pub async fn open(url: &StorageUrl) -> Result<Arc<dyn Store>> {
    match url {
        StorageUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Other(e.to_string()))??;
            Ok(Arc::new(store))
        }
        StorageUrl::Postgres(url) => Ok(Arc::new(PgStore::connect(url).await?)),
    }
}
