//! The outbox worker: takes due deliveries from the store and sends them to their rooms' sinks, in
//! order per room, within each room's rate, retrying on the schedule in `domain::delivery`, and turning
//! a room's backlog into storm digests when it grows past what the rate can send.
//!
//! Deliveries are written by the store in the same transaction as the ticket change that caused them,
//! so this worker can crash at any point: on restart it finds them again. A delivery sent but not yet
//! recorded is sent again; the idempotency key (`tocsin-<id>-<created>`) lets platforms that support it
//! (Matrix transaction ids) recognise the repeat. Like the processor, it is driven in steps: the server
//! loops over [`Outbox::step`]; tests call it with a manual clock. Deliveries held until a room's
//! business hours start are left out until then (the store does not return them), so they hold up
//! nothing behind them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex, Notify};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster::{outbox_lease, Cluster, Mode};
use crate::config::{Config, DigestConfig, RateLimitConfig};
use crate::domain::delivery::{self, RetryDecision};
use crate::domain::mail::{MailPolicy, MailPrefs, NotifyMode};
use crate::domain::message::{Capabilities, Content, TicketMessage};
use crate::domain::routing::{DeliveryKind, RoomInfo, Route, Router};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::sinks::{self, Action, Outcome, Request, Sink};
use crate::store::{Delivery, DeliveryResult, RoomBacklog, Store, StoreError};

/// How many deliveries a room sends per step before the step records them (one transaction).
const BATCH: usize = 256;

/// With other instances (PostgreSQL), how often at most the backlog is read again because the feed
/// moved (see [`Outbox::run`]).
const FEED_EVERY: Duration = Duration::from_millis(20);

/// One room's sink, limits and storm state.
#[derive(Debug)]
struct Room {
    name: String,
    sink: Arc<dyn Sink>,
    capabilities: Capabilities,
    rate: RateLimitConfig,
    limiter: Limiter,
    digest: DigestConfig,
    max_age: Duration,
    /// No sends before this (the platform asked us to wait).
    cooldown_until: Option<Timestamp>,
    storm: Option<Storm>,
    /// The token of the room's lease this instance last sent under: a new one means it took the room
    /// over from another instance.
    token: Option<i64>,
}

/// A storm in progress: the digest message (edited in place where the platform can) and every ticket
/// it has summed up so far.
#[derive(Debug)]
struct Storm {
    handle: Option<String>,
    latest: BTreeMap<String, TicketMessage>,
    changes: u64,
    next_digest: Timestamp,
}

/// Builds routing from the config and the rooms' sink capabilities.
pub fn router(config: &Config, capabilities: &BTreeMap<String, Capabilities>) -> Router {
    let rooms = config
        .rooms
        .iter()
        .map(|(name, room)| {
            (
                name.clone(),
                RoomInfo {
                    platform: room.sink.kind().to_string(),
                    capabilities: capabilities.get(name).copied().unwrap_or_default(),
                    members: room.members.clone(),
                    hours: room.room_hours(),
                },
            )
        })
        .collect();
    let routes = config
        .routes
        .iter()
        .map(|r| Route {
            equal: r
                .matchers
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            // Validation compiled these already; an invalid one cannot reach here.
            regex: r
                .match_re
                .iter()
                .filter_map(|(k, v)| {
                    crate::domain::pattern::anchored(&v.0)
                        .ok()
                        .map(|re| (k.clone(), re))
                })
                .collect(),
            rooms: r.rooms.clone(),
            mention: r.mention.clone(),
            continue_matching: r.continue_matching,
        })
        .collect();
    let handles = config
        .members
        .iter()
        .map(|(name, m)| {
            (
                name.clone(),
                m.handles
                    .iter()
                    .map(|(p, h)| (p.clone(), h.0.clone()))
                    .collect(),
            )
        })
        .collect();
    Router {
        rooms,
        routes,
        handles,
        public_url: config.public_url.0.trim_end_matches('/').to_string(),
        groups: config.groups.clone(),
        mail: mail_policy(config),
    }
}

/// Members who can be emailed (an address, a mode other than `never`, and an `email:` block), with
/// their preferences resolved against the `email:` defaults.
pub fn mail_policy(config: &Config) -> MailPolicy {
    let Some(email) = &config.email else {
        return MailPolicy::default();
    };
    let members = config
        .members
        .iter()
        .filter_map(|(name, m)| {
            let address = m.email.as_ref()?.0.clone();
            let mode = m.notify.mode.unwrap_or(email.mode);
            let delay = m.notify.delay.as_ref().unwrap_or(&email.delay).0 .0;
            (mode != NotifyMode::Never).then(|| {
                (
                    name.clone(),
                    MailPrefs {
                        address,
                        delay,
                        mode,
                    },
                )
            })
        })
        .collect();
    MailPolicy {
        members,
        batch_window: email.batch_window.0 .0,
    }
}

/// Sends the outbox.
#[derive(Debug)]
pub struct Outbox {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    router: Arc<Router>,
    rooms: BTreeMap<String, Mutex<Room>>,
    /// Each room's sink, outside the room's lock, for presence polling.
    sinks: BTreeMap<String, Arc<dyn Sink>>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// Builds every room's sink. Fails with the room's name if a sink cannot be built.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Result<Outbox, String> {
        let client = sinks::http::Client::new();
        let mut rooms = BTreeMap::new();
        let mut capabilities = BTreeMap::new();
        let mut all_sinks = BTreeMap::new();
        for (name, rc) in &config.rooms {
            let sink = sinks::build(&rc.sink, &client).map_err(|e| format!("rooms.{name}: {e}"))?;
            all_sinks.insert(name.clone(), Arc::clone(&sink));
            let rate = rc.rate_limit.unwrap_or_else(|| rc.sink.default_rate());
            capabilities.insert(name.clone(), sink.capabilities());
            rooms.insert(
                name.clone(),
                Mutex::new(Room {
                    name: name.clone(),
                    capabilities: sink.capabilities(),
                    sink,
                    limiter: Limiter::new(rate.per_second, rate.burst, clock.clone()),
                    rate,
                    digest: rc.digest.clone(),
                    max_age: rc.max_age.0 .0,
                    cooldown_until: None,
                    storm: None,
                    token: None,
                }),
            );
        }
        let router = Arc::new(router(config, &capabilities));
        store.set_router(router.clone());
        Ok(Outbox {
            store,
            clock,
            metrics,
            router,
            rooms,
            sinks: all_sinks,
            wake,
        })
    }

    /// Every room's sink, by room name.
    pub fn sinks(&self) -> &BTreeMap<String, Arc<dyn Sink>> {
        &self.sinks
    }

    /// Wakes the worker: something may have been added to the outbox.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Sends what is due now in every room, rooms side by side. Returns how many deliveries it finished
    /// (sent, failed, given up, or folded into a digest); 0 means nothing was due.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let backlog = self.store.outbox_backlog(self.clock.now()).await?;
        let work = backlog.into_iter().filter_map(|b| {
            self.rooms
                .get(&b.room)
                .map(|room| self.room_step(room, b, None))
        });
        let mut total = 0;
        for r in futures_util::future::join_all(work).await {
            total += r?;
        }
        Ok(total)
    }

    /// Steps until nothing more is due at the clock's current time.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            match self.step().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    async fn room_step(
        &self,
        room: &Mutex<Room>,
        backlog: RoomBacklog,
        cluster: Option<&Cluster>,
    ) -> Result<usize, StoreError> {
        let mut room = room.lock().await;
        if let Some(fence) = crate::store::current_fence() {
            if room.token.replace(fence.token) != Some(fence.token)
                && cluster.is_some_and(|c| c.mode == Mode::Shared)
            {
                // Taken over: the previous sender may have used the burst just before it went away,
                // and its storm digest is its own.
                room.limiter.exhaust();
                room.storm = None;
                room.cooldown_until = None;
            }
        }
        let now = self.clock.now();
        if room.cooldown_until.is_some_and(|c| c > now) || backlog.head_next_at > now {
            return Ok(0);
        }
        let storming = delivery::in_storm(
            backlog.pending,
            room.rate.per_second,
            room.rate.burst,
            room.digest.after.0 .0,
            room.storm.is_some(),
        );
        if storming {
            return self.digest_step(&mut room, now, cluster).await;
        }
        if room.storm.take().is_some() {
            tracing::info!(room = %room.name, "The storm is over; messages are sent one by one again.");
        }
        self.normal_step(&mut room, now, cluster).await
    }

    async fn normal_step(
        &self,
        room: &mut Room,
        now: Timestamp,
        cluster: Option<&Cluster>,
    ) -> Result<usize, StoreError> {
        let pending = self.store.outbox_pending(&room.name, now, BATCH).await?;
        // Shared with other instances: each send is recorded before the next, except in a fast
        // room's backlog, where they are recorded in small groups; an instance that dies leaves at
        // most that one send, or that group, to be sent again (with the same delivery ids). See
        // `delivery::sends_per_record`. Alone: once per step.
        let group = match cluster {
            Some(c) if c.mode == Mode::Shared => delivery::sends_per_record(
                pending.iter().filter(|d| d.next_at <= now).count(),
                room.rate.per_second,
            ),
            _ => usize::MAX,
        };
        let mut done = 0;
        let mut results = Vec::new();
        // Roots delivered in this batch: their replies, later in the same batch, thread under them.
        let mut roots: BTreeMap<String, String> = BTreeMap::new();
        for d in pending {
            if d.next_at > now || room.cooldown_until.is_some_and(|c| c > now) {
                break;
            }
            let root = d
                .root
                .clone()
                .or_else(|| d.ticket_id.as_ref().and_then(|t| roots.get(t).cloned()));
            let action = match d.kind {
                DeliveryKind::Root | DeliveryKind::Digest | DeliveryKind::Notice => {
                    Action::Post { thread: None }
                }
                DeliveryKind::Reply => Action::Post {
                    thread: root.filter(|_| room.capabilities.threads),
                },
                DeliveryKind::EditRoot => match root {
                    Some(handle) if room.capabilities.edits => Action::Edit { handle },
                    _ => {
                        results.push(DeliveryResult::Skipped {
                            id: d.id,
                            reason: "no first message to edit".into(),
                        });
                        self.metrics.delivery(&room.name, "skipped", 1);
                        continue;
                    }
                },
            };
            if room.limiter.check().is_err() {
                break;
            }
            // Right before the send: an instance paused or cut off past its lease must not send.
            if cluster.is_some_and(|c| !c.may_act()) {
                break;
            }
            let outcome = room.sink.send(&request(&d, action)).await;
            let (result, stop) = self.settle(room, &d, outcome, now);
            if let DeliveryResult::Sent {
                handle: Some(h), ..
            } = &result
            {
                if let (DeliveryKind::Root, Some(t)) = (d.kind, &d.ticket_id) {
                    roots.insert(t.clone(), h.clone());
                }
            }
            results.push(result);
            if results.len() >= group {
                done += results.len();
                self.store
                    .outbox_complete(std::mem::take(&mut results), now)
                    .await?;
            }
            if stop {
                break;
            }
        }
        let n = done + results.len();
        if !results.is_empty() {
            self.store.outbox_complete(results, now).await?;
        }
        Ok(n)
    }

    /// Turns one attempt's outcome into what the store records, and whether the room must stop here to
    /// keep its order (a retry later holds everything behind it).
    fn settle(
        &self,
        room: &mut Room,
        d: &Delivery,
        outcome: Outcome,
        now: Timestamp,
    ) -> (DeliveryResult, bool) {
        match outcome {
            Outcome::Sent { handle, pause } => {
                self.metrics.delivery(&room.name, "sent", 1);
                self.metrics
                    .delivery_latency
                    .observe(now.since(d.created_at));
                if let Some(p) = pause {
                    room.cooldown_until = Some(now.plus(p));
                }
                (DeliveryResult::Sent { id: d.id, handle }, pause.is_some())
            }
            Outcome::Retry { error, after } => {
                if let Some(a) = after {
                    room.cooldown_until = Some(now.plus(a));
                }
                let jitter: f64 = rand::random();
                match delivery::next_attempt(
                    d.attempts + 1,
                    d.created_at,
                    now,
                    after,
                    jitter,
                    room.max_age,
                ) {
                    RetryDecision::At(next_at) => {
                        self.metrics.delivery(&room.name, "failed", 1);
                        tracing::warn!(room = %room.name, delivery = d.id, %error, "Delivery failed; will retry.");
                        (
                            DeliveryResult::Failed {
                                id: d.id,
                                error,
                                next_at,
                            },
                            true,
                        )
                    }
                    RetryDecision::GiveUp => {
                        self.metrics.delivery(&room.name, "dead", 1);
                        tracing::error!(room = %room.name, delivery = d.id, %error, "Delivery too old; gave up.");
                        (DeliveryResult::Dead { id: d.id, error }, false)
                    }
                }
            }
            Outcome::Permanent { error } => {
                self.metrics.delivery(&room.name, "dead", 1);
                tracing::error!(room = %room.name, delivery = d.id, %error, "The platform refused a delivery for good.");
                (DeliveryResult::Dead { id: d.id, error }, false)
            }
        }
    }

    /// In a storm: at most one digest per interval and within the rate, summing up everything pending.
    async fn digest_step(
        &self,
        room: &mut Room,
        now: Timestamp,
        cluster: Option<&Cluster>,
    ) -> Result<usize, StoreError> {
        if room.storm.is_none() {
            tracing::warn!(room = %room.name, "Room is in a storm: sending digests until its backlog drains.");
            room.storm = Some(Storm {
                handle: None,
                latest: BTreeMap::new(),
                changes: 0,
                next_digest: now,
            });
        }
        if room.storm.as_ref().is_some_and(|s| s.next_digest > now) || room.limiter.check().is_err()
        {
            return Ok(0);
        }
        let pending = self
            .store
            .outbox_pending(&room.name, now, usize::MAX >> 1)
            .await?;
        // A digest recorded but never sent (its sender died or lost the room in between) goes out as it
        // is, first: its tickets' timelines already point at it, and folding it into a new digest would
        // lose what it counted.
        if let Some(old) = pending.iter().find(|d| d.kind == DeliveryKind::Digest) {
            if cluster.is_some_and(|c| !c.may_act()) {
                return Ok(0);
            }
            let outcome = room
                .sink
                .send(&request(old, Action::Post { thread: None }))
                .await;
            let (result, _) = self.settle(room, old, outcome, now);
            self.store.outbox_complete(vec![result], now).await?;
            return Ok(1);
        }
        let covered: Vec<i64> = pending.iter().map(|d| d.id).collect();
        let storm = room.storm.as_mut().expect("set above");
        for d in &pending {
            if let Content::Ticket(m) = &d.content {
                storm.latest.insert(m.ticket_id.clone(), m.clone());
                storm.changes += 1;
            }
        }
        let refs: Vec<&TicketMessage> = storm.latest.values().collect();
        let mut digest = delivery::digest(
            &room.name,
            &refs,
            room.digest.top,
            self.router.list_link(&room.name),
            now,
        );
        digest.changes = storm.changes;
        if !room.capabilities.edits {
            // Without edits each digest is a new message: it says what changed since the last one.
            storm.latest.clear();
            storm.changes = 0;
        }
        let content = Content::Digest(digest);
        let id = self
            .store
            .outbox_digest(&room.name, covered.clone(), content.clone(), now)
            .await?;
        self.metrics
            .delivery(&room.name, "digested", covered.len() as u64);
        let action = match (&storm.handle, room.capabilities.edits) {
            (Some(h), true) => Action::Edit { handle: h.clone() },
            _ => Action::Post { thread: None },
        };
        storm.next_digest = now.plus(room.digest.interval.0 .0);
        let d = Delivery {
            id,
            room: room.name.clone(),
            ticket_id: None,
            kind: DeliveryKind::Digest,
            content,
            state: "pending".into(),
            attempts: 0,
            created_at: now,
            next_at: now,
            last_error: None,
            root: None,
        };
        if cluster.is_some_and(|c| !c.may_act()) {
            // The digest is recorded and stays pending: the room's next sender sends it.
            return Ok(covered.len());
        }
        let outcome = room.sink.send(&request(&d, action)).await;
        let (result, _) = self.settle(room, &d, outcome, now);
        if let DeliveryResult::Sent {
            handle: Some(h), ..
        } = &result
        {
            if let Some(storm) = room.storm.as_mut() {
                storm.handle.get_or_insert_with(|| h.clone());
            }
        }
        self.store.outbox_complete(vec![result], now).await?;
        Ok(covered.len() + 1)
    }

    /// The server's loop. Each room has a task of its own, so a room waiting on a slow platform (or its
    /// retry, or its rate) holds up only itself; this loop reads every room's backlog in one query
    /// whenever woken, and at least every 250 ms for retries and rate limits coming due, and hands each
    /// room its part. A room sends only while this instance holds its lease in `cluster`, under it
    /// (fenced writes, the lease checked before every send). On shutdown the rooms stop between sends;
    /// what is left is sent at the next start (or by another instance).
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        const TICK: Duration = Duration::from_millis(250);
        let mut rooms = BTreeMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        for name in self.rooms.keys() {
            let (work, given) = watch::channel(None);
            rooms.insert(name.clone(), work);
            tasks.spawn(Arc::clone(&self).room_loop(
                name.clone(),
                given,
                Arc::clone(&cluster),
                shutdown.clone(),
            ));
        }
        let mut failures = 0u32;
        // Deliveries written by other instances (the journal's holder, a note taken there) come with
        // timeline entries: every instance learns of those commits through the feed.
        let mut feed = self.store.feed_watch();
        let shared = cluster.mode == Mode::Shared;
        // Every commit with a timeline entry moves the feed, this outbox's own records of sends
        // included, and reading the backlog counts every pending row: read on each feed move, a
        // growing backlog took ever longer to read as often as messages went out, and the rooms'
        // senders fell behind for good (PostgreSQL at 1,000 alerts/s). So a feed move is answered
        // at once only when the last read is `FEED_EVERY` old, else at that age; this instance's own
        // wake-ups (its processor's commits, a room's finished step) are answered at once as before.
        loop {
            if *shutdown.borrow() {
                break;
            }
            let last_read = Instant::now();
            let pause = match self.store.outbox_backlog(self.clock.now()).await {
                Ok(backlog) => {
                    failures = 0;
                    for b in backlog {
                        if let Some(work) = rooms.get(&b.room) {
                            work.send_replace(Some(b));
                        }
                    }
                    TICK
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "Reading the outbox failed; will retry.");
                    Duration::from_millis(100u64 << failures.min(6))
                }
            };
            let mut moved = false;
            tokio::select! {
                _ = self.wake.notified() => {}
                r = feed.changed(), if shared => {
                    if r.is_err() {
                        feed = self.store.feed_watch();
                    }
                    moved = true;
                }
                _ = cluster.changed.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
            if moved {
                tokio::select! {
                    _ = tokio::time::sleep_until(last_read + FEED_EVERY) => {}
                    _ = self.wake.notified() => {}
                    _ = cluster.changed.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        // Each room finishes the send it is in.
        while tasks.join_next().await.is_some() {}
    }

    /// One room's sender: steps whenever given its backlog, until shutdown.
    async fn room_loop(
        self: Arc<Self>,
        name: String,
        mut given: watch::Receiver<Option<RoomBacklog>>,
        cluster: Arc<Cluster>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Some(room) = self.rooms.get(&name) else {
            return;
        };
        let lease = outbox_lease(&name);
        let mut failures = 0u32;
        loop {
            tokio::select! {
                r = given.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let Some(backlog) = given.borrow_and_update().clone() else {
                continue;
            };
            match cluster
                .under(&lease, self.room_step(room, backlog, Some(&cluster)))
                .await
            {
                None | Some(Ok(0)) => failures = 0,
                Some(Ok(_)) => {
                    failures = 0;
                    // More may be due: ask for the backlog again now rather than at the next tick.
                    self.notify();
                }
                // Another instance took the room over mid-step: its sends are its own now.
                Some(Err(StoreError::Fenced(e))) => {
                    tracing::info!(room = %name, error = %e, "Stopped sending for a room.")
                }
                Some(Err(e)) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(room = %name, error = %e, "Sending a room's outbox failed; will retry.");
                    let pause = Duration::from_millis(100u64 << failures.min(6));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }
}

fn request(d: &Delivery, action: Action) -> Request {
    Request {
        action,
        content: d.content.clone(),
        // Stable across retries of this delivery, and unlike any other delivery even if the database
        // is recreated (the creation time is part of it).
        idempotency_key: format!("tocsin-{}-{}", d.id, d.created_at.as_millis()),
    }
}
