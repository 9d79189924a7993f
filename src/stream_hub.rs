//! The live streams' shared feed reader: one task reads the store's feed once per commit and fans the
//! new entries out to every open stream over a broadcast channel, and the caps on open streams.
//!
//! Why: with a feed query per stream per commit, 2,000 streams from one viewer made every commit cost
//! 2,000 queries and slowed every other request a hundredfold. Now a commit costs one feed read (and
//! one per room that room-filtered streams follow), whatever the number of streams; each stream
//! filters the shared batch for its member's visibility and its filters. The channel is bounded: a
//! stream whose client reads too slowly falls behind by more than [`CHANNEL`] commits and is ended;
//! the browser reconnects with `Last-Event-ID` and reads what it missed from the store, so nothing
//! is lost. The feed stays the truth; the channel only saves reads.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use tokio::sync::{broadcast, watch};

use crate::store::{FeedEvent, FeedQuery, Store, StoreError};

/// Commits a stream may fall behind before it is ended.
pub const CHANNEL: usize = 256;

/// How many events one read of the feed takes.
pub const BATCH: usize = 200;

/// The entries of one or more commits: every entry with `after < id <= upto`.
#[derive(Debug)]
pub struct Batch {
    pub after: i64,
    pub upto: i64,
    pub events: Vec<FeedEvent>,
    /// For each room some stream follows: which of `events` belong to tickets in that room. A room
    /// missing here (a stream for it opened during the read) makes that stream read the store itself.
    pub rooms: HashMap<String, HashSet<i64>>,
}

/// How many live streams may be open.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub max_total: usize,
    pub max_per_member: usize,
    pub replay_limit: usize,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The member has this many open.
    Member(usize),
    /// All members together have this many open.
    Total(usize),
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_member: HashMap<String, usize>,
    /// Rooms followed by room-filtered streams, with how many follow each.
    rooms: HashMap<String, usize>,
}

/// Shared by all streams (in `AppState`).
pub struct Hub {
    store: Arc<dyn Store>,
    tx: broadcast::Sender<Arc<Batch>>,
    open: Mutex<Open>,
    limits: StreamLimits,
    closing: watch::Receiver<bool>,
    started: Once,
    /// Feed reads made for live delivery (the shared reader's and streams' own catch-ups), not
    /// counting the replay on connect. Tests and operators read it to see the fan-out work.
    live_reads: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("limits", &self.limits)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

/// A stream's place under the caps; dropping it (the stream ended) gives the place back.
pub struct Permit {
    hub: Arc<Hub>,
    member: String,
    room: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_member.get_mut(&self.member) {
            *n -= 1;
            if *n == 0 {
                open.per_member.remove(&self.member);
            }
        }
        if let Some(room) = &self.room {
            if let Some(n) = open.rooms.get_mut(room) {
                *n -= 1;
                if *n == 0 {
                    open.rooms.remove(room);
                }
            }
        }
    }
}

impl Hub {
    pub fn new(
        store: Arc<dyn Store>,
        closing: watch::Receiver<bool>,
        limits: StreamLimits,
    ) -> Arc<Hub> {
        Self::with_capacity(store, closing, limits, CHANNEL)
    }

    fn with_capacity(
        store: Arc<dyn Store>,
        closing: watch::Receiver<bool>,
        limits: StreamLimits,
        capacity: usize,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            store,
            tx: broadcast::channel(capacity).0,
            open: Mutex::new(Open::default()),
            limits,
            closing,
            started: Once::new(),
            live_reads: AtomicU64::new(0),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Sends a batch as the shared reader would (tests of how streams take them).
    #[cfg(test)]
    pub(super) fn send(&self, batch: Batch) {
        let _ = self.tx.send(Arc::new(batch));
    }

    #[cfg(test)]
    pub(super) fn with_capacity_for_test(
        store: Arc<dyn Store>,
        limits: StreamLimits,
        capacity: usize,
    ) -> Arc<Hub> {
        Self::with_capacity(store, watch::channel(false).1, limits, capacity)
    }

    pub fn limits(&self) -> StreamLimits {
        self.limits
    }

    /// Feed reads made for live delivery so far.
    pub fn live_reads(&self) -> u64 {
        self.live_reads.load(Ordering::Relaxed)
    }

    pub(super) fn count_read(&self) {
        self.live_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a place for `member`'s stream (following `room`, if any) and subscribes it to the
    /// batches. Subscribe before reading the replay, so no commit falls between the two.
    pub fn join(
        self: &Arc<Self>,
        member: &str,
        room: Option<&str>,
    ) -> Result<(Permit, broadcast::Receiver<Arc<Batch>>), Refused> {
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let mine = open.per_member.get(member).copied().unwrap_or(0);
            if mine >= self.limits.max_per_member {
                return Err(Refused::Member(mine));
            }
            if open.total >= self.limits.max_total {
                return Err(Refused::Total(open.total));
            }
            open.total += 1;
            *open.per_member.entry(member.to_string()).or_default() += 1;
            if let Some(room) = room {
                *open.rooms.entry(room.to_string()).or_default() += 1;
            }
        }
        let permit = Permit {
            hub: Arc::clone(self),
            member: member.to_string(),
            room: room.map(str::to_string),
        };
        let rx = self.tx.subscribe();
        self.started.call_once(|| {
            tokio::spawn(Arc::clone(self).run());
        });
        Ok((permit, rx))
    }

    /// The shared reader: after each commit, reads the new entries once and sends them to all.
    async fn run(self: Arc<Self>) {
        let mut watch = self.store.feed_watch();
        let mut closing = self.closing.clone();
        let mut last = *watch.borrow_and_update();
        loop {
            if *closing.borrow() {
                return;
            }
            let head = *watch.borrow_and_update();
            if head > last {
                if self.tx.receiver_count() == 0 {
                    // Nobody listens: skip ahead. A stream opened later reads its gap itself.
                    last = head;
                } else {
                    match self.read(last, head).await {
                        Ok(batch) => {
                            last = batch.upto;
                            let _ = self.tx.send(Arc::new(batch));
                        }
                        // Retried at the next commit; streams wait (they lose nothing).
                        Err(e) => tracing::warn!(error = %e, "The live feed cannot be read."),
                    }
                }
            }
            tokio::select! {
                changed = watch.changed() => if changed.is_err() { return },
                // An error: the app is gone (a test's restart), so is everyone to send to.
                changed = closing.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Every entry after `after` (at least up to `head`), and room membership for followed rooms.
    async fn read(&self, after: i64, head: i64) -> Result<Batch, StoreError> {
        let all = FeedQuery {
            after,
            limit: BATCH,
            ..FeedQuery::default()
        };
        let events = self.read_all(all, head).await?;
        let upto = events.last().map_or(head, |e| e.id.max(head));
        let rooms: Vec<String> = {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.rooms.keys().cloned().collect()
        };
        let mut in_rooms = HashMap::new();
        for room in rooms {
            let q = FeedQuery {
                after,
                room: Some(room.clone()),
                limit: BATCH,
                ..FeedQuery::default()
            };
            let ids = self.read_all(q, upto).await?;
            in_rooms.insert(
                room,
                ids.into_iter()
                    .map(|e| e.id)
                    .filter(|id| *id <= upto)
                    .collect(),
            );
        }
        Ok(Batch {
            after,
            upto,
            events,
            rooms: in_rooms,
        })
    }

    /// Reads `q` page by page until the feed is exhausted or past `upto`.
    pub(super) async fn read_all(
        &self,
        mut q: FeedQuery,
        upto: i64,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        let mut out = Vec::new();
        loop {
            self.count_read();
            let page = self.store.feed(&q).await?;
            let full = page.len() >= q.limit.max(1);
            let Some(last) = page.last().map(|e| e.id) else {
                return Ok(out);
            };
            out.extend(page);
            q.after = last;
            if !full || last >= upto {
                return Ok(out);
            }
        }
    }
}
