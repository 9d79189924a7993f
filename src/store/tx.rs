//! The transaction interface: the reads and writes each backend implements, grouped by concern.
//!
//! Why: what happens inside a transaction (apply a journal batch, an action, an outbox result...) is
//! written once, in `store/ops/`, over `&mut dyn Tx`. A backend only says how each small read or write
//! is done in its SQL; it never decides anything. Methods are synchronous: the orchestration is a
//! sequence of dependent statements inside one transaction, with nothing to overlap, and SQLite's
//! driver is synchronous anyway (PostgreSQL's implementation runs each transaction on its connection's
//! own thread). Reads that are not part of a write (lists, the feed, counts) live here too, so one
//! [`super::engine::Engine`] serves every backend.
//!
//! Every method maps a database failure to [`super::StoreError::Unavailable`] when retrying may help
//! (the database is busy or gone) and to [`super::StoreError::Other`] otherwise.

use std::collections::BTreeSet;

use super::{
    ChangeFilter, DeadJournal, Delivery, DeliveryResult, DroppedAlert, EmailResult, EmailThread,
    FeedEvent, FeedQuery, Instance, JournalBatch, KvChange, KvEntry, Result, RoomBacklog, Stats,
    TicketFilter, TicketRef,
};
use crate::domain::alert::Alert;
use crate::domain::change::{Change, ChangeDraft};
use crate::domain::lease::{Fence, Lease};
use crate::domain::mail::MailReason;
use crate::domain::message::Content;
use crate::domain::presence::Presence;
use crate::domain::routing::DeliveryKind;
use crate::domain::silence::{Silence, SilenceDraft};
use crate::domain::ticket::{Heartbeat, Ticket};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind};

/// Rows that could be read, and those that could not as `(id, why)`: one bad row never holds up the
/// others.
pub type Sorted<T> = (Vec<T>, Vec<(i64, String)>);

/// A new outbox row, pending from `at` (its creation time), held until `held_until` when set.
#[derive(Debug, Clone, Copy)]
pub struct NewDelivery<'a> {
    pub room: &'a str,
    /// `None` for storm digests.
    pub ticket_id: Option<&'a str>,
    pub kind: DeliveryKind,
    pub content: &'a Content,
    pub at: Timestamp,
    pub held_until: Option<Timestamp>,
}

/// A delivery as its attempt found it (`OutboxRows::settle_deliveries`): what the ticket's timeline
/// entry and the thread need. Returned by the statement that settles the row, so recording a send
/// does not read the row first (a round trip on PostgreSQL, where each send is recorded on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub room: String,
    pub ticket_id: Option<String>,
    pub kind: DeliveryKind,
    /// Attempts before this one.
    pub attempts: u32,
}

/// The journal: accepted alerts not yet applied, the dead journal beside it, and dropped alerts.
pub trait JournalRows {
    /// Appends alerts in order and returns their journal ids (increasing).
    fn append_journal(&mut self, alerts: &[Alert]) -> Result<Vec<i64>>;
    /// Appends a row as it was stored (a dead row put back), returning its new id.
    fn append_journal_raw(&mut self, received_at: Timestamp, alert: &str) -> Result<i64>;
    /// The oldest `limit` rows with ids above `after`, decoded where they decode.
    fn pending_journal(&mut self, after: i64, limit: usize) -> Result<JournalBatch>;
    /// Deletes the rows still there among `ids` and returns those it deleted (rows already applied
    /// are gone).
    fn take_journal_many(&mut self, ids: &[i64]) -> Result<BTreeSet<i64>>;
    /// Deletes a row and returns `(received_at, alert as stored)`.
    fn take_journal_row(&mut self, id: i64) -> Result<Option<(Timestamp, String)>>;
    /// When the oldest row was received.
    fn oldest_pending(&mut self) -> Result<Option<Timestamp>>;
    /// Rows waiting and their stored size in bytes (a backend may estimate both past a size where
    /// counting costs more than it tells: PostgreSQL past 10,000 rows).
    fn journal_size(&mut self) -> Result<(u64, u64)>;
    fn insert_dead(
        &mut self,
        journal_id: i64,
        received_at: Timestamp,
        buried_at: Timestamp,
        reason: &str,
        alert: &str,
    ) -> Result<()>;
    /// Deletes a dead row and returns `(journal_id, received_at, alert)`.
    fn take_dead(&mut self, id: i64) -> Result<Option<(i64, Timestamp, String)>>;
    fn dead_journal(&mut self, limit: usize) -> Result<Vec<DeadJournal>>;
    fn dead_count(&mut self) -> Result<u64>;
    /// Keeps a dropped alert; the backend keeps only the newest [`super::KEEP_DROPPED`].
    fn insert_dropped(
        &mut self,
        at: Timestamp,
        plugin: &str,
        reason: &str,
        alert: &Alert,
    ) -> Result<()>;
    /// Newest first.
    fn dropped(&mut self, limit: usize) -> Result<Vec<DroppedAlert>>;
}

/// Tickets and their timelines.
pub trait TicketRows {
    /// The current ticket of a key. Inside a write, the row stays locked until commit.
    fn latest_for_key(&mut self, source: &str, fingerprint: &str) -> Result<Option<Ticket>>;
    /// Inside a write, the row stays locked until commit.
    fn find_ticket(&mut self, r: &TicketRef) -> Result<Option<Ticket>>;
    /// The ticket is no longer its key's current one (a new ticket replaces it).
    fn retire_ticket(&mut self, id: &str) -> Result<()>;
    /// A number above every ticket there is and ever was.
    fn next_ticket_number(&mut self) -> Result<i64>;
    /// Takes `count()` ticket numbers at once for the next calls of
    /// [`TicketRows::next_ticket_number`] in this transaction, where a number costs a round trip
    /// (PostgreSQL); numbers not used are gaps, as after a rollback. A no-op where numbers are cheap
    /// (SQLite), which then does not call `count` (counting costs a decision per key, on SQLite's
    /// one writer thread).
    fn reserve_ticket_numbers(&mut self, count: &dyn Fn() -> usize) -> Result<()> {
        let _ = count;
        Ok(())
    }
    /// Inserts a ticket as its key's current one, with its title searchable.
    fn insert_ticket(&mut self, ticket: &Ticket) -> Result<()>;
    /// Inserts a new ticket and its first entry: [`TicketRows::insert_ticket`] then
    /// [`TicketRows::insert_entry`], in one statement where the backend can (one round trip on
    /// PostgreSQL instead of two, for every alert that opens a ticket).
    fn insert_opened(&mut self, ticket: &Ticket, entry: &Entry) -> Result<()> {
        self.insert_ticket(ticket)?;
        self.insert_entry(&ticket.id, entry)
    }
    fn update_ticket(&mut self, ticket: &Ticket) -> Result<()>;
    /// The current tickets of these `(source, fingerprint)` keys (keys without one are left out), in
    /// one statement where the backend can. Inside a write, the rows stay locked until commit.
    fn latest_for_keys(&mut self, keys: &[(String, String)]) -> Result<Vec<Ticket>>;
    /// Saves only heartbeats' fields (`updated_at`, `last_seen`, `ends_at`, `resend_count`), for
    /// resends that changed nothing else ([`crate::domain::ticket::is_heartbeat`]), in one statement
    /// where the backend can.
    fn touch_tickets(&mut self, beats: &[Heartbeat]) -> Result<()>;
    /// Open or acked tickets whose lease ended at or before `now`, soonest first.
    fn tickets_expiring(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Ticket>>;
    /// Takes the ticket's next `seq` in the database itself; `None` when there is no such ticket.
    fn next_seq(&mut self, ticket_id: &str) -> Result<Option<i64>>;
    /// [`Self::next_seq`] for each ticket in order, a ticket named twice taking two seqs, in one
    /// statement where statements are round trips (an outbox step records all its sends at once).
    fn next_seqs(&mut self, ticket_ids: &[&str]) -> Result<Vec<Option<i64>>>;
    /// Writes an entry with its feed position and search row.
    fn insert_entry(&mut self, ticket_id: &str, entry: &Entry) -> Result<()>;
    fn timeline(&mut self, ticket_id: &str, after: i64, limit: usize) -> Result<Vec<Entry>>;
    /// The newest of the ticket's entries of these kinds.
    fn latest_entry_kind(
        &mut self,
        ticket_id: &str,
        kinds: &[EntryKind],
    ) -> Result<Option<EntryKind>>;
    fn add_ticket_room(&mut self, room: &str, ticket_id: &str) -> Result<()>;
    /// The rooms a ticket's firing was queued for or delivered to.
    fn fired_rooms(&mut self, ticket_id: &str) -> Result<BTreeSet<String>>;
    fn add_fired_room(&mut self, ticket_id: &str, room: &str) -> Result<()>;
    /// Deletes up to `limit` tickets resolved before `cutoff`, oldest first, with all their rows.
    fn purge_resolved(&mut self, cutoff: Timestamp, limit: usize) -> Result<usize>;
}

/// Reading across tickets: lists with full-text search, the feed live readers resume from, counts.
pub trait FeedRows {
    /// Newest first, filtered (with full-text search), paged.
    fn list_tickets(&mut self, filter: &TicketFilter) -> Result<Vec<Ticket>>;
    /// Entries across tickets in feed order.
    fn feed(&mut self, query: &FeedQuery) -> Result<Vec<FeedEvent>>;
    fn stats(&mut self) -> Result<Stats>;
}

/// The outbox: deliveries to rooms, their threads, off-hours notices.
pub trait OutboxRows {
    /// Writes a delivery; returns its id.
    fn insert_delivery(&mut self, d: NewDelivery<'_>) -> Result<i64>;
    /// A delivery whose id the caller does not need (routing's, from `enqueue`). A backend may keep
    /// it and write it with the transaction's other kept rows (PostgreSQL's write-behind); the
    /// transaction's next statement sees it either way.
    fn queue_delivery(&mut self, d: NewDelivery<'_>) -> Result<()> {
        self.insert_delivery(d).map(drop)
    }
    fn find_delivery(&mut self, id: i64) -> Result<Option<Delivery>>;
    /// A room's pending deliveries due by their hold, in order; rows that cannot be read come apart
    /// as `(id, why)`.
    fn pending_deliveries(
        &mut self,
        room: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Sorted<Delivery>>;
    fn backlog(&mut self, now: Timestamp) -> Result<Vec<RoomBacklog>>;
    /// Newest first; rows that cannot be read are left out.
    fn dead_deliveries(&mut self, limit: usize) -> Result<Vec<Delivery>>;
    /// Records how each attempt ended, in order, as if one by one: removes the row, or counts the
    /// attempt (and kills it when dead). Returns, for each result, what its record needs of the row
    /// as it was, `None` when there was no such row (or an earlier result took it).
    fn settle_deliveries(&mut self, results: &[DeliveryResult]) -> Result<Vec<Option<Settled>>>;
    /// A pending row that cannot be read goes dead with why.
    fn kill_delivery(&mut self, id: i64, error: &str) -> Result<()>;
    /// Removes pending rows (into a digest); for each id in order, `Some(ticket_id)` when it was
    /// there (the first time it is named).
    fn take_pending_deliveries(&mut self, ids: &[i64]) -> Result<Vec<Option<Option<String>>>>;
    /// A dead row back in line; false when no dead row has that id.
    fn revive_delivery(&mut self, id: i64, now: Timestamp) -> Result<bool>;
    fn set_thread(&mut self, ticket_id: &str, room: &str, handle: &str) -> Result<()>;
    fn thread_root(&mut self, ticket_id: &str, room: &str) -> Result<Option<String>>;
    fn thread_ticket(&mut self, room: &str, handle: &str) -> Result<Option<String>>;
    fn notice_posted(&mut self, room: &str, period_start: Timestamp) -> Result<bool>;
    fn record_notice(&mut self, room: &str, period_start: Timestamp, at: Timestamp) -> Result<()>;
}

/// A due email row as stored: `(id, member, ticket_id, reason, created_at, attempts)`.
pub type EmailRow = (i64, String, String, MailReason, Timestamp, u32);

/// Emails to members, their threads, and replies taken.
pub trait EmailRows {
    fn email_waiting(&mut self, member: &str, ticket_id: &str) -> Result<bool>;
    fn insert_email(
        &mut self,
        member: &str,
        ticket_id: &str,
        reason: &MailReason,
        created_at: Timestamp,
        due: Timestamp,
    ) -> Result<i64>;
    /// Pending rows due by `now`, by member then due time.
    fn emails_due(&mut self, now: Timestamp, limit: usize) -> Result<Vec<EmailRow>>;
    /// `(member, ticket_id)` of a row still pending.
    fn pending_email(&mut self, id: i64) -> Result<Option<(String, String)>>;
    /// Records what happened to one row of a result.
    fn settle_email(&mut self, id: i64, result: &EmailResult, now: Timestamp) -> Result<()>;
    /// A pending row that cannot be sent fails with why.
    fn fail_email(&mut self, id: i64, error: &str) -> Result<()>;
    fn set_email_thread(&mut self, member: &str, ticket_id: &str, message_id: &str) -> Result<()>;
    fn email_thread(&mut self, member: &str, ticket_id: &str) -> Result<Option<EmailThread>>;
    fn last_sent(&mut self, member: &str) -> Result<Option<Timestamp>>;
    /// Forgets replies whose address expired by `now`.
    fn forget_replies(&mut self, now: Timestamp) -> Result<()>;
    /// Remembers a reply; false when it was taken before.
    fn remember_reply(
        &mut self,
        message_id: &str,
        ticket_id: &str,
        member: &str,
        until: Timestamp,
    ) -> Result<bool>;
}

/// Members: presence, unsubscribes, browser session generations.
pub trait MemberRows {
    /// Every report, by member.
    fn presence(&mut self) -> Result<Vec<(String, Presence)>>;
    fn set_presence(&mut self, member: &str, presence: &Presence) -> Result<()>;
    fn unsubscribed(&mut self) -> Result<BTreeSet<String>>;
    fn is_unsubscribed(&mut self, member: &str) -> Result<bool>;
    /// True when it changed something.
    fn set_unsubscribed(
        &mut self,
        member: &str,
        unsubscribed: bool,
        now: Timestamp,
    ) -> Result<bool>;
    fn session_generation(&mut self, member: &str) -> Result<i64>;
    /// Bumps and returns the new generation.
    fn bump_session(&mut self, member: &str) -> Result<i64>;
}

/// Silences.
pub trait SilenceRows {
    /// In force at some moment from `from` to `to` (both included), oldest first.
    fn silences_between(&mut self, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>>;
    /// Every silence, newest first.
    fn all_silences(&mut self) -> Result<Vec<Silence>>;
    /// In force or upcoming at `now`.
    fn silences_ending_after(&mut self, now: Timestamp) -> Result<usize>;
    fn insert_silence(&mut self, draft: &SilenceDraft, now: Timestamp) -> Result<i64>;
    fn find_silence(&mut self, id: i64) -> Result<Option<Silence>>;
    /// Ends it at `now` (a silence not started yet ends before it ever applied).
    fn end_silence(&mut self, id: i64, now: Timestamp, member: &str) -> Result<()>;
}

/// Leases shared by the instances on one database (see `domain::lease`).
pub trait LeaseRows {
    /// The lease named `name`. Inside a write it stays locked until commit, so two instances asking at
    /// once are served one after the other.
    fn lease(&mut self, name: &str) -> Result<Option<Lease>>;
    /// Stores a lease (inserting or replacing the one of that name).
    fn put_lease(&mut self, lease: &Lease) -> Result<()>;
    /// Moves the expiry of lease `name` to `expires_at` if `holder` holds it unexpired at `now`; the
    /// renewed lease, or `None`. Unlike [`LeaseRows::lease`] it does not wait for writes fenced under the
    /// lease (a renewal changes no holder or token), so a long write never makes its own lease lapse.
    fn renew_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<Lease>>;
    /// Every lease, by name.
    fn leases(&mut self) -> Result<Vec<Lease>>;
    /// Whether the fence's holder still holds its lease with its token. Inside a write the lease stays
    /// locked against a takeover until commit, so what the write does happens under the lease.
    fn fence_holds(&mut self, fence: &Fence) -> Result<bool>;
    /// Inserts the instance or replaces its row.
    fn put_instance(&mut self, instance: &Instance) -> Result<()>;
    /// Every instance, by id.
    fn instances(&mut self) -> Result<Vec<Instance>>;
    /// Deletes instances whose heartbeat is older than `before`; how many.
    fn delete_instances(&mut self, before: Timestamp) -> Result<usize>;
}

/// Plugins' key-value stores, one per plugin name.
pub trait PluginRows {
    /// The plugin's entries not expired at `now`, by key.
    fn plugin_kv(&mut self, plugin: &str, now: Timestamp) -> Result<Vec<KvEntry>>;
    /// Inserts the entry or replaces the one with its key.
    fn put_plugin_kv(&mut self, plugin: &str, entry: &KvEntry) -> Result<()>;
    fn delete_plugin_kv(&mut self, plugin: &str, key: &str) -> Result<()>;
    /// Applies `changes` in order: each key ends as its last change left it. One by one here;
    /// PostgreSQL, where each statement is a round trip, writes them in two (a plugin saves a key
    /// per alert it holds, so a batch of new alerts is hundreds of changes).
    fn change_plugin_kv(&mut self, plugin: &str, changes: &[KvChange]) -> Result<()> {
        for change in changes {
            match change {
                KvChange::Put(entry) => self.put_plugin_kv(plugin, entry)?,
                KvChange::Delete(key) => self.delete_plugin_kv(plugin, key)?,
            }
        }
        Ok(())
    }
    /// Deletes the plugin's entries expired at `now`; how many.
    fn delete_expired_plugin_kv(&mut self, plugin: &str, now: Timestamp) -> Result<usize>;
}

/// Change events (`domain::change`) and the tickets they are shown on.
pub trait ChangeRows {
    /// Stores a change; its id. On PostgreSQL this first takes the feed lock the transactions that
    /// write entries take (see `postgres/tickets.rs`), so a change and a ticket opening at the same
    /// time are ordered: whichever commits second sees the other and links them.
    fn insert_change(&mut self, change: &ChangeDraft) -> Result<i64>;
    /// Newest first.
    fn changes(&mut self, filter: &ChangeFilter) -> Result<Vec<Change>>;
    /// Changes that tickets opening at `at` or later may still be shown (`attach_until >= at`),
    /// newest first, at most `limit`.
    fn changes_attachable(&mut self, at: Timestamp, limit: usize) -> Result<Vec<Change>>;
    /// Ids of the current open or acked tickets of `source` whose `source` label is `label`, newest
    /// first, at most `limit`.
    fn open_tickets_labelled(
        &mut self,
        source: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// Deletes changes received before `before` (retention); how many.
    fn purge_changes(&mut self, before: Timestamp) -> Result<usize>;
}

/// All of it: what `store/ops/` works on.
pub trait Tx:
    JournalRows
    + TicketRows
    + FeedRows
    + OutboxRows
    + EmailRows
    + MemberRows
    + SilenceRows
    + LeaseRows
    + PluginRows
    + ChangeRows
{
}

impl<
        T: JournalRows
            + TicketRows
            + FeedRows
            + OutboxRows
            + EmailRows
            + MemberRows
            + SilenceRows
            + LeaseRows
            + PluginRows
            + ChangeRows,
    > Tx for T
{
}
