//! One [`Store`] for every backend: each operation is a read or a write transaction running the
//! shared orchestration (`store/ops/`) over the backend's [`Tx`].
//!
//! A backend provides only how to run a closure in a transaction ([`Backend`]), how to append to the
//! journal fast (SQLite groups appends into one commit), how live readers are woken, and what it
//! knows is wrong with itself.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::tx::Tx;
use super::{
    ops, Applied, ChangeFilter, DeadJournal, Delivery, DeliveryResult, DroppedAlert, EmailReply,
    EmailResult, EmailThread, FeedEvent, FeedQuery, Instance, JournalBatch, JournalEntry, KvChange,
    KvEntry, Mailbox, PendingEmail, Result, RoomBacklog, Stats, Store, StoreError, StoreHealth,
    StoreProblem, TicketFilter, TicketRef,
};
use crate::domain::alert::Alert;
use crate::domain::change::{Change, ChangeDraft};
use crate::domain::lease::{Fence, Lease};
use crate::domain::message::Content;
use crate::domain::presence::Presence;
use crate::domain::routing::Router;
use crate::domain::silence::{Silence, SilenceDraft};
use crate::domain::ticket::{Action, Actor, Policy, Ticket};
use crate::domain::time::Timestamp;
use crate::domain::timeline::Entry;

/// When a write's commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the write returns: what a caller may answer 2xx on.
    Now,
    /// Possibly only with a later durable commit. For writes that are made again from what is on disk
    /// when a power cut undoes them: applying journal rows (deleted in the same commit, so they come
    /// back with it) and records of sends (the send is made again: at least once, as after a crash
    /// between a send and its record). A crash of tocsin alone loses nothing either way.
    Deferred,
}

/// What a storage backend provides. Closures run off the async runtime, inside one transaction.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// Runs `f` in a write transaction, committed when it returns `Ok`, rolled back otherwise.
    /// Wakes live readers when the commit wrote timeline entries. `durability` may be ignored by a
    /// backend whose commits are all durable.
    fn write<T, F>(&self, durability: Durability, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static;

    /// Runs `f` on a consistent read-only view.
    fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static;

    /// Appends alerts to the journal durably (before the caller answers 2xx).
    fn append_journal(&self, alerts: &[Alert]) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// Answers when the database does.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// The latest feed id, moved after every commit that wrote entries (on any instance sharing the
    /// database, where the backend can tell).
    fn feed_watch(&self) -> tokio::sync::watch::Receiver<i64>;

    /// What keeps the backend from working now, if anything.
    fn problem(&self) -> Option<StoreProblem>;
}

tokio::task_local! {
    /// The lease the current task works under, if any (see [`fenced`]).
    static FENCE: Fence;
}

/// Runs `work` under `fence`: every write it makes through a [`Store`] first checks, in the same
/// transaction, that the fence's holder still holds the lease with its token, and fails with
/// [`StoreError::Fenced`] otherwise.
///
/// Why a task-local rather than a parameter: a lease holder's work (a room's sends, the journal, the
/// mailer) writes through many store operations, and each must be fenced, including ones added later.
/// Scoping the work once fences them all; nothing can forget to pass it.
pub async fn fenced<F: Future>(fence: Fence, work: F) -> F::Output {
    FENCE.scope(fence, work).await
}

/// The fence the calling task works under, if any.
pub fn current_fence() -> Option<Fence> {
    FENCE.try_with(Fence::clone).ok()
}

/// A [`Store`] over a [`Backend`].
#[derive(Debug)]
pub struct Engine<B> {
    pub(super) backend: B,
    router: std::sync::RwLock<Option<Arc<Router>>>,
}

impl<B: Backend> Engine<B> {
    pub fn new(backend: B) -> Self {
        Engine {
            backend,
            router: std::sync::RwLock::new(None),
        }
    }

    fn router(&self) -> Option<Arc<Router>> {
        self.router.read().ok().and_then(|r| r.clone())
    }

    /// A durable write transaction, fenced when the calling task works under a lease (see [`fenced`]).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.write_as(Durability::Now, f).await
    }

    /// A write transaction committed with `durability`, fenced as [`Engine::write`].
    async fn write_as<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        match FENCE.try_with(Fence::clone) {
            Err(_) => self.backend.write(durability, f).await,
            Ok(fence) => {
                self.backend
                    .write(durability, move |tx| {
                        if !tx.fence_holds(&fence)? {
                            return Err(StoreError::Fenced(format!(
                                "{} no longer holds lease {} with token {}",
                                fence.holder, fence.lease, fence.token
                            )));
                        }
                        f(tx)
                    })
                    .await
            }
        }
    }
}

#[async_trait]
impl<B: Backend> Store for Engine<B> {
    async fn ping(&self) -> Result<()> {
        self.backend.ping().await
    }

    async fn append_journal(&self, alerts: &[Alert]) -> Result<Vec<i64>> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.append_journal(alerts).await
    }

    async fn pending_journal_after(&self, after: i64, limit: usize) -> Result<JournalBatch> {
        self.backend
            .read(move |tx| tx.pending_journal(after, limit))
            .await
    }

    async fn bury_journal(&self, journal_id: i64, reason: &str, now: Timestamp) -> Result<bool> {
        let reason = reason.to_string();
        self.write(move |tx| ops::journal::bury(tx, journal_id, &reason, now))
            .await
    }

    async fn dead_journal(&self, limit: usize) -> Result<Vec<DeadJournal>> {
        self.backend.read(move |tx| tx.dead_journal(limit)).await
    }

    async fn retry_dead_journal(&self, id: i64, member: &str, now: Timestamp) -> Result<i64> {
        let member = member.to_string();
        self.write(move |tx| ops::journal::release(tx, id, true, &member, now))
            .await?
            .ok_or_else(|| StoreError::Other("the retried row got no journal id".into()))
    }

    async fn delete_dead_journal(&self, id: i64, member: &str, now: Timestamp) -> Result<()> {
        let member = member.to_string();
        self.write(move |tx| ops::journal::release(tx, id, false, &member, now))
            .await
            .map(|_| ())
    }

    async fn purge_tickets(&self, resolved_before: Timestamp, limit: usize) -> Result<usize> {
        // Change events go with the tickets they were shown on: kept as long as resolved tickets are.
        self.write(move |tx| {
            tx.purge_changes(resolved_before)?;
            tx.purge_resolved(resolved_before, limit)
        })
        .await
    }

    async fn health(&self) -> Result<StoreHealth> {
        let (oldest_pending, dead_journal) = self
            .backend
            .read(|tx| Ok((tx.oldest_pending()?, tx.dead_count()?)))
            .await?;
        // After the read: a backend that learns from it (the database is back) answers up to date.
        let problem = self.backend.problem();
        Ok(StoreHealth {
            oldest_pending,
            dead_journal,
            problem,
        })
    }

    async fn apply_journal(
        &self,
        entries: Arc<[JournalEntry]>,
        policy: &Policy,
    ) -> Result<Vec<Applied>> {
        let policy = *policy;
        let router = self.router();
        // Deferred: the journal rows are deleted in this commit, so one undone comes back with them.
        self.write_as(Durability::Deferred, move |tx| {
            ops::apply::batch(tx, &entries, &policy, router.as_deref())
        })
        .await
    }

    async fn dropped(&self, limit: usize) -> Result<Vec<DroppedAlert>> {
        self.backend
            .read(move |tx| tx.dropped(limit.min(super::KEEP_DROPPED)))
            .await
    }

    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        let router = self.router();
        self.write(move |tx| ops::apply::expire(tx, now, limit, router.as_deref()))
            .await
    }

    async fn act(
        &self,
        r: &TicketRef,
        action: Action,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Ticket, Entry)> {
        let (r, actor) = (r.clone(), actor.clone());
        let router = self.router();
        self.write(move |tx| ops::apply::act(tx, &r, &action, &actor, now, router.as_deref()))
            .await
    }

    async fn feed(&self, q: &FeedQuery) -> Result<Vec<FeedEvent>> {
        let q = q.clone();
        self.backend.read(move |tx| tx.feed(&q)).await
    }

    fn feed_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.backend.feed_watch()
    }

    async fn ticket_root(&self, ticket_id: &str, room: &str) -> Result<Option<String>> {
        let (ticket_id, room) = (ticket_id.to_string(), room.to_string());
        self.backend
            .read(move |tx| tx.thread_root(&ticket_id, &room))
            .await
    }

    async fn ticket_by_root(&self, room: &str, handle: &str) -> Result<Option<Ticket>> {
        let (room, handle) = (room.to_string(), handle.to_string());
        self.backend
            .read(move |tx| match tx.thread_ticket(&room, &handle)? {
                Some(id) => tx.find_ticket(&TicketRef::Id(id)),
                None => Ok(None),
            })
            .await
    }

    async fn create_silence(&self, draft: SilenceDraft, now: Timestamp) -> Result<Silence> {
        self.write(move |tx| ops::create_silence(tx, &draft, now))
            .await
    }

    async fn silences(&self, active_at: Option<Timestamp>) -> Result<Vec<Silence>> {
        self.backend
            .read(move |tx| match active_at {
                Some(at) => {
                    let mut all = tx.silences_between(at, at)?;
                    all.reverse();
                    Ok(all)
                }
                None => tx.all_silences(),
            })
            .await
    }

    async fn silences_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>> {
        self.backend
            .read(move |tx| tx.silences_between(from, to))
            .await
    }

    async fn expire_silence(&self, id: i64, member: &str, now: Timestamp) -> Result<Silence> {
        let member = member.to_string();
        self.write(move |tx| ops::expire_silence(tx, id, &member, now))
            .await
    }

    async fn get_ticket(&self, r: &TicketRef) -> Result<Ticket> {
        let r = r.clone();
        self.backend
            .read(move |tx| tx.find_ticket(&r)?.ok_or(StoreError::NotFound))
            .await
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        let filter = filter.clone();
        self.backend.read(move |tx| tx.list_tickets(&filter)).await
    }

    async fn timeline(&self, ticket_id: &str, after: i64, limit: usize) -> Result<Vec<Entry>> {
        let id = ticket_id.to_string();
        self.backend
            .read(move |tx| tx.timeline(&id, after, limit))
            .await
    }

    async fn stats(&self) -> Result<Stats> {
        self.backend.read(|tx| tx.stats()).await
    }

    fn set_router(&self, router: Arc<Router>) {
        if let Ok(mut r) = self.router.write() {
            *r = Some(router);
        }
    }

    async fn outbox_backlog(&self, now: Timestamp) -> Result<Vec<RoomBacklog>> {
        self.backend.read(move |tx| tx.backlog(now)).await
    }

    async fn outbox_pending(
        &self,
        room: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let room = room.to_string();
        let (good, bad) = self
            .backend
            .read(move |tx| tx.pending_deliveries(&room, now, limit))
            .await?;
        if !bad.is_empty() {
            // A row that cannot be read goes dead alone instead of holding up its room.
            self.write(move |tx| {
                    for (id, e) in &bad {
                        tracing::error!(delivery = id, error = %e, "An outbox row cannot be read; it goes dead alone.");
                        tx.kill_delivery(*id, &format!("the stored delivery cannot be read: {e}"))?;
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
        // Deferred: a record undone by a power cut leaves its delivery pending, sent again.
        self.write_as(Durability::Deferred, move |tx| {
            ops::outbox::complete(tx, &results, now)
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
        self.write(move |tx| ops::outbox::digest(tx, &room, &covered, &digest, now))
            .await
    }

    async fn outbox_dead(&self, limit: usize) -> Result<Vec<Delivery>> {
        self.backend.read(move |tx| tx.dead_deliveries(limit)).await
    }

    async fn set_presence(&self, member: &str, presence: Presence) -> Result<()> {
        let member = member.to_string();
        self.write(move |tx| tx.set_presence(&member, &presence))
            .await
    }

    async fn presence(&self) -> Result<Vec<(String, Presence)>> {
        self.backend.read(|tx| tx.presence()).await
    }

    async fn outbox_retry(&self, id: i64, member: &str, now: Timestamp) -> Result<Delivery> {
        let member = member.to_string();
        self.write(move |tx| ops::outbox::retry(tx, id, &member, now))
            .await
    }

    async fn emails_due(&self, now: Timestamp, limit: usize) -> Result<Vec<PendingEmail>> {
        let (out, bad) = self
            .backend
            .read(move |tx| ops::emails::due(tx, now, limit))
            .await?;
        if !bad.is_empty() {
            self.write(move |tx| {
                    for (id, e) in &bad {
                        tracing::error!(email = id, error = %e, "An email row cannot be sent; it fails alone.");
                        tx.fail_email(*id, e)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(out)
    }

    async fn mailbox(&self, member: &str) -> Result<Mailbox> {
        let member = member.to_string();
        self.backend
            .read(move |tx| {
                Ok(Mailbox {
                    last_sent: tx.last_sent(&member)?,
                    unsubscribed: tx.is_unsubscribed(&member)?,
                })
            })
            .await
    }

    async fn email_thread(&self, member: &str, ticket_id: &str) -> Result<Option<EmailThread>> {
        let (member, ticket_id) = (member.to_string(), ticket_id.to_string());
        self.backend
            .read(move |tx| tx.email_thread(&member, &ticket_id))
            .await
    }

    async fn emails_complete(&self, results: Vec<EmailResult>, now: Timestamp) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        self.write(move |tx| ops::emails::complete(tx, &results, now))
            .await
    }

    async fn set_unsubscribed(
        &self,
        member: &str,
        unsubscribed: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let member = member.to_string();
        self.write(move |tx| tx.set_unsubscribed(&member, unsubscribed, now))
            .await
    }

    async fn unsubscribed(&self) -> Result<BTreeSet<String>> {
        self.backend.read(|tx| tx.unsubscribed()).await
    }

    async fn session_generation(&self, member: &str) -> Result<i64> {
        let member = member.to_string();
        self.backend
            .read(move |tx| tx.session_generation(&member))
            .await
    }

    async fn end_sessions(&self, member: &str) -> Result<i64> {
        let member = member.to_string();
        self.write(move |tx| tx.bump_session(&member)).await
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
        self.write(move |tx| {
            ops::apply::email_reply(tx, router.as_deref(), &message_id, &replies, until, now)
        })
        .await
    }
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.write(move |tx| ops::lease::acquire(tx, &name, &holder, ttl_ms, now))
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |tx| ops::lease::release(tx, &name, &holder))
            .await
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        self.backend.read(|tx| tx.leases()).await
    }

    async fn heartbeat(&self, instance: &Instance) -> Result<()> {
        let instance = instance.clone();
        // Not fenced: an instance says it is alive whatever it holds.
        self.backend
            .write(Durability::Now, move |tx| tx.put_instance(&instance))
            .await
    }

    async fn instances(&self) -> Result<Vec<Instance>> {
        self.backend.read(|tx| tx.instances()).await
    }

    async fn forget_instances(&self, before: Timestamp) -> Result<usize> {
        self.backend
            .write(Durability::Now, move |tx| tx.delete_instances(before))
            .await
    }

    async fn plugin_kv(&self, plugin: &str, now: Timestamp) -> Result<Vec<KvEntry>> {
        let plugin = plugin.to_string();
        self.backend
            .read(move |tx| tx.plugin_kv(&plugin, now))
            .await
    }

    async fn write_plugin_kv(
        &self,
        plugin: &str,
        changes: Vec<KvChange>,
        now: Timestamp,
    ) -> Result<()> {
        let plugin = plugin.to_string();
        self.write(move |tx| {
            tx.change_plugin_kv(&plugin, &changes)?;
            // After the changes: an entry put already expired goes too, and nothing expired stays
            // to be read past (reads filter them anyway).
            tx.delete_expired_plugin_kv(&plugin, now)?;
            Ok(())
        })
        .await
    }

    async fn record_change(
        &self,
        draft: ChangeDraft,
        now: Timestamp,
    ) -> Result<(Change, Vec<String>)> {
        self.write(move |tx| ops::changes::record(tx, &draft, now))
            .await
    }

    async fn changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>> {
        let filter = filter.clone();
        self.backend.read(move |tx| tx.changes(&filter)).await
    }
}
