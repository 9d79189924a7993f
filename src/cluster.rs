//! Several tocsin instances on one database: who this instance is, its heartbeat, and the leases that
//! say which shared work it does (the journal, each room's outbox, the mailer, ...).
//!
//! On PostgreSQL every instance joins (nothing to switch on): every third of `cluster.lease_ttl` it
//! heartbeats, counts the live instances, and takes, renews or gives up leases so each does its fair
//! share (`domain::lease::plan`). A lease is held in the database with an expiry; this instance also
//! keeps a local deadline on the monotonic clock that ends before the database's, so after a pause
//! (SIGSTOP, a stalled VM) or a lost connection it stops acting on its own, before anyone can take over.
//! Work done under a lease runs [`Cluster::under`] it: each write it makes is fenced in the database
//! (`store::fenced`), and a sender asks [`Cluster::may_act`] right before each send.
//!
//! On SQLite an instance is alone ([`Mode::Solo`]): it holds everything and never asks the database.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::domain::lease::Lease;
use crate::domain::lease::{self, Fence, Move};
use crate::domain::time::Timestamp;
use crate::store::{self, Instance, RoomBacklog, Store};

/// The lease of the journal processor (plugins, applying alerts to tickets).
pub const JOURNAL: &str = "journal";
/// The lease of the sweeps: resolving tickets whose alert lease ran out, deleting old tickets.
pub const SWEEPS: &str = "sweeps";
/// The lease of the email worker.
pub const MAILER: &str = "mailer";
/// The lease of presence polling.
pub const PRESENCE: &str = "presence";

/// The lease of a room's outbox: its one sender.
pub fn outbox_lease(room: &str) -> String {
    format!("outbox:{room}")
}

/// Whether this instance shares its database with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// SQLite: alone; holds every lease without asking.
    Solo,
    /// PostgreSQL: leases in the database.
    Shared,
}

#[derive(Debug, Clone)]
struct Held {
    token: i64,
    /// Local deadline: the instance stops acting under the lease at this instant unless renewed.
    until: Instant,
}

#[derive(Debug, Default)]
struct State {
    held: BTreeMap<String, Held>,
    /// Leases seen free at the previous round (see `domain::lease::plan`).
    free_before: BTreeSet<String>,
    /// When the database last answered a heartbeat.
    last_contact: Option<Instant>,
    /// Whether the keeper's loop ([`Cluster::run`]) runs: without it (tests driving workers by
    /// steps) there is no heartbeat to miss.
    running: bool,
    live: usize,
}

/// This instance in the cluster.
#[derive(Debug)]
pub struct Cluster {
    pub id: String,
    pub mode: Mode,
    pub ttl: Duration,
    pub version: String,
    pub started_at: Timestamp,
    address: Mutex<String>,
    store: Arc<dyn Store>,
    wanted: Mutex<Vec<String>>,
    state: Mutex<State>,
    /// Per lease: work under it holds a read guard, and letting it go waits for the write guard, so a
    /// lease given to another instance is never let go in the middle of a send.
    busy: Mutex<BTreeMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// Woken whenever this instance takes a lease.
    pub changed: Notify,
}

/// What a round of lease keeping did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub taken: Vec<String>,
    pub released: Vec<String>,
    pub lost: Vec<String>,
}

/// Leases compare the instances' wall clocks, never a test's manual clock: time in the database is shared.
fn wall_now() -> Timestamp {
    SystemClock.now()
}

impl Cluster {
    pub fn new(mode: Mode, ttl: Duration, store: Arc<dyn Store>) -> Cluster {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty() && h.len() <= 64)
            .unwrap_or_else(|| "tocsin".to_string());
        let suffix: u32 = rand::random();
        Cluster {
            id: format!("{host}-{suffix:08x}"),
            mode,
            ttl,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: wall_now(),
            address: Mutex::new(String::new()),
            store,
            wanted: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            busy: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        }
    }

    /// The leases this instance may take (its config's work).
    pub fn want(&self, names: impl IntoIterator<Item = String>) {
        let mut w = self.wanted.lock().expect("cluster lock");
        w.extend(names);
        w.sort();
        w.dedup();
    }

    /// The leases this instance may take, by name.
    pub fn wanted(&self) -> Vec<String> {
        self.wanted.lock().expect("cluster lock").clone()
    }

    /// Where this instance serves HTTP (shown to the others).
    pub fn set_address(&self, address: String) {
        *self.address.lock().expect("cluster lock") = address;
    }

    pub fn address(&self) -> String {
        self.address.lock().expect("cluster lock").clone()
    }

    /// How often the leases are renewed.
    pub fn round_every(&self) -> Duration {
        self.ttl / 3
    }

    /// The local deadline of a lease renewed at `start`: a fifth of the lease before its expiry in the
    /// database, for clock drift between instances and the time the renewal took.
    fn deadline(&self, start: Instant) -> Instant {
        start + self.ttl.mul_f64(0.8)
    }

    /// The fence to work under `lease` with, if this instance holds it now.
    pub fn fence(&self, lease: &str) -> Option<Fence> {
        if self.mode == Mode::Solo {
            return Some(Fence {
                lease: lease.to_string(),
                holder: self.id.clone(),
                token: 0,
            });
        }
        let state = self.state.lock().expect("cluster lock");
        state
            .held
            .get(lease)
            .filter(|h| h.until > Instant::now())
            .map(|h| Fence {
                lease: lease.to_string(),
                holder: self.id.clone(),
                token: h.token,
            })
    }

    /// Whether this instance holds `lease` now.
    pub fn holds(&self, lease: &str) -> bool {
        self.fence(lease).is_some()
    }

    /// Runs `work` if this instance holds `lease`, with every write it makes fenced. `None` when it
    /// does not hold it.
    pub async fn under<F: Future>(&self, lease: &str, work: F) -> Option<F::Output> {
        if self.mode == Mode::Solo {
            return Some(work.await);
        }
        let busy = self.busy(lease);
        let _working = busy.read().await;
        // Checked with the guard held: a release in progress has forgotten the lease already.
        let fence = self.fence(lease)?;
        Some(store::fenced(fence, work).await)
    }

    fn busy(&self, lease: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut busy = self.busy.lock().expect("cluster lock");
        Arc::clone(busy.entry(lease.to_string()).or_default())
    }

    /// Whether the work running now (inside [`Cluster::under`]) may still act: checked right before
    /// anything that cannot be taken back, such as a send. False once the lease's local deadline passed
    /// or the lease changed hands.
    pub fn may_act(&self) -> bool {
        if self.mode == Mode::Solo {
            return true;
        }
        match store::current_fence() {
            None => true,
            Some(f) => self.fence(&f.lease).is_some_and(|now| now.token == f.token),
        }
    }

    /// Whether the database answered a heartbeat within the lease: an instance cut off from it is not
    /// ready (its leases are about to go to others).
    pub fn in_contact(&self) -> bool {
        if self.mode == Mode::Solo {
            return true;
        }
        let state = self.state.lock().expect("cluster lock");
        !state.running || state.last_contact.is_some_and(|t| t.elapsed() < self.ttl)
    }

    /// Live instances at the last round (this one included).
    pub fn live(&self) -> usize {
        self.state.lock().expect("cluster lock").live.max(1)
    }

    /// The leases this instance holds now, by name, with their tokens.
    pub fn held(&self) -> BTreeMap<String, i64> {
        if self.mode == Mode::Solo {
            return self.wanted().into_iter().map(|n| (n, 0)).collect();
        }
        let now = Instant::now();
        self.state
            .lock()
            .expect("cluster lock")
            .held
            .iter()
            .filter(|(_, h)| h.until > now)
            .map(|(n, h)| (n.clone(), h.token))
            .collect()
    }

    fn me(&self, now: Timestamp) -> Instance {
        Instance {
            id: self.id.clone(),
            address: self.address(),
            version: self.version.clone(),
            started_at: self.started_at,
            heartbeat_at: now,
        }
    }

    /// One round: heartbeat, count the live instances, then take, renew or give up leases.
    pub async fn round(&self) -> Result<Round, store::StoreError> {
        let start = Instant::now();
        let now = wall_now();
        self.store.heartbeat(&self.me(now)).await?;
        let ttl_ms = self.ttl.as_millis() as i64;
        let instances = self.store.instances().await?;
        let live_since = now.as_millis() - ttl_ms;
        let live = instances
            .iter()
            .filter(|i| i.heartbeat_at.as_millis() >= live_since)
            .count()
            .max(1);
        {
            let mut state = self.state.lock().expect("cluster lock");
            state.last_contact = Some(start);
            state.live = live;
        }
        // Forget instances long gone (they are shown as gone until then).
        let forget_before = Timestamp::from_millis(now.as_millis() - 60 * ttl_ms);
        if instances.iter().any(|i| i.heartbeat_at < forget_before) {
            self.store.forget_instances(forget_before).await?;
        }
        if self.mode == Mode::Solo {
            return Ok(Round::default());
        }
        let wanted = self.wanted.lock().expect("cluster lock").clone();
        let current: BTreeMap<_, _> = self
            .store
            .leases()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let free_before = self.state.lock().expect("cluster lock").free_before.clone();
        let moves = lease::plan(&wanted, &current, &self.id, live, &free_before, now);
        let mut round = Round::default();
        let mut free_now = BTreeSet::new();
        for (name, m) in moves {
            match m {
                Move::Take | Move::Renew => {
                    let asked = self
                        .store
                        .acquire_lease(&name, &self.id, self.ttl, now)
                        .await;
                    // One lease that cannot be had now (its row locked by a stalled holder) must not
                    // keep the others from being renewed.
                    let asked = match asked {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!(lease = %name, error = %e, "Could not ask for a lease this round.");
                            continue;
                        }
                    };
                    match asked {
                        Some(l) => {
                            let mut state = self.state.lock().expect("cluster lock");
                            let previous = state.held.insert(
                                name.clone(),
                                Held {
                                    token: l.token,
                                    until: self.deadline(start),
                                },
                            );
                            if previous.is_none_or(|p| p.token != l.token) {
                                round.taken.push(name);
                            }
                        }
                        None => {
                            if self.forget(&name) {
                                round.lost.push(name);
                            }
                        }
                    }
                }
                Move::Release => {
                    // Stop starting work under it, wait for the work running (a send) to finish, then
                    // let it go: the next holder never overlaps with it.
                    // (The sender stops at its next `may_act`, so that is one send at most.) In a task of
                    // its own: a slow send must not hold up the renewal of every other lease.
                    self.forget(&name);
                    let (busy, store, id) =
                        (self.busy(&name), Arc::clone(&self.store), self.id.clone());
                    let lease = name.clone();
                    tokio::spawn(async move {
                        let _idle = busy.write().await;
                        if let Err(e) = store.release_lease(&lease, &id).await {
                            tracing::debug!(%lease, error = %e, "Could not let a lease go; it runs out by itself.");
                        }
                    });
                    round.released.push(name);
                }
                Move::Leave => {
                    if current
                        .get(&name)
                        .is_none_or(|l| l.holder.is_empty() || l.expires_at <= now)
                    {
                        free_now.insert(name.clone());
                    }
                    if self.forget(&name) {
                        round.lost.push(name);
                    }
                }
            }
        }
        self.state.lock().expect("cluster lock").free_before = free_now;
        if !round.taken.is_empty() {
            self.changed.notify_waiters();
        }
        Ok(round)
    }

    /// Stops acting under `name`; whether it was held.
    fn forget(&self, name: &str) -> bool {
        self.state
            .lock()
            .expect("cluster lock")
            .held
            .remove(name)
            .is_some()
    }

    /// Lets every lease go (at shutdown, once the work stopped), so others take over at once instead of
    /// after the lease runs out.
    pub async fn release_all(&self) {
        if self.mode == Mode::Solo {
            return;
        }
        let held: Vec<String> = {
            let mut state = self.state.lock().expect("cluster lock");
            std::mem::take(&mut state.held).into_keys().collect()
        };
        for name in held {
            if let Err(e) = self.store.release_lease(&name, &self.id).await {
                tracing::warn!(lease = %name, error = %e, "Could not let a lease go; it runs out by itself.");
            }
        }
    }

    /// The server's loop: a round every third of the lease until shutdown, then every lease let go
    /// (after `work_done`, when the workers have stopped).
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        work_done: impl Future<Output = ()>,
    ) {
        let mut failing = false;
        self.state.lock().expect("cluster lock").running = true;
        loop {
            match self.round().await {
                Ok(r) => {
                    if failing {
                        tracing::info!("The database answers again; keeping leases.");
                        failing = false;
                    }
                    for name in &r.taken {
                        tracing::info!(lease = %name, "Took a lease.");
                    }
                    for name in &r.released {
                        tracing::info!(lease = %name, "Let a lease go for another instance.");
                    }
                    for name in &r.lost {
                        tracing::warn!(lease = %name, "Lost a lease to another instance.");
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "Cannot renew leases; work stops when they run out.");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.round_every()) => {}
                _ = shutdown.changed() => break,
            }
        }
        work_done.await;
        self.release_all().await;
    }
}

/// An instance as the cluster sees it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    #[serde(flatten)]
    pub instance: Instance,
    /// `live` while it heartbeats within the lease, then `gone` (until forgotten).
    pub state: &'static str,
    /// The leases it holds now.
    pub leases: Vec<String>,
}

/// What `GET /api/cluster` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The instance that answered.
    pub instance: String,
    /// `solo` (SQLite: alone) or `shared` (PostgreSQL).
    pub mode: Mode,
    pub lease_ttl_ms: u64,
    pub instances: Vec<InstanceView>,
    pub leases: Vec<Lease>,
    pub rooms: Vec<RoomBacklog>,
}

impl Cluster {
    /// The cluster as the database has it now.
    pub async fn view(&self) -> Result<ClusterView, store::StoreError> {
        let now = wall_now();
        let ttl_ms = self.ttl.as_millis() as i64;
        let leases = self.store.leases().await?;
        let instances = self
            .store
            .instances()
            .await?
            .into_iter()
            .map(|i| {
                let live = i.heartbeat_at.as_millis() >= now.as_millis() - ttl_ms;
                let held = leases
                    .iter()
                    .filter(|l| l.held_by(&i.id, now))
                    .map(|l| l.name.clone())
                    .collect();
                InstanceView {
                    state: if live { "live" } else { "gone" },
                    leases: held,
                    instance: i,
                }
            })
            .collect();
        let rooms = self.store.outbox_backlog(now).await?;
        Ok(ClusterView {
            instance: self.id.clone(),
            mode: self.mode,
            lease_ttl_ms: ttl_ms as u64,
            instances,
            leases,
            rooms,
        })
    }
}
